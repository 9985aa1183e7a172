#!/usr/bin/perl
# Adversarial review of auth_cache_zone inactive=: using an entry keeps it
# from being removed as unused, never beyond its lifetime. An entry hit
# every 200 ms with inactive=1h and a 1 s validity expires at 1 s, for an
# allow and for a deny (a stale deny never outlives auth_request_cache_valid
# or auth_http_cache_valid), and the service's new answer is used then
# (times 4 under valgrind).

use strict;
use warnings;
use Test::More;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(sleep time);
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('the decision cache is ours only');
$t->write_file('protected.html', "PROTECTED\n");
$t->write_file('x', "X\n");
# The validity V (1 s; 4 s under valgrind, where one miss can take most of
# a second): every time below is a fraction of it.
my $V = AGTest::valgrind() ? 4 : 1;
(my $conf = <<'EOF2') =~ s/VALID/${V}s/g;
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    auth_cache_zone c 1m inactive=1h;
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;
        add_header X-Cache "[$auth_cache_status]" always;
        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Ctl-Status $http_x_answer;
        }
        location = /ar {
            auth_request /auth/ar;
            auth_request_cache c;
            auth_request_cache_key $http_x_key;
            auth_request_cache_valid 200 403 VALID;
            alias %%TESTDIR%%/protected.html;
        }
        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/acl/;
            proxy_set_header X-Ctl-Status $http_x_answer;
        }
        location /api/ {
            auth_http_acl /_acl/check params=u=%u,t=%t;
            auth_http_retry times=0 interval=10ms;
            auth_http_cache c;
            auth_http_cache_valid any VALID;
            alias %%TESTDIR%%/;
        }
    }
}
EOF2
$t->write_file_expand('nginx.conf', $conf);
$t->run_auth_service(8081);
$t->run;

sub result { my ($r) = @_; http_status($r) . ' ' . (http_header($r, 'X-Cache') // '') }

for my $case (['/ar', 'allow', ['X-Key: a'], 200, 403],
              ['/ar', 'deny', ['X-Key: d'], 403, 200],
              ['/api/x', 'auth_http allow', ['Authorization: Basic ' . encode_base64('jack:pw', '')], 200, 403],
              ['/api/x', 'auth_http deny', ['Authorization: Basic ' . encode_base64('jill:pw', '')], 403, 200]) {
    my ($uri, $name, $h, $first, $then) = @$case;
    my $start = time;
    is(result(http_get($uri, headers => [@$h, "X-Answer: $first"])), "$first [MISS]", "$name: stored");
    # stored between $start and $stored (a slow miss under valgrind): hits
    # are judged from the first, the expiry from the second
    my $stored = time;
    my ($hits, $stale) = (0, 0);
    # used every 200 ms (times V), the service now answering otherwise
    while (time - $start < 0.8 * $V) {
        sleep 0.2 * $V;
        my $r = result(http_get($uri, headers => [@$h, "X-Answer: $then"]));
        last if time - $start >= 0.95 * $V;    # too close to the bound to tell
        $r eq "$first [HIT]" ? $hits++ : $stale++;
    }
    ok($hits >= 2 && $stale == 0, "$name: hits within its validity ($hits)");
    sleep 1.2 * $V - (time - $stored) if time - $stored < 1.2 * $V;
    is(result(http_get($uri, headers => [@$h, "X-Answer: $then"])), "$then [EXPIRED]",
       "$name: expired at its validity although used and inactive=1h: the new answer");
}

$t->done;
