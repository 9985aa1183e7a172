#!/usr/bin/perl
# key_auth at nginx's seams (issue 9, §2 and the full zone of item 1):
# limit_status=401/403 refused at nginx -t (satisfy any could override
# them); a key_auth_header with "_" warned about unless
# underscores_in_headers is on; a full zone's 503 repeated by the key_auth
# location error_page sends the request to.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;

# limit_status=401 / 403: [emerg] naming the attribute and value, FILE:LINE
for my $status (401, 403) {
    my ($rc, $out, $path) = $t->nginx_t(<<"EOF");
%%TEST_GLOBALS%%
events {}
http {
    key_auth_zone key_auth 1m;
    key_auth_consumers {
        q key=q-key limit=1/1h limit_status=$status;
    }
}
EOF
    isnt($rc, 0, "limit_status=$status: nginx -t fails");
    like($out, qr/\[emerg\] key_auth_consumers: consumer "q": invalid "limit_status" value "$status": .*satisfy any.* in \Q$path\E:6/,
         "limit_status=$status: the message names the value and the line") or diag($out);
}
my ($rc, $out) = $t->nginx_t(<<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    key_auth_zone key_auth 1m;
    key_auth_consumers { q key=q-key limit=1/1h limit_status=429; }
}
EOF
is($rc, 0, 'limit_status=429 is fine') or diag($out);

# a zone nginx could not map: [emerg] with FILE:LINE, not mmap()'s [alert]
for my $size ('1000000000000000', '65537m') {
    my ($zrc, $zout, $zpath) = $t->nginx_t(<<"EOF");
%%TEST_GLOBALS%%
events {}
http {
    key_auth_zone key_auth $size;
}
EOF
    isnt($zrc, 0, "key_auth_zone $size: nginx -t fails");
    like($zout, qr/\[emerg\] zone "key_auth" is too large: $size \(at most 65536m\) in \Q$zpath\E:4/,
         "key_auth_zone $size: too large, FILE:LINE") or diag($zout);
    unlike($zout, qr/\[alert\]/, "key_auth_zone $size: no [alert]");
}

# key_auth_header with an underscore
my $path;
($rc, $out, $path) = $t->nginx_t(<<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%% key_auth_consumers { c key=k; }
    key_auth_header api_key;
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location / { key_auth on; }
        location /x/ { key_auth on; }
    }
}
EOF
is($rc, 0, 'key_auth_header api_key: not an error') or diag($out);
my @warn = grep { /\[warn\].*key_auth_header api_key.*underscores_in_headers on/ } split /\n/, $out;
is(scalar @warn, 1, 'one [warn] about the underscore') or diag($out);
like($warn[0] // '', qr/in \Q$path\E:5/, 'the warning names the directive\'s line');
($rc, $out) = $t->nginx_t(<<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%% key_auth_consumers { c key=k; }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        underscores_in_headers on;
        location / { key_auth on; key_auth_header api_key; }
    }
}
EOF
is($rc, 0, 'with underscores_in_headers on: fine');
unlike($out, qr/\[warn\].*key_auth_header/, 'with underscores_in_headers on: no warning') or diag($out);

# a full zone: 503, and the same 503 from the key_auth location error_page
# sends the request to (the upstream never asked)
my $n = 600;
$t->write_file('many.conf', join '', map { "c$_ key=k$_ limit=5/1m;\n" } 1 .. $n);
$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_zone small 32k;
    key_auth_consumers { include %%TESTDIR%%/many.conf; }
    server {
        listen 127.0.0.1:%%PORT_8180%%;
        location / {
            key_auth on;
            error_page 503 = @fb;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location @fb {
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
    }
}
EOF
$t->expect_errors(qr/key_auth zone is full/);
$t->run_echo_server(8082);
$t->run;
my ($room) = map { /room for (\d+) limited consumers/ ? $1 : () } $t->grep_log(qr/room for/);
ok($room && $room < $n, "small zone has room for $room counters");
$room //= $n;
for my $i (1 .. $room) {
    http_get('/x', headers => ["apikey: k$i"], port => $t->port(8180));
}
$t->clear_requests('echo');
for my $v (['GET', '1.1'], ['GET', '1.0'], ['HEAD', '1.1']) {
    my $r = http_get('/x', headers => ['apikey: k' . ($room + 1)], port => $t->port(8180),
                     method => $v->[0], version => $v->[1]);
    is(http_status($r), 503, "zone full ($v->[0] $v->[1]): 503 again after error_page 503 = \@fb");
}
is(scalar(() = $t->requests('echo')), 0, 'zone full: the upstream was not asked');
$t->done;
