package AGPackaging;

# Helpers for the packaging tests (t/packaging_*.t): each builds the module
# against another nginx with ci/build-against.sh, which takes a minute or
# more, so they run only with TEST_PACKAGING=1 (ci/test.sh sets it in its
# packaging step).

use strict;
use warnings;

use Exporter qw(import);
use File::Temp qw(tempfile);
use POSIX ();
use Test::More ();

use AGTest ();

our @EXPORT = qw(packaging_or_skip run_cmd build_against prove_with smoke_server smoke_files smoke_mechanisms);

my $ROOT = AGTest::_find_root();

sub root { $ROOT }

# The packaging step builds the module many times; cargo compiles the ~100
# crates of Cargo.lock again for every new CARGO_TARGET_DIR, and again for
# every new source path of those crates (a crate's path is part of cargo's
# fingerprint). So the builds share two target directories:
#
# tarball_build_dir(): where packaging_configure.t, ci/rpm/build.sh
# (--build-dir: rpmbuild's %_builddir) and ci/deb/build.sh (--build-dir)
# unpack the release tarball: always DIR/nginx-authgate-VERSION, emptied
# and unpacked afresh by each build, so the vendored crates keep one path;
# tarball_cargo_target(): their CARGO_TARGET_DIR (config.make builds).
# A fresh checkout has neither; the first build fills them.
sub tarball_build_dir { "$ROOT/target/against/tarball" }
sub tarball_cargo_target { "$ROOT/target/against/configure-cargo" }

# repo_cargo_target(): the CARGO_TARGET_DIR of build_against() (cargo build
# of this checkout against another nginx: packaging_debian.t,
# packaging_nginx122.t, packaging_vendored.t), crates from cargo's registry.
sub repo_cargo_target { "$ROOT/target/against/cargo" }

# Skips the whole file unless TEST_PACKAGING=1, or when a required program
# or file is missing (each given as [path-or-program, how to get it]).
sub packaging_or_skip {
    my (@needs) = @_;
    Test::More::plan(skip_all => 'slow packaging test (builds the module against another nginx): '
        . 'set TEST_PACKAGING=1 (ci/test.sh does, in its packaging step)')
        unless ($ENV{TEST_PACKAGING} // '') eq '1';
    for my $need (['cargo', 'a Rust toolchain'], @needs) {
        my ($what, $how) = @$need;
        my $found = $what =~ m{/} ? -e $what : _in_path($what);
        Test::More::plan(skip_all => "$what not found ($how)") unless $found;
    }
}

sub _in_path {
    my ($prog) = @_;
    for my $dir (split /:/, $ENV{PATH} // '') {
        return 1 if -x "$dir/$prog";
    }
    return 0;
}

# run_cmd(@cmd) -> ($exit_code, $stdout, $stderr); runs in the repository root.
sub run_cmd {
    my (@cmd) = @_;
    my (undef, $out) = tempfile(UNLINK => 1);
    my (undef, $err) = tempfile(UNLINK => 1);
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        chdir $ROOT or die "chdir $ROOT: $!";
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or die;
        open STDERR, '>', $err or die;
        exec @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $rc = $? >> 8;
    return ($rc, _slurp($out), _slurp($err));
}

sub _slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return '';
    local $/;
    return scalar(<$fh>) // '';
}

# build_against(@args) -> ($module_path, $stderr, \%build_env), or dies with
# the script's output. @args as for ci/build-against.sh, which is given
# --cargo-target repo_cargo_target() too.
sub build_against {
    my (@args) = @_;
    my ($rc, $out, $err) = run_cmd('bash', 'ci/build-against.sh', '--cargo-target', repo_cargo_target(), @args);
    my ($so) = $out =~ /^(\S+\.so)$/m;
    die "ci/build-against.sh @args failed ($rc):\n" . _tail($err, 40) . "\n"
        if $rc != 0 || !$so || !-f $so;
    (my $dir = $so) =~ s{/[^/]+$}{};
    my %env;
    if (open my $fh, '<', "$dir/build.env") {
        while (<$fh>) {
            $env{$1} = $2 if /^(\w+)=(.*)$/;
        }
    }
    return ($so, $err, \%env);
}

