#!/usr/bin/perl
# Packaging: nginx's own build system (`config`, `config.make`) and the
# release tarball (ci/dist.sh).
#
#   * ci/dist.sh makes nginx-authgate-VERSION.tar.gz: sources, vendor/ (every
#     crate of Cargo.lock), .cargo/config.toml pointing at it;
#   * unpacked (in AGPackaging::tarball_build_dir(), emptied first: the path
#     ci/rpm/build.sh and ci/deb/build.sh unpack at too, so that the three
#     share the compiled crates), it builds with NO network: an empty
#     CARGO_HOME (no registry, no cache) and CARGO_NET_OFFLINE=true, through
#     nginx's configure, the way distributions build modules:
#       - `configure --with-compat --add-dynamic-module=DIR && make modules`
#         against the nginx 1.28 source the tarball itself carries (nginx-src
#         crate, vendor/): the .so loads into the test nginx (another
#         --with-compat 1.28 build) and every mechanism works there;
#       - `--add-module=DIR` (static) against the same source: an nginx with
#         the module compiled in, every mechanism works;
#       - `--add-module` against Debian's nginx 1.22 upstream source
#         (ci/debian-nginx-source.sh), without the C auth_request: every
#         mechanism works on the oldest nginx we support.
# `--add-dynamic-module` against Debian's nginx-dev tree (/usr/share/nginx/src,
# headers only) is packaging_deb.t's build: Debian's own module build
# (dh-sequence-nginx) does exactly that, from this tarball, offline, and the
# result is loaded into Debian's nginx there (key_auth/auth_http/ntlm work,
# our auth_request is refused next to Debian's C module).
# The builds share one CARGO_TARGET_DIR (AGPackaging::tarball_cargo_target(),
# the crates compile once).
#
# Slow (builds nginx twice and the module three times): TEST_PACKAGING=1.

use strict;
use warnings;
use Test::More;
use File::Path qw(make_path remove_tree);
use lib 't/lib';
use AGTest;
use AGPackaging;

packaging_or_skip(['make', 'apt-get install make'], ['gcc', 'apt-get install gcc'],
                  ['apt-get', 'a Debian system']);

my $root = AGPackaging::root();
my ($version) = `cat $root/Cargo.toml` =~ /^version\s*=\s*"([^"]+)"/m;

# The test nginx (main build) and a scratch directory.
my $t = AGTest->new(no_module => 1);
my $dir = $t->testdir;

# --- the release tarball ------------------------------------------------------
my ($rc, $out, $err) = run_cmd('bash', 'ci/dist.sh', '--out', "$dir/dist");
chomp $out;
is($rc, 0, 'ci/dist.sh') or diag(AGPackaging::tail($err, 20));
is($out, "$dir/dist/nginx-authgate-$version.tar.gz", 'makes nginx-authgate-VERSION.tar.gz');
my %listed = map { $_ => 1 } split /\n/, `tar -tzf '$out'`;
my $top = "nginx-authgate-$version";
for my $f (qw(config config.make Cargo.toml Cargo.lock build.rs src/lib.rs README.md LICENSE .cargo/config.toml)) {
    ok($listed{"$top/$f"}, "the tarball has $f");
}
ok(scalar(grep { m{^\Q$top\E/vendor/nginx-sys-[^/]+/Cargo\.toml$} } keys %listed), 'and the vendored crates (nginx-sys, ...)');
ok(!(grep { m{^\Q$top\E/target/} } keys %listed), 'and no build output');

my $unpacked = AGPackaging::tarball_build_dir();
remove_tree($unpacked);
make_path($unpacked, "$dir/empty-cargo-home");
system('tar', '-xzf', $out, '-C', $unpacked) == 0 or BAIL_OUT('cannot unpack the tarball');
my $addon = "$unpacked/$top";
like(scalar `cat '$addon/.cargo/config.toml'`, qr/replace-with = "vendored-sources"[\s\S]*directory = "vendor"/,
     '.cargo/config.toml: crates.io replaced by vendor/');
my ($vendored_nginx) = glob("$addon/vendor/nginx-src-*/nginx");
ok($vendored_nginx && -f "$vendored_nginx/src/core/nginx.h", 'the tarball carries the nginx source nginx-src vendors');

# Offline from here: no registry, no network for cargo.
$ENV{CARGO_HOME} = "$dir/empty-cargo-home";
$ENV{CARGO_NET_OFFLINE} = 'true';
my @shared = ('--addon', $addon, '--cargo-target', AGPackaging::tarball_cargo_target());

# build(name, build-against args...) -> ($path, \%build_env): the .so, or
# the nginx binary with --static.
sub build {
    my ($name, @args) = @_;
    my ($brc, $bout, $berr) = run_cmd('bash', 'ci/build-against.sh', '--work', "$dir/$name", @shared, @args);
    my ($path) = $bout =~ /^(\S+)$/m;
    ok($brc == 0 && $path && -e $path, "$name: built offline through nginx's configure")
        or diag(AGPackaging::tail($berr, 40));
    like($berr, qr/--add-(?:dynamic-)?module=\Q$addon\E/, "$name: configure was given the unpacked tarball");
    return $path;
}

# smoke(name, nginx, module or undef, auth_request)
sub smoke {
    my ($name, $nginx, $so, $ar) = @_;
    my $s = do {
        local $ENV{TEST_NGINX_BINARY} = $nginx;
        local $ENV{TEST_NGINX_MODULE} = $so // 'none';
        AGTest->new;
    };
    smoke_files($s);
    $s->write_file_expand('nginx.conf', "%%TEST_GLOBALS%%\nevents {}\nhttp {\n    %%TEST_GLOBALS_HTTP%%\n"
                          . smoke_server(auth_request => $ar) . "}\n");
    $s->run;
    smoke_mechanisms($s, auth_request => $ar, what => $name);
    $s->stop;
    my @bad = $s->_bad_log_lines;
    ok(!@bad, "$name: nothing unexpected in error.log") or diag(join "\n", @bad);
    $s->{done} = 1;
}

# --- dynamic, vendored nginx 1.28 --------------------------------------------
my @args = qw(--with-http_ssl_module --with-http_v2_module);
my $so = build('dynamic-1.28', $vendored_nginx, @args);
like(`nm -D --defined-only '$so' 2>&1`, qr/\bngx_modules\b/, 'dynamic-1.28: the .so has the module table nginx wrote');
smoke('dynamic-1.28', $t->binary, $so, 1);

# --- static, vendored nginx 1.28 ---------------------------------------------
my $static = build('static-1.28', '--static', $vendored_nginx, @args);
like(`'$static' -V 2>&1`, qr/--add-module=\Q$addon\E/, 'static-1.28: nginx -V names the module');
smoke('static-1.28', $static, undef, 1);

# --- static, Debian's nginx 1.22 upstream source -------------------------------
($rc, $out, $err) = run_cmd('bash', 'ci/debian-nginx-source.sh');    # apt-get source, no cargo
chomp $out;
ok($rc == 0 && -f "$out/configure", "nginx 1.22 source from Debian's archive: $out")
    or BAIL_OUT("ci/debian-nginx-source.sh failed ($rc): " . AGPackaging::tail($err, 20));
$static = build('static-1.22', '--static', $out, @args, '--with-http_realip_module');
like(`'$static' -v 2>&1`, qr{nginx/1\.22\.}, 'static-1.22: nginx 1.22');
smoke('static-1.22', $static, undef, 1);

$t->{done} = 1;
done_testing;
