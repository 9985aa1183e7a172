#!/usr/bin/perl
# auth_request: keep-alive and pipelined HTTP/1.1 requests through auth,
# HTTP/2 streams, and subrequest recursion (an auth location that itself
# has auth_request: subrequests skip the access phase, so no loop).

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;

$t->write_file('protected.html', "PROTECTED\n");

$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        server_name localhost;

        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }

        location = /p {
            auth_request /auth/p;
            auth_request_set $user $upstream_http_x_user;
            add_header X-User "[$user]" always;
            alias %%TESTDIR%%/protected.html;
        }
        location = /proxy {
            auth_request /auth/proxy;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        # the auth location protects itself: never loops
        location = /self {
            auth_request /self;
            alias %%TESTDIR%%/protected.html;
        }
        # two locations protecting each other, the auth one denying itself
        location = /ping {
            auth_request /pong;
            alias %%TESTDIR%%/protected.html;
        }
        location = /pong {
            auth_request /ping;
            deny all;
            alias %%TESTDIR%%/protected.html;
        }
    }
}
EOF2

$t->run_auth_service(8081);
$t->run_echo_server(8082);
$t->run;

# pipelined requests on one connection, alternating outcomes
my $raw = '';
my @plan = ([200, 'u1'], [401, 'u2'], [200, 'u3'], [403, 'u4'], [204, 'u5']);
for my $i (0 .. $#plan) {
    my ($st, $user) = @{ $plan[$i] };
    $raw .= "GET /p HTTP/1.1\r\nHost: localhost\r\nX-Ctl-Status: $st\r\n"
          . "X-Ctl-Hdr: X-User: $user\r\n"
          . ($i == $#plan ? "Connection: close\r\n" : '') . "\r\n";
}
my @rs = parse_responses(http($raw));
is(scalar @rs, scalar @plan, 'pipelined: all responses on one connection');
my %map = (200 => 200, 204 => 200, 401 => 401, 403 => 403);
for my $i (0 .. $#plan) {
    my ($st, $user) = @{ $plan[$i] };
    is($rs[$i]{status}, $map{$st}, "pipelined #$i: auth $st -> $map{$st}");
    is(http_header($rs[$i], 'X-User'), "[$user]", "pipelined #$i: its own auth_request_set value");
    is($rs[$i]{body}, "PROTECTED\n", "pipelined #$i: content") if $map{$st} == 200;
}

# keep-alive: sequential requests on one socket, POST bodies in between
my $s = http("GET /p HTTP/1.1\r\nHost: localhost\r\nX-Ctl-Status: 401\r\n\r\n",
             start => 1);
my $r = http_end($s, responses => 1, keep => 1, timeout => 5);
is(http_status($r), 401, 'keep-alive #1: 401');
my $body = 'k' x 5000;
$r = http("POST /proxy HTTP/1.1\r\nHost: localhost\r\nContent-Length: " . length($body) . "\r\n\r\n$body",
          socket => $s, responses => 1, keep => 1, timeout => 5);
is(http_status($r), 200, 'keep-alive #2 (POST after a 401 on the same connection): 200');
is((json_body($r) // {})->{body_md5}, md5_hex($body), 'keep-alive #2: body intact');
$r = http("GET /p HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", socket => $s);
is(http_status($r), 200, 'keep-alive #3: 200');

# a 401 with an unread request body on a keep-alive connection: the body
# is discarded and the next request is served
$r = http("POST /p HTTP/1.1\r\nHost: localhost\r\nX-Ctl-Status: 401\r\nContent-Length: 10\r\n\r\n0123456789"
        . "GET /p HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
@rs = parse_responses($r);
is(scalar @rs, 2, 'unread body after 401: two responses');
is($rs[0]{status}, 401, 'unread body after 401: first 401');
is($rs[1]{status}, 200, 'unread body after 401: next request served');

# HTTP/2: several requests, each with its own auth result
for my $st (200, 401, 403) {
    $r = http2_request('/p', headers => ["X-Ctl-Status: $st", 'X-Ctl-Hdr: X-User: h2']);
    is(http_status($r), $map{$st}, "h2: auth $st -> $map{$st}");
    is(http_header($r, 'x-user'), '[h2]', "h2: auth_request_set value");
}

# recursion
$t->clear_requests('auth');
$r = http_get('/self');
is(http_status($r), 200, 'auth location protected by itself: no loop, 200');
is(http_body($r), "PROTECTED\n", 'self: content');
$r = http_get('/ping');
is(http_status($r), 200, 'mutually protecting locations: access phase skipped in the subrequest, 200');
$r = http_get('/pong');
is(http_status($r), 403, 'direct request to the deny-all location: 403');

$t->done;
