#!/usr/bin/perl
# A purge revokes answers that were still being fetched when it ran. The
# attack: a request asks the service while it still allows (the answer is
# slow); the operator changes the service to deny and purges; the slow
# "allow" arrives after the purge. Were it stored, the revoked decision
# would answer HITs for its whole *_cache_valid time. The answer serves
# the request that asked for it, and is not kept: the next request asks
# again and gets the service's new deny. Every kind of purge (key, user,
# client id, all) counts; a waiter of that flight asks for itself.

use strict;
use warnings;
use Test::More;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(sleep);
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('the decision cache is ours only');
$t->write_file('protected.html', "PROTECTED\n");
$t->write_file('x', "X\n");
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
        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/acl/;
            proxy_set_header X-Ctl-Delay $http_x_delay;
            proxy_set_header X-Ctl-Status $http_x_answer;
        }
        location /api/ {
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
            proxy_set_header X-Ctl-Delay $http_x_delay;
            proxy_set_header X-Ctl-Status $http_x_answer;
        }
        location = /ar {
            auth_request /auth/ar;
            auth_request_cache c;
            auth_request_cache_key $http_x_key;
            auth_request_cache_valid 200 403 1m;
            alias %%TESTDIR%%/protected.html;
        }
        location = /_purge { allow 127.0.0.1; deny all; auth_cache_purge c; }
    }
}
EOF2
$t->run_auth_service(8081);
$t->run;

sub api_headers {
    my ($user, $client, @more) = @_;
    return ('Authorization: Basic ' . encode_base64("$user:pw", ''), "X-Client-Id: $client", @more);
}
sub result { my ($r) = @_; http_status($r) . ' ' . (http_header($r, 'X-Cache') // '') }
sub purge { http_get('/_purge', method => 'DELETE', headers => [@_]) }

# A slow allow for `uri` with `headers`, a purge while it is on its way,
# then the service denies: what do the slow request and the next one get?
sub race {
    my ($name, $uri, $headers, @purge) = @_;
    my $slow = http_get($uri, headers => [@$headers, 'X-Delay: 1', 'X-Answer: 200'], start => 1, timeout => 10);
    sleep 0.4;    # the question is at the service
    my $waiter = http_get($uri, headers => [@$headers, 'X-Answer: 200'], start => 1, timeout => 10);
    sleep 0.2;    # the waiter waits for the slow answer
    like(purge(@purge), qr/^HTTP\/1\.1 200 .*purged \d+\n$/s, "$name: purge ran while the answer was on its way");
    is(result(http_end($slow, timeout => 10)), '200 [MISS]', "$name: the slow answer serves its own request");
    # the waiter asks for itself (its own answer, asked after the purge, may be kept)
    like(result(http_end($waiter, timeout => 10)), qr/^200 \[(MISS|EXPIRED)\]$/, "$name: its waiter asked for itself");
    purge('Auth-Cache-Purge: all');
    is(result(http_get($uri, headers => [@$headers, 'X-Answer: 403'])), '403 [MISS]',
       "$name: the revoked allow was not kept, the service's deny is asked");
    is(result(http_get($uri, headers => [@$headers, 'X-Answer: 200'])), '403 [HIT]', "$name: the deny is kept");
    purge('Auth-Cache-Purge: all');
}

# Without the waiter: the slow answer alone
sub race_alone {
    my ($name, $uri, $headers, @purge) = @_;
    my $slow = http_get($uri, headers => [@$headers, 'X-Delay: 1', 'X-Answer: 200'], start => 1, timeout => 10);
    sleep 0.4;
    like(purge(@purge), qr/^HTTP\/1\.1 200 .*purged \d+\n$/s, "$name: purge ran");
    is(result(http_end($slow, timeout => 10)), '200 [MISS]', "$name: the slow answer serves its own request");
    is(result(http_get($uri, headers => [@$headers, 'X-Answer: 403'])), '403 [MISS]',
       "$name: the answer fetched across the purge was not kept");
    purge('Auth-Cache-Purge: all');
}

race_alone('user', '/api/x', [api_headers('jack', 'c1')], 'Auth-Cache-Username: jack');
race_alone('client id', '/api/x', [api_headers('jack', 'c1')], 'Auth-Cache-Client-Id: c1');
race_alone('all', '/api/x', [api_headers('jack', 'c1')], 'Auth-Cache-Purge: all');
race_alone('auth_request key', '/ar', ['X-Key: jack'], 'Auth-Cache-Key: jack');
race_alone('auth_request, purge all', '/ar', ['X-Key: jack'], 'Auth-Cache-Purge: all');
race('user, with a waiter', '/api/x', [api_headers('jack', 'c1')], 'Auth-Cache-Username: jack');
race('auth_request key, with a waiter', '/ar', ['X-Key: jack'], 'Auth-Cache-Key: jack');

# Without a purge the slow answer is kept (the test above is not vacuous)
{
    my $slow = http_get('/ar', headers => ['X-Key: jill', 'X-Delay: 0.5', 'X-Answer: 200'], start => 1, timeout => 10);
    is(result(http_end($slow, timeout => 10)), '200 [MISS]', 'no purge: slow answer');
    is(result(http_get('/ar', headers => ['X-Key: jill', 'X-Answer: 403'])), '200 [HIT]', 'no purge: it is kept');
}

$t->done;
