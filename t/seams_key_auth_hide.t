#!/usr/bin/perl
# key_auth_hide_credentials on at nginx's seams (issue 9, item 2): the key
# reaches no upstream and no variable ($request_uri, $args, $arg_*,
# $request, $query_string), whatever moved the request (rewrite ... last
# from another location, rewrite ... break, try_files, error_page), and
# stays out of the access log and nginx's own error-log context.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    log_format seams '$request|$request_uri|$args|$query_string|$arg_apikey|$status';
    key_auth_consumers {
        jack key=SECRET-jack credential=cred-jack;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        access_log %%TESTDIR%%/seams.log seams;
        key_auth_hide_credentials on;
        proxy_set_header X-Orig $request_uri;
        proxy_set_header X-Vars "$args|$arg_apikey|$query_string|$request";

        location /old/ {
            rewrite ^/old/(.*)$ /h/$1 last;
        }
        location /h/ {
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%$request_uri;
        }
        location /hb/ {
            key_auth on;
            rewrite ^/hb/(.*)$ /hbx/$1 break;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /ht/ {
            key_auth on;
            try_files /nope @happ;
        }
        location /he/ {
            key_auth on;
            proxy_intercept_errors on;
            error_page 404 = @happ;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /hu/ {
            key_auth on;
            error_page 401 /open/;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /open/ {
            proxy_pass http://127.0.0.1:%%PORT_8082%%$request_uri;
        }
        location @happ {
            key_auth on;
            proxy_set_header X-Echo-Ctl-Status "";
            proxy_set_header X-Orig $request_uri;
            proxy_set_header X-Vars "$args|$arg_apikey|$query_string|$request";
            proxy_pass http://127.0.0.1:%%PORT_8082%%$request_uri;
        }
        location /hs/ {
            set $before "$request_uri|$request";
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /herr/ {
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_dead%%;
        }
    }
}
EOF
$t->run_echo_server(8082);
$t->expect_errors(qr/connect\(\) failed/);
$t->run;

sub hdr {
    my ($j, $name) = @_;
    return join ',', map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ ($j || {})->{headers} || [] };
}

my @VARIANTS = (['GET', '1.1'], ['GET', '1.0'], ['HEAD', '1.1']);
my @CASES = (
    ['/old/x?a=1&apikey=SECRET-jack&b=%2F', 'rewrite ... last from another location', '/old/x?a=1&b=%2F', '/old/x?a=1&b=%2F'],
    ['/hb/x?apikey=SECRET-jack&b=2', 'rewrite ... break in the key_auth location', '/hbx/x?b=2', '/hb/x?b=2'],
    ['/ht/x?apikey=SECRET-jack', 'try_files -> @named', '/ht/x', '/ht/x'],
    ['/he/x?z=1&apikey=SECRET-jack', 'error_page 404 = @named', '/he/x?z=1', '/he/x?z=1'],
);
for my $case (@CASES) {
    my ($uri, $what, $upstream_uri, $request_uri) = @$case;
    for my $v (@VARIANTS) {
        my ($method, $version) = @$v;
        $t->clear_requests('echo');
        my $r = http_get($uri, method => $method, version => $version,
                         headers => ['X-Echo-Ctl-Status: 404']);
        my @seen = $t->requests('echo');
        my $j = $seen[-1];
        is(http_status($r), $uri =~ m{^/h[et]/} ? 200 : 404, "$what ($method $version): status");
        is($j && $j->{uri}, $upstream_uri, "$what ($method $version): upstream URI without the key")
            unless $uri =~ m{^/h[et]/};
        is(hdr($j, 'X-Orig'), $request_uri, "$what ($method $version): \$request_uri without the key");
        my $target = $request_uri;
        is(hdr($j, 'X-Vars'), join('|', ($target =~ /\?(.*)/ ? $1 : ''), '', ($target =~ /\?(.*)/ ? $1 : ''),
                                   "$method $target HTTP/$version"),
           "$what ($method $version): \$args, \$arg_apikey, \$query_string, \$request");
        unlike(join("\n", map { $_->{uri} . "\n" . join("\n", map { "@$_" } @{ $_->{headers} }) } @seen),
               qr/SECRET/, "$what ($method $version): the key reached no upstream request");
    }
}

# a refused request sent by error_page to a location without key_auth
$t->clear_requests('echo');
my $r = http_get('/hu/x?apikey=SECRET-wrong&c=3');
my ($j) = $t->requests('echo');
is($j && $j->{uri}, '/hu/x?c=3', 'refused, error_page 401 /open/: the invalid key is hidden too');

# the key as a header (hidden) plus a query that is not the key
$t->clear_requests('echo');
http_get('/ht/y?q=1', headers => ['apikey: SECRET-jack']);
($j) = $t->requests('echo');
is(hdr($j, 'apikey'), '', 'header key: removed');
is(hdr($j, 'X-Orig'), '/ht/y?q=1', 'header key: the query is kept');

# $request_uri and $request read (and cached by nginx) before key_auth ran
$t->clear_requests('echo');
http_get('/hs/x?apikey=SECRET-jack&s=1');
($j) = $t->requests('echo');
is(hdr($j, 'X-Orig'), '/hs/x?s=1', 'read before the access phase: $request_uri flushed');
is(hdr($j, 'X-Vars'), 's=1||s=1|GET /hs/x?s=1 HTTP/1.1', 'read before the access phase: $request flushed');

# HTTP/2: the request line nginx builds, and :path
$t->clear_requests('echo');
$r = http2_request('/hb/x?apikey=SECRET-jack&b=2');
($j) = $t->requests('echo');
is($j && $j->{uri}, '/hbx/x?b=2', 'HTTP/2: upstream URI without the key');
is(hdr($j, 'X-Orig'), '/hb/x?b=2', 'HTTP/2: $request_uri without the key');
is(hdr($j, 'X-Vars'), 'b=2||b=2|GET /hb/x?b=2 HTTP/2.0', 'HTTP/2: $request without the key');

# nginx's own error log context and the access log
http_get('/herr/x?apikey=SECRET-jack&e=1');
ok(scalar $t->grep_log(qr/connect\(\) failed.*request: "GET \/herr\/x\?e=1 HTTP\/1\.1"/),
   'error-log context: the request line without the key') or diag($t->error_log);
$t->stop;
# An nginx built --with-debug logs at debug level here: its debug lines,
# and the rewrite module's "matches"/"rewritten data" notices it then writes
# (as with rewrite_log on), show the request in the rewrite phase, before
# key_auth ran (README: lines written before key_auth ran keep the key).
my @later = grep { !/\[debug\]/ && !/\[notice\].* (?:matches|does not match) "|rewritten data: / }
    split /\n/, $t->error_log;
unlike(join("\n", @later), qr/SECRET/, 'error log (but lines of the rewrite phase): no key');
my $log = $t->read_file('seams.log');
like($log, qr{^GET /old/x\?a=1&b=%2F HTTP/1.1\|/old/x\?a=1&b=%2F\|a=1&b=%2F\|}m, 'access log: cleaned $request and $request_uri');
unlike($log, qr/SECRET/, 'access log: no key');

$t->done;
