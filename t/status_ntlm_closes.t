#!/usr/bin/perl
# authgate_status: every reason of authgate_ntlm_closes_total{reason} is
# counted when it happens, in the series of its upstream block, and nothing
# else is. Real nginx, a real connection-remembering backend (NtlmBackend)
# that closes, refuses keep-alive or drops a connection on request:
#   upstream_closed  the backend closes an idle bound connection, and a
#                    bound request answered with "Connection: close";
#   evicted          "ntlm 1": a second client's binding pushes out the
#                    first client's idle one;
#   limit            "ntlm_max_requests 2": the second request ends it;
#   error            the backend drops a bound connection in the middle of
#                    a request (the request is retried and served).
# (client_closed and timeout: t/status_mechanisms.t.)

use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep);
use lib 't/lib', 't/backends';
use AGTest;
use NtlmBackend;

my $t = AGTest->new->skip_unless_module;
$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
worker_processes 1;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    authgate_status_zone status 256k;
    proxy_http_version 1.1;
    proxy_set_header Connection "";

    upstream closed  { server 127.0.0.1:%%PORT_8081%%; ntlm; }
    upstream small   { server 127.0.0.1:%%PORT_8081%%; ntlm 1; }
    upstream limited { server 127.0.0.1:%%PORT_8081%%; ntlm; ntlm_max_requests 2; }
    upstream failing { server 127.0.0.1:%%PORT_8081%%; ntlm; }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location /closed/  { proxy_pass http://closed; }
        location /small/   { proxy_pass http://small; }
        location /limited/ { proxy_pass http://limited; }
        location /failing/ { proxy_pass http://failing; }
        location = /status { authgate_status; }
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

sub series {
    my ($name) = @_;
    my $s = decode_json(http_body(http_get('/status', port => $port)));
    my ($n) = grep { $_->{upstream} eq $name } @{ $s->{ntlm} };
    return $n;
}

# Polls until the series' close count for $reason reaches $want (closes
# driven by timers and the peer are seen by nginx a moment later).
sub closes_reach {
    my ($name, $reason, $want) = @_;
    my $n;
    for (1 .. 50) {
        $n = series($name);
        last if $n->{closes}{$reason} >= $want;
        sleep 0.1;
    }
    return $n;
}

my @reasons = qw(client_closed upstream_closed timeout evicted limit error);
sub only {
    my ($n, %want) = @_;
    return { map { $_ => $want{$_} // 0 } @reasons };
}

sub bind_client {
    my ($uri, $tok) = @_;
    my $s = NtlmBackend::client($port);
    my $r = req($s, $uri, auth => "NTLM $tok");
    is(hdr($r, 'X-Conn-Token'), $tok, "$uri: bound with $tok");
    return ($s, hdr($r, 'X-Conn-Id'));
}

# --- upstream_closed ---------------------------------------------------------
# 1. the backend closes the idle bound connection 0.3 s after answering
my ($c1, $id1) = bind_client('/closed/?close_after=0.3', 'tokU1');
ok(NtlmBackend::wait_close($events, $id1, 2), 'backend closed the idle bound connection');
my $n = closes_reach('closed', 'upstream_closed', 1);
is_deeply($n->{closes}, only($n, upstream_closed => 1), 'closed: counted as upstream_closed');
is($n->{bound}, 0, 'closed: nothing bound after it');
is($n->{idle}, 0, 'closed: nothing idle after it');
my $r = req($c1, '/closed/');
is(hdr($r, 'X-Conn-Token'), '-', 'the client goes on over a fresh, unauthenticated connection');
isnt(hdr($r, 'X-Conn-Id'), $id1, 'not the closed one');
close $c1;

# 2. a request over the bound connection is answered with Connection: close
my ($c2, $id2) = bind_client('/closed/', 'tokU2');
$r = req($c2, '/closed/?close=1');
is($r->{status}, 200, 'bound request answered with Connection: close: served');
is(hdr($r, 'X-Conn-Id'), $id2, 'over the bound connection');
$n = closes_reach('closed', 'upstream_closed', 2);
is_deeply($n->{closes}, only($n, upstream_closed => 2), 'no keep-alive from the upstream: upstream_closed');
is($n->{bindings}, 2, 'closed: 2 bindings made');
is($n->{bound}, 0, 'closed: nothing bound');
close $c2;
sleep 0.2;
is_deeply(series('closed')->{closes}, only($n, upstream_closed => 2),
    'its client closing later counts nothing more');

# --- evicted -----------------------------------------------------------------
my ($a, $ida) = bind_client('/small/', 'tokEA');
my ($b, $idb) = bind_client('/small/', 'tokEB');
isnt($idb, $ida, 'second client: its own upstream connection');
ok(NtlmBackend::wait_close($events, $ida, 2), "first client's idle bound connection closed");
$n = closes_reach('small', 'evicted', 1);
is_deeply($n->{closes}, only($n, evicted => 1), 'small: counted as evicted');
is($n->{bound}, 1, 'small: 1 bound (the second client)');
is($n->{idle}, 1, 'small: 1 idle');
$r = req($a, '/small/');
is(hdr($r, 'X-Conn-Token'), '-', 'evicted client: next request over an unauthenticated connection');
$r = req($b, '/small/');
is(hdr($r, 'X-Conn-Id'), $idb, 'the second client keeps its binding');
is(hdr($r, 'X-Conn-Token'), 'tokEB', 'authenticated');
is($n->{bound_requests}, 0, 'small: no request over a bound connection before these');
close $b;
$n = closes_reach('small', 'client_closed', 1);
is_deeply($n->{closes}, only($n, evicted => 1, client_closed => 1), 'small: then client_closed, no other');
close $a;

# --- limit -------------------------------------------------------------------
my ($l, $idl) = bind_client('/limited/', 'tokL');
$r = req($l, '/limited/');
is(hdr($r, 'X-Conn-Id'), $idl, 'second request over the bound connection');
is(hdr($r, 'X-Conn-Token'), 'tokL', 'authenticated');
ok(NtlmBackend::wait_close($events, $idl, 2), 'ntlm_max_requests 2 reached: connection closed after it');
$n = closes_reach('limited', 'limit', 1);
is_deeply($n->{closes}, only($n, limit => 1), 'limited: counted as limit');
is($n->{bound}, 0, 'limited: nothing bound');
is($n->{bound_requests}, 1, 'limited: 1 request over the bound connection');
$r = req($l, '/limited/');
is(hdr($r, 'X-Conn-Token'), '-', 'next request: fresh connection, authenticates again');
close $l;

# --- error -------------------------------------------------------------------
my ($f, $idf) = bind_client('/failing/', 'tokF');
$r = req($f, '/failing/?drop_if_token=1');
is($r->{status}, 200, 'bound connection dropped mid-request: retried and served');
isnt(hdr($r, 'X-Conn-Id'), $idf, 'over a fresh connection');
is(hdr($r, 'X-Conn-Token'), '-', 'which is not authenticated');
$n = closes_reach('failing', 'error', 1);
is_deeply($n->{closes}, only($n, error => 1), 'failing: counted as error');
is($n->{bound}, 0, 'failing: nothing bound');
close $f;

$t->done;
