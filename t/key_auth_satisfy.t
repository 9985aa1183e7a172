#!/usr/bin/perl
# key_auth together with auth_request, allow/deny and satisfy, and with
# error_page. Order: nginx's allow/deny and auth_basic, then key_auth, then
# auth_request.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;
$t->skip_unless_directives('auth_request /x;');

$t->write_file('err401.html', "CUSTOM 401 PAGE\n");
$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_consumers {
        jack key=jack-key credential=cred-jack;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location = /auth/200 { internal; proxy_pass http://127.0.0.1:%%PORT_8081%%; }
        location = /auth/401 { internal; proxy_pass http://127.0.0.1:%%PORT_8081%%; }
        location = /auth/403 { internal; proxy_pass http://127.0.0.1:%%PORT_8081%%; }

        location /all-200/ {
            key_auth on;
            auth_request /auth/200;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /all-403/ {
            key_auth on;
            auth_request /auth/403;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /any-allow/ {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /any-deny/ {
            satisfy any;
            deny all;
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /any-auth401/ {
            satisfy any;
            key_auth on;
            auth_request /auth/401;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /any-auth200/ {
            satisfy any;
            key_auth on;
            auth_request /auth/200;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /all-deny/ {
            deny all;
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /errpage/ {
            key_auth on;
            error_page 401 /err401.html;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location = /err401.html { root %%TESTDIR%%; }
    }
}
EOF2
$t->run_auth_service(8081);
$t->run_echo_server(8082);
$t->run;

sub nreq { my @r = $t->requests($_[0]); return scalar @r }

my $MISSING = '{"message":"Missing API key found in request"}';

sub hdrs {
    my ($j, $name) = @_;
    return [map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ $j->{headers} || [] }];
}

# satisfy all: key_auth first; the auth service is only asked for known keys
$t->clear_requests('auth');
my $r = http_get('/all-200/x');
is(http_status($r), 401, 'all: no key: 401');
is(http_body($r), $MISSING, 'all: JSON body');
is(nreq('auth'), 0, 'all: auth service not asked after key_auth refused');

$r = http_get('/all-200/x', headers => ['apikey: jack-key', 'X-Consumer-Username: forged']);
is(http_status($r), 200, 'all: key + auth 200: allowed');
my @auth = $t->requests('auth');
is(scalar @auth, 1, 'all: auth service asked once');
is(AGTest::req_header($auth[0], 'X-Consumer-Username'), 'jack',
   'the auth subrequest sees the consumer key_auth identified');
is_deeply(hdrs(json_body($r), 'X-Consumer-Username'), ['jack'], 'upstream sees jack');

$r = http_get('/all-403/x', headers => ['apikey: jack-key']);
is(http_status($r), 403, 'all: key ok, auth 403: 403');

$r = http_get('/all-deny/x', headers => ['apikey: jack-key']);
is(http_status($r), 403, 'all: deny runs before key_auth');

# satisfy any
$r = http_get('/any-allow/x', headers => ['X-Consumer-Username: forged']);
is(http_status($r), 200, 'any: allow lets a keyless request in');
is(http_header($r, 'WWW-Authenticate'), undef, 'any: our challenge is hidden when allowed');
my $j = json_body($r);
is_deeply(hdrs($j, 'X-Consumer-Username'), [], 'any: forged consumer header still removed');

$r = http_get('/any-deny/x');
is(http_status($r), 401, 'any: deny + no key: 401 (401 wins over 403)');
is(http_body($r), $MISSING, 'any: JSON body');
is(http_header($r, 'Content-Type'), 'application/json', 'any: content type');
$r = http_get('/any-deny/x', headers => ['apikey: jack-key']);
is(http_status($r), 200, 'any: deny + valid key: allowed');

$r = http_get('/any-auth401/x', headers => ['apikey: wrong']);
is(http_status($r), 401, 'any: key wrong and auth 401: 401');
is(http_body($r), '{"message":"Invalid API key in request"}', 'any: key_auth\'s JSON body');
$t->clear_requests('auth');
$r = http_get('/any-auth401/x', headers => ['apikey: jack-key']);
is(http_status($r), 200, 'any: valid key is enough');
is(nreq('auth'), 0, 'any: auth service not asked once key_auth allowed');
$r = http_get('/any-auth200/x');
is(http_status($r), 200, 'any: no key but auth 200: allowed');
is(http_header($r, 'WWW-Authenticate'), undef, 'any: challenge hidden');

# error_page 401 takes over
$r = http_get('/errpage/x');
is(http_status($r), 401, 'error_page: status');
is(http_body($r), "CUSTOM 401 PAGE\n", 'error_page: the configured page, not our JSON');

$t->done;
