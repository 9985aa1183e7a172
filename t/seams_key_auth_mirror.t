#!/usr/bin/perl
# key_auth edits a main request's headers while one of its subrequests is
# still running (issue 9, found by review): an unprotected location mirrors
# the request to a slow upstream, its own upstream answers with
# X-Accel-Redirect into a key_auth location, whose strip removes the
# client's forged identity headers. The mirror shares the main request's
# header list: it must keep seeing the headers it started with (and, under
# TEST_NGINX_VALGRIND=1 or ASan, no access to a moved element), while the
# key_auth upstream sees none of the forged ones.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;
use Time::HiRes qw(sleep);

my $t = AGTest->new->skip_unless_module;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    log_format mirror '$http_x_consumer_username|$http_cookie|$http_x_z';
    key_auth_consumers {
        jack key=jack-key credential=cred-jack;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location /mx/ {
            mirror /slow;
            proxy_set_header X-Hit main;
            proxy_set_header X-Echo-Ctl-Hdr "X-Accel-Redirect: /k/x";
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location = /slow {
            internal;
            # evaluated when the mirror ends, after the strip in /k/
            log_subrequest on;
            access_log %%TESTDIR%%/mirror.log mirror;
            proxy_set_header X-Hit mirror;
            proxy_set_header X-Echo-Ctl-Delay 0.4;
            proxy_set_header X-Cookie-Var $http_cookie;
            proxy_set_header X-Forged-Var $http_x_consumer_username;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /k/ {
            key_auth on;
            proxy_set_header X-Hit k;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
    }
}
EOF
$t->run_echo_server(8082);
$t->run;

sub by_hit {
    my ($hit) = @_;
    return grep { ((AGTest::req_header($_, 'X-Hit'))[0] // '') eq $hit } $t->requests('echo');
}

my @forged = map { "X-Consumer-Username: admin$_" } 1 .. 3;
my $r = http_get('/mx/x', headers => ['apikey: jack-key', 'Cookie: a=1', @forged, 'Cookie: b=2', 'X-Z: z']);
is(http_status($r), 200, 'redirected into the key_auth location: 200');

my ($k) = by_hit('k');
ok($k, 'the key_auth upstream was asked');
is_deeply([AGTest::req_header($k, 'X-Consumer-Username')], ['jack'],
          'the key_auth upstream sees only our identity');

# the mirror finishes after the strip
my $deadline = time + 5;
sleep 0.1 while !by_hit('mirror') && time < $deadline;
my ($m) = by_hit('mirror');
ok($m, 'the mirror was asked');
like((AGTest::req_header($m, 'X-Cookie-Var'))[0] // '', qr/a=1.*b=2/,
     'the mirror still sees the cookies it started with');
is_deeply([AGTest::req_header($m, 'Cookie')], ['a=1', 'b=2'], 'and its Cookie headers, unchanged');

# what the mirror's variables say when it ends, after /k/ stripped the main
# request's forged headers: the headers it started with, unchanged
$deadline = time + 5;
my $log = '';
while (time < $deadline) {
    $log = $t->read_file('mirror.log') // '';
    last if $log =~ /\n/;
    sleep 0.1;
}
my ($line) = split /\n/, $log;
like($line // '', qr/^admin1\b/, 'mirror, at its end: still the headers it started with ($http_x_consumer_username)');
like($line // '', qr/\|a=1; b=2\|z$/, 'mirror, at its end: $http_cookie and the header after the removed ones intact');

$t->done;
