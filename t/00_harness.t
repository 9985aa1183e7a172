#!/usr/bin/perl
# Self-test of the harness and the backends (no module needed: nginx is
# started without load_module).  Proves the clients, the request log, body
# integrity through nginx (small, 2 MB via temp file, chunked, HTTP/2) and
# keep-alive parsing work before the auth_request suite relies on them.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new(no_module => 1);

$t->write_file('static.html', "STATIC\n");
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
        location = /static.html { root %%TESTDIR%%; }
        location /echo/ { proxy_pass http://127.0.0.1:%%PORT_8082%%; }
        location /auth/ { proxy_pass http://127.0.0.1:%%PORT_8081%%; }
        location = /ret { return 201 "ret\n"; }
    }
}
EOF2

$t->run_auth_service(8081);
$t->run_echo_server(8082);
$t->run;

ok($t->port(8080) != $t->port(8081), 'distinct ports');
is($t->port(8080), $t->port(8080), 'same token, same port');
like($t->read_file('nginx.conf'), qr/listen 127\.0\.0\.1:\d+;/, 'port expanded');

my $r = http_get('/static.html');
is(http_status($r), 200, 'static status');
is(http_body($r), "STATIC\n", 'static body');

$r = http_get('/ret');
is(http_status($r), 201, 'return');

# direct to the auth service
$r = http_get('/auth/401?www=Basic%20realm%3Da&www=Bearer&hdr=X-User:alice',
              port => $t->port(8081));
is(http_status($r), 401, 'auth service status from path');
is_deeply([http_header($r, 'WWW-Authenticate')], ['Basic realm=a', 'Bearer'],
          'repeated WWW-Authenticate in order');
is(http_header($r, 'X-User'), 'alice', 'hdr=');
like(http_body($r), qr/AUTH-SERVICE-BODY 401/, 'auth body');

$r = http_get('/auth/200', port => $t->port(8081),
              headers => ['X-Ctl-Status: 403', 'X-Ctl-Www: A', 'X-Ctl-Www: B']);
is(http_status($r), 403, 'status from request header');
is_deeply([http_header($r, 'www-authenticate')], ['A', 'B'], 'www from headers');

my @req = $t->requests('auth');
is(scalar @req, 2, 'auth service logged 2 requests');
is($req[0]{path}, '/auth/401', 'logged path');
is(AGTest::req_header($req[1], 'x-ctl-status'), '403', 'logged header');

# fail_first: the first N requests with a key fail (503 or as fail_with says)
my @st = map {
    http_status(http_get('/auth/200', port => $t->port(8081),
                         headers => ['X-Ctl-Fail-First: 2', 'X-Ctl-Fail-Key: k1']))
} 1 .. 3;
is_deeply(\@st, [503, 503, 200], 'fail_first=2: two 503s, then the normal answer');
$r = http_get('/auth/200?fail_first=1&fail_key=k2&fail_with=404', port => $t->port(8081));
is(http_status($r), 404, 'fail_with=404 in the query');
$r = http_get('/auth/200?fail_first=1&fail_key=k3&fail_with=drop', port => $t->port(8081));
is($r, '', 'fail_with=drop: closed without an answer');
$r = http_get('/auth/200?fail_first=1&fail_key=k3&fail_with=drop', port => $t->port(8081));
is(http_status($r), 200, 'fail_with=drop: then answered');
$t->clear_requests('auth');

# through nginx to the echo server
$r = http_get('/echo/x?a=1', headers => ['X-Test: yes', 'Cookie: c=1']);
is(http_status($r), 200, 'echo via proxy');
my $j = json_body($r);
is($j->{method}, 'GET', 'echo method');
is($j->{uri}, '/echo/x?a=1', 'echo uri');
ok((grep { lc $_->[0] eq 'x-test' && $_->[1] eq 'yes' } @{ $j->{headers} }), 'echo header');

for my $case ([small => 'hello'], [large => join('', map { chr(65 + $_ % 26) } 1 .. 2 * 1024 * 1024)]) {
    my ($name, $body) = @$case;
    for my $chunked (0, 1) {
        $r = http_post('/echo/post', $body, chunked => $chunked);
        $j = json_body($r);
        is($j->{body_length}, length $body, "$name body length (chunked=$chunked)");
        is($j->{body_md5}, md5_hex($body), "$name body md5 (chunked=$chunked)");
    }
    $r = http2_request('/echo/post', method => 'POST', body => $body);
    like($r, qr{^HTTP/2 200}, "$name h2 status");
    is(http_status($r), 200, "$name h2 parsed status");
    $j = json_body($r);
    is($j->{body_md5}, md5_hex($body), "$name h2 body md5");
}

# keep-alive / pipelining
$r = http("GET /static.html HTTP/1.1\r\nHost: a\r\n\r\n"
        . "GET /echo/2 HTTP/1.1\r\nHost: a\r\n\r\n"
        . "GET /static.html HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
my @rs = parse_responses($r);
is(scalar @rs, 3, 'three pipelined responses');
is_deeply([map { $_->{status} } @rs], [200, 200, 200], 'pipelined statuses');
is($rs[2]{body}, "STATIC\n", 'third body');

# keep-alive read with responses => N (no close)
$r = http("GET /static.html HTTP/1.1\r\nHost: a\r\n\r\n", responses => 1, timeout => 3);
is(http_body($r), "STATIC\n", 'responses => 1 returns without close');

# delay and drop
my $t0 = time;
$r = http_get('/auth/204?delay=0.3', port => $t->port(8081));
is(http_status($r), 204, '204 after delay');
$r = http_get('/auth/200?drop=1', port => $t->port(8081));
is($r, '', 'drop: no response');

# nginx -t
my ($rc, $out, $file) = $t->nginx_t(<<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server { listen 127.0.0.1:%%PORT_8080%%; bogus_directive on; }
}
EOF2
isnt($rc, 0, 'nginx -t fails');
like($out, qr/\[emerg\] unknown directive "bogus_directive" in \Q$file\E:5/, 'emerg with file:line');

# the backend as a standalone script (run_daemon with a program)
my $sp = $t->port(8085);
$t->run_daemon($^X, $t->root . '/t/backends/backend.pl', '--port', $sp,
               '--name', 'script', '--log', $t->testdir . '/script.requests');
ok($t->waitforsocket("127.0.0.1:$sp"), 'standalone backend script listens');
$r = http_get('/x/403?www=A', port => $sp);
is(http_status($r), 403, 'standalone backend script answers');
is(scalar $t->requests('script'), 1, 'standalone backend script logs');

$t->reload;
is(http_status(http_get('/static.html')), 200, 'after reload');

# expect_errors: declared [emerg] lines are tolerated, others are not
open my $fh, '>>', $t->testdir . '/error.log' or die;
print $fh "2000/01/01 00:00:00 [emerg] 1#1: harness self-test expected line\n";
close $fh;
ok(scalar(AGTest::_bad_log_lines($t)) == 1, 'undeclared [emerg] is flagged');
$t->expect_errors(qr/harness self-test expected line/);
ok(scalar(AGTest::_bad_log_lines($t)) == 0, 'declared [emerg] is tolerated');

$t->done;
