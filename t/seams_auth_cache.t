#!/usr/bin/perl
# The seam matrix with the decision cache (auth_cache_zone,
# auth_request_cache, auth_request_cache_key, auth_request_cache_valid,
# auth_http_cache, auth_http_cache_valid, auth_cache_purge, with
# auth_cache_zone's inactive=): for every way nginx moves a request
# (t/lib/SeamsMatrix.pm: rewrite, error_page, try_files, named locations,
# X-Accel-Redirect, satisfy any/all, SSI and mirror subrequests) x
# HTTP/1.0, HTTP/1.1, HEAD, HTTP/2, a request answered from the cache
# behaves as the miss that filled it: same status, same protected upstream
# hits, same WWW-Authenticate, and the auth service is not asked again.
# A hit after an internal redirect is the decision of the question of the
# location the request landed in. $auth_cache_status, written to an access
# log, says HIT for the repeat after every move.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;
use SeamsMatrix;

my $t = AGTest->new;
$t->skip_unless_module('the decision cache is ours only');
SeamsMatrix::write_files($t);

my $M = 'auth_request /auth/check; auth_request_cache c; '
      . 'auth_request_cache_key $http_authorization; auth_request_cache_valid any 1m;';
my $locations = SeamsMatrix::locations(M => $M, echo => 'http://127.0.0.1:%%PORT_8082%%',
                                       dir => '%%TESTDIR%%');
my $H = 'auth_http_acl /_acl/acl method=get; auth_http_cache c; auth_http_cache_valid any 1m;';
my $locations_http = SeamsMatrix::locations(M => $H, echo => 'http://127.0.0.1:%%PORT_8082%%',
                                            dir => '%%TESTDIR%%');

$t->write_file_expand('nginx.conf', <<"EOF");
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    auth_cache_zone c 4m inactive=10m;
    log_format cache '\$http_authorization \$auth_cache_status';
    server {
        access_log %%TESTDIR%%/cache.log cache;
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        server_name localhost;

        location /auth/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_read_timeout 1s;
        }
        location = /_purge { allow 127.0.0.1; deny all; auth_cache_purge c; }
$locations
    }
    server {
        listen 127.0.0.1:%%PORT_8083%%;
        http2 on;
        server_name localhost;
        auth_http_retry times=0 interval=10ms;
        location /_acl/ { internal; proxy_pass http://127.0.0.1:%%PORT_8081%%; }
$locations_http
    }
}
EOF
$t->run_auth_service(8081);
$t->run_echo_server(8082);
$t->run;

sub asked { scalar grep { $_->{path} eq '/auth/check' } $t->requests('auth') }

my $n = 0;
for my $cell (@SeamsMatrix::CELLS) {
    my ($name, $uri) = @$cell;
    for my $proto (@SeamsMatrix::PROTOCOLS) {
        for my $case (['allowed'], ['401', 'X-Ctl-Status: 401', 'X-Ctl-Www: Basic realm="c"',
                                    'X-Ctl-Www: Bearer'],
                      ['403', 'X-Ctl-Status: 403']) {
            my ($what, @ctl) = @$case;
            next if $what eq '403' && $proto ne '1.1';
            my $auth = 'Authorization: Bearer ' . ++$n;
            my $tag = "$name [$proto] $what";
            my $want = $what eq 'allowed' ? scalar @{ SeamsMatrix::hits_for($cell, $proto) } : 0;
            my ($miss, $pm) = SeamsMatrix::run($t, $cell, $proto, headers => [$auth, @ctl], want => $want);
            # the same client again, without the script: only the cache can
            # refuse it now
            my ($hit, $ph) = SeamsMatrix::run($t, $cell, $proto, headers => [$auth], want => scalar @$pm);
            is($hit->{status}, $miss->{status}, "$tag: the hit's status is the miss's ($miss->{status})");
            is_deeply($ph, $pm, "$tag: the same protected upstream hits");
            is_deeply([http_header($hit, 'WWW-Authenticate')], [http_header($miss, 'WWW-Authenticate')],
                      "$tag: the same challenges");
            is(asked(), 0, "$tag: the service is not asked again");
        }
    }
}

