#!/usr/bin/perl
# authgate_status_zone: a zone too small for every series never fails a
# request. The series that do not fit are not counted, the error log says
# so once (per start or reload), the status page says how many.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;
my $n = 200;
$t->write_file('many.conf', join '', map { "c$_ key=k$_;\n" } 1 .. $n);
$t->write_file('index.html', "OK\n");
$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
worker_processes 2;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    authgate_status_zone small 32k consumers=on;
    key_auth_consumers { include %%TESTDIR%%/many.conf; }
    server {
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        location / { key_auth on; root %%TESTDIR%%; }
        location = /status { authgate_status; }
    }
}
EOF2
$t->run;

my @full = $t->grep_log(qr/\[warn\].*authgate_status_zone "small" is full: \d+ series of this configuration are not counted/);
is(scalar @full, 1, 'logged once') or diag($t->error_log);
my ($dropped_logged) = map { /is full: (\d+) series/ ? $1 : () } @full;
my ($room) = map { /room for (\d+) series/ ? $1 : () } $t->grep_log(qr/room for \d+ series/);
ok($room && $room < $n, "the zone has room for $room series");

my %st;
for my $i (1 .. $n) {
    $st{ http_status(http_get('/index.html', headers => ["apikey: k$i"])) }++;
}
is_deeply(\%st, { 200 => $n }, "all $n consumers served");
is(http_status(http_get('/index.html')), 401, 'no key: 401 as always');

my $s = decode_json(http_body(http_get('/status')));
is($s->{process}{capacity}, $room, 'capacity shown');
is($s->{process}{series}, $room, 'the zone is full');
is($s->{process}{dropped}, $dropped_logged, 'dropped = what the log said');
is($s->{process}{dropped} + $s->{process}{series}, $n + 1, 'every series either counted or dropped');
my ($ka) = @{ $s->{key_auth} };
is($ka->{requests}{allowed}, $n, 'key_auth series (registered first) counts every request');
is($ka->{requests}{missing}, 1, 'and the missing key');
my %kc = map { $_->{consumer} => $_->{requests} } @{ $s->{key_auth_consumers} };
is(scalar(keys %kc), $room - 1, 'the consumers that fit');
is((grep { $_ != 1 } values %kc), 0, 'each counted its one request');
ok(!exists $kc{"c$n"}, 'the last consumer did not fit: not shown');

# a reload logs it once more, not per request
$t->reload;
for (1 .. 50) { last if $t->grep_log(qr/is full/) >= 2; select undef, undef, undef, 0.05 }
http_get('/index.html', headers => ["apikey: k$n"]) for 1 .. 5;
is(scalar $t->grep_log(qr/is full/), 2, 'once more after a reload, never per request');
$t->done;
