package AGTest;

# Test harness for nginx-authgate: runs a real nginx (the vendored one with
# our dynamic module loaded, or a C reference build with TEST_NGINX_MODULE=none)
# from a temporary prefix, plus forked Perl backends, and offers small raw
# HTTP/1.1 and HTTP/2 (via curl) clients.  See t/lib/README for a guide.

use strict;
use warnings;

use Carp qw(croak carp);
use Cwd qw(abs_path getcwd);
use Digest::MD5 qw(md5_hex);
use Errno qw(EAGAIN EINTR EWOULDBLOCK EINPROGRESS);
use Exporter qw(import);
use Fcntl qw(:flock O_RDWR O_CREAT);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG setpgid _exit);
use Socket qw(SOL_SOCKET SO_LINGER);
use Test::More ();
use Time::HiRes qw(time sleep);

our @EXPORT = qw(
    port http http_get http_post http_end http2_request http2_port
    parse_response parse_responses http_status http_header http_headers
    http_body json_body md5_hex
);

our $CURRENT;             # the most recently created AGTest object
my  @ALL;                 # all objects created by this process (for END)
my  $CREATOR_PID = $$;

$SIG{PIPE} = 'IGNORE';

###############################################################################
# Construction and configuration
###############################################################################

sub _find_root {
    my @starts;
    push @starts, dirname(abs_path($0)) if defined $0 && -e $0;
    push @starts, dirname(abs_path(__FILE__));
    for my $dir (@starts) {
        my $d = $dir;
        while (1) {
            return $d if -e "$d/Cargo.toml" && -d "$d/t";
            my $up = dirname($d);
            last if $up eq $d;
            $d = $up;
        }
    }
    croak "AGTest: cannot find the repository root (a directory with Cargo.toml and t/)";
}

sub _newest {
    my @f = grep { -f $_ && -x _ } @_;
    return undef unless @f;
    @f = sort { (stat $b)[9] <=> (stat $a)[9] } @f;
    return $f[0];
}

