#!/usr/bin/perl
# ntlm with keepalive: an upstream connection that carried an Authorization
# whose scheme is NTLM or Negotiate -- well-formed or not, sent by the client
# or set by proxy_set_header -- is bound to that client or closed, never put
# back in the shared keepalive pool. After each such request a second client
# asks for upstream connections: it must never get that one. A control
# (Basic) shows that the pool does hand a just-freed connection to the next
# client, so the checks are not vacuous.
#
# Clients: HTTP/1.1 keep-alive, HTTP/1.0, and HTTP/2 (nginx >= 1.25.1).

use strict;
use warnings;
use Test::More;
use lib 't/lib', 't/backends';
use AGTest;
use NtlmBackend;

my $t = AGTest->new->skip_unless_module;
my $h2 = $t->nginx_version >= 1025001;

my @values = ('NTLM abc def', 'NTLM ab=c', 'NTLM abc,def', 'NTLM', 'NTLM ',
              'Negotiate a b', 'Negotiate', 'NTLMfoo', 'ntlm tok', 'NEGOTIATE tok');
my $map = join "\n", map { sprintf '        %d "%s";', $_, $values[$_] } 0 .. $#values;
my $h2_server = !$h2 ? '' : <<'EOF2';
    server {
        listen 127.0.0.1:%%PORT_8090%%;
        http2 on;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
EOF2

$t->write_file_expand('nginx.conf', <<"EOF2");
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    upstream app {
        server 127.0.0.1:%%PORT_8081%%;
        keepalive 16;
        ntlm;
    }
    map \$arg_v \$psh_auth {
        default "";
$map
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /psh/ {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization \$psh_auth;
        }
        location /psh-literal/ {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header authorization "NTLM abc def";
        }
        location /psh-strip/ {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
        }
    }
$h2_server
}
EOF2

my $events = $t->testdir . '/b.events';
$t->run_daemon(\&NtlmBackend::serve, port => $t->port(8081), name => 'b', state => $events);
$t->waitforsocket($t->port(8081)) or die;
$t->run;
my $port = $t->port(8080);
*req = \&NtlmBackend::request;
*hdr = \&NtlmBackend::hdr;

# Another client asks for upstream connections right after: the ids it gets.
sub other_client_conns {
    my $b = NtlmBackend::client($port) or return ('connect failed');
    my @ids = map { hdr(req($b, "/other?i=$_"), 'X-Conn-Id') // 'none' } 1 .. 3;
    close $b;
    return @ids;
}

# $id must not show up among the other client's connections.
sub not_handed_on {
    my ($id, $what) = @_;
    ok(defined $id, "$what: served") or return;
    my @ids = other_client_conns();
    ok(!grep({ $_ eq $id } @ids), "$what: connection $id never given to another client")
        or diag("other client got: @ids");
}

# Control: a Basic credential leaves the connection to keepalive, and the
# next client gets it.
{
    my $a = NtlmBackend::client($port);
    my $id = hdr(req($a, '/control', auth => 'Basic dXNlcjpwYXNz'), 'X-Conn-Id');
    my @ids = other_client_conns();
    is($ids[0], $id, 'control: keepalive hands a pooled connection to the next client');
    close $a;
}

# HTTP/1.1 keep-alive client: Authorization sent by the client.
for my $v (@values) {
    my $a = NtlmBackend::client($port);
    my $id = hdr(req($a, '/c', auth => $v), 'X-Conn-Id');
    not_handed_on($id, "client sent '$v'");
    # the client that sent it still has it
    is(hdr(req($a, '/c2'), 'X-Conn-Id'), $id, "client sent '$v': bound to that client");
    close $a;
    ok(NtlmBackend::wait_close($events, $id, 3), "client sent '$v': closed with the client");
    not_handed_on($id, "client sent '$v', after the client closed");
}

# The same values set by proxy_set_header (from a variable), the client
# sending no Authorization.
for my $i (0 .. $#values) {
    my $a = NtlmBackend::client($port);
    my $r = req($a, "/psh/?v=$i");
    is(hdr($r, 'X-Conn-Token'), ($values[$i] =~ /^\S+\s+(\S+)/ ? $1 : '-'),
       "proxy_set_header '$values[$i]': the upstream received it");
    my $id = hdr($r, 'X-Conn-Id');
    not_handed_on($id, "proxy_set_header '$values[$i]'");
    close $a;
    ok(NtlmBackend::wait_close($events, $id, 3), "proxy_set_header '$values[$i]': closed with the client");
}

# A literal proxy_set_header value (lower-case name).
{
    my $a = NtlmBackend::client($port);
    my $id = hdr(req($a, '/psh-literal/'), 'X-Conn-Id');
    not_handed_on($id, 'literal proxy_set_header');
    close $a;
}

# proxy_set_header Authorization "" with client credentials: still bound
# (the client's header is looked at too; binding more only costs pooling).
{
    my $a = NtlmBackend::client($port);
    my $r = req($a, '/psh-strip/', auth => 'NTLM tokS');
    is(hdr($r, 'X-Conn-Token'), '-', 'stripped: the upstream received no Authorization');
    not_handed_on(hdr($r, 'X-Conn-Id'), 'stripped client credentials');
    close $a;
}

# HTTP/1.0 client (its connection closes after the response).
for my $v (@values[0 .. 6]) {
    my $r = parse_response(http("GET /h10 HTTP/1.0\r\nHost: a\r\nAuthorization: $v\r\n\r\n"));
    not_handed_on(hdr($r, 'X-Conn-Id'), "HTTP/1.0 client sent '$v'");
}

# HTTP/2 client: never bound, so the connection is closed.
SKIP: {
    skip 'http2 on; needs nginx 1.25.1', 3 * 7 unless $h2;
    for my $v (@values[0 .. 6]) {
        my ($res) = NtlmBackend::h2_requests($t->port(8090), [['/h2', $v]]);
        my ($id) = NtlmBackend::body_conn($res->{body});
        ok($res->{status200}, "HTTP/2 client sent '$v': 200");
        not_handed_on($id, "HTTP/2 client sent '$v'");
    }
}

is(scalar(grep { $_->{type} eq 'conflict' } NtlmBackend::events($events)), 0,
   'no upstream connection saw two tokens');

$t->done;
