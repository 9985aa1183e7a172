#!/usr/bin/perl
# Packaging: the Debian package libnginx-mod-http-authgate (ci/deb/build.sh:
# dpkg-buildpackage with Debian's nginx module sequence, from the release
# tarball, offline), installed into THIS machine's nginx and removed again:
#
#   * the .deb depends on Debian's nginx ABI (nginx-abi-..., from nginx-dev)
#     and has the module in /usr/lib/nginx/modules/ and the load_module
#     snippet in /usr/share/nginx/modules-available/;
#   * `apt-get install ./libnginx-mod-http-authgate_....deb` enables it:
#     /etc/nginx/modules-enabled/50-mod-http-authgate.conf;
#   * /usr/sbin/nginx with the stock /etc/nginx/nginx.conf — only its pid,
#     logs and `daemon` pointed at the test, and its sites-enabled include
#     replaced by a test site on test ports — loads the module through that
#     link: key_auth, auth_http and ntlm work; our auth_request is refused
#     with its clear message (Debian's nginx has the C module);
#   * `apt-get purge` leaves the machine as it was (the module, the snippet,
#     the link are gone), also when a check fails midway (END block).
#
# Slow (a build of the module) and it installs a package: TEST_PACKAGING=1.

use strict;
use warnings;
use Test::More;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep);
use lib 't/lib';
use AGTest;
use AGPackaging;

my $NGINX = '/usr/sbin/nginx';
my $PACKAGE = 'libnginx-mod-http-authgate';
my $ENABLED = '/etc/nginx/modules-enabled/50-mod-http-authgate.conf';
my $AVAILABLE = '/usr/share/nginx/modules-available/mod-http-authgate.conf';
my $SO = '/usr/lib/nginx/modules/ngx_http_authgate_module.so';

packaging_or_skip(
    [$NGINX, 'Debian package nginx (ci/setup.sh installs it)'],
    ['/usr/share/nginx/src/debian/libnginx-mod.abisubstvars', 'Debian package nginx-dev (ci/setup.sh installs it)'],
    ['dpkg-buildpackage', 'Debian packages dpkg-dev, debhelper (ci/setup.sh installs them)'],
    ['dh_nginx', 'Debian package nginx-dev (ci/setup.sh installs it)'],
    ['apt-get', 'a Debian system'],
);
plan(skip_all => 'installs a package into the system nginx: needs root') if $> != 0;
plan(skip_all => "$PACKAGE is already installed: not touching it (apt-get purge $PACKAGE first)")
    if installed();

my $root = AGPackaging::root();
my ($version) = `cat $root/Cargo.toml` =~ /^version\s*=\s*"([^"]+)"/m;
my ($abi) = `cat /usr/share/nginx/src/debian/libnginx-mod.abisubstvars` =~ /^nginx:abi=(\S+)/m;

my $t = AGTest->new(no_module => 1);
my $dir = $t->testdir;
my $before = machine_state();

my ($nginx_pid, $we_installed);
END {
    # Whatever happened above: no nginx left running, the package gone.
    if ($nginx_pid) {
        kill 'TERM', $nginx_pid;
        waitpid $nginx_pid, 0;
    }
    system("apt-get purge -y -q $PACKAGE >/dev/null 2>&1") if $we_installed && installed();
}

sub installed { `dpkg-query -W -f '\${Status}' $PACKAGE 2>/dev/null` =~ /\binstalled\b/ }

# What the package touches, to compare before and after.
sub machine_state {
    return join "\n", map { "$_: " . (-l $_ ? 'link ' . readlink($_) : -e $_ ? 'exists' : 'absent') }
        $ENABLED, $AVAILABLE, $SO, '/usr/share/nginx/modules-available', '/usr/share/nginx/src/Makefile',
        glob('/etc/nginx/modules-enabled/*');
}

# --- build ---------------------------------------------------------------------
# Unpacked where packaging_configure.t and packaging_rpm.t unpack the tarball,
# with their CARGO_TARGET_DIR: the crates they compiled are reused.
my $build_dir = AGPackaging::tarball_build_dir();
my ($rc, $out, $err) = run_cmd('bash', 'ci/deb/build.sh', '--out', "$dir/deb", '--build-dir', $build_dir,
                               '--cargo-target', AGPackaging::tarball_cargo_target());
