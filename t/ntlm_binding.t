#!/usr/bin/perl
# ntlm: a client connection that sent NTLM/Negotiate credentials keeps its
# upstream connection for every later request (sequential and pipelined),
# with or without Authorization; other clients never get it; requests
# without credentials behave as without ntlm.

use strict;
use warnings;
use Test::More;
use lib 't/lib', 't/backends';
use AGTest;
use NtlmBackend;

my $t = AGTest->new->skip_unless_module;

$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    upstream app {
        server 127.0.0.1:%%PORT_8081%%;
        ntlm;
    }
    upstream plain {
        server 127.0.0.1:%%PORT_8081%%;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /plain/ {
            proxy_pass http://plain;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /http10/ {
            proxy_pass http://app;
            proxy_http_version 1.0;
        }
        location /default-version/ {
            proxy_pass http://app;
        }
    }
}
EOF2

my $events = $t->testdir . '/b.events';
$t->run_daemon(\&NtlmBackend::serve, port => $t->port(8081), name => 'b', state => $events);
$t->waitforsocket($t->port(8081)) or die;
$t->run;
my $port = $t->port(8080);
*req = \&NtlmBackend::request;
*hdr = \&NtlmBackend::hdr;

# 1, 2: sequential keep-alive requests on one client connection
my $a = NtlmBackend::client($port);
my $r = req($a, '/x', auth => 'NTLM tokA');
is($r->{status}, 200, 'credentials: 200');
is(hdr($r, 'X-Conn-Token'), 'tokA', 'backend saw the token');
my $conn = hdr($r, 'X-Conn-Id');
for my $i (1 .. 5) {
    $r = req($a, "/x?i=$i");
    is(hdr($r, 'X-Conn-Id'), $conn, "request $i without Authorization: same upstream connection");
    is(hdr($r, 'X-Conn-Token'), 'tokA', "request $i: authenticated connection");
}
$r = req($a, '/y', auth => 'Basic dXNlcjpwYXNz');
is(hdr($r, 'X-Conn-Id'), $conn, 'other Authorization on a bound client: same connection');

# a second client: never that connection
my $b = NtlmBackend::client($port);
for my $i (1 .. 3) {
    $r = req($b, "/b?i=$i");
    isnt(hdr($r, 'X-Conn-Id'), $conn, "other client request $i: another upstream connection");
    is(hdr($r, 'X-Conn-Token'), '-', "other client request $i: not authenticated");
}
# and a second client with its own credentials gets its own binding
$r = req($b, '/b', auth => 'Negotiate tokB');
my $conn_b = hdr($r, 'X-Conn-Id');
isnt($conn_b, $conn, 'second binding: its own connection');
is(hdr($r, 'X-Conn-Token'), 'tokB', 'second binding: own token');
is(hdr(req($b, '/b2'), 'X-Conn-Token'), 'tokB', 'second client stays on its binding');
is(hdr(req($a, '/a2'), 'X-Conn-Token'), 'tokA', 'first client stays on its binding');

# pipelined requests on a bound client
my @rs = NtlmBackend::send_requests($a,
    join('', map { "GET /p$_ HTTP/1.1\r\nHost: a\r\n\r\n" } 1 .. 4), 4);
is(scalar @rs, 4, 'four pipelined responses');
is_deeply([map { hdr($_, 'X-Conn-Id') } @rs], [($conn) x 4], 'pipelined: all on the bound connection');
is_deeply([map { hdr($_, 'X-Conn-Token') } @rs], [('tokA') x 4], 'pipelined: all authenticated');

# pipelined: credentials in the first request bind for the following ones
my $p = NtlmBackend::client($port);
@rs = NtlmBackend::send_requests($p,
    "GET /q1 HTTP/1.1\r\nHost: a\r\nAuthorization: ntlm tokP\r\n\r\n"
    . join('', map { "GET /q$_ HTTP/1.1\r\nHost: a\r\n\r\n" } 2 .. 4), 4);
is_deeply([map { hdr($_, 'X-Conn-Token') } @rs], [('tokP') x 4], 'pipelined binding from the first request');
my %ids = map { hdr($_, 'X-Conn-Id') => 1 } @rs;
is(scalar keys %ids, 1, 'pipelined binding: one upstream connection');
close $p;

# the NTLM two-leg handshake completes through nginx
my $h = NtlmBackend::client($port);
$r = req($h, '/h?challenge=1');
is($r->{status}, 401, 'anonymous: challenged');
$r = req($h, '/h', auth => 'NTLM T1-alice');
is($r->{status}, 401, 'type 1: challenge');
my ($challenge) = hdr($r, 'WWW-Authenticate') =~ /NTLM (C-\d+)/;
ok($challenge, 'challenge received');
$r = req($h, '/h', auth => "NTLM T3-alice-$challenge");
is($r->{status}, 200, 'type 3 on the same upstream connection: authenticated');
$r = req($h, '/h?challenge=1');
is($r->{status}, 200, 'later request without Authorization: still authenticated');
is(hdr($r, 'X-Conn-Token'), 'alice', 'as alice');
close $h;

