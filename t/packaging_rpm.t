#!/usr/bin/perl
# Packaging: the RPM (ci/rpm/nginx-module-authgate.spec, built by
# ci/rpm/build.sh from the module built against Debian's nginx 1.22 by
# ci/build-against.sh --debian).
#   * rpm -qip: name, version <nginx version>+<module version>, license;
#   * rpm -qlp: the file list, in the layout of RPM distributions' nginx modules;
#   * requires exactly the nginx it was built against (and, built with
#     --epoch/--with-abi, the epoch'd version and nginx(abi));
#   * the packaged .so, extracted with rpm2cpio, loads — through the packaged
#     mod-authgate.conf — into the nginx it was built against, which serves.
#
# Slow the first time (the Debian build): runs with TEST_PACKAGING=1.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;
use AGPackaging;

my $DEBIAN_NGINX = '/usr/sbin/nginx';
packaging_or_skip(
    ['rpmbuild', 'Debian package rpm (ci/setup.sh installs it)'],
    ['rpm2cpio', 'Debian package rpm2cpio (ci/setup.sh installs it)'],
    ['cpio', 'Debian package cpio (ci/setup.sh installs it)'],
    [$DEBIAN_NGINX, 'Debian package nginx (ci/setup.sh installs it)'],
    ['/usr/share/nginx/src/src/core/nginx.h', 'Debian package nginx-dev (ci/setup.sh installs it)'],
);

my $root = AGPackaging::root();
my ($so) = build_against('--debian');
my $nginx_version = (`$DEBIAN_NGINX -v 2>&1` =~ m{nginx/(\S+)})[0];
my ($module_version) = `cat $root/Cargo.toml` =~ /^version\s*=\s*"([^"]+)"/m;

my $t = do {
    local $ENV{TEST_NGINX_BINARY} = $DEBIAN_NGINX;
    AGTest->new(no_module => 1);    # the module comes from the package's conf
};
my $dir = $t->testdir;

sub build_rpm {
    my (@extra) = @_;
    my ($rc, $out, $err) = run_cmd('bash', 'ci/rpm/build.sh', '--so', $so, '--nginx', $DEBIAN_NGINX,
                                   '--out', "$dir/rpm", @extra);
    my ($rpm) = $out =~ /^(\S+\.rpm)$/m;
    ok($rc == 0 && $rpm && -f $rpm, "ci/rpm/build.sh @extra builds an rpm") or diag($err);
    return $rpm;
}

my $rpm = build_rpm();
like($rpm, qr{/nginx-module-authgate-\Q$nginx_version+$module_version\E-1\.\w+\.rpm$}, 'file name: <nginx>+<module> version');

my $info = `rpm -qip '$rpm' 2>&1`;
like($info, qr/^Name\s*:\s*nginx-module-authgate$/m, 'rpm -qip: name');
like($info, qr/^Version\s*:\s*\Q$nginx_version+$module_version\E$/m, 'version');
like($info, qr/^License\s*:\s*Apache-2\.0$/m, 'license');
like($info, qr/built against nginx \Q$nginx_version\E/, 'description names the nginx');

my @files = sort split /\n/, `rpm -qlp '$rpm' 2>/dev/null`;
is_deeply(\@files, [
    '/usr/lib64/nginx/modules/libnginx_authgate.so',
    '/usr/share/doc/nginx-module-authgate',
    '/usr/share/doc/nginx-module-authgate/README.md',
    '/usr/share/licenses/nginx-module-authgate',
    '/usr/share/licenses/nginx-module-authgate/LICENSE',
    '/usr/share/nginx/modules/mod-authgate.conf',
], 'rpm -qlp: module in the nginx modules dir, its load_module conf, README, LICENSE')
    or diag(join "\n", @files);

my @requires = split /\n/, `rpm -qp --requires '$rpm' 2>/dev/null`;
ok((grep { $_ eq "nginx = $nginx_version" } @requires), "requires nginx = $nginx_version exactly")
    or diag(join "\n", @requires);
ok(!(grep { /^nginx\(abi\)/ } @requires), 'no nginx(abi) by default (nginx.org packages lack it)');
my @provides = split /\n/, `rpm -qp --provides '$rpm' 2>/dev/null`;
ok(!(grep { /libnginx_authgate/ } @provides), 'does not provide the module as a shared library');

my $rpm_abi = build_rpm('--epoch', '1', '--with-abi');
@requires = split /\n/, `rpm -qp --requires '$rpm_abi' 2>/dev/null`;
ok((grep { $_ eq "nginx = 1:$nginx_version" } @requires), '--epoch 1: requires nginx = 1:VERSION');
ok((grep { $_ eq "nginx(abi) = $nginx_version" } @requires), '--with-abi: requires nginx(abi) = VERSION')
    or diag(join "\n", @requires);

# Extract and load what the package installs.
my $x = "$dir/root";
mkdir $x;
system("cd '$x' && rpm2cpio '$rpm' | cpio -idm --quiet") == 0 or fail('rpm2cpio | cpio');
my $packaged_so = "$x/usr/lib64/nginx/modules/libnginx_authgate.so";
ok(-f $packaged_so, 'extracted the packaged .so');
# rpmbuild strips it (as distributions' builds do); nginx's entry points stay.
like(`nm -D --defined-only '$packaged_so' 2>&1`, qr/\bngx_modules\b[\s\S]*\bngx_module_names\b|\bngx_module_names\b[\s\S]*\bngx_modules\b/,
     'it exports the module table nginx reads');
my $modconf = $t->read_file("root/usr/share/nginx/modules/mod-authgate.conf");
is($modconf, qq{load_module "/usr/lib64/nginx/modules/libnginx_authgate.so";\n},
   'mod-authgate.conf: the load_module line');
ok(-s "$x/usr/share/licenses/nginx-module-authgate/LICENSE", 'LICENSE packaged');

# The packaged conf, pointed at the extraction root instead of /.
(my $local_modconf = $modconf) =~ s{"/usr/lib64/}{"$x/usr/lib64/};
$t->write_file('mod-authgate.conf', $local_modconf);
$t->write_file('p/index.html', "FROM RPM\n");
my $conf = <<'EOF';
include %%TESTDIR%%/mod-authgate.conf;
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location /p/ { root %%TESTDIR%%; }
        location /a/ { auth_request /auth; root %%TESTDIR%%; }
        location = /auth { return 204; }
    }
}
EOF
my ($rc, $out) = $t->nginx_t($conf =~ s{location /a/.*\n}{}r);
is($rc, 0, "the packaged module loads into the nginx it was built against ($DEBIAN_NGINX)") or diag($out);
($rc, $out) = $t->nginx_t($conf);
like($out, qr/would be handled by nginx's own ngx_http_auth_request_module/,
     'it is our module (refuses auth_request next to the C module)');

$t->write_file_expand('nginx.conf', $conf =~ s{location /a/.*\n}{}r);
$t->run;
my $r = http_get('/p/index.html');
is(http_status($r), 200, 'nginx with the packaged module serves');
is(http_body($r), "FROM RPM\n", 'content');

$t->done;
