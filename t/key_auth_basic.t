#!/usr/bin/perl
# key_auth: where the key is read from (header first, query only when the
# header is absent), the exact 401 responses, sha256 keys, several keys per
# consumer, include inside the consumer block, on/off inheritance.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;

$t->write_file('static.html', "STATIC\n");
$t->write_file('more-consumers.conf', <<'EOF2');
bob key=bob-key credential=cred-bob;
EOF2
$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_consumers {
        jack key=jack-key credential=cred-jack custom_id=495aec6a;
        jack key=jack-second-key credential=cred-jack-2;
        # sha256("hashed-key")
        hashed key=sha256:%%HASHED%%;
        spacey "key=a key+with%20odd";
        include %%TESTDIR%%/more-consumers.conf;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        location /echo/ {
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /static.html {
            key_auth on;
            root %%TESTDIR%%;
        }
        location /custom/ {
            key_auth on;
            key_auth_header X-Api-Token;
            key_auth_query token;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /open/ {
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /off/ {
            key_auth on;
            location /off/inner/ {
                key_auth off;
                proxy_pass http://127.0.0.1:%%PORT_8082%%;
            }
        }
    }
}
EOF2
{
    # the digest of the key "hashed-key", written into the config
    require Digest::SHA;
    my $conf = $t->read_file('nginx.conf');
    my $d = Digest::SHA::sha256_hex('hashed-key');
    $conf =~ s/%%HASHED%%/$d/;
    $t->write_file('nginx.conf', $conf);
}
$t->run_echo_server(8082);
$t->run;

my $MISSING = '{"message":"Missing API key found in request"}';
my $INVALID = '{"message":"Invalid API key in request"}';

sub denied {
    my ($r, $body, $name) = @_;
    is(http_status($r), 401, "$name: 401");
    is(http_body($r), $body, "$name: body");
    is(http_header($r, 'Content-Type'), 'application/json', "$name: content type");
    is(http_header($r, 'WWW-Authenticate'), 'apikey realm="key"', "$name: challenge");
    is(http_header($r, 'Content-Length'), length $body, "$name: content length");
}

sub allowed {
    my ($r, $consumer, $name) = @_;
    is(http_status($r), 200, "$name: 200");
    my $j = json_body($r);
    my @u = map { $_->[1] } grep { lc $_->[0] eq 'x-consumer-username' } @{ $j->{headers} || [] };
    is("@u", $consumer, "$name: consumer $consumer");
    return $j;
}

# 2. missing and invalid keys
denied(http_get('/echo/x'), $MISSING, 'no key');
denied(http_get('/static.html'), $MISSING, 'no key, static');
denied(http_get('/echo/x', headers => ['apikey: nope']), $INVALID, 'wrong header key');
denied(http_get('/echo/x?apikey=nope'), $INVALID, 'wrong query key');
denied(http_get('/echo/x?apikey='), $INVALID, 'empty query key');
denied(http_get('/echo/x', headers => ['apikey: ']), $INVALID, 'empty header key');
denied(http_get('/echo/x?apikey'), $MISSING, 'query name without "=" is no key');
denied(http_get('/echo/x', method => 'POST', headers => ['Content-Length: 0']), $MISSING, 'POST');

my $r = http_get('/echo/x', method => 'HEAD');
is(http_status($r), 401, 'HEAD: 401');
is(http_body($r), '', 'HEAD: no body');

$r = http2_request('/echo/x');
is(http_status($r), 401, 'h2: 401');
is(http_body($r), $MISSING, 'h2: body');
is(http_header($r, 'content-type'), 'application/json', 'h2: content type');

# 1. header first; query only when the header is absent
allowed(http_get('/echo/x', headers => ['apikey: jack-key']), 'jack', 'header key');
allowed(http_get('/echo/x', headers => ['APIKEY: jack-key']), 'jack', 'header name is case-insensitive');
allowed(http_get('/echo/x?apikey=jack-key'), 'jack', 'query key');
allowed(http_get('/echo/x?a=1&apikey=jack-key&b=2'), 'jack', 'query key among others');
denied(http_get('/echo/x?apikey=jack-key', headers => ['apikey: nope']), $INVALID,
       'wrong header wins over a valid query key');
allowed(http_get('/echo/x?apikey=nope', headers => ['apikey: jack-key']), 'jack',
        'valid header, wrong query: header decides');
$r = http_get('/static.html', headers => ['apikey: jack-key']);
is(http_status($r), 200, 'static file with key');
is(http_body($r), "STATIC\n", 'static body');
$r = http2_request('/echo/x', headers => ['apikey: jack-key']);
is(http_status($r), 200, 'h2 with key');

# several keys, sha256 keys, include, percent-decoded query values
allowed(http_get('/echo/x', headers => ['apikey: jack-second-key']), 'jack', 'second key');
allowed(http_get('/echo/x', headers => ['apikey: hashed-key']), 'hashed', 'sha256: key');
denied(http_get('/echo/x', headers => ["apikey: sha256:" . Digest::SHA::sha256_hex('hashed-key')]),
       $INVALID, 'the digest itself is not a key');
allowed(http_get('/echo/x', headers => ['apikey: bob-key']), 'bob', 'included consumer');
allowed(http_get('/echo/x', headers => ['apikey: a key+with%20odd']), 'spacey', 'header taken literally');
allowed(http_get('/echo/x?apikey=a%20key%2Bwith%2520odd'), 'spacey', 'query value percent-decoded');

# custom header and argument names
allowed(http_get('/custom/x', headers => ['X-Api-Token: jack-key']), 'jack', 'custom header');
allowed(http_get('/custom/x?token=jack-key'), 'jack', 'custom query');
denied(http_get('/custom/x', headers => ['apikey: jack-key']), $MISSING, 'default header not read');
denied(http_get('/custom/x?apikey=jack-key'), $MISSING, 'default query not read');

# off / unprotected locations
is(http_status(http_get('/open/x')), 200, 'no key_auth: open');
is(http_status(http_get('/off/inner/x')), 200, 'key_auth off inside an on location');

# no upstream request for refused ones
$t->clear_requests('echo');
http_get('/echo/refused');
is(scalar(grep { $_->{path} eq '/echo/refused' } $t->requests('echo')), 0,
   'refused request never reaches the upstream');

$t->done;