# prove_with(\%env, @test_files) -> ($exit_code, $output): runs prove on
# other test files with extra environment (TEST_NGINX_BINARY, ...).
sub prove_with {
    my ($env, @files) = @_;
    local @ENV{ keys %$env } = values %$env;
    # PROVE_JOBS (ci/test.sh exports 2): that many files at a time, as the
    # main runs do
    my @jobs = ($ENV{PROVE_JOBS} // 1) > 1 ? ('-j', $ENV{PROVE_JOBS}) : ();
    my ($rc, $out, $err) = run_cmd('prove', @jobs, '-I', 't/lib', @files);
    return ($rc, $out . $err);
}

sub _tail {
    my ($text, $n) = @_;
    my @l = split /\n/, $text;
    @l = @l[-$n .. -1] if @l > $n;
    return join "\n", @l;
}

sub tail { _tail(@_) }

# --- a smoke test through every mechanism -----------------------------------
#
# smoke_server(auth_request => 0|1) -> http-level configuration (AGTest
# %%...%% placeholders): on %%PORT_8080%% a static file behind each
# mechanism, on %%PORT_8081%% the services they ask (nginx locations, no
# other process), on %%PORT_8082%% the application behind the ntlm upstream.
# With auth_request => 0 (an nginx with the C auth_request module) our
# auth_request is left out. smoke_files($t) writes the protected file.
sub smoke_server {
    my (%o) = @_;
    my $ar = $o{auth_request} ? <<'AR' : '';
        location /ar/ {
            auth_request /_ar;
            alias %%TESTDIR%%/s/;
        }
        location = /_ar {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/ar;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
AR
    return <<"CONF";
    key_auth_zone smoke_keys 1m;
    key_auth_consumers {
        smoke  key=smoke-key  limit=1000/60s;
    }
    upstream smoke_windows {
        server 127.0.0.1:%%PORT_8082%%;
        keepalive 4;
        ntlm 10;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location /key/ {
            key_auth on;
            alias %%TESTDIR%%/s/;
        }
        location /acl/ {
            auth_http_superuser /_su method=get params=clientid=%c;
            auth_http_client_id \$http_x_client_id;
            auth_http_retry times=0 interval=10ms;
            alias %%TESTDIR%%/s/;
        }
        location = /_su {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/su;
        }
        location /ntlm/ {
            proxy_pass http://smoke_windows;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
$ar    }
    server {
        listen 127.0.0.1:%%PORT_8081%%;
        location = /su {
            if (\$arg_clientid = smoke-admin) { return 200; }
            return 403;
        }
        location = /ar {
            if (\$http_x_ok = yes) { return 204; }
            return 401;
        }
    }
    server {
        listen 127.0.0.1:%%PORT_8082%%;
        keepalive_requests 1000;
        location / {
            default_type text/plain;
            return 200 "upstream-connection=\$connection\\n";
        }
    }
CONF
}

sub smoke_files {
    my ($t) = @_;
    $t->write_file('s/index.html', "SMOKE\n");
}

# smoke_mechanisms($t, auth_request => 0|1, what => 'label'): requests
# through the running nginx of smoke_server(), allowed and refused, for each
# mechanism.
sub smoke_mechanisms {
    my ($t, %o) = @_;
    my $what = $o{what} // 'nginx';
    my $status = \&AGTest::http_status;
    my $body = \&AGTest::http_body;
    my $port = $t->port(8080);
    my $get = sub { AGTest::http_get(@_, port => $port) };

    my $r = $get->('/key/index.html');
    Test::More::is($status->($r), 401, "$what: key_auth, no key: 401");
    $r = $get->('/key/index.html', headers => ['apikey: smoke-key']);
    Test::More::is($status->($r), 200, "$what: key_auth, a consumer's key: 200");
    Test::More::is($body->($r), "SMOKE\n", "$what: key_auth: the protected file");

    $r = $get->('/acl/index.html', headers => ['X-Client-Id: someone']);
    Test::More::is($status->($r), 403, "$what: auth_http, not a superuser, no ACL: 403");
    $r = $get->('/acl/index.html', headers => ['X-Client-Id: smoke-admin']);
    Test::More::is($status->($r), 200, "$what: auth_http, superuser: 200");

    # ntlm: client A's connection gets bound to its upstream connection; a
    # client B in between gets another one (without ntlm it would reuse the
    # idle keepalive one); A's next request, without credentials, goes over
    # A's again.
    my $conn_of = sub { ($body->($_[0]) // '') =~ /upstream-connection=(\d+)/ ? $1 : undef };
    my $sa = AGTest::http("GET /ntlm/1 HTTP/1.1\r\nHost: localhost\r\n"
                          . "Authorization: NTLM TlRMTVNTUAABAAAA\r\n\r\n",
                          port => $port, start => 1);
    my $a1 = $conn_of->(AGTest::http_end($sa, responses => 1, keep => 1));
    my $b1 = $conn_of->($get->('/ntlm/2'));
    my $a2 = $conn_of->(AGTest::http("GET /ntlm/3 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                                     socket => $sa));
    Test::More::ok(defined $a1 && defined $b1 && defined $a2, "$what: ntlm: three proxied requests");
    Test::More::isnt($b1 // -1, $a1 // -1,
                     "$what: ntlm: another client does not get the bound upstream connection");
    Test::More::is($a2 // -2, $a1 // -1,
                   "$what: ntlm: the client's next request goes over its bound connection");

    return unless $o{auth_request};
    $r = $get->('/ar/index.html');
    Test::More::is($status->($r), 401, "$what: auth_request, the service says 401: 401");
    $r = $get->('/ar/index.html', headers => ['X-Ok: yes']);
    Test::More::is($status->($r), 200, "$what: auth_request, the service says 204: 200");
}

1;
