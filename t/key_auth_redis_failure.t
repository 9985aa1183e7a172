#!/usr/bin/perl
# key_auth_quota_store when Redis fails, against real redis-servers: the
# failure matrix. For each on_error policy (deny, local, allow): Redis down
# gives 503 / counting in the local key_auth_zone / uncounted admission,
# with one error-log line for the episode, and counting in Redis resumes by
# itself after Redis restarts. With the default (deny), every way Redis can
# fail gives 503: a stalled Redis (SIGSTOP) delays the requests that need it
# by the timeout only while other clients are served at once; a wrong
# password (WRONGPASS), no password (NOAUTH), the right one from
# password_file=; a read-only replica (READONLY), Redis out of memory (OOM);
# a server that does not speak RESP.

use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use AGTest;
use AGRedis;

my $t = AGTest->new->skip_unless_module;
# Under valgrind (and less so ASan) nginx is many times slower: the stall's
# timeout and the bounds around it grow together.
my $SLOW = AGTest::valgrind() ? 10 : $ENV{ASAN_OPTIONS} ? 3 : 1;
my $T = 300 * $SLOW;    # timeout=, ms
$t->skip_all('no redis-server (ci/setup.sh installs it)') unless AGRedis->available;
my $redis = AGRedis->start($t);
my $locked = AGRedis->start($t, token => 'locked', args => ['--requirepass', 'right-pass']);
$locked->auth(['AUTH', 'right-pass']);
$t->write_file('index.html', "PROTECTED\n");
$t->write_file('open.html', "OPEN\n");
$t->write_file('redis.pw', "right-pass\n");

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

my $TEMPLATE = <<'EOF';
%%TEST_GLOBALS%%
worker_processes 1;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_zone local 1m;
    key_auth_quota_store STORE;
    key_auth_consumers {
        deny_c  key=deny-key  limit=3/30s limit_status=429;
        local_c key=local-key limit=3/30s limit_status=429;
        allow_c key=allow-key limit=3/30s limit_status=429;
        free    key=free-key;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location = /index.html { key_auth on; root %%TESTDIR%%; }
        location = /open.html  { root %%TESTDIR%%; }
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
my %down_expect = (
    deny  => [{ 503 => 5 }, undef],
    local => [{ 200 => 3, 429 => 2 }, 3],
    allow => [{ 200 => 5 }, undef],
);
for my $policy (qw(deny local allow)) {
    configure("$R timeout=${T}ms on_error=$policy");
    my $key = "$policy-key";
    my $r = get($key);
    is(http_status($r), 200, "$policy: Redis up: counted");
    is(http_header($r, 'X-RateLimit-Remaining'), 2, "$policy: Redis up: headers from Redis");
    is($redis->command('GET', "authgate:${policy}_c"), 1, "$policy: Redis holds the count");

    $redis->stop;
    log_mark();
    my (%st, @limits);
    for (1 .. 5) {
        $r = get($key);
        $st{ http_status($r) }++;
        push @limits, http_header($r, 'X-RateLimit-Limit');
    }
    my ($want, $limit) = @{ $down_expect{$policy} };
    is_deeply(\%st, $want, "$policy: Redis down: " . join(', ', map { "$_: $want->{$_}" } sort keys %$want));
    is_deeply([grep { defined } @limits], $limit ? [($limit) x 5] : [],
              $limit ? "$policy: X-RateLimit-* from the local zone" : "$policy: no X-RateLimit-*");
    is(http_status(get('free-key')), 200, "$policy: Redis down: an unlimited consumer passes");
    my @lines = log_since(qr/key_auth_quota_store/);
    is(scalar @lines, 1, "$policy: one error line for the episode") or diag(join "\n", @lines);
    like($lines[0] // '', qr/\[error\] .*key_auth_quota_store \Q$R\E: .*\(on_error=$policy\) until Redis answers again/,
         "$policy: the line names the store and the policy");

    $redis->restart;
    my $back;
    for (1 .. 30) {
        $r = get($key);
        last if ($back = defined $redis->command('GET', "authgate:${policy}_c"));
        sleep 0.1;
    }
    ok($back, "$policy: Redis restarted: counting in Redis resumes by itself");
    is(http_header($r, 'X-RateLimit-Remaining'), 2, "$policy: a fresh window in the restarted Redis");
    is(scalar(log_since(qr/\[notice\] .*key_auth_quota_store \Q$R\E: Redis answers again/)), 1,
       "$policy: recovery logged once");
}

# --- with on_error=deny (the default), every way of failing -------------------
configure("$R timeout=${T}ms");
is(http_status(get('deny-key')), 200, 'deny: counting');

# a stalled Redis: the limited request waits for the timeout, not longer;
# meanwhile the worker serves others (one worker: the same one)
$redis->pause;
log_mark();
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $t->port(8080), Timeout => 5) or die;
my $t0 = time;
print $s "GET /index.html HTTP/1.1\r\nHost: a\r\napikey: deny-key\r\nConnection: close\r\n\r\n";
sleep 0.05;
my $t1 = time;
my $open = http_get('/open.html');
my $free = get('free-key');
my $others = time - $t1;
is(http_status($open), 200, 'stalled Redis: an unprotected page is served meanwhile');
is(http_status($free), 200, 'stalled Redis: an unlimited consumer is served meanwhile');
ok($others < 0.2 * $SLOW, 'stalled Redis: the others were not held up') or diag($others);
my $stalled = do { local $/; <$s> } // '';
my $waited = time - $t0;
like($stalled, qr{^HTTP/1\.1 503}, 'stalled Redis: the limited request gets 503');
ok($waited >= 0.8 * $T / 1000 && $waited < $T / 1000 + 0.5 * $SLOW,
   "stalled Redis: delayed by the timeout ($T ms), not more")
    or diag($waited);
