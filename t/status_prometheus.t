#!/usr/bin/perl
# authgate_status prometheus: a real Prometheus server (Debian package
# "prometheus"), started by this test on 127.0.0.1 with a scrape config
# pointing at nginx, scrapes the endpoint; its HTTP API (/api/v1/query)
# returns the counters nginx counted, and the scrape is healthy.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;
my ($prometheus) = grep { -x } map { "$_/prometheus" } split /:/, $ENV{PATH};
$t->skip_all('prometheus not installed (ci/setup.sh installs it)') unless $prometheus;

$t->write_file('protected.html', "PROTECTED\n");
$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
worker_processes 2;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    authgate_status_zone status 1m;
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
        location = /metrics {
            allow 127.0.0.1;
            deny all;
            authgate_status prometheus;
        }
    }
}
EOF2
$t->run_auth_service(8081);
$t->run;

is(http_status(http_get('/p')), 200, 'allowed') for 1 .. 3;
is(http_status(http_get('/p', headers => ['X-Ctl-Status: 403'])), 403, 'forbidden') for 1 .. 2;

my $nginx = $t->port(8080);
my $web = $t->port(8090);
my $dir = $t->testdir;
$t->write_file('prometheus.yml', <<"EOF2");
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: authgate
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:$nginx"]
EOF2
$t->run_daemon($prometheus, "--config.file=$dir/prometheus.yml", "--storage.tsdb.path=$dir/prometheus-data",
    "--web.listen-address=127.0.0.1:$web", '--log.level=error');
ok($t->waitforsocket("127.0.0.1:$web"), 'prometheus listens') or BAIL_OUT('prometheus did not start');

sub query {
    my ($q) = @_;
    (my $e = $q) =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge;
    my $r = http_get("/api/v1/query?query=$e", port => $web);
    return eval { decode_json(http_body($r)) } || {};
}

# wait (up to 30 s) for a scrape that saw the counters
my ($allow, $forbidden, $up);
my $deadline = time + 30;
while (time < $deadline) {
    my $res = query('authgate_auth_request_decisions_total{uri="/auth/p",decision="allow"}');
    ($allow) = map { $_->{value}[1] } @{ $res->{data}{result} || [] };
    last if defined $allow;
    sleep 0.5;
}
is($allow, 3, 'Prometheus stored authgate_auth_request_decisions_total{decision="allow"} = 3');
($forbidden) = map { $_->{value}[1] }
    @{ query('authgate_auth_request_decisions_total{decision="forbidden"}')->{data}{result} || [] };
is($forbidden, 2, 'forbidden = 2');
($up) = map { $_->{value}[1] } @{ query('up{job="authgate"}')->{data}{result} || [] };
is($up, 1, 'the scrape target is up');
my ($count) = map { $_->{value}[1] }
    @{ query('authgate_auth_request_duration_seconds_count{uri="/auth/p"}')->{data}{result} || [] };
is($count, 5, 'histogram _count ingested');
my ($workers) = map { $_->{value}[1] } @{ query('authgate_status_workers')->{data}{result} || [] };
is($workers, 2, 'gauge ingested');

# the target's health as Prometheus sees it: no scrape error
my $targets = eval { decode_json(http_body(http_get('/api/v1/targets', port => $web))) } || {};
my ($target) = @{ $targets->{data}{activeTargets} || [] };
is($target->{health}, 'up', 'target health up');
is($target->{lastError}, '', 'no scrape error') or diag($target->{lastError});

# more traffic shows up in a later scrape
is(http_status(http_get('/p')), 200, 'one more') ;
$deadline = time + 15;
while (time < $deadline) {
    ($allow) = map { $_->{value}[1] }
        @{ query('authgate_auth_request_decisions_total{uri="/auth/p",decision="allow"}')->{data}{result} || [] };
    last if ($allow // 0) == 4;
    sleep 0.5;
}
is($allow, 4, 'a later scrape sees 4');

$t->done;
