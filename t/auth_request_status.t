#!/usr/bin/perl
# auth_request: mapping of the auth subrequest's status.
#
#   2xx                    -> access allowed
#   401                    -> 401, with every WWW-Authenticate of the auth
#                             response, in order
#   403                    -> 403
#   anything else          -> 500 and "auth request unexpected status: NNN"
#   (3xx, 404, 5xx, upstream refused = 502, upstream timed out = 504)
#
# A 401 honours auth_delay; the protected location's error_page applies.

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use lib 't/lib';
use AGTest;

my $t = AGTest->new;

$t->write_file('protected.html', "PROTECTED\n");
$t->write_file('errors/page.html', "CUSTOM ERROR PAGE\n");

$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_read_timeout 1s;
        }
        location /refused/ {
            proxy_pass http://127.0.0.1:%%PORT_8089%%;
        }
        location /ret/ {
            location = /ret/200 { return 200; }
            location = /ret/201 { return 201; }
            location = /ret/204 { return 204; }
            location = /ret/206 { return 206 "partial"; }
            location = /ret/301 { return 301 /elsewhere; }
            location = /ret/302 { return 302 /elsewhere; }
            location = /ret/400 { return 400; }
            location = /ret/401 { return 401; }
            location = /ret/401-add-header {
                add_header WWW-Authenticate 'Basic realm="self"' always;
                return 401;
            }
            location = /ret/403 { return 403; }
            location = /ret/404 { return 404; }
            location = /ret/418 { return 418; }
            location = /ret/500 { return 500; }
            location = /ret/503 { return 503; }
        }

        # status scripted by the client's X-Ctl-* headers (default 200)
        location = /p {
            auth_request /auth/p;
            alias %%TESTDIR%%/protected.html;
        }
        location = /refused {
            auth_request /refused/x;
            alias %%TESTDIR%%/protected.html;
        }

        location = /delayed {
            auth_delay 600ms;
            auth_request /auth/p;
            alias %%TESTDIR%%/protected.html;
        }

        location = /errpage {
            auth_request /auth/p;
            error_page 401 403 500 /errors/page.html;
            alias %%TESTDIR%%/protected.html;
        }
        location = /errpage200 {
            auth_request /auth/p;
            error_page 401 403 500 =200 /errors/page.html;
            alias %%TESTDIR%%/protected.html;
        }
        location /errors/ {
            root %%TESTDIR%%;
        }

        include ret-locations.conf;
    }
}
EOF2

# one protected location per "return" auth location (the auth_request uri
# is literal, so it cannot be taken from the request)
my @ret = qw(200 201 204 206 301 302 400 401 401-add-header 403 404 418 500 503);
my $dir = $t->testdir;
$t->write_file('ret-locations.conf', join '', map {
    "location = /via-ret/$_ { auth_request /ret/$_; alias $dir/protected.html; }\n"
} @ret);

$t->run_auth_service(8081);
$t->port(8089);     # allocated, nothing listens there
$t->run;

sub unexpected_logged {
    my ($code) = @_;
    return scalar $t->grep_log(qr/\[error\].*auth request unexpected status: $code\b/);
}

###############################################################################
# statuses from a proxied auth service

my %expect = (
    200 => 200, 201 => 200, 202 => 200, 204 => 200, 206 => 200, 299 => 200,
    401 => 401, 403 => 403,
    301 => 500, 302 => 500, 303 => 500, 307 => 500,
    400 => 500, 404 => 500, 405 => 500, 407 => 500, 409 => 500,
    500 => 500, 502 => 500, 503 => 500, 504 => 500,
);

