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

our @EXPORT = qw(packaging_or_skip run_cmd build_against prove_with);

my $ROOT = AGTest::_find_root();

sub root { $ROOT }

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
# the script's output. @args as for ci/build-against.sh.
sub build_against {
    my (@args) = @_;
    my ($rc, $out, $err) = run_cmd('bash', 'ci/build-against.sh', @args);
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

1;
