#!/usr/bin/perl
# auth_http: configuration errors are "[emerg] ... in FILE:LINE" naming the
# directive and the bad value; method=get with %P is accepted with a [warn];
# every directive is accepted in http, server and location.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('auth_http is ours only');

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
        location /_acl/ { proxy_pass http://127.0.0.1:%%PORT_8091%%; }
    }
}
EOF
}

# line of the marker "#L" in the generated config
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
    like($out, qr/\[emerg\] \Q$msg\E in \Q$file\E:$line$/m, "$name: [emerg] $msg at line $line")
        or diag $out;
}

my $KNOWN = '(known: %u %P %c %a %p %r %C %d %A %t %m, and %% for "%")';

###############################################################################
# auth_http_superuser / auth_http_acl

for my $d (qw(auth_http_auth auth_http_superuser auth_http_acl)) {
    conf_error("$d unknown placeholder",
               qq{"$d": invalid params "a=%u,b=x%x": unknown placeholder "%x" $KNOWN},
               "$d /_acl/x params=a=%u,b=x%x; #L");
    conf_error("$d bad method",
               qq{"$d": invalid method "delete" (get, post or put)},
               "$d /_acl/x method=delete; #L");
    conf_error("$d empty method",
               qq{"$d": invalid method "" (get, post or put)},
               "$d /_acl/x method=; #L");
    conf_error("$d params without =",
               qq{"$d": invalid params "a=1,b": parameter "b" has no "="},
               "$d /_acl/x params=a=1,b; #L");
    conf_error("$d params with an empty name",
               qq{"$d": invalid params "=1": parameter "=1" has an empty name},
               "$d /_acl/x params==1; #L");
    conf_error("$d params with an empty item",
               qq{"$d": invalid params "a=1,,b=2": parameter "" has no "="},
               "$d /_acl/x params=a=1,,b=2; #L");
    conf_error("$d params ending in %",
               qq{"$d": invalid params "a=1%": parameter "a=1%" ends with a lone "%"},
               "$d /_acl/x params=a=1%; #L");
    conf_error("$d empty params",
               qq{"$d": invalid params "": empty parameter list},
               qq{$d /_acl/x params=""; #L});
    my $known = $d eq 'auth_http_auth' ? 'method=, params=' : 'method=, params=, answer=';
    conf_error("$d unknown option",
               qq{"$d": unknown option "timeout=1s" ($known)},
               "$d /_acl/x timeout=1s; #L");
    conf_error("$d relative uri",
               qq{"$d": invalid URI "acl" (must start with "/")},
               "$d acl; #L");
    conf_error("$d named location",
               qq{"$d": named location "\@acl" cannot be used (subrequests need a URI)},
               "$d \@acl; #L");
    conf_error("$d off with options",
               qq{"$d" takes no options after "off"},
               "$d off method=get; #L");
    conf_error("$d duplicate",
               qq{"$d" directive is duplicate},
               "$d /_acl/a;\n$d /_acl/b; #L");
    conf_error("$d duplicate off",
               qq{"$d" directive is duplicate},
               "$d off;\n$d /_acl/b; #L");
    conf_error("$d without arguments",
               qq{invalid number of arguments in "$d" directive},
               "$d; #L");
    conf_error("$d params twice",
               qq{"$d": duplicate option "params=b=%c" (already given as "params=a=%u")},
               "$d /_acl/x params=a=%u method=get params=b=%c; #L");
    conf_error("$d method twice",
               qq{"$d": duplicate option "method=post" (already given as "method=get")},
               "$d /_acl/x method=get method=post; #L");
    conf_error("$d the same method twice",
               qq{"$d": duplicate option "method=get" (already given as "method=get")},
               "$d /_acl/x method=get params=a=%u method=get; #L");
    conf_error("$d variable in the uri",
               qq{"$d": the URI "/a\$x" holds a "\$": it is taken literally and cannot use variables},
               "$d /a\$x; #L");
    conf_error("$d variable in the fixed query",
               qq{"$d": the URI "/a?u=\$remote_user" holds a "\$": it is taken literally and cannot use variables},
               "$d /a?u=\$remote_user method=get; #L");
}

###############################################################################
# auth_http_realm

for my $case (['""', ''], ['"a\\"b"', 'a"b'], ['"a\\\\b"', 'a\\b'], ["\"caf\xc3\xa9\"", "caf\xc3\xa9"]) {
    my ($word, $value) = @$case;
    conf_error("auth_http_realm $word",
               qq{"auth_http_realm": invalid realm "$value" (not empty; printable ASCII without '"' or '\\')},
               "auth_http_realm $word; #L");
}
conf_error('auth_http_realm duplicate', '"auth_http_realm" directive is duplicate',
           "auth_http_realm a;\nauth_http_realm b; #L");
conf_error('auth_http_realm two values', 'invalid number of arguments in "auth_http_realm" directive',
           'auth_http_realm a b; #L');

###############################################################################
# auth_http_retry

for my $case (['times=11',      'invalid times "11" (a whole number from 0 to 10)'],
              ['times=-1',      'invalid times "-1" (a whole number from 0 to 10)'],
              ['times=x',       'invalid times "x" (a whole number from 0 to 10)'],
              ['interval=0',    'invalid interval "0" (a time such as 500ms or 1s, above 0, at most 1h)'],
              ['interval=61m',  'invalid interval "61m" (a time such as 500ms or 1s, above 0, at most 1h)'],
              ['interval=soon', 'invalid interval "soon" (a time such as 500ms or 1s, above 0, at most 1h)'],
              ['backoff=0.5',   'invalid backoff "0.5" (a number from 1.0 to 10.0)'],
              ['backoff=10.5',  'invalid backoff "10.5" (a number from 1.0 to 10.0)'],
              ['backoff=x',     'invalid backoff "x" (a number from 1.0 to 10.0)'],
              ['tries=3',       'unknown option "tries=3" (expected times=, interval=, backoff=)']) {
    my ($arg, $msg) = @$case;
    # after a good option, so that a later bad one is shown to be checked
    my $good = $arg =~ /^times=/ ? 'interval=1s' : 'times=1';
    conf_error("auth_http_retry $arg", qq{"auth_http_retry": $msg},
               "auth_http_retry $good $arg; #L");
}
for my $case (['times=1 times=2', 'times=2', 'times=1'],
              ['interval=1s backoff=2 interval=1s', 'interval=1s', 'interval=1s'],
              ['backoff=2 times=1 backoff=3', 'backoff=3', 'backoff=2']) {
    my ($args, $again, $first) = @$case;
    conf_error("auth_http_retry $args",
               qq{"auth_http_retry": duplicate option "$again" (already given as "$first")},
               "auth_http_retry $args; #L");
}
conf_error('auth_http_retry duplicate', '"auth_http_retry" directive is duplicate',
           "auth_http_retry times=1;\nauth_http_retry times=2; #L");
conf_error('auth_http_retry without arguments',
           'invalid number of arguments in "auth_http_retry" directive',
           "auth_http_retry; #L");

###############################################################################
# auth_http_nomatch, auth_http_client_id, auth_http_mountpoint

conf_error('auth_http_nomatch bad value',
           '"auth_http_nomatch": invalid value "maybe" (allow or deny)',
           'auth_http_nomatch maybe; #L');
conf_error('auth_http_nomatch duplicate', '"auth_http_nomatch" directive is duplicate',
           "auth_http_nomatch allow;\nauth_http_nomatch deny; #L");
conf_error('auth_http_nomatch two values',
           'invalid number of arguments in "auth_http_nomatch" directive',
           'auth_http_nomatch allow deny; #L');
for my $d (qw(auth_http_client_id auth_http_mountpoint)) {
    conf_error("$d duplicate", qq{"$d" directive is duplicate},
               "$d a;\n$d b; #L");
    conf_error("$d two values", qq{invalid number of arguments in "$d" directive},
               "$d a b; #L");
}

# not allowed inside "if"
conf_error('auth_http_acl in if', '"auth_http_acl" directive is not allowed here',
           "if (\$arg_x) {\nauth_http_acl /_acl/x; #L\n}");

# unknown variables: reported once variables are resolved (no FILE:LINE)
for my $case (['params', 'auth_http_acl /_acl/x params=v=$no_such_var_1;', 'no_such_var_1'],
              ['client id', 'auth_http_client_id $no_such_var_2;', 'no_such_var_2'],
              ['mountpoint', 'auth_http_mountpoint $no_such_var_3;', 'no_such_var_3']) {
    my ($what, $body, $var) = @$case;
    my ($rc, $out) = $t->nginx_t(conf_with($body));
    isnt($rc, 0, "unknown variable in $what: nginx -t fails");
    like($out, qr/\[emerg\] unknown "$var" variable/, "unknown variable in $what: named");
}

# $auth_http_result is the module's: it cannot be set
conf_error('set $auth_http_result', 'the duplicate "auth_http_result" variable',
           'set $auth_http_result x; #L');

###############################################################################
# %P with method=get: accepted, with a warning; not with post/put

my $conf = conf_with("auth_http_acl /_acl/x method=get params=u=%u,p=%P; #L");
my ($rc, $out, $file) = $t->nginx_t($conf);
is($rc, 0, 'method=get with %P: accepted') or diag $out;
my $line = line_of($conf);
like($out,
     qr/\[warn\] "auth_http_acl" sends the Basic-auth password \(%P\) with method=get: it travels in the URL, where access logs, proxies and the service's own logs record it; method=post keeps it in the request body in \Q$file\E:$line$/m,
     'method=get with %P: [warn] explaining why, at FILE:LINE');

$conf = conf_with("auth_http_auth /_acl/x method=get; #L");
($rc, $out, $file) = $t->nginx_t($conf);
is($rc, 0, 'auth_http_auth method=get with the default params (%P): accepted');
like($out, qr/\[warn\] "auth_http_auth" sends the Basic-auth password \(%P\) with method=get: .* in \Q$file\E:\d+$/m,
     'auth_http_auth method=get: warned');
($rc, $out) = $t->nginx_t(conf_with("auth_http_auth /_acl/x;"));
unlike($out, qr/\[warn\]/, 'auth_http_auth with its default method post: no warning');

$conf = conf_with("auth_http_superuser /_acl/x method=get params=p=%P; #L");
($rc, $out, $file) = $t->nginx_t($conf);
is($rc, 0, 'superuser method=get with %P: accepted');
like($out, qr/\[warn\] "auth_http_superuser" sends the Basic-auth password/, 'superuser method=get with %P: warned');

for my $m (qw(post put)) {
    ($rc, $out) = $t->nginx_t(conf_with("auth_http_acl /_acl/x method=$m params=u=%u,p=%P;"));
    is($rc, 0, "method=$m with %P: accepted");
    unlike($out, qr/\[warn\]/, "method=$m with %P: no warning");
}
($rc, $out) = $t->nginx_t(conf_with("auth_http_acl /_acl/x method=get params=u=%u,pct=%%P;"));
unlike($out, qr/\[warn\]/, 'method=get with a literal "%%P": no warning');

###############################################################################
# accepted everywhere

($rc, $out) = $t->nginx_t(conf_with(
    join("\n",
         'auth_http_auth /_acl/auth params=u=%u,p=%P;',
         'auth_http_realm "my api v2 (staff)";',
         'auth_http_superuser /_acl/su?x=1 method=put "params=c=%c,d=%d,C=%C,lit=a b%%";',
         'auth_http_acl /_acl/acl method=GET params=a=%A,t=$host%t;',
         'auth_http_retry times=10 interval=1h backoff=10;',
         'auth_http_client_id "$http_x_id $remote_user";',
         'auth_http_mountpoint "";',
         'auth_http_nomatch deny;'),
    join("\n",
         'auth_http_auth off;',
         'auth_http_realm srv;',
         'auth_http_superuser off;',
         'auth_http_acl /_acl/srv;',
         'auth_http_retry times=0 interval=1ms backoff=1.0;',
         'auth_http_client_id srv;',
         'auth_http_mountpoint srv/;',
         'auth_http_nomatch allow;'),
    join("\n",
         'auth_http_auth /_acl/http-auth method=put;',
         'auth_http_realm http;',
         'auth_http_superuser /_acl/http params=u=%u;',
         'auth_http_acl off;',
         'auth_http_retry interval=500ms;',
         'auth_http_client_id $remote_addr;',
         'auth_http_mountpoint $host/;',
         'auth_http_nomatch deny;')));
is($rc, 0, 'every directive in http, server and location: accepted') or diag $out;
unlike($out, qr/\[warn\]/, 'no warning');

$t->done;
