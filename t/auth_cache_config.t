#!/usr/bin/perl
# The decision cache's configuration: refusals are "[emerg] ... in
# FILE:LINE" naming the directive and the value (a cache without a key, a
# key without variables, an unknown zone, bad times and codes, bad zones);
# a key without a credential-bearing variable is accepted with a [warn];
# a zone may be declared after the directives that use it.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('the decision cache is ours only');

sub conf_with {
    my ($location_body, $server_body, $http_body) = @_;
    $_ //= '' for $server_body, $http_body;
    return <<"EOF";
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
$http_body
    server {
        listen 127.0.0.1:%%PORT_8090%%;
$server_body
        location / {
$location_body
        }
        location /_auth/ { proxy_pass http://127.0.0.1:%%PORT_8091%%; }
    }
}
EOF
}

sub line_of {
    my ($conf) = @_;
    my @l = split /\n/, $conf;
    for my $i (0 .. $#l) { return $i + 1 if $l[$i] =~ /#L$/ }
    die "no #L marker";
}

sub conf_error {
    my ($name, $msg, @bodies) = @_;
    my $conf = conf_with(@bodies);
    my ($rc, $out, $file) = $t->nginx_t($conf);
    isnt($rc, 0, "$name: nginx -t fails");
    my $line = line_of($conf);
    like($out, qr/\[emerg\] \Q$msg\E in \Q$file\E:$line$/m, "$name: [emerg] at line $line")
        or diag $out;
}

sub conf_ok {
    my ($name, @bodies) = @_;
    my ($rc, $out) = $t->nginx_t(conf_with(@bodies));
    is($rc, 0, "$name: accepted") or diag $out;
    return $out;
}

my $ZONE = '    auth_cache_zone c 1m;';
my $KEY = 'auth_request_cache_key $http_authorization;';

conf_error('cache without key',
           '"auth_request_cache c" needs "auth_request_cache_key" (there is no default key)',
           "auth_request /_auth/x; auth_request_cache c; #L", '', $ZONE);
conf_error('cache without key, inherited from server',
           '"auth_request_cache c" needs "auth_request_cache_key" (there is no default key)',
           "auth_request /_auth/x;", "auth_request_cache c; #L", $ZONE);
conf_ok('key in the location, cache in http',
        "auth_request /_auth/x; $KEY", '', "$ZONE\n    auth_request_cache c;");
conf_ok('cache without key where nothing is protected', "auth_request_cache c;", '', $ZONE);
conf_error('key without variables',
           '"auth_request_cache_key": the key "static" holds no variables: every client would share one decision',
           "auth_request /_auth/x; auth_request_cache c; auth_request_cache_key static; #L", '', $ZONE);
conf_error('key with a lone $',
           '"auth_request_cache_key": the key "a$" holds no variables: every client would share one decision',
           "auth_request_cache_key a\$; #L", '', $ZONE);
conf_error('unknown zone',
           '"auth_request_cache": unknown zone "nope" (no auth_cache_zone declares it)',
           "auth_request /_auth/x; auth_request_cache nope; #L\n $KEY", '', $ZONE);
conf_ok('zone declared after its use',
        "auth_request /_auth/x; auth_request_cache late; $KEY", '', '    auth_cache_zone late 1m;');
conf_error('duplicate cache', '"auth_request_cache" directive is duplicate',
           "auth_request_cache c; auth_request_cache c; #L", '', $ZONE);
conf_error('duplicate key', '"auth_request_cache_key" directive is duplicate',
           "$KEY $KEY #L", '', $ZONE);
conf_error('bad time', '"auth_request_cache_valid": invalid time "5q"',
           "auth_request_cache_valid 5q; #L", '', $ZONE);
conf_error('bad time with codes', '"auth_request_cache_valid": invalid time "x"',
           "auth_request_cache_valid 200 x; #L", '', $ZONE);
for my $code (qw(500 503 404 302 abc)) {
    conf_error("code $code",
               qq{"auth_request_cache_valid": "$code" cannot be cached: only 2xx, 401 and 403 answers are decisions},
               "auth_request_cache_valid $code 1m; #L", '', $ZONE);
}
conf_ok('codes and any', "auth_request_cache_valid 200 204 401 403 1m; auth_request_cache_valid any 5s;",
        '', $ZONE);
conf_error('zone bad size', 'invalid zone size "1q"', '', '', '    auth_cache_zone z 1q; #L');
conf_error('zone too small', 'zone "z" is too small: 1k (at least 32768 bytes)', '', '',
           '    auth_cache_zone z 1k; #L');
conf_error('zone declared twice', 'zone "z" is already declared', '', '',
           "    auth_cache_zone z 1m;\n    auth_cache_zone z 1m; #L");
# inactive=
for my $bad ('inactive=0', 'inactive=0s', 'inactive=abc', 'inactive=', 'inactive=-1s') {
    conf_error("zone $bad", qq{"auth_cache_zone": invalid "$bad" (a time above 0, such as 30s or 10m)},
               '', '', "    auth_cache_zone z 1m $bad; #L");
}
conf_error('zone unknown parameter', '"auth_cache_zone": invalid parameter "max_size=1m"', '', '',
           '    auth_cache_zone z 1m max_size=1m; #L');
conf_error('zone inactive twice',
           '"auth_cache_zone": duplicate option "inactive=2m" (already given as "inactive=1m")', '', '',
           '    auth_cache_zone z 1m inactive=1m inactive=2m; #L');
conf_error('zone a word after inactive=', '"auth_cache_zone": invalid parameter "x"', '', '',
           '    auth_cache_zone z 1m inactive=1m x; #L');
conf_ok('zone inactive=500ms and 1d', "auth_request /_auth/x; auth_request_cache y; $KEY", '',
        "    auth_cache_zone y 1m inactive=500ms;\n    auth_cache_zone z 1m inactive=1d;");
conf_error('purge of an unknown zone',
           '"auth_cache_purge": unknown zone "nope" (no auth_cache_zone declares it)',
           "auth_cache_purge nope; #L", '', $ZONE);
conf_error('purge twice', '"auth_cache_purge" directive is duplicate',
           "auth_cache_purge c; auth_cache_purge c; #L", '', $ZONE);

# auth_http_cache
conf_error('auth_http_cache unknown zone',
           '"auth_http_cache": unknown zone "nope" (no auth_cache_zone declares it)',
           "auth_http_acl /_auth/acl; auth_http_cache nope; #L", '', $ZONE);
conf_ok('auth_http_cache needs no key', "auth_http_acl /_auth/acl; auth_http_cache c; auth_http_cache_valid allow deny 1m;",
        '', $ZONE);
conf_error('auth_http_cache_valid unknown answer',
           '"auth_http_cache_valid": "error" is not an answer (authenticated, unauthenticated, superuser, allow, deny, ignore, any)',
           "auth_http_cache_valid allow error 1m; #L", '', $ZONE);
conf_error('auth_http_cache_valid without an answer',
           '"auth_http_cache_valid": nothing to cache before "1m"',
           "auth_http_cache_valid 1m; #L", '', $ZONE);
conf_error('auth_http_cache_valid bad time', '"auth_http_cache_valid": invalid time "1x"',
           "auth_http_cache_valid any 1x; #L", '', $ZONE);
conf_error('auth_http_cache duplicate', '"auth_http_cache" directive is duplicate',
           "auth_http_cache c; auth_http_cache off; #L", '', $ZONE);

# the opt-in auth_request directives whose effect a hit could not replay
for my $other ('auth_request_pass_status 302;', 'auth_request_client_header X-A;',
               'auth_request_upstream_header X-User;', 'auth_request_body on;') {
    my ($name) = $other =~ /^(\S+)/;
    conf_error("cache with $name",
               qq{"auth_request_cache c" cannot be combined with "$name": what it passes on is not part of a cached decision},
               "auth_request /_auth/x; auth_request_cache c; #L\n $KEY $other", '', $ZONE);
}
conf_ok('cache with auth_request_allow_status', "auth_request /_auth/x; auth_request_cache c; $KEY auth_request_allow_status 200 204;",
        '', $ZONE);

# a key that tells no credentials apart: accepted with a warning
{
    my $conf = conf_with("auth_request /_auth/x; auth_request_cache c; auth_request_cache_key \$remote_addr\$uri; #L",
                         '', $ZONE);
    my ($rc, $out, $file) = $t->nginx_t($conf);
    is($rc, 0, 'key without credentials: accepted');
    my $line = line_of($conf);
    like($out, qr/\[warn\] "auth_request_cache_key": the key "\$remote_addr\$uri" uses no credential-bearing variable .* in \Q$file\E:$line$/m,
         'key without credentials: [warn] at its line') or diag $out;
    for my $key ('$http_authorization', '${cookie_sid}', '$ssl_client_s_dn', '$remote_user', '$http_x_api_key:$uri') {
        my $out = conf_ok("key $key", "auth_request_cache_key $key;", '', $ZONE);
        unlike($out, qr/\[warn\].*credential/, "key $key: no warning");
    }
}

$t->done;