my ($deb) = $out =~ /^(\S+\.deb)$/m;
ok($rc == 0 && $deb && -f $deb, 'ci/deb/build.sh: dpkg-buildpackage builds the .deb')
    or BAIL_OUT("ci/deb/build.sh failed ($rc):\n" . AGPackaging::tail($err, 40));
like($deb, qr{/\Q${PACKAGE}_$version\E-1_\w+\.deb$}, "file name ${PACKAGE}_$version-1_ARCH.deb");
# Debian's module build is nginx's configure of the nginx-dev tree with
# --add-dynamic-module (ci/deb/debian/rules): that of the unpacked tarball,
# whose crates cargo took from vendor/ (CARGO_NET_OFFLINE, debian/rules).
my $log = AGPackaging::_slurp("$build_dir/dpkg-buildpackage.log");
like($log, qr{^adding module in \Q$build_dir/nginx-authgate-$version\E(?:/\.)?$}m,
     "/usr/share/nginx/src's configure: --add-dynamic-module=the unpacked tarball");
like($log, qr{^ \+ ngx_http_authgate_module was configured$}m, 'configured as a dynamic module');
like($log, qr{\bmake\b.*-C /usr/share/nginx/src modules}, 'make modules in /usr/share/nginx/src');
like($log, qr{Compiling nginx-authgate v\Q$version\E \(\Q$build_dir/nginx-authgate-$version\E\)},
     'cargo built the module from the unpacked tarball');
note('cargo compiled ' . scalar(() = $log =~ /^\s*Compiling /mg) . ' crates (the others were compiled by an earlier build)');
ok(-f "$dir/deb/nginx-authgate_$version-1.dsc", 'and the source package (.dsc)');
is(machine_state(), $before, 'the build left nothing behind (Makefile in /usr/share/nginx/src)');

my %field = map { $_ => scalar `dpkg-deb -f '$deb' $_` } qw(Package Depends Section);
chomp %field;
is($field{Package}, $PACKAGE, 'dpkg-deb -f: Package');
like($field{Depends}, qr/(?:^|, )\Q$abi\E(?:,|$)/, "Depends on Debian's nginx ABI: $abi");
is($field{Section}, 'httpd', 'Section httpd');
my @files = sort grep { !m{/$} } map { (split ' ', $_)[-1] } split /\n/, `dpkg-deb -c '$deb'`;
is_deeply(\@files, [
    "./usr/lib/nginx/modules/ngx_http_authgate_module.so",
    "./usr/share/doc/$PACKAGE/changelog.Debian.gz",
    "./usr/share/doc/$PACKAGE/copyright",
    "./usr/share/nginx/modules-available/mod-http-authgate.conf",
], 'dpkg-deb -c: the module, its snippet, the docs') or diag(join "\n", @files);

# --- install -------------------------------------------------------------------
$we_installed = 1;
($rc, $out, $err) = do {
    local $ENV{DEBIAN_FRONTEND} = 'noninteractive';
    run_cmd('apt-get', 'install', '-y', '-q', '--no-install-recommends', $deb);
};
is($rc, 0, "apt-get install $deb") or BAIL_OUT(AGPackaging::tail("$out\n$err", 30));
ok(installed(), "$PACKAGE is installed");
is(readlink($ENABLED), $AVAILABLE, "enabled: $ENABLED -> $AVAILABLE");
is(scalar `cat $AVAILABLE`, "load_module modules/ngx_http_authgate_module.so;\n",
   'the snippet loads the module from nginx\'s modules directory');
ok(-f $SO, "the module is $SO");

