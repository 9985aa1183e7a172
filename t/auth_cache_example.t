#!/usr/bin/perl
# nginx-conf/auth_cache.conf works as its comments say: a token is asked
# about once and then answered from the cache, with the same user for the
# application; an unknown token is refused with the service's challenge,
# from the cache the second time; a purge makes the next request ask again.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('the decision cache is ours only');
my $example = $t->read_file("$FindBin::Bin/../nginx-conf/auth_cache.conf");
$example =~ s/127\.0\.0\.1:(\d+)/127.0.0.1:%%PORT_$1%%/g;
$t->write_file_expand('nginx.conf', "%%TEST_GLOBALS%%\nevents {}\nhttp {\n    %%TEST_GLOBALS_HTTP%%\n$example}\n");
$t->run;

my %o = (port => port(8086));
sub get { my ($token) = @_; http_get('/', %o, headers => [$token ? "Authorization: Bearer $token" : ()]) }

my $r = get('alice-token');
is(http_status($r), 200, 'alice: allowed');
like($r, qr/hello alice\n$/, 'alice: the application sees her');
is(http_header($r, 'X-Auth-Cache'), 'MISS', 'alice: first a miss');
$r = get('alice-token');
like($r, qr/hello alice\n$/, 'alice again: the stored user');
is(http_header($r, 'X-Auth-Cache'), 'HIT', 'alice again: a hit');

for my $i (1, 2) {
    $r = get('mallory-token');
    is(http_status($r), 401, "unknown token ($i): 401");
    is(http_header($r, 'WWW-Authenticate'), 'Bearer realm="demo"', "unknown token ($i): the challenge");
    is(http_header($r, 'X-Auth-Cache'), $i == 1 ? 'MISS' : 'HIT', "unknown token ($i): cached refusal");
}
is(http_header(get(), 'X-Auth-Cache'), 'BYPASS', 'no token: not cached');

$r = http_get('/_purge', %o, method => 'DELETE', headers => ['Auth-Cache-Key: Bearer alice-token']);
like($r, qr/purged 1\n$/, 'purge alice');
is(http_header(get('alice-token'), 'X-Auth-Cache'), 'MISS', 'after purge: asked again');

$t->done;
