package NtlmBackend;

# Connection-remembering HTTP/1.1 backend for the ntlm tests, plus the
# small keep-alive client helpers those tests share.
#
#   NtlmBackend::serve(port => N, name => 'b1', state => '/path/b1.events',
#                      [ssl_cert => FILE, ssl_key => FILE])
#
# One forked process per TCP connection, so every connection has its own
# memory: like an NTLM server, it authenticates the *connection*.
#
# Per connection: an id (1, 2, ... in accept order, per backend) and a token.
#   Authorization: NTLM|Negotiate <tok>      the first such request sets the
#       connection's token to <tok>; a later, different <tok> does not change
#       it (and is recorded as "conflict": two clients on one connection).
#   Two-leg handshake, as NTLM does it:
#       "NTLM T1-<user>"            -> 401, WWW-Authenticate: NTLM C-<id>
#       "NTLM T3-<user>-C-<id>"     -> 200 and token <user> when <id> is this
#                                      connection's challenge, else 401
#   No Authorization on a connection without token, with ?challenge=1 (or
#   serve(challenge => 1)) -> 401 WWW-Authenticate: NTLM.
# Every response: X-Conn-Id, X-Conn-Token ("-" when none), X-Conn-Seq
# (request number on the connection), X-Backend (name); body
# "conn=<id> token=<tok> seq=<n>\n" (or bodylen=N bytes of "x").
# Query controls: close=1 (answer with Connection: close, then close),
# close_after=SEC (close the idle connection SEC seconds after answering),
# delay=SEC (before answering), bodylen=N, status=NNN (instead of 200), drop_if_token=1 (close without
# answering when the connection is authenticated), drop_if_reused=1 (close without answering when
# this is not the connection's first request).
#
# Event log (the state file, one line each, appended under flock):
#   open <id> <time>
#   req <id> <seq> <sent-token|-> <conn-token|-> <time>
#   conflict <id> <conn-token> <sent-token> <time>
#   close <id> <time> peer|server
# Read it with NtlmBackend::events($file).

use strict;
use warnings;

use Errno qw(EINTR EAGAIN);
use Fcntl qw(:flock O_WRONLY O_APPEND O_CREAT);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(_exit);
use Time::HiRes qw(time sleep);

sub serve {
    my (%o) = @_;
    my $s = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => $o{port}, Proto => 'tcp',
        Listen => 1024, ReuseAddr => 1,
    ) or die "NtlmBackend: listen on $o{port}: $!";
    $SIG{CHLD} = 'IGNORE';
    $SIG{PIPE} = 'IGNORE';
    $SIG{TERM} = sub { _exit(0) };
    my $id = 0;
    while (1) {
        my $c = $s->accept;
        unless ($c) { next if $! == EINTR; last }
        $id++;
        _event($o{state}, "open $id " . time);
        my $pid = fork();
        if (!defined $pid) { close $c; next }
        if ($pid == 0) {
            close $s;
            $SIG{TERM} = 'DEFAULT';
            my $by = eval { _connection($c, $id, %o) } // 'server';
            _event($o{state}, "close $id " . time . " $by");
            _exit(0);
        }
        close $c;
    }
    _exit(0);
}

sub _event {
    my ($file, $line) = @_;
    return unless $file;
    sysopen(my $fh, $file, O_WRONLY | O_APPEND | O_CREAT, 0644) or return;
    flock($fh, LOCK_EX);
    syswrite($fh, "$line\n");
    close $fh;
}

