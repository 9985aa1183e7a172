#!/usr/bin/perl
# Packaging: the source RPM (ci/rpm/nginx-module-authgate.spec, built by
# ci/rpm/build.sh: `rpmbuild -ba --nodeps` from the release tarball of
# ci/dist.sh, offline), against two nginx trees of the version of an nginx
# we can run:
#   * the nginx 1.28 source the tarball vendors -> loaded into the test
#     nginx (1.28, --with-compat), every mechanism works;
#   * Debian's nginx 1.22.1 source from the archive (ci/debian-nginx-source.sh)
#     -> loaded into Debian's /usr/sbin/nginx: key_auth, auth_http and ntlm
#     work, our auth_request is refused (Debian's C module).
# For each: rpm -qip / -qlp / --requires of the binary RPM, the source RPM's
# contents and BuildRequires, `rpm -i --root SCRATCH --nodeps --noscripts`,
# and the installed .so loaded through the installed mod-authgate.conf.
# The nginx.org switch (--with nginx_org) is checked on the spec with
# rpmspec (no third build).
#
# Slow (two builds of the module): runs with TEST_PACKAGING=1.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;
use AGPackaging;

my $DEBIAN_NGINX = '/usr/sbin/nginx';
packaging_or_skip(
    ['rpmbuild', 'Debian package rpm (ci/setup.sh installs it)'],
    ['rpmspec', 'Debian package rpm (ci/setup.sh installs it)'],
    ['make', 'apt-get install make'], ['gcc', 'apt-get install gcc'],
    [$DEBIAN_NGINX, 'Debian package nginx (ci/setup.sh installs it)'],
    ['apt-get', 'a Debian system'],
);

my $root = AGPackaging::root();
my ($module_version) = `cat $root/Cargo.toml` =~ /^version\s*=\s*"([^"]+)"/m;
my $t = AGTest->new(no_module => 1);
my $dir = $t->testdir;

my ($rc, $tarball, $err) = run_cmd('bash', 'ci/dist.sh', '--out', "$dir/dist");
chomp $tarball;
ok($rc == 0 && -f $tarball, 'ci/dist.sh: the release tarball (Source0)') or BAIL_OUT($err);
mkdir "$dir/empty-cargo-home";

# The vendored nginx source, as the tarball carries it.
mkdir "$dir/vendored";
my $top = "nginx-authgate-$module_version";
system('tar', '-xzf', $tarball, '-C', "$dir/vendored", '--wildcards', "$top/vendor/nginx-src-*/nginx") == 0
    or BAIL_OUT('cannot extract the vendored nginx source');
my ($vendored) = glob("$dir/vendored/$top/vendor/nginx-src-*/nginx");
my $debian;
($rc, $debian, $err) = run_cmd('bash', 'ci/debian-nginx-source.sh');
chomp $debian;
ok($rc == 0 && -f "$debian/src/core/nginx.h", "Debian's nginx source from the archive: $debian")
    or BAIL_OUT($err);

# rpmspec: the requires of each switch, without building.
my $spec = "$root/ci/rpm/nginx-module-authgate.spec";
sub spec_requires {
    my (@opts) = @_;
    my (undef, $qout, $qerr) = run_cmd('rpmspec', '-q', @opts, '--requires', $spec);
    return join(',', grep { !m{^/bin/sh} } split /\n/, $qout) || $qerr;
}
is(spec_requires('--define', "nginx_source $vendored"), 'nginx(abi) = 1.28.3',
   'default (Fedora/EPEL/RHEL): Requires nginx(abi) = VERSION');
is(spec_requires('--with', 'nginx_org', '--define', "nginx_source $vendored"), 'nginx = 1:1.28.3',
   '--with nginx_org: Requires nginx = 1:VERSION (nginx.org\'s epoch)');
is(spec_requires('--define', "_nginx_srcdir $vendored", '--define', '_nginx_abiversion 1.28.3-abi'),
   'nginx(abi) = 1.28.3-abi',
   'with nginx-mod-devel\'s macros: _nginx_srcdir is the source, _nginx_abiversion the ABI');

