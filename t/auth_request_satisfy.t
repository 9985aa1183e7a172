#!/usr/bin/perl
# auth_request with "satisfy all" / "satisfy any":
#   {all, any} x {allow all, deny all, auth_basic with good credentials,
#   auth_basic without credentials} x {auth 200, 401, 403, 404 (-> 500)}.
#
# The expectations below were obtained from nginx with the C
# ngx_http_auth_request_module (TEST_NGINX_MODULE=none) and are asserted
# literally.  Notable: with "satisfy any" one allowing check wins (the
# auth service is not even asked); a 403 never replaces an earlier 401
# (the 401 keeps auth_basic's challenge); a 401 from the auth service adds
# its WWW-Authenticate after auth_basic's; a 500 from the auth check is
# final (and, oddly, still carries auth_basic's challenge when one was added
# before); when access is finally granted the earlier challenge is hidden.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;

$t->write_file('protected.html', "PROTECTED\n");
$t->write_file('htpasswd', "user:{PLAIN}pass\n");

my $BASIC = 'Basic realm="m"';
my $SVC   = 'Bearer realm="svc"';

# [satisfy, first check, client credentials, auth status,
#  expected status, auth service hits, expected WWW-Authenticate list]
my @matrix = (
    [all => allow => none => 200, 200, 1, []],
    [all => allow => none => 401, 401, 1, [$SVC]],
    [all => allow => none => 403, 403, 1, []],
    [all => allow => none => 404, 500, 1, []],

    [all => deny  => none => 200, 403, 0, []],
    [all => deny  => none => 401, 403, 0, []],
    [all => deny  => none => 403, 403, 0, []],
    [all => deny  => none => 404, 403, 0, []],

    [all => basic => good => 200, 200, 1, []],
    [all => basic => good => 401, 401, 1, [$SVC]],
    [all => basic => good => 403, 403, 1, []],
    [all => basic => good => 404, 500, 1, []],

    [all => basic => none => 200, 401, 0, [$BASIC]],
    [all => basic => none => 401, 401, 0, [$BASIC]],
    [all => basic => none => 403, 401, 0, [$BASIC]],
    [all => basic => none => 404, 401, 0, [$BASIC]],

    [any => allow => none => 200, 200, 0, []],
    [any => allow => none => 401, 200, 0, []],
    [any => allow => none => 403, 200, 0, []],
    [any => allow => none => 404, 200, 0, []],

    [any => deny  => none => 200, 200, 1, []],
    [any => deny  => none => 401, 401, 1, [$SVC]],
    [any => deny  => none => 403, 403, 1, []],
    [any => deny  => none => 404, 500, 1, []],

    [any => basic => good => 200, 200, 0, []],
    [any => basic => good => 401, 200, 0, []],
    [any => basic => good => 403, 200, 0, []],
    [any => basic => good => 404, 200, 0, []],

    [any => basic => none => 200, 200, 1, []],
    [any => basic => none => 401, 401, 1, [$BASIC, $SVC]],
    [any => basic => none => 403, 401, 1, [$BASIC]],
    # the 500 keeps the challenge auth_basic had already added
    [any => basic => none => 404, 500, 1, [$BASIC]],

    # three checks: deny (403), auth_basic (401), auth_request
    [any => 'deny+basic' => none => 200, 200, 1, []],
    [any => 'deny+basic' => none => 403, 401, 1, [$BASIC]],
    [any => 'deny+basic' => good => 401, 200, 0, []],
    [all => 'deny+basic' => good => 200, 403, 0, []],
);

my %first = (
    allow        => 'allow all;',
    deny         => 'deny all;',
    basic        => 'auth_basic "m"; auth_basic_user_file %%TESTDIR%%/htpasswd;',
    'deny+basic' => 'deny all; auth_basic "m"; auth_basic_user_file %%TESTDIR%%/htpasswd;',
);

my $locations = '';
my %seen;
for my $c (@matrix) {
    my ($satisfy, $first, undef, $auth) = @$c;
    my $name = "$satisfy-$first-$auth";
    next if $seen{$name}++;
    $locations .= <<"EOF2";
        location = /m/$name {
            satisfy $satisfy;
            $first{$first}
            auth_request /auth/$auth/$name;
            alias %%TESTDIR%%/protected.html;
        }
EOF2
}

$t->write_file_expand('nginx.conf', <<"EOF2");
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
            proxy_set_header X-Ctl-Www '$SVC';
        }

$locations
    }
}
EOF2

$t->run_auth_service(8081);
$t->run;

require MIME::Base64;
my $good = 'Authorization: Basic ' . MIME::Base64::encode_base64('user:pass', '');

for my $c (@matrix) {
    my ($satisfy, $first, $creds, $auth, $status, $hits, $www) = @$c;
    my $name = "$satisfy-$first-$auth";
    my $desc = "satisfy $satisfy, $first, creds $creds, auth $auth";
    $t->clear_requests('auth');
    my $r = http_get("/m/$name", headers => $creds eq 'good' ? [$good] : []);
    is(http_status($r), $status, "$desc: $status");
    if ($status == 200) {
        is(http_body($r), "PROTECTED\n", "$desc: content");
    }
    is(scalar $t->requests('auth'), $hits, "$desc: auth service hit $hits time(s)");
    is_deeply([http_header($r, 'WWW-Authenticate')], $www,
              "$desc: WWW-Authenticate (@$www)");
}

$t->done;
