#!/usr/bin/perl
# Our module loaded into an nginx that has nginx's own C auth_request module
# compiled in (the C reference build, or Debian's nginx).  That module takes
# the "auth_request" directives before any loaded module can, so our module
# must refuse such configurations with a clear [emerg] instead of letting
# nginx run with our auth_request silently replaced — and must leave every
# configuration that does not use auth_request alone.
#
# The C nginx: TEST_NGINX_C_AUTH_REQUEST_BINARY, or the one ci/test.sh builds
# in target/cref.  Skipped with TEST_NGINX_MODULE=none.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $cref = $ENV{TEST_NGINX_C_AUTH_REQUEST_BINARY}
    // (sort { (stat $b)[9] <=> (stat $a)[9] }
        glob(AGTest::_find_root() . '/target/cref/debug/build/nginx-sys-*/out/objs/nginx'))[0];

my $t = do {
    local $ENV{TEST_NGINX_BINARY} = $cref if $cref;
    AGTest->new;
};
$t->skip_unless_module('needs our module (TEST_NGINX_MODULE=none)');
$t->skip_all('no nginx with the C auth_request module: build it as ci/test.sh does, '
    . 'or set TEST_NGINX_C_AUTH_REQUEST_BINARY')
    unless $cref && -x $cref;
$t->skip_all("$cref was not built with --with-http_auth_request_module")
    unless `$cref -V 2>&1` =~ /--with-http_auth_request_module/;

$t->write_file('p/index.html', "CONTENT\n");

sub conf {
    my ($server_extra, $location_extra) = @_;
    return <<"EOF2";
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        $server_extra
        location /p {
            $location_extra
            root %%TESTDIR%%;
        }
        location = /auth { return 204; }
    }
}
EOF2
}

my ($rc, $out) = $t->nginx_t(conf('', 'auth_request /auth;'));
isnt($rc, 0, 'auth_request in a location: nginx -t fails');
like($out, qr/\[emerg\] "auth_request" in location "\/p" would be handled by nginx's own ngx_http_auth_request_module/,
     'the [emerg] names the location and the C module');
like($out, qr/use an nginx built without --with-http_auth_request_module/, 'and says what to do');
like($out, qr/ in \S+nginx-t-\d+\.conf:\d+/, 'with FILE:LINE');

($rc, $out) = $t->nginx_t(conf('auth_request /auth;', ''));
isnt($rc, 0, 'auth_request at server level: nginx -t fails');
like($out, qr/"auth_request" in (?:a server block|location "\/p")/, 'names where it is used');

($rc, $out) = $t->nginx_t(conf('', 'auth_request_set $u $upstream_http_x_user;'));
isnt($rc, 0, 'auth_request_set alone: nginx -t fails too');

# the opt-in directives extend our auth_request only: refused, never ignored
for my $d ('auth_request_pass_status 302;', 'auth_request_allow_status 204;',
           'auth_request_client_header Set-Cookie;', 'auth_request_upstream_header X-User;',
           'auth_request_body on;') {
    (my $name = $d) =~ s/ .*//;
    ($rc, $out) = $t->nginx_t(conf('', $d));
    isnt($rc, 0, "$name without auth_request: nginx -t fails");
    like($out, qr/\[emerg\] "\Q$name\E" extends nginx-authgate's auth_request, which this nginx cannot use: it has nginx's own ngx_http_auth_request_module compiled in.* in \S+:\d+$/m,
        "$name: the [emerg] says why, with FILE:LINE") or diag($out);
}

($rc, $out) = $t->nginx_t(conf('', 'auth_request off;'));
is($rc, 0, '"auth_request off" only: accepted') or diag($out);

($rc, $out) = $t->nginx_t(conf('', ''));
is($rc, 0, 'no auth_request: accepted, the module loads') or diag($out);

# and that nginx runs with our module loaded, serving as usual
$t->write_file_expand('nginx.conf', conf('', ''));
$t->run;
my $r = http_get('/p/index.html');
is(http_status($r), 200, 'C-module nginx with our module loaded serves requests');
is(http_body($r), "CONTENT\n", 'content');

$t->done;