# --- the stock nginx.conf, a test site ---------------------------------------------
my $stock = `cat /etc/nginx/nginx.conf`;
my $conf = $stock;
for my $change (['pid', qr{^pid\s+\S+;}m, "daemon off; pid $dir/nginx.pid;"],
                ['error_log', qr{^error_log\s+\S+;}m, "error_log $dir/error.log info;"],
                ['access_log', qr{^\s*access_log\s+\S+;}m, "    access_log $dir/access.log;"],
                ['sites-enabled', qr{^\s*include /etc/nginx/sites-enabled/\*;}m, "    include $dir/site.conf;"]) {
    my ($what, $re, $with) = @$change;
    ok($conf =~ s/$re/$with/, "stock nginx.conf: $what line pointed at the test");
}
like($conf, qr{^include /etc/nginx/modules-enabled/\*\.conf;}m, 'it includes modules-enabled (the package\'s link)');
$t->write_file('nginx.conf', $conf);

# At http level (the sites-enabled include is inside http {}): the test's
# temporary paths, so nothing is created under /var/lib/nginx.
my $temp_paths = join "\n", map { "${_}_temp_path $dir/${_}_temp;" } qw(client_body proxy fastcgi uwsgi scgi);
smoke_files($t);
# Debian's workers run as www-data: they read the protected file.
chmod 0755, $dir, "$dir/s";
chmod 0644, "$dir/s/index.html";
$t->write_file_expand('site.conf', "$temp_paths\n" . smoke_server(auth_request => 0));

my @cmd = ($NGINX, '-c', "$dir/nginx.conf", '-e', "$dir/error.log");
($rc, $out) = (system("@cmd -t >$dir/t.out 2>&1") >> 8, $t->read_file('t.out'));
is($rc, 0, 'nginx -t: Debian\'s nginx, stock nginx.conf, the packaged module, the test site') or diag($out);

$nginx_pid = fork() // die "fork: $!";
if ($nginx_pid == 0) {
    open STDIN, '<', '/dev/null';
    open STDOUT, '>>', "$dir/stderr";
    open STDERR, '>>', "$dir/stderr";
    exec @cmd or POSIX::_exit(127);
}
my $port = $t->port(8080);
for (1 .. 500) {
    last if IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp');
    if (waitpid($nginx_pid, WNOHANG) == $nginx_pid) {
        $nginx_pid = undef;
        BAIL_OUT("nginx exited at startup:\n" . ($t->read_file('stderr') // '') . ($t->read_file('error.log') // ''));
    }
    sleep 0.02;
}
like(`ps -o user= --ppid $nginx_pid`, qr/www-data/, 'workers run as www-data (stock user line)');

smoke_mechanisms($t, auth_request => 0, what => 'Debian nginx + package');

# Our auth_request next to Debian's C module: refused, clearly.
$t->write_file_expand('site.conf', "$temp_paths\n" . <<'EOF');
server {
    listen 127.0.0.1:%%PORT_8080%%;
    location /p/ { auth_request /auth; root %%TESTDIR%%; }
    location = /auth { return 204; }
}
EOF
# (its own error log: the [emerg] is expected, unlike in the server's log)
($rc, $out) = (system("$NGINX -c $dir/nginx.conf -e $dir/t-error.log -t >$dir/t.out 2>&1") >> 8,
               $t->read_file('t.out'));
isnt($rc, 0, 'auth_request with the packaged module: nginx -t fails');
like($out, qr/\[emerg\] "auth_request" in location "\/p\/" would be handled by nginx's own ngx_http_auth_request_module/,
     'with our message');

kill 'QUIT', $nginx_pid;
waitpid $nginx_pid, 0;
$nginx_pid = undef;
my @bad = grep { /\[(?:alert|crit|emerg)\]/ } split /\n/, ($t->read_file('error.log') // '');
ok(!@bad, 'error.log: no alert/crit/emerg') or diag(join "\n", @bad);

# --- purge ---------------------------------------------------------------------
($rc, $out, $err) = run_cmd('apt-get', 'purge', '-y', '-q', $PACKAGE);
is($rc, 0, "apt-get purge $PACKAGE") or diag($err);
ok(!installed(), 'not installed any more');
is(machine_state(), $before, 'the module, the snippet and the link are gone: as before');
$we_installed = 0;

$t->{done} = 1;
done_testing;
