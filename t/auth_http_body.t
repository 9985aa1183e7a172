#!/usr/bin/perl
# auth_http: the client's body is never sent to, read for, or consumed by
# the superuser/ACL checks, and nothing the client said about its body
# (Content-Length, Transfer-Encoding, Content-Type, Expect) reaches them.
#
# POST client bodies -- small, 2 MB buffered to a temp file
# (client_body_buffer_size 1k), chunked, over HTTP/2 -- reach the protected
# upstream intact (md5) after a GET ACL check, after a POST ACL check, after
# superuser (PUT) + ACL checks, and after a retried ACL check (the first
# attempt fails, the request sleeps, the second succeeds).

use strict;
use warnings;
use Test::More;
use IO::Select;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('auth_http is ours only');

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        server_name localhost;
        client_body_buffer_size 1k;
        client_max_body_size 10m;

        auth_http_retry times=0 interval=10ms;

        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8092%%/acl/;
        }
        location /_su/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8091%%/su/;
            proxy_set_header X-Ctl-Status 404;
        }
        # fails the first request of each client request (keyed by X-Key)
        location /_flaky/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8092%%/flaky/;
            proxy_set_header X-Ctl-Fail-First 1;
            proxy_set_header X-Ctl-Fail-Key $http_x_key;
        }

        location /get-acl/ {
            auth_http_acl /_acl/get method=get params=a=%A,t=%t;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /post-acl/ {
            auth_http_acl /_acl/post params=a=%A,t=%t;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /su-acl/ {
            auth_http_superuser /_su/su method=put params=c=%c;
            auth_http_acl       /_acl/post params=a=%A,t=%t;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /retry-acl/ {
            auth_http_acl   /_flaky/post params=a=%A,t=%t;
            auth_http_retry times=2 interval=100ms;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
    }
}
EOF

$t->run_backend(8091, name => 'su', mode => 'auth');
$t->run_backend(8092, name => 'acl', mode => 'auth');
$t->run_echo_server(8093);
$t->run;

my $small = 'small-body-' . join('', 0 .. 9);
my $large = join '', map { sprintf "%07d\n", $_ } 0 .. (2 * 1024 * 1024 / 8);   # ~2 MB
my $key = 0;

for my $loc (qw(get-acl post-acl su-acl retry-acl)) {
    for my $case (['small', $small, 0], ['2 MB (temp file)', $large, 0],
                  ['chunked', $large, 1], ['HTTP/2', $large, 2]) {
        my ($what, $body, $mode) = @$case;
        my $n = "$loc, $what";
        $t->clear_requests($_) for qw(su acl echo);
        $key++;
        my @h = ("X-Key: k$key", 'X-Tenant: t');
        my $r = $mode == 2
            ? http2_request("/$loc/x", method => 'POST', body => $body,
                            headers => [@h, 'Content-Type: text/x-client'])
            : http_post("/$loc/x", $body, chunked => $mode, chunk_size => 100000,
                        content_type => 'text/x-client', headers => \@h);
        is(http_status($r), 200, "$n: allowed");
        my $e = json_body($r) // {};
        is($e->{body_length}, length $body, "$n: upstream got the whole body");
        is($e->{body_md5}, md5_hex($body), "$n: upstream got the body intact");
        my ($ct) = map { $_->[1] } grep { lc $_->[0] eq 'content-type' } @{ $e->{headers} || [] };
        is($ct, 'text/x-client', "$n: upstream got the client's Content-Type");

        my @checks = ($t->requests('su'), $t->requests('acl'));
        is(scalar @checks, $loc eq 'su-acl' || $loc eq 'retry-acl' ? 2 : 1, "$n: checks made");
        for my $c (@checks) {
            my $cn = "$n: $c->{server} $c->{method} $c->{path}";
            if ($c->{method} eq 'GET') {
                is($c->{body_length}, 0, "$cn: no body");
                ok(!defined AGTest::req_header($c, 'Content-Length'), "$cn: no Content-Length");
                ok(!defined AGTest::req_header($c, 'Content-Type'), "$cn: no Content-Type");
            } else {
                my $want = $c->{server} eq 'su' ? 'c=' : 'a=2&t=%2F' . $loc . '%2Fx';
                is($c->{body}, $want, "$cn: only our form body");
                is(AGTest::req_header($c, 'Content-Length'), length $want, "$cn: our Content-Length");
                is(AGTest::req_header($c, 'Content-Type'), 'application/x-www-form-urlencoded',
                   "$cn: our Content-Type");
            }
            ok(!defined AGTest::req_header($c, 'Transfer-Encoding'), "$cn: no Transfer-Encoding");
            is(AGTest::req_header($c, 'X-Tenant'), 't', "$cn: other client headers passed");
        }
    }
}

# a client that announces a body with Expect: 100-continue and sends it
# only after "100 Continue": the check does not ask for it, the upstream
# gets it
for my $loc (qw(get-acl post-acl)) {
    $t->clear_requests('acl');
    my $s = http("POST /$loc/expect HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                 . "Content-Length: 5\r\nExpect: 100-continue\r\n\r\n", start => 1);
    my $got = '';
    my $sel = IO::Select->new($s);
    while ($sel->can_read(5)) {
        last unless sysread($s, $got, 4096, length $got);
        last if $got =~ /\r\n\r\n/;
    }
    like($got, qr{^HTTP/1.1 100 Continue}, "$loc, Expect: 100 Continue only once the body is wanted");
    my @a = $t->requests('acl');
    is(scalar @a, 1, "$loc, Expect: the check came first");
    ok(!defined AGTest::req_header($a[0], 'Expect'), "$loc, Expect: not passed to the check") if @a;
    syswrite($s, 'hello');
    my $r = (parse_responses(http_end($s)))[-1];
    is($r->{status}, 200, "$loc, Expect: allowed");
    is((json_body($r) // {})->{body_md5}, md5_hex('hello'), "$loc, Expect: body delivered");
}

$t->done;
