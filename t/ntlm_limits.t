#!/usr/bin/perl
# ntlm (issue 14 §8): bounded bound sessions.
#
# A bound upstream connection is closed, instead of parked again, once it
# has carried ntlm_max_requests requests or was opened more than
# ntlm_max_time ago: the test nginx's keepalive makes when it is done with a
# request (so the request that reaches the limit is served on the bound
# connection, and closed after it). The client's next request goes to a
# fresh connection and authenticates again. Without ntlm_max_*, the block's
# keepalive_requests / keepalive_time are honoured (explicit, with or
# without "keepalive"), else nginx's defaults (1000 requests, 1h): bound
# connections never reach nginx's keepalive, which would apply them.

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use lib 't/lib', 't/backends';
use AGTest;
use NtlmBackend;

my $t = AGTest->new->skip_unless_module;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    upstream maxreq  { server 127.0.0.1:%%PORT_8081%%; ntlm; ntlm_max_requests 3; }
    upstream maxtime { server 127.0.0.1:%%PORT_8081%%; ntlm; ntlm_max_time 1s; }
    upstream karq    { server 127.0.0.1:%%PORT_8081%%; keepalive 4; keepalive_requests 2; ntlm; }
    upstream karq2   { server 127.0.0.1:%%PORT_8081%%; keepalive_requests 4; ntlm; }
    upstream katime  { server 127.0.0.1:%%PORT_8081%%; ntlm; keepalive_time 1s; }
    upstream over    { server 127.0.0.1:%%PORT_8081%%; keepalive 4; keepalive_requests 2;
                       ntlm; ntlm_max_requests 5; }
    upstream plain   { server 127.0.0.1:%%PORT_8081%%; ntlm; }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location /maxreq/  { proxy_pass http://maxreq; }
        location /maxtime/ { proxy_pass http://maxtime; }
        location /karq/    { proxy_pass http://karq; }
        location /karq2/   { proxy_pass http://karq2; }
        location /katime/  { proxy_pass http://katime; }
        location /over/    { proxy_pass http://over; }
        location /plain/   { proxy_pass http://plain; }
    }
}
EOF

my $ev = $t->testdir . '/b1.events';
$t->run_daemon(\&NtlmBackend::serve, port => $t->port(8081), name => 'b1', state => $ev);
$t->waitforsocket($t->port(8081)) or die;
$t->run;
my $port = $t->port(8080);
*req = \&NtlmBackend::request;
*hdr = \&NtlmBackend::hdr;

# binds with one credentialed request, then sends $n - 1 more; returns the
# connection ids and tokens the upstream saw for all of them
sub session {
    my ($s, $uri, $tok, $n) = @_;
    my (@ids, @tokens);
    for my $i (1 .. $n) {
        my $r = req($s, "$uri?i=$i", $i == 1 ? (auth => "NTLM $tok") : ());
        push @ids, hdr($r, 'X-Conn-Id');
        push @tokens, hdr($r, 'X-Conn-Token');
    }
    return (\@ids, \@tokens);
}

sub same { my ($l) = @_; my %h = map { $_ => 1 } @$l; scalar keys %h == 1 }

# a bound session of $limit requests, then a fresh unauthenticated one
sub limited {
    my ($what, $uri, $tok, $limit) = @_;
    my $s = NtlmBackend::client($port);
    my ($ids, $tokens) = session($s, $uri, $tok, $limit);
    ok(same($ids), "$what: the first $limit requests on one bound connection");
    is_deeply($tokens, [($tok) x $limit], "$what: all authenticated");
    ok(NtlmBackend::wait_close($ev, $ids->[0], 2), "$what: closed by nginx after request $limit");
    my $r = req($s, "$uri?after=1&challenge=1");
    is($r->{status}, 401, "$what: the next request is challenged again");
    isnt(hdr($r, 'X-Conn-Id'), $ids->[0], "$what: on a fresh connection");
    is(hdr($r, 'X-Conn-Token'), '-', "$what: not authenticated");
    # (with keepalive_requests 2 the challenge may have used a pooled
    # connection, whose next request is its last: it cannot bind)
    if ($limit > 2) {
        $r = req($s, "$uri?again=1", auth => "NTLM ${tok}2");
        is(hdr(req($s, "$uri?again=2"), 'X-Conn-Token'), "${tok}2", "$what: binds again");
    }
    close $s;
}

limited('ntlm_max_requests 3', '/maxreq/', 'tokR', 3);
ok($t->grep_log(qr/\[info\].*ntlm: closing the bound upstream connection after 3 requests: it reached ntlm_max_requests or ntlm_max_time; the client's next request authenticates again/),
   '[info] the bound connection closed after 3 requests');
limited('keepalive 4; keepalive_requests 2', '/karq/', 'tokK', 2);
limited('keepalive_requests 4 without keepalive', '/karq2/', 'tokK2', 4);
limited('ntlm_max_requests 5 over keepalive_requests 2', '/over/', 'tokO', 5);

# time: the request after the limit is still served on the bound connection
# (the check is made when the connection would be parked again), then closed
for my $case (['ntlm_max_time 1s', '/maxtime/', 'tokT'], ['keepalive_time 1s', '/katime/', 'tokKT']) {
    my ($what, $uri, $tok) = @$case;
    my $s = NtlmBackend::client($port);
    my ($ids) = session($s, $uri, $tok, 2);
    ok(same($ids), "$what: bound");
    sleep 1.2;
    my $r = req($s, "$uri?late=1");
    is(hdr($r, 'X-Conn-Id'), $ids->[0], "$what: after the limit, the next request is on the bound connection");
    is(hdr($r, 'X-Conn-Token'), $tok, "$what: authenticated");
    ok(NtlmBackend::wait_close($ev, $ids->[0], 2), "$what: and the connection is closed after it");
    $r = req($s, "$uri?later=1");
    isnt(hdr($r, 'X-Conn-Id'), $ids->[0], "$what: then a fresh connection");
    is(hdr($r, 'X-Conn-Token'), '-', "$what: not authenticated");
    close $s;
}

# no limit configured: nginx's defaults (1000 requests, 1h) are far
my $s = NtlmBackend::client($port);
my ($ids, $tokens) = session($s, '/plain/', 'tokP', 30);
ok(same($ids), 'no limits set: 30 requests on one bound connection');
is_deeply($tokens, [('tokP') x 30], 'all authenticated');
close $s;

$t->done;
