#!/usr/bin/perl
# auth_cache_purge and auth_http_cache: every auth_http answer is filed
# under the client's user name (%u) and client id (%c), as keyed hashes, so
# that DELETE with "Auth-Cache-Username: jack" removes all of jack's
# answers (every service, every question, every client id) and
# "Auth-Cache-Client-Id: c3" all of that client id's; the next request asks
# the services again while other clients stay HITs. Key, user and client id
# tags never match one another (an auth_request key "jack" is not the user
# jack); several headers add up.

use strict;
use warnings;
use Test::More;
use MIME::Base64 qw(encode_base64);
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('the decision cache is ours only');
$t->write_file('protected.html', "PROTECTED\n");
$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    auth_cache_zone c 1m;
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;
        add_header X-Cache "[$auth_cache_status]" always;
        location /_su/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/su/;
            proxy_set_header X-Ctl-Status 403;
        }
        location /_acl/ { internal; proxy_pass http://127.0.0.1:%%PORT_8081%%/acl/; }
        location /api/ {
            auth_http_superuser /_su/check params=c=%c,u=%u;
            auth_http_acl       /_acl/check params=c=%c,u=%u,t=%t;
            auth_http_client_id $http_x_client_id;
            auth_http_retry     times=0 interval=10ms;
            auth_http_cache       c;
            auth_http_cache_valid any 1m;
            alias %%TESTDIR%%/;
        }
        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        location = /ar {
            auth_request /auth/ar;
            auth_request_cache c;
            auth_request_cache_key $http_x_key;
            auth_request_cache_valid 1m;
            alias %%TESTDIR%%/protected.html;
        }
        location = /_purge { allow 127.0.0.1; deny all; auth_cache_purge c; }
    }
}
EOF2
$t->run_auth_service(8081);
$t->run;

sub asked { scalar grep { $_->{path} =~ m{^/(su|acl)/} } $t->requests('auth') }
sub api {
    my ($user, $client, $topic) = @_;
    my $r = http_get("/api/$topic",
        headers => ['Authorization: Basic ' . encode_base64("$user:pw", ''), "X-Client-Id: $client"]);
    return http_status($r) . ' ' . http_header($r, 'X-Cache');
}
sub ar { my $r = http_get('/ar', headers => ['X-Key: jack']); http_status($r) . ' ' . http_header($r, 'X-Cache') }
sub purge { http_get('/_purge', method => 'DELETE', headers => [@_]) }
sub purged { my ($r) = @_; $r =~ /\r\n\r\npurged (\d+)\n$/ ? $1 : "none: $r" }

$t->write_file('x', "X\n");
$t->write_file('y', "Y\n");
# jack from two client ids, jill: each request asks superuser and acl
# (two entries); an auth_request entry keyed "jack"
for my $q (['jack', 'c1', 'x'], ['jack', 'c2', 'y'], ['jill', 'c3', 'x']) {
    is(api(@$q), '200 [MISS]', "@$q: miss");
    is(api(@$q), '200 [HIT]', "@$q: hit");
}
is(ar(), '200 [MISS]', 'auth_request key jack: miss');
is(ar(), '200 [HIT]', 'auth_request key jack: hit');
my $asked = asked();
is($asked, 6, 'the services were asked twice per client question');

# the exact request of the README
is(purged(purge('Auth-Cache-Username: jack')), 4, "user jack: his 4 answers (2 services x 2 questions)");
is(api('jill', 'c3', 'x'), '200 [HIT]', 'jill stays a hit');
is(ar(), '200 [HIT]', 'the auth_request key "jack" is not the user jack');
is(api('jack', 'c1', 'x'), '200 [MISS]', 'jack, c1: asked again');
is(asked(), $asked + 2, 'jack, c1: both services asked again');
is(api('jack', 'c2', 'y'), '200 [MISS]', 'jack, c2: asked again');
is(api('jack', 'c1', 'x'), '200 [HIT]', 'jack, c1: kept again');

is(purged(purge('Auth-Cache-Client-Id: c3')), 2, 'client id c3: its 2 answers');
is(api('jack', 'c1', 'x'), '200 [HIT]', 'another client id stays a hit');
$asked = asked();
is(api('jill', 'c3', 'x'), '200 [MISS]', 'c3: asked again');
is(asked(), $asked + 2, 'c3: both services asked again');

is(purged(purge('Auth-Cache-Key: jack')), 1, 'key jack: the auth_request entry only');
is(api('jack', 'c1', 'x'), '200 [HIT]', "the key jack is not the user jack");
is(ar(), '200 [MISS]', 'auth_request key jack: asked again');

is(purged(purge('Auth-Cache-Username: jill', 'Auth-Cache-Client-Id: c1')), 4,
   'user jill and client id c1 at once: 2 + 2');
is(api('jack', 'c2', 'y'), '200 [HIT]', 'jack from c2 stays');
is(api('jill', 'c3', 'x'), '200 [MISS]', 'jill again');
is(purged(purge('Auth-Cache-Username: jack', 'Auth-Cache-Username: jill')), 4,
   'two lines of one header: both users (2 + 2)');
is(api('jack', 'c2', 'y'), '200 [MISS]', 'jack from c2: asked again');
is(purged(purge('Auth-Cache-Purge: all', 'Auth-Cache-Username: nobody')), 3,
   'Auth-Cache-Purge: all wins over the others (jack from c2: 2, the auth_request key: 1)');
is(purged(purge('Auth-Cache-Username: nobody')), 0, 'an unknown user: 0');
is(purged(purge('Auth-Cache-Username:')), 0, 'an empty user: 0 (answers without a user carry no user tag)');

$t->done;
