#!/usr/bin/perl
# What a reload does to the decision cache (README, auth_cache_purge: "A
# reload does not purge"): the zone keeps its entries when it keeps its name
# and size; a location whose cache question changes (auth URI,
# auth_request_set lines; auth_http params) no longer reaches the old
# entries and asks the service again; a changed *_cache_valid does not
# shorten the entries already stored (they are served, not purged); a
# changed zone size starts it empty.

use strict;
use warnings;
use Test::More;
use MIME::Base64 qw(encode_base64);
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('the decision cache is ours only');
$t->write_file('protected.html', "PROTECTED\n");

sub conf {
    my (%o) = @_;
    my $c = <<'EOF2';
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    auth_cache_zone c SIZE;
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;
        add_header X-Cache "[$auth_cache_status]" always;
        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        location /_acl/ { internal; proxy_pass http://127.0.0.1:%%PORT_8081%%/acl/; }
        auth_request_cache c;
        auth_request_cache_key $http_authorization;
        location = /uri   { auth_request URI; auth_request_cache_valid VALID; alias %%TESTDIR%%/protected.html; }
        location = /set   { auth_request /auth/set; SET auth_request_cache_valid 1h; alias %%TESTDIR%%/protected.html; }
        location = /valid { auth_request /auth/valid; auth_request_cache_valid VALID; alias %%TESTDIR%%/protected.html; }
        location /api/ {
            auth_http_acl /_acl/check params=PARAMS;
            auth_http_retry times=0 interval=10ms;
            auth_http_cache c;
            auth_http_cache_valid any 1h;
            alias %%TESTDIR%%/;
        }
    }
}
EOF2
    my %v = (SIZE => '1m', URI => '/auth/uri', VALID => '1h', SET => '',
             PARAMS => 'u=%u,t=%t', %o);
    $c =~ s/\b$_\b/$v{$_}/g for keys %v;
    $t->write_file_expand('nginx.conf', $c);
}

sub asked { my ($p) = @_; scalar grep { $_->{path} =~ $p } $t->requests('auth') }
sub cache_of {
    my ($uri) = @_;
    my $r = http_get($uri, headers => ['Authorization: Basic ' . encode_base64('jack:pw', '')]);
    return http_status($r) . ' ' . http_header($r, 'X-Cache');
}

conf();
$t->run_auth_service(8081);
$t->run;

for my $uri ('/uri', '/set', '/valid', '/api/protected.html') {
    is(cache_of($uri), '200 [MISS]', "$uri: miss");
    is(cache_of($uri), '200 [HIT]', "$uri: hit");
}
my %asked = map { $_ => asked($_) } qr{^/auth/uri}, qr{^/auth/p2}, qr{^/auth/set}, qr{^/auth/valid}, qr{^/acl/};

# the same configuration: every entry is kept
$t->reload_settled;
is(cache_of($_), '200 [HIT]', "$_: same configuration, kept") for '/uri', '/set', '/valid', '/api/protected.html';

# another question in /uri, /set and /api; a shorter valid time in /valid
conf(URI => '/auth/p2', SET => 'auth_request_set $x $upstream_http_x_user;', VALID => '1s',
     PARAMS => 'u=%u,t=%t,a=%A');
$t->reload_settled;
is(cache_of('/uri'), '200 [MISS]', 'auth URI changed: the old entry is not reached');
is(asked(qr{^/auth/p2}), 1, 'auth URI changed: the new service was asked');
is(cache_of('/set'), '200 [MISS]', 'auth_request_set changed: the old entry is not reached');
is(asked(qr{^/auth/set}), $asked{qr{^/auth/set}} + 1, 'auth_request_set changed: asked again');
is(cache_of('/api/protected.html'), '200 [MISS]', 'auth_http params changed: the old entry is not reached');
is(asked(qr{^/acl/}), $asked{qr{^/acl/}} + 1, 'auth_http params changed: asked again');
sleep 2;
is(cache_of('/valid'), '200 [HIT]', '*_cache_valid shortened to 1s: the stored entry keeps its 1h (not purged)');
is(asked(qr{^/auth/valid}), $asked{qr{^/auth/valid}}, '*_cache_valid shortened: not asked');

# back to the first configuration: the first entries are reachable again
conf();
$t->reload_settled;
is(cache_of('/uri'), '200 [HIT]', 'auth URI back: the first entry again');

# another zone size: the zone starts empty
conf(SIZE => '2m');
$t->reload_settled;
is(cache_of('/valid'), '200 [MISS]', 'zone size changed: empty');
is(cache_of('/api/protected.html'), '200 [MISS]', 'zone size changed: auth_http entries too');

$t->done;