for my $code (sort keys %expect) {
    my @h = ("X-Ctl-Status: $code");
    push @h, 'X-Ctl-Hdr: Location: http://localhost/elsewhere' if $code =~ /^3/;
    my $r = http_get('/p', headers => \@h);
    is(http_status($r), $expect{$code}, "auth service $code -> $expect{$code}");
    if ($expect{$code} == 200) {
        is(http_body($r), "PROTECTED\n", "auth service $code: content served");
    } else {
        unlike(http_body($r), qr/PROTECTED/, "auth service $code: content not served");
    }
    if ($expect{$code} == 500) {
        ok(unexpected_logged($code), "auth service $code: 'unexpected status: $code' logged");
    }
}
ok(!unexpected_logged('(?:200|201|204|206|401|403)'), 'no "unexpected status" for 2xx/401/403');

###############################################################################
# statuses from the auth location itself (return)

my %ret_expect = (
    200 => 200, 201 => 200, 204 => 200, 206 => 200,
    301 => 500, 302 => 500, 400 => 500,
    401 => 401, '401-add-header' => 401, 403 => 403,
    404 => 500, 418 => 500, 500 => 500, 503 => 500,
);
for my $k (@ret) {
    my $r = http_get("/via-ret/$k");
    is(http_status($r), $ret_expect{$k}, "auth location return $k -> $ret_expect{$k}");
    like(http_body($r), qr/PROTECTED/, "return $k: content served") if $ret_expect{$k} == 200;
    my ($code) = $k =~ /^(\d+)/;
    ok(unexpected_logged($code), "return $k: 'unexpected status: $code' logged")
        if $ret_expect{$k} == 500;
}

# add_header does not apply to subrequests (the headers filter skips them),
# so "add_header WWW-Authenticate ... always" in the auth location does not
# produce a WWW-Authenticate in the client's 401
my $r = http_get('/via-ret/401-add-header');
is(http_status($r), 401, 'auth location add_header + return 401: 401');
is_deeply([http_header($r, 'WWW-Authenticate')], [],
          'auth location add_header + return 401: no WWW-Authenticate (C module behaviour)');

###############################################################################
# WWW-Authenticate from a proxied upstream

$r = http_get('/p', headers => ['X-Ctl-Status: 401',
                                'X-Ctl-Www: Basic realm="one"',
                                'X-Ctl-Www: Bearer realm="two", error="invalid_token"',
                                'X-Ctl-Www: Negotiate']);
is(http_status($r), 401, 'upstream 401');
# nginx keeps every WWW-Authenticate of a response only since 1.23.0
# (headers chained through "next"); before, the C module copied the one
# header nginx kept, and so do we.
if ($t->nginx_version >= 1_023_000) {
    is_deeply([http_header($r, 'WWW-Authenticate')],
              ['Basic realm="one"', 'Bearer realm="two", error="invalid_token"', 'Negotiate'],
              'upstream 401: all WWW-Authenticate headers, in order');
} else {
    is_deeply([http_header($r, 'WWW-Authenticate')], ['Basic realm="one"'],
              'upstream 401 on nginx < 1.23: the first WWW-Authenticate, as the C module');
}

$r = http_get('/p', headers => ['X-Ctl-Status: 401', 'X-Ctl-Www: Basic realm="single"']);
is_deeply([http_header($r, 'WWW-Authenticate')], ['Basic realm="single"'],
          'upstream 401: single WWW-Authenticate');

$r = http_get('/p', headers => ['X-Ctl-Status: 401']);
is(http_status($r), 401, 'upstream 401 without WWW-Authenticate: 401');
is_deeply([http_header($r, 'WWW-Authenticate')], [], 'no WWW-Authenticate invented');

$r = http_get('/p', headers => ['X-Ctl-Status: 401', 'X-Ctl-Hdr: www-authenticate: Lower realm="x"']);
like($r, qr/^www-authenticate: Lower realm="x"\r$/m,
     'WWW-Authenticate copied with the upstream\'s name spelling');

$r = http_get('/p', headers => ['X-Ctl-Status: 403', 'X-Ctl-Www: Basic realm="no"']);
is(http_status($r), 403, 'upstream 403 with WWW-Authenticate: 403');
is_deeply([http_header($r, 'WWW-Authenticate')], [], '403: WWW-Authenticate not copied');

