#!/usr/bin/perl
# ntlm under load: 200 concurrent client connections, each binding with its
# own token and then sending requests without one, interleaved; then every
# client closes and reconnects (nginx reuses its connection structures) and
# starts anonymously. A backend that remembers the token per TCP connection
# echoes it: no response may ever carry another client's token.

use strict;
use warnings;
use Test::More;
use POSIX qw(_exit);
use Time::HiRes qw(sleep time);
use lib 't/lib', 't/backends';
use AGTest;
use NtlmBackend;

my $CLIENTS = $ENV{NTLM_CLIENTS} || 200;
my $REQUESTS = 6;

my $t = AGTest->new->skip_unless_module;

$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
http {
    %%TEST_GLOBALS_HTTP%%
    upstream app {
        server 127.0.0.1:%%PORT_8081%%;
        server 127.0.0.1:%%PORT_8082%%;
        keepalive 16;
        ntlm 1000;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%% backlog=1024;
        keepalive_requests 10000;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF2

my $dir = $t->testdir;
for my $b ([b1 => 8081], [b2 => 8082]) {
    $t->run_daemon(\&NtlmBackend::serve, port => $t->port($b->[1]), name => $b->[0],
                   state => "$dir/$b->[0].events");
    $t->waitforsocket($t->port($b->[1])) or die;
}
$t->run;
my $port = $t->port(8080);
my $results = "$dir/results";

# One client: returns a list of problems (empty when all is well).
sub client_run {
    my ($i) = @_;
    my @bad;
    srand($$ ^ time);
    for my $round (1, 2) {
        my $tok = "c$i-r$round";
        my $s = NtlmBackend::client($port) or return ("client $i: connect: $!");
        if ($round == 2) {
            # anonymous first: a fresh client connection has no binding
            my $r = NtlmBackend::request($s, '/anon');
            my $got = NtlmBackend::hdr($r, 'X-Conn-Token') // 'none';
            push @bad, "client $i round 2 anonymous got token $got" if $got ne '-';
        }
        my $r = NtlmBackend::request($s, "/bind?c=$i", auth => "NTLM $tok");
        my $got = NtlmBackend::hdr($r, 'X-Conn-Token') // 'none';
        push @bad, "client $i: bind got $got, want $tok" if $got ne $tok;
        my $conn = (NtlmBackend::hdr($r, 'X-Backend') // '') . '/' . (NtlmBackend::hdr($r, 'X-Conn-Id') // '');
        for my $n (1 .. $REQUESTS) {
            sleep rand(0.02);
            $r = NtlmBackend::request($s, "/r$n?c=$i");
            $got = NtlmBackend::hdr($r, 'X-Conn-Token') // 'none';
            my $c = (NtlmBackend::hdr($r, 'X-Backend') // '') . '/' . (NtlmBackend::hdr($r, 'X-Conn-Id') // '');
            push @bad, "client $i request $n: token $got, want $tok" if $got ne $tok;
            push @bad, "client $i request $n: connection $c, bound to $conn" if $c ne $conn;
        }
        close $s;
        sleep rand(0.05);
    }
    return @bad;
}

pipe(my $start_r, my $start_w) or die;
my @pids;
for my $i (1 .. $CLIENTS) {
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close $start_w;
        my $x = <$start_r>;             # all clients start together
        my @bad = eval { client_run($i) };
        push @bad, "client $i died: $@" if $@;
        open my $fh, '>>', $results or _exit(1);
        flock($fh, 2);
        print $fh "ok $i\n";
        print $fh "bad $_\n" for @bad;
        close $fh;
        _exit(0);
    }
    push @pids, $pid;
}
close $start_r;
sleep 0.5;
my $t0 = time;
close $start_w;
waitpid($_, 0) for @pids;
my $elapsed = time - $t0;

open my $fh, '<', $results or die "no results";
my @lines = <$fh>;
close $fh;
my @ok = grep { /^ok / } @lines;
my @bad = grep { /^bad / } @lines;
is(scalar @ok, $CLIENTS, "$CLIENTS clients finished");
is(scalar @bad, 0, 'every response carried the client\'s own token, on its own connection')
    or diag(join '', @bad[0 .. ($#bad < 20 ? $#bad : 20)]);
my $requests = $CLIENTS * (2 * (1 + $REQUESTS) + 1);
note(sprintf "%d requests in %.1f s", $requests, $elapsed);

my @events = map { NtlmBackend::events("$dir/$_.events") } qw(b1 b2);
is(scalar(grep { $_->{type} eq 'conflict' } @events), 0, 'no upstream connection ever saw two tokens');
my %tokens_per_conn;
for my $e (grep { $_->{type} eq 'req' && $_->{token} ne '-' } @events) {
    $tokens_per_conn{"$e->{id}"}{ $e->{token} }++;
}
my $reqs = grep { $_->{type} eq 'req' } @events;
cmp_ok($reqs, '>=', $requests, 'the backends saw every request');

# every client connection is closed: every bound connection must be too
my $deadline = time + 3;
my ($opened, $closed);
while (1) {
    @events = map { NtlmBackend::events("$dir/$_.events") } qw(b1 b2);
    $opened = grep { $_->{type} eq 'open' } @events;
    $closed = grep { $_->{type} eq 'close' } @events;
    last if $opened - $closed <= 16 || time > $deadline;  # keepalive may pool 16 unbound
    sleep 0.1;
}
cmp_ok($opened - $closed, '<=', 16, "bound connections closed with their clients ($opened opened, $closed closed)");

$t->done;
