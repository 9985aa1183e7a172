#!/usr/bin/perl
# auth_http_auth (issue 14, auth_http §0): the authentication request of
# EMQX's emqx_auth_http, asked before the superuser and ACL questions.
#
#   * 200: authenticated; go on to auth_http_superuser / auth_http_acl, or,
#     with neither, let the request through ($auth_http_result
#     "authenticated");
#   * any other answer: 401 with "WWW-Authenticate: Basic realm=..."
#     (auth_http_realm, default "restricted"), $auth_http_result
#     "unauthenticated"; superuser and ACL services are never asked;
#   * unreachable (502/503/504, no status): retried per auth_http_retry,
#     then 503 ("error"), never an ACL check;
#   * the same placeholders and encodings: the default params are
#     clientid=%c,username=%u,password=%P, POSTed as a form;
#   * the password never reaches the error log or the access log.

use strict;
use warnings;
use Test::More;
use MIME::Base64;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('auth_http is ours only');
$t->write_file('protected.html', "PROTECTED\n");

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%

    map $http_x_auth_status $auth_status { "" 200; default $http_x_auth_status; }
    map $http_x_su_status   $su_status   { "" 403; default $http_x_su_status; }
    map $http_x_acl_status  $acl_status  { "" 200; default $http_x_acl_status; }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        server_name localhost;
        add_header X-Result "[$auth_http_result]" always;

        location /_auth/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/auth/;
            proxy_set_header X-Ctl-Status     $auth_status;
            proxy_set_header X-Ctl-Fail-First $http_x_auth_fail;
            proxy_set_header X-Ctl-Fail-Key   $http_x_key;
        }
        location /_su/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/su/;
            proxy_set_header X-Ctl-Status $su_status;
        }
        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/acl/;
            proxy_set_header X-Ctl-Status $acl_status;
        }
        location /_down/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_DEAD%%/;
        }

        location /all/ {
            auth_http_auth      /_auth/a;
            auth_http_superuser /_su/s;
            auth_http_acl       /_acl/c method=get;
            auth_http_client_id $http_x_client;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /authonly/ {
            auth_http_auth /_auth/o;
            alias %%TESTDIR%%/;
        }
        location /acl/ {
            auth_http_auth /_auth/x method=put params=user=%u,pass=%P,ip=%a;
            auth_http_acl  /_acl/y method=get;
            auth_http_realm "my api";
            alias %%TESTDIR%%/;
        }
        location /down/ {
            auth_http_auth  /_down/a;
            auth_http_acl   /_acl/never;
            auth_http_retry times=2 interval=50ms backoff=1.0;
            alias %%TESTDIR%%/;
        }
        location /flaky/ {
            auth_http_auth  /_auth/flaky;
            auth_http_retry times=3 interval=20ms backoff=1.0;
            alias %%TESTDIR%%/;
        }
        location /off/ {
            auth_http_auth off;
            alias %%TESTDIR%%/;
        }
    }
}
EOF
$t->port('DEAD');
$t->run_auth_service(8081);
$t->run_echo_server(8082);
$t->run;

my $PASSWORD = 'Zq7s3cr?t&pw';
my $BASIC = 'Authorization: Basic ' . encode_base64("alice:$PASSWORD", '');

sub paths { [map { $_->{path} } $t->requests('auth')] }
sub clear { $t->clear_requests($_) for qw(auth echo) }
sub result { scalar http_header($_[0], 'X-Result') }

###############################################################################
# 200: authenticated, then superuser, then ACL

clear();
my $r = http_get('/all/x', headers => [$BASIC, 'X-Client: dev-1']);
is(http_status($r), 200, 'authenticated, not a superuser, ACL allows: 200');
is(result($r), '[allow]', '$auth_http_result: allow');
is_deeply(paths(), ['/auth/a', '/su/s', '/acl/c'], 'asked in order: authentication, superuser, ACL');
my ($auth) = $t->requests('auth');
is($auth->{method}, 'POST', 'authentication request: POST by default');
is(AGTest::req_header($auth, 'Content-Type'), 'application/x-www-form-urlencoded', 'as a form');
is($auth->{body}, 'clientid=dev-1&username=alice&password=Zq7s3cr%3Ft%26pw',
   'default params clientid=%c,username=%u,password=%P, form-encoded');
is(scalar $t->requests('echo'), 1, 'the protected upstream served');

clear();
$r = http_get('/all/x', headers => [$BASIC, 'X-Su-Status: 200']);
is(http_status($r), 200, 'authenticated superuser: 200');
is(result($r), '[superuser]', '$auth_http_result: superuser');
is_deeply(paths(), ['/auth/a', '/su/s'], 'the ACL service is not asked');

clear();
$r = http_get('/all/x', headers => [$BASIC, 'X-Acl-Status: 403']);
is(http_status($r), 403, 'authenticated, ACL denies: 403');
is(result($r), '[deny]', '$auth_http_result: deny');
is(scalar(() = http_header($r, 'WWW-Authenticate')), 0, 'a 403 carries no challenge');
is(scalar $t->requests('echo'), 0, 'the protected upstream is not asked');

