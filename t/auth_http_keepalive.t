#!/usr/bin/perl
# auth_http: the connections to the superuser and ACL services are kept
# alive (upstream keepalive) whatever their answers carry: both answers are
# read to their end, so a "403 not a superuser" page with a body does not
# make nginx close the connection (as it does for header-only subrequests).

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

    upstream su  { server 127.0.0.1:%%PORT_8091%%; keepalive 4; }
    upstream acl { server 127.0.0.1:%%PORT_8092%%; keepalive 4; }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location /_su/ {
            internal;
            proxy_pass http://su/su/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Ctl-Status $http_x_su_status;
            proxy_set_header X-Ctl-Body "not a superuser, and a body to say so";
        }
        location /_acl/ {
            internal;
            proxy_pass http://acl/acl/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Ctl-Status $http_x_acl_status;
        }
        location /p/ {
            auth_http_superuser /_su/x;
            auth_http_acl       /_acl/x;
            alias %%TESTDIR%%/;
        }
    }
}
EOF2

$t->run_backend(8091, name => 'su', mode => 'auth');
$t->run_backend(8092, name => 'acl', mode => 'auth');
$t->run;

for my $case ([403, 200, 200], [404, 403, 403], [200, 200, 200]) {
    my ($su, $acl, $status) = @$case;
    $t->clear_requests($_) for qw(su acl);
    for (1 .. 3) {
        my $r = http_get('/p/protected.html', headers => ["X-Su-Status: $su", "X-Acl-Status: $acl"]);
        is(http_status($r), $status, "superuser $su, ACL $acl: $status");
    }
    for my $svc ($su == 200 ? ('su') : ('su', 'acl')) {
        my @r = $t->requests($svc);
        is(scalar @r, 3, "superuser $su, ACL $acl: $svc asked 3 times");
        my %conns = map { $_->{conn} => 1 } @r;
        is(scalar keys %conns, 1, "superuser $su, ACL $acl: one connection to $svc for all three");
        my @seq = map { $_->{seq} } @r;
        is_deeply(\@seq, [$seq[0], $seq[0] + 1, $seq[0] + 2],
                  "superuser $su, ACL $acl: $svc requests one after the other on it (@seq)");
    }
}

$t->done;
