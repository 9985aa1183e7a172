#!/usr/bin/perl
# The seams of the status zone: a decision is counted once per request and
# series, however nginx moves the request (error_page into a location that
# asks again, try_files into a named location, rewrite ... last before the
# access phase), also for HEAD and HTTP/2; satisfy any that lets allow
# decide counts nothing; a location with another auth URI counts its own
# decision. authgate_status_zone / authgate_status themselves work in a
# named location reached by try_files, over HEAD and HTTP/2.

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
    authgate_status_zone seams 1m consumers=on;
    key_auth_consumers {
        jack key=jack-key;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        http2 on;
        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }

        # error_page into a location that asks the same auth URI again
        location = /ep {
            auth_request /auth/ep;
            error_page 401 = @ep;
            alias %%TESTDIR%%/protected.html;
        }
        location @ep {
            auth_request /auth/ep;
            root %%TESTDIR%%;
            try_files /protected.html =404;
        }

        # try_files into a named location asking the same URI, or another
        location = /tf {
            auth_request /auth/tf;
            try_files /nonexistent @tf;
        }
        location @tf {
            auth_request /auth/tf;
            root %%TESTDIR%%;
            try_files /protected.html =404;
        }
        location = /tf-other {
            auth_request /auth/tf-other;
            try_files /nonexistent @other;
        }
        location @other {
            auth_request /auth/other;
            root %%TESTDIR%%;
            try_files /protected.html =404;
        }

        # rewrite ... last moves before the access phase: one decision, the
        # target's
        location = /rw {
            auth_request /auth/never;
            rewrite ^ /rw-target last;
        }
        location = /rw-target {
            auth_request /auth/rw;
            alias %%TESTDIR%%/protected.html;
        }

        location = /any {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            auth_request /auth/any;
            alias %%TESTDIR%%/protected.html;
        }
        location = /all {
            satisfy all;
            allow 127.0.0.1;
            deny all;
            auth_request /auth/all;
            alias %%TESTDIR%%/protected.html;
        }

        location = /k {
            key_auth on;
            error_page 401 = @k;
            try_files /nonexistent @k;
        }
        location @k {
            key_auth on;
            root %%TESTDIR%%;
            try_files /protected.html =404;
        }

        location = /st {
            try_files /nonexistent @status;
        }
        location @status {
            authgate_status;
        }
        location = /metrics {
            authgate_status prometheus;
        }
    }
}
EOF2
$t->run_auth_service(8081);
$t->run;

sub status { decode_json(http_body(http_get('/st'))) }
sub decisions {
    my ($s, $uri) = @_;
    my ($series) = grep { $_->{uri} eq $uri } @{ $s->{auth_request} };
    return $series ? $series->{decisions} : {};
}
sub hits { my @r = grep { $_->{path} eq $_[0] } $t->requests('auth'); scalar @r }

is(http_status(http_get('/ep', headers => ['X-Ctl-Status: 401'])), 401, 'error_page: refused again');
is(hits('/auth/ep'), 2, 'error_page: the service was asked twice');
is(http_status(http_get('/tf')), 200, 'try_files: allowed');
is(http_status(http_get('/tf', method => 'HEAD')), 200, 'try_files: HEAD allowed');
like(http2_request('/tf'), qr{^HTTP/2 200}m, 'try_files: HTTP/2 allowed');
is(hits('/auth/tf'), 6, 'try_files: asked twice per request');
is(http_status(http_get('/tf-other')), 200, 'try_files into another auth URI: allowed');
is(http_status(http_get('/rw')), 200, 'rewrite last: allowed');
is(http_status(http_get('/any')), 200, 'satisfy any: allow decides');
is(http_status(http_get('/all')), 200, 'satisfy all: both allow');
is(http_status(http_get('/k', headers => ['apikey: jack-key'])), 200, 'key_auth try_files: allowed');
like(http2_request('/k', headers => ['apikey: jack-key']), qr{^HTTP/2 200}m, 'key_auth over HTTP/2');
is(http_status(http_get('/k')), 401, 'key_auth error_page 401 into key_auth: refused again');

my $s = status();
is_deeply(decisions($s, '/auth/ep'), { allow => 0, unauthorized => 1, forbidden => 0, passed => 0, error => 0 },
    'error_page: one decision counted');
is(decisions($s, '/auth/tf')->{allow}, 3, 'try_files: one per request (GET, HEAD, HTTP/2)');
is(decisions($s, '/auth/tf-other')->{allow}, 1, 'first location counts its URI');
is(decisions($s, '/auth/other')->{allow}, 1, 'the named location counts its own URI');
is(decisions($s, '/auth/never')->{allow}, 0, 'rewrite last: the location left before access counts nothing');
is(decisions($s, '/auth/rw')->{allow}, 1, 'rewrite last: the target counts');
is(decisions($s, '/auth/any')->{allow}, 0, 'satisfy any: auth_request did not run, nothing counted');
is(decisions($s, '/auth/all')->{allow}, 1, 'satisfy all: counted');
my ($tf) = grep { $_->{uri} eq '/auth/tf' } @{ $s->{auth_request} };
is($tf->{duration_ms}{count}, 3, 'latency: one observation per counted decision');
my ($ka) = @{ $s->{key_auth} };
is($ka->{requests}{allowed}, 2, 'key_auth: one allowed per request across try_files');
is($ka->{requests}{missing}, 1, 'key_auth: one refusal across error_page');
my ($jack) = grep { $_->{consumer} eq 'jack' } @{ $s->{key_auth_consumers} };
is($jack->{requests}, 2, 'consumer: once per request');

# the status page itself across the seams
my $r = http_get('/st', method => 'HEAD');
is(http_status($r), 200, 'status through try_files, HEAD');
is(http_body($r), '', 'HEAD: no body');
$r = http2_request('/metrics');
like($r, qr{^HTTP/2 200}m, 'metrics over HTTP/2');
like($r, qr/^authgate_auth_request_decisions_total\{uri="\/auth\/tf",decision="allow"\} 3\r?$/m,
    'metrics over HTTP/2: the counts');
$r = http2_request('/st?format=json');
like($r, qr/"zone":"seams"/, 'status over HTTP/2 (named location)');
is(decisions(status(), '/auth/tf')->{allow}, 3, 'reading the page counted nothing');

$t->done;
