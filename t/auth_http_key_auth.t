#!/usr/bin/perl
# auth_http with key_auth (and auth_request) in one location.
#
# Order: key_auth, auth_request, auth_http.  key_auth says who the caller
# is ($key_auth_consumer, X-Consumer-Username), auth_http asks what that
# consumer may do: auth_http_client_id $key_auth_consumer.  "satisfy all":
# a missing/invalid key is a 401 and the ACL service is not asked.
# "satisfy any": a valid key is enough (the ACL is not asked); without one
# the ACL decides, and when it refuses too the client gets key_auth's 401
# (401 wins over 403).

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('auth_http and key_auth are ours only');

$t->write_file('protected.html', "PROTECTED\n");

$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%

    key_auth_consumers {
        jack  key=jack-key  credential=cred-jack;
    }

    map $http_x_acl_status  $acl_status  { "" 200; default $http_x_acl_status; }
    map $http_x_auth_status $auth_status { "" 200; default $http_x_auth_status; }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;
        add_header X-Result "[$auth_http_result]" always;
        auth_http_retry times=0 interval=10ms;

        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8092%%/acl/;
            proxy_set_header X-Ctl-Status $acl_status;
        }
        location /_auth/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8091%%/auth/;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Ctl-Status $auth_status;
        }

        location /all/ {
            key_auth on;
            auth_http_acl /_acl/all method=get params=clientid=%c,topic=%t;
            auth_http_client_id $key_auth_consumer;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /any/ {
            satisfy any;
            key_auth on;
            auth_http_acl /_acl/any method=get params=clientid=%c;
            auth_http_client_id $key_auth_consumer;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /three/ {
            key_auth on;
            auth_request /_auth/three;
            auth_http_acl /_acl/three method=get params=clientid=%c;
            auth_http_client_id $key_auth_consumer;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
    }
}
EOF2

$t->run_auth_service(8091);
$t->run_backend(8092, name => 'acl', mode => 'auth');
$t->run_echo_server(8093);
$t->run;

sub hits { my @r = $t->requests($_[0]); return scalar @r }

# [uri, key, auth_request status, ACL status, expected, auth asked, ACL asked, result]
my @matrix = (
    ['/all/x',   'jack-key', undef, 200, 200, 0, 1, 'allow'],
    ['/all/x',   'jack-key', undef, 403, 403, 0, 1, 'deny'],
    ['/all/x',   undef,      undef, 200, 401, 0, 0, ''],
    ['/all/x',   'wrong',    undef, 200, 401, 0, 0, ''],
    ['/any/x',   'jack-key', undef, 403, 200, 0, 0, ''],
    ['/any/x',   undef,      undef, 200, 200, 0, 1, 'allow'],
    ['/any/x',   undef,      undef, 403, 401, 0, 1, 'deny'],
    ['/three/x', 'jack-key', 200,   200, 200, 1, 1, 'allow'],
    ['/three/x', 'jack-key', 403,   200, 403, 1, 0, ''],
    ['/three/x', 'jack-key', 200,   403, 403, 1, 1, 'deny'],
    ['/three/x', undef,      200,   200, 401, 0, 0, ''],
);

for my $row (@matrix) {
    my ($uri, $key, $auth, $acl, $status, $auth_n, $acl_n, $result) = @$row;
    my $n = "$uri key=" . ($key // '-') . ' auth_request=' . ($auth // '-') . " acl=$acl";
    $t->clear_requests($_) for qw(auth acl echo);
    my $r = http_get($uri, headers => ["X-Acl-Status: $acl",
                                       defined $auth ? ("X-Auth-Status: $auth") : (),
                                       defined $key ? ("apikey: $key") : ()]);
    is(http_status($r), $status, "$n: $status");
    is(hits('auth'), $auth_n, "$n: auth_request asked $auth_n time(s)");
    is(hits('acl'), $acl_n, "$n: ACL asked $acl_n time(s)");
    is(http_header($r, 'X-Result'), "[$result]", "$n: \$auth_http_result '$result'");
    is(hits('echo'), $status == 200 ? 1 : 0, "$n: upstream " . ($status == 200 ? 'reached' : 'not reached'));
    like(http_body($r), qr/API key/, "$n: key_auth's JSON body") if $status == 401;
}

# the consumer key_auth identified is the ACL's %c, and its headers reach the service
$t->clear_requests('acl');
http_get('/all/a/b', headers => ['apikey: jack-key', 'X-Consumer-Username: forged']);
my @a = $t->requests('acl');
is($a[0]{query}, 'clientid=jack&topic=%2Fall%2Fa%2Fb', 'key_auth consumer is %c') if @a;
is(AGTest::req_header($a[0], 'X-Consumer-Username'), 'jack', 'the ACL service sees X-Consumer-Username') if @a;
is(scalar(my @x = AGTest::req_header($a[0], 'X-Consumer-Username')), 1, 'the forged copy is gone') if @a;

$t->done;
