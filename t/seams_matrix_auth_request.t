#!/usr/bin/perl
# The seam matrix for auth_request (issue 9 §3): every way nginx moves a
# request (t/lib/SeamsMatrix.pm: rewrite last/break, error_page = @named,
# =URI, URI, try_files, X-Accel-Redirect, chains of named locations, satisfy
# any neighbours, SSI and mirror subrequests) x HTTP/1.0, HTTP/1.1, HEAD,
# HTTP/2, for a client the auth service refuses (401, 403), allows, or
# cannot answer (refused port, timeout, 503, garbage).
#
# What happens, identical with nginx's C ngx_http_auth_request_module
# (this file runs unchanged against it: TEST_NGINX_MODULE=none):
#   * a refusal is final: after any move into a location with auth_request,
#     the check runs again there and refuses again; the protected upstream
#     is never reached. error_page 401/403/5xx into a protected location
#     (= @named, = URI, URI, chains, @fallback) cannot turn a refusal or a
#     failure into access.
#   * an auth service that is down, times out, answers 5xx or garbage
#     (which nginx's proxy reads as an HTTP/0.9 answer without a status)
#     gives 500, also after every move: never access.
#   * moves that happen before the access phase leave the check behind:
#     "rewrite ... last" in a protected location moves the request out
#     before its check runs; the target location's own checks (none, for
#     an unprotected one) decide. nginx's allow/deny and auth_basic behave
#     the same.
#   * subrequests skip the access phase (nginx's rule, for allow/deny,
#     auth_basic and the C auth_request alike): an SSI include of a
#     protected location from an unprotected page, and a mirror from an
#     unprotected location into a protected one, reach the protected
#     upstream without asking the auth service. From a protected page or
#     location, the main request's check guards them: refused, nothing is
#     included or mirrored.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;
use SeamsMatrix;

my $t = AGTest->new;
SeamsMatrix::write_files($t);

my $locations = SeamsMatrix::locations(
    M => 'auth_request /auth/check;', echo => 'http://127.0.0.1:%%PORT_8082%%',
    dir => '%%TESTDIR%%');

$t->write_file_expand('nginx.conf', <<"EOF");
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    map \$http_x_fail \$auth_port {
        default %%PORT_8081%%;
        down    %%PORT_DEAD%%;
        garbage %%PORT_GARBAGE%%;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        server_name localhost;

        location /auth/ {
            internal;
            proxy_pass http://127.0.0.1:\$auth_port;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
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
        for my $st (401, 403) {
            next if $st == 403 && $proto ne '1.1';
            ($r, $p) = run($cell, $proto, $refused =~ /^(sub|allowall)$/ ? scalar @$want : 0,
                           "X-Ctl-Status: $st");
            if ($refused eq 'refuse') {
                is_deeply($p, [], "$tag refused $st: the protected upstream is never hit");
                is($r->{status}, $st, "$tag refused $st: refused with $st");
            } elsif ($refused eq 'open') {
                # moved to an unprotected location that serves it (before
                # the check: rewrite; or the operator's error_page)
                is_deeply($p, [], "$tag refused $st: the protected upstream is never hit");
                is(scalar(SeamsMatrix::uhits($t)), 1, "$tag refused $st: the unprotected location serves");
                is($r->{status}, $uri =~ m{^/epr2u/} ? $st : 200, "$tag refused $st: status");
            } elsif ($refused eq 'allowall') {
                is_deeply($p, [sort @{ $cell->[3] }], "$tag refused $st: satisfy any + allow all serves");
                is($r->{status}, 200, "$tag refused $st: 200");
            } else {   # sub: subrequests skip the access phase (nginx's rule)
                is_deeply($p, $want, "$tag refused $st: the subrequest is served without the check");
                is(scalar(grep { $_->{path} eq '/auth/check' } $t->requests('auth')), 0,
                   "$tag refused $st: the auth service is not asked for the subrequest");
                like($r->{body}, qr/"X-Hit","P-p"/, "$tag refused $st: the include is in the page")
                    if $uri =~ /ssi/ && $proto ne 'HEAD';
            }
        }
    }
}

# a backend failure never allows: down, timing out, 5xx, garbage (nginx's
# proxy reads it as HTTP/0.9 without a status: "unexpected status: 0")
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
            is_deeply($p, [], "$name [$proto] auth $mode: the protected upstream is never hit");
            is($r->{status}, 500, "$name [$proto] auth $mode: 500");
        }
    }
}
diag("cells: $cells moves x protocols, $fcells failure cells") if $ENV{SEAMS_DEBUG};

$t->done;
