#!/usr/bin/perl
# authgate_status: the counters equal a known traffic mix exactly, on 2
# workers, for every auth_request and key_auth outcome (errors included);
# JSON in the documented shape, Prometheus text accepted by a real
# `promtool check metrics`; format chosen by ?format=, Accept, directive.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;
use JSON::PP;

my $t = AGTest->new->skip_unless_module;
$t->write_file('protected.html', "PROTECTED\n");
$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
worker_processes 2;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    authgate_status_zone status 1m consumers=on;
    key_auth_zone quota 1m;
    key_auth_consumers {
        jack   key=jack-key limit=2/1m limit_status=429;
        free   key=free-key;
        "we\"ird" key=weird-key;
        anon;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        location = /p {
            auth_request /auth/p;
            alias %%TESTDIR%%/protected.html;
        }
        location = /q {
            auth_request "/auth/q?x=\"y\"";
            alias %%TESTDIR%%/protected.html;
        }
        location = /k {
            key_auth on;
            alias %%TESTDIR%%/protected.html;
        }
        location = /anon {
            key_auth on;
            key_auth_anonymous_consumer anon;
            alias %%TESTDIR%%/protected.html;
        }
        location = /status {
            allow 127.0.0.1;
            deny all;
            authgate_status;
        }
        location = /metrics {
            authgate_status prometheus;
        }
    }
}
EOF2
$t->run_auth_service(8081);
$t->run;

my %sent;
sub send_req {
    my ($uri, $want, @headers) = @_;
    my $r = http_get($uri, headers => [@headers]);
    is(http_status($r), $want, "$uri @headers -> $want");
}
# auth_request /auth/p: allow 3, 401 2, 403 1, error 2 (404 and 502)
send_req('/p', 200) for 1 .. 3;
send_req('/p', 401, 'X-Ctl-Status: 401') for 1 .. 2;
send_req('/p', 403, 'X-Ctl-Status: 403');
send_req('/p', 500, 'X-Ctl-Status: 404');
send_req('/p', 500, 'X-Ctl-Status: 502');
# a second auth URI (with characters to escape): allow 1
send_req('/q', 200);
# key_auth: allowed 2 (jack) + 2 (free) + 1 (weird), over quota 1 (jack),
# missing 2, invalid 1, anonymous 1
send_req('/k', 200, 'apikey: jack-key') for 1 .. 2;
send_req('/k', 429, 'apikey: jack-key');
send_req('/k', 200, 'apikey: free-key') for 1 .. 2;
send_req('/k', 200, 'apikey: weird-key');
send_req('/k', 401) for 1 .. 2;
send_req('/k', 401, 'apikey: wrong');
send_req('/anon', 200);

my $r = http_get('/status');
is(http_status($r), 200, 'status page');
like(http_header($r, 'Content-Type'), qr{^application/json}, 'JSON by default');
my $s = eval { decode_json(http_body($r)) };
ok($s, 'valid JSON') or diag(http_body($r));
$s ||= {};

is($s->{version}, 1, 'version');
is($s->{zone}, 'status', 'zone name');
is($s->{process}{workers}, 2, 'workers');
is($s->{process}{reloads}, 0, 'no reload yet');
is($s->{process}{dropped}, 0, 'nothing dropped');
ok($s->{process}{capacity} > 100, 'capacity');

my %ar = map { $_->{uri} => $_ } @{ $s->{auth_request} || [] };
is_deeply($ar{'/auth/p'}{decisions}, { allow => 3, unauthorized => 2, forbidden => 1, passed => 0, error => 2 },
    'auth_request decisions for /auth/p');
is_deeply($ar{'/auth/q?x="y"'}{decisions}, { allow => 1, unauthorized => 0, forbidden => 0, passed => 0, error => 0 },
    'auth_request decisions for the second URI');
is_deeply($ar{'/auth/p'}{cache}, { hit => 0, miss => 0, store => 0, eviction => 0 }, 'cache slot reserved');
my $h = $ar{'/auth/p'}{duration_ms} || {};
is($h->{count}, 8, 'latency histogram count = decisions');
is($h->{le}{'+Inf'}, 8, '+Inf bucket = count');
my @le = sort { $a <=> $b } grep { $_ ne '+Inf' } keys %{ $h->{le} || {} };
is_deeply(\@le, [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000], 'bucket bounds (ms)');
my $prev = 0;
ok((!grep { my $ok = $h->{le}{$_} >= $prev; $prev = $h->{le}{$_}; !$ok } @le), 'buckets cumulative');