$r = http_get('/p', headers => ['X-Ctl-Status: 200', 'X-Ctl-Www: Basic realm="no"']);
is(http_status($r), 200, 'upstream 200 with WWW-Authenticate: 200');
is_deeply([http_header($r, 'WWW-Authenticate')], [], '200: WWW-Authenticate not copied');

$r = http_get('/p', headers => ['X-Ctl-Status: 500', 'X-Ctl-Www: Basic realm="no"']);
is(http_status($r), 500, 'upstream 500 with WWW-Authenticate: 500');
is_deeply([http_header($r, 'WWW-Authenticate')], [], '500: WWW-Authenticate not copied');

###############################################################################
# upstream failures

$r = http_get('/refused');
is(http_status($r), 500, 'auth upstream refused: 500');
ok(unexpected_logged(502), 'auth upstream refused: "unexpected status: 502" logged');

my $t0 = time;
$r = http_get('/p', headers => ['X-Ctl-Delay: 3']);
my $elapsed = time - $t0;
is(http_status($r), 500, 'auth upstream timed out: 500');
ok($elapsed >= 0.9 && $elapsed < 2.9, sprintf('... after proxy_read_timeout (%.2fs)', $elapsed));
ok(unexpected_logged(504), 'auth upstream timed out: "unexpected status: 504" logged');

$r = http_get('/p', headers => ['X-Ctl-Drop: 1']);
is(http_status($r), 500, 'auth upstream closed without response: 500');
ok(unexpected_logged(502), 'closed without response: 502 logged');

###############################################################################
# auth_delay

$t0 = time;
$r = http_get('/delayed', headers => ['X-Ctl-Status: 401', 'X-Ctl-Www: Basic realm="d"']);
$elapsed = time - $t0;
is(http_status($r), 401, 'auth_delay: 401');
ok($elapsed >= 0.58, sprintf('auth_delay: 401 delayed (%.2fs)', $elapsed));
is(http_header($r, 'WWW-Authenticate'), 'Basic realm="d"', 'auth_delay: WWW-Authenticate kept');

$t0 = time;
$r = http_get('/delayed', headers => ['X-Ctl-Status: 200']);
$elapsed = time - $t0;
is(http_status($r), 200, 'auth_delay: 200');
ok($elapsed < 0.5, sprintf('auth_delay: 200 not delayed (%.2fs)', $elapsed));

$t0 = time;
$r = http_get('/delayed', headers => ['X-Ctl-Status: 403']);
$elapsed = time - $t0;
is(http_status($r), 403, 'auth_delay: 403');
ok($elapsed < 0.5, sprintf('auth_delay: 403 not delayed (%.2fs)', $elapsed));

###############################################################################
# error_page of the protected location

for my $code (401, 403, 500) {
    my $ctl = $code == 500 ? 404 : $code;
    $r = http_get('/errpage', headers => ["X-Ctl-Status: $ctl", 'X-Ctl-Www: Basic realm="e"']);
    is(http_status($r), $code, "error_page $code: status kept");
    is(http_body($r), "CUSTOM ERROR PAGE\n", "error_page $code: custom page");

    $r = http_get('/errpage200', headers => ["X-Ctl-Status: $ctl"]);
    is(http_status($r), 200, "error_page $code =200: status replaced");
    is(http_body($r), "CUSTOM ERROR PAGE\n", "error_page $code =200: custom page");
}
$r = http_get('/errpage', headers => ['X-Ctl-Status: 401', 'X-Ctl-Www: Basic realm="e"']);
is_deeply([http_header($r, 'WWW-Authenticate')], ['Basic realm="e"'],
          'error_page 401: WWW-Authenticate kept');
$r = http_get('/errpage', headers => ['X-Ctl-Status: 200']);
is(http_body($r), "PROTECTED\n", 'error_page location, auth 200: content');

$t->done;
