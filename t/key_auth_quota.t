#!/usr/bin/perl
# key_auth quotas: fixed windows counted in a shared zone across workers,
# X-RateLimit-* on every response of a limited consumer, limit_status with no
# upstream request, window roll-over, counts kept across reload, and a full
# zone failing closed. Reproduces the walkthrough of the issue.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;
use Time::HiRes qw(sleep);

my $t = AGTest->new->skip_unless_module;

my $conf = <<'EOF2';
%%TEST_GLOBALS%%
worker_processes 2;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    log_format consumer '$status $key_auth_consumer';
    key_auth_zone key_auth 1m;
    key_auth_consumers {
        %%EXTRA%%
        jack       key=jack-key  credential=cred-jack-key-auth  custom_id=495aec6a  limit=3/30s  limit_status=429;
        anonymous                                                                  limit=1/30s  limit_status=429;
        many       key=many-key  limit=20/1m;
        quick      key=quick-key limit=1/1s;
        default    key=default-key limit=1/1m;
        free       key=free-key;
        redirected key=redirected-key limit=2/1m;
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
(my $first = $conf) =~ s/%%EXTRA%%//;
$t->write_file_expand('nginx.conf', $first);
$t->run_echo_server(8082);
$t->run;

sub nreq { my @r = $t->requests($_[0]); return scalar @r }

sub get { http_get('/echo/x', headers => [@_]) }

# the walkthrough: jack 3/30s, anonymous 1/30s
my (%jack, %anon, @pids);
for my $i (1 .. 5) {
    my $r = get('apikey: jack-key');
    $jack{ http_status($r) }++;
    push @pids, http_header($r, 'X-Worker');
    is(http_header($r, 'X-RateLimit-Limit'), 3, "jack #$i: X-RateLimit-Limit");
    is(http_header($r, 'X-RateLimit-Remaining'), $i <= 3 ? 3 - $i : 0, "jack #$i: X-RateLimit-Remaining");
    my $reset = http_header($r, 'X-RateLimit-Reset');
    ok(defined $reset && $reset >= 1 && $reset <= 30, "jack #$i: X-RateLimit-Reset in 1..30")
        or diag($reset);
}
is_deeply(\%jack, { 200 => 3, 429 => 2 }, 'five requests with jack\'s key: 200: 3, 429: 2');
for my $i (1 .. 5) {
    my $r = get();
    $anon{ http_status($r) }++;
}
is_deeply(\%anon, { 200 => 1, 429 => 4 }, 'five without a key: 200: 1, 429: 4');
my @logged = split /\n/, $t->read_file('consumer.log');
is_deeply([@logged[0 .. 9]],
          [('200 jack') x 3, ('429 jack') x 2, '200 anonymous', ('429 anonymous') x 4],
          'access log names the consumer, also of refused-by-quota requests');

# over the limit: no upstream request
$t->clear_requests('echo');
my $r = get('apikey: jack-key');
is(http_status($r), 429, 'still over the limit');
is(nreq('echo'), 0, 'over the limit: the upstream is not asked');
like(http_body($r), qr/429/, 'nginx\'s own page for the status');

# a consumer without limit_status gets 503; one without a limit no headers
is(http_status(get('apikey: default-key')), 200, 'default: first');
$r = get('apikey: default-key');
is(http_status($r), 503, 'default limit_status is 503');
is(http_header($r, 'X-RateLimit-Remaining'), 0, '503 carries the headers');
$r = get('apikey: free-key');
is(http_status($r), 200, 'unlimited consumer');
is(http_header($r, 'X-RateLimit-Limit'), undef, 'unlimited consumer: no X-RateLimit-*');

# counted across both workers
my (%m, %mpids);
for (1 .. 20) {
    $r = get('apikey: many-key');
    $m{ http_status($r) }++;
    $mpids{ http_header($r, 'X-Worker') }++;
}
$r = get('apikey: many-key');
$mpids{ http_header($r, 'X-Worker') }++;
is_deeply(\%m, { 200 => 20 }, '20 of 20 allowed');
is(http_status($r), 503, 'the 21st is refused');
is(scalar keys %mpids, 2, 'requests were served by both workers') or diag(join ' ', keys %mpids);

# the window rolls over
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
is(http_status(http_get('/tf/x', headers => ['apikey: redirected-key'])), 200, 'redirected #2: 200');
is(http_status(http_get('/tf/x', headers => ['apikey: redirected-key'])), 503, 'redirected #3: over');

# counts survive a reload, keyed by consumer name (a consumer is inserted
# before jack, so every index moves)
(my $second = $conf) =~ s/%%EXTRA%%/newcomer key=new-key limit=5\/1m;/;
$t->write_file_expand('nginx.conf', $second);
$t->reload;
sleep 0.3;
$r = get('apikey: jack-key');
is(http_status($r), 429, 'after reload: jack still over the limit');
is(http_header($r, 'X-RateLimit-Remaining'), 0, 'after reload: remaining 0');
$r = get('apikey: new-key');
is(http_status($r), 200, 'after reload: the new consumer counts from zero');
is(http_header($r, 'X-RateLimit-Remaining'), 4, 'after reload: new consumer remaining 4');

$t->done;

