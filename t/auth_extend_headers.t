#!/usr/bin/perl
# auth_request beyond the C module (issue 13 §1-3, §5): the opt-in
# directives auth_request_pass_status, auth_request_client_header,
# auth_request_upstream_header and auth_request_allow_status, with a real
# auth service (scripted through the client's X-Ctl-* headers, which
# auth_request passes on) and a real echo upstream, over HTTP/1.1, HEAD and
# HTTP/2.
#
#   * a listed status reaches the client with the auth response's Location,
#     Retry-After and WWW-Authenticate; the upstream is never asked; an
#     unlisted 3xx/4xx is still 500; error_page applies to a passed status;
#   * every auth response header named by auth_request_client_header, in
#     order, reaches the client on allow (with the upstream's answer), on
#     401, on 403 and with a passed status; never on a failure (500);
#   * auth_request_upstream_header: the client's copies (any case, "_" for
#     "-") never reach the upstream, also when the auth response has none
#     and when a satisfy any neighbour allowed without asking; the auth
#     response's values (all of them, in order) do;
#   * auth_request_allow_status: an unlisted 2xx is 500, logged.
# Module only: the C module has none of these directives.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;
$t->write_file('static/x', "PROTECTED\n");
$t->write_file('limited.html', "SLOW DOWN\n");

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        server_name localhost;
        underscores_in_headers on;

        location /auth/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }

        location /x/ {
            auth_request /auth/x;
            auth_request_pass_status 302 303 429;
            auth_request_client_header Set-Cookie;
            auth_request_client_header X-Auth-Note;
            auth_request_upstream_header X-User;
            auth_request_upstream_header X-Groups;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        # a static file, and error_page on a passed status
        location /static/ {
            auth_request /auth/static;
            auth_request_pass_status 302 429;
            auth_request_client_header Set-Cookie;
            error_page 429 /limited.html;
            root %%TESTDIR%%;
        }
        location = /limited.html {
            root %%TESTDIR%%;
        }

        # satisfy any: a neighbour that allows first; one that denies first
        location /sa-allow/ {
            satisfy any;
            allow all;
            auth_request /auth/sa-allow;
            auth_request_upstream_header X-User;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /sa-deny/ {
            satisfy any;
            deny all;
            auth_request /auth/sa-deny;
            auth_request_pass_status 302;
            auth_request_client_header Set-Cookie;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        # inherited, then replaced
        auth_request_upstream_header X-Server-Level;
        location /inherit/ {
            auth_request /auth/inherit;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        location /exact/ {
            auth_request /auth/exact;
            auth_request_allow_status 200 204;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        # no opt-in directive: exactly the C module
        location /plain/ {
            auth_request /auth/plain;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
    }
}
EOF

$t->run_auth_service(8081);
$t->run_echo_server(8082);
$t->run;

sub ctl { map { "X-Ctl-Hdr: $_" } @_ }
sub echo_hits { my @r = $t->requests('echo'); scalar @r }
sub last_echo { ($t->requests('echo'))[-1] }

###############################################################################
# auth_request_pass_status

$t->clear_requests('echo');
my $r = http_get('/x/a', headers => ['X-Ctl-Status: 302',
    ctl('Location: https://sso.example/start?rd=/x/a', 'Set-Cookie: csrf=1; Path=/')]);
is(http_status($r), 302, 'listed 302 reaches the client');
is(scalar http_header($r, 'Location'), 'https://sso.example/start?rd=/x/a', 'with its Location');
is_deeply([http_header($r, 'Set-Cookie')], ['csrf=1; Path=/'], 'and the client header');
like(http_body($r), qr/302 Found/, "nginx's own page as the body (not the auth service's)");
unlike($r, qr/AUTH-SERVICE-BODY/, 'the auth response body never reaches the client');
is(echo_hits(), 0, 'upstream never asked');

$r = http_get('/x/rel', headers => ['X-Ctl-Status: 303', ctl('Location: /signin?rd=%2Fx')]);
is(http_status($r), 303, 'listed 303');
like(scalar http_header($r, 'Location'), qr{^http://localhost(:\d+)?/signin\?rd=%2Fx$},
    'a relative Location is made absolute as nginx does for its own redirects');

$r = http_get('/x/b', headers => ['X-Ctl-Status: 429', ctl('Retry-After: 120', 'X-Other: no'),
    'X-Ctl-Www: Bearer error="rate"']);
is(http_status($r), 429, 'listed 429');
is(scalar http_header($r, 'Retry-After'), '120', 'with Retry-After');
is_deeply([http_header($r, 'WWW-Authenticate')], ['Bearer error="rate"'], 'and WWW-Authenticate');
is(scalar http_header($r, 'X-Other'), undef, 'other auth response headers stay behind');
is(scalar http_header($r, 'Location'), undef, 'no Location when the auth response has none');

for my $s (301, 307, 404, 503) {
    $r = http_get("/x/u$s", headers => ["X-Ctl-Status: $s", ctl('Location: /elsewhere', 'Set-Cookie: no=1')]);
    is(http_status($r), 500, "unlisted $s is still 500");
    is(scalar http_header($r, 'Set-Cookie'), undef, "no client header on a failure ($s)");
    is(scalar http_header($r, 'Location'), undef, "no Location on a failure ($s)");
}
ok($t->grep_log(qr/auth request unexpected status: 307/), 'unlisted status logged as by the C module');
is(echo_hits(), 0, 'upstream never asked');

$r = http_get('/x/head', method => 'HEAD', headers => ['X-Ctl-Status: 302', ctl('Location: https://sso.example/s')]);
is(http_status($r), 302, 'HEAD: 302 passed');
is(scalar http_header($r, 'Location'), 'https://sso.example/s', 'HEAD: Location');
is(http_body($r), '', 'HEAD: no body');

$r = http2_request('/x/h2', headers => ['X-Ctl-Status: 302',
    ctl('Location: https://sso.example/h2', 'Set-Cookie: a=1', 'Set-Cookie: b=2')]);
is(http_status($r), 302, 'HTTP/2: 302 passed');
is(scalar http_header($r, 'Location'), 'https://sso.example/h2', 'HTTP/2: Location');
is_deeply([http_header($r, 'Set-Cookie')], ['a=1', 'b=2'], 'HTTP/2: both cookies, in order');

# error_page applies to a passed status; its headers stay
$r = http_get('/static/x', headers => ['X-Ctl-Status: 429', ctl('Retry-After: 7', 'Set-Cookie: s=1')]);
is(http_status($r), 429, 'error_page 429 /page keeps the status');
is(http_body($r), "SLOW DOWN\n", 'error_page 429: the page');
is(scalar http_header($r, 'Retry-After'), '7', 'error_page 429: Retry-After kept');
is(scalar http_header($r, 'Set-Cookie'), 's=1', 'error_page 429: client header kept');

$r = http_get('/static/x', headers => ['X-Ctl-Status: 302', ctl('Location: https://sso.example/st')]);
is(http_status($r), 302, 'static: 302 passed');
is(scalar http_header($r, 'Location'), 'https://sso.example/st', 'static: Location');

# satisfy any: deny all refused first, auth_request's passed status is final
$r = http_get('/sa-deny/x', headers => ['X-Ctl-Status: 302', ctl('Location: https://sso.example/sa', 'Set-Cookie: sa=1')]);
is(http_status($r), 302, 'satisfy any after deny: the passed status');
is(scalar http_header($r, 'Location'), 'https://sso.example/sa', 'satisfy any: Location');
$r = http_get('/sa-deny/y', headers => [ctl('Set-Cookie: sa=2')]);
is(http_status($r), 200, 'satisfy any after deny: auth allows');
is(scalar http_header($r, 'Set-Cookie'), 'sa=2', 'satisfy any: client header on allow');
$r = http_get('/sa-deny/z', headers => ['X-Ctl-Status: 401', 'X-Ctl-Www: Basic realm="z"']);
is(http_status($r), 401, 'satisfy any: a 401 after deny all is 401, as without the directives');

###############################################################################
# auth_request_client_header

$t->clear_requests('echo');
$r = http_get('/x/allow', headers => [ctl('Set-Cookie: sid=1; HttpOnly', 'X-Auth-Note: n1',
    'Set-Cookie: refresh=2; Max-Age=60', 'X-User: alice')]);
is(http_status($r), 200, 'allow');
is(json_body($r)->{path}, '/x/allow', "the upstream's answer");
is_deeply([http_header($r, 'Set-Cookie')], ['sid=1; HttpOnly', 'refresh=2; Max-Age=60'],
    'every Set-Cookie of the auth response, in order, with the upstream answer');
is_deeply([http_header($r, 'X-Auth-Note')], ['n1'], 'the second named header too');
is(scalar http_header($r, 'X-User'), undef, 'an unnamed auth response header does not reach the client');

$r = http_get('/x/deny401', headers => ['X-Ctl-Status: 401', 'X-Ctl-Www: Basic realm="a"',
    ctl('Set-Cookie: gone=; Max-Age=0')]);
is(http_status($r), 401, 'deny with 401');
is_deeply([http_header($r, 'WWW-Authenticate')], ['Basic realm="a"'], '401: challenge as always');
is_deeply([http_header($r, 'Set-Cookie')], ['gone=; Max-Age=0'], '401: client header');

$r = http_get('/x/deny403', headers => ['X-Ctl-Status: 403', ctl('Set-Cookie: c=3')]);
is(http_status($r), 403, 'deny with 403');
is_deeply([http_header($r, 'Set-Cookie')], ['c=3'], '403: client header');

$r = http2_request('/x/h2allow', headers => [ctl('Set-Cookie: h=1', 'Set-Cookie: h=2')]);
is(http_status($r), 200, 'HTTP/2 allow');
is_deeply([http_header($r, 'Set-Cookie')], ['h=1', 'h=2'], 'HTTP/2: both cookies on allow');

$r = http_get('/x/headallow', method => 'HEAD', headers => [ctl('Set-Cookie: hd=1')]);
is(http_status($r), 200, 'HEAD allow');
is(scalar http_header($r, 'Set-Cookie'), 'hd=1', 'HEAD: client header');

$r = http_get('/static/x', headers => [ctl('Set-Cookie: st=1', 'Set-Cookie: st=2')]);
is(http_body($r), "PROTECTED\n", 'static file allowed');
is_deeply([http_header($r, 'Set-Cookie')], ['st=1', 'st=2'], 'static file: cookies');

###############################################################################
# auth_request_upstream_header

$t->clear_requests('echo');
$r = http_get('/x/up', headers => ['X-User: mallory', 'x-user: eve', 'X_User: trudy',
    'X-Groups: admin', ctl('X-User: alice', 'X-Groups: dev', 'X-Groups: ops')]);
is(http_status($r), 200, 'allowed');
my $e = last_echo();
is_deeply([AGTest::req_header($e, 'X-User')], ['alice'], 'the upstream gets the auth X-User only');
is_deeply([AGTest::req_header($e, 'X_User')], [], 'the underscore spelling is removed too');
is_deeply([AGTest::req_header($e, 'X-Groups')], ['dev', 'ops'], 'every value, in order');

$r = http_get('/x/none', headers => ['X-User: mallory', 'X_USER: eve', 'X-Groups: admin']);
is(http_status($r), 200, 'allowed without identity headers');
$e = last_echo();
is_deeply([AGTest::req_header($e, 'X-User')], [], 'client X-User removed although the auth response has none');
is_deeply([AGTest::req_header($e, 'X_User')], [], 'and X_USER');
is_deeply([AGTest::req_header($e, 'X-Groups')], [], 'and X-Groups');
my ($a) = grep { $_->{path} eq '/auth/x' } reverse $t->requests('auth');
is_deeply([AGTest::req_header($a, 'X-User')], [],
    'the auth service does not see the client copies either');

$r = http2_request('/x/h2up', headers => ['X-User: mallory', ctl('X-User: bob')]);
is(http_status($r), 200, 'HTTP/2 allowed');
is_deeply([AGTest::req_header(last_echo(), 'X-User')], ['bob'], 'HTTP/2: the auth X-User only');

$t->clear_requests('auth');
$r = http_get('/sa-allow/x', headers => ['X-User: mallory', 'X_User: eve', ctl('X-User: never')]);
is(http_status($r), 200, 'satisfy any, allow all');
is(scalar(my @q = $t->requests('auth')), 0, 'auth service not asked');
is_deeply([AGTest::req_header(last_echo(), 'X-User')], [], 'client X-User still removed');
is_deeply([AGTest::req_header(last_echo(), 'X_User')], [], 'client X_User still removed');

$r = http_get('/inherit/x', headers => ['X-Server-Level: forged', ctl('X-Server-Level: real')]);
is_deeply([AGTest::req_header(last_echo(), 'X-Server-Level')], ['real'], 'inherited from server');
$r = http_get('/x/noinherit', headers => ['X-Server-Level: client']);
is_deeply([AGTest::req_header(last_echo(), 'X-Server-Level')], ['client'],
    'a location with its own list replaces the inherited one');

###############################################################################
# auth_request_allow_status

for my $s (200, 204) {
    $r = http_get("/exact/$s", headers => ["X-Ctl-Status: $s"]);
    is(http_status($r), 200, "listed $s allows");
}
for my $s (201, 202, 206) {
    $r = http_get("/exact/$s", headers => ["X-Ctl-Status: $s"]);
    is(http_status($r), 500, "unlisted $s is 500");
}
ok($t->grep_log(qr/auth request status 202 is not in auth_request_allow_status/), 'logged');
is(http_status(http_get('/exact/401', headers => ['X-Ctl-Status: 401'])), 401, '401 as always');
is(http_status(http_get('/plain/202', headers => ['X-Ctl-Status: 202'])), 200, 'without it every 2xx allows');
is(http_status(http_get('/plain/302', headers => ['X-Ctl-Status: 302'])), 500, 'without pass_status a 302 is 500');
$r = http_get('/plain/c', headers => [ctl('Set-Cookie: p=1')]);
is(scalar http_header($r, 'Set-Cookie'), undef, 'without client_header no auth cookie');

$t->done;
