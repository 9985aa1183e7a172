#!/usr/bin/perl
# auth_request with an auth location that caches its upstream's answers
# (proxy_cache): cached 2xx answers allow without asking the service again,
# uncached 401s ask every time, and cached 401s still carry the
# WWW-Authenticate headers; auth_request_set sees the cached response.

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
    proxy_cache_path %%TESTDIR%%/cache levels=1:2 keys_zone=authcache:1m;

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_cache authcache;
            proxy_cache_key "$uri $http_x_token";
            proxy_cache_valid 200 1m;
        }
        location /auth401/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_cache authcache;
            proxy_cache_key "$uri $http_x_token";
            proxy_cache_valid 200 401 1m;
        }

        location = /c/p {
            auth_request /auth/c;
            auth_request_set $cache $upstream_cache_status;
            auth_request_set $user $upstream_http_x_user;
            add_header X-Auth-Cache "[$cache]" always;
            add_header X-User "[$user]" always;
            alias %%TESTDIR%%/protected.html;
        }
        location = /c/p401 {
            auth_request /auth401/c;
            auth_request_set $cache $upstream_cache_status;
            add_header X-Auth-Cache "[$cache]" always;
            alias %%TESTDIR%%/protected.html;
        }
    }
}
EOF2

$t->run_auth_service(8081);
$t->run;

sub hits { scalar grep { $_->{path} eq $_[0] } $t->requests('auth') }

# 200 cached
my @h = ('X-Token: a', 'X-Ctl-Hdr: X-User: alice');
my $r = http_get('/c/p', headers => \@h);
is(http_status($r), 200, 'first request: 200');
is(http_header($r, 'X-Auth-Cache'), '[MISS]', 'first request: cache MISS');
is(http_header($r, 'X-User'), '[alice]', 'first request: user');
is(hits('/auth/c'), 1, 'first request: service hit');

$r = http_get('/c/p', headers => \@h);
is(http_status($r), 200, 'second request: 200');
is(http_body($r), "PROTECTED\n", 'second request: content');
is(http_header($r, 'X-Auth-Cache'), '[HIT]', 'second request: cache HIT');
is(http_header($r, 'X-User'), '[alice]', 'second request: user from the cached response');
is(hits('/auth/c'), 1, 'second request answered from cache: service hit once');

# the service would now refuse, but the cached answer is used
$r = http_get('/c/p', headers => ['X-Token: a', 'X-Ctl-Status: 401']);
is(http_status($r), 200, 'cached allow wins over what the service would say now');
is(hits('/auth/c'), 1, 'service still hit once');

# nginx keeps every WWW-Authenticate of a response only since 1.23.0; before,
# the one it kept (the first) is what the C module, and we, pass on.
sub challenges { $t->nginx_version >= 1_023_000 ? [@_] : [$_[0]] }

# 401 not cached with proxy_cache_valid 200 only
for my $i (1, 2) {
    $r = http_get('/c/p', headers => ['X-Token: b', 'X-Ctl-Status: 401',
                                      'X-Ctl-Www: Basic realm="one"', 'X-Ctl-Www: Bearer']);
    is(http_status($r), 401, "uncached 401 #$i: 401");
    is_deeply([http_header($r, 'WWW-Authenticate')], challenges('Basic realm="one"', 'Bearer'),
              "uncached 401 #$i: WWW-Authenticate headers in order");
    is(http_header($r, 'X-Auth-Cache'), '[MISS]', "uncached 401 #$i: MISS");
}
is(hits('/auth/c'), 3, '401 not cached: service hit each time');

# 401 cached
for my $i (1, 2) {
    $r = http_get('/c/p401', headers => ['X-Token: c', 'X-Ctl-Status: 401',
                                         'X-Ctl-Www: Basic realm="cached"', 'X-Ctl-Www: Negotiate']);
    is(http_status($r), 401, "cacheable 401 #$i: 401");
    is_deeply([http_header($r, 'WWW-Authenticate')], challenges('Basic realm="cached"', 'Negotiate'),
              "cacheable 401 #$i: WWW-Authenticate headers in order");
    is(http_header($r, 'X-Auth-Cache'), $i == 1 ? '[MISS]' : '[HIT]', "cacheable 401 #$i: cache status");
}
is(hits('/auth401/c'), 1, 'cached 401: service hit once');

# a different key is a different cache entry
$r = http_get('/c/p', headers => ['X-Token: d', 'X-Ctl-Status: 403']);
is(http_status($r), 403, 'other token: 403 from the service');
is(hits('/auth/c'), 4, 'other token: service hit');

$t->done;
