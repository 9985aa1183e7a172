#!/usr/bin/perl
# key_auth quotas: a full zone fails closed (503 and an error-log line naming
# the consumer) while counters already in the zone keep working.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;
my $n = 600;
$t->write_file('many.conf', join '', map { "c$_ key=k$_ limit=5/1m;\n" } 1 .. $n);
$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_zone small 32k;
    key_auth_consumers { include %%TESTDIR%%/many.conf; }
    server {
        listen 127.0.0.1:%%PORT_8180%%;
        location / { key_auth on; root %%TESTDIR%%; }
    }
}
EOF2
$t->write_file('index.html', "OK\n");
$t->expect_errors(qr/key_auth zone is full/);
$t->run;
my ($room) = map { /room for (\d+) limited consumers/ ? $1 : () } $t->grep_log(qr/room for/);
ok($room && $room < $n, "small zone has room for $room counters") or diag($t->error_log);
$room //= $n;
my %st;
for my $i (1 .. $room + 1) {
    my $r = http_get('/index.html', headers => ["apikey: k$i"], port => $t->port(8180));
    $st{ http_status($r) }++;
}
is_deeply(\%st, { 200 => $room, 503 => 1 }, "zone full after $room consumers: the next is refused (503)");
ok(scalar $t->grep_log(qr/\[error\].*key_auth zone is full: cannot count the requests of consumer "c\d+"/),
   'error log says the zone is full and names the consumer');
is(http_status(http_get('/index.html', headers => ['apikey: k1'], port => $t->port(8180))), 200,
   'consumers already counted keep working');
$t->done;
