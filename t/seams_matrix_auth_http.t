#!/usr/bin/perl
# The seam matrix for auth_http (issue 9 §3): every move of
# t/lib/SeamsMatrix.pm x HTTP/1.0, HTTP/1.1, HEAD, HTTP/2, with
# auth_http_acl in every protected location, for a client the ACL service
# allows (200), denies (403 answer; "ignore" with auth_http_nomatch deny),
# or cannot answer: down (refused port), timing out, 503, 500, garbage.
#
# What happens:
#   * a refusal is final: after any move into a location with auth_http,
#     the ACL service is asked again there and refuses again (403); the
#     protected upstream is never reached, also through error_page 403 /
#     5xx into a protected location (= @named, = URI, URI, chains,
#     @fallback).
#   * a service that is down, times out, answers 503 or garbage (nginx's
#     proxy reads it as HTTP/0.9 without a status) is unreachable: after
#     the retries, 503, after every move. A 500 is an answer: 403.
#     Never access.
#   * moves before the access phase leave the check behind: "rewrite ...
#     last" out of a protected location into an unprotected one serves it
#     there (as with nginx's allow/deny).
#   * subrequests skip the access phase (nginx's rule): an SSI include of a
#     protected location from an unprotected page and a mirror from an
#     unprotected location into one reach the protected upstream without
#     asking the ACL service. From a protected page or location the main
#     request's check guards them.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;
use SeamsMatrix;

my $t = AGTest->new->skip_unless_module;
SeamsMatrix::write_files($t);

my $locations = SeamsMatrix::locations(
    M => 'auth_http_acl /_acl/acl method=get; auth_http_retry times=1 interval=10ms;', echo => 'http://127.0.0.1:%%PORT_8082%%',
    dir => '%%TESTDIR%%');

$t->write_file_expand('nginx.conf', <<"EOF");
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    map \$http_x_fail \$acl_port {
        default %%PORT_8081%%;
        down    %%PORT_DEAD%%;
        garbage %%PORT_GARBAGE%%;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        server_name localhost;

        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:\$acl_port;
            proxy_connect_timeout 100ms;
            proxy_read_timeout 100ms;
        }
$locations
    }
}
EOF
$t->run_auth_service(8081);
$t->run_echo_server(8082);
$t->port('DEAD');                  # allocated, never listened on: refused
my $gport = $t->port('GARBAGE');
$t->run_daemon(sub {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $gport,
                                  Listen => 16, ReuseAddr => 1) or die "garbage: $!";
    while (my $c = $s->accept) {
        my $buf = '';
        sysread($c, $buf, 65536);
        syswrite($c, "\x00\x01GARBAGE not http\r\n\r\n");
        close $c;
    }
});
$t->waitforsocket($gport);
$t->run;

# run($cell, $proto, $want_hits, @headers)
sub run { my ($cell, $proto, $want, @h) = @_;
          return SeamsMatrix::run($t, $cell, $proto, headers => \@h, want => $want) }

my ($cells, $fcells) = (0, 0);
for my $cell (@SeamsMatrix::CELLS) {
    my ($name, $uri, $refused) = @$cell;
    for my $proto (@SeamsMatrix::PROTOCOLS) {
        $cells++;
        my $tag = "$name [$proto]";
        my $want = SeamsMatrix::hits_for($cell, $proto);
        # allowed
        my ($r, $p) = run($cell, $proto, scalar @$want);
        is_deeply($p, $want, "$tag allowed: the protected upstream serves");
        is($r->{status}, $uri =~ m{^/ep404u/} ? 404 : 200, "$tag allowed: status");
        # refused
        for my $how ('403', 'ignore') {
            next if $how eq 'ignore' && $proto ne '1.1';
            my $st = 403;
            ($r, $p) = run($cell, $proto, $refused =~ /^(sub|allowall)$/ ? scalar @$want : 0,
                           $how eq '403' ? 'X-Ctl-Status: 403' : 'X-Ctl-Body: ignore');
            if ($refused eq 'refuse') {
                is_deeply($p, [], "$tag refused ($how): the protected upstream is never hit");
                is($r->{status}, $st, "$tag refused ($how): 403");
            } elsif ($refused eq 'open') {
                # moved to an unprotected location that serves it (before
                # the check: rewrite; or the operator's error_page)
                is_deeply($p, [], "$tag refused ($how): the protected upstream is never hit");
                is(scalar(SeamsMatrix::uhits($t)), 1, "$tag refused ($how): the unprotected location serves");
                is($r->{status}, $uri =~ m{^/epr2u/} ? $st : 200, "$tag refused ($how): status");
            } elsif ($refused eq 'allowall') {
                is_deeply($p, [sort @{ $cell->[3] }], "$tag refused ($how): satisfy any + allow all serves");
                is($r->{status}, 200, "$tag refused ($how): 200");
            } else {   # sub: subrequests skip the access phase (nginx's rule)
                is_deeply($p, $want, "$tag refused ($how): the subrequest is served without the check");
                is(scalar(grep { $_->{path} eq '/_acl/acl' } $t->requests('auth')), 0,
                   "$tag refused ($how): the ACL service is not asked for the subrequest");
                like($r->{body}, qr/"X-Hit","P-p"/, "$tag refused ($how): the include is in the page")
                    if $uri =~ /ssi/ && $proto ne 'HEAD';
            }
        }
    }
}

# a backend failure never allows: down, timing out, 503, garbage (nginx's
# proxy reads it as HTTP/0.9 without a status) -> 503; 500 is an answer -> 403
my %FAIL = (down => ['X-Fail: down'], timeout => ['X-Ctl-Delay: 1'],
            '503' => ['X-Ctl-Status: 503'], '500' => ['X-Ctl-Status: 500'],
            garbage => ['X-Fail: garbage']);
for my $cell (@SeamsMatrix::CELLS) {
    my ($name, $uri, $refused) = @$cell;
    next unless $refused eq 'refuse';
    for my $proto (@SeamsMatrix::PROTOCOLS) {
        next unless $proto eq '1.1' || $uri =~ m{^/(p|fb|eprn)/};
        for my $mode (sort keys %FAIL) {
            next if $mode eq 'timeout' && $proto ne '1.1';
            $fcells++;
            my ($r, $p) = run($cell, $proto, 0, @{ $FAIL{$mode} });
            is_deeply($p, [], "$name [$proto] ACL service $mode: the protected upstream is never hit");
            my $st = $mode eq '500' ? 403 : 503;
            is($r->{status}, $st, "$name [$proto] ACL service $mode: $st");
        }
    }
}
diag("cells: $cells moves x protocols, $fcells failure cells") if $ENV{SEAMS_DEBUG};

$t->done;
