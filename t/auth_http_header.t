#!/usr/bin/perl
# auth_http_header (issue 14 §7): extra headers with placeholders on every
# service request (authentication, superuser, ACL), EMQX's
# auth.http.header.*.
#
#   * the value is expanded per request: placeholders (%c, %u, %a, ...),
#     nginx variables, text; a header the client sent under that name is
#     replaced, never passed on;
#   * a block without auth_http_header inherits its parent's list; a block
#     with one has only its own;
#   * the decision cache files answers under the expanded headers too;
#   * a value that would carry CR/LF (from a variable) refuses the request
#     (500) instead of being sent;
#   * malformed names and values are refused at nginx -t (FILE:LINE).

use strict;
use warnings;
use Test::More;
use MIME::Base64;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('auth_http is ours only');
$t->write_file('x', "PROTECTED\n");

my $conf = <<'EOF2';
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    auth_cache_zone decisions 1m;
    map $http_x_evil $evil { default ""; bad "a\r\nX-Injected: 1"; }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        auth_http_header X-Server-Level srv-%a;
        auth_http_client_id $http_x_cid;
        location /_svc/ { internal; proxy_pass http://127.0.0.1:%%PORT_8081%%/; }
        location /h/ {
            auth_http_auth /_svc/auth;
            auth_http_acl  /_svc/acl method=get;
            auth_http_header X-Client-Id %c;
            auth_http_header X-User "user-%u %%";
            auth_http_header X-Tenant $http_x_tenant;
            alias %%TESTDIR%%/;
        }
        location /inherit/ {
            auth_http_acl /_svc/acl-i method=get;
            alias %%TESTDIR%%/;
        }
        location /cached/ {
            auth_http_acl /_svc/acl-c method=get params=topic=%t;
            auth_http_header X-Tenant $http_x_tenant;
            auth_http_cache decisions;
            auth_http_cache_valid any 1m;
            alias %%TESTDIR%%/;
        }
        location /evil/ {
            auth_http_acl /_svc/acl-e method=get;
            auth_http_header X-Evil $evil;
            alias %%TESTDIR%%/;
        }
    }
}
EOF2
$t->write_file_expand('nginx.conf', $conf);
$t->run_auth_service(8081);
$t->run;

my $basic = 'Authorization: Basic ' . encode_base64('alice:pw', '');
sub h { my ($req, $n) = @_; [AGTest::req_header($req, $n)] }

$t->clear_requests('auth');
my $r = http_get('/h/x', headers => [$basic, 'X-Cid: dev-7', 'X-Tenant: t1', 'X-Client-Id: forged']);
is(http_status($r), 200, 'served');
my @q = $t->requests('auth');
is_deeply([map { $_->{path} } @q], ['/auth', '/acl'], 'authentication and ACL asked');
for my $req (@q) {
    is_deeply(h($req, 'X-Client-Id'), ['dev-7'], "$req->{path}: X-Client-Id %c, the client's forged one replaced");
    is_deeply(h($req, 'X-User'), ['user-alice %'], "$req->{path}: X-User with %u and %%");
    is_deeply(h($req, 'X-Tenant'), ['t1'], "$req->{path}: X-Tenant from a variable");
    is_deeply(h($req, 'X-Server-Level'), [], "$req->{path}: the server's list is not added to the location's own");
}
$t->clear_requests('auth');
http_get('/h/x', headers => [$basic]);
($r) = $t->requests('auth');
is_deeply(h($r, 'X-Client-Id'), [''], 'an empty placeholder: an empty header');
$t->clear_requests('auth');
http2_request('/h/x', headers => [$basic, 'X-Cid: h2']);
($r) = $t->requests('auth');
is_deeply(h($r, 'X-Client-Id'), ['h2'], 'HTTP/2: expanded');

$t->clear_requests('auth');
http_get('/inherit/x');
($r) = $t->requests('auth');
is_deeply(h($r, 'X-Server-Level'), ['srv-127.0.0.1'], 'a location without auth_http_header inherits the server\'s');

# the cache: the same question with another header value is another question
$t->clear_requests('auth');
is(http_status(http_get('/cached/x', headers => ['X-Tenant: a'])), 200, 'cache: tenant a allowed');
is(http_status(http_get('/cached/x', headers => ['X-Tenant: a', 'X-Ctl-Status: 403'])), 200, 'cache: tenant a again: the cached answer');
is(http_status(http_get('/cached/x', headers => ['X-Tenant: b', 'X-Ctl-Status: 403'])), 403, 'cache: tenant b: asked, denied');
is(scalar $t->requests('auth'), 2, 'cache: the service was asked once per tenant');

# CR/LF from a variable
$t->clear_requests('auth');
$r = http_get('/evil/x', headers => ['X-Evil: bad']);
is(http_status($r), 500, 'a value with CR/LF: 500');
is(scalar $t->requests('auth'), 0, 'the service is not asked');
ok($t->grep_log(qr/\[error\].*auth_http: the value of auth_http_header "X-Evil" holds CR, LF or NUL; request refused/), '[error] line');
is(http_status(http_get('/evil/x')), 200, 'without it: served');

# refusals
for my $case (['auth_http_header "X Bad" v;', '"auth_http_header": invalid header name "X Bad"'],
              ['auth_http_header Content-Length 5;', '"auth_http_header": "Content-Length" cannot be set: it describes the service request itself or how its answer is encoded'],
              ['auth_http_header accept_encoding gzip;', '"auth_http_header": "accept_encoding" cannot be set'],
              ['auth_http_header Host x;', '"auth_http_header": "Host" cannot be set'],
              ['auth_http_header X-A 1; auth_http_header x-a 2;', '"auth_http_header": "x-a" is given twice in this block'],
              ['auth_http_header X-A %x;', '"auth_http_header": invalid value "%x": unknown placeholder "%x"'],
              ['auth_http_header X-A 10%;', '"auth_http_header": invalid value "10%": it ends with a lone "%"'],
              ['auth_http_header X-A "a\nb";', '"auth_http_header": the value of "X-A" holds control characters'],
              ['auth_http_header X-A;', 'invalid number of arguments in "auth_http_header" directive']) {
    my ($line, $msg) = @$case;
    (my $c = $conf) =~ s/(location \/evil\/ \{)/$1 $line/ or die;
    my ($rc, $out, $file) = $t->nginx_t($c);
    isnt($rc, 0, "$line: refused");
    like($out, qr/\[emerg\] \Q$msg\E.* in \Q$file\E:32$/m, "$line: [emerg] at FILE:LINE") or diag $out;
}

$t->done;
