#!/usr/bin/perl
# auth_http: what the superuser and ACL services receive.
#
# - GET: the parameters are the query string, appended after "&" to a query
#   already in the configured uri; no body, no Content-Type/Content-Length;
# - POST and PUT: an application/x-www-form-urlencoded body with the right
#   Content-Length; a query in the configured uri is kept;
# - every placeholder's value (%u %P %c %a %p %r %C %d %A %t %m, %%), nginx
#   variables in values, EMQX's default parameter lists, absent values sent
#   empty, and every value form-encoded whatever bytes it holds
#   (space -> "+", A-Za-z0-9*-._ kept, everything else %XX);
# - %C / %d from a TLS client certificate (generated here with openssl),
#   empty without one.

use strict;
use warnings;
use Test::More;
use MIME::Base64 qw(encode_base64);
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('auth_http is ours only');

my $PARAMS = 'u=%u,P=%P,c=%c,a=%a,p=%p,r=%r,C=%C,d=%d,A=%A,t=%t,m=%m,v=x$http_x_tenant';

$t->write_file_expand('nginx.conf', <<"EOF");
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        listen 127.0.0.1:%%PORT_8083%% ssl;
        http2 on;
        server_name localhost;

        ssl_certificate        %%TESTDIR%%/server.crt;
        ssl_certificate_key    %%TESTDIR%%/server.key;
        ssl_client_certificate %%TESTDIR%%/ca.crt;
        ssl_verify_client      optional;

        auth_http_retry      times=0 interval=10ms;
        auth_http_client_id  \$http_x_client_id;

        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8092%%/acl/;
        }
        location /_su/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8091%%/su/;
            proxy_set_header X-Ctl-Status 403;
        }

        location /get/ {
            auth_http_acl /_acl/get?x=1&y=a%20b method=get params="u=%u,c=%c,a=%a,p=%p,r=%r,C=%C,d=%d,A=%A,t=%t,m=%m,v=x\$http_x_tenant";
            auth_http_mountpoint tenant-\$http_x_tenant/;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /get-plain/ {
            auth_http_acl /_acl/plain method=GET params=a=%A;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /post/ {
            auth_http_acl /_acl/post params="$PARAMS";
            auth_http_mountpoint tenant-\$http_x_tenant/;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /post-q/ {
            auth_http_acl /_acl/postq?x=1 method=post params=a=%A;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /put/ {
            auth_http_acl /_acl/put method=put params="$PARAMS";
            auth_http_mountpoint tenant-\$http_x_tenant/;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /defaults/ {
            auth_http_superuser /_su/def;
            auth_http_acl       /_acl/def;
            auth_http_mountpoint mp/;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /literal/ {
            # quoted as one word, so that the value may hold a space
            auth_http_acl /_acl/lit "params=pct=100%%,sp=a b,name with space=%%u,e=";
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
    }
}
EOF

###############################################################################
# certificates: a CA, a server certificate, a client certificate

my $d = $t->testdir;
sub ossl {
    my $cmd = shift;
    system("openssl $cmd >>$d/openssl.log 2>&1") == 0
        or die "openssl $cmd failed (ci/setup.sh installs openssl): "
            . ($t->read_file('openssl.log') // '') . "\n";
}
$t->write_file('ext.cnf', "basicConstraints=CA:FALSE\n");
ossl("req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=authgate test CA' "
     . "-keyout $d/ca.key -out $d/ca.crt");
# client2's CN is "José, Jr. <x>" (UTF-8): nginx's $ssl_client_s_dn escapes
# it as "Jos\C3\A9\, Jr. \<x\>"; client3's CN really is "JosC3A9"
for my $who (['server', '/CN=localhost'],
             ['client', '/C=DE/O=Example, Inc./CN=alice smith'],
             ['client2', "/O=Ex/CN=Jos\xc3\xa9, Jr. <x>"],
             ['client3', '/O=Ex/CN=JosC3A9']) {
    my ($n, $subj) = @$who;
    ossl("req -utf8 -newkey rsa:2048 -nodes -subj '$subj' -keyout $d/$n.key -out $d/$n.csr");
    ossl("x509 -req -in $d/$n.csr -CA $d/ca.crt -CAkey $d/ca.key -CAcreateserial "
         . "-days 2 -extfile $d/ext.cnf -out $d/$n.crt");
}

$t->run_backend(8091, name => 'su', mode => 'auth');
$t->run_backend(8092, name => 'acl', mode => 'auth');
$t->run_echo_server(8093);
$t->run;

# form encoding as the module must do it: space -> +, A-Za-z0-9*-._ kept
sub fe {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9*\-._ ])/sprintf('%%%02X', ord $1)/ge;
    $s =~ tr/ /+/;
    return $s;
}

sub last_req {
    my ($name) = @_;
    my @r = $t->requests($name);
    return $r[-1] // {};
}

sub clear { $t->clear_requests($_) for qw(su acl echo) }

# the awkward values
my $USER = "\xc3\xbc ser&x";              # "ü ser&x" in UTF-8
my $PASS = "p:w=d %+/\xe2\x82\xac";       # a colon after the first is the password's
my $AUTH = 'Basic ' . encode_base64("$USER:$PASS", '');
my $CID  = "a&b=c d%e/\xc3\xbc+";
my @HDRS = ("Authorization: $AUTH", "X-Client-Id: $CID", 'X-Tenant: t1');

is(fe($USER), '%C3%BC+ser%26x', 'reference encoder: user');
is(fe($CID), 'a%26b%3Dc+d%25e%2F%C3%BC%2B', 'reference encoder: client id');

###############################################################################
# GET: every placeholder, query appended to the uri's own query

clear();
my $s = http_get('/get/a/../b%20c/./d?q=1', headers => \@HDRS, start => 1);
my $cport = $s->sockport;
my $r = http_end($s);
is(http_status($r), 200, 'GET ACL: allowed');
my $a = last_req('acl');
is($a->{method}, 'GET', 'GET ACL: method GET');
is($a->{path}, '/acl/get', 'GET ACL: path of the configured uri');
is($a->{query},
   'x=1&y=a%20b'
   . '&u=%C3%BC+ser%26x'
   . '&c=a%26b%3Dc+d%25e%2F%C3%BC%2B'
   . '&a=127.0.0.1'
   . "&p=$cport"
   . '&r=HTTP%2F1.1'
   . '&C=&d='
   . '&A=1'
   . '&t=%2Fget%2Fb+c%2Fd'
   . '&m=tenant-t1%2F'
   . '&v=xt1',
   'GET ACL: query = the uri\'s query & every placeholder, form-encoded');
is($a->{body_length}, 0, 'GET ACL: no body');
for my $h (qw(Content-Length Content-Type Transfer-Encoding)) {
    ok(!defined AGTest::req_header($a, $h), "GET ACL: no $h");
}
is(AGTest::req_header($a, 'X-Tenant'), 't1', 'GET ACL: the client\'s other headers are passed');

# GET with no query in the uri: the parameters are the whole query
clear();
$r = http_get('/get-plain/x');
is(http_status($r), 200, 'GET plain: allowed');
is(last_req('acl')->{query}, 'a=1', 'GET plain: query is just the parameters');
is(last_req('acl')->{uri}, '/acl/plain?a=1', 'GET plain: uri?params');

# absent values are sent empty
clear();
$r = http_get('/get/x');
is(last_req('acl')->{query},
   'x=1&y=a%20b&u=&c=&a=127.0.0.1&p=' . (last_req('acl')->{query} =~ /&p=(\d+)/)[0]
   . '&r=HTTP%2F1.1&C=&d=&A=1&t=%2Fget%2Fx&m=tenant-%2F&v=x',
   'GET: no Basic auth, no client id, no tenant: empty values');

# HTTP/1.0
clear();
$r = http("GET /get/x HTTP/1.0\r\nHost: localhost\r\n\r\n");
is(http_status($r), 200, 'HTTP/1.0: allowed');
like(last_req('acl')->{query}, qr/&r=HTTP%2F1.0&/, '%r is HTTP/1.0');

# HTTP/2
clear();
$r = http2_request('/get/h2');
like($r, qr{^HTTP/2 200}, 'HTTP/2: allowed');
like(last_req('acl')->{query}, qr/&r=HTTP%2F2.0&/, '%r is HTTP/2.0 over HTTP/2');

# Basic auth that is not Basic, or malformed: user and password empty
clear();
http_get('/get/x', headers => ['Authorization: Bearer abc']);
like(last_req('acl')->{query}, qr/&u=&c=/, 'Bearer credentials: %u empty');
http_get('/get/x', headers => ['Authorization: Basic !!!notbase64']);
like(last_req('acl')->{query}, qr/&u=&c=/, 'undecodable Basic credentials: %u empty');

###############################################################################
# POST and PUT: form body

for my $m (qw(POST PUT)) {
    my $loc = lc $m;
    for my $client (qw(GET POST)) {
        clear();
        my $s = $client eq 'GET'
            ? http_get("/$loc/x%3Fy", headers => \@HDRS, start => 1)
            : http_post("/$loc/x%3Fy", 'client-body', headers => [@HDRS, 'Expect: 100-continue'],
                        content_type => 'text/x-client', start => 1);
        my $cport = $s->sockport;
        # a POST with "Expect: 100-continue" first gets "100 Continue"
        my $r = (parse_responses(http_end($s)))[-1];
        my $n = "$m ACL, $client client";
        is(http_status($r), 200, "$n: allowed");
        my $a = last_req('acl');
        my $want = 'u=%C3%BC+ser%26x'
            . '&P=' . fe($PASS)
            . '&c=a%26b%3Dc+d%25e%2F%C3%BC%2B'
            . '&a=127.0.0.1'
            . "&p=$cport"
            . '&r=HTTP%2F1.1'
            . '&C=&d='
            . '&A=' . ($client eq 'GET' ? 1 : 2)
            . "&t=%2F$loc%2Fx%3Fy"
            . '&m=tenant-t1%2F'
            . '&v=xt1';
        is($a->{method}, $m, "$n: method $m");
        is($a->{uri}, "/acl/$loc", "$n: no query");
        is($a->{body}, $want, "$n: form body with every placeholder");
        is(AGTest::req_header($a, 'Content-Type'), 'application/x-www-form-urlencoded',
           "$n: Content-Type");
        is(AGTest::req_header($a, 'Content-Length'), length $want, "$n: Content-Length");
        is(scalar(my @cl = AGTest::req_header($a, 'Content-Length')), 1, "$n: one Content-Length");
        ok($a->{body_complete}, "$n: body complete");
        ok(!defined AGTest::req_header($a, 'Transfer-Encoding'), "$n: no Transfer-Encoding");
        ok(!defined AGTest::req_header($a, 'Expect'), "$n: no Expect");
        if ($client eq 'POST') {
            my $e = json_body($r) // {};
            is($e->{body_md5}, md5_hex('client-body'), "$n: the upstream got the client's body");
        }
    }
}
is(fe($PASS), 'p%3Aw%3Dd+%25%2B%2F%E2%82%AC', 'reference encoder: password');

# POST with a query in the uri: the query stays, the params are the body
clear();
http_get('/post-q/x');
my $pq = last_req('acl');
is($pq->{uri}, '/acl/postq?x=1', 'POST with ?x=1: the query is kept');
is($pq->{body}, 'a=1', 'POST with ?x=1: the params are the body');

###############################################################################
# %A per method

for my $case ([GET => 1], [HEAD => 1], [OPTIONS => 1], [POST => 2], [PUT => 2],
              [PATCH => 2], [DELETE => 2], [PROPFIND => 2]) {
    my ($m, $want) = @$case;
    clear();
    my $r = $m =~ /^(POST|PUT|PATCH)$/
        ? http_post('/get-plain/x', 'b', method => $m)
        : http_get('/get-plain/x', method => $m);
    is(http_status($r), 200, "$m: allowed");
    is(last_req('acl')->{query}, "a=$want", "%A for $m is $want");
}

###############################################################################
# EMQX's default parameters

clear();
$r = http_get('/defaults/p/q', headers => ["Authorization: Basic " . encode_base64('bob:pw', ''),
                                           'X-Client-Id: dev 1']);
is(http_status($r), 200, 'defaults: allowed');
my $su = last_req('su');
is($su->{method}, 'POST', 'defaults: superuser request is a POST');
is($su->{body}, 'clientid=dev+1&username=bob', 'defaults: superuser params clientid=%c,username=%u');
$a = last_req('acl');
is($a->{method}, 'POST', 'defaults: ACL request is a POST');
is($a->{body}, 'access=1&username=bob&clientid=dev+1&ipaddr=127.0.0.1&topic=%2Fdefaults%2Fp%2Fq&mountpoint=mp%2F',
   'defaults: ACL params access=%A,username=%u,clientid=%c,ipaddr=%a,topic=%t,mountpoint=%m');

###############################################################################
# literal text: %%, spaces, names are encoded too, empty values

clear();
http_get('/literal/x', headers => ["Authorization: Basic " . encode_base64('bob:pw', '')]);
is(last_req('acl')->{body}, 'pct=100%25&sp=a+b&name+with+space=%25u&e=',
   '"%%" is a literal percent, names and text encoded, empty value kept');

###############################################################################
# TLS client certificates: %C and %d

my $tls = port(8083);
sub curl_tls {
    my (@args) = @_;
    my $out = `curl -sk --http1.1 -o /dev/null -w '%{http_code}' @args https://127.0.0.1:$tls/get/tls 2>&1`;
    return $out;
}

clear();
is(curl_tls("--cert $d/client.crt --key $d/client.key"), '200', 'TLS with a client certificate: allowed');
my $q = last_req('acl')->{query} // '';
my ($C) = $q =~ /&C=([^&]*)/;
my ($dn) = $q =~ /&d=([^&]*)/;
is($C, 'alice+smith', '%C is the certificate\'s common name');
is($dn, fe('CN=alice smith,O=Example\, Inc.,C=DE'), '%d is the certificate subject (RFC 2253)');
like($q, qr/&r=HTTP%2F1.1&/, 'TLS: %r');

# RFC 2253 escapes are decoded: "\C3\A9" is the byte pair C3 A9, "\," a comma
clear();
is(curl_tls("--cert $d/client2.crt --key $d/client2.key"), '200', 'TLS, UTF-8 CN: allowed');
$q = last_req('acl')->{query} // '';
($C) = $q =~ /&C=([^&]*)/;
($dn) = $q =~ /&d=([^&]*)/;
is($C, 'Jos%C3%A9%2C+Jr.+%3Cx%3E', '%C decodes RFC 2253 hex pairs and escaped specials');
is($dn, fe('CN=Jos\C3\A9\, Jr. \<x\>,O=Ex'), '%d stays as nginx escapes it');

clear();
is(curl_tls("--cert $d/client3.crt --key $d/client3.key"), '200', 'TLS, CN "JosC3A9": allowed');
$q = last_req('acl')->{query} // '';
($C) = $q =~ /&C=([^&]*)/;
is($C, 'JosC3A9', '%C of a CN that really is "JosC3A9" differs from the one of "José"');

clear();
is(curl_tls(''), '200', 'TLS without a client certificate: allowed');
$q = last_req('acl')->{query} // '';
like($q, qr/&C=&d=&/, 'TLS without a client certificate: %C and %d empty');

$t->done;
