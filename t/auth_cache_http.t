#!/usr/bin/perl
# auth_http_cache: each service's answer is kept under the exact question
# asked (service, method, expanded params, the client's Authorization and
# Cookie), so a repeated question is answered without a subrequest and
# decides exactly as the service's answer did ($auth_http_result, status,
# WWW-Authenticate); auth_http_cache_valid per answer; unreachable answers
# and no-store answers are never kept; other credentials are other
# questions; the configuration refuses unknown answers.

use strict;
use warnings;
use Test::More;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(sleep);
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('auth_http is ours only');
$t->write_file('protected.html', "PROTECTED\n");

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    auth_cache_zone decisions 1m;

    map $http_x_su_status $su_status { "" 403; default $http_x_su_status; }
    map $http_x_acl_status $acl_status { "" 200; default $http_x_acl_status; }
    map $http_x_auth_status $auth_status { "" 200; default $http_x_auth_status; }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;
        auth_http_retry times=0 interval=10ms;
        add_header X-Result "[$auth_http_result]" always;
        add_header X-Cache "[$auth_cache_status]" always;

        auth_http_cache decisions;
        auth_http_cache_valid any 1m;

        location /_auth/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8091%%/auth/;
            proxy_set_header X-Ctl-Status $auth_status;
        }
        location /_su/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8091%%/su/;
            proxy_set_header X-Ctl-Status $su_status;
            proxy_set_header X-Ctl-Hdr $http_x_su_hdr;
        }
        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8091%%/acl/;
            proxy_set_header X-Ctl-Status $acl_status;
            proxy_set_header X-Ctl-Body $http_x_acl_body;
            proxy_set_header X-Ctl-Hdr $http_x_acl_hdr;
        }
        location /both/ {
            auth_http_superuser /_su/check params=u=%u,t=%t;
            auth_http_acl       /_acl/check params=u=%u,t=%t,a=%A;
            alias %%TESTDIR%%/;
        }
        location /all/ {
            auth_http_auth      /_auth/check params=u=%u,p=%P method=post;
            auth_http_acl       /_acl/check params=u=%u,t=%t;
            alias %%TESTDIR%%/;
        }
        location /deny-only/ {
            auth_http_acl /_acl/check params=u=%u,t=%t;
            auth_http_cache_valid deny 1m;
            alias %%TESTDIR%%/;
        }
    }
}
EOF
$t->run_auth_service(8091);
$t->run;

sub basic { 'Authorization: Basic ' . encode_base64($_[0] . ':pw', '') }
sub asked { my ($svc) = @_; scalar grep { $_->{path} =~ m{^/$svc/} } $t->requests('auth') }
sub get { my ($uri, $user, @h) = @_; http_get($uri, headers => [basic($user), @h]) }
sub summary {
    my ($r) = @_;
    return join ' ', http_status($r), http_header($r, 'X-Result'),
        join(',', http_header($r, 'WWW-Authenticate'));
}

for my $case (
    ['superuser', '/both/protected.html', ['X-Su-Status: 200'], 200, '[superuser]'],
    ['acl allow', '/both/protected.html', [], 200, '[allow]'],
    ['acl deny', '/both/protected.html', ['X-Acl-Status: 403'], 403, '[deny]'],
    ['acl ignore', '/both/protected.html', ['X-Acl-Body: ignore'], 403, '[ignore]'],
    ['unauthenticated', '/all/protected.html', ['X-Auth-Status: 401'], 401, '[unauthenticated]'],
    ['authenticated, acl allow', '/all/protected.html', [], 200, '[allow]'],
) {
    my ($name, $uri, $ctl, $status, $result) = @$case;
    my $user = "u-$name";
    my %before = map { $_ => asked($_) } qw(auth su acl);
    my $miss = get($uri, $user, @$ctl);
    my %mid = map { $_ => asked($_) } qw(auth su acl);
    my $hit = get($uri, $user);    # unscripted: the services would answer otherwise
    is(http_status($miss), $status, "$name: miss $status");
    is(http_header($miss, 'X-Result'), $result, "$name: miss $result");
    is(summary($hit), summary($miss), "$name: the hit decides as the miss did");
    is(http_header($hit, 'X-Cache'), '[HIT]', "$name: hit");
    is_deeply({ map { $_ => asked($_) } qw(auth su acl) }, \%mid, "$name: no service asked on the hit");
    isnt(join(',', map { $mid{$_} - $before{$_} } qw(auth su acl)), '0,0,0', "$name: the miss asked");
}

# another client, another topic: other questions
{
    get('/both/protected.html', 'carol', 'X-Acl-Status: 403');
    my $r = get('/both/protected.html', 'dave');
    is(http_status($r), 200, 'another user: its own question');
    is(http_header($r, 'X-Cache'), '[MISS]', 'another user: miss');
    $r = get('/both/other.html', 'carol');
    is(http_header($r, 'X-Cache'), '[MISS]', 'another topic: miss');
    $r = http_get('/both/protected.html', headers => [basic('carol'), 'Cookie: s=1']);
    is(http_header($r, 'X-Cache'), '[MISS]', 'another cookie: another question');
    is(http_status(get('/both/protected.html', 'carol')), 403, 'the cached deny stays');
}

# never kept: unreachable (503 after retries), no-store
{
    my $before = asked('acl');
    for (1 .. 2) {
        is(http_status(get('/both/protected.html', 'e503', 'X-Acl-Status: 503')), 503, 'unreachable: 503');
    }
    is(asked('acl'), $before + 2, 'unreachable: asked every time');
    $before = asked('acl');
    for (1 .. 2) {
        get('/both/protected.html', 'nostore', 'X-Acl-Hdr: Cache-Control: no-store');
    }
    is(asked('acl'), $before + 2, 'no-store: asked every time');
    for my $hdr ('Cache-Control: no-cache', 'Cache-Control: private', 'X-Accel-Expires: 0',
                 'Content-Encoding: gzip') {
        (my $user = "never $hdr") =~ s/\W+/-/g;
        $before = asked('acl');
        get('/both/protected.html', $user, "X-Acl-Hdr: $hdr") for 1 .. 2;
        is(asked('acl'), $before + 2, "$hdr: never kept, asked every time");
    }
}

# freshness: Cache-Control max-age and X-Accel-Expires cap auth_http_cache_valid
# (1m here); only the order is asserted: a request well after the cap is
# EXPIRED and asks again
for my $hdr ('Cache-Control: max-age=1', 'X-Accel-Expires: 1') {
    (my $user = "cap $hdr") =~ s/\W+/-/g;
    my $before = asked('acl');
    get('/both/protected.html', $user, "X-Acl-Hdr: $hdr");
    is(http_header(get('/both/protected.html', $user), 'X-Cache'), '[HIT]', "$hdr: kept");
    sleep 2.5;
    is(http_header(get('/both/protected.html', $user), 'X-Cache'), '[EXPIRED]', "$hdr: expired after it");
    is(asked('acl'), $before + 2, "$hdr: asked again after it");
}

# auth_http_cache_valid per answer: only deny is kept here
{
    my $before = asked('acl');
    get('/deny-only/protected.html', 'v1') for 1 .. 2;
    is(asked('acl'), $before + 2, 'allow without a valid time: asked every time');
    $before = asked('acl');
    get('/deny-only/protected.html', 'v2', 'X-Acl-Status: 403') for 1 .. 2;
    is(asked('acl'), $before + 1, 'deny with a valid time: kept');
}

$t->done;
