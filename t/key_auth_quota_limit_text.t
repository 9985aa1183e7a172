#!/usr/bin/perl
# X-RateLimit-Limit says each consumer's own limit= count. Its text is made
# once per configuration load for the 64 most common counts (the request
# points at it); a count outside those is formatted per request. Proven with
# 70 distinct limits (some counts kept, some not, on a protected static file),
# and across a reload that changes the counts.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;
$t->write_file('index.html', "PROTECTED\n");

sub conf {
    my ($base) = @_;
    # c0 .. c69, c<i> with limit=<base + i>; the first ten share one count
    # with tier<j>, so those are the most common and surely kept
    my $consumers = join '', map {
        my $n = $base + $_;
        "        c$_ key=key-$_ limit=$n/30s;\n"
    } 0 .. 69;
    $consumers .= join '', map { "        tier$_ key=tier-$_ limit=" . ($base + 0) . "/30s;\n" } 0 .. 9;
    return <<"EOF";
%%TEST_GLOBALS%%
worker_processes 1;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_zone key_auth 1m;
    key_auth_consumers {
$consumers    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location / { key_auth on; root %%TESTDIR%%; }
    }
}
EOF
}

sub limit_of { http_header(http_get('/index.html', headers => ["apikey: $_[0]"]), 'X-RateLimit-Limit') }

$t->write_file_expand('nginx.conf', conf(100));
$t->run;
my @all = map { limit_of("key-$_") } 0 .. 69;
is_deeply(\@all, [map { 100 + $_ } 0 .. 69], '70 distinct limits: each consumer its own X-RateLimit-Limit');
is(limit_of('tier-3'), 100, 'a shared count');
my $r = http_get('/index.html', headers => ['apikey: key-5']);
is(http_status($r), 200, 'let in');
is(http_header($r, 'X-RateLimit-Remaining'), 103, 'c5 (limit 105), second request: 103 remaining');

$t->write_file_expand('nginx.conf', conf(1_000_000_000));
$t->reload;
sleep 1;
@all = map { limit_of("key-$_") } 0 .. 69;
is_deeply(\@all, [map { 1_000_000_000 + $_ } 0 .. 69], 'after a reload: the new counts');
is(limit_of('tier-0'), 1_000_000_000, 'after a reload: a shared count');

$t->done;
