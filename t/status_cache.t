#!/usr/bin/perl
# authgate_status with the decision cache: authgate_auth_request_cache_total
# counts the cache's hits, misses and stores per auth URI; a hit is also a
# decision (counted once per request); an uncached location counts no cache
# event; a full zone's evictions. authgate_auth_http_cache_total counts the
# same per auth_http service (a request that asks two services counts in
# each), also in Prometheus form.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;
$t->write_file('protected.html', "PROTECTED\n");
$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
worker_processes 2;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    authgate_status_zone status 1m;
    auth_cache_zone decisions 1m;
    auth_cache_zone tiny 32k;
    server {
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        location = /c {
            auth_request /auth/c;
            auth_request_cache decisions;
            auth_request_cache_key $http_x_token;
            auth_request_cache_valid 1m;
            auth_request_cache_valid 401 403 1m;
            alias %%TESTDIR%%/protected.html;
        }
        location = /n {
            auth_request /auth/n;
            alias %%TESTDIR%%/protected.html;
        }
        location = /tiny {
            auth_request /auth/tiny;
            auth_request_cache tiny;
            auth_request_cache_key $http_x_token;
            auth_request_cache_valid 1m;
            alias %%TESTDIR%%/protected.html;
        }
        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/acl/;
            proxy_set_header X-Ctl-Status $http_x_acl_status;
        }
        location /_su/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/su/;
            proxy_set_header X-Ctl-Status 403;
        }
        location /h/ {
            auth_http_superuser /_su/check params=t=$http_x_token;
            auth_http_acl /_acl/check params=t=$http_x_token;
            auth_http_retry times=0 interval=10ms;
            auth_http_cache decisions;
            auth_http_cache_valid any 1m;
            alias %%TESTDIR%%/;
        }
        location /htiny/ {
            auth_http_acl /_acl/tiny params=t=$http_x_token;
            auth_http_cache tiny;
            auth_http_cache_valid any 1m;
            alias %%TESTDIR%%/;
        }
        location = /status { authgate_status; }
        location = /metrics { authgate_status prometheus; }
    }
}
EOF2
$t->run_auth_service(8081);
$t->run;

# token a: 1 miss + store, then 3 hits; token b (403): 1 miss + store, 1 hit;
# no token (empty key: bypass): neither a hit nor a miss; a 500 is not stored
is(http_status(http_get('/c', headers => ['X-Token: a'])), 200, 'a: miss') ;
is(http_status(http_get('/c', headers => ['X-Token: a'])), 200, "a: hit $_") for 1 .. 3;
is(http_status(http_get('/c', headers => ['X-Token: b', 'X-Ctl-Status: 403'])), 403, 'b: miss');
is(http_status(http_get('/c', headers => ['X-Token: b'])), 403, 'b: hit');
is(http_status(http_get('/c')), 200, 'no key: bypass');
is(http_status(http_get('/c', headers => ['X-Token: e', 'X-Ctl-Status: 500'])), 500, 'e: miss, not stored');
is(http_status(http_get('/n')), 200, 'uncached location');
is(scalar(grep { $_->{path} eq '/auth/c' } $t->requests('auth')), 4, 'the service was asked 4 times');

my $s = decode_json(http_body(http_get('/status')));
my %ar = map { $_->{uri} => $_ } @{ $s->{auth_request} };
is_deeply($ar{'/auth/c'}{cache}, { hit => 4, miss => 3, store => 2, eviction => 0 }, 'cache events');
is_deeply($ar{'/auth/c'}{decisions}, { allow => 5, unauthorized => 0, forbidden => 2, passed => 0, error => 1 },
    'hits are decisions too');
is($ar{'/auth/c'}{duration_ms}{count}, 4, 'latency only for subrequests');
is_deeply($ar{'/auth/n'}{cache}, { hit => 0, miss => 0, store => 0, eviction => 0 }, 'uncached: no events');

# a full zone: each miss past its room evicts the least recently used entry
my ($room) = ($t->error_log =~ /auth_cache_zone "tiny": room for (\d+) entries/);
ok($room && $room > 2, "tiny zone: room for $room entries");
is(http_status(http_get('/tiny', headers => ["X-Token: t$_"])), 200, "tiny: miss $_") for 1 .. $room + 3;
$s = decode_json(http_body(http_get('/status')));
%ar = map { $_->{uri} => $_ } @{ $s->{auth_request} };
is_deeply($ar{'/auth/tiny'}{cache}, { hit => 0, miss => $room + 3, store => $room + 3, eviction => 3 },
    'three misses past the room evicted three entries');

# auth_http: token a twice (superuser: not one, then ACL: allow), token b
# (ACL deny) twice, a 503 (not stored), no cache event for an uncached one
is(http_status(http_get('/h/protected.html', headers => ['X-Token: a'])), 200, 'auth_http a: miss');
is(http_status(http_get('/h/protected.html', headers => ['X-Token: a'])), 200, 'auth_http a: hit');
is(http_status(http_get('/h/protected.html', headers => ['X-Token: b', 'X-Acl-Status: 403'])), 403, 'auth_http b: miss');
is(http_status(http_get('/h/protected.html', headers => ['X-Token: b'])), 403, 'auth_http b: hit');
is(http_status(http_get('/h/protected.html', headers => ['X-Token: e', 'X-Acl-Status: 503'])), 503,
   'auth_http e: unreachable, not stored');
$s = decode_json(http_body(http_get('/status')));
my %ah = map { $_->{service} => $_ } @{ $s->{auth_http} };
is_deeply($ah{'/_su/check'}{cache}, { hit => 2, miss => 3, store => 3, eviction => 0 },
          'auth_http superuser service: cache events');
is_deeply($ah{'/_acl/check'}{cache}, { hit => 2, miss => 3, store => 2, eviction => 0 },
          'auth_http ACL service: cache events (the 503 not stored)');
is($ah{'/_acl/check'}{results}{allow}, 2, 'auth_http hits are results too');

# the tiny zone is full of fresh auth_request entries: each auth_http miss evicts one
is(http_status(http_get('/htiny/protected.html', headers => ["X-Token: h$_"])), 200, "auth_http tiny: miss $_")
    for 1 .. 3;
$s = decode_json(http_body(http_get('/status')));
%ah = map { $_->{service} => $_ } @{ $s->{auth_http} };
is_deeply($ah{'/_acl/tiny'}{cache}, { hit => 0, miss => 3, store => 3, eviction => 3 },
          'auth_http: three misses in a full zone evicted three entries');

my $prom = http_body(http_get('/metrics'));
like($prom, qr/^# TYPE authgate_auth_http_cache_total counter$/m, 'prometheus: the family');
like($prom, qr/^authgate_auth_http_cache_total\{service="\/_acl\/check",event="hit"\} 2$/m,
     'prometheus: ACL hits');
like($prom, qr/^authgate_auth_http_cache_total\{service="\/_acl\/tiny",event="eviction"\} 3$/m,
     'prometheus: evictions');
$t->done;