$t0 = time;
is(http_status(get('deny-key')), 503, 'stalled Redis: the next request is refused too');
ok(time - $t0 < $T / 1000 + 0.5 * $SLOW, 'within the timeout') or diag(time - $t0);
is(scalar(log_since(qr/\[error\] .*no reply within $T ms/)), 1, "stalled Redis: one line, \"no reply within $T ms\"")
    or diag(join "\n", log_since(qr/quota_store/));
$redis->resume;
my $ok;
for (1 .. 30) { last if ($ok = http_status(get('deny-key')) != 503); sleep 0.1 }
ok($ok, 'stall over: counting resumes');

# a client that goes away while its request waits: the reply, when it comes,
# is dropped; the worker goes on
$redis->pause;
$s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $t->port(8080), Timeout => 5) or die;
print $s "GET /index.html HTTP/1.1\r\nHost: a\r\napikey: deny-key\r\n\r\n";
sleep 0.05;
close $s;
sleep 0.05;
$redis->resume;
sleep 0.4;
$ok = 0;
for (1 .. 30) { last if ($ok = http_status(get('deny-key')) != 503); sleep 0.1 }
ok($ok, 'a client gone while waiting: the worker carries on');

# a reload while a request waits for a stalled Redis: the old worker
# answers it (503 after the timeout) and exits cleanly
$redis->pause;
$s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $t->port(8080), Timeout => 5) or die;
print $s "GET /index.html HTTP/1.1\r\nHost: a\r\napikey: deny-key\r\nConnection: close\r\n\r\n";
sleep 0.05;
my $exits = () = $t->error_log =~ /exited with code 0/g;
$t->reload;
$stalled = do { local $/; <$s> } // '';
like($stalled, qr{^HTTP/1\.1 503}, 'reload while waiting: the old worker answers');
$redis->resume;
my $gone = 0;
for (1 .. 50) { last if ($gone = (() = $t->error_log =~ /exited with code 0/g) > $exits); sleep 0.1 }
ok($gone, 'reload while waiting: the old worker exits');
$ok = 0;
for (1 .. 30) { last if ($ok = http_status(get('deny-key')) != 503); sleep 0.1 }
ok($ok, 'reload while waiting: the new worker counts');

