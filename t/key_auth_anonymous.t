#!/usr/bin/perl
# key_auth_anonymous_consumer: a missing or invalid key proceeds as that
# consumer; with hidden credentials both the header and the query argument
# are stripped. Configuration errors of the consumer block and directives.

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
    key_auth_consumers {
        jack key=jack-key credential=cred-jack custom_id=495aec6a;
        anonymous custom_id=anon-id;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        key_auth_anonymous_consumer anonymous;
        location /anon/ {
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /anon-hide/ {
            key_auth on;
            key_auth_hide_credentials on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /strict/ {
            key_auth on;
            key_auth_anonymous_consumer off;
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

my $r = http_get('/anon/x', headers => ['X-Credential-Identifier: forged']);
is(http_status($r), 200, 'no key: anonymous passes');
my $j = json_body($r);
is_deeply(hdrs($j, 'X-Consumer-Username'), ['anonymous'], 'no key: anonymous username');
is_deeply(hdrs($j, 'X-Consumer-Custom-Id'), ['anon-id'], 'anonymous custom id');
is_deeply(hdrs($j, 'X-Credential-Identifier'), [], 'anonymous has no credential (forged removed)');

$j = json_body(http_get('/anon/x', headers => ['apikey: wrong']));
is_deeply(hdrs($j, 'X-Consumer-Username'), ['anonymous'], 'invalid key: anonymous');
is_deeply(hdrs($j, 'apikey'), ['wrong'], 'hide off: invalid header passed on');

$j = json_body(http_get('/anon/x', headers => ['apikey: jack-key']));
is_deeply(hdrs($j, 'X-Consumer-Username'), ['jack'], 'valid key: the real consumer');

# with hidden credentials, both sources are stripped
$j = json_body(http_get('/anon-hide/x?a=1&apikey=wrong-q&b=2', headers => ['apikey: wrong-h']));
is_deeply(hdrs($j, 'X-Consumer-Username'), ['anonymous'], 'hide: anonymous');
is_deeply(hdrs($j, 'apikey'), [], 'hide: header stripped');
is($j->{uri}, '/anon-hide/x?a=1&b=2', 'hide: query argument stripped');

# a valid header key: only the header (the used source) is hidden
$j = json_body(http_get('/anon-hide/x?apikey=q', headers => ['apikey: jack-key']));
is_deeply(hdrs($j, 'X-Consumer-Username'), ['jack'], 'hide, valid header: jack');
is($j->{uri}, '/anon-hide/x?apikey=q', 'hide, valid header: query untouched');

# off cancels an inherited anonymous consumer
$r = http_get('/strict/x');
is(http_status($r), 401, 'anonymous off: 401');
is(http_body($r), '{"message":"Missing API key found in request"}', 'anonymous off: body');

# configuration errors: [emerg] ... in FILE:LINE
sub conf_error {
    my ($consumers, $extra, $want, $line, $name) = @_;
    my ($rc, $out, $file) = $t->nginx_t(<<"EOF2");
%%TEST_GLOBALS%%
events {}
http {
    key_auth_consumers {
$consumers
    }
    $extra
    server { listen 127.0.0.1:%%PORT_8090%%; location / { key_auth on; } }
}
EOF2
    isnt($rc, 0, "$name: nginx -t fails");
    like($out, qr/\[emerg\] .*\Q$want\E.* in \Q$file\E:$line\b/, "$name: message and FILE:LINE")
        or diag($out);
    return $out;
}

conf_error("        jack key=k;\n        bob key=k;", '',
           'the key of consumer "bob" is already the key of consumer "jack"', 6, 'same key twice');
my $out = conf_error("        jack key=secret-value;\n        bob key=secret-value;", '',
                     'already the key', 6, 'duplicate key');
unlike($out, qr/secret-value/, 'the key is never printed');
conf_error("        key=k credential=c;", '', 'consumer without a name', 5, 'no name');
conf_error("        \"\" key=k;", '', 'consumer without a name', 5, 'empty name');
conf_error("        jack key=k colour=blue;", '', 'unknown attribute "colour"', 5, 'unknown attribute');
conf_error("        jack key=k limit=3/30x;", '', 'invalid "limit" value "3/30x"', 5, 'bad window');
conf_error("        jack key=k limit=0/30s;", '', 'invalid "limit" value "0/30s"', 5, 'zero limit');
conf_error("        jack key=k limit=abc;", '', 'invalid "limit" value "abc"', 5, 'malformed limit');
conf_error("        jack key=k limit=1/1s limit_status=200;", 'key_auth_zone z 1m;',
           'invalid "limit_status" value "200"', 5, 'bad limit_status');
conf_error("        jack key=sha256:abcd;", '', 'invalid "key" value', 5, 'short sha256');
conf_error("        jack key=k;", 'key_auth_anonymous_consumer nobody;',
           'names "nobody", which is not a consumer', 7, 'unknown anonymous consumer');
conf_error("        jack key=k limit=1/1s;", '',
           'consumer "jack" has a "limit" but no "key_auth_zone"', '\d+', 'limit without zone');
conf_error("        jack key=k;", 'key_auth_zone z 1k;', 'zone "z" is too small', 7, 'tiny zone');
conf_error("        jack key=k;", 'key_auth_zone z abc;', 'invalid zone size "abc"', 7, 'bad size');
conf_error("        jack key=k;", 'key_auth maybe;', 'invalid value "maybe", it must be "on" or "off"', 7, 'bad flag');
conf_error("        jack key=k;", 'key_auth_header "a b";', '"key_auth_header": invalid name "a b"', 7, 'bad header name');
conf_error("        jack key=k;", 'key_auth_query "";', '"key_auth_query": invalid name ""', 7, 'empty query name');
conf_error("        jack key=k;", 'key_auth on; key_auth off;', '"key_auth" directive is duplicate', 7, 'duplicate');
conf_error("        jack key=k;", 'key_auth_zone z 1m; key_auth_zone y 1m;', '"key_auth_zone" directive is duplicate', 7,
           'second zone');

$t->write_file('inc-consumers.conf', "ok key=a;\nbad key=b nope;\n");
my $inc = $t->testdir . '/inc-consumers.conf';
my ($rc, $file);
($rc, $out) = $t->nginx_t(<<"EOF2");
%%TEST_GLOBALS%%
events {}
http {
    key_auth_consumers { include $inc; }
    server { listen 127.0.0.1:%%PORT_8090%%; location / { key_auth on; } }
}
EOF2
isnt($rc, 0, 'include: nginx -t fails');
like($out, qr/\[emerg\] .*consumer "bad": "nope" is not an attribute.* in \Q$inc\E:2\b/,
     'error inside an included file names that file and line');

$t->done;
