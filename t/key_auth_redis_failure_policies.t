#!/usr/bin/perl
# key_auth_quota_store on_error=local and on_error=allow under every way
# Redis can fail that t/key_auth_redis_failure.t drives for deny (there,
# local and allow are only tested with Redis down), against real
# redis-servers: a stalled Redis (SIGSTOP: no reply within timeout=), a
# wrong password (WRONGPASS), no password (NOAUTH), Redis out of memory
# (OOM), a read-only replica (READONLY), a server that does not speak RESP.
# What README's failure matrix promises for each: local counts in this
# node's key_auth_zone with its X-RateLimit-* (3 of 5 requests let in, the
# others get limit_status); allow lets every request in, uncounted, without
# X-RateLimit-*; an unlimited consumer is never refused; one [error] line per
# worker and episode naming the policy; counting in Redis resumes once Redis
# answers again.

use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use AGTest;
use AGRedis;

my $t = AGTest->new->skip_unless_module;
my $SLOW = AGTest::valgrind() ? 10 : $ENV{ASAN_OPTIONS} ? 3 : 1;
my $T = 300 * $SLOW;    # timeout=, ms
$t->skip_all('no redis-server (ci/setup.sh installs it)') unless AGRedis->available;
my $redis = AGRedis->start($t);
my $locked = AGRedis->start($t, token => 'locked', args => ['--requirepass', 'right-pass']);
$locked->auth(['AUTH', 'right-pass']);
$t->write_file('index.html', "PROTECTED\n");

# a server that answers anything with HTTP
my $garbage_port = $t->port('garbage');
$t->run_daemon(sub {
    my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$garbage_port", Listen => 16, ReuseAddr => 1)
        or die "listen: $!";
    while (my $c = $l->accept) {
        my $buf;
        sysread($c, $buf, 4096);
        print $c "HTTP/1.0 400 Bad Request\r\n\r\n";
        close $c;
    }
});
$t->waitforsocket("127.0.0.1:$garbage_port");

my @POLICIES = qw(local allow);
my @CASES = qw(stalled OOM READONLY wrongpass noauth notresp);
# One consumer per policy and case: the local zone keeps its counters across
# the reloads between cases (same name and size), so each case counts afresh.
my $consumers = join '', map {
    my $p = $_;
    map { "        ${p}_$_ key=$p-$_-key limit=3/30s limit_status=429;\n" } @CASES
} @POLICIES;

my $TEMPLATE = <<"EOF";
%%TEST_GLOBALS%%
worker_processes 1;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_zone local 1m;
    key_auth_quota_store STORE;
    key_auth_consumers {
$consumers        free key=free-key;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location = /index.html { key_auth on; root %%TESTDIR%%; }
    }
}
EOF

my $started;
sub configure {
    my ($store) = @_;
    (my $c = $TEMPLATE) =~ s/STORE/$store/;
    $t->write_file_expand('nginx.conf', $c);
    if ($started) { $t->reload; sleep 0.3 } else { $t->run; $started = 1 }
}

sub get { http_get('/index.html', headers => ["apikey: $_[0]"]) }
my $mark = 0;
sub log_mark { $mark = length($t->error_log // '') }
sub log_since { my ($re) = @_; grep { /$re/ } split /\n/, substr($t->error_log // '', $mark) }

my $R = 'redis://127.0.0.1:' . $redis->port;
my $L = '127.0.0.1:' . $locked->port;
# case => [store URL, how to make it fail, how to end it, what the line says]
my %case = (
    stalled   => [$R, sub { $redis->pause }, sub { $redis->resume }, qr/no reply within $T ms/],
    OOM       => [$R, sub { $redis->command('CONFIG', 'SET', 'maxmemory', '1') },
                  sub { $redis->command('CONFIG', 'SET', 'maxmemory', '0') }, qr/Redis answered "OOM/],
    READONLY  => [$R, sub { $redis->command('REPLICAOF', '127.0.0.1', $t->port('nowhere')) },
                  sub { $redis->command('REPLICAOF', 'NO', 'ONE') }, qr/Redis answered "READONLY/],
    wrongpass => ["redis://:wrong-pass\@$L", sub { }, sub { }, qr/AUTH or SELECT refused: WRONGPASS/],
    noauth    => ["redis://$L", sub { }, sub { }, qr/Redis answered "NOAUTH/],
    notresp   => ["redis://127.0.0.1:$garbage_port", sub { }, sub { }, qr/Redis sent something that is not RESP/],
);

for my $policy (@POLICIES) {
    for my $name (@CASES) {
        my ($store, $fail, $mend, $why) = @{ $case{$name} };
        my $key = "$policy-$name-key";
        my $what = "on_error=$policy, $name";
        configure("$store timeout=${T}ms on_error=$policy");
        my $recovers = $store eq $R;
        if ($recovers) {
            my $r = get($key);
            is(http_status($r), 200, "$what: Redis up: counted");
            is($redis->command('GET', "authgate:${policy}_$name"), 1, "$what: Redis holds the count");
        }
        $fail->();
        log_mark();
        my (%st, @limit, @remaining);
        my $t0 = time;
        for (1 .. 5) {
            my $r = get($key);
            $st{ http_status($r) }++;
            push @limit, http_header($r, 'X-RateLimit-Limit');
            push @remaining, http_header($r, 'X-RateLimit-Remaining');
        }
        my $took = time - $t0;
        if ($policy eq 'local') {
            is_deeply(\%st, { 200 => 3, 429 => 2 }, "$what: counted in the local zone: 3 let in, then 429");
            is_deeply(\@limit, [(3) x 5], "$what: X-RateLimit-Limit from the local zone");
            is_deeply(\@remaining, [2, 1, 0, 0, 0], "$what: X-RateLimit-Remaining from the local zone");
        } else {
            is_deeply(\%st, { 200 => 5 }, "$what: every request let in");
            is_deeply([grep { defined } @limit, @remaining], [], "$what: uncounted, no X-RateLimit-*");
        }
        # a stalled Redis delays a request by the timeout at most (then the
        # back-off answers at once); the other failures do not delay
        my $bound = $name eq 'stalled' ? 5 * ($T / 1000 + 0.5 * $SLOW) : 2 * $SLOW;
        ok($took < $bound, "$what: 5 requests in ${took}s (< $bound)");
        ok($took >= 0.8 * $T / 1000, "$what: the first request waited for the timeout ($T ms)") if $name eq 'stalled';
        is(http_status(get('free-key')), 200, "$what: an unlimited consumer passes");
        my @lines = log_since(qr/key_auth_quota_store/);
        is(scalar @lines, 1, "$what: one line for the episode") or diag(join "\n", @lines);
        like($lines[0] // '', qr/\[error\] .*key_auth_quota_store .*\(on_error=$policy\) until Redis answers again/,
             "$what: the line names the policy");
        like($lines[0] // '', $why, "$what: the line says why");
        $mend->();
        if ($recovers) {
            my $back;
            for (1 .. 30) {
                my $r = get($key);
                last if ($back = http_header($r, 'X-RateLimit-Remaining') // '') eq '2'
                    && $redis->command('GET', "authgate:${policy}_$name") == 1;
                $redis->command('DEL', "authgate:${policy}_$name");
                sleep 0.1;
            }
            is($back, '2', "$what over: counted in Redis again");
        }
    }
}

unlike($t->error_log, qr/right-pass|wrong-pass/, 'no password anywhere in the error log');
$t->done;
