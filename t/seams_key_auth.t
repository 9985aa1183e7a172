#!/usr/bin/perl
# key_auth at nginx's seams (issue 9): what key_auth decided survives
# internal redirects. A refusal (missing or invalid key, over quota) is
# repeated, with its status, by every key_auth location the request is sent
# to (error_page = @named, = URI, URI; try_files; chains of named
# locations); an identity is kept (no downgrade to anonymous after the key
# was hidden), counted once; the $key_auth_* variables describe one
# consumer; identity headers reach the upstream once.

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
    key_auth_zone key_auth 1m;
    key_auth_consumers {
        q         key=q-key      limit=2/1h limit_status=429;
        q2        key=q2-key     limit=2/1h limit_status=429;
        q3        key=q3-key     limit=2/1h limit_status=429;
        q4        key=q4-key     limit=1/1h limit_status=429;
        q503      key=q503-key   limit=1/1h;
        qopen     key=qopen-key  limit=1/1h limit_status=429;
        jack      key=jack-key   credential=cred-jack custom_id=cid-jack limit=100/1h;
        anonymous                limit=100/1h;
        anon2     custom_id=cid-anon2;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        proxy_set_header X-Vars "$key_auth_consumer|$key_auth_credential|$key_auth_custom_id";

        # 1. quota refusals, then a redirect into key_auth locations
        location /a/ {
            key_auth on;
            error_page 429 = @fb;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location @fb {
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /b/ {
            key_auth on;
            error_page 429 /other/;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /b2/ {
            key_auth on;
            error_page 429 = /other/;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /other/ {
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /chain/ {
            key_auth on;
            error_page 429 = @n1;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location @n1 {
            key_auth on;
            key_auth_anonymous_consumer anonymous;
            error_page 429 = @n2;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location @n2 {
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /c503/ {
            key_auth on;
            error_page 503 = @fb;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /open/ {
            key_auth on;
            error_page 429 = @nokey;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location @nokey {
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        # 1. 401 refusals, then a redirect into key_auth locations
        location /u/ {
            key_auth on;
            error_page 401 = @anon;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location @anon {
            key_auth on;
            key_auth_anonymous_consumer anonymous;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        # 3. identity survives try_files -> @named with the key hidden
        location /c/ {
            key_auth on;
            key_auth_hide_credentials on;
            try_files /nope @app;
        }
        location /ca/ {
            key_auth on;
            key_auth_hide_credentials on;
            key_auth_anonymous_consumer anonymous;
            try_files /nope @appa;
        }
        location @app {
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location @appa {
            key_auth on;
            key_auth_anonymous_consumer anonymous;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /cc/ {
            key_auth on;
            key_auth_hide_credentials on;
            try_files /nope @c1;
        }
        location @c1 {
            key_auth on;
            key_auth_hide_credentials on;
            key_auth_anonymous_consumer anonymous;
            error_page 418 = @c2;
            proxy_intercept_errors on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location @c2 {
            key_auth on;
            key_auth_anonymous_consumer anonymous;
            proxy_set_header X-Echo-Ctl-Status "";
            proxy_set_header X-Vars "$key_auth_consumer|$key_auth_credential|$key_auth_custom_id";
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        # 5. another consumer after a redirect: the variables follow it
        location /v/ {
            key_auth on;
            key_auth_anonymous_consumer anon2;
            try_files /nope @v;
        }
        location /vk/ {
            key_auth on;
            key_auth_header X-Key-A;
            try_files /nope @v;
        }
        location @v {
            key_auth on;
            key_auth_header X-Key-B;
            key_auth_anonymous_consumer anonymous;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
    }
}
EOF
$t->run_echo_server(8082);
$t->run;

sub hits { my @r = $t->requests('echo'); return scalar @r }
sub hdrs {
    my ($j, $name) = @_;
    return [map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ ($j || {})->{headers} || [] }];
}

my @VARIANTS = (['GET', '1.1'], ['GET', '1.0'], ['HEAD', '1.1']);
sub req {
    my ($uri, $key, $v, @h) = @_;
    my ($method, $version) = @{ $v || $VARIANTS[0] };
    return http_get($uri, method => $method, version => $version,
                    headers => [defined $key ? ("apikey: $key") : (), @h]);
}

# 1. over quota, error_page 429 = @fb (key_auth): refused again, with 429
for my $case (['/a/x', 'q-key', 'error_page 429 = @fb'],
              ['/b/x', 'q2-key', 'error_page 429 /other/'],
              ['/b2/x', 'q3-key', 'error_page 429 = /other/'],
              ['/chain/x', 'q4-key', 'error_page 429 = @n1 (anonymous) -> @n2']) {
    my ($uri, $key, $what) = @$case;
    $t->clear_requests('echo');
    my %st;
    for my $i (1 .. 5) {
        my $r = req($uri, $key, $VARIANTS[$i % 3]);
        $st{ http_status($r) }++;
    }
    my $allowed = $key eq 'q4-key' ? 1 : 2;
    is_deeply(\%st, { 200 => $allowed, 429 => 5 - $allowed }, "$what: 429 after the quota");
    is(hits(), $allowed, "$what: the upstream saw only the allowed requests");
}
my $r = req('/a/x', 'q-key');
is_deeply([http_header($r, 'X-RateLimit-Remaining')], [0], 'refused again: counted once, one header set');
unlike(http_body($r), qr/"uri"/, 'refused again: nginx\'s 429 page, not the upstream\'s');

# 1. over quota with the default 503, error_page 503 = @fb
$t->clear_requests('echo');
is(http_status(req('/c503/x', 'q503-key')), 200, '503 consumer: first allowed');
is(http_status(req('/c503/x', 'q503-key', $VARIANTS[1])), 503, '503 consumer: refused again after error_page 503 = @fb');
is(http_status(req('/c503/x', 'q503-key', $VARIANTS[2])), 503, '503 consumer: HEAD too');
is(hits(), 1, '503 consumer: the upstream saw one request');

# 1. a redirect into a location without key_auth stays the operator's choice
is(http_status(req('/open/x', 'qopen-key')), 200, 'open: first');
$t->clear_requests('echo');
is(http_status(req('/open/x', 'qopen-key')), 200, 'open: over quota, error_page into a location without key_auth');
is(hits(), 1, 'open: that location proxies');

# 1. 401 refusals, error_page 401 = @anon (which has an anonymous consumer)
$t->clear_requests('echo');
for my $v (@VARIANTS) {
    $r = req('/u/x', undef, $v);
    is(http_status($r), 401, "missing key ($v->[0] $v->[1]): refused again after error_page 401 = \@anon");
    is_deeply([http_header($r, 'WWW-Authenticate')], ['apikey realm="key"'], 'one challenge');
    $r = req('/u/x', 'wrong-key', $v);
    is(http_status($r), 401, "invalid key ($v->[0] $v->[1]): refused again");
}
$r = req('/u/x', 'wrong-key');
is(http_body($r), '{"message":"Invalid API key in request"}', 'invalid key: the JSON body');
is(hits(), 0, '401: the upstream was never asked');

# 3. hide on + try_files -> @app: the identity survives
$t->clear_requests('echo');
for my $v (@VARIANTS) {
    $r = req('/c/x', 'jack-key', $v);
    is(http_status($r), 200, "try_files -> \@app with the key hidden ($v->[0] $v->[1]): 200");
}
for my $j (map { $_ } $t->requests('echo')) {
    is_deeply(hdrs($j, 'X-Consumer-Username'), ['jack'], 'upstream: jack, once');
    is_deeply(hdrs($j, 'X-Credential-Identifier'), ['cred-jack'], 'upstream: credential, once');
    is_deeply(hdrs($j, 'apikey'), [], 'upstream: no key');
}
$r = req('/c/x?apikey=jack-key');
is(http_status($r), 200, 'key in the query, hidden, then @app: 200');
my ($last) = reverse $t->requests('echo');
is($last->{uri}, '/c/x', 'upstream: no key in the URI');

# 3. ... with an anonymous consumer: no silent downgrade, counted once
$t->clear_requests('echo');
my @rem;
for my $v (@VARIANTS) {
    $r = req('/ca/x', 'jack-key', $v);
    is(http_status($r), 200, "anonymous location, try_files -> \@appa ($v->[0] $v->[1])");
    push @rem, http_header($r, 'X-RateLimit-Remaining');
}
is_deeply([map { hdrs($_, 'X-Consumer-Username')->[0] } $t->requests('echo')], [('jack') x 3],
          'still jack, not anonymous');
is($rem[1] - $rem[2], 1, 'each request counted once against jack') or diag("@rem");
$r = req('/ca/x', 'jack-key');
is_deeply([http_header($r, 'X-RateLimit-Limit')], [100], 'jack\'s quota headers once');

# 3. chains: /cc/ -> try_files @c1 -> upstream 418 -> error_page @c2
$t->clear_requests('echo');
$r = req('/cc/x?apikey=jack-key&a=1', undef, undef, 'X-Echo-Ctl-Status: 418');
is(http_status($r), 200, 'chain of named locations: 200');
my @seen = $t->requests('echo');
is(scalar @seen, 2, 'chain: two upstream requests (@c1, @c2)');
for my $j (@seen) {
    is_deeply(hdrs($j, 'X-Consumer-Username'), ['jack'], "chain $j->{seq}: jack, once");
    is($j->{uri}, '/cc/x?a=1', "chain: no key in the URI");
    is_deeply(hdrs($j, 'X-Vars'), ['jack|cred-jack|cid-jack'], 'chain: the variables describe jack');
}

# 5. all identity variables describe one consumer
$t->clear_requests('echo');
req('/v/x');
($last) = reverse $t->requests('echo');
is_deeply(hdrs($last, 'X-Vars'), ['anonymous||'], 'anon2 -> anonymous: no custom_id left over');
is_deeply(hdrs($last, 'X-Consumer-Custom-Id'), [], 'anon2 -> anonymous: no X-Consumer-Custom-Id');
req('/vk/x', undef, undef, 'X-Key-A: jack-key');
($last) = reverse $t->requests('echo');
is_deeply(hdrs($last, 'X-Vars'), ['jack|cred-jack|cid-jack'], 'jack through another header name: still jack');
is_deeply(hdrs($last, 'X-Consumer-Username'), ['jack'], 'jack: one X-Consumer-Username');

# identity headers stay unforgeable across two key_auth locations
$t->clear_requests('echo');
req('/c/x', 'jack-key', undef, 'X-Consumer-Username: mallory', 'X-Consumer-Custom-Id: forged');
($last) = reverse $t->requests('echo');
is_deeply(hdrs($last, 'X-Consumer-Username'), ['jack'], 'forged username: replaced, once');
is_deeply(hdrs($last, 'X-Consumer-Custom-Id'), ['cid-jack'], 'forged custom id: replaced, once');

$t->done;
