#!/usr/bin/perl
# auth_request: place in the access phase.
#
# The C module registers its handler in the access phase so that it runs
# after the access module (allow/deny) and auth_basic.  With "satisfy all"
# the first refusal is final: a client refused by "deny" or lacking
# auth_basic credentials never causes an auth subrequest.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;

$t->write_file('protected.html', "PROTECTED\n");
$t->write_file('htpasswd', "plain:{PLAIN}secret\n"
    . "crypted:" . crypt('secret2', '$1$saltsalt$') . "\n");

$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }

        # no access restriction at all besides auth_request
        location = /plain/200 { auth_request /auth/200/plain; alias %%TESTDIR%%/protected.html; }
        location = /plain/401 { auth_request /auth/401/plain; alias %%TESTDIR%%/protected.html; }
        location = /plain/403 { auth_request /auth/403/plain; alias %%TESTDIR%%/protected.html; }
        location = /none      { alias %%TESTDIR%%/protected.html; }

        # access module first
        location = /deny/401 {
            satisfy all;
            deny all;
            auth_request /auth/401/deny;
            alias %%TESTDIR%%/protected.html;
        }
        location = /deny/200 {
            deny all;
            auth_request /auth/200/deny;
            alias %%TESTDIR%%/protected.html;
        }
        location = /allow/401 {
            allow 127.0.0.1;
            deny all;
            auth_request /auth/401/allow;
            alias %%TESTDIR%%/protected.html;
        }
        location = /allow/200 {
            allow 127.0.0.1;
            deny all;
            auth_request /auth/200/allow;
            alias %%TESTDIR%%/protected.html;
        }

        # auth_basic second
        location = /basic/403 {
            satisfy all;
            auth_basic "phase";
            auth_basic_user_file %%TESTDIR%%/htpasswd;
            auth_request /auth/403/basic;
            alias %%TESTDIR%%/protected.html;
        }
        location = /basic/200 {
            auth_basic "phase";
            auth_basic_user_file %%TESTDIR%%/htpasswd;
            auth_request /auth/200/basic;
            alias %%TESTDIR%%/protected.html;
        }

        # all three: deny wins before auth_basic and auth_request
        location = /deny-basic {
            deny all;
            auth_basic "phase";
            auth_basic_user_file %%TESTDIR%%/htpasswd;
            auth_request /auth/200/deny-basic;
            alias %%TESTDIR%%/protected.html;
        }
    }
}
EOF2

$t->run_auth_service(8081);
$t->run;

sub hits {
    my ($tag) = @_;
    return scalar grep { $_->{path} =~ m{/\Q$tag\E$} } $t->requests('auth');
}

my $good  = 'Authorization: Basic ' . encode_b64('plain:secret');
my $good2 = 'Authorization: Basic ' . encode_b64('crypted:secret2');
my $bad   = 'Authorization: Basic ' . encode_b64('plain:wrong');

sub encode_b64 {
    require MIME::Base64;
    return MIME::Base64::encode_base64($_[0], '');
}

# sanity: the auth result decides when nothing else restricts access
my $r = http_get('/none');
is(http_status($r), 200, 'no auth_request: 200');
$r = http_get('/plain/200');
is(http_status($r), 200, 'auth 200: allowed');
is(http_body($r), "PROTECTED\n", 'auth 200: static content served');
$r = http_get('/plain/401');
is(http_status($r), 401, 'auth 401: 401');
unlike(http_body($r), qr/PROTECTED/, 'auth 401: content not served');
$r = http_get('/plain/403');
is(http_status($r), 403, 'auth 403: 403');
unlike(http_body($r), qr/PROTECTED/, 'auth 403: content not served');
is(hits('plain'), 3, 'auth service hit once per request');

# allow/deny runs first
$r = http_get('/deny/401');
is(http_status($r), 403, 'satisfy all + deny all + auth 401: 403 from deny');
$r = http_get('/deny/200');
is(http_status($r), 403, 'deny all + auth 200: 403');
is(hits('deny'), 0, 'client refused by deny never reaches the auth service');

$r = http_get('/allow/401');
is(http_status($r), 401, 'allowed by address, auth 401: 401');
$r = http_get('/allow/200');
is(http_status($r), 200, 'allowed by address, auth 200: 200');
is(hits('allow'), 2, 'address-allowed clients reach the auth service');

# auth_basic runs before auth_request
$r = http_get('/basic/403');
is(http_status($r), 401, 'satisfy all + auth_basic without credentials + auth 403: 401');
is_deeply([http_header($r, 'WWW-Authenticate')], ['Basic realm="phase"'],
          'the 401 is auth_basic\'s');
$r = http_get('/basic/403', headers => [$bad]);
is(http_status($r), 401, 'wrong credentials: 401 from auth_basic');
is(hits('basic'), 0, 'auth service not hit without valid basic credentials');

$r = http_get('/basic/403', headers => [$good]);
is(http_status($r), 403, 'good {PLAIN} credentials, auth 403: 403');
is(hits('basic'), 1, 'good credentials: auth service hit');
$r = http_get('/basic/200', headers => [$good]);
is(http_status($r), 200, 'good {PLAIN} credentials, auth 200: 200');
is(http_body($r), "PROTECTED\n", 'content served');
$r = http_get('/basic/200', headers => [$good2]);
is(http_status($r), 200, 'good crypt() credentials, auth 200: 200');
is(hits('basic'), 3, 'auth service hit for each authenticated request');

my ($req) = grep { $_->{path} eq '/auth/200/basic' } $t->requests('auth');
like(AGTest::req_header($req, 'Authorization') // '', qr/^Basic /,
     'the client\'s Authorization header reaches the auth service');

$r = http_get('/deny-basic', headers => [$good]);
is(http_status($r), 403, 'deny before auth_basic and auth_request');
is(hits('deny-basic'), 0, 'auth service not hit');

$t->done;
