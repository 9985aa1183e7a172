#!/usr/bin/perl
# Packaging: the oldest nginx we support, 1.22 (Debian 12's version), built
# WITHOUT the C auth_request module, so that our whole suite — auth_request
# included, which Debian's own binary cannot run because its C module takes
# the directive — runs on it.
#
# The upstream source comes from Debian's archive (ci/debian-nginx-source.sh:
# the orig tarball of `apt-get source nginx`); nginx and the module are built
# by `ci/build-against.sh --make-nginx`, then every t/*.t except the packaging
# and C-module ones runs against that nginx.
#
# Slow (builds nginx and the module): runs with TEST_PACKAGING=1.

use strict;
use warnings;
use Test::More;
use File::Basename qw(basename);
use lib 't/lib';
use AGTest;
use AGPackaging;

packaging_or_skip(['make', 'apt-get install make'], ['gcc', 'apt-get install gcc'],
                  ['apt-get', 'a Debian system']);

my $root = AGPackaging::root();
my ($rc, $src, $err) = AGPackaging::run_cmd('bash', 'ci/debian-nginx-source.sh');
chomp $src;
ok($rc == 0 && -f "$src/configure", "nginx source from Debian's archive: $src")
    or BAIL_OUT("ci/debian-nginx-source.sh failed ($rc): " . AGPackaging::tail($err, 20));
like($src, qr/nginx-1\.22\.\d+$/, 'it is nginx 1.22');

my @configure = qw(--with-http_ssl_module --with-http_v2_module --with-http_realip_module);
my ($so, $log, $env) = build_against('--make-nginx', $src, @configure);
my $nginx = $env->{NGINX};
ok($nginx && -x $nginx, 'built nginx 1.22 and the module against it') or BAIL_OUT('no nginx binary');
like(`$nginx -v 2>&1`, qr{nginx/1\.22\.}, 'that nginx is 1.22');
unlike(`$nginx -V 2>&1`, qr/auth_request/, 'without the C auth_request module');

# Every mechanism's tests, our auth_request included, against nginx 1.22.
my @files = map { "t/" . basename($_) }
    grep { !/\/packaging_|c_module/ } glob("$root/t/*.t");
my $out;
($rc, $out) = prove_with({ TEST_NGINX_BINARY => $nginx, TEST_NGINX_MODULE => $so }, @files);
is($rc, 0, scalar(@files) . ' test files pass against nginx 1.22')
    or diag(AGPackaging::tail($out, 60));
my ($summary) = $out =~ /^(Files=\d+, Tests=\d+)/m;
note("nginx 1.22: $summary") if $summary;

done_testing;