# Redis out of memory, and a read-only replica
for my $case (['OOM', ['CONFIG', 'SET', 'maxmemory', '1'], ['CONFIG', 'SET', 'maxmemory', '0']],
              ['READONLY', ['REPLICAOF', '127.0.0.1', $t->port('nowhere')], ['REPLICAOF', 'NO', 'ONE']]) {
    my ($name, $on, $off) = @$case;
    $redis->command(@$on);
    log_mark();
    my %st;
    $st{ http_status(get('deny-key')) }++ for 1 .. 3;
    is_deeply(\%st, { 503 => 3 }, "$name: 503");
    my @lines = log_since(qr/key_auth_quota_store/);
    is(scalar @lines, 1, "$name: one line") or diag(join "\n", @lines);
    like($lines[0] // '', qr/Redis answered "\Q$name\E/, "$name: the line quotes Redis");
    $redis->command(@$off);
    $redis->command('DEL', 'authgate:deny_c');
    is(http_status(get('deny-key')), 200, "$name over: counted again");
}

# credentials
my $L = 'redis://127.0.0.1:' . $locked->port;
my %auth = (
    'wrong password' => ["redis://:wrong-pass\@127.0.0.1:" . $locked->port, qr/AUTH or SELECT refused: WRONGPASS/],
    'no password'    => [$L, qr/Redis answered "NOAUTH/],
    'wrong ACL user' => ["redis://nobody:right-pass\@127.0.0.1:" . $locked->port, qr/AUTH or SELECT refused: WRONGPASS/],
);
for my $case (sort keys %auth) {
    my ($store, $re) = @{ $auth{$case} };
    configure("$store timeout=${T}ms");
    log_mark();
    my %st;
    $st{ http_status(get('deny-key')) }++ for 1 .. 3;
    is_deeply(\%st, { 503 => 3 }, "$case: 503");
    my @lines = log_since(qr/key_auth_quota_store/);
    is(scalar @lines, 1, "$case: one line") or diag(join "\n", @lines);
    like($lines[0] // '', $re, "$case: the line says why");
    unlike($t->error_log, qr/right-pass|wrong-pass/, "$case: no password in the error log");
}
configure("redis://default\@127.0.0.1:" . $locked->port . " password_file=redis.pw timeout=${T}ms");
my $r = get('deny-key');
is(http_status($r), 200, 'password_file: authenticated (ACL user "default")');
is(http_header($r, 'X-RateLimit-Remaining'), 2, 'password_file: counted');
is($locked->command('GET', 'authgate:deny_c'), 1, 'password_file: in the locked Redis');
configure("redis://127.0.0.1:" . $locked->port . "/3 password_file=redis.pw timeout=${T}ms prefix=db3:");
is(http_status(get('deny-key')), 200, 'a database: counted');
is($locked->command('GET', 'db3:deny_c'), undef, 'not in database 0');
is($locked->command_in_db(3, 'GET', 'db3:deny_c'), 1, 'in database 3 (SELECT)');

# reconnects back off: a server that accepts and closes at once sees a
# handful of connection attempts, not one per request
my $accepts = $t->testdir . '/accepts';
my $closer_port = $t->port('closer');
$t->run_daemon(sub {
    my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$closer_port", Listen => 64, ReuseAddr => 1)
        or die "listen: $!";
    my $n = 0;
    while (my $c = $l->accept) {
        close $c;
        $n++;
        open my $f, '>', $accepts or next;
        print $f "$n\n";
        close $f;
    }
});
$t->waitforsocket("127.0.0.1:$closer_port");
unlink $accepts;
configure("redis://127.0.0.1:$closer_port timeout=${T}ms");
log_mark();
my (%cl, $n_req);
my $t_end = time + 1.5;
while (time < $t_end) { $cl{ http_status(get('deny-key')) }++; $n_req++; sleep 0.01 }
my $attempts = ($t->read_file('accepts') // 0) + 0;
is_deeply(\%cl, { 503 => $n_req }, "a server closing every connection: $n_req requests, all 503");
ok($attempts >= ($SLOW > 1 ? 1 : 2) && $attempts <= 7, "reconnects back off (100 ms doubling to 1 s): $attempts connections in 1.5 s")
    or diag($attempts);
is(scalar(log_since(qr/key_auth_quota_store/)), 1, 'one line for the whole episode');

# something that is not Redis
configure("redis://127.0.0.1:$garbage_port timeout=${T}ms");
log_mark();
my %st;
$st{ http_status(get('deny-key')) }++ for 1 .. 3;
is_deeply(\%st, { 503 => 3 }, 'not RESP: 503');
my @lines = log_since(qr/key_auth_quota_store/);
is(scalar @lines, 1, 'not RESP: one line') or diag(join "\n", @lines);
like($lines[0] // '', qr/Redis sent something that is not RESP/, 'not RESP: the line says so');

unlike($t->error_log, qr/right-pass|wrong-pass/, 'no password anywhere in the error log');
$t->done;
