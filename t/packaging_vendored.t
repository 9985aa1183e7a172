#!/usr/bin/perl
# Packaging: the vendored nginx 1.28 source configured with ANOTHER configure
# line than `cargo build` uses (nginx-src's default has --with-stream,
# --with-threads and no --with-debug; here: --with-debug, no stream, no
# threads), nginx and the module built against it by
# `ci/build-against.sh --make-nginx --vendored ...`, and:
#   * that nginx loads the module and serves an auth_request-protected
#     location (allowed, 401 with the challenge, 403);
#   * the test suite (every t/*.t but the packaging and C-module ones) passes
#     against it.
#
# Slow (builds nginx and the module): runs with TEST_PACKAGING=1.

use strict;
use warnings;
use Test::More;
use File::Basename qw(basename);
use lib 't/lib';
use AGTest;
use AGPackaging;

packaging_or_skip(['make', 'apt-get install make'], ['gcc', 'apt-get install gcc']);

my $root = AGPackaging::root();
my @configure = qw(--with-debug --with-http_ssl_module --with-http_v2_module --with-http_realip_module);
my ($so, $log, $env) = build_against('--make-nginx', '--vendored', @configure);
my $nginx = $env->{NGINX};
like($log, qr/nginx 1\.28\.\d+ from /, 'built against the vendored nginx 1.28');
ok($nginx && -x $nginx, 'and built that nginx') or BAIL_OUT('no nginx binary');
like($log, qr/\Q$nginx\E loads the module \(nginx -t ok\)/, 'the script checked it with nginx -t');

my $v = `$nginx -V 2>&1`;
like($v, qr/--with-debug/, 'the nginx has --with-debug');
like($v, qr/--with-compat/, '--with-compat was added');
unlike($v, qr/--with-stream|--with-threads/, 'no stream, no threads: not the default configure line');

my $t = do {
    local $ENV{TEST_NGINX_BINARY} = $nginx;
    local $ENV{TEST_NGINX_MODULE} = $so;
    AGTest->new;
};
$t->write_file('protected.html', "PROTECTED\n");
$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        location = /p {
            auth_request /auth/check;
            auth_request_set $auth_user $upstream_http_x_user;
            add_header X-Auth-User $auth_user;
            alias %%TESTDIR%%/protected.html;
        }
    }
}
EOF
$t->run_auth_service(8081);
$t->run;

my $r = http_get('/p', headers => ['X-Ctl-Status: 204', 'X-Ctl-Hdr: X-User: alice']);
is(http_status($r), 200, 'auth 204: the protected file');
is(http_body($r), "PROTECTED\n", 'its content');
is(http_header($r, 'X-Auth-User'), 'alice', 'auth_request_set works');

$r = http_get('/p', headers => ['X-Ctl-Status: 401', 'X-Ctl-Www: Basic realm="x"']);
is(http_status($r), 401, 'auth 401: 401');
is(http_header($r, 'WWW-Authenticate'), 'Basic realm="x"', 'with the challenge');

$r = http_get('/p', headers => ['X-Ctl-Status: 403']);
is(http_status($r), 403, 'auth 403: 403');
is(scalar $t->requests('auth'), 3, 'the auth service was asked each time');
$t->stop;

# Every mechanism's tests, against this nginx and module (not the packaging
# tests themselves, nor the C-module test, which needs an nginx with the C
# auth_request module: not this one).
my @files = map { "t/" . basename($_) }
    grep { !/\/packaging_|c_module/ } glob("$root/t/*.t");
my ($rc, $out) = prove_with({ TEST_NGINX_BINARY => $nginx, TEST_NGINX_MODULE => $so }, @files);
is($rc, 0, scalar(@files) . ' test files (auth_request, and the other mechanisms merged so far) pass against this nginx')
    or diag(AGPackaging::tail($out, 40));

$t->done;
