#!/usr/bin/perl
# ntlm with a TLS upstream (proxy_pass https://): the bound TLS connection
# is reused as is, never shared; and with HTTP/2 clients, whose concurrent
# streams cannot follow one upstream connection: their requests are never
# bound, and an upstream connection that carried their credentials is
# closed after the response (never pooled, never reused by anyone).

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use lib 't/lib', 't/backends';
use AGTest;
use NtlmBackend;

my $t = AGTest->new->skip_unless_module;
$t->skip_unless_nginx('1.25.1', '"http2 on;"');
my $dir = $t->testdir;

system("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 2 "
     . "-keyout $dir/backend.key -out $dir/backend.crt >/dev/null 2>&1") == 0
    or plan(skip_all => 'openssl cannot make a certificate');

$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    upstream tls   { server 127.0.0.1:%%PORT_8081%%; ntlm; }
    upstream plain { server 127.0.0.1:%%PORT_8082%%; keepalive 8; ntlm; }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        location /tls/ { proxy_pass https://tls; proxy_ssl_session_reuse on; }
        location /h/   { proxy_pass http://plain; }
    }
}
EOF2

$t->run_daemon(\&NtlmBackend::serve, port => $t->port(8081), name => 'tls',
               state => "$dir/tls.events", ssl_cert => "$dir/backend.crt",
               ssl_key => "$dir/backend.key");
$t->run_daemon(\&NtlmBackend::serve, port => $t->port(8082), name => 'plain',
               state => "$dir/plain.events");
$t->waitforsocket($t->port($_)) or die for 8081, 8082;
$t->run;
my $port = $t->port(8080);
*req = \&NtlmBackend::request;
*hdr = \&NtlmBackend::hdr;

# 7: TLS upstream
my $a = NtlmBackend::client($port);
my $r = req($a, '/tls/', auth => 'NTLM tokT');
is($r->{status}, 200, 'tls: 200');
is(hdr($r, 'X-Conn-Token'), 'tokT', 'tls: token seen over TLS');
my $ca = hdr($r, 'X-Conn-Id');
for (1 .. 3) {
    $r = req($a, "/tls/?i=$_");
    is(hdr($r, 'X-Conn-Id'), $ca, "tls: request $_ reuses the bound TLS connection");
    is(hdr($r, 'X-Conn-Token'), 'tokT', "tls: request $_ authenticated");
}
my @rs = NtlmBackend::send_requests($a, "GET /tls/1 HTTP/1.1\r\nHost: a\r\n\r\n" x 3, 3);
is_deeply([map { hdr($_, 'X-Conn-Token') } @rs], [('tokT') x 3], 'tls: pipelined on the bound connection');
my $b = NtlmBackend::client($port);
for (1 .. 2) {
    $r = req($b, '/tls/');
    is($r->{status}, 200, "tls: other client $_: 200");
    is(hdr($r, 'X-Conn-Token'), '-', "tls: other client $_: not authenticated");
    isnt(hdr($r, 'X-Conn-Id'), $ca, "tls: other client $_: another connection");
}
close $b;
my %tls_conns = map { $_->{id} => 1 } grep { $_->{type} eq 'req' } NtlmBackend::events("$dir/tls.events");
# before 1.29.7, no keepalive here: one connection per unbound request; since,
# nginx's default keepalive may serve both unbound requests on one connection
if ($t->nginx_version >= 1029007) {
    ok(keys %tls_conns >= 2 && keys %tls_conns <= 3, 'tls: the bound connection plus default-keepalive ones');
} else {
    is(scalar keys %tls_conns, 3, 'tls: one connection for the bound client, one per unbound request');
}
close $a;
my $e = NtlmBackend::wait_close("$dir/tls.events", $ca, 1.5);
ok($e, 'tls: client closed -> bound TLS connection closed');

# 8: HTTP/2 clients (one h2c connection, several streams)
my $pev = "$dir/plain.events";
sub h2 { my ($concurrent, @reqs) = @_; return NtlmBackend::h2_requests($port, \@reqs, concurrent => $concurrent) }
my @h = h2(0, ['/h/1', 'NTLM tokH'], ['/h/2', undef], ['/h/3', 'Negotiate tokH2'], ['/h/4', undef]);
is(scalar(grep { $_->{status200} } @h), 4, 'h2: four streams served on one connection');
my @c = map { [NtlmBackend::body_conn($_->{body})] } @h;
is($c[0][1], 'tokH', 'h2: credentials reach the upstream');
is($c[1][1], '-', 'h2: the next stream is not bound');
is($c[2][1], 'tokH2', 'h2: Negotiate reaches the upstream');
is($c[3][1], '-', 'h2: and does not bind either');
isnt($c[1][0], $c[0][0], 'h2: the next stream uses another upstream connection');
for my $i (0, 2) {
    my $ce = NtlmBackend::wait_close($pev, $c[$i][0], 1.5);
    ok($ce && $ce->{by} eq 'peer', "h2: connection that carried credentials (stream $i) closed by nginx");
}
ok($t->grep_log(qr/\[info\].*instead of binding it: the client uses HTTP\/2 or HTTP\/3/),
   'h2: [info] says why credentials do not bind');
# those connections never come back through keepalive
for (1 .. 4) {
    my $x = NtlmBackend::client($port);
    is(hdr(req($x, '/h/'), 'X-Conn-Token'), '-', "h1 client $_ after h2: not authenticated");
    close $x;
}
@h = h2(1, map { ['/h/x', undef] } 1 .. 3);
is_deeply([map { (NtlmBackend::body_conn($_->{body}))[1] } @h], [('-') x 3],
          'h2 without credentials: unauthenticated');

# concurrent streams and connections with credentials: served, nothing
# shared, no crash
my @pids;
for my $i (1 .. 5) {
    my $pid = fork();
    if ($pid == 0) {
        my @x = h2(1, map { ["/h/c$i-$_?delay=0.05", "NTLM tokC$i"] } 1 .. 4);
        exit((grep { ((NtlmBackend::body_conn($_->{body}))[1] // '') ne "tokC$i" } @x) || @x != 4 ? 1 : 0);
    }
    push @pids, $pid;
}
my $fails = 0;
for (@pids) { waitpid($_, 0); $fails++ if $? }
is($fails, 0, 'h2: concurrent streams with credentials all see their own token');
is(NtlmBackend::count($pev, 'conflict'), 0, 'h2: no upstream connection saw two tokens');
is(NtlmBackend::count("$dir/tls.events", 'conflict'), 0, 'tls: no upstream connection saw two tokens');

$t->done;