# Returns 'peer' when the client (nginx) closed, 'server' when we did.
sub _connection {
    my ($c, $id, %o) = @_;
    if ($o{ssl_cert}) {
        require IO::Socket::SSL;
        IO::Socket::SSL->start_SSL($c, SSL_server => 1,
            SSL_cert_file => $o{ssl_cert}, SSL_key_file => $o{ssl_key})
            or return 'server';
    }
    binmode $c;
    my $sel = IO::Select->new($c);
    my ($buf, $seq, $token, $pending) = ('', 0, undef, undef);
    my $read = sub {
        my ($timeout) = @_;
        while (1) {
            my $ready = (ref $c ne 'IO::Socket::INET' && $c->can('pending') && $c->pending)
                || $sel->can_read($timeout);
            return -1 unless $ready;                # timeout
            my $n = sysread($c, $buf, 65536, length $buf);
            next if !defined $n && ($! == EINTR || $! == EAGAIN);
            return $n ? $n : 0;                     # 0: EOF or error
        }
    };
    my $idle = 60;
    while (1) {
        my $he;
        while (($he = index($buf, "\r\n\r\n")) < 0) {
            my $n = $read->($idle);
            return 'server' if $n < 0;
            return 'peer' if $n == 0;
        }
        my $head = substr($buf, 0, $he);
        $buf = substr($buf, $he + 4);
        my ($rl, @lines) = split /\r\n/, $head;
        my ($method, $uri, $version) = $rl =~ m{^(\S+)\s+(\S+)\s+HTTP/(\d\.\d)} or return 'server';
        my %h;
        for (@lines) { my ($n, $v) = /^([^:]+):\s*(.*?)\s*$/ or next; $h{lc $n} //= $v }
        if (my $cl = $h{'content-length'}) {
            while (length $buf < $cl) { my $n = $read->(5); return 'peer' if $n <= 0 }
            $buf = substr($buf, $cl);
        }
        $seq++;
        my %q = map { my ($k, $v) = split /=/, $_, 2; ($k => $v // '') }
                grep { length } split /[&;]/, (split /\?/, $uri, 2)[1] // '';

        my ($status, @extra) = (200);
        my $sent;
        if (($h{authorization} // '') =~ /^(?:NTLM|Negotiate)\s+(\S+)/i) {
            $sent = $1;
            if ($sent =~ /^T1-(.+)$/) {
                $pending = $1;
                ($status, @extra) = (401, "WWW-Authenticate: NTLM C-$id");
            } elsif ($sent =~ /^T3-(.+)-C-(\d+)$/) {
                if (defined $pending && $pending eq $1 && $2 == $id) {
                    $token //= $1;
                } else {
                    ($status, @extra) = (401, "WWW-Authenticate: NTLM");
                }
            } elsif (!defined $token) {
                $token = $sent;
            } elsif ($token ne $sent) {
                _event($o{state}, "conflict $id $token $sent " . time);
            }
        } elsif (!defined $token && ($o{challenge} || $q{challenge})) {
            ($status, @extra) = (401, "WWW-Authenticate: NTLM");
        }
        $status = $q{status} if $q{status} && $status == 200;
        my $tok = $token // '-';
        _event($o{state}, "req $id $seq " . ($sent // '-') . " $tok " . time);
        if (($q{drop_if_token} && defined $token) || ($q{drop_if_reused} && $seq > 1)) {
            close $c;
            return 'server';
        }
        sleep $q{delay} if $q{delay};

        my $body = defined $q{bodylen} ? 'x' x $q{bodylen} : "conn=$id token=$tok seq=$seq\n";
        # HTTP/1.0 requests keep the connection only when they ask to (nginx
        # before 1.29.7 sent "Connection: close" with them, later ones send
        # no Connection header)
        my $close = $q{close} || ($h{connection} // '') =~ /close/i
            || ($version eq '1.0' && ($h{connection} // '') !~ /keep-alive/i);
        my $reason = { 200 => 'OK', 401 => 'Unauthorized', 404 => 'Not Found' }->{$status} // 'Status';
        my $resp = "HTTP/1.1 $status $reason\r\n"
            . "X-Backend: " . ($o{name} // 'ntlm') . "\r\n"
            . "X-Conn-Id: $id\r\nX-Conn-Token: $tok\r\nX-Conn-Seq: $seq\r\n"
            . join('', map { "$_\r\n" } @extra)
            . ($close ? "Connection: close\r\n" : '')
            . "Content-Length: " . length($body) . "\r\n\r\n"
            . ($method eq 'HEAD' ? '' : $body);
        my $off = 0;
        while ($off < length $resp) {
            my $n = syswrite($c, $resp, length($resp) - $off, $off);
            unless (defined $n) { next if $! == EINTR || $! == EAGAIN; return 'peer' }
            $off += $n;
        }
        if ($close) {
            close $c;
            return 'server';
        }
        if ($q{close_after} && !length $buf) {
            my $n = $read->($q{close_after});
            if ($n < 0) { close $c; return 'server' }
            return 'peer' if $n == 0;
        }
    }
}

# All events of a state file: list of hashrefs {type, id, ...}.
sub events {
    my ($file) = @_;
    open my $fh, '<', $file or return ();
    flock($fh, LOCK_SH);
    my @e;
    while (my $l = <$fh>) {
        chomp $l;
        my @f = split / /, $l;
        my %e = (type => $f[0], id => $f[1]);
        if ($f[0] eq 'open') { $e{time} = $f[2] }
        elsif ($f[0] eq 'close') { @e{qw(time by)} = @f[2, 3] }
        elsif ($f[0] eq 'req') { @e{qw(seq sent token time)} = @f[2 .. 5] }
        elsif ($f[0] eq 'conflict') { @e{qw(token sent time)} = @f[2 .. 4] }
        push @e, \%e;
    }
    close $fh;
    return @e;
}

# Waits up to $timeout s for "close <id>"; returns its event or undef.
sub wait_close {
    my ($file, $id, $timeout) = @_;
    my $deadline = time + ($timeout // 3);
    while (1) {
        my ($e) = grep { $_->{type} eq 'close' && $_->{id} == $id } events($file);
        return $e if $e;
        return undef if time > $deadline;
        sleep 0.02;
    }
}

sub count { my ($file, $type) = @_; return scalar grep { $_->{type} eq $type } events($file) }

###############################################################################
# Client side: one keep-alive connection to nginx, one request at a time.

sub client {
    my ($port) = @_;
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                 Proto => 'tcp', Timeout => 5);
}

# request($sock, $uri, [auth => 'NTLM tok', headers => [...]]) -> parsed
# response hashref (AGTest::parse_responses format) or undef.
sub request {
    my ($s, $uri, %o) = @_;
    my $req = "GET $uri HTTP/1.1\r\nHost: localhost\r\n";
    $req .= "Authorization: $o{auth}\r\n" if $o{auth};
    $req .= "$_\r\n" for @{ $o{headers} || [] };
    $req .= "\r\n";
    return (send_requests($s, $req, 1, %o))[0];
}

# Writes raw (possibly pipelined) requests and reads $n responses.
sub send_requests {
    my ($s, $raw, $n, %o) = @_;
    my $off = 0;
    while ($off < length $raw) {
        my $w = syswrite($s, $raw, length($raw) - $off, $off);
        return () unless defined $w;
        $off += $w;
    }
    my $sel = IO::Select->new($s);
    my $buf = '';
    while (1) {
        my @r = AGTest::parse_responses($buf);
        return @r if @r >= $n && $r[-1]{complete};
        return @r unless $sel->can_read($o{timeout} // 10);
        my $got = sysread($s, $buf, 65536, length $buf);
        return AGTest::parse_responses($buf) unless $got;
    }
}

sub hdr {
    my ($r, $name) = @_;
    return undef unless $r;
    my ($v) = map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ $r->{headers} };
    return $v;
}

###############################################################################
# A minimal HTTP/2 (h2c, prior knowledge) client: several streams on ONE
# connection, which curl 7.88 cannot do for h2c. Requests are HPACK-encoded
# as literals; responses are not decoded beyond the status 200 marker (0x88,
# the indexed ":status: 200" nginx sends) and the DATA payload, which is
# enough for the backend's "conn=<id> token=<tok> seq=<n>" bodies.
#   h2_requests($port, [[path, authorization-or-undef], ...], concurrent => 1)
# -> list of { stream, status200 => 0|1, body, reset => 0|1 } in request order.

sub _h2_int {
    my ($value, $prefix_bits, $first) = @_;
    my $max = (1 << $prefix_bits) - 1;
    return chr($first | $value) if $value < $max;
    my $out = chr($first | $max);
    $value -= $max;
    while ($value >= 128) { $out .= chr(($value % 128) + 128); $value = int($value / 128) }
    return $out . chr($value);
}

sub _h2_frame {
    my ($type, $flags, $stream, $payload) = @_;
    my $len = length $payload;
    return pack('CnCCN', $len >> 16, $len & 0xffff, $type, $flags, $stream) . $payload;
}

sub h2_requests {
    my ($port, $reqs, %o) = @_;
    my $s = client($port) or return ();
    binmode $s;
    my $out = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" . _h2_frame(4, 0, 0, '');
    my @streams;
    my $headers = sub {
        my ($i) = @_;
        my ($path, $auth) = @{ $reqs->[$i] };
        my @h = ([':method', 'GET'], [':scheme', 'http'], [':path', $path],
                 [':authority', 'localhost']);
        push @h, ['authorization', $auth] if defined $auth;
        my $block = join '', map {
            "\x00" . _h2_int(length $_->[0], 7, 0) . $_->[0] . _h2_int(length $_->[1], 7, 0) . $_->[1]
        } @h;
        return _h2_frame(1, 0x5, 2 * $i + 1, $block);    # END_STREAM | END_HEADERS
    };
    my %res;
    my $next = 0;
    if ($o{concurrent}) { $out .= $headers->($_) for 0 .. $#$reqs; $next = @$reqs }
    else { $out .= $headers->($next++) }
    my $sel = IO::Select->new($s);
    my $buf = '';
    my $done = 0;
    my $deadline = time + ($o{timeout} // 10);
    while ($done < @$reqs && time < $deadline) {
        if (length $out) {
            my $w = syswrite($s, $out);
            return () unless defined $w;
            substr($out, 0, $w) = '';
            next;
        }
        last unless $sel->can_read(1) || length $buf >= 9;
        my $n = sysread($s, $buf, 65536, length $buf);
        last if defined $n && $n == 0 && length $buf < 9;
        while (length $buf >= 9) {
            my ($l1, $l2, $type, $flags, $stream) = unpack('CnCCN', $buf);
            my $len = ($l1 << 16) | $l2;
            last if length $buf < 9 + $len;
            my $payload = substr($buf, 9, $len);
            substr($buf, 0, 9 + $len) = '';
            $stream &= 0x7fffffff;
            my $r = $res{$stream} //= { stream => $stream, body => '', status200 => 0, reset => 0 };
            my $end = 0;
            if ($type == 4 && !($flags & 1)) { $out .= _h2_frame(4, 1, 0, '') }
            elsif ($type == 6 && !($flags & 1)) { $out .= _h2_frame(6, 1, 0, $payload) }
            elsif ($type == 1) {
                my $p = $payload;
                if ($flags & 0x8) { my $pad = ord $p; $p = substr($p, 1, length($p) - 1 - $pad) }
                $p = substr($p, 5) if $flags & 0x20;
                $r->{status200} = 1 if length $p && ord($p) == 0x88;
                $end = $flags & 1;
            } elsif ($type == 0) {
                my $p = $payload;
                if ($flags & 0x8) { my $pad = ord $p; $p = substr($p, 1, length($p) - 1 - $pad) }
                $r->{body} .= $p;
                $end = $flags & 1;
                # keep the windows open
                $out .= _h2_frame(8, 0, 0, pack('N', $len)) . _h2_frame(8, 0, $stream, pack('N', $len))
                    if $len && !$end;
            } elsif ($type == 3) { $r->{reset} = 1; $end = 1 }
            elsif ($type == 7) { $deadline = 0 }
            if ($end && $stream) {
                $done++;
                $out .= $headers->($next++) if !$o{concurrent} && $next < @$reqs;
            }
        }
    }
    close $s;
    return map { $res{2 * $_ + 1} // { stream => 2 * $_ + 1, body => '', status200 => 0, reset => 1 } }
           0 .. $#$reqs;
}

# "conn=<id> token=<tok> seq=<n>" -> ($id, $tok)
sub body_conn { my ($b) = @_; return ($b // '') =~ /conn=(\d+) token=(\S+)/ }

1;
