#!/usr/bin/perl
# ntlm: a request of a bound client goes over its bound connection without
# the balancer being set up, and without its credentials being looked at;
# both happen only when that connection fails and the request is retried
# on a connection of the balancer. That retried connection carried the
# request's credentials, so it must become the client's binding, never a
# pooled keepalive connection, also when the credentials come from
# proxy_set_header (found in the request head nginx already sent once over
# the failed connection, resent from the start of its buffers).

use strict;
use warnings;
use Test::More;
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
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    upstream ka { server 127.0.0.1:%%PORT_8081%%; keepalive 4; ntlm; }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location /ka/ { proxy_pass http://ka; }
        location /kaset/ {
            proxy_pass http://ka;
            proxy_set_header Connection "";
            proxy_set_header Authorization "NTLM tokS";
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

# Another client's requests never reach a connection authenticated as $tok.
sub others_never_see {
    my ($tok, $what) = @_;
    my %seen;
    for (1 .. 3) {
        my $o = NtlmBackend::client($port);
        for (1 .. 2) { $seen{ hdr(req($o, '/ka/'), 'X-Conn-Token') }++ }
        close $o;
    }
    ok(!$seen{$tok}, "$what: other clients never get the connection authenticated as $tok")
        or diag explain \%seen;
    is_deeply([keys %seen], ['-'], "$what: they only get unauthenticated ones");
}

# 1. client credentials on the request whose bound connection fails
my $c = NtlmBackend::client($port);
my $r = req($c, '/ka/', auth => 'NTLM tokA');
is(hdr($r, 'X-Conn-Token'), 'tokA', 'client bound');
my $bound = hdr($r, 'X-Conn-Id');
$r = req($c, '/ka/?drop_if_reused=1', auth => 'NTLM tokB');
is($r->{status}, 200, 'bound connection dropped mid-request: retried and served');
isnt(hdr($r, 'X-Conn-Id'), $bound, 'over a fresh connection');
is(hdr($r, 'X-Conn-Token'), 'tokB', 'which the retried request authenticated');
my $fresh = hdr($r, 'X-Conn-Id');
# Other clients first: a connection pooled by keepalive would go to them.
others_never_see('tokB', 'client Authorization');
$r = req($c, '/ka/');
is(hdr($r, 'X-Conn-Id'), $fresh, 'it is the client\'s binding now');
is(hdr($r, 'X-Conn-Token'), 'tokB', 'authenticated as tokB');
close $c;
ok(NtlmBackend::wait_close($events, $fresh, 2), 'closed with its client, not pooled');

# 2. credentials only in the head nginx sends (proxy_set_header)
$c = NtlmBackend::client($port);
$r = req($c, '/kaset/');
is(hdr($r, 'X-Conn-Token'), 'tokS', 'proxy_set_header Authorization: client bound');
$bound = hdr($r, 'X-Conn-Id');
is(hdr(req($c, '/kaset/'), 'X-Conn-Id'), $bound, 'its next request: the bound connection');
$r = req($c, '/kaset/?drop_if_reused=1');
is($r->{status}, 200, 'bound connection dropped mid-request: retried and served');
isnt(hdr($r, 'X-Conn-Id'), $bound, 'over a fresh connection');
is(hdr($r, 'X-Conn-Token'), 'tokS', 'authenticated by the resent head');
$fresh = hdr($r, 'X-Conn-Id');
others_never_see('tokS', 'proxy_set_header');
is(hdr(req($c, '/kaset/'), 'X-Conn-Id'), $fresh, 'it is the client\'s binding now');
close $c;
ok(NtlmBackend::wait_close($events, $fresh, 2), 'closed with its client, not pooled');

$t->done;
