#!/usr/bin/perl
# key_auth: what the upstream is told (X-Consumer-Username,
# X-Credential-Identifier, X-Consumer-Custom-Id, only when set; client copies
# always removed), the $key_auth_* variables, and key_auth_hide_credentials
# for the header and for the query argument (every other argument keeps its
# order and exact encoding).

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;

$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    log_format keys '$uri c=$key_auth_consumer k=$key_auth_credential i=$key_auth_custom_id';
    key_auth_consumers {
        jack key=jack-key credential=cred-jack custom_id=495aec6a;
        plain key=plain-key;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        access_log %%TESTDIR%%/keys.log keys;
        location /echo/ {
            key_auth on;
            proxy_set_header X-Var "$key_auth_consumer|$key_auth_credential|$key_auth_custom_id";
            proxy_set_header X-UA-Var $http_user_agent;
            proxy_set_header X-Cookie-Var $http_cookie;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /hide/ {
            key_auth on;
            key_auth_hide_credentials on;
            proxy_set_header X-UA-Var $http_user_agent;
            proxy_set_header X-Cookie-Var $http_cookie;
            proxy_set_header X-Args-Var $args;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /hide-uri/ {
            key_auth on;
            key_auth_hide_credentials on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%/rewritten/;
        }
        location /hide-auth/ {
            key_auth on;
            key_auth_header Authorization;
            key_auth_hide_credentials on;
            proxy_set_header X-Auth-Var "[$http_authorization]";
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /open/ {
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
    }
}
EOF2
$t->run_echo_server(8082);
$t->run;

sub hdrs {
    my ($j, $name) = @_;
    return [map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ $j->{headers} || [] }];
}

my @FORGED = ('X-Consumer-Username: mallory', 'X-Credential-Identifier: forged',
              'X-Consumer-Custom-Id: forged', 'x-consumer-username: mallory2');

# 3. headers for the upstream
my $j = json_body(http_get('/echo/x', headers => ['apikey: jack-key']));
is_deeply(hdrs($j, 'X-Consumer-Username'), ['jack'], 'username');
is_deeply(hdrs($j, 'X-Credential-Identifier'), ['cred-jack'], 'credential');
is_deeply(hdrs($j, 'X-Consumer-Custom-Id'), ['495aec6a'], 'custom id');
is_deeply(hdrs($j, 'X-Var'), ['jack|cred-jack|495aec6a'], 'variables usable by proxy_set_header');
is_deeply(hdrs($j, 'apikey'), ['jack-key'], 'hide off: key header reaches the upstream');

$j = json_body(http_get('/echo/x', headers => ['apikey: plain-key', @FORGED]));
is_deeply(hdrs($j, 'X-Consumer-Username'), ['plain'], 'forged username replaced');
is_deeply(hdrs($j, 'X-Credential-Identifier'), [], 'forged credential removed (consumer has none)');
is_deeply(hdrs($j, 'X-Consumer-Custom-Id'), [], 'forged custom id removed (consumer has none)');
is_deeply(hdrs($j, 'X-Var'), ['plain||'], 'unset variables are empty');

$j = json_body(http_get('/echo/x', headers => [@FORGED, 'apikey: jack-key']));
is_deeply(hdrs($j, 'X-Consumer-Username'), ['jack'], 'forged before key: replaced');
is_deeply(hdrs($j, 'X-Credential-Identifier'), ['cred-jack'], 'forged credential overwritten');
is_deeply(hdrs($j, 'X-Consumer-Custom-Id'), ['495aec6a'], 'forged custom id overwritten');

# removal keeps nginx's cached header pointers right (User-Agent and the
# Cookie chain sit after removed headers)
$j = json_body(http_get('/echo/x', headers => [
    'X-Consumer-Username: m', 'Cookie: a=1', 'X-Consumer-Custom-Id: f', 'User-Agent: agent/1',
    'Cookie: b=2', 'apikey: jack-key', 'X-Consumer-Username: m2', 'X-Last: z']));
is_deeply(hdrs($j, 'User-Agent'), ['agent/1'], 'user agent kept');
is_deeply(hdrs($j, 'X-UA-Var'), ['agent/1'], '$http_user_agent (cached pointer) right');
is_deeply(hdrs($j, 'Cookie'), ['a=1', 'b=2'], 'cookies kept');
is_deeply(hdrs($j, 'X-Cookie-Var'), ['a=1; b=2'], '$http_cookie (cached chain) right');
is_deeply(hdrs($j, 'X-Last'), ['z'], 'last header kept');
is_deeply(hdrs($j, 'Host'), ['127.0.0.1:' . $t->port(8082)], 'host as proxy sets it');

# no key_auth: not our business
$j = json_body(http_get('/open/x', headers => ['X-Consumer-Username: someone']));
is_deeply(hdrs($j, 'X-Consumer-Username'), ['someone'], 'unprotected location untouched');

# variables reach the access log
my $log = $t->read_file('keys.log');
like($log, qr{^/echo/x c=jack k=cred-jack i=495aec6a$}m, 'access log: all three variables');
like($log, qr{^/echo/x c=plain k=- i=-$}m, 'access log: only the consumer (unset: "-")');
like($log, qr{^/open/x c=- k=- i=-$}m, 'access log: unprotected location');

# 4. hide credentials: header
$j = json_body(http_get('/hide/x?apikey=other&b=1', headers => [
    'Cookie: a=1', 'apikey: jack-key', 'User-Agent: agent/2', 'APIKEY: second', 'Cookie: c=3']));
is_deeply(hdrs($j, 'X-Consumer-Username'), ['jack'], 'hide header: allowed');
is_deeply(hdrs($j, 'apikey'), [], 'hide header: every apikey header removed');
is($j->{uri}, '/hide/x?apikey=other&b=1', 'hide header: query (not the source) untouched');
is_deeply(hdrs($j, 'X-UA-Var'), ['agent/2'], 'hide header: $http_user_agent right');
is_deeply(hdrs($j, 'X-Cookie-Var'), ['a=1; c=3'], 'hide header: $http_cookie right');

# 4. hide credentials: query argument, exact bytes of the others
for my $case (
    ['/hide/x?apikey=jack-key', '/hide/x'],
    ['/hide/x?apikey=jack-key&a=1', '/hide/x?a=1'],
    ['/hide/x?z=%2f%2F+x&apikey=jack-key&a=1&a=0&&b&c=%zz', '/hide/x?z=%2f%2F+x&a=1&a=0&&b&c=%zz'],
    ['/hide/p%61th%2Fx/?b=2&apikey=jack-key', '/hide/p%61th%2Fx/?b=2'],
    ['/hide/x?b=2&ApiKey=jack-key&apikey=again', '/hide/x?b=2'],
) {
    my ($in, $want) = @$case;
    $j = json_body(http_get($in));
    is($j->{uri}, $want, "hide query: $in -> $want");
}
$j = json_body(http_get('/hide/x?q=1&apikey=jack-key', headers => ['User-Agent: ua3']));
is_deeply(hdrs($j, 'X-Args-Var'), ['q=1'], 'hide query: $args is the edited one');
is_deeply(hdrs($j, 'X-UA-Var'), ['ua3'], 'hide query: headers untouched');
$j = json_body(http_get('/hide-uri/x?q=%41&apikey=jack-key&r'));
is($j->{uri}, '/rewritten/x?q=%41&r', 'hide query with proxy_pass URI');

# hide off: both reach the upstream untouched
$j = json_body(http_get('/echo/x?z=%2f&apikey=jack-key&a'));
is($j->{uri}, '/echo/x?z=%2f&apikey=jack-key&a', 'hide off: query untouched');

# hiding a header nginx caches (Authorization)
$j = json_body(http_get('/hide-auth/x', headers => ['Authorization: jack-key', 'X-After: 1']));
is_deeply(hdrs($j, 'X-Consumer-Username'), ['jack'], 'Authorization as key header');
is_deeply(hdrs($j, 'Authorization'), [], 'Authorization removed');
is_deeply(hdrs($j, 'X-Auth-Var'), ['[]'], '$http_authorization empty after removal');
is_deeply(hdrs($j, 'X-After'), ['1'], 'following header kept');

$t->done;
