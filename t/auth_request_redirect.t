#!/usr/bin/perl
# auth_request after internal redirects: error_page (to a uri and to a named
# location), try_files and "rewrite ... last" land in a location with its own
# auth_request, and the check runs again there (module context is reset by
# the redirect); auth_request_set takes the new value, while a value set
# before the redirect survives when the new location does not set it.

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
        server_name localhost;
        root %%TESTDIR%%;

        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }

        # error_page to a uri
        location = /ep/start {
            auth_request /auth/401/ep-start;
            auth_request_set $v $uri;
            error_page 401 = /ep/target;
            alias %%TESTDIR%%/protected.html;
        }
        location = /ep/start-deny {
            auth_request /auth/401/ep-start-deny;
            error_page 401 = /ep/target-deny;
            alias %%TESTDIR%%/protected.html;
        }
        location = /ep/start-noset {
            auth_request /auth/403/ep-start-noset;
            auth_request_set $v $uri;
            auth_request_set $w "w-from-start";
            error_page 403 = /ep/target-noset;
            alias %%TESTDIR%%/protected.html;
        }
        location = /ep/target {
            auth_request /auth/200/ep-target;
            auth_request_set $v $uri;
            add_header X-V "[$v]" always;
            alias %%TESTDIR%%/protected.html;
        }
        location = /ep/target-deny {
            auth_request /auth/403/ep-target-deny;
            alias %%TESTDIR%%/protected.html;
        }
        location = /ep/target-noset {
            auth_request /auth/200/ep-target-noset;
            auth_request_set $w "w-from-target";
            add_header X-V "[$v]" always;
            add_header X-W "[$w]" always;
            alias %%TESTDIR%%/protected.html;
        }

        # error_page to a named location
        location = /named/start {
            auth_request /auth/403/named-start;
            auth_request_set $v $uri;
            error_page 403 = @named;
            alias %%TESTDIR%%/protected.html;
        }
        location @named {
            auth_request /auth/200/named;
            auth_request_set $v $uri;
            add_header X-V "[$v]" always;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location = /named/start-deny {
            auth_request /auth/403/named-start-deny;
            error_page 403 = @named_deny;
            alias %%TESTDIR%%/protected.html;
        }
        location @named_deny {
            auth_request /auth/401/named-deny;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        # try_files (its phase comes after access)
        location = /tf/start {
            auth_request /auth/200/tf-start;
            auth_request_set $v $uri;
            try_files /no-such-file /tf/target;
        }
        location = /tf/start-deny {
            auth_request /auth/200/tf-start-deny;
            try_files /no-such-file /tf/target-deny;
        }
        location = /tf/target {
            auth_request /auth/200/tf-target;
            auth_request_set $v $uri;
            add_header X-V "[$v]" always;
            alias %%TESTDIR%%/protected.html;
        }
        location = /tf/target-deny {
            auth_request /auth/401/tf-target-deny;
            alias %%TESTDIR%%/protected.html;
        }

        # rewrite ... last (rewrite phase comes before access)
        location = /rw/start {
            auth_request /auth/403/rw-start;
            rewrite ^ /rw/target last;
        }
        location = /rw/start-deny {
            rewrite ^ /rw/target-deny last;
        }
        location = /rw/target {
            auth_request /auth/200/rw-target;
            auth_request_set $v $uri;
            add_header X-V "[$v]" always;
            alias %%TESTDIR%%/protected.html;
        }
        location = /rw/target-deny {
            auth_request /auth/401/rw-target-deny;
            alias %%TESTDIR%%/protected.html;
        }
    }
}
EOF2

$t->run_auth_service(8081);
$t->run_echo_server(8082);
$t->run;

sub hits {
    my %h;
    $h{ (split m{/}, $_->{path})[-1] }++ for $t->requests('auth');
    $t->clear_requests('auth');
    return \%h;
}

my $r = http_get('/ep/start');
is(http_status($r), 200, 'error_page: allowed by the target\'s auth_request');
is(http_body($r), "PROTECTED\n", 'error_page: target content');
is(http_header($r, 'X-V'), '[/auth/200/ep-target]', 'error_page: auth_request_set takes the new value');
is_deeply(hits(), { 'ep-start' => 1, 'ep-target' => 1 }, 'error_page: auth ran in both locations');

$r = http_get('/ep/start-deny');
is(http_status($r), 403, 'error_page: target\'s auth_request denies');
is_deeply(hits(), { 'ep-start-deny' => 1, 'ep-target-deny' => 1 }, 'error_page deny: both ran');

$r = http_get('/ep/start-noset');
is(http_status($r), 200, 'error_page to a location without that variable in its set list');
is(http_header($r, 'X-V'), '[/auth/403/ep-start-noset]', 'value set before the redirect survives');
is(http_header($r, 'X-W'), '[w-from-target]', 'value set by both: the new one wins');
is_deeply(hits(), { 'ep-start-noset' => 1, 'ep-target-noset' => 1 }, 'both ran');

$r = http_get('/named/start');
is(http_status($r), 200, 'named location: allowed by its own auth_request');
is((json_body($r) // {})->{uri}, '/named/start', 'named location: proxied the original uri');
is(http_header($r, 'X-V'), '[/auth/200/named]', 'named location: auth_request_set takes the new value');
is_deeply(hits(), { 'named-start' => 1, named => 1 }, 'named: auth ran in both locations');

$r = http_get('/named/start-deny');
is(http_status($r), 401, 'named location: its auth_request denies');
unlike($r, qr/X-Backend: echo/, 'named location deny: not proxied');
is_deeply(hits(), { 'named-start-deny' => 1, 'named-deny' => 1 }, 'named deny: both ran');

$r = http_get('/tf/start');
is(http_status($r), 200, 'try_files: allowed');
is(http_header($r, 'X-V'), '[/auth/200/tf-target]', 'try_files: auth_request_set takes the new value');
is_deeply(hits(), { 'tf-start' => 1, 'tf-target' => 1 }, 'try_files: auth ran before and after');

$r = http_get('/tf/start-deny');
is(http_status($r), 401, 'try_files: target denies although the first location allowed');
is_deeply(hits(), { 'tf-start-deny' => 1, 'tf-target-deny' => 1 }, 'try_files deny: both ran');

$r = http_get('/rw/start');
is(http_status($r), 200, 'rewrite last: target allows');
is(http_header($r, 'X-V'), '[/auth/200/rw-target]', 'rewrite last: value from the target');
is_deeply(hits(), { 'rw-target' => 1 }, 'rewrite last: only the target\'s auth ran (rewrite precedes access)');

$r = http_get('/rw/start-deny');
is(http_status($r), 401, 'rewrite last into a protected location: 401');
is_deeply(hits(), { 'rw-target-deny' => 1 }, 'rewrite deny: target auth ran');

$t->done;
