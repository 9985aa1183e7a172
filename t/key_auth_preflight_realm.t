#!/usr/bin/perl
# key_auth (issue 14 §3, §4): key_auth_preflight and key_auth_realm.
#
#   * key_auth_preflight pass: a CORS preflight (OPTIONS with Origin and
#     Access-Control-Request-Method) goes through without a key, as Kong's
#     run_on_preflight=false: unchecked, no consumer, no quota, no
#     X-Consumer-* upstream (client-sent copies are still removed); any
#     other request is checked. check (default): a preflight needs a key
#     like any request;
#   * key_auth_realm: the realm of the 401's WWW-Authenticate challenge
#     (default apikey realm="key"), inherited, refused when it cannot be a
#     plain quoted string.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;
$t->write_file('x', "PROTECTED\n");

my $conf = <<'EOF2';
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_zone ka 1m;
    key_auth_consumers {
        jack key=jack-key limit=100/1h;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        key_auth on;
        add_header X-Consumer "[$key_auth_consumer]" always;
        location /check/ { proxy_pass http://127.0.0.1:%%PORT_8082%%; }
        location /pass/  { key_auth_preflight pass; proxy_pass http://127.0.0.1:%%PORT_8082%%; }
        location /realm/ {
            key_auth_realm "my api";
            alias %%TESTDIR%%/;
            location /realm/inner/ { alias %%TESTDIR%%/; }
            location /realm/own/   { key_auth_realm other; alias %%TESTDIR%%/; }
        }
        location /default/ { alias %%TESTDIR%%/; }
    }
}
EOF2
$t->write_file_expand('nginx.conf', $conf);
$t->run_echo_server(8082);
$t->run;

my @PRE = ('Origin: https://app.example', 'Access-Control-Request-Method: POST');
sub req { my ($m, $uri, @h) = @_; http_get($uri, method => $m, headers => \@h) }

# pass
$t->clear_requests('echo');
my $r = req('OPTIONS', '/pass/x', @PRE, 'X-Consumer-Username: admin');
is(http_status($r), 200, 'preflight pass: a preflight without a key is let through');
is(http_header($r, 'X-Consumer'), '[]', 'unchecked: no consumer');
is(scalar(() = http_header($r, 'X-RateLimit-Limit')), 0, 'no quota');
my ($seen) = $t->requests('echo');
is(AGTest::req_header($seen, 'X-Consumer-Username'), undef, 'the client\'s X-Consumer-Username never reaches the upstream');
is($seen->{method}, 'OPTIONS', 'the upstream gets the preflight');
$r = req('OPTIONS', '/pass/x', @PRE, 'apikey: jack-key');
is(http_status($r), 200, 'a preflight with a key: let through too');
is(http_header($r, 'X-Consumer'), '[]', 'unchecked, not identified');
is(http_status(req('OPTIONS', '/pass/x', $PRE[0])), 401, 'OPTIONS with Origin only: not a preflight: 401');
is(http_status(req('OPTIONS', '/pass/x', $PRE[1])), 401, 'OPTIONS with Access-Control-Request-Method only: 401');
is(http_status(req('OPTIONS', '/pass/x')), 401, 'plain OPTIONS: 401');
is(http_status(req('GET', '/pass/x', @PRE)), 401, 'GET with the CORS headers: 401');
is(http_status(req('POST', '/pass/x', @PRE)), 401, 'POST with the CORS headers: 401');
$r = req('GET', '/pass/x', 'apikey: jack-key');
is(http_status($r), 200, 'GET with a key: 200');
is(http_header($r, 'X-Consumer'), '[jack]', 'as jack');
$r = http2_request('/pass/x', method => 'OPTIONS', headers => \@PRE);
is(http_status($r), 200, 'HTTP/2: a preflight is let through');

# check (default)
is(http_status(req('OPTIONS', '/check/x', @PRE)), 401, 'preflight check (default): a preflight needs a key');
is(http_status(req('OPTIONS', '/check/x', @PRE, 'apikey: jack-key')), 200, 'check: with a key, 200');

# realm
$r = req('GET', '/realm/x');
is(http_status($r), 401, 'realm: 401');
is_deeply([http_header($r, 'WWW-Authenticate')], ['apikey realm="my api"'], 'key_auth_realm "my api"');
is(http_body($r), '{"message":"Missing API key found in request"}', 'the body is unchanged');
is_deeply([http_header(req('GET', '/realm/inner/x', 'apikey: nope'), 'WWW-Authenticate')], ['apikey realm="my api"'],
          'inherited');
is_deeply([http_header(req('GET', '/realm/own/x'), 'WWW-Authenticate')], ['apikey realm="other"'], 'a level of its own');
is_deeply([http_header(req('GET', '/default/x'), 'WWW-Authenticate')], ['apikey realm="key"'], 'default: realm="key"');
$r = http2_request('/realm/x');
is(http_header($r, 'WWW-Authenticate'), 'apikey realm="my api"', 'HTTP/2: the realm');

# refusals
for my $case (['key_auth_preflight maybe;', '"key_auth_preflight": invalid value "maybe" (pass or check)'],
              ['key_auth_preflight pass; key_auth_preflight check;', '"key_auth_preflight" directive is duplicate'],
              ['key_auth_preflight pass check;', 'invalid number of arguments in "key_auth_preflight" directive'],
              ['key_auth_realm "";', q{"key_auth_realm": invalid realm "" (not empty; printable ASCII without '"' or '\\')}],
              ['key_auth_realm "a\\"b";', q{"key_auth_realm": invalid realm "a"b" (not empty; printable ASCII without '"' or '\\')}],
              ['key_auth_realm a; key_auth_realm b;', '"key_auth_realm" directive is duplicate']) {
    my ($line, $msg) = @$case;
    (my $c = $conf) =~ s/(location \/default\/ \{)/$1 $line/ or die;
    my ($rc, $out, $file) = $t->nginx_t($c);
    isnt($rc, 0, "$line: refused");
    like($out, qr/\[emerg\] \Q$msg\E in \Q$file\E:22$/m, "$line: [emerg] at FILE:LINE") or diag $out;
}

$t->done;
