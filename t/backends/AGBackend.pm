package AGBackend;

# Scripted HTTP/1.x backend for the nginx-authgate tests: an auth service
# and an echo server in one.  Every request is answered according to the
# request itself and recorded (one JSON object per line) to a log file.
#
#   AGBackend::serve(port => N, name => 'auth', mode => 'auth'|'echo'|'oauth2',
#                    log => '/path/auth.requests');
#
# Response control ("ctl" parameters), later sources override earlier ones:
#   1. path (mode auth only): the last path segment of exactly three digits
#      is the status, e.g. /auth/401, /x/204/y
#   2. query string: status=NNN, www=VALUE (repeatable, one WWW-Authenticate
#      header each, in order), hdr=Name:Value (repeatable), delay=SECONDS,
#      drop=1 (close without any response), body=TEXT, bodylen=N,
#      chunked=1 (chunked response body), close=1 (Connection: close)
#   3. request headers named <prefix><param> (prefix "X-Ctl-" for mode auth,
#      "X-Echo-Ctl-" for mode echo), e.g. "X-Ctl-Status: 401",
#      "X-Ctl-Www: Basic realm=a" (repeatable), "X-Ctl-Hdr: X-User: alice".
#      As nginx passes the client's headers to the auth subrequest, a test
#      can script the auth service from the client request.
#   4. fail_first=N [fail_key=K] [fail_with=STATUS|drop]: the first N
#      requests carrying the same key (default: the request path) are
#      answered with STATUS (default 503; no delay, default body) or dropped;
#      later ones as the other parameters say. The count is shared by all
#      connections (a file next to the log; needs log =>), for "a service
#      that recovers" tests. Every request is still logged.
#
# Default status 200.  Default body: mode auth -> "AUTH-SERVICE-BODY <status>\n";
# mode echo -> JSON describing the request: {server, method, uri, path, query,
# version, headers: [[name, value], ...], body_length, body_md5,
# body_complete}.
#
# Every response carries "X-Backend: <name>" and "X-Backend-Seq: <n>"
# (n-th request on its connection).  Keep-alive: HTTP/1.1 unless
# "Connection: close"; HTTP/1.0 only with "Connection: keep-alive".
#
# Log record (JSON line): {server, method, uri, path, query, version, headers,
# body_length, body_md5, body (first 4096 bytes), body_complete, conn (pid of
# the connection handler), seq, time}.  Written before any delay, so a
# dropped or timed-out request is still recorded.

use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use Errno qw(EINTR EAGAIN);
use Fcntl qw(:flock O_RDWR O_WRONLY O_APPEND O_CREAT);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX qw(_exit);
use Time::HiRes qw(time sleep);

my %REASON = (
    200 => 'OK', 201 => 'Created', 202 => 'Accepted', 204 => 'No Content',
    206 => 'Partial Content', 301 => 'Moved Permanently', 302 => 'Found',
    303 => 'See Other', 304 => 'Not Modified', 307 => 'Temporary Redirect',
    400 => 'Bad Request', 401 => 'Unauthorized', 403 => 'Forbidden',
    404 => 'Not Found', 407 => 'Proxy Authentication Required',
    500 => 'Internal Server Error', 502 => 'Bad Gateway',
    503 => 'Service Unavailable', 504 => 'Gateway Timeout',
);

my $JSON = JSON::PP->new->canonical->utf8;

sub serve {
    my (%o) = @_;
    my $port = $o{port} or die "AGBackend: port required";
    my $s = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => $port, Proto => 'tcp',
        Listen => 128, ReuseAddr => 1,
    ) or die "AGBackend: cannot listen on 127.0.0.1:$port: $!";

    $SIG{CHLD} = 'IGNORE';
    $SIG{PIPE} = 'IGNORE';
    $SIG{TERM} = sub { _exit(0) };

    while (1) {
        my $c = $s->accept;
        unless ($c) { next if $! == EINTR; last }
        my $pid = fork();
        if (!defined $pid) { close $c; next }
        if ($pid == 0) {
            close $s;
            eval { handle_connection($c, %o); 1 }
                or print STDERR "AGBackend($o{name}): $@";
            _exit(0);
        }
        close $c;
    }
    _exit(0);
}

