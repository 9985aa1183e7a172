#!/usr/bin/perl
# auth_http: unreachable services are retried, without blocking the worker.
#
# "Unreachable" is a 502/503/504 from the service location (connection
# refused, dropped, timed out, or the service itself answering 503) or a
# subrequest that failed without a status.  It is retried after interval,
# interval*backoff, interval*backoff^2, ... up to `times` retries; then the
# client gets 503 ($auth_http_result "error") and the error log says
#   auth_http: <superuser|ACL> service "<uri>" not reachable after N attempts
#   (last status S); answering 503
# Each retry logs "[info] ... retrying in M ms".  Other statuses (500, 404,
# ...) are answers and are not retried.  Superuser exhaustion is a 503 as
# well (fail closed), not "continue with the ACL".  Time assertions are
# lower bounds with generous upper bounds.

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('auth_http is ours only');

$t->write_file('protected.html', "PROTECTED\n");

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
worker_processes 1;
events {}
http {
    %%TEST_GLOBALS_HTTP%%

    map $http_x_acl_status $acl_status { "" 200; default $http_x_acl_status; }
    map $http_x_su_status  $su_status  { "" 403; default $http_x_su_status; }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        server_name localhost;
        add_header X-Result "[$auth_http_result]" always;

        # nothing listens there: connection refused -> 502
        location /_down/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8099%%/;
        }
        # the service takes 1 s, the location waits 200 ms -> 504
        location /_slow/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8092%%/slow/;
            proxy_read_timeout 200ms;
            proxy_set_header X-Ctl-Delay 1;
        }
        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8092%%/acl/;
            proxy_set_header X-Ctl-Status     $acl_status;
            proxy_set_header X-Ctl-Fail-First $http_x_acl_fail;
            proxy_set_header X-Ctl-Fail-With  $http_x_acl_fail_with;
            proxy_set_header X-Ctl-Fail-Key   $http_x_key;
        }
        location /_su/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8091%%/su/;
            proxy_set_header X-Ctl-Status     $su_status;
            proxy_set_header X-Ctl-Fail-First $http_x_su_fail;
            proxy_set_header X-Ctl-Fail-Key   $http_x_key;
        }

        location /refused/ {
            auth_http_acl   /_down/refused;
            auth_http_retry times=2 interval=200ms backoff=2.0;
            alias %%TESTDIR%%/;
        }
        location /timeout/ {
            auth_http_acl   /_slow/t;
            auth_http_retry times=1 interval=100ms;
            alias %%TESTDIR%%/;
        }
        location /recover/ {
            auth_http_acl   /_acl/recover;
            auth_http_retry times=3 interval=100ms backoff=2.0;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /pause/ {
            auth_http_acl   /_acl/pause;
            auth_http_retry times=2 interval=500ms;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /once/ {
            auth_http_acl   /_acl/once;
            auth_http_retry times=0 interval=1s;
            alias %%TESTDIR%%/;
        }
        location /slowretry/ {
            auth_http_acl   /_down/slowretry;
            auth_http_retry times=1 interval=2s;
            alias %%TESTDIR%%/;
        }
        location /fast/ {
            auth_http_acl   /_acl/fast;
            alias %%TESTDIR%%/;
        }
        location /su-down/ {
            auth_http_superuser /_down/su;
            auth_http_acl       /_acl/after-su;
            auth_http_retry     times=10 interval=1ms backoff=1.0;
            alias %%TESTDIR%%/;
        }
        location /su-flaky/ {
            auth_http_superuser /_su/flaky;
            auth_http_acl       /_acl/after-flaky-su;
            auth_http_retry     times=3 interval=50ms backoff=1.0;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /defaults/ {
            # no auth_http_retry: times=3 interval=1s backoff=2.0
            auth_http_acl /_down/defaults;
            alias %%TESTDIR%%/;
        }
    }
}
EOF

$t->run_backend(8091, name => 'su', mode => 'auth');
$t->run_backend(8092, name => 'acl', mode => 'auth');
$t->run_echo_server(8093);
$t->run;

sub hits { my @r = $t->requests($_[0]); return scalar @r }
sub clear { $t->clear_requests($_) for qw(su acl echo) }

my $key = 0;
sub timed_get {
    my ($uri, @h) = @_;
    $key++;
    my $t0 = time;
    my $r = http_get($uri, headers => ["X-Key: k$key", @h], timeout => 30);
    return ($r, time - $t0);
}

# the defaults (3 retries: 1 s + 2 s + 4 s) run in the background meanwhile
my $defaults_t0 = time;
my $defaults = http_get('/defaults/protected.html', start => 1);

###############################################################################
# connection refused: 503 after 2 retries, 200 ms + 400 ms

my ($r, $el) = timed_get('/refused/protected.html');
is(http_status($r), 503, 'refused: 503');
is(http_header($r, 'X-Result'), '[error]', 'refused: result error');
unlike(http_body($r), qr/PROTECTED/, 'refused: not the protected file');
cmp_ok($el, '>=', 0.6, 'refused: waited 200 ms + 400 ms');
my @l = $t->grep_log(qr/auth_http: ACL service "\/_down\/refused" not reachable after 3 attempts \(last status 502\); answering 503/);
is(scalar @l, 1, 'refused: the error-log line');
like($l[0] // '', qr/\[error\]/, 'refused: logged at [error]');
ok(scalar $t->grep_log(qr/\[info\].*auth_http: ACL service "\/_down\/refused" not reachable \(status 502\), retrying in 200 ms/),
   'refused: [info] retrying in 200 ms');
ok(scalar $t->grep_log(qr/\[info\].*auth_http: ACL service "\/_down\/refused" not reachable \(status 502\), retrying in 400 ms/),
   'refused: [info] retrying in 400 ms');
ok(!$t->grep_log(qr/retrying in 800 ms/), 'refused: no third retry');

###############################################################################
# timeouts (504) are retried

clear();
($r, $el) = timed_get('/timeout/protected.html');
is(http_status($r), 503, 'timeout: 503');
is(hits('acl'), 2, 'timeout: asked twice (times=1)');
cmp_ok($el, '>=', 0.5, 'timeout: 200 ms + 100 ms + 200 ms');
ok(scalar $t->grep_log(qr/ACL service "\/_slow\/t" not reachable after 2 attempts \(last status 504\)/),
   'timeout: the error-log line names 504');

###############################################################################
# a service that recovers: allowed once it answers

for my $case ([503, 2, 0.3], [502, 3, 0.7], [504, 1, 0.1], [drop => 2, 0.3]) {
    my ($with, $fails, $min) = @$case;
    clear();
    ($r, $el) = timed_get('/recover/x', "X-Acl-Fail: $fails", "X-Acl-Fail-With: $with");
    is(http_status($r), 200, "recover after $fails x $with: allowed");
    is(http_header($r, 'X-Result'), '[allow]', "recover after $fails x $with: result allow");
    is(hits('acl'), $fails + 1, "recover after $fails x $with: $fails failed attempts + 1");
    is(hits('echo'), 1, "recover after $fails x $with: upstream asked once");
    cmp_ok($el, '>=', $min, "recover after $fails x $with: waited the backoff schedule");
}

# ... and the answer after recovering is the ACL's answer
clear();
($r) = timed_get('/recover/x', 'X-Acl-Fail: 1', 'X-Acl-Status: 403');
is(http_status($r), 403, 'recover, then deny: 403');
is(http_header($r, 'X-Result'), '[deny]', 'recover, then deny: result deny');
is(hits('acl'), 2, 'recover, then deny: two attempts');

# the same over HTTP/2 (the pause is on the stream)
clear();
$key++;
$r = http2_request('/recover/h2', headers => ["X-Key: h2-$key", 'X-Acl-Fail: 2']);
like($r, qr{^HTTP/2 200}, 'HTTP/2, recover after 2 failures: allowed');
is(hits('acl'), 3, 'HTTP/2: three attempts');

# one more failure than retries: 503
clear();
($r) = timed_get('/recover/x', 'X-Acl-Fail: 4');
is(http_status($r), 503, 'fails 4 times with times=3: 503');
is(hits('acl'), 4, 'fails 4 times with times=3: four attempts');
is(hits('echo'), 0, 'fails 4 times: upstream never asked');

###############################################################################
# answers are not retried

for my $status (500, 404, 403, 401, 400) {
    clear();
    ($r) = timed_get('/recover/x', "X-Acl-Status: $status");
    is(http_status($r), 403, "ACL $status: 403");
    is(http_header($r, 'X-Result'), '[deny]', "ACL $status: deny");
    is(hits('acl'), 1, "ACL $status: not retried");
}
for my $status (500, 404) {
    clear();
    ($r) = timed_get('/su-flaky/x', "X-Su-Status: $status");
    is(http_status($r), 200, "superuser $status: an answer, on to the ACL");
    is(http_header($r, 'X-Result'), '[allow]', "superuser $status: ACL allowed");
    is(hits('su'), 1, "superuser $status: not retried");
    is(hits('acl'), 1, "superuser $status: ACL asked");
}

# times=0: no retry at all
clear();
($r, $el) = timed_get('/once/protected.html', 'X-Acl-Status: 503');
is(http_status($r), 503, 'times=0, service 503: 503');
is(hits('acl'), 1, 'times=0: one attempt');
ok(!$t->grep_log(qr/ACL service "\/_acl\/once" not reachable \(status 503\), retrying/), 'times=0: no wait (no retry planned)');
ok(scalar $t->grep_log(qr/ACL service "\/_acl\/once" not reachable after 1 attempts \(last status 503\)/),
   'times=0: logged');

###############################################################################
# superuser: retried, and exhaustion is a 503 (fail closed)

clear();
($r) = timed_get('/su-down/protected.html');
is(http_status($r), 503, 'superuser unreachable: 503, not "ask the ACL"');
is(http_header($r, 'X-Result'), '[error]', 'superuser unreachable: result error');
is(hits('acl'), 0, 'superuser unreachable: ACL never asked');
ok(scalar $t->grep_log(qr/\[error\].*auth_http: superuser service "\/_down\/su" not reachable after 11 attempts \(last status 502\); answering 503/),
   'superuser unreachable: error-log line (times=10: 11 attempts)');

clear();
($r) = timed_get('/su-flaky/x', 'X-Su-Fail: 2', 'X-Acl-Fail: 2');
is(http_status($r), 200, 'superuser and ACL both recover: allowed');
is(hits('su'), 3, 'superuser: 2 failures + the answer');
is(hits('acl'), 3, 'ACL: its own 3 retries, counted afresh');

clear();
($r) = timed_get('/su-flaky/x', 'X-Su-Fail: 1', 'X-Su-Status: 200');
is(http_status($r), 200, 'superuser recovers and says 200: allowed');
is(http_header($r, 'X-Result'), '[superuser]', 'superuser recovers: superuser');
is(hits('acl'), 0, 'superuser recovers: ACL not asked');

###############################################################################
# the worker is not blocked: others are served while a request waits

my $slow_t0 = time;
my $slow1 = http_get('/slowretry/protected.html', start => 1);
my $slow2 = http_get('/slowretry/protected.html', start => 1);
sleep 0.3;
($r, $el) = timed_get('/fast/protected.html');
is(http_status($r), 200, 'while two requests wait for a retry: another client is served');
cmp_ok($el, '<', 1, 'while two requests wait for a retry: promptly');
my $s1 = http_end($slow1, timeout => 10);
my $s2 = http_end($slow2, timeout => 10);
my $slow_el = time - $slow_t0;
is(http_status($s1), 503, 'slow retry 1: 503 in the end');
is(http_status($s2), 503, 'slow retry 2: 503 in the end');
cmp_ok($slow_el, '>=', 2, 'slow retries: waited 2 s');
cmp_ok($slow_el, '<', 3.5, 'slow retries: in parallel, not one after the other');

###############################################################################
# a client that goes away while waiting: no further attempt, no crash

clear();
my $gone = http_get('/pause/gone', headers => ['X-Key: gone', 'X-Acl-Fail: 3'], start => 1);
sleep 0.2;
close $gone;
sleep 1;
is(hits('acl'), 1, 'client gone during the retry pause: no further attempt');
ok(scalar $t->wait_for_log(qr/client prematurely closed connection/, 2),
   'client gone: nginx noticed');

# ... also an HTTP/2 stream that is reset during the pause
clear();
http2_request('/pause/h2gone', headers => ['X-Key: h2gone', 'X-Acl-Fail: 3'], timeout => 0.25);
sleep 1;
is(hits('acl'), 1, 'HTTP/2 stream gone during the retry pause: no further attempt');
($r) = timed_get('/fast/protected.html');
is(http_status($r), 200, 'HTTP/2 stream gone: the worker still serves');

###############################################################################
# the defaults: 3 retries, 1 s, 2 s, 4 s

my $d = http_end($defaults, timeout => 20);
my $d_el = time - $defaults_t0;
is(http_status($d), 503, 'defaults: 503');
cmp_ok($d_el, '>=', 7, 'defaults: 1 s + 2 s + 4 s');
cmp_ok($d_el, '<', 12, 'defaults: and not much longer');
ok(scalar $t->grep_log(qr/ACL service "\/_down\/defaults" not reachable after 4 attempts/),
   'defaults: 4 attempts');
for my $ms (1000, 2000, 4000) {
    ok(scalar $t->grep_log(qr/"\/_down\/defaults" not reachable \(status 502\), retrying in $ms ms/),
       "defaults: retrying in $ms ms");
}

$t->done;
