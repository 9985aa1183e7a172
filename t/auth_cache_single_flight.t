#!/usr/bin/perl
# Single flight: concurrent first requests with one question wait for the
# one request that asks the service (50 parallel first requests reach it
# once); when that answer is not cacheable, the waiters ask for
# themselves at once; when it takes longer than the bound (5 s), each
# waiter asks for itself. auth_http_cache too: 50 parallel first requests
# reach the ACL service once.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('the decision cache is ours only');

$t->write_file('protected.html', "PROTECTED\n");
$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events { worker_connections 1024; }
http {
    %%TEST_GLOBALS_HTTP%%
    auth_cache_zone decisions 1m;

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_read_timeout 20s;
        }
        location = /p {
            auth_request /auth/p;
            auth_request_cache decisions;
            auth_request_cache_key $http_authorization;
            auth_request_cache_valid 401 1m;
            auth_request_cache_valid 1m;
            auth_request_set $user $upstream_http_x_user;
            add_header X-User "[$user]" always;
            add_header X-Cache "[$auth_cache_status]" always;
            alias %%TESTDIR%%/protected.html;
        }
        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/acl/;
            proxy_set_header X-Ctl-Delay $http_x_acl_delay;
            proxy_read_timeout 20s;
        }
        location /h/ {
            auth_http_acl /_acl/check params=t=%t;
            auth_http_cache decisions;
            auth_http_cache_valid any 1m;
            add_header X-Cache "[$auth_cache_status]" always;
            alias %%TESTDIR%%/;
        }
    }
}
EOF
$t->run_auth_service(8081);
$t->run;

sub asked { scalar grep { $_->{path} eq '/auth/p' } $t->requests('auth') }

# N requests at once; returns the responses
sub parallel {
    my ($n, @headers) = @_;
    my $uri = $headers[0] =~ m{^/} ? shift @headers : '/p';
    my @s = map { http_get($uri, headers => [@headers], start => 1, timeout => 30) } 1 .. $n;
    return map { http_end($_, timeout => 30) } @s;
}

{
    my $before = asked();
    my @r = parallel(50, 'Authorization: Bearer fifty', 'X-Ctl-Delay: 0.5', 'X-Ctl-Hdr: X-User: alice');
    is(scalar(grep { http_status($_) == 200 } @r), 50, '50 parallel: all allowed');
    is(scalar(grep { (http_header($_, 'X-User') // '') eq '[alice]' } @r), 50,
       '50 parallel: all with the answer\'s auth_request_set value');
    is(asked(), $before + 1, '50 parallel first requests: the service was asked once');
    my %st;
    $st{ http_header($_, 'X-Cache') // '' }++ for @r;
    is($st{'[MISS]'}, 1, 'one miss');
    is($st{'[HIT]'}, 49, '49 hits after waiting');
}

{
    my $before = asked();
    my @r = parallel(50, 'Authorization: Bearer denied', 'X-Ctl-Delay: 0.5', 'X-Ctl-Status: 401',
                     'X-Ctl-Www: Basic realm="x"');
    is(scalar(grep { http_status($_) == 401 } @r), 50, '50 parallel 401: all refused');
    is(scalar(grep { (http_header($_, 'WWW-Authenticate') // '') eq 'Basic realm="x"' } @r), 50,
       '50 parallel 401: all with the challenge');
    is(asked(), $before + 1, '50 parallel 401: asked once');
}

# auth_http_cache: one ACL question for 50 parallel first requests
{
    my $acl = sub { scalar grep { $_->{path} =~ m{^/acl/} } $t->requests('auth') };
    my @r = parallel(50, '/h/protected.html', 'X-Acl-Delay: 0.5');
    is(scalar(grep { http_status($_) == 200 } @r), 50, 'auth_http 50 parallel: all allowed');
    is($acl->(), 1, 'auth_http 50 parallel first requests: the ACL service was asked once');
    is(scalar(grep { (http_header($_, 'X-Cache') // '') eq '[HIT]' } @r), 49, 'auth_http: 49 waited for the hit');
}

# an answer that is not cached ends the flight: waiters ask for themselves
{
    my $before = asked();
    my @r = parallel(5, 'Authorization: Bearer broken', 'X-Ctl-Delay: 2', 'X-Ctl-Status: 503');
    is(scalar(grep { http_status($_) == 500 } @r), 5, 'not cacheable: all 500');
    is(asked(), $before + 5, 'not cacheable: each waiter asked for itself');
    # In turn, each waiter would reach the service only after the one before
    # it had its 2 s answer (arrivals 2 s apart); at once, the four waiters
    # all arrive while the first of them is still being answered. Compared
    # with the service's own delay, not with a wall-clock budget.
    my @at = sort { $a <=> $b } map { $_->{time} }
        grep { $_->{path} eq '/auth/p' } ($t->requests('auth'))[-4 .. -1];
    cmp_ok($at[-1] - $at[0], '<', 2, 'not cacheable: the waiters asked at once, not in turn');
}

# an answer slower than the bound: waiters ask for themselves after it
{
    my $before = asked();
    my @r = parallel(3, 'Authorization: Bearer slow', 'X-Ctl-Delay: 9', 'X-Ctl-Hdr: Cache-Control: no-store');
    is(scalar(grep { http_status($_) == 200 } @r), 3, 'slow: all allowed');
    is(asked(), $before + 3, 'slow: the waiters asked after the 5 s bound');
    # the waiters asked before the first answer (9 s) came: the bound, not
    # the answer, released them
    my @at = sort { $a <=> $b } map { $_->{time} }
        grep { $_->{path} eq '/auth/p' } ($t->requests('auth'))[-3 .. -1];
    cmp_ok($at[-1] - $at[0], '<', 9, 'slow: the waiters were released by the bound, before the answer');
}

$t->done;
