#!/usr/bin/perl
# auth_request: what the subrequest is and what it does not touch.
#
# - it is a GET to the literal uri of the directive: no variables are
#   interpolated and a "?" is not split into arguments;
# - it carries the client's request headers, but no request body;
# - the client's body is neither read nor consumed: the main request can
#   still pass it on in full (small, buffered to a temp file, chunked, h2);
# - the auth response's body and headers never reach the client.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;

$t->write_file('protected.html', "PROTECTED\n");

$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        server_name localhost;
        client_body_buffer_size 1k;
        client_max_body_size 10m;

        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        # as above, but without the recommended body-suppressing directives
        location /rawauth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
        location /ret/ {
            return 204;
        }

        location = /static {
            auth_request /auth/200/static;
            alias %%TESTDIR%%/protected.html;
        }
        location = /literal-var {
            auth_request /auth/200/$uri;
            alias %%TESTDIR%%/protected.html;
        }
        location = /literal-query {
            # if the "?" were split, the service would see status=401
            auth_request /auth/200/q?status=401;
            alias %%TESTDIR%%/protected.html;
        }
        location = /subrequest-vars {
            auth_request /ret/x?a=1;
            auth_request_set $sr_uri $uri;
            auth_request_set $sr_args "[$args]";
            auth_request_set $sr_method $request_method;
            auth_request_set $sr_is_args "[$is_args]";
            add_header X-Sr-Uri $sr_uri always;
            add_header X-Sr-Args $sr_args always;
            add_header X-Sr-Method $sr_method always;
            add_header X-Sr-Is-Args $sr_is_args always;
            alias %%TESTDIR%%/protected.html;
        }
        location /proxy/ {
            auth_request /auth/200/proxy;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /proxy-raw/ {
            auth_request /rawauth/200/proxy-raw;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        # the body is read (to a temp file when large) by a first proxy_pass
        # whose 404 is redirected, keeping POST, into a named location that
        # checks auth: the auth subrequest must neither send nor spoil it
        location = /pre-read {
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
            proxy_set_header X-Echo-Ctl-Status 404;
            proxy_intercept_errors on;
            error_page 404 = @after-read;
        }
        location @after-read {
            auth_request /auth/200/after-read;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location = /pre-read-raw {
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
            proxy_set_header X-Echo-Ctl-Status 404;
            proxy_intercept_errors on;
            error_page 404 = @after-read-raw;
        }
        location @after-read-raw {
            auth_request /rawauth/200/after-read-raw;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        location = /deny-with-body {
            auth_request /auth/401/deny-with-body;
            alias %%TESTDIR%%/protected.html;
        }
        location = /forbid-with-body {
            auth_request /auth/403/forbid-with-body;
            alias %%TESTDIR%%/protected.html;
        }
    }
}
EOF2

$t->run_auth_service(8081, body_timeout => 0.5);
$t->run_echo_server(8082);
$t->run;

sub auth_reqs {
    my ($re) = @_;
    return grep { $_->{path} =~ $re } $t->requests('auth');
}

###############################################################################
# method and uri

for my $m (qw(GET HEAD POST PUT DELETE)) {
    $t->clear_requests('auth');
    my $r = $m eq 'POST' || $m eq 'PUT'
        ? http_post('/proxy/m', 'abc', method => $m)
        : http_get('/proxy/m', method => $m);
    is(http_status($r), 200, "$m: allowed");
    is((json_body($r) // {})->{method}, $m, "$m: protected upstream got $m") unless $m eq 'HEAD';
    my @a = auth_reqs(qr{^/auth/200/proxy$});
    is(scalar @a, 1, "$m: one auth subrequest");
    is($a[0]{method}, 'GET', "$m: the subrequest is a GET");
}

$t->clear_requests('auth');
my $r = http_get('/literal-var');
is(http_status($r), 200, 'variable-looking uri: allowed');
my @a = $t->requests('auth');
is($a[0]{path}, '/auth/200/$uri', 'uri is literal, "$uri" not interpolated');

$t->clear_requests('auth');
$r = http_get('/literal-query?status=403');
is(http_status($r), 200, 'literal "?" in the uri: not split, still 200');
@a = $t->requests('auth');
is($a[0]{uri}, '/auth/200/q%3Fstatus=401', 'the "?" is part of the path (escaped by proxy)');
is($a[0]{query}, '', 'subrequest has no arguments');

$r = http_get('/subrequest-vars?client=1');
is(http_status($r), 200, 'auth location with return 204: allowed');
is(http_header($r, 'X-Sr-Uri'), '/ret/x?a=1', '$uri in the subrequest is the literal uri');
is(http_header($r, 'X-Sr-Args'), '[]', '$args in the subrequest is empty (not split, not inherited)');
is(http_header($r, 'X-Sr-Is-Args'), '[]', '$is_args in the subrequest is empty');
is(http_header($r, 'X-Sr-Method'), 'GET', '$request_method in the subrequest is GET');
$r = http_post('/subrequest-vars', 'x');
# $request_method always reports the main request's method (r->main), even
# though the subrequest itself is sent upstream as GET
is(http_header($r, 'X-Sr-Method'), 'POST', '$request_method in the subrequest of a POST is the main request\'s');

###############################################################################
# request headers are passed, body is not

$t->clear_requests('auth');
$r = http_post('/proxy/hdrs', 'secret-body-data',
               headers => ['X-Custom: custom-value', 'Cookie: session=abc; other=1',
                           'X-Multi: one', 'X-Multi: two']);
is(http_status($r), 200, 'POST with headers: 200');
@a = $t->requests('auth');
is(scalar @a, 1, 'one auth request');
is(AGTest::req_header($a[0], 'X-Custom'), 'custom-value', 'custom header reaches the auth service');
is(AGTest::req_header($a[0], 'Cookie'), 'session=abc; other=1', 'Cookie reaches the auth service');
is_deeply([AGTest::req_header($a[0], 'X-Multi')], ['one', 'two'], 'repeated header: all values, in order');
is($a[0]{body_length}, 0, 'no body sent to the auth service');
ok(!defined AGTest::req_header($a[0], 'Content-Length'), 'no Content-Length with proxy_set_header Content-Length ""');
ok(!defined AGTest::req_header($a[0], 'Transfer-Encoding'), 'no Transfer-Encoding');

# Without proxy_pass_request_body off / Content-Length "": the subrequest
# copies the client's headers, so the upstream sees the client's
# Content-Length, but the (fake, empty) subrequest body is never sent.
$t->clear_requests('auth');
$t->clear_requests('echo');
$r = http_post('/proxy-raw/x', 'raw-body-0123456789');
is(http_status($r), 200, 'auth location without body directives: still allowed');
@a = $t->requests('auth');
is(AGTest::req_header($a[0], 'Content-Length'), '19', 'auth upstream sees the client Content-Length header');
is($a[0]{body_length}, 0, '... but receives no body bytes');
my $j = json_body($r) // {};
is($j->{body_md5}, md5_hex('raw-body-0123456789'), 'main request still passes the full body');

###############################################################################
# the client body is not consumed: a later proxy_pass receives all of it

my $small = 'small-body-' . join('', 0 .. 9);
my $large = join '', map { sprintf "%07d\n", $_ } 0 .. (2 * 1024 * 1024 / 8);   # ~2 MB

for my $case (
    ['small', $small, 0],
    ['small chunked', $small, 1],
    ['large (temp file)', $large, 0],
    ['large chunked (temp file)', $large, 1],
) {
    my ($name, $body, $chunked) = @$case;
    $t->clear_requests('auth');
    $t->clear_requests('echo');
    $r = http_post('/proxy/body?x=1', $body, chunked => $chunked, chunk_size => 1000);
    is(http_status($r), 200, "$name: 200");
    $j = json_body($r) // {};
    is($j->{method}, 'POST', "$name: echo got the POST");
    is($j->{uri}, '/proxy/body?x=1', "$name: echo got the uri");
    is($j->{body_length}, length $body, "$name: echo got the full body length");
    is($j->{body_md5}, md5_hex($body), "$name: echo got the body intact");
    @a = $t->requests('auth');
    is(scalar @a, 1, "$name: auth service hit once");
    is($a[0]{body_length}, 0, "$name: auth service got no body");
    is($a[0]{method}, 'GET', "$name: auth service got a GET");
}

ok($t->grep_log(qr/a client request body is buffered to a temporary file/),
   'large body was buffered to a temporary file');

for my $case (['small', $small], ['large', $large]) {
    my ($name, $body) = @$case;
    $t->clear_requests('auth');
    $r = http2_request('/proxy/h2', method => 'POST', body => $body,
                       headers => ['X-H2: yes']);
    like($r, qr{^HTTP/2 200}, "h2 $name: 200");
    $j = json_body($r) // {};
    is($j->{body_length}, length $body, "h2 $name: echo got the full body length");
    is($j->{body_md5}, md5_hex($body), "h2 $name: echo got the body intact");
    @a = $t->requests('auth');
    is(scalar @a, 1, "h2 $name: auth service hit once");
    is($a[0]{method}, 'GET', "h2 $name: auth subrequest is a GET");
    is($a[0]{body_length}, 0, "h2 $name: auth service got no body");
    is(AGTest::req_header($a[0], 'X-H2'), 'yes', "h2 $name: client header reaches the auth service");
}

###############################################################################
# body already read before the access phase (named location after an
# intercepted upstream error): auth subrequests get a fake empty body

for my $case (['small', $small], ['large', $large]) {
    my ($name, $body) = @$case;
    for my $loc ('/pre-read', '/pre-read-raw') {
        $t->clear_requests('auth');
        $t->clear_requests('echo');
        $r = http_post($loc, $body);
        is(http_status($r), 200, "$loc $name: 200");
        $j = json_body($r) // {};
        is($j->{method}, 'POST', "$loc $name: method kept");
        is($j->{body_md5}, md5_hex($body), "$loc $name: already-read body passed on intact");
        my @e = $t->requests('echo');
        is(scalar @e, 2, "$loc $name: echo hit twice (404, then after auth)");
        @a = $t->requests('auth');
        is(scalar @a, 1, "$loc $name: auth service hit once");
        is($a[0]{body_length}, 0, "$loc $name: auth service got no body");
    }
}

###############################################################################
# the auth response body and headers never reach the client

$r = http_get('/static');
is(http_body($r), "PROTECTED\n", 'allowed: body is exactly the protected content');
unlike($r, qr/AUTH-SERVICE-BODY/, 'allowed: auth body not leaked');
ok(!defined http_header($r, 'X-Backend'), 'allowed: auth response headers not leaked');

$r = http_get('/static', headers => ['X-Ctl-Bodylen: 100000']);
is(http_status($r), 200, 'allowed with a large auth body: 200');
is(http_body($r), "PROTECTED\n", 'large auth body not leaked');

$r = http_get('/proxy/x');
is(http_header($r, 'X-Backend'), 'echo', 'proxied: only the protected upstream\'s headers');
is(scalar(() = http_header($r, 'X-Backend')), 1, 'proxied: X-Backend appears once');

$r = http_get('/deny-with-body', headers => ['X-Ctl-Hdr: X-Leak: yes']);
is(http_status($r), 401, '401: status');
unlike($r, qr/AUTH-SERVICE-BODY/, '401: auth body not leaked');
unlike($r, qr/X-Leak|X-Backend/i, '401: auth headers other than WWW-Authenticate not leaked');

$r = http_get('/forbid-with-body', headers => ['X-Ctl-Www: Basic realm="x"']);
is(http_status($r), 403, '403: status');
unlike($r, qr/AUTH-SERVICE-BODY/, '403: auth body not leaked');
ok(!defined http_header($r, 'WWW-Authenticate'), '403: WWW-Authenticate not copied');

$t->done;
