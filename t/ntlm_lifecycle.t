#!/usr/bin/perl
# ntlm: a binding ends when the upstream closes the connection, when it
# idles past ntlm_timeout, when it is the least recently used beyond
# "ntlm N", or on reload; the client's next request then opens a fresh
# upstream connection (and is challenged again). keepalive in the same
# upstream (either directive order) pools only unbound connections;
# balancers (hash, least_conn, either order) keep a bound client on its server.

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use lib 't/lib', 't/backends';
use AGTest;
use NtlmBackend;

my $t = AGTest->new->skip_unless_module;

$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    upstream app     { server 127.0.0.1:%%PORT_8081%%; ntlm; }
    upstream short   { server 127.0.0.1:%%PORT_8081%%; ntlm; ntlm_timeout 1s; }
    upstream small   { server 127.0.0.1:%%PORT_8081%%; ntlm 2; }
    upstream ka1     { server 127.0.0.1:%%PORT_8082%%; keepalive 4; ntlm; }
    upstream ka2     { server 127.0.0.1:%%PORT_8083%%; ntlm; keepalive 4; }
    upstream hashed  { hash $arg_k; server 127.0.0.1:%%PORT_8084%%; server 127.0.0.1:%%PORT_8085%%; ntlm; }
    upstream hashed2 { ntlm; server 127.0.0.1:%%PORT_8084%%; server 127.0.0.1:%%PORT_8085%%; hash $arg_k; }
    upstream lc      { least_conn; zone lc 64k; server 127.0.0.1:%%PORT_8084%%; server 127.0.0.1:%%PORT_8085%%; ntlm; }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location /app/    { proxy_pass http://app; }
        location /short/  { proxy_pass http://short; }
        location /small/  { proxy_pass http://small; }
        location /ka1/    { proxy_pass http://ka1; }
        location /ka2/    { proxy_pass http://ka2; }
        location /hashed/ { proxy_pass http://hashed; }
        location /hashed2/ { proxy_pass http://hashed2; }
        location /lc/     { proxy_pass http://lc; }
        location /next/   { proxy_pass http://hashed; proxy_next_upstream error timeout http_404; }
        location /mirrored/ { mirror /mirror; proxy_pass http://app; }
        location = /mirror { internal; proxy_pass http://app/mirror-copy; }
    }
}
EOF2

my $dir = $t->testdir;
for my $b ([b1 => 8081], [k1 => 8082], [k2 => 8083], [h1 => 8084], [h2 => 8085]) {
    $t->run_daemon(\&NtlmBackend::serve, port => $t->port($b->[1]), name => $b->[0],
                   state => "$dir/$b->[0].events");
    $t->waitforsocket($t->port($b->[1])) or die;
}
$t->run;
my $port = $t->port(8080);
my $ev = "$dir/b1.events";
*req = \&NtlmBackend::request;
*hdr = \&NtlmBackend::hdr;
sub bind_client {
    my ($uri, $tok) = @_;
    my $s = NtlmBackend::client($port);
    my $r = req($s, $uri, auth => "NTLM $tok");
    return ($s, hdr($r, 'X-Conn-Id'), $r);
}

# 4: the upstream closes an idle bound connection
# (the binding itself is checked on a connection the backend keeps: one it
# closes after 0.3 s idle may already be gone under valgrind)
my ($a, $ca) = bind_client('/app/', 'tokA');
is(hdr(req($a, '/app/'), 'X-Conn-Token'), 'tokA', 'bound');
close $a;
my ($a2, $ca2) = bind_client('/app/?close_after=0.3', 'tokA2');
ok(NtlmBackend::wait_close($ev, $ca2, 2), 'backend closed the idle bound connection');
sleep 0.2;
my $r = req($a2, '/app/?challenge=1');
is($r->{status}, 401, 'upstream closed: next request challenged again');
isnt(hdr($r, 'X-Conn-Id'), $ca2, 'on a fresh upstream connection');
is(hdr($r, 'X-Conn-Token'), '-', 'not authenticated');
$r = req($a2, '/app/', auth => 'NTLM tokA2b');
is(hdr(req($a2, '/app/'), 'X-Conn-Token'), 'tokA2b', 'binds again after new credentials');
close $a2;

# a bound connection that fails while in use: the request is retried on a
# fresh connection, the binding is dropped
my ($f, $cf) = bind_client('/app/', 'tokF');
$r = req($f, '/app/?drop_if_token=1');
is($r->{status}, 200, 'bound connection failed: request retried and served');
isnt(hdr($r, 'X-Conn-Id'), $cf, 'on a fresh connection');
is(hdr($r, 'X-Conn-Token'), '-', 'which is not authenticated');
is(req($f, '/app/?challenge=1')->{status}, 401, 'binding dropped: challenged again');
close $f;

# 4: client aborts while its request is in flight on the bound connection
my ($g, $cg) = bind_client('/app/', 'tokG');
syswrite($g, "GET /app/?delay=0.4 HTTP/1.1\r\nHost: a\r\n\r\n");
sleep 0.1;
close $g;
my $ta = time;
my $ge = NtlmBackend::wait_close($ev, $cg, 2);
ok($ge, 'client abort: bound connection closed');
ok($ge && $ge->{time} - $ta < 1, 'client abort: within a second');

# concurrent requests of one client (a mirror subrequest): the main request
# keeps the bound connection, the subrequest gets another one, which is
# closed if it carried credentials; nothing is shared
my ($m, $cm) = bind_client('/app/', 'tokM');
$r = req($m, '/mirrored/a');
is(hdr($r, 'X-Conn-Id'), $cm, 'mirror: main request on the bound connection');
is(hdr($r, 'X-Conn-Token'), 'tokM', 'mirror: authenticated');
$r = req($m, '/mirrored/b', auth => 'NTLM tokM');
is(hdr($r, 'X-Conn-Id'), $cm, 'mirror with credentials: main request on the bound connection');
sleep 0.3;
my @mirrored = grep { $_->{type} eq 'req' && $_->{id} != $cm } NtlmBackend::events($ev);
my ($last_mirror) = grep { $_->{sent} eq 'tokM' } reverse @mirrored;
ok($last_mirror, 'mirror subrequest with credentials went over another connection');
ok($last_mirror && NtlmBackend::wait_close($ev, $last_mirror->{id}, 1.5),
   'and that connection was closed, not kept');
is(hdr(req($m, '/app/'), 'X-Conn-Id'), $cm, 'mirror: the client is still bound to its connection');
close $m;

# 4: idle past ntlm_timeout
my ($s, $cs) = bind_client('/short/', 'tokS');
is(hdr(req($s, '/short/'), 'X-Conn-Id'), $cs, 'short timeout: bound');
my $t0 = time;
my $e = NtlmBackend::wait_close($ev, $cs, 3);
ok($e, 'ntlm_timeout: nginx closed the idle bound connection');
is($e && $e->{by}, 'peer', 'closed by nginx');
ok($e && $e->{time} - $t0 > 0.7, 'not before the timeout');
$r = req($s, '/short/?challenge=1');
is($r->{status}, 401, 'after the timeout: challenged again');
isnt(hdr($r, 'X-Conn-Id'), $cs, 'fresh upstream connection');
close $s;

# 5: eviction of the least recently used binding beyond "ntlm 2"
my ($e1, $ce1) = bind_client('/small/', 'tokE1');
my ($e2, $ce2) = bind_client('/small/', 'tokE2');
is(hdr(req($e1, '/small/'), 'X-Conn-Token'), 'tokE1', 'e1 used again: e2 is now least recently used');
my ($e3, $ce3) = bind_client('/small/', 'tokE3');
ok(NtlmBackend::wait_close($ev, $ce2, 2), 'third binding: the LRU one (e2) closed');
ok(!grep({ $_->{type} eq 'close' && ($_->{id} == $ce1 || $_->{id} == $ce3) } NtlmBackend::events($ev)),
   'the others stay open');
$r = req($e2, '/small/?challenge=1');
is($r->{status}, 401, 'evicted client: challenged again');
isnt(hdr($r, 'X-Conn-Id'), $ce2, 'evicted client: fresh connection');
is(hdr(req($e1, '/small/'), 'X-Conn-Token'), 'tokE1', 'e1 still bound');
is(hdr(req($e3, '/small/'), 'X-Conn-Token'), 'tokE3', 'e3 still bound');
close $_ for $e1, $e2, $e3;

# 6: keepalive in the same upstream, both orders
for my $k (['ka1', "$dir/k1.events"], ['ka2', "$dir/k2.events"]) {
    my ($name, $kev) = @$k;
    my $n = NtlmBackend::client($port);
    my $pooled = hdr(req($n, "/$name/"), 'X-Conn-Id');
    close $n;
    $n = NtlmBackend::client($port);
    is(hdr(req($n, "/$name/"), 'X-Conn-Id'), $pooled, "$name: keepalive pools unbound connections");
    my ($b, $cb) = bind_client("/$name/", "tok-$name");
    my %others;
    for (1 .. 4) {
        $r = req($n, "/$name/");
        $others{ hdr($r, 'X-Conn-Token') }++;
        isnt(hdr($r, 'X-Conn-Id'), $cb, "$name: unbound client never gets the bound connection");
    }
    is_deeply([keys %others], ['-'], "$name: unbound client never authenticated");
    is(hdr(req($b, "/$name/"), 'X-Conn-Id'), $cb, "$name: bound client keeps its connection");
    close $b;
    ok(NtlmBackend::wait_close($kev, $cb, 1.5), "$name: bound connection closed with its client, not pooled");
    for (1 .. 3) {
        my $o = NtlmBackend::client($port);
        is(hdr(req($o, "/$name/"), 'X-Conn-Token'), '-', "$name: new client after close: not authenticated");
        close $o;
    }
    close $n;
}

# balancers: a bound client stays on its server whatever the hash says
for my $name ('hashed', 'hashed2', 'lc') {
    my %servers;
    my $u = NtlmBackend::client($port);
    $servers{ hdr(req($u, "/$name/?k=$_"), 'X-Backend') }++ for 1 .. 12;
    close $u;
    is(scalar keys %servers, 2, "$name: unbound requests reach both servers");
    my ($b, $cb, $first) = bind_client("/$name/?k=1", "tok-$name");
    my $server = hdr($first, 'X-Backend');
    my (%bs, %bc);
    for (2 .. 12) {
        $r = req($b, "/$name/?k=$_");
        $bs{ hdr($r, 'X-Backend') }++;
        $bc{ hdr($r, 'X-Conn-Id') }++;
    }
    is_deeply([keys %bs], [$server], "$name: bound client stays on its server");
    is_deeply([keys %bc], [$cb], "$name: and on its connection");
    close $b;
}

# proxy_next_upstream on a bound connection: the retries end; the bound
# connection (response body unread) cannot be kept, so the binding ends
my ($nx, $cnx) = bind_client('/next/?k=1', 'tokN');
my $t1 = time;
$r = req($nx, '/next/?k=1&status=404', timeout => 5);
is($r && $r->{status}, 404, 'next_upstream http_404 on a bound connection: 404, retries end');
ok(time - $t1 < 3, 'promptly');
is(hdr(req($nx, '/next/?k=2'), 'X-Conn-Token'), '-', 'binding ended with the failed attempt');
close $nx;

# 3: reload - the old worker closes bound connections with their clients;
# the new worker's clients never see them
my ($r1, $cr1) = bind_client('/app/', 'tokR');
$t->reload;
my $sel = IO::Select->new($r1);
my $closed = 0;
if ($sel->can_read(5)) { my $buf; $closed = !sysread($r1, $buf, 100) }
ok($closed, 'reload: idle bound client connection closed by the old worker');
ok(NtlmBackend::wait_close($ev, $cr1, 2), 'reload: its bound upstream connection closed');
my $new = NtlmBackend::client($port);
is(hdr(req($new, '/app/'), 'X-Conn-Token'), '-', 'after reload: a new client is not authenticated');
close $new;

for my $f (map { "$dir/$_.events" } qw(b1 k1 k2 h1 h2)) {
    is(NtlmBackend::count($f, 'conflict'), 0, "no connection saw two tokens ($f)");
}
$t->done;
