package AGRedis;

# A real redis-server for a test, on a free 127.0.0.1 port of the AGTest
# object, with its data in the test's temp dir (no persistence), and a tiny
# RESP client to look at what nginx wrote.
#
#   my $redis = AGRedis->start($t, token => 'redis', args => [...]);
#   $redis->port;  $redis->command('GET', 'authgate:jack');
#   $redis->pause;  $redis->resume;     # SIGSTOP / SIGCONT
#   $redis->stop;   $redis->restart;    # same port, empty data
#
# The server runs as a daemon of the AGTest object, so done() kills it; a
# paused one is resumed first (a stopped process would ignore TERM).

use strict;
use warnings;

use Carp qw(croak);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

my @PAUSED;
END { kill 'CONT', $_ for @PAUSED }

sub available {
    return system('sh', '-c', 'command -v redis-server >/dev/null 2>&1') == 0;
}

sub start {
    my ($class, $t, %o) = @_;
    my $self = bless {
        t    => $t,
        port => $t->port($o{token} // 'redis'),
        args => $o{args} // [],
    }, $class;
    $self->_spawn;
    return $self;
}

sub _spawn {
    my ($self) = @_;
    my $dir = $self->{t}->testdir . "/redis-$self->{port}";
    mkdir $dir;
    my @cmd = ('redis-server', '--port', $self->{port}, '--bind', '127.0.0.1',
               '--save', '', '--appendonly', 'no', '--dir', $dir,
               '--logfile', "$dir/redis.log", '--daemonize', 'no',
               @{ $self->{args} });
    $self->{pid} = $self->{t}->run_daemon(@cmd);
    my $deadline = time + 10;
    until ($self->_ping) {
        croak "AGRedis: redis-server did not start on port $self->{port}" if time > $deadline;
        sleep 0.05;
    }
}

sub _ping {
    my ($self) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{port}", Timeout => 1)
        or return 0;
    return 1;
}

sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }

# Sends one command, returns the reply: a scalar (status, integer, bulk;
# errors as "ERR: ..." prefixed by "-"), or an array ref.
sub command { my ($self, @words) = @_; return $self->command_in_db(undef, @words) }

# The same in database $db (SELECT first); undef: database 0.
sub command_in_db {
    my ($self, $db, @words) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{port}", Timeout => 3)
        or croak "AGRedis: connect: $!";
    my @before = (($self->{auth} ? ([@{ $self->{auth} }]) : ()), (defined $db ? (['SELECT', $db]) : ()));
    my $out = '';
    for my $cmd (@before, [@words]) {
        $out .= '*' . scalar(@$cmd) . "\r\n";
        $out .= '$' . length($_) . "\r\n$_\r\n" for @$cmd;
    }
    print {$s} $out;
    _read_reply($s) for @before;
    return _read_reply($s);
}

# Credentials the helper's own commands use (AUTH words), e.g. ['AUTH', 'pw'].
sub auth { $_[0]{auth} = $_[1]; $_[0] }

sub _read_reply {
    my ($s) = @_;
    my $line = <$s>;
    croak "AGRedis: no reply" unless defined $line;
    $line =~ s/\r\n$//;
    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));
    return $rest if $type eq '+' || $type eq ':';
    return "-$rest" if $type eq '-';
    if ($type eq '$') {
        return undef if $rest < 0;
        my $data = '';
        read($s, $data, $rest + 2);
        return substr($data, 0, $rest);
    }
    if ($type eq '*') {
        return undef if $rest < 0;
        return [map { _read_reply($s) } 1 .. $rest];
    }
    croak "AGRedis: bad reply '$line'";
}

sub pause  { my ($self) = @_; kill 'STOP', $self->{pid}; push @PAUSED, $self->{pid}; $self }
sub resume {
    my ($self) = @_;
    kill 'CONT', $self->{pid};
    @PAUSED = grep { $_ != $self->{pid} } @PAUSED;
    $self;
}

sub stop {
    my ($self) = @_;
    $self->resume;
    kill 'TERM', $self->{pid};
    my $deadline = time + 5;
    while (time < $deadline) {
        my $r = waitpid($self->{pid}, WNOHANG);
        last if $r == $self->{pid} || $r == -1;
        sleep 0.02;
    }
    # the port is free once the server is gone
    $deadline = time + 5;
    sleep 0.02 while $self->_ping && time < $deadline;
    $self;
}

sub restart {
    my ($self) = @_;
    $self->stop;
    $self->_spawn;
    $self;
}

1;
