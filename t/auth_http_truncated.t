#!/usr/bin/perl
# auth_http: an answer cut short is no answer (fail closed).
#
# When the service's connection ends before the body its header announced,
# nginx logs "upstream prematurely closed connection" but finishes the
# subrequest with the header's status (200) and the truncated body: a cut
# "ignore" would read as "allow".  auth_http treats such an answer as an
# unreachable service: retried, then 503.  Complete answers -- with
# Content-Length, chunked, or delimited by closing the connection -- are
# answers, with proxy_buffering on (default) and off. With auth_http_cache,
# a cut answer is never kept: every request asks again (while a complete
# one is kept).

use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('auth_http is ours only');

$t->write_file('protected.html', "PROTECTED\n");

# the service uri is literal (no variables): one location per answer
my $locations = join '', map {
    my $a = $_;
    "        location = /acl/$a { auth_http_acl /_svc/$a; alias %%TESTDIR%%/protected.html; }\n"
    . "        location = /acl-unbuf/$a { auth_http_acl /_svc_unbuf/$a; alias %%TESTDIR%%/protected.html; }\n"
} qw(cl-ignore cl-allow cl-short chunked-ignore chunked-short chunked-no-end close-ignore);
$locations .= "        location = /su/$_ { auth_http_superuser /_svc/su-$_; auth_http_acl /_svc/cl-allow; "
    . "alias %%TESTDIR%%/protected.html; }\n" for qw(cl-short cl-ok);
$locations .= "        location = /cached/$_ { auth_http_acl /_svc/$_; auth_http_cache c; "
    . "auth_http_cache_valid any 1m; alias %%TESTDIR%%/protected.html; }\n" for qw(cl-short chunked-short cl-ignore);

(my $conf = <<'EOF2') =~ s/%%LOCATIONS%%\n/$locations/;
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    auth_cache_zone c 1m;

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;
        add_header X-Result "[$auth_http_result]" always;
        auth_http_retry times=1 interval=10ms;

        location /_svc/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8092%%/;
        }
        location /_svc_unbuf/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8092%%/;
            proxy_buffering off;
        }
%%LOCATIONS%%
    }
}
EOF2
$t->write_file_expand('nginx.conf', $conf);

# a service that answers by the path it is asked for, then closes
my %answers = (
    'cl-ignore'       => "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nignore",
    'cl-allow'        => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nallow",
    'cl-short'        => "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nign",
    'chunked-ignore'  => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nignore\r\n0\r\n\r\n",
    'chunked-short'   => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nign",
    'chunked-no-end'  => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nignore\r\n",
    'close-ignore'    => "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nignore",
    'su-cl-short'     => "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nyes",
    'su-cl-ok'        => "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes",
);
my $port = port(8092);
my $log = $t->testdir . '/svc.log';
$t->run_daemon(sub {
    my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port", Listen => 16,
                                  ReuseAddr => 1) or die "listen: $!";
    while (my $c = $s->accept) {
        my $buf = '';
        while ($buf !~ /\r\n\r\n/) { sysread($c, $buf, 65536, length $buf) or last }
        my ($path) = $buf =~ m{^\S+ /(\S*)} or next;    # a bare connect (waitforsocket)
        open my $fh, '>>', $log; print $fh "$path\n"; close $fh;
        syswrite($c, $answers{$path} // "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        shutdown($c, 1);
        sysread($c, my $junk, 100);
        close $c;
    }
});
$t->waitforsocket("127.0.0.1:$port") or die 'service did not start';
$t->run;

sub asked {
    my ($what) = @_;
    my @l = grep { $_ eq $what } split /\n/, ($t->read_file('svc.log') // '');
    return scalar @l;
}

for my $prefix (qw(acl acl-unbuf)) {
    for my $case (['cl-ignore', 403, 'ignore', 1], ['cl-allow', 200, 'allow', 1],
                  ['chunked-ignore', 403, 'ignore', 1], ['close-ignore', 403, 'ignore', 1],
                  ['cl-short', 503, 'error', 2], ['chunked-short', 503, 'error', 2],
                  ['chunked-no-end', 503, 'error', 2]) {
        my ($answer, $status, $result, $attempts) = @$case;
        my $before = asked($answer);
        my $r = http_get("/$prefix/$answer");
        my $n = "$prefix, $answer";
        is(http_status($r), $status, "$n: $status");
        is(http_header($r, 'X-Result'), "[$result]", "$n: $result");
        is(asked($answer) - $before, $attempts, "$n: asked $attempts time(s)");
        unlike(http_body($r), qr/PROTECTED/, "$n: not served") if $status != 200;
    }
}

my $r = http_get('/su/cl-short');
is(http_status($r), 503, 'superuser 200 cut short: 503, not a superuser, not an ACL check');
is(http_header($r, 'X-Result'), '[error]', 'superuser cut short: error');
$r = http_get('/su/cl-ok');
is(http_status($r), 200, 'superuser 200 complete: allowed');
is(http_header($r, 'X-Result'), '[superuser]', 'superuser complete: superuser');

# the cache never keeps a cut answer; a complete one it keeps
for my $case (['cl-short', 503, 4], ['chunked-short', 503, 4], ['cl-ignore', 403, 1]) {
    my ($answer, $status, $attempts) = @$case;
    my $before = asked($answer);
    is(http_status(http_get("/cached/$answer")), $status, "cached, $answer: $status") for 1 .. 2;
    is(asked($answer) - $before, $attempts, "cached, $answer: asked $attempts time(s) for 2 requests");
}

ok(scalar $t->grep_log(qr/upstream prematurely closed connection/), 'nginx logged the cut answers');
ok(scalar $t->grep_log(qr/auth_http: ACL service "\/_svc\/cl-short" not reachable after 2 attempts \(last status 0\); answering 503/),
   'the 503 is logged');

$t->done;