for my $case (['1.28', $vendored, $t->binary, 1], ['1.22', $debian, $DEBIAN_NGINX, 0]) {
    my ($name, $src, $nginx, $ar) = @$case;
    my ($nginx_version) = `cat '$src/src/core/nginx.h'` =~ /#define NGINX_VERSION\s+"([^"]+)"/;
    # Both builds unpack the tarball where packaging_configure.t and
    # packaging_deb.t do (--build-dir: rpmbuild's %_builddir) and share their
    # CARGO_TARGET_DIR, so that cargo reuses the crates compiled by the first
    # (it rebuilds a dependency whose source path changed).
    my $out;
    ($rc, $out, $err) = do {
        local $ENV{CARGO_HOME} = "$dir/empty-cargo-home";
        local $ENV{CARGO_NET_OFFLINE} = 'true';
        run_cmd('bash', 'ci/rpm/build.sh', '--tarball', $tarball, '--nginx-source', $src,
                '--out', "$dir/rpm", '--build-dir', AGPackaging::tarball_build_dir(),
                '--cargo-target', AGPackaging::tarball_cargo_target());
    };
    my ($rpm, $srpm) = split /\n/, $out;
    ok($rc == 0 && $rpm && -f $rpm && $srpm && -f $srpm, "$name: rpmbuild -ba --nodeps, offline")
        or do { diag(AGPackaging::tail($err, 40)); next };
    my $full = "$nginx_version+$module_version";
    like($rpm, qr{/nginx-module-authgate-\Q$full\E-1\.\w+\.rpm$}, "$name: $full");
    like($srpm, qr{/nginx-module-authgate-\Q$full\E-1\.src\.rpm$}, "$name: and its source RPM");

    my $info = `rpm -qip '$rpm' 2>&1`;
    like($info, qr/^Name\s*:\s*nginx-module-authgate$/m, "$name: rpm -qip: name");
    like($info, qr/^Version\s*:\s*\Q$full\E$/m, "$name: version");
    like($info, qr/^License\s*:\s*Apache-2\.0$/m, "$name: license");
    like($info, qr/^Source RPM\s*:\s*nginx-module-authgate-\Q$full\E-1\.src\.rpm$/m, "$name: built from its source RPM");
    my @files = sort split /\n/, `rpm -qlp '$rpm' 2>/dev/null`;
    is_deeply(\@files, [
        '/usr/lib64/nginx/modules/libnginx_authgate.so',
        '/usr/share/doc/nginx-module-authgate',
        '/usr/share/doc/nginx-module-authgate/README.md',
        '/usr/share/licenses/nginx-module-authgate',
        '/usr/share/licenses/nginx-module-authgate/LICENSE',
        '/usr/share/nginx/modules/mod-authgate.conf',
    ], "$name: rpm -qlp: module, load_module conf, README, LICENSE") or diag(join "\n", @files);
    my @requires = split /\n/, `rpm -qp --requires '$rpm' 2>/dev/null`;
    ok((grep { $_ eq "nginx(abi) = $nginx_version" } @requires), "$name: requires nginx(abi) = $nginx_version")
        or diag(join "\n", @requires);
    ok(!(grep { /libnginx_authgate/ } split /\n/, `rpm -qp --provides '$rpm' 2>/dev/null`),
       "$name: does not provide the module as a shared library");

    my @sfiles = sort split /\n/, `rpm -qlp '$srpm' 2>/dev/null`;
    is_deeply(\@sfiles, [sort "nginx-authgate-$module_version.tar.gz", 'nginx-module-authgate.spec'],
              "$name: the source RPM: the tarball and the spec");
    my $breq = join ',', sort split /\n/, `rpm -qp --requires '$srpm' 2>/dev/null`;
    like($breq, qr/\bcargo >= 1\.81\b.*\bclang-devel\b.*\bnginx-mod-devel\b.*\bopenssl-devel\b.*\bpcre2-devel\b.*\bzlib-devel\b/,
         "$name: BuildRequires nginx-mod-devel, cargo, clang-devel, pcre2/openssl/zlib-devel") or diag($breq);

    # Installed into a scratch root.
    my $x = "$dir/root-$name";
    system("rpm --root '$x' --initdb 2>&1") == 0 or fail("$name: rpm --initdb");
    my $inst = `rpm -i --root '$x' --nodeps --noscripts '$rpm' 2>&1`;
    is($?, 0, "$name: rpm -i --root SCRATCH --nodeps --noscripts") or diag($inst);
    like(`rpm -q --root '$x' nginx-module-authgate 2>&1`, qr/^nginx-module-authgate-\Q$full\E-1/,
         "$name: rpm -q in the scratch root");
    my $modconf = `cat '$x/usr/share/nginx/modules/mod-authgate.conf'`;
    is($modconf, qq{load_module "/usr/lib64/nginx/modules/libnginx_authgate.so";\n},
       "$name: mod-authgate.conf: the load_module line");

    # The installed conf, pointed at the scratch root instead of /.
    my $s = do {
        local $ENV{TEST_NGINX_BINARY} = $nginx;
        AGTest->new(no_module => 1);
    };
    (my $local_modconf = $modconf) =~ s{"/usr/lib64/}{"$x/usr/lib64/};
    $s->write_file('mod-authgate.conf', $local_modconf);
    smoke_files($s);
    my $conf = "include %%TESTDIR%%/mod-authgate.conf;\n%%TEST_GLOBALS%%\nevents {}\nhttp {\n"
        . "    %%TEST_GLOBALS_HTTP%%\n" . smoke_server(auth_request => $ar) . "}\n";
    unless ($ar) {
        my ($trc, $tout) = $s->nginx_t($conf =~ s{(location /key/ \{)}{location /ar/ { auth_request /_ar; }\n        $1}r);
        like($tout, qr/would be handled by nginx's own ngx_http_auth_request_module/,
             "$name: in $nginx, our auth_request is refused next to the C module");
    }
    $s->write_file_expand('nginx.conf', $conf);
    $s->run;
    smoke_mechanisms($s, auth_request => $ar, what => "$name RPM in $nginx");
    $s->stop;
    my @bad = $s->_bad_log_lines;
    ok(!@bad, "$name: nothing unexpected in error.log") or diag(join "\n", @bad);
    $s->{done} = 1;
}

$t->{done} = 1;
done_testing;
