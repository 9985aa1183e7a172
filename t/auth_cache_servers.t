#!/usr/bin/perl
# The decision cache across server blocks: two virtual servers (tenants)
# share one zone and the same cache settings from the http level, and each
# has its own auth location at the same URI, asking its own service. A
# token that tenant A's service allows must not be allowed in tenant B from
# A's cached decision (the question includes the server block), for
# auth_request_cache and for auth_http_cache; each server still hits its
# own entries, also after a reload.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('the decision cache is ours only');

$t->write_file('protected.html', "PROTECTED\n");

$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    auth_cache_zone decisions 1m;

    auth_request_cache decisions;
    auth_request_cache_key $http_authorization;
    auth_request_cache_valid 1m;
    auth_request_cache_valid 401 403 1m;
    auth_http_cache decisions;
    auth_http_cache_valid any 1m;
    add_header X-Cache "[$auth_cache_status]" always;

    # tenant A: its service allows
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name tenant;
        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Ctl-Status 200;
        }
        location = /p {
            auth_request /auth/p;
            alias %%TESTDIR%%/protected.html;
        }
        location = /h {
            auth_http_acl /auth/acl;
            alias %%TESTDIR%%/protected.html;
        }
    }
    # tenant B: its service refuses
    server {
        listen 127.0.0.1:%%PORT_8082%%;
        server_name tenant;
        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Ctl-Status 403;
        }
        location = /p {
            auth_request /auth/p;
            alias %%TESTDIR%%/protected.html;
        }
        location = /h {
            auth_http_acl /auth/acl;
            alias %%TESTDIR%%/protected.html;
        }
    }
}
EOF2

$t->run_auth_service(8081);
$t->run;

sub get_at {
    my ($port, $uri, $token) = @_;
    return http_get($uri, port => $t->port($port), headers => ["Authorization: $token"]);
}

for my $uri ('/p', '/h') {
    my $r = get_at(8080, $uri, "Bearer a$uri");
    is(http_status($r), 200, "$uri tenant A: allowed by its service");
    is(http_header($r, 'X-Cache'), '[MISS]', "$uri tenant A: miss");
    $r = get_at(8080, $uri, "Bearer a$uri");
    is(http_header($r, 'X-Cache'), '[HIT]', "$uri tenant A: hit");

    $r = get_at(8082, $uri, "Bearer a$uri");
    is(http_status($r), 403, "$uri tenant B: A's allow is not B's decision");
    is(http_header($r, 'X-Cache'), '[MISS]', "$uri tenant B: its own miss");
    $r = get_at(8082, $uri, "Bearer a$uri");
    is(http_status($r), 403, "$uri tenant B: its own entry");
    is(http_header($r, 'X-Cache'), '[HIT]', "$uri tenant B: hit");
}

$t->reload;
for my $uri ('/p', '/h') {
    my $r = get_at(8080, $uri, "Bearer a$uri");
    is(http_status($r) . http_header($r, 'X-Cache'), '200[HIT]', "$uri after reload: A's entry");
    $r = get_at(8082, $uri, "Bearer a$uri");
    is(http_status($r) . http_header($r, 'X-Cache'), '403[HIT]', "$uri after reload: B's entry");
}

$t->done;
