#!/usr/bin/perl
# auth_http together with nginx's allow/deny and auth_basic and with our
# auth_request in one location.
#
# Access-phase order: allow/deny, auth_basic, auth_request, auth_http.
# "satisfy all" (default): the first handler that refuses decides, the later
# ones do not run.  "satisfy any": the first handler that allows wins and the
# later ones do not run; 401/403 refusals let the next handler try (a 403
# never replaces an earlier 401); any other status (auth_request's 500,
# auth_http's 503) is final.

use strict;
use warnings;
use Test::More;
use MIME::Base64 qw(encode_base64);
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('auth_http is ours only');

$t->write_file('htpasswd', "user:{PLAIN}pass\n");

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%

    map $http_x_auth_status $auth_status { "" 200; default $http_x_auth_status; }
    map $http_x_acl_status  $acl_status  { "" 200; default $http_x_acl_status; }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;
        add_header X-Result "[$auth_http_result]" always;
        auth_http_retry times=0 interval=10ms;

        location /_auth/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8091%%/auth/;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Ctl-Status $auth_status;
        }
        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8092%%/acl/;
            proxy_set_header X-Ctl-Status $acl_status;
        }

        location /all/ {
            auth_request  /_auth/all;
            auth_http_acl /_acl/all;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /any/ {
            satisfy any;
            auth_request  /_auth/any;
            auth_http_acl /_acl/any;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /any-deny/ {
            satisfy any;
            deny all;
            auth_request  /_auth/any-deny;
            auth_http_acl /_acl/any-deny;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /any-allow/ {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            auth_http_acl /_acl/any-allow;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /all-deny/ {
            deny all;
            auth_request  /_auth/all-deny;
            auth_http_acl /_acl/all-deny;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /basic/ {
            auth_basic "m";
            auth_basic_user_file %%TESTDIR%%/htpasswd;
            auth_http_acl /_acl/basic method=get params=u=%u;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /any-basic/ {
            satisfy any;
            auth_basic "m";
            auth_basic_user_file %%TESTDIR%%/htpasswd;
            auth_http_acl /_acl/any-basic;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /any-down/ {
            satisfy any;
            deny all;
            auth_http_acl /_acl_down/x;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /_acl_down/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8099%%/;
        }
    }
}
EOF

$t->run_auth_service(8091);
$t->run_backend(8092, name => 'acl', mode => 'auth');
$t->run_echo_server(8093);
$t->run;

sub hits { my @r = $t->requests($_[0]); return scalar @r }

my $GOOD = 'Authorization: Basic ' . encode_base64('user:pass', '');

# [uri, auth_request status, ACL status, credentials,
#  expected status, auth asked, ACL asked, $auth_http_result]
my @matrix = (
    # satisfy all: auth_request first; its refusal stops everything
    ['/all/x', 200, 200, 0, 200, 1, 1, 'allow'],
    ['/all/x', 200, 403, 0, 403, 1, 1, 'deny'],
    ['/all/x', 403, 200, 0, 403, 1, 0, ''],
    ['/all/x', 401, 200, 0, 401, 1, 0, ''],
    ['/all/x', 404, 200, 0, 500, 1, 0, ''],
    ['/all-deny/x', 200, 200, 0, 403, 0, 0, ''],

    # satisfy any: the first allowing handler wins
    ['/any/x', 200, 403, 0, 200, 1, 0, ''],
    ['/any/x', 403, 200, 0, 200, 1, 1, 'allow'],
    ['/any/x', 403, 403, 0, 403, 1, 1, 'deny'],
    ['/any/x', 401, 200, 0, 200, 1, 1, 'allow'],
    ['/any/x', 401, 403, 0, 401, 1, 1, 'deny'],
    ['/any/x', 404, 200, 0, 500, 1, 0, ''],
    ['/any-deny/x', 403, 200, 0, 200, 1, 1, 'allow'],
    ['/any-deny/x', 200, 403, 0, 200, 1, 0, ''],
    ['/any-deny/x', 403, 403, 0, 403, 1, 1, 'deny'],
    ['/any-allow/x', 200, 403, 0, 200, 0, 0, ''],

    # auth_basic runs before
    ['/basic/x', 200, 200, 0, 401, 0, 0, ''],
    ['/basic/x', 200, 200, 1, 200, 0, 1, 'allow'],
    ['/basic/x', 200, 403, 1, 403, 0, 1, 'deny'],
    ['/any-basic/x', 200, 403, 1, 200, 0, 0, ''],
    ['/any-basic/x', 200, 200, 0, 200, 0, 1, 'allow'],
    ['/any-basic/x', 200, 403, 0, 401, 0, 1, 'deny'],

    # a 503 from auth_http is final under satisfy any too
    ['/any-down/x', 200, 200, 0, 503, 0, 0, 'error'],
);

for my $row (@matrix) {
    my ($uri, $auth, $acl, $cred, $status, $auth_n, $acl_n, $result) = @$row;
    my $n = "$uri auth_request=$auth acl=$acl" . ($cred ? ' with Basic credentials' : '');
    $t->clear_requests($_) for qw(auth acl echo);
    my $r = http_get($uri, headers => ["X-Auth-Status: $auth", "X-Acl-Status: $acl",
                                       $cred ? ($GOOD) : ()]);
    is(http_status($r), $status, "$n: $status");
    is(hits('auth'), $auth_n, "$n: auth_request service asked $auth_n time(s)");
    is(hits('acl'), $acl_n, "$n: ACL service asked $acl_n time(s)");
    is(http_header($r, 'X-Result'), "[$result]", "$n: \$auth_http_result '$result'");
    is(hits('echo'), $status == 200 ? 1 : 0, "$n: upstream " . ($status == 200 ? 'reached' : 'not reached'));
}

# auth_request runs before auth_http: both asked, in that order
$t->clear_requests($_) for qw(auth acl);
http_get('/all/x');
my ($ar) = $t->requests('auth');
my ($acl) = $t->requests('acl');
ok($ar && $acl && $ar->{time} <= $acl->{time}, 'satisfy all: auth_request asked before the ACL');

# the user auth_basic accepted is the ACL's %u
$t->clear_requests('acl');
http_get('/basic/x', headers => [$GOOD]);
my @a = $t->requests('acl');
is($a[0]{query}, 'u=user', 'auth_basic user reaches the ACL as %u') if @a;

$t->done;
