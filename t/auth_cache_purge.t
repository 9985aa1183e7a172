#!/usr/bin/perl
# auth_cache_purge: DELETE with "Auth-Cache-Key: VALUE" removes that key's
# entries in every cache sharing the zone (and nothing else); with
# "Auth-Cache-Purge: all" every entry; other requests are refused (400,
# 405); the next request for a purged key asks the service again.

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
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    auth_cache_zone c 1m;
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;
        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        auth_request_cache c;
        auth_request_cache_key $http_authorization;
        auth_request_cache_valid any 1m;
        add_header X-Cache "[$auth_cache_status]" always;
        location = /a { auth_request /auth/a; alias %%TESTDIR%%/protected.html; }
        location = /b { auth_request /auth/b; alias %%TESTDIR%%/protected.html; }
        location = /_purge { allow 127.0.0.1; deny all; auth_cache_purge c; }
    }
}
EOF
$t->run_auth_service(8081);
$t->run;

sub status_of { my ($uri, $who) = @_; http_header(http_get($uri, headers => ["Authorization: $who"]), 'X-Cache') }
sub purge { http_get('/_purge', method => 'DELETE', headers => [@_]) }

for my $who ('Bearer alice', 'Bearer bob') {
    http_get($_, headers => ["Authorization: $who", 'X-Ctl-Status: 403']) for '/a', '/b';
}
is(status_of('/a', 'Bearer alice'), '[HIT]', 'cached');

my $r = purge('Auth-Cache-Key: Bearer alice');
is(http_status($r), 200, 'purge a key: 200');
like($r, qr/\r\n\r\npurged 2\n$/, 'purge a key: its entries in both locations');
is(status_of('/a', 'Bearer alice'), '[MISS]', 'purged key: asked again (/a)');
is(status_of('/b', 'Bearer alice'), '[MISS]', 'purged key: asked again (/b)');
is(status_of('/a', 'Bearer bob'), '[HIT]', 'another key stays');
like(purge('Auth-Cache-Key: Bearer nobody'), qr/purged 0\n$/, 'an unknown key: 0');

$r = purge('Auth-Cache-Purge: all');
like($r, qr/purged 4\n$/, 'purge all: every entry');
is(status_of('/b', 'Bearer bob'), '[MISS]', 'after purge all: asked again');

is(http_status(purge()), 400, 'DELETE without a header: 400');
is(http_status(purge('Auth-Cache-Purge: some')), 400, 'Auth-Cache-Purge other than all: 400');
is(http_status(http_get('/_purge', headers => ['Auth-Cache-Purge: all'])), 405, 'GET: 405');
is(status_of('/b', 'Bearer bob'), '[HIT]', 'a refused purge removes nothing');

$t->done;