sub _read_more {
    my ($c, $bufref, $timeout) = @_;
    my $sel = IO::Select->new($c);
    while (1) {
        return 0 unless $sel->can_read($timeout);
        my $n = sysread($c, $$bufref, 65536, length $$bufref);
        next if !defined $n && ($! == EINTR || $! == EAGAIN);
        return $n ? $n : 0;
    }
}

sub _url_decode {
    my ($s) = @_;
    $s =~ tr/+/ /;
    $s =~ s/%([0-9a-fA-F]{2})/chr hex $1/ge;
    return $s;
}

sub handle_connection {
    my ($c, %o) = @_;
    binmode $c;
    my $mode = $o{mode} // 'auth';
    my $name = $o{name} // $mode;
    my $prefix = lc($o{ctl_prefix} // ($mode eq 'echo' ? 'x-echo-ctl-' : 'x-ctl-'));
    my $idle = $o{idle_timeout} // 30;
    my $body_timeout = $o{body_timeout} // 2;
    my $buf = '';
    my $seq = 0;

    while (1) {
        # request head
        my $he;
        while (($he = index($buf, "\r\n\r\n")) < 0) {
            return unless _read_more($c, \$buf, $idle);
        }
        my $head = substr($buf, 0, $he);
        $buf = substr($buf, $he + 4);
        my @lines = split /\r\n/, $head;
        my $rl = shift @lines;
        my ($method, $uri, $version) = $rl =~ m{^(\S+)\s+(\S+)\s+(HTTP/\d\.\d)$}
            or return;
        my @headers;
        for my $l (@lines) {
            my ($n, $v) = $l =~ /^([^:]+):\s*(.*?)\s*$/ or next;
            push @headers, [$n, $v];
        }
        my $hv = sub {
            my $n = lc shift;
            return map { $_->[1] } grep { lc $_->[0] eq $n } @headers;
        };

        # request body
        my $body = '';
        my $complete = 1;
        my ($te) = $hv->('transfer-encoding');
        my ($cl) = $hv->('content-length');
        if ($te && $te =~ /chunked/i) {
            $complete = 0;
            CHUNKS: while (1) {
                my $le;
                while (($le = index($buf, "\r\n")) < 0) {
                    last CHUNKS unless _read_more($c, \$buf, $body_timeout);
                }
                my ($size) = substr($buf, 0, $le) =~ /^([0-9a-fA-F]+)/;
                last unless defined $size;
                $size = hex $size;
                if ($size == 0) {
                    my $end;
                    while (($end = index($buf, "\r\n\r\n", $le - 2 < 0 ? 0 : $le - 2)) < 0) {
                        last CHUNKS unless _read_more($c, \$buf, $body_timeout);
                    }
                    $buf = substr($buf, $end + 4);
                    $complete = 1;
                    last;
                }
                while (length($buf) < $le + 2 + $size + 2) {
                    last CHUNKS unless _read_more($c, \$buf, $body_timeout);
                }
                $body .= substr($buf, $le + 2, $size);
                $buf = substr($buf, $le + 2 + $size + 2);
            }
        } elsif (defined $cl && $cl =~ /^\d+$/ && $cl > 0) {
            while (length($buf) < $cl) {
                unless (_read_more($c, \$buf, $body_timeout)) { $complete = 0; last }
            }
            $body = substr($buf, 0, $cl);
            $buf = length($buf) > $cl ? substr($buf, $cl) : '';
        }

        $seq++;
        my ($path, $query) = split /\?/, $uri, 2;
        $query //= '';
        my %rec = (
            server => $name, method => $method, uri => $uri, path => $path,
            query => $query, version => $version, headers => \@headers,
            body_length => length $body, body_md5 => md5_hex($body),
            body => substr($body, 0, 4096), body_complete => $complete ? JSON::PP::true : JSON::PP::false,
            conn => $$, seq => $seq, time => time,
        );
        _log($o{log}, \%rec) if $o{log};

        # control parameters
        my %ctl = (www => [], hdr => []);
        if ($mode eq 'auth') {
            for my $seg (split m{/}, $path) {
                $ctl{status} = $seg if $seg =~ /^\d{3}$/;
            }
        }
        for my $pair (grep { length } split /[&;]/, $query) {
            my ($k, $v) = split /=/, $pair, 2;
            $k = lc _url_decode($k);
            $v = _url_decode($v // '');
            if ($k eq 'www' || $k eq 'hdr') { push @{ $ctl{$k} }, $v }
            else { $ctl{$k} = $v }
        }
        my %seen;
        for my $h (@headers) {
            my $n = lc $h->[0];
            next unless substr($n, 0, length $prefix) eq $prefix;
            my $k = substr($n, length $prefix);
            $k =~ tr/-/_/;              # X-Ctl-Fail-First -> fail_first
            if ($k eq 'www' || $k eq 'hdr') {
                # headers override the query: drop query values on first use
                $ctl{$k} = [] unless $seen{$k}++;
                push @{ $ctl{$k} }, $h->[1];
            } else {
                $ctl{$k} = $h->[1];
            }
        }

        _oauth2_proxy(\%ctl, $path, $query, $hv) if $mode eq 'oauth2';

        if (defined $ctl{fail_first} && $ctl{fail_first} =~ /^\d+$/ && $o{log}) {
            my $key = $ctl{fail_key} // $path;
            if (_count_request("$o{log}.fail-" . md5_hex($key)) < $ctl{fail_first}) {
                my $with = $ctl{fail_with} // 503;
                if ($with eq 'drop') { $ctl{drop} = 1 }
                else { $ctl{status} = $with; delete $ctl{body}; delete $ctl{delay} }
            }
        }

        if ($ctl{delay}) {
            sleep $ctl{delay};
        }
        if ($ctl{drop}) {
            close $c;
            return;
        }

        my $status = $ctl{status} // 200;
        my $rbody;
        if (defined $ctl{body}) {
            $rbody = $ctl{body};
        } elsif (defined $ctl{bodylen}) {
            $rbody = 'x' x $ctl{bodylen};
        } elsif ($mode eq 'echo') {
            my %desc = %rec;
            delete @desc{qw(body time conn seq)};
            $rbody = $JSON->encode(\%desc) . "\n";
        } else {
            $rbody = "AUTH-SERVICE-BODY $status\n";
        }

        my ($req_conn) = $hv->('connection');
        $req_conn //= '';
        my $close = $ctl{close}
            || ($version eq 'HTTP/1.0' ? $req_conn !~ /keep-alive/i : $req_conn =~ /close/i);

        my $resp = "HTTP/1.1 $status " . ($REASON{$status} // 'Status') . "\r\n";
        $resp .= "Content-Type: " . ($mode eq 'echo' && !defined $ctl{body} && !defined $ctl{bodylen}
                                     ? 'application/json' : 'text/plain') . "\r\n";
        $resp .= "X-Backend: $name\r\n";
        $resp .= "X-Backend-Seq: $seq\r\n";
        $resp .= "WWW-Authenticate: $_\r\n" for @{ $ctl{www} };
        for my $h (@{ $ctl{hdr} }) {
            my ($n, $v) = $h =~ /^([^:]+):\s*(.*)$/ or next;
            $resp .= "$n: $v\r\n";
        }
        $resp .= "Connection: close\r\n" if $close;
        my $bodiless_status = $status =~ /^(1\d\d|204|304)$/;
        my $no_body = $method eq 'HEAD' || $bodiless_status;
        if ($ctl{chunked} && !$no_body) {
            $resp .= "Transfer-Encoding: chunked\r\n\r\n";
            $resp .= sprintf("%x\r\n", length $rbody) . $rbody . "\r\n" if length $rbody;
            $resp .= "0\r\n\r\n";
        } else {
            $resp .= "Content-Length: " . length($rbody) . "\r\n" unless $bodiless_status;
            $resp .= "\r\n";
            $resp .= $rbody unless $no_body;
        }
        _write_all($c, $resp) or return;
        if ($close) {
            shutdown($c, 1);
            # drain briefly so that the peer sees a clean close, not a reset
            my $junk = '';
            _read_more($c, \$junk, 0.2);
            close $c;
            return;
        }
    }
}

# mode oauth2: plays oauth2-proxy's contract with nginx's auth_request (its
# --skip-provider-button flow, the identity provider short-circuited):
#   GET /oauth2/auth      session cookie "_oauth2_proxy=session-N" present:
#                         202 with X-Auth-Request-User/-Email and a refreshed
#                         session cookie (N+1) plus the CSRF cookie cleared;
#                         else 302 to /oauth2/start?rd=<X-Forwarded-Uri>
#   GET /oauth2/start     302 to /oauth2/callback?code=c0de&state=<rd>, with
#                         a CSRF cookie
#   GET /oauth2/callback  with the CSRF cookie and code=c0de: the session
#                         cookie (session-1) and 302 to state; else 403
# "session-revoked" is refused like no cookie. X-Ctl-* is ignored.
sub _oauth2_proxy {
    my ($ctl, $path, $query, $hv) = @_;
    my %cookie;
    for my $c (map { split /;\s*/ } $hv->('cookie')) {
        my ($n, $v) = split /=/, $c, 2;
        $cookie{$n} = $v // '' if defined $n;
    }
    my %q = map { my ($k, $v) = split /=/, $_, 2; (_url_decode($k), _url_decode($v // '')) }
        grep { length } split /&/, $query;
    my $enc = sub { my $s = shift; $s =~ s/([^A-Za-z0-9\/._~-])/sprintf('%%%02X', ord $1)/ge; $s };
    %$ctl = (www => [], hdr => [], body => '');
    if ($path eq '/oauth2/auth') {
        my $s = $cookie{_oauth2_proxy} // '';
        if ($s =~ /^session-(\d+)$/) {
            my $next = $1 + 1;
            $ctl->{status} = 202;
            push @{ $ctl->{hdr} }, 'X-Auth-Request-User: alice', 'X-Auth-Request-Email: alice@example.com',
                "Set-Cookie: _oauth2_proxy=session-$next; Path=/; HttpOnly; SameSite=Lax",
                'Set-Cookie: _oauth2_proxy_csrf=; Path=/; Max-Age=0';
        } else {
            my ($rd) = $hv->('x-forwarded-uri');
            $ctl->{status} = 302;
            push @{ $ctl->{hdr} }, 'Location: /oauth2/start?rd=' . $enc->($rd // '/');
        }
    } elsif ($path eq '/oauth2/start') {
        $ctl->{status} = 302;
        push @{ $ctl->{hdr} }, 'Set-Cookie: _oauth2_proxy_csrf=x5rf; Path=/; HttpOnly',
            'Location: /oauth2/callback?code=c0de&state=' . $enc->($q{rd} // '/');
    } elsif ($path eq '/oauth2/callback'
             && ($cookie{_oauth2_proxy_csrf} // '') eq 'x5rf' && ($q{code} // '') eq 'c0de') {
        $ctl->{status} = 302;
        push @{ $ctl->{hdr} }, 'Set-Cookie: _oauth2_proxy=session-1; Path=/; HttpOnly; SameSite=Lax',
            'Location: ' . ($q{state} // '/');
    } else {
        $ctl->{status} = 403;
        $ctl->{body} = "oauth2: forbidden\n";
    }
}

sub _write_all {
    my ($c, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($c, $data, 65536, $off);
        unless (defined $n) {
            next if $! == EINTR || $! == EAGAIN;
            return 0;
        }
        $off += $n;
    }
    return 1;
}

# Increments the counter kept in $file; returns its value before.
sub _count_request {
    my ($file) = @_;
    sysopen(my $fh, $file, O_RDWR | O_CREAT, 0644) or return 0;
    flock($fh, LOCK_EX);
    my $n = <$fh> // 0;
    chomp $n;
    $n = 0 unless $n =~ /^\d+$/;
    seek($fh, 0, 0);
    truncate($fh, 0);
    syswrite($fh, ($n + 1) . "\n");
    flock($fh, LOCK_UN);
    close $fh;
    return $n;
}

sub _log {
    my ($file, $rec) = @_;
    sysopen(my $fh, $file, O_WRONLY | O_APPEND | O_CREAT, 0644) or return;
    flock($fh, LOCK_EX);
    syswrite($fh, $JSON->encode($rec) . "\n");
    flock($fh, LOCK_UN);
    close $fh;
}

sub read_log {
    my ($file) = @_;
    open my $fh, '<', $file or return ();
    flock($fh, LOCK_SH);
    my @r;
    while (my $l = <$fh>) {
        chomp $l;
        next unless length $l;
        my $rec = eval { $JSON->decode($l) } or next;
        push @r, $rec;
    }
    close $fh;
    return @r;
}

1;
