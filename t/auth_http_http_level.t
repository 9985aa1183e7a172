#!/usr/bin/perl
# auth_http configured at http level: every location of every server
# inherits it, including the service locations themselves, which is
# harmless (subrequests skip the access phase: no recursion); "off" opens a
# location again.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('auth_http is ours only');

$t->write_file('protected.html', "PROTECTED\n");

$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%

    auth_http_superuser /_su/x method=get params=u=%u;
    auth_http_acl       /_acl/x method=get params=t=%t;
    auth_http_retry     times=0 interval=1s;
    auth_http_nomatch   allow;

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;
        add_header X-Result "[$auth_http_result]" always;

        location /_su/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8091%%/su/;
            proxy_set_header X-Ctl-Status 403;
        }
        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8092%%/acl/;
            proxy_set_header X-Ctl-Status $http_x_acl_status;
            proxy_set_header X-Ctl-Body $http_x_acl_body;
        }
        location / {
            root %%TESTDIR%%;
        }
        location /open/ {
            auth_http_superuser off;
            auth_http_acl off;
            alias %%TESTDIR%%/;
        }
    }
}
EOF2

$t->run_backend(8091, name => 'su', mode => 'auth');
$t->run_backend(8092, name => 'acl', mode => 'auth');
$t->run;

sub hits { my @r = $t->requests($_[0]); return scalar @r }

my $r = http_get('/protected.html');
is(http_status($r), 200, 'http-level: allowed');
is(http_header($r, 'X-Result'), '[allow]', 'http-level: result allow');
is(hits('su'), 1, 'http-level: superuser asked once (no recursion)');
is(hits('acl'), 1, 'http-level: ACL asked once (no recursion)');
my @a = $t->requests('acl');
is($a[0]{query}, 't=%2Fprotected.html', 'http-level: the ACL got the inherited params') if @a;

$r = http_get('/protected.html', headers => ['X-Acl-Status: 200', 'X-Acl-Body: ignore']);
is(http_status($r), 200, 'http-level nomatch allow');
is(http_header($r, 'X-Result'), '[ignore]', 'http-level nomatch allow: ignore');

$r = http_get('/protected.html', headers => ['X-Acl-Status: 403']);
is(http_status($r), 403, 'http-level: ACL deny');

$t->clear_requests($_) for qw(su acl);
$r = http_get('/open/protected.html', headers => ['X-Acl-Status: 403']);
is(http_status($r), 200, 'both off: open');
is(hits('su') + hits('acl'), 0, 'both off: no service asked');

$t->done;
