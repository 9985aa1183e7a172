#!/usr/bin/perl
# The seam matrix for quotas counted in Redis (key_auth_quota_store): every
# move of t/lib/SeamsMatrix.pm (rewrite, error_page into key_auth
# locations, try_files, named locations, X-Accel-Redirect, satisfy any,
# SSI, mirror) x HTTP/1.0, HTTP/1.1, HEAD, HTTP/2.
#
# What happens:
#   * a request that key_auth checks is counted once in Redis (one INCR of
#     authgate:<consumer>), however many key_auth locations it passes;
#   * requests key_auth never checks are not counted: satisfy any + allow
#     all decides first, subrequests skip the access phase, and "rewrite
#     ... last" out of a key_auth location leaves it before the check;
#   * over the limit (limit_status=503, which the matrix's error_page
#     catches) the refusal is final through error_page into other key_auth
#     locations, and that request too is counted once.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;
use AGRedis;
use SeamsMatrix;

my $t = AGTest->new->skip_unless_module;
$t->skip_all('no redis-server (ci/setup.sh installs it)') unless AGRedis->available;
my $redis = AGRedis->start($t);
SeamsMatrix::write_files($t);

my $loc = SeamsMatrix::locations(
    M => 'key_auth on;', echo => 'http://127.0.0.1:%%PORT_8082%%', dir => '%%TESTDIR%%');

$t->write_file_expand('nginx.conf', <<"EOF");
%%TEST_GLOBALS%%
worker_processes 2;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_quota_store redis://127.0.0.1:%%PORT_redis%% timeout=1s prefix=seams:;
    key_auth_consumers {
        jack  key=jack-key  limit=100000/1h;
        tight key=tight-key limit=1/1h limit_status=503;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        http2 on;
        server_name localhost;
$loc
    }
}
EOF
$t->run_echo_server(8082);
$t->run;

sub counter { $redis->command('GET', "seams:$_[0]") // 0 }

# cells whose request key_auth never checks
my %UNCHECKED = ('rewrite last out into U' => 1, 'satisfy any, allow all' => 1,
                 'SSI, unprotected page' => 1, 'mirror, unprotected' => 1);

for my $cell (@SeamsMatrix::CELLS) {
    my ($name, $uri) = @$cell;
    for my $proto (@SeamsMatrix::PROTOCOLS) {
        my $tag = "$name [$proto]";
        my $want = SeamsMatrix::hits_for($cell, $proto);

        my $before = counter('jack');
        my ($r, $p) = SeamsMatrix::run($t, $cell, $proto, want => scalar @$want,
                                       headers => ['apikey: jack-key']);
        my $expect = $UNCHECKED{$name} ? 0 : 1;
        is(counter('jack') - $before, $expect, "$tag: counted $expect time(s) in Redis");
        if (!$UNCHECKED{$name}) {
            is_deeply($p, $want, "$tag: the protected upstream serves");
        }

        next if $UNCHECKED{$name};
        # over the limit: refused (503) everywhere it moves, counted once
        $redis->command('SET', 'seams:tight', 1, 'PX', 3_600_000);
        ($r, $p) = SeamsMatrix::run($t, $cell, $proto, want => 0, headers => ['apikey: tight-key']);
        my $open = $name =~ /error_page = \@U|error_page \/open\//;
        if ($open) {
            # the operator sends refusals to an unprotected location
            is(scalar(SeamsMatrix::uhits($t)), 1, "$tag over the limit: the unprotected error page serves");
        } else {
            is_deeply($p, [], "$tag over the limit: the protected upstream is never hit");
            is($r->{status}, 503, "$tag over the limit: 503");
        }
        is(counter('tight'), 2, "$tag over the limit: counted once");
    }
}

$t->done;
