#!/usr/bin/perl
# key_auth quotas with two workers whose clocks differ. With timer_resolution
# a worker's cached time is updated every 100 ms by its own interval timer,
# which starts with the worker: two workers started together tick in step,
# but a replaced worker ticks out of phase with the other one, whose clock is
# then up to 100 ms behind or ahead, and sees windows that "start in the
# future". So one worker is replaced (SIGQUIT; the master starts another)
# before the load and again after the reload midway. Several forked clients
# hammer a few consumers (limit=5/60s) over many short connections spread
# across both workers (reuseport). The whole run lies within one window: no
# consumer may be admitted more than 5 times.

use strict;
use warnings;
use Test::More;
use POSIX qw(_exit);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use AGTest;

my $CONSUMERS = 20;
my $CLIENTS = 6;
my $SLOTS = 40;             # consumer k % 20 is hammered in time slot k
my $SLOT_SECS = 0.03;       # 40 slots: 1.2 s
my $PER_SLOT = 2;           # requests per client and slot: 480 in all, 24 per consumer

my $t = AGTest->new->skip_unless_module;
$t->write_file('consumers.conf',
    join '', map { "c$_ key=key-$_ limit=5/60s limit_status=429;\n" } 1 .. $CONSUMERS);
$t->write_file('index.html', "OK\n");
$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
worker_processes 2;
timer_resolution 100ms;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_zone quota 1m;
    key_auth_consumers { include %%TESTDIR%%/consumers.conf; }
    server {
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        add_header X-Worker $pid always;
        location / { key_auth on; root %%TESTDIR%%; }
    }
}
EOF2
$t->run;
my $port = $t->port(8080);
my $dir = $t->testdir;

# One request on its own connection: (status, worker pid) or ().
sub one {
    my ($key) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5) or return ();
    print $s "GET /index.html HTTP/1.1\r\nHost: a\r\napikey: $key\r\nConnection: close\r\n\r\n";
    local $/;
    my $r = <$s> // '';
    close $s;
    my ($st) = $r =~ m{^HTTP/1\.1 (\d{3})} or return ();
    my ($pid) = $r =~ /^X-Worker: (\d+)/mi;
    return ($st, $pid // 0);
}

# Gracefully stops the most recently started worker (always one of the
# current generation, never an old one still finishing after a reload);
# returns when the master has started its replacement.
sub replace_worker {
    my @started;
    my $deadline = time + 10;
    # right after $t->run the master may not have started both workers yet
    sleep 0.02 until (@started = $t->error_log =~ /start worker process (\d+)/g) >= 2
        || time > $deadline;
    my $pid = $started[-1] or die 'no worker';
    kill 'QUIT', $pid or die "kill $pid: $!";
    $deadline = time + 10;
    while (time < $deadline) {
        my $n = () = $t->error_log =~ /start worker process/g;
        return if $n > @started;
        sleep 0.02;
    }
    die 'no replacement worker';
}

replace_worker();
sleep 0.15;

# The clients all send their requests for consumer k % 20 in slot k, so
# that right after a window starts, the other worker is asked too.
pipe(my $go_r, my $go_w) or die;
my @kids;
for my $c (1 .. $CLIENTS) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        close $go_w;
        my $x = <$go_r>;                              # EOF: go
        my $t0 = $t->read_file('t0') or _exit(1);
        open my $out, '>', "$dir/client-$c.out" or _exit(1);
        for my $k (0 .. $SLOTS - 1) {
            my $n = 1 + $k % $CONSUMERS;
            for (1 .. $PER_SLOT) {
                my ($st, $w) = one("key-$n");
                print $out defined $st ? "c$n $st $w\n" : "c$n none 0\n";
            }
            my $wait = $t0 + ($k + 1) * $SLOT_SECS - time;
            sleep $wait if $wait > 0;
        }
        close $out;
        _exit(0);
    }
    push @kids, $pid;
}
close $go_r;
$t->write_file('t0', time + 0.05);
close $go_w;                                          # all clients start
sleep 0.5;
$t->reload;                                           # midway: new workers
sleep 0.1;                                            # both started
replace_worker();
waitpid($_, 0) for @kids;

my (%admitted, %refused, %workers, $none);
for my $c (1 .. $CLIENTS) {
    open my $in, '<', "$dir/client-$c.out" or die "client $c: no results";
    while (<$in>) {
        my ($n, $st, $w) = split;
        if ($st eq 'none') { $none++; next }
        $workers{$w}++;
        $st == 200 ? $admitted{$n}++ : $st == 429 ? $refused{$n}++ : die "unexpected status $st";
    }
}
my $answered = 0;
$answered += $_ for values %workers;
cmp_ok($answered, '>=', $CLIENTS * $SLOTS * $PER_SLOT - 5, "$answered requests answered")
    or diag("unanswered: " . ($none // 0));
cmp_ok(scalar keys %workers, '>=', 4, 'served by both workers, their replacements, and new ones after the reload')
    or diag(join ' ', map { "$_:$workers{$_}" } keys %workers);
my @over = grep { ($admitted{$_} // 0) > 5 } sort keys %admitted;
is(scalar @over, 0, 'no consumer admitted more than 5 times in its window')
    or diag(join ', ', map { "$_: $admitted{$_}" } @over);
is_deeply([sort { $a <=> $b } map { $admitted{"c$_"} // 0 } 1 .. $CONSUMERS], [(5) x $CONSUMERS],
          'each consumer admitted exactly 5 times');

# after all that, still over for everyone
for my $n (1, $CONSUMERS) {
    my ($st) = one("key-$n");
    is($st, 429, "c$n: still over the limit");
}

$t->done;