my ($ka) = @{ $s->{key_auth} || [] };
is_deeply($ka->{requests}, { allowed => 5, missing => 2, invalid => 1, anonymous => 1,
    over_quota => 1, zone_full => 0, error => 0 }, 'key_auth outcomes');
my %kc = map { $_->{consumer} => $_ } @{ $s->{key_auth_consumers} || [] };
is_deeply($kc{jack}, { consumer => 'jack', requests => 3, over_quota => 1 }, 'jack: 3 requests, 1 over quota');
is_deeply($kc{free}, { consumer => 'free', requests => 2, over_quota => 0 }, 'free: 2 requests');
is($kc{'we"ird'}{requests}, 1, 'a consumer name with a quote');
is($kc{anon}{requests}, 1, 'the anonymous consumer');
is_deeply($s->{auth_http}, [], 'no auth_http series');
is_deeply($s->{ntlm}, [], 'no ntlm series');

# the status request itself changed nothing; a second read agrees
my $again = decode_json(http_body(http_get('/status')));
is_deeply($again->{auth_request}, $s->{auth_request}, 'reading changes nothing');

# Prometheus text
$r = http_get('/metrics');
is(http_status($r), 200, 'metrics');
like(http_header($r, 'Content-Type'), qr{^text/plain; version=0\.0\.4}, 'exposition content type');
my $text = http_body($r);
like($text, qr/^# HELP authgate_auth_request_decisions_total /m, '# HELP');
like($text, qr/^# TYPE authgate_auth_request_duration_seconds histogram$/m, '# TYPE histogram');
like($text, qr/^authgate_auth_request_decisions_total\{uri="\/auth\/p",decision="allow"\} 3$/m, 'a counter');
like($text, qr/^authgate_auth_request_decisions_total\{uri="\/auth\/q\?x=\\"y\\"",decision="allow"\} 1$/m,
    'label value escaped');
like($text, qr/^authgate_auth_request_duration_seconds_bucket\{uri="\/auth\/p",le="\+Inf"\} 8$/m, '_bucket');
like($text, qr/^authgate_auth_request_duration_seconds_count\{uri="\/auth\/p"\} 8$/m, '_count');
like($text, qr/^authgate_auth_request_duration_seconds_sum\{uri="\/auth\/p"\} \d+\.\d{3}$/m, '_sum');
like($text, qr/^authgate_key_auth_requests_total\{outcome="over_quota"\} 1$/m, 'key_auth counter');
like($text, qr/^authgate_key_auth_consumer_requests_total\{consumer="we\\"ird"\} 1$/m, 'consumer label escaped');
like($text, qr/^authgate_status_workers\{zone="status"\} 2$/m, 'process gauge');
$t->write_file('metrics.txt', $text);

SKIP: {
    my ($promtool) = grep { -x } map { "$_/promtool" } split /:/, $ENV{PATH};
    skip 'promtool not installed (ci/setup.sh installs prometheus)', 2 unless $promtool;
    my $file = $t->testdir . '/metrics.txt';
    my $out = `$promtool check metrics < $file 2>&1`;
    is($?, 0, 'promtool check metrics accepts the text') or diag($out);
    unlike($out, qr/error/i, 'promtool reports no error') or diag($out);
}

# choosing the format
like(http_header(http_get('/status?format=prometheus'), 'Content-Type'), qr{^text/plain}, '?format=prometheus');
like(http_header(http_get('/metrics?format=json'), 'Content-Type'), qr{^application/json}, '?format=json');
like(http_header(http_get('/metrics', headers => ['Accept: application/json']), 'Content-Type'),
    qr{^application/json}, 'Accept: application/json');
like(http_header(http_get('/status', headers => ['Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5']),
    'Content-Type'), qr{^text/plain}, 'what Prometheus sends in Accept');
like(http_header(http_get('/status', headers => ['Accept: */*']), 'Content-Type'), qr{^application/json},
    'Accept */*: the directive\'s format');
$r = http_get('/status', method => 'HEAD');
is(http_status($r), 200, 'HEAD');
is(http_body($r), '', 'HEAD: no body');
is(http_status(http_post('/status', 'x')), 405, 'POST refused');

$t->done;