# $auth_cache_status: per client, the repeat was a HIT wherever the cache
# was asked, after every move; the first request was a MISS, or a HIT when
# a move brought it to the same question again (the variable holds the
# request's last look: the MISS in the first location, then the HIT its
# own answer gives in the next)
{
    my %status;
    for (split /\n/, $t->read_file('cache.log')) {
        my ($token, $status) = /^Bearer (\d+) (\S+)$/ or next;
        push @{ $status{$token} }, $status;
    }
    my @asked = grep { $status{$_}[0] ne '-' } sort { $a <=> $b } keys %status;
    ok(@asked > 20, scalar(@asked) . ' clients asked the cache');
    my @wrong = grep { "@{ $status{$_} }" !~ /^(MISS|HIT) HIT$/ } @asked;
    is(join(' ', map { "$_:@{ $status{$_} }" } @wrong), '', '$auth_cache_status: HIT for every repeat');
    ok(scalar(grep { $status{$_}[0] eq 'MISS' } @asked) > 20, 'MISS for first requests');
}

# auth_http_cache: the same, with the ACL service's answers
sub acl_asked { scalar grep { $_->{path} eq '/_acl/acl' } $t->requests('auth') }
my $hport = port(8083);
for my $cell (@SeamsMatrix::CELLS) {
    my ($name, $uri) = @$cell;
    for my $proto (@SeamsMatrix::PROTOCOLS) {
        for my $case (['allowed'], ['403', 'X-Ctl-Status: 403']) {
            my ($what, @ctl) = @$case;
            my $auth = 'Authorization: Bearer h' . ++$n;
            my $tag = "auth_http: $name [$proto] $what";
            my $want = $what eq 'allowed' ? scalar @{ SeamsMatrix::hits_for($cell, $proto) } : 0;
            my ($miss, $pm) = SeamsMatrix::run($t, $cell, $proto, headers => [$auth, @ctl], want => $want,
                                               port => $hport);
            my ($hit, $ph) = SeamsMatrix::run($t, $cell, $proto, headers => [$auth], want => scalar @$pm,
                                              port => $hport);
            is($hit->{status}, $miss->{status}, "$tag: the hit's status is the miss's ($miss->{status})");
            is_deeply($ph, $pm, "$tag: the same protected upstream hits");
            is(acl_asked(), 0, "$tag: the service is not asked again");
        }
    }
}

# purge: the next request asks again
{
    my $cell = SeamsMatrix::cell('direct');
    SeamsMatrix::run($t, $cell, '1.1', headers => ['Authorization: Bearer purge', 'X-Ctl-Status: 403']);
    my $r = http_get('/_purge', method => 'DELETE', headers => ['Auth-Cache-Purge: all']);
    is(http_status($r), 200, 'purge all: 200');
    like($r, qr/purged \d+\n$/, 'purge all: count');
    my ($again) = SeamsMatrix::run($t, $cell, '1.1', headers => ['Authorization: Bearer purge'], want => 1);
    is($again->{status}, 200, 'after purge: the service decides again');
    is(asked(), 1, 'after purge: asked');
}

# purge of one user's auth_http answers (Auth-Cache-Username), after every
# move that ends in a protected location: the next request of that user
# asks again
{
    use MIME::Base64 qw(encode_base64);
    my $moves = 0;
    for my $cell (@SeamsMatrix::CELLS) {
        my ($name) = @$cell;
        my $auth = 'Authorization: Basic ' . encode_base64("seam-$name:pw", '');
        my ($miss) = SeamsMatrix::run($t, $cell, '1.1', headers => [$auth, 'X-Ctl-Status: 403'], port => $hport);
        next unless $miss->{status} == 403;    # the move did not end in the protected location
        $moves++;
        my ($kept) = SeamsMatrix::run($t, $cell, '1.1', headers => [$auth], port => $hport);
        is($kept->{status}, 403, "auth_http purge by user: $name: the deny is kept");
        my $r = http_get('/_purge', method => 'DELETE', headers => ["Auth-Cache-Username: seam-$name"]);
        like($r, qr/\r\n\r\npurged [1-9]\d*\n$/, "auth_http purge by user: $name: purged");
        my $want = scalar @{ SeamsMatrix::hits_for($cell, '1.1') };
        my ($again) = SeamsMatrix::run($t, $cell, '1.1', headers => [$auth], port => $hport, want => $want);
        isnt($again->{status}, 403, "auth_http purge by user: $name: the service decides again (allows)");
    }
    ok($moves > 5, "auth_http purge by user: $moves moves");
}

$t->done;
