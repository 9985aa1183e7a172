#!/usr/bin/perl
# auth_request and auth_request_set at http{} level: inherited by every
# server and location -- including the auth location itself, which is
# harmless because subrequests skip the access phase (no recursion).

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
    auth_request /auth/p;
    auth_request_set $lvl "http:$upstream_status";

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        location = /p {
            add_header X-Lvl "[$lvl]" always;
            alias %%TESTDIR%%/protected.html;
        }
        location = /open {
            auth_request off;
            add_header X-Lvl "[$lvl]" always;
            alias %%TESTDIR%%/protected.html;
        }
    }
    server {
        listen 127.0.0.1:%%PORT_8082%%;
        server_name localhost;
        auth_request /auth2/403;
        location /auth2/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        location = /p {
            add_header X-Lvl "[$lvl]" always;
            alias %%TESTDIR%%/protected.html;
        }
    }
}
EOF2

$t->run_auth_service(8081);
$t->run;

my $r = http_get('/p');
is(http_status($r), 200, 'http-level auth_request: auth 200 -> 200');
is(http_body($r), "PROTECTED\n", 'content');
is(http_header($r, 'X-Lvl'), '[http:200]', 'http-level auth_request_set');
is(scalar $t->requests('auth'), 1, 'one auth request (the auth location does not recurse)');

$r = http_get('/p', headers => ['X-Ctl-Status: 401']);
is(http_status($r), 401, 'http-level auth_request: auth 401 -> 401');
is(http_header($r, 'X-Lvl'), '[http:401]', 'http-level auth_request_set on deny');

$t->clear_requests('auth');
$r = http_get('/open');
is(http_status($r), 200, 'auth_request off in a location');
is(http_header($r, 'X-Lvl'), '[]', 'auth_request off: nothing set');
is(scalar $t->requests('auth'), 0, 'auth_request off: no auth request');

$r = http_get('/p', port => $t->port(8082));
is(http_status($r), 403, 'server-level auth_request overrides the http-level one');
is(http_header($r, 'X-Lvl'), '[http:403]', 'http-level auth_request_set still inherited');
my @a = $t->requests('auth');
is($a[-1]{path}, '/auth2/403', 'server-level uri used');

$t->done;