###############################################################################
# any other answer: 401 with the Basic challenge, nothing else asked

for my $status (401, 403, 404, 500, 204, 201, 302) {
    clear();
    $r = http_get('/all/x', headers => [$BASIC, "X-Auth-Status: $status"]);
    is(http_status($r), 401, "authentication service answers $status: 401");
    is_deeply([http_header($r, 'WWW-Authenticate')], ['Basic realm="restricted"'],
              "$status: one challenge, the default realm");
    is(result($r), '[unauthenticated]', "$status: \$auth_http_result unauthenticated");
    is_deeply(paths(), ['/auth/a'], "$status: superuser and ACL services are not asked");
    is(scalar $t->requests('echo'), 0, "$status: the protected upstream is not asked");
}

clear();
$r = http_get('/all/x', headers => ['X-Auth-Status: 401']);
is(http_status($r), 401, 'no credentials, the service refuses: 401');
($auth) = $t->requests('auth');
is($auth->{body}, 'clientid=&username=&password=', 'without Basic credentials %u and %P are empty');

# HTTP/2 and HEAD
$r = http2_request('/all/x', headers => [$BASIC, 'X-Auth-Status: 403']);
is(http_status($r), 401, 'HTTP/2: 401');
is_deeply([http_header($r, 'WWW-Authenticate')], ['Basic realm="restricted"'], 'HTTP/2: the challenge');
$r = http2_request('/all/x', headers => [$BASIC]);
is(http_status($r), 200, 'HTTP/2: authenticated: 200');
$r = http_get('/all/x', method => 'HEAD', headers => [$BASIC, 'X-Auth-Status: 403']);
is(http_status($r), 401, 'HEAD: 401');
is(scalar http_header($r, 'WWW-Authenticate'), 'Basic realm="restricted"', 'HEAD: the challenge');

###############################################################################
# auth_http_realm, method=put with own params, then the ACL alone

clear();
$r = http_get('/acl/protected.html', headers => [$BASIC, 'X-Auth-Status: 403']);
is(http_status($r), 401, 'own realm: 401');
is_deeply([http_header($r, 'WWW-Authenticate')], ['Basic realm="my api"'], 'auth_http_realm "my api"');
($auth) = $t->requests('auth');
is($auth->{method}, 'PUT', 'method=put');
is($auth->{body}, 'user=alice&pass=Zq7s3cr%3Ft%26pw&ip=127.0.0.1', 'own params, form-encoded');

clear();
$r = http_get('/acl/protected.html', headers => [$BASIC]);
is(http_status($r), 200, 'authenticated, ACL allows (no superuser service): 200');
is(http_body($r), "PROTECTED\n", 'the protected file');
is_deeply(paths(), ['/auth/x', '/acl/y'], 'authentication, then ACL');

###############################################################################
# authentication alone

clear();
$r = http_get('/authonly/protected.html', headers => [$BASIC]);
is(http_status($r), 200, 'authentication only, 200: the content');
is(result($r), '[authenticated]', '$auth_http_result: authenticated');
$r = http_get('/authonly/protected.html', headers => [$BASIC, 'X-Auth-Status: 403']);
is(http_status($r), 401, 'authentication only, 403: 401');
$r = http_get('/off/protected.html', headers => ['X-Auth-Status: 403']);
is(http_status($r), 200, 'auth_http_auth off: not asked');

###############################################################################
# unreachable: retried, then 503; a recovering service is an answer

clear();
$r = http_get('/down/protected.html', headers => [$BASIC]);
is(http_status($r), 503, 'authentication service down: 503 after the retries');
is(result($r), '[error]', '$auth_http_result: error');
is(scalar(() = http_header($r, 'WWW-Authenticate')), 0, '503: no challenge');
is_deeply(paths(), [], 'the ACL service is never asked');
ok($t->wait_for_log(qr/\[error\].*auth_http: authentication service "\/_down\/a" not reachable after 3 attempts \(last status 502\); answering 503/, 2),
   '[error] authentication service not reachable after 3 attempts');
ok($t->grep_log(qr/\[info\].*auth_http: authentication service "\/_down\/a" not reachable \(status 502\), retrying in 50 ms/),
   '[info] retrying');

clear();
$r = http_get('/flaky/protected.html', headers => [$BASIC, 'X-Auth-Fail: 2', 'X-Key: flaky-1']);
is(http_status($r), 200, 'authentication service fails twice, then 200: the content');
is_deeply(paths(), ['/auth/flaky', '/auth/flaky', '/auth/flaky'], 'asked three times');
clear();
$r = http_get('/flaky/protected.html', headers => [$BASIC, 'X-Auth-Fail: 1', 'X-Key: flaky-2', 'X-Auth-Status: 403']);
is(http_status($r), 401, 'fails once, then refuses: 401');

###############################################################################
# the password never reaches a log

$t->stop;
for my $log (qw(error.log access.log)) {
    my $text = $t->read_file($log) // '';
    ok(length $text, "$log written");
    unlike($text, qr/Zq7s3cr/, "$log: the password is not in it (plain)");
    unlike($text, qr/Zq7s3cr%3F/, "$log: nor form-encoded");
}

$t->done;
