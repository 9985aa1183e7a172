#!/usr/bin/perl
# key_auth with 100 000 consumers (from an included file): nginx -t accepts
# them in reasonable time, and the first, a middle and the last key work.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;
use Time::HiRes qw(time);

my $t = AGTest->new->skip_unless_module;

my $n = 100_000;
$t->write_file('consumers.conf', join '', map {
    "c$_ key=key-$_-0123456789abcdef credential=cred-$_ custom_id=id$_ limit=100/1m limit_status=429;\n"
} 0 .. $n - 1);
my $conf = <<'EOF2';
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_zone key_auth 16m;
    key_auth_consumers { include %%TESTDIR%%/consumers.conf; }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location / {
            key_auth on;
            proxy_set_header X-Var "$key_auth_consumer $key_auth_credential $key_auth_custom_id";
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
    }
}
EOF2

my $t0 = time;
my ($rc, $out) = $t->nginx_t($conf);
my $secs = time - $t0;
is($rc, 0, "nginx -t accepts $n consumers") or diag($out);
# Generous bound for a debug build on a busy machine (release: ~0.2 s).
ok($secs < 20, sprintf('nginx -t with %d consumers took %.2f s', $n, $secs));
diag(sprintf 'nginx -t with %d consumers: %.2f s', $n, $secs) if $ENV{TEST_NGINX_VERBOSE};

$t->write_file_expand('nginx.conf', $conf);
$t->run_echo_server(8082);
$t->run;

for my $i (0, 50_000, $n - 1) {
    my $r = http_get('/x', headers => ["apikey: key-$i-0123456789abcdef"]);
    is(http_status($r), 200, "consumer $i: 200");
    my $j = json_body($r);
    my ($v) = map { $_->[1] } grep { lc $_->[0] eq 'x-var' } @{ $j->{headers} || [] };
    is($v, "c$i cred-$i id$i", "consumer $i identified");
}
is(http_status(http_get('/x', headers => ["apikey: key-$n-0123456789abcdef"])), 401, 'unknown key: 401');

$t->done;