sub new {
    my ($class, %opts) = @_;

    my $root = _find_root();

    my $binary = $ENV{TEST_NGINX_BINARY};
    if (defined $binary && length $binary) {
        $binary = abs_path($binary) // $binary;
    } else {
        $binary = _newest(glob("$root/target/debug/build/nginx-sys-*/out/objs/nginx"));
    }
    unless (defined $binary && -x $binary) {
        Test::More::plan(skip_all => 'no nginx binary: run "cargo build" or set TEST_NGINX_BINARY');
    }

    my $module = $ENV{TEST_NGINX_MODULE};
    $module = "$root/target/debug/libnginx_authgate.so"
        unless defined $module && length $module;
    if ($module eq 'none' || $opts{no_module}) {
        $module = undef;
    } else {
        $module = abs_path($module) // $module;
        croak "AGTest: module $module not found: run \"cargo build\" or set "
            . "TEST_NGINX_MODULE (\"none\" for the C reference nginx)"
            unless -f $module;
    }

    my $dir = tempdir('authgate-test-XXXXXXXX', TMPDIR => 1,
                      CLEANUP => !$ENV{TEST_NGINX_LEAVE});
    chmod 0755, $dir;

    my $self = bless {
        root        => $root,
        binary      => $binary,
        module      => $module,
        dir         => $dir,
        ports       => {},
        port_order  => [],
        port_locks  => [],
        daemons     => [],
        expected    => [],
        nginx_pid   => undef,
        done        => 0,
        pid         => $$,
        conf_count  => 0,
        %opts,
    }, $class;

    $CURRENT = $self;
    push @ALL, $self;

    Test::More::diag("testdir: $dir") if $ENV{TEST_NGINX_LEAVE} || $ENV{TEST_NGINX_VERBOSE};
    Test::More::diag("nginx: $binary; module: " . ($module // 'none'))
        if $ENV{TEST_NGINX_VERBOSE};

    return $self;
}

sub testdir   { $_[0]{dir} }
sub root      { $_[0]{root} }
sub binary    { $_[0]{binary} }
sub module    { $_[0]{module} }          # undef when TEST_NGINX_MODULE=none
sub has_module { defined $_[0]{module} }

# Skip the whole (remaining) file; marks the object done.
sub skip_all {
    my ($self, $why) = @_;
    $self->{done} = 1;
    Test::More::plan(skip_all => $why);
}

# Skip the whole file unless our Rust module is loaded.
sub skip_unless_module {
    my ($self, $why) = @_;
    return $self if $self->has_module;
    $self->{done} = 1;
    Test::More::plan(skip_all => $why // 'needs our module (TEST_NGINX_MODULE=none)');
}

# Skip the whole file unless the nginx under test knows all these directives
# (checked with "nginx -t" on a tiny config).  With our module loaded, an
# unknown directive is a failure, not a reason to skip.
sub skip_unless_directives {
    my ($self, @tests) = @_;
    for my $snippet (@tests) {
        my ($rc, $out) = $self->nginx_t(<<"EOF");
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server { listen 127.0.0.1:%%PORT_SKIPCHECK%%; location / { $snippet } }
}
EOF
        if ($rc != 0 && $out =~ /unknown directive/) {
            if ($self->has_module) {
                Test::More::diag("directive unknown although the module is loaded: $out");
                return $self;
            }
            $self->{done} = 1;
            Test::More::plan(skip_all => "nginx lacks: $snippet");
        }
    }
    return $self;
}

sub _nginx_version_info {
    my ($self) = @_;
    return $self->{version_info} if defined $self->{version_info};
    my $out = `'$self->{binary}' -V 2>&1`;
    return $self->{version_info} = $out // '';
}

sub has_debug { $_[0]->_nginx_version_info =~ /--with-debug/ ? 1 : 0 }

# The nginx's version as a number: 1.22.1 -> 1022001 (0 if unknown).
sub nginx_version {
    my ($self) = @_;
    my ($a, $b, $c) = $self->_nginx_version_info =~ m{nginx version: [^/]*/(\d+)\.(\d+)\.(\d+)};
    return defined $c ? $a * 1_000_000 + $b * 1_000 + $c : 0;
}

# Skip the whole file when the nginx under test is older than $version
# ("1.25.1"), e.g. for directives it lacks (the packaging tests run the
# mechanisms' tests against Debian's nginx 1.22).
sub skip_unless_nginx {
    my ($self, $version, $why) = @_;
    my ($a, $b, $c) = split /\./, $version;
    my $have = $self->nginx_version;
    return $self if !$have || $have >= $a * 1_000_000 + $b * 1_000 + ($c // 0);
    $self->{done} = 1;
    Test::More::plan(skip_all => "needs nginx $version+" . ($why ? " ($why)" : ''));
}

###############################################################################
# Ports
###############################################################################

my $LOCKDIR = File::Spec->catdir(File::Spec->tmpdir, 'authgate-test-ports');

sub _alloc_port {
    my ($self) = @_;
    make_path($LOCKDIR, { mode => 0777 }) unless -d $LOCKDIR;
    my %mine = map { $_ => 1 } values %{ $self->{ports} };
    for (1 .. 500) {
        # below the Linux ephemeral range (32768+) so that outgoing
        # connections never take a port we picked before we bind it
        my $p = 20000 + int(rand(12000));
        next if $mine{$p};
        sysopen(my $lock, "$LOCKDIR/$p", O_RDWR | O_CREAT, 0666) or next;
        unless (flock($lock, LOCK_EX | LOCK_NB)) { close $lock; next; }
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $p,
                                      Proto => 'tcp', Listen => 1, ReuseAddr => 1);
        unless ($s) { close $lock; next; }
        close $s;
        push @{ $self->{port_locks} }, $lock;
        return $p;
    }
    croak "AGTest: cannot find a free port";
}

# $t->port(8080) / port(8080): the real port standing for the token 8080.
# The same token always maps to the same port for the lifetime of the object.
sub port {
    my ($self, $token);
    if (ref $_[0] && eval { $_[0]->isa('AGTest') }) { ($self, $token) = @_ }
    else { ($self, $token) = ($CURRENT, $_[0]) }
    croak "AGTest: no test object" unless $self;
    croak "AGTest: port token required" unless defined $token;
    unless (exists $self->{ports}{$token}) {
        $self->{ports}{$token} = $self->_alloc_port;
        push @{ $self->{port_order} }, $token;
    }
    return $self->{ports}{$token};
}

sub default_port {
    my ($self) = @_;
    return $self->{default_port} if $self->{default_port};
    return $self->port(8080);
}

###############################################################################
# Files
###############################################################################

sub _path {
    my ($self, $name) = @_;
    return $name if File::Spec->file_name_is_absolute($name);
    return "$self->{dir}/$name";
}

sub write_file {
    my ($self, $name, $content) = @_;
    my $path = $self->_path($name);
    make_path(dirname($path)) unless -d dirname($path);
    open my $fh, '>', $path or croak "AGTest: cannot write $path: $!";
    binmode $fh;
    print $fh $content;
    close $fh or croak "AGTest: cannot write $path: $!";
    chmod 0644, $path;
    return $path;
}

sub read_file {
    my ($self, $name) = @_;
    my $path = $self->_path($name);
    open my $fh, '<', $path or return undef;
    binmode $fh;
    local $/;
    my $c = <$fh>;
    return $c // '';
}

sub expand {
    my ($self, $content, %opts) = @_;
    my $dir = $self->{dir};
    my $error_log = $opts{error_log} // "$dir/error.log";

    my $level = $self->has_debug ? 'debug' : 'info';
    # Each expansion is a single line, so that line numbers in the expanded
    # file are those of the template (for "in FILE:LINE" assertions).
    my @g;
    push @g, "load_module $self->{module};" if $self->{module};
    push @g, "user root;" if $> == 0;
    push @g, "pid $dir/nginx.pid;", "error_log $error_log $level;", "daemon off;";
    my $globals = join ' ', @g;

    my $globals_http = join ' ',
        "access_log $dir/access.log;",
        "client_body_temp_path $dir/client_body_temp;",
        "proxy_temp_path $dir/proxy_temp;",
        "fastcgi_temp_path $dir/fastcgi_temp;",
        "uwsgi_temp_path $dir/uwsgi_temp;",
        "scgi_temp_path $dir/scgi_temp;";

    $content = $self->_http2_compat($content)
        if $self->nginx_version && $self->nginx_version < 1_025_001;
    $content =~ s/%%TEST_GLOBALS%%/$globals/g;
    $content =~ s/%%TEST_GLOBALS_HTTP%%/$globals_http/g;
    $content =~ s/%%TESTDIR%%/$dir/g;
    $content =~ s/%%PORT_(\w+)%%/$self->port($1)/ge;
    return $content;
}

# nginx < 1.25.1 (e.g. Debian 12's 1.22, used by t/packaging_debian.t) has
# no "http2 on;", and its "listen ... http2" on a plain port speaks HTTP/2
# only. So in a server block that says "http2 on;": an ssl listen gets the
# "http2" parameter (ALPN picks the protocol), and each plain listen on
# %%PORT_X%% gets a twin "listen %%PORT_H2C_X%% http2;" written where
# "http2 on;" was (same line numbers), to which http2_request() sends what
# it would send to port X.
sub _http2_compat {
    my ($self, $conf) = @_;
    my $block = qr/(\{(?:[^{}]++|(?-1))*\})/;
    $conf =~ s{(\bserver\s*)$block}{
        my ($head, $body) = ($1, $2);
        if ($body =~ /\bhttp2\s+on\s*;/) {
            my @twins;
            $body =~ s{(\blisten\s+(?:127\.0\.0\.1:)?%%PORT_(\w+)%%)([^;]*);}{
                my ($listen, $token, $params) = ($1, $2, $3);
                if ($params =~ /\bssl\b/) {
                    "$listen$params http2;";
                } else {
                    push @twins, "listen 127.0.0.1:%%PORT_H2C_$token%% http2;";
                    $self->{h2c}{$token} = "H2C_$token";
                    "$listen$params;";
                }
            }ge;
            $body =~ s/\bhttp2\s+on\s*;/join ' ', @twins/e;
        }
        $head . $body;
    }ge;
    return $conf;
}

sub write_file_expand {
    my ($self, $name, $content, %opts) = @_;
    my $expanded = $self->expand($content, %opts);
    if ($name eq 'nginx.conf' && !$self->{default_port}) {
        # the first port nginx listens on is the default for http clients
        if ($content =~ /^\s*listen\s+(?:127\.0\.0\.1:)?%%PORT_(\w+)%%/m) {
            $self->{default_port} = $self->port($1);
        }
    }
    return $self->write_file($name, $expanded);
}

###############################################################################
# nginx control
###############################################################################

sub _listen_ports {
    my ($self, $conf) = @_;
    my @ports;
    while ($conf =~ /^\s*listen\s+(?:127\.0\.0\.1:)?(\d+)\b/mg) {
        push @ports, $1;
    }
    return @ports;
}

sub _nginx_args {
    my ($self, $conf, $elog) = @_;
    return ($self->{binary}, '-p', "$self->{dir}/", '-c', $conf, '-e', $elog);
}

# TEST_NGINX_VALGRIND=1: nginx (master and, through fork, its workers) runs
# under valgrind's memcheck, one log per process in the test directory;
# done() fails the file on any error or definite leak whose stack has a
# frame of the module.
sub valgrind { $ENV{TEST_NGINX_VALGRIND} ? 1 : 0 }

sub _valgrind_prefix {
    my ($self) = @_;
    return () unless valgrind();
    return ('valgrind', '--tool=memcheck', '--quiet', '--error-limit=no',
            '--num-callers=40', '--leak-check=full', '--show-leak-kinds=definite',
            '--errors-for-leak-kinds=definite', '--track-origins=yes',
            "--log-file=$self->{dir}/valgrind.%p.log");
}

# The error blocks of the valgrind logs that involve the module.
sub valgrind_errors {
    my ($self) = @_;
    my @ours;
    for my $file (glob "$self->{dir}/valgrind.*.log") {
        open my $fh, '<', $file or next;
        my $text = do { local $/; <$fh> };
        close $fh;
        # blocks are separated by "==PID== " lines with nothing after them
        for my $block (split /^==\d+==\s*\n/m, $text) {
            next unless $block =~ /^==\d+==\s+(?:at|by) 0x/m;
            next unless $block =~ /libnginx_authgate|nginx_authgate::|authgate_bf_/;
            push @ours, "$file:\n$block";
        }
    }
    return @ours;
}

sub run {
    my ($self) = @_;
    croak "AGTest: nginx already running" if $self->{nginx_pid};
    my $conf = "$self->{dir}/nginx.conf";
    croak "AGTest: write nginx.conf first" unless -f $conf;

    my @cmd = ($self->_valgrind_prefix, $self->_nginx_args($conf, "$self->{dir}/error.log"));
    Test::More::diag("run: @cmd") if $ENV{TEST_NGINX_VERBOSE};

    my $pid = fork();
    croak "AGTest: fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$self->{dir}/stderr";
        open STDERR, '>>', "$self->{dir}/stderr";
        exec @cmd or _exit(127);
    }
    $self->{nginx_pid} = $pid;

    my @ports = $self->_listen_ports($self->read_file('nginx.conf'));
    my $deadline = time + (valgrind() ? 60 : 10);
    for my $p (@ports) {
        while (1) {
            my $r = waitpid($pid, WNOHANG);
            if ($r == $pid) {
                $self->{nginx_pid} = undef;
                croak "AGTest: nginx exited (status $?) during startup:\n"
                    . ($self->read_file('stderr') // '') . "\n"
                    . ($self->read_file('error.log') // '');
            }
            last if _can_connect('127.0.0.1', $p);
            if (time > $deadline) {
                $self->_kill_nginx;
                croak "AGTest: nginx did not start listening on $p:\n"
                    . ($self->read_file('error.log') // '');
            }
            sleep 0.02;
        }
    }
    return $self;
}

sub _can_connect {
    my ($host, $port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

sub _wait_pid {
    my ($pid, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        my $r = waitpid($pid, WNOHANG);
        return 1 if $r == $pid || $r == -1;
        sleep 0.01;
    }
    return 0;
}

sub _kill_nginx {
    my ($self) = @_;
    my $pid = $self->{nginx_pid} or return;
    kill 'QUIT', $pid;
    unless (_wait_pid($pid, 10)) {
        kill 'TERM', $pid;
        unless (_wait_pid($pid, 5)) {
            kill 'KILL', $pid;
            _wait_pid($pid, 5);
        }
    }
    $self->{nginx_pid} = undef;
}

sub stop {
    my ($self) = @_;
    return $self unless $$ == $self->{pid};
    $self->_kill_nginx;
    $self->stop_daemons;
    return $self;
}

# Graceful reload (SIGHUP); waits until a new worker has been started.
sub reload {
    my ($self) = @_;
    my $pid = $self->{nginx_pid} or croak "AGTest: nginx not running";
    my $count = () = ($self->read_file('error.log') // '') =~ /start worker process/g;
    kill 'HUP', $pid;
    my $deadline = time + (valgrind() ? 60 : 10);
    while (time < $deadline) {
        my $log = $self->read_file('error.log') // '';
        my $n = () = $log =~ /start worker process/g;
        return $self if $n > $count;
        sleep 0.05;
    }
    croak "AGTest: reload did not start a new worker";
}

# reload, then wait until the old workers have exited, so that every request
# after it is answered with the new configuration (an old worker finishing
# gracefully may still take a connection meanwhile). Croaks if they linger.
sub reload_settled {
    my ($self) = @_;
    my $master = $self->{nginx_pid} or croak "AGTest: nginx not running";
    my $children = sub {
        grep {
            my $f;
            open($f, '<', "/proc/$_/stat") && ((split ' ', scalar <$f>)[3] // 0) == $master
        } map { m{/proc/(\d+)$} ? $1 : () } glob '/proc/[0-9]*';
    };
    my @old = $children->();
    croak "AGTest: no worker processes found" unless @old;
    $self->reload;
    my $deadline = time + (valgrind() ? 60 : 10);
    while (grep { kill 0, $_ } @old) {
        croak "AGTest: old workers still running after the reload" if time > $deadline;
        sleep 0.05;
    }
    return $self;
}

# ($exit_code, $output, $conf_path) = $t->nginx_t($conf_text)
# Writes the (expanded) config to a fresh file and runs "nginx -t" on it.
sub nginx_t {
    my ($self, $conf, %opts) = @_;
    my $n = ++$self->{conf_count};
    my $name = $opts{name} // "nginx-t-$n.conf";
    my $elog = "$self->{dir}/nginx-t-$n.log";
    my $path = $self->write_file($name, $self->expand($conf, error_log => $elog));
    my @cmd = ($self->_nginx_args($path, $elog), '-t');
    my $out = _capture(@cmd);
    my $rc = $? >> 8;
    Test::More::diag("nginx -t ($rc): $out") if $ENV{TEST_NGINX_VERBOSE};
    return wantarray ? ($rc, $out, $path) : $rc;
}

sub _capture {
    my @cmd = @_;
    my $pid = open(my $fh, '-|');
    croak "AGTest: fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        exec @cmd or _exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return $out;
}

###############################################################################
# Backends
###############################################################################

# $t->run_daemon(\&code, @args) or $t->run_daemon($program, @args)
sub run_daemon {
    my ($self, $code, @args) = @_;
    my $pid = fork();
    croak "AGTest: fork: $!" unless defined $pid;
    if ($pid == 0) {
        setpgid(0, 0);
        $SIG{PIPE} = 'IGNORE';
        if (ref $code eq 'CODE') {
            eval { $code->(@args); 1 } or print STDERR "daemon died: $@";
            _exit(0);
        }
        exec $code, @args or _exit(127);
    }
    setpgid($pid, $pid);
    push @{ $self->{daemons} }, $pid;
    return $pid;
}

sub stop_daemons {
    my ($self) = @_;
    return unless $$ == $self->{pid};
    for my $pid (@{ $self->{daemons} }) {
        kill 'TERM', -$pid;
        kill 'TERM', $pid;
    }
    for my $pid (@{ $self->{daemons} }) {
        unless (_wait_pid($pid, 3)) {
            kill 'KILL', -$pid;
            kill 'KILL', $pid;
            _wait_pid($pid, 3);
        }
    }
    $self->{daemons} = [];
}

sub waitforsocket {
    my ($self, $addr, $timeout) = @_;
    $addr = "127.0.0.1:$addr" if $addr =~ /^\d+$/;
    my ($host, $p) = split /:/, $addr;
    my $deadline = time + ($timeout // 10);
    while (time < $deadline) {
        return 1 if _can_connect($host, $p);
        sleep 0.02;
    }
    return 0;
}

sub _load_backend {
    my ($self) = @_;
    my $lib = "$self->{root}/t/backends";
    unshift @INC, $lib unless grep { $_ eq $lib } @INC;
    require AGBackend;
}

# Starts the scripted service (see t/backends/AGBackend.pm) on port(token).
#   $t->run_backend(8081, name => 'auth', mode => 'auth');
# Requests it receives are logged to <testdir>/<name>.requests
sub run_backend {
    my ($self, $token, %opts) = @_;
    $self->_load_backend;
    my $port = $token =~ /^\d+$/ && $opts{raw_port} ? $token : $self->port($token);
    my $name = $opts{name} // 'backend';
    my %args = (
        port => $port,
        name => $name,
        mode => $opts{mode} // 'auth',
        log  => "$self->{dir}/$name.requests",
        %opts,
    );
    $self->run_daemon(\&AGBackend::serve, %args);
    $self->waitforsocket("127.0.0.1:$port")
        or croak "AGTest: backend $name on $port did not start";
    return $port;
}

sub run_auth_service {
    my ($self, $token, %opts) = @_;
    return $self->run_backend($token, name => 'auth', mode => 'auth', %opts);
}

sub run_echo_server {
    my ($self, $token, %opts) = @_;
    return $self->run_backend($token, name => 'echo', mode => 'echo', %opts);
}

# All requests a backend has recorded so far (list of hashrefs, oldest first):
#   { method, uri, path, query, version, headers => [[name, value], ...],
#     body_length, body_md5, body (first 4096 bytes), body_complete, conn, seq, time }
sub requests {
    my ($self, $name) = @_;
    $name //= 'auth';
    $self->_load_backend;
    return AGBackend::read_log("$self->{dir}/$name.requests");
}

sub clear_requests {
    my ($self, $name) = @_;
    $name //= 'auth';
    my $f = "$self->{dir}/$name.requests";
    truncate($f, 0) if -e $f;
}

# Value(s) of a header in a recorded request (case-insensitive name).
sub req_header {
    my ($req, $name) = @_;
    my @v = map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ $req->{headers} || [] };
    return wantarray ? @v : $v[0];
}

###############################################################################
# Error log
###############################################################################

sub error_log { $_[0]->read_file('error.log') // '' }

sub expect_errors {
    my ($self, @re) = @_;
    push @{ $self->{expected} }, @re;
    return $self;
}

# Lines of the error log matching $re (since the log began).
sub grep_log {
    my ($self, $re, $name) = @_;
    my $log = $self->read_file($name // 'error.log') // '';
    return grep { /$re/ } split /\n/, $log;
}

# Waits (up to $timeout s) until the error log has a line matching $re.
sub wait_for_log {
    my ($self, $re, $timeout) = @_;
    my $deadline = time + ($timeout // 3);
    while (1) {
        my @l = $self->grep_log($re);
        return @l if @l;
        return () if time > $deadline;
        sleep 0.02;
    }
}

sub _bad_log_lines {
    my ($self) = @_;
    my @bad;
    for my $line (split /\n/, $self->error_log) {
        next unless $line =~ /\[(?:alert|crit|emerg)\]|exited on signal/;
        next if grep { $line =~ $_ } @{ $self->{expected} };
        # valgrind keeps some descriptors for itself: worker_rlimit_nofile
        # above its limit fails, which says nothing about the module
        next if valgrind() && $line =~ /\[alert\].*setrlimit\(RLIMIT_NOFILE/;
        push @bad, $line;
    }
    return @bad;
}

# Stops nginx and the backends, checks the error log, calls done_testing.
sub done {
    my ($self) = @_;
    $self->stop;
    $self->{done} = 1;
    if (-e "$self->{dir}/error.log") {
        my @bad = $self->_bad_log_lines;
        Test::More::ok(!@bad, 'no alert/crit/unexpected emerg/crash in error.log')
            or Test::More::diag(join "\n", 'unexpected error log lines:', @bad);
    }
    if (valgrind()) {
        my @errors = $self->valgrind_errors;
        Test::More::ok(!@errors, 'valgrind: no memcheck error or definite leak in module frames')
            or Test::More::diag(join "\n", @errors);
    }
    if ($ENV{TEST_NGINX_CATLOG}) {
        Test::More::diag("---- error.log ----\n" . $self->error_log);
    }
    Test::More::done_testing();
    return $self;
}

sub _cleanup {
    my ($self) = @_;
    return unless $$ == $self->{pid};
    $self->stop;
}

sub DESTROY {
    my ($self) = @_;
    return unless $$ == ($self->{pid} // 0);
    if (!$self->{done}) {
        carp "AGTest: \$t->done was not called: error log not checked";
    }
    $self->_cleanup;
}

END {
    if ($$ == $CREATOR_PID) {
        my $status = $?;
        for my $t (@ALL) {
            next unless $t;
            if (!$t->{done} && !$t->{warned_done}) {
                $t->{warned_done} = 1;
                print STDERR "# AGTest: \$t->done was not called in $0: "
                    . "error log not checked\n";
            }
            $t->_cleanup;
        }
        $? = $status;
    }
}

###############################################################################
# HTTP/1.x client
###############################################################################

sub _port_opt {
    my (%o) = @_;
    return $o{port} if $o{port};
    croak "AGTest: no test object for the default port" unless $CURRENT;
    return $CURRENT->default_port;
}

# http($raw_request, %opts): sends the raw bytes to 127.0.0.1:port and reads
# the whole response (until the server closes, or until `responses` complete
# responses have arrived).  Options:
#   port      => N (default: the first port nginx.conf listens on, else port(8080))
#   timeout   => seconds without progress before giving up (default 10)
#   body      => extra bytes sent after $raw_request (may be large)
#   parts     => [ chunk, ... ] sent one after another, `delay` apart
#   delay     => seconds between parts (default 0.1)
#   responses => stop reading after this many complete responses
#   start     => 1: only send, return the socket (finish with http_end)
#   socket    => reuse an existing socket
sub http {
    my ($request, %o) = @_;
    my $port = _port_opt(%o);
    my $timeout = $o{timeout} // 10;

    my $s = $o{socket} || IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 5,
    );
    unless ($s) {
        Test::More::diag("AGTest::http: cannot connect to 127.0.0.1:$port: $!");
        return '';
    }
    binmode $s;

    if ($ENV{TEST_NGINX_VERBOSE}) {
        my $shown = $request;
        $shown = substr($shown, 0, 2000) . "...\n" if length $shown > 2000;
        Test::More::diag("request (port $port):\n$shown");
    }

    my $ok = _write_all($s, $request, $timeout);
    $ok = _write_all($s, $o{body}, $timeout) if $ok && defined $o{body};
    for my $part (@{ $o{parts} || [] }) {
        last unless $ok;
        sleep($o{delay} // 0.1);
        $ok = _write_all($s, $part, $timeout);
    }

    return $s if $o{start};
    return http_end($s, %o);
}

sub _write_all {
    my ($s, $data, $timeout) = @_;
    my $off = 0;
    my $len = length $data;
    my $sel = IO::Select->new($s);
    while ($off < $len) {
        unless ($sel->can_write($timeout)) { return 0 }
        my $n = syswrite($s, $data, 65536, $off);
        unless (defined $n) {
            next if $! == EINTR || $! == EAGAIN;
            return 0;                       # EPIPE, ECONNRESET: stop sending
        }
        $off += $n;
    }
    return 1;
}

# http_end($socket, %opts): reads the rest of the response(s) and closes.
sub http_end {
    my ($s, %o) = @_;
    my $timeout = $o{timeout} // 10;
    my $sel = IO::Select->new($s);
    my $buf = '';
    while (1) {
        if ($o{responses}) {
            my @r = parse_responses($buf);
            last if @r >= $o{responses} && $r[-1]{complete};
        }
        last unless $sel->can_read($timeout);
        my $n = sysread($s, $buf, 65536, length $buf);
        next if !defined $n && ($! == EINTR || $! == EAGAIN);
        last unless $n;
    }
    close $s unless $o{keep};
    Test::More::diag("response:\n" . (length $buf > 3000 ? substr($buf, 0, 3000) . '...' : $buf))
        if $ENV{TEST_NGINX_VERBOSE};
    return $buf;
}

sub _header_lines {
    my ($h) = @_;
    return '' unless $h;
    my @lines;
    if (ref $h eq 'HASH') {
        for my $k (sort keys %$h) {
            my $v = $h->{$k};
            push @lines, map { "$k: $_" } (ref $v ? @$v : $v);
        }
    } elsif (ref $h eq 'ARRAY') {
        @lines = @$h;
    } else {
        @lines = split /\r?\n/, $h;
    }
    return join '', map { "$_\r\n" } @lines;
}

# http_get($uri, %opts): "GET $uri HTTP/1.1", Host: localhost, Connection: close.
#   headers => [ 'Name: value', ... ] | { Name => value|[values] } | "raw lines"
#   method => 'GET', version => '1.1', host => 'localhost', keepalive => 1
#   (omit Connection: close), plus the options of http().
sub http_get {
    my ($uri, %o) = @_;
    my $method = $o{method} // 'GET';
    my $ver = $o{version} // '1.1';
    my $req = "$method $uri HTTP/$ver\r\n";
    $req .= "Host: " . ($o{host} // 'localhost') . "\r\n" unless exists $o{host} && !defined $o{host};
    $req .= "Connection: close\r\n" unless $o{keepalive};
    $req .= _header_lines($o{headers});
    $req .= "\r\n";
    return http($req, %o, method => undef);
}

# http_post($uri, $body, %opts): like http_get with method POST and a body.
#   chunked => 1 sends Transfer-Encoding: chunked (chunk_size, default 4096)
#   content_type => 'application/octet-stream'
sub http_post {
    my ($uri, $body, %o) = @_;
    $body //= '';
    my $method = $o{method} // 'POST';
    my $ver = $o{version} // '1.1';
    my $req = "$method $uri HTTP/$ver\r\n";
    $req .= "Host: " . ($o{host} // 'localhost') . "\r\n";
    $req .= "Connection: close\r\n" unless $o{keepalive};
    $req .= "Content-Type: " . ($o{content_type} // 'application/octet-stream') . "\r\n";
    my $payload;
    if ($o{chunked}) {
        $req .= "Transfer-Encoding: chunked\r\n";
        my $cs = $o{chunk_size} // 4096;
        $payload = '';
        for (my $off = 0; $off < length $body; $off += $cs) {
            my $c = substr($body, $off, $cs);
            $payload .= sprintf("%x\r\n", length $c) . $c . "\r\n";
        }
        $payload .= "0\r\n\r\n";
    } else {
        $req .= "Content-Length: " . length($body) . "\r\n";
        $payload = $body;
    }
    $req .= _header_lines($o{headers});
    $req .= "\r\n";
    delete $o{body};
    return http($req, %o, body => $payload);
}

###############################################################################
# HTTP/2 client (curl, h2c with prior knowledge)
###############################################################################

# http2_port($port): the port that speaks HTTP/2 for the listen on $port.
# The same port, except on nginx < 1.25.1, where "http2 on;" does not exist
# and the harness adds an "http2" listen of its own (see _http2_compat).
# For tests that run curl themselves (e.g. a body streamed from stdin).
sub http2_port {
    my ($port) = @_;
    if ($CURRENT && $CURRENT->{h2c}) {
        for my $token (keys %{ $CURRENT->{h2c} }) {
            return $CURRENT->port($CURRENT->{h2c}{$token}) if $CURRENT->port($token) == $port;
        }
    }
    return $port;
}

# http2_request($uri, %opts): runs
#   curl -sS -i --http2-prior-knowledge -X METHOD [-H ...] [--data-binary @f]
#        http://127.0.0.1:PORT$uri
# and returns its output: "HTTP/2 200\r\nname: value\r\n...\r\n\r\nbody", which
# the parse helpers understand.  Options: method, headers (as http_get), body,
# port, timeout.  The server block needs "http2 on;".
sub http2_request {
    my ($uri, %o) = @_;
    my $port = http2_port(_port_opt(%o));
    my @cmd = ('curl', '-sS', '-i', '--http2-prior-knowledge',
               '--max-time', $o{timeout} // 10);
    push @cmd, '-X', $o{method} if $o{method};
    my $hl = _header_lines($o{headers});
    push @cmd, map { ('-H', $_) } split /\r\n/, $hl;
    my $tmp;
    if (defined $o{body}) {
        my $dir = $CURRENT ? $CURRENT->{dir} : File::Spec->tmpdir;
        $tmp = "$dir/h2body-$$-" . int(rand(1e9));
        open my $fh, '>', $tmp or croak "AGTest: $tmp: $!";
        binmode $fh;
        print $fh $o{body};
        close $fh;
        push @cmd, '--data-binary', "\@$tmp";
        push @cmd, '-H', 'Content-Type: application/octet-stream'
            unless $hl =~ /^content-type:/im;
    }
    push @cmd, "http://127.0.0.1:$port$uri";
    Test::More::diag("h2: @cmd") if $ENV{TEST_NGINX_VERBOSE};
    my $out = _capture(@cmd);
    unlink $tmp if $tmp;
    Test::More::diag("h2 response:\n$out") if $ENV{TEST_NGINX_VERBOSE};
    return $out;
}

###############################################################################
# Response parsing
###############################################################################

# parse_responses($raw) -> list of { version, status, reason, headers =>
# [[name, value], ...], body (de-chunked), complete, raw }.  Reads several
# pipelined responses from one stream (framing by Content-Length / chunked /
# close).  Responses to HEAD and 1xx/204/304 are assumed to have no body.
sub parse_responses {
    my ($buf, %o) = @_;
    my @out;
    $buf //= '';
    while (length $buf) {
        my $he = index($buf, "\r\n\r\n");
        my $sep = 4;
        if ($he < 0) {
            $he = index($buf, "\n\n");
            $sep = 2;
        }
        if ($he < 0) {
            push @out, { raw => $buf, complete => 0, headers => [], body => '' };
            last;
        }
        my $head = substr($buf, 0, $he);
        my $rest = substr($buf, $he + $sep);
        my @lines = split /\r?\n/, $head;
        my $sl = shift @lines // '';
        my ($ver, $status, $reason) = $sl =~ m{^(HTTP/[\d.]+)\s+(\d{3})\s*(.*)$};
        my @h;
        for my $l (@lines) {
            if ($l =~ /^[ \t]/ && @h) { $h[-1][1] .= " $l"; next }
            my ($n, $v) = $l =~ /^([^:]+):\s*(.*?)\s*$/ or next;
            push @h, [$n, $v];
        }
        my %r = (version => $ver, status => $status, reason => $reason,
                 headers => \@h, body => '', complete => 1);
        my ($cl) = map { $_->[1] } grep { lc $_->[0] eq 'content-length' } @h;
        my ($te) = map { $_->[1] } grep { lc $_->[0] eq 'transfer-encoding' } @h;
        my $consumed;
        if (!defined $status || $status =~ /^(1\d\d|204|304)$/ || $o{head}) {
            $consumed = 0;
        } elsif ($te && $te =~ /chunked/i) {
            my $pos = 0;
            my $body = '';
            $r{complete} = 0;
            while (1) {
                my $le = index($rest, "\r\n", $pos);
                last if $le < 0;
                my ($size) = substr($rest, $pos, $le - $pos) =~ /^([0-9a-fA-F]+)/;
                last unless defined $size;
                $size = hex $size;
                if ($size == 0) {
                    # last chunk, optional trailers, empty line
                    my $end = index($rest, "\r\n\r\n", $le);
                    if ($end >= 0) {
                        $pos = $end + 4;
                        $r{complete} = 1;
                    } else {
                        $pos = length $rest;
                    }
                    last;
                }
                last if length($rest) < $le + 2 + $size + 2;
                $body .= substr($rest, $le + 2, $size);
                $pos = $le + 2 + $size + 2;
            }
            $r{body} = $body;
            $consumed = $pos;
        } elsif (defined $cl) {
            $r{body} = substr($rest, 0, $cl);
            $r{complete} = length($rest) >= $cl ? 1 : 0;
            $consumed = length $r{body};
        } else {
            $r{body} = $rest;           # until close
            $consumed = length $rest;
        }
        $r{raw} = substr($buf, 0, $he + $sep + $consumed);
        push @out, \%r;
        $buf = substr($rest, $consumed);
        last unless $r{complete};
    }
    return @out;
}

sub parse_response {
    my ($raw) = @_;
    my @r = parse_responses($raw);
    return $r[0] // { headers => [], body => '', complete => 0, raw => '' };
}

sub _resp { ref $_[0] ? $_[0] : parse_response($_[0]) }

# http_status($raw_or_parsed) -> "200" (undef if no status line)
sub http_status { _resp($_[0])->{status} }

# http_header($raw, $name): all values of that header, in order (list context),
# or the first one (scalar context); names compare case-insensitively.
sub http_header {
    my ($r, $name) = @_;
    my @v = map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ _resp($r)->{headers} };
    return wantarray ? @v : $v[0];
}

# http_headers($raw) -> [[name, value], ...] in order
sub http_headers { _resp($_[0])->{headers} }

# http_body($raw) -> body (de-chunked)
sub http_body { _resp($_[0])->{body} }

# json_body($raw) -> decoded JSON body (e.g. the echo server's description)
sub json_body {
    require JSON::PP;
    my $b = http_body($_[0]);
    return eval { JSON::PP::decode_json($b) };
}

1;
