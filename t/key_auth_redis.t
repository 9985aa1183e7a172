#!/usr/bin/perl
# key_auth quotas counted in a real redis-server (key_auth_quota_store):
# the walkthrough with X-RateLimit-* from Redis' answer, the keys an
# operator sees (prefix + consumer name, a TTL in milliseconds), one
# EVALSHA round trip per request (EVAL once after NOSCRIPT), counted once
# across an internal redirect, and Redis down failing closed (503, one
# error-log line per episode) then recovering by itself.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;
use AGRedis;
use Time::HiRes qw(sleep time);

my $t = AGTest->new->skip_unless_module;
$t->skip_all('no redis-server (ci/setup.sh installs it)') unless AGRedis->available;
my $redis = AGRedis->start($t);

$t->write_file('index.html', "PROTECTED\n");
$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
worker_processes 2;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    log_format consumer '$status $key_auth_consumer';
    key_auth_quota_store redis://127.0.0.1:%%PORT_redis%% timeout=500ms;
    key_auth_consumers {
        jack       key=jack-key  credential=cred-jack-key-auth  custom_id=495aec6a  limit=3/30s  limit_status=429;
        anonymous                                                                  limit=1/30s  limit_status=429;
        many       key=many-key  limit=20/1m;
        quick      key=quick-key limit=1/1s;
        free       key=free-key;
        redirected key=redirected-key limit=2/1m;
        down       key=down-key  limit=100/1m;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        add_header X-Worker $pid always;
        access_log %%TESTDIR%%/consumer.log consumer;
        location /echo/ {
            key_auth on;
            key_auth_anonymous_consumer anonymous;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location = /static.html {
            key_auth on;
            alias %%TESTDIR%%/index.html;
        }
        location /tf/ {
            key_auth on;
            try_files /nonexistent @fallback;
        }
        location @fallback {
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
    }
}
EOF2
$t->run_echo_server(8082);
$t->run;

sub get { http_get('/echo/x', headers => [@_]) }
sub calls {
    my %calls;
    for (split /\r\n/, $redis->command('INFO', 'commandstats')) {
        $calls{$1} = $2 if /^cmdstat_(\w+):calls=(\d+)/;
    }
    return \%calls;
}

# the walkthrough: jack 3/30s, anonymous 1/30s
my (%jack, %anon, %workers);
for my $i (1 .. 5) {
    my $r = get('apikey: jack-key');
    $jack{ http_status($r) }++;
    $workers{ http_header($r, 'X-Worker') // '' }++;
    is(http_header($r, 'X-RateLimit-Limit'), 3, "jack #$i: X-RateLimit-Limit");
    is(http_header($r, 'X-RateLimit-Remaining'), $i <= 3 ? 3 - $i : 0, "jack #$i: X-RateLimit-Remaining");
    my $reset = http_header($r, 'X-RateLimit-Reset');
    ok(defined $reset && $reset >= 25 && $reset <= 30, "jack #$i: X-RateLimit-Reset from PTTL, in seconds")
        or diag($reset);
}
is_deeply(\%jack, { 200 => 3, 429 => 2 }, 'five requests with jack\'s key: 200: 3, 429: 2');
$anon{ http_status(get()) }++ for 1 .. 5;
is_deeply(\%anon, { 200 => 1, 429 => 4 }, 'five without a key: 200: 1, 429: 4');
my @logged = split /\n/, $t->read_file('consumer.log');
is_deeply([@logged[0 .. 9]],
          [('200 jack') x 3, ('429 jack') x 2, '200 anonymous', ('429 anonymous') x 4],
          'access log names the consumer, also of refused-by-quota requests');

# what an operator sees in Redis: prefix + consumer name, never a key
is($redis->command('GET', 'authgate:jack'), 5, 'authgate:jack counts every request of the window');
is($redis->command('GET', 'authgate:anonymous'), 5, 'authgate:anonymous too');
my $pttl = $redis->command('PTTL', 'authgate:jack');
ok($pttl > 25_000 && $pttl <= 30_000, 'the window is 30 s in milliseconds (PEXPIRE)') or diag($pttl);
my $keys = $redis->command('KEYS', '*');
is_deeply([sort @$keys], ['authgate:anonymous', 'authgate:jack'], 'no other key');
ok(!grep(/jack-key/, @$keys), 'no API key in Redis');

# one round trip per request: EVALSHA each time, EVAL once per worker
# (its first EVALSHA met NOSCRIPT on this fresh Redis)
my $c = calls();
my $n = $c->{evalsha} // 0;
is($n, 10, 'one EVALSHA per request') or diag(explain $c);
ok(($c->{eval} // 0) >= 1 && ($c->{eval} // 0) <= 2, 'EVAL only after NOSCRIPT, once per worker connection')
    or diag(explain $c);

# a static file too; over the limit: no upstream request
$t->clear_requests('echo');
is(http_status(http_get('/static.html', headers => ['apikey: jack-key'])), 429, 'static file: over the limit');
my $r = get('apikey: jack-key');
is(http_status($r), 429, 'still over the limit');
is(scalar($t->requests('echo')), 0, 'over the limit: the upstream is not asked');
$r = get('apikey: free-key');
is(http_status($r), 200, 'unlimited consumer');
is(http_header($r, 'X-RateLimit-Limit'), undef, 'unlimited consumer: no X-RateLimit-*, no Redis');

# counted across both workers
my %m;
my %mpids;
for (1 .. 20) {
    $r = get('apikey: many-key');
    $m{ http_status($r) }++;
    $mpids{ http_header($r, 'X-Worker') }++;
}
is_deeply(\%m, { 200 => 20 }, '20 of 20 allowed');
is(http_status(get('apikey: many-key')), 503, 'the 21st is refused (default limit_status)');

# the window rolls over (Redis expires the key)
is(http_status(get('apikey: quick-key')), 200, 'quick: first');
is(http_status(get('apikey: quick-key')), 503, 'quick: second in the window');
sleep 1.2;
$r = get('apikey: quick-key');
is(http_status($r), 200, 'quick: new window after 1s');
is(http_header($r, 'X-RateLimit-Remaining'), 0, 'quick: remaining 0 in the new window');

# an internal redirect into another key_auth location counts once
$r = http_get('/tf/x', headers => ['apikey: redirected-key']);
is(http_status($r), 200, 'redirected #1: 200 through the named location');
is_deeply([http_header($r, 'X-RateLimit-Remaining')], [1], 'redirected #1: counted once, one header set');
is($redis->command('GET', 'authgate:redirected'), 1, 'redirected #1: one INCR');
is(http_status(http_get('/tf/x', headers => ['apikey: redirected-key'])), 200, 'redirected #2: 200');
is(http_status(http_get('/tf/x', headers => ['apikey: redirected-key'])), 503, 'redirected #3: over');

# Redis down: limited consumers get 503 quickly, one log line per episode
# and worker; unlimited consumers are not affected
$redis->stop;
my %down;
my $t0 = time;
for (1 .. 10) {
    $r = get('apikey: down-key');
    $down{ http_status($r) }++;
    is(http_header($r, 'X-RateLimit-Limit'), undef, 'no X-RateLimit-* without an answer') if $_ == 1;
}
ok(time - $t0 < (AGTest::valgrind() ? 30 : 3), 'refused without waiting') or diag(time - $t0);
is_deeply(\%down, { 503 => 10 }, 'Redis down: on_error=deny (the default) refuses with 503');
is(http_status(get('apikey: free-key')), 200, 'Redis down: an unlimited consumer passes');
my @episode = $t->grep_log(qr/key_auth_quota_store redis:\/\/127\.0\.0\.1:\d+: .*on_error=deny/);
ok(@episode >= 1 && @episode <= 2, 'one error line per worker for the episode') or diag(join "\n", @episode);
like($episode[0] // '', qr/\[error\].*refused with 503/, 'it says what happens');
is(scalar $t->grep_log(qr/connect\(\) to .* failed/), 0, 'no line per connect attempt');

# Redis comes back (empty, so NOSCRIPT again): counting resumes by itself
$redis->restart;
my $back;
for (1 .. 40) {
    $r = get('apikey: down-key');
    if (http_status($r) == 200) { $back = $r; last }
    sleep 0.1;
}
ok($back, 'after Redis restarts, requests are counted again (reconnect within the back-off)');
is(http_header($back // '', 'X-RateLimit-Limit'), 100, 'with headers from Redis');
my @recovered = $t->grep_log(qr/key_auth_quota_store .*: Redis answers again/);
ok(@recovered >= 1, 'recovery is logged') or diag($t->error_log);

$t->done;
