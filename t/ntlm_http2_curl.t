#!/usr/bin/perl
# ntlm and HTTP/2 clients (issue 14 §9), with curl.
#
# nginx's HTTP/2 code gives a module no way to reset a stream with
# HTTP_1_1_REQUIRED (0xd): the one exported reset, ngx_http_v2_close_stream(),
# always sends INTERNAL_ERROR (PROTOCOL_ERROR after a timeout), and the
# functions that take an error code (ngx_http_v2_send_rst_stream,
# ngx_http_v2_terminate_stream) are static in ngx_http_v2.c, in 1.28 as in
# 1.30 and 1.31. So nginx-authgate does not reset; what it does:
#
#   * over HTTP/2 a request with NTLM/Negotiate credentials is proxied and
#     answered (Kerberos, one round, works), the upstream connection is
#     closed after it, never bound or pooled, and the [info] line names the
#     fix: a listen without http2;
#   * on such a listen (the documented setup), curl --http2 speaks
#     HTTP/1.1 (nginx does not take "Upgrade: h2c") and the client's
#     connection is bound: the handshake's next request finds its
#     authenticated upstream connection.

use strict;
use warnings;
use Test::More;
use lib 't/lib', 't/backends';
use AGTest;
use NtlmBackend;

my $t = AGTest->new->skip_unless_module;
$t->skip_unless_nginx('1.25.1', '"http2 on;"');

$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    upstream app { server 127.0.0.1:%%PORT_8081%%; ntlm; }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    # a site with HTTP/2
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        location / { proxy_pass http://app; }
    }
    # the NTLM site: HTTP/1.1 only
    server {
        listen 127.0.0.1:%%PORT_8082%%;
        location / { proxy_pass http://app; }
    }
}
EOF2
my $ev = $t->testdir . '/b1.events';
$t->run_daemon(\&NtlmBackend::serve, port => $t->port(8081), name => 'b1', state => $ev);
$t->waitforsocket($t->port(8081)) or die;
$t->run;

# curl with several URLs on one connection (--next keeps it)
sub curl {
    my (@args) = @_;
    # options are per URL: --next starts the next URL's set (and keeps
    # the connection)
    @args = map { $_ eq '--next' ? ('--next', '-sS', '-i') : $_ } @args;
    open(my $fh, '-|', 'curl', '-sS', '-i', '--max-time', '10', @args) or die "curl: $!";
    local $/;
    my $out = <$fh>;
    close $fh;
    return AGTest::parse_responses($out);
}
sub h { my ($r, $n) = @_; scalar AGTest::http_header($r, $n) // '' }

my $h2 = 'http://127.0.0.1:' . $t->port(8080);
my $h1 = 'http://127.0.0.1:' . $t->port(8082);

# HTTP/2: served, each connection that carried credentials closed (two
# curl runs: curl 7.88 fails a second proxied request on a reused
# prior-knowledge connection with "Error in the HTTP2 framing layer", with
# or without ntlm; streams on one connection: t/ntlm_tls_http2.t)
my @r = map { curl('--http2-prior-knowledge', '-H', 'Authorization: NTLM tokA', "$h2/$_") } qw(a b);
is(scalar @r, 2, 'h2: two responses');
is($r[0]{version}, 'HTTP/2', 'h2: HTTP/2');
is_deeply([map { $_->{status} } @r], [200, 200], 'h2: the requests with credentials are answered');
is_deeply([map { h($_, 'X-Conn-Token') } @r], ['tokA', 'tokA'], 'h2: the credentials reached the upstream');
isnt(h($r[1], 'X-Conn-Id'), h($r[0], 'X-Conn-Id'), 'h2: each on its own upstream connection');
for my $i (0, 1) {
    my $closed = NtlmBackend::wait_close($ev, h($r[$i], 'X-Conn-Id'), 2);
    ok($closed && $closed->{by} eq 'peer', "h2: nginx closed the connection that carried credentials ($i)");
}
ok($t->grep_log(qr/\[info\].*instead of binding it: the client uses HTTP\/2 or HTTP\/3, whose requests are never bound \(an NTLM handshake cannot complete: serve this site on a listen without http2, where browsers use HTTP\/1\.1\)/),
   'h2: the [info] line names the fix');

# the HTTP/1.1-only listen: curl --http2 stays on HTTP/1.1 and binds
@r = curl('--http2', '-H', 'Authorization: NTLM tokB', "$h1/a", '--next', '--http2', "$h1/b");
is(scalar @r, 2, 'HTTP/1.1 listen: two responses');
is($r[0]{version}, 'HTTP/1.1', 'curl --http2 on the HTTP/1.1-only listen: HTTP/1.1');
is(h($r[0], 'X-Conn-Token'), 'tokB', 'HTTP/1.1 listen: credentials reach the upstream');
is(h($r[1], 'X-Conn-Id'), h($r[0], 'X-Conn-Id'), 'HTTP/1.1 listen: the next request is on the bound connection');
is(h($r[1], 'X-Conn-Token'), 'tokB', 'HTTP/1.1 listen: authenticated');

$t->done;
