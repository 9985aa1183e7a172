#!/usr/bin/perl
# nginx-conf/grafana-authgate.json: valid JSON (a Grafana dashboard), whose
# PromQL expressions name only metrics the module exports: the names are
# read from a running nginx that uses every mechanism, so a renamed metric
# fails here. With prometheus installed, each expression is also evaluated
# by a real Prometheus (started here, scraping that nginx): it must parse,
# and the panels over counted traffic return data.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep time);
use lib 't/lib', 't/backends';
use AGTest;
use NtlmBackend;

my $t = AGTest->new->skip_unless_module;
my $dashboard_file = $t->root . '/nginx-conf/grafana-authgate.json';
my $dashboard = eval { decode_json($t->read_file($dashboard_file)) };
ok($dashboard, 'the dashboard is valid JSON') or diag($@);
$dashboard ||= {};
is($dashboard->{title}, 'nginx-authgate', 'a dashboard titled nginx-authgate');
ok(ref $dashboard->{panels} eq 'ARRAY' && @{ $dashboard->{panels} } > 5, 'with panels');

my @exprs = map { $_->{expr} } grep { defined $_->{expr} } map { @{ $_->{targets} || [] } } @{ $dashboard->{panels} || [] };
ok(@exprs >= 20, scalar(@exprs) . ' PromQL expressions');
my @template = map { $_->{definition} // () } @{ $dashboard->{templating}{list} || [] };

$t->write_file('protected.html', "PROTECTED\n");
$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    authgate_status_zone status 1m consumers=on;
    key_auth_consumers { jack key=jack-key; }
    upstream app {
        server 127.0.0.1:%%PORT_8082%%;
        ntlm;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location /auth/ { proxy_pass http://127.0.0.1:%%PORT_8081%%; }
        location /_acl/ { internal; proxy_pass http://127.0.0.1:%%PORT_8081%%/acl/; }
        location = /ar { auth_request /auth/ar; alias %%TESTDIR%%/protected.html; }
        location = /ah { auth_http_acl /_acl/check; alias %%TESTDIR%%/protected.html; }
        location = /ka { key_auth on; alias %%TESTDIR%%/protected.html; }
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /metrics { authgate_status prometheus; }
    }
}
EOF2
$t->run_auth_service(8081);
$t->run_daemon(\&NtlmBackend::serve, port => $t->port(8082), name => 'b', state => $t->testdir . '/b.events');
$t->waitforsocket($t->port(8082)) or die;
$t->run;

http_get('/ar') for 1 .. 3;
http_get('/ah') for 1 .. 2;
http_get('/ka', headers => ['apikey: jack-key']) for 1 .. 2;
my $c = NtlmBackend::client($t->port(8080));
NtlmBackend::request($c, '/n', auth => 'NTLM tok');

my $text = http_body(http_get('/metrics'));
my %exported;
while ($text =~ /^# TYPE (\S+) (\S+)$/mg) {
    my ($name, $type) = ($1, $2);
    if ($type eq 'histogram') { $exported{"${name}_$_"} = 1 for qw(bucket sum count) }
    else { $exported{$name} = 1 }
}
ok(scalar(keys %exported) >= 24, scalar(keys %exported) . ' metric names exported by a configuration with every mechanism');

my %used;
for my $e (@exprs, @template) {
    my @names = $e =~ /\b(authgate_[a-z0-9_]+)/g;
    ok(@names, "names a metric: $e");
    for my $n (@names) {
        $used{$n}++;
        ok($exported{$n}, "exported: $n") or diag("in: $e");
    }
}
my @unused = grep { !$used{$_} && !/_(bucket|sum|count)$/ } sort keys %exported;
note("exported but not on the dashboard: @unused") if @unused;

SKIP: {
    my ($prometheus) = grep { -x } map { "$_/prometheus" } split /:/, $ENV{PATH};
    skip 'prometheus not installed (ci/setup.sh installs it)', 1 unless $prometheus;
    my ($nginx, $web, $dir) = ($t->port(8080), $t->port(8090), $t->testdir);
    $t->write_file('prometheus.yml', <<"EOF2");
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: authgate
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:$nginx"]
EOF2
    $t->run_daemon($prometheus, "--config.file=$dir/prometheus.yml", "--storage.tsdb.path=$dir/prom",
        "--web.listen-address=127.0.0.1:$web", '--log.level=error');
    $t->waitforsocket("127.0.0.1:$web") or die 'prometheus did not start';
    my $query = sub {
        (my $e = $_[0]) =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge;
        return eval { decode_json(http_body(http_get("/api/v1/query?query=$e", port => $web))) } || {};
    };
    # two scrapes at least, so that rates have two points
    my $deadline = time + 30;
    while (time < $deadline) {
        my $r = $query->('count_over_time(authgate_status_workers[1m])');
        my ($v) = map { $_->{value}[1] } @{ $r->{data}{result} || [] };
        last if ($v // 0) >= 3;
        sleep 0.5;
    }
    http_get('/ar');   # traffic between scrapes: rates above 0
    sleep 2.5;
    for my $e (@exprs) {
        (my $q = $e) =~ s/\$__rate_interval/1m/g;
        $q =~ s/\$__range/1h/g;
        $q =~ s/\$job/.*/g;
        my $r = $query->($q);
        is($r->{status}, 'success', "Prometheus evaluates: $q") or diag(explain($r));
    }
    my $r = $query->('sum by (uri, decision) (rate(authgate_auth_request_decisions_total{job=~".*"}[1m]))');
    ok(scalar @{ $r->{data}{result} || [] }, 'the decisions panel has data');
}

$t->done;