# nginx 1.29.7 and later keep idle connections of every explicit upstream
# block without being asked ("keepalive 32 local" by default) and speak
# HTTP/1.1 to upstreams by default. ntlm sits outside that pool: a
# connection that carried credentials never reaches it.
my $default_keepalive = $t->nginx_version >= 1029007;

# 6: requests without credentials behave as without ntlm: before 1.29.7 (no
# keepalive here) one upstream connection per request, closed afterwards;
# since, they may come from nginx's default pool, never authenticated
my $n = NtlmBackend::client($port);
my (%seen, @tokens);
for my $i (1 .. 3) {
    $r = req($n, "/n?i=$i");
    $seen{ hdr($r, 'X-Conn-Id') }++;
    push @tokens, hdr($r, 'X-Conn-Token');
}
if ($default_keepalive) {
    cmp_ok(scalar keys %seen, '<=', 3, 'without credentials (nginx >= 1.29.7): default keepalive may reuse');
} else {
    is(scalar keys %seen, 3, 'without credentials and without keepalive: a new connection each time');
}
is_deeply(\@tokens, [('-') x 3], 'without credentials: never an authenticated connection');
close $n;

# other schemes do not bind
for my $auth ('Basic dXNlcjpwYXNz', 'Bearer tok') {
    my $c = NtlmBackend::client($port);
    my $first = hdr(req($c, '/o', auth => $auth), 'X-Conn-Id');
    my $second = req($c, '/o');
    # since 1.29.7 the same unbound connection may come back from nginx's
    # default keepalive pool; unauthenticated is what proves "not bound"
    isnt(hdr($second, 'X-Conn-Id'), $first, "'$auth' does not bind") unless $default_keepalive;
    is(hdr($second, 'X-Conn-Token'), '-', "'$auth': next request unauthenticated");
    close $c;
}

# the scheme name alone binds, whatever follows it (t/seams_ntlm.t has more)
for my $auth ('NTLM', 'NTLMSSP tok', 'Negotiated tok') {
    my $c = NtlmBackend::client($port);
    my $first = hdr(req($c, '/o', auth => $auth), 'X-Conn-Id');
    is(hdr(req($c, '/o'), 'X-Conn-Id'), $first, "'$auth' binds");
    close $c;
}

# credentials over a connection nginx cannot keep (HTTP/1.0 upstream): the
# connection is closed, the client is not bound, nothing is reused
my $z = NtlmBackend::client($port);
$r = req($z, '/http10/', auth => 'NTLM tokZ');
my $zc = hdr($r, 'X-Conn-Id');
ok(NtlmBackend::wait_close($events, $zc, 2), 'not keepable: upstream connection closed');
$r = req($z, '/http10/');
is(hdr($r, 'X-Conn-Token'), '-', 'not keepable: next request unauthenticated');
ok($t->grep_log(qr/\[info\].*ntlm: closing the upstream connection that carried NTLM\/Negotiate credentials instead of binding it: the upstream connection cannot be kept/),
   'not keepable: [info] says why');
close $z;

# without proxy_http_version: HTTP/1.0 to the upstream before nginx 1.29.7
# (cannot keep: closed), HTTP/1.1 since (bound like any keepable connection)
my $d = NtlmBackend::client($port);
$r = req($d, '/default-version/', auth => 'NTLM tokD');
my $dc = hdr($r, 'X-Conn-Id');
$r = req($d, '/default-version/');
if ($default_keepalive) {
    is(hdr($r, 'X-Conn-Id'), $dc, 'default proxy_http_version (nginx >= 1.29.7): bound');
    is(hdr($r, 'X-Conn-Token'), 'tokD', 'default proxy_http_version (nginx >= 1.29.7): authenticated');
} else {
    ok(NtlmBackend::wait_close($events, $dc, 2), 'default proxy_http_version (HTTP/1.0): closed');
    is(hdr($r, 'X-Conn-Token'), '-', 'default proxy_http_version (HTTP/1.0): not bound');
}
my $other = NtlmBackend::client($port);
is(hdr(req($other, '/default-version/'), 'X-Conn-Token'), '-', 'default proxy_http_version: another client never gets it');
close $other;
close $d;

# a request body goes over the bound connection, which stays bound
my $body = 'x' x 5000;
@rs = NtlmBackend::send_requests($a, "POST /post HTTP/1.1\r\nHost: a\r\nContent-Length: "
    . length($body) . "\r\n\r\n$body", 1);
is(hdr($rs[0], 'X-Conn-Id'), $conn, 'POST with a body: on the bound connection');
is(hdr(req($a, '/after-post'), 'X-Conn-Id'), $conn, 'still bound after the POST');

# 4: the client closes -> its bound upstream connection is closed within 1 s
close $a;
my $t0 = time;
my $e = NtlmBackend::wait_close($events, $conn, 1.5);
ok($e, 'client closed: bound upstream connection closed');
is($e && $e->{by}, 'peer', 'closed by nginx');
ok($e && $e->{time} - $t0 < 1, 'within a second');
close $b;
ok(NtlmBackend::wait_close($events, $conn_b, 1.5), 'second client closed: its connection closed');

is(NtlmBackend::count($events, 'conflict'), 0, 'no connection ever saw two tokens');
$t->done;
