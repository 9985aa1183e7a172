#!/usr/bin/perl
# The seams for the directives the seam matrix does not name (issue 9 §3):
#
#   * auth_request_set: a variable set from the auth response in one
#     location is still set after error_page moves the request (as nginx's
#     C module: it sets them "to make sure they will be available after
#     internal redirects"), also to a location without auth_request;
#   * auth_http_client_id / auth_http_mountpoint: after a move into another
#     auth_http location, the ACL question is asked again with that
#     location's %c and %m, evaluated for this request; a forged value from
#     an earlier location never sticks;
#   * auth_http_auth / auth_http_realm: after a move into another location
#     with auth_http_auth, the credentials are asked about again there, and
#     a refusal there carries that location's realm; error_page 401 into a
#     protected location refuses again and never reaches its upstream;
#   * answer=json: each location reads the service's answer its own way;
#   * auth_http_header: after the move, the question carries the new
#     location's headers, expanded there;
#   * ntlm_timeout: a connection bound through a moved request (try_files
#     into a named location) is closed after ntlm_timeout like any other,
#     and never reaches another client before or after;
#   * key_auth_allow / key_auth_deny: per location: a consumer refused in
#     one location (403) and moved by error_page 403 into another is let in
#     or refused by that location's lists;
#   * key_auth_realm / key_auth_preflight: a request moved (rewrite ...
#     last, try_files) into a key_auth location is refused with that
#     location's realm, and a preflight moved into a "pass" location goes
#     through while a moved GET is still checked;
#   * ntlm_max_requests / ntlm_max_time: a connection bound through a moved
#     request is closed after its last allowed request, and the client's next
#     request (moved again) authenticates again.

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use lib 't/lib', 't/backends';
use AGTest;
use NtlmBackend;

my $t = AGTest->new->skip_unless_module;
$t->write_file('p/x', "PROTECTED\n");

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    upstream nt {
        server 127.0.0.1:%%PORT_8083%%;
        ntlm;
        ntlm_timeout 1s;
    }
    key_auth_consumers {
        sj key=sj-key group=g1;
        sb key=sb-key;
    }
    upstream ntmax {
        server 127.0.0.1:%%PORT_8083%%;
        ntlm;
        ntlm_max_requests 2;
        ntlm_max_time 1h;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location /auth/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }

        # auth_request_set survives error_page
        location /set/ {
            auth_request /auth/set;
            auth_request_set $auth_user $upstream_http_x_user;
            error_page 404 = @after;
            alias %%TESTDIR%%/nope/;
        }
        location @after {
            proxy_set_header X-Hit after;
            proxy_set_header X-Auth-User $auth_user;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        # auth_http %c / %m after a move
        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
        location /acl-a/ {
            auth_http_acl /_acl/acl method=get params=clientid=%c,mount=%m,topic=%t;
            auth_http_client_id $http_x_client;
            auth_http_mountpoint a/;
            auth_http_header X-Loc a-%c;
            error_page 404 = @acl_b;
            alias %%TESTDIR%%/nope/;
        }
        location @acl_b {
            auth_http_acl /_acl/acl method=get params=clientid=%c,mount=%m,topic=%t;
            auth_http_client_id b-$http_x_client;
            auth_http_mountpoint b/;
            auth_http_header X-Loc b-%c;
            proxy_set_header X-Hit acl-b;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        # answer=json after a move
        location /json-a/ {
            auth_http_acl /_acl/json method=get answer=json;
            error_page 404 = @json_b;
            alias %%TESTDIR%%/nope/;
        }
        location @json_b {
            auth_http_acl /_acl/text method=get;
            proxy_set_header X-Hit json-b;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        # auth_http_auth / auth_http_realm after a move
        location /authn-a/ {
            auth_http_auth /_acl/authn-a;
            auth_http_realm "realm a";
            error_page 404 = @authn_b;
            alias %%TESTDIR%%/nope/;
        }
        location @authn_b {
            auth_http_auth /_acl/authn-b method=get params=u=%u;
            auth_http_realm "realm b";
            proxy_set_header X-Hit authn-b;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /authn-ep/ {
            auth_http_auth /_acl/authn-ep;
            auth_http_realm "realm b";
            error_page 401 = @authn_b;
            proxy_set_header X-Hit authn-ep;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        # key_auth_realm / key_auth_preflight after a move
        location /kr/ {
            rewrite ^/kr/(.*)$ /kr-target/$1 last;
        }
        location /kr-target/ {
            key_auth on;
            key_auth_realm "realm target";
            alias %%TESTDIR%%/p/;
        }
        location /kp/ {
            try_files /nope @kp;
        }
        location @kp {
            key_auth on;
            key_auth_preflight pass;
            proxy_set_header X-Hit kp;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        # key_auth_allow / key_auth_deny after error_page 403
        location /kd/ {
            key_auth on;
            key_auth_deny sj;
            error_page 403 = @ka_ok;
            alias %%TESTDIR%%/p/;
        }
        location /kd2/ {
            key_auth on;
            key_auth_allow sj;
            error_page 403 = @ka_ok;
            alias %%TESTDIR%%/p/;
        }
        location @ka_ok {
            key_auth on;
            key_auth_allow group:g1;
            proxy_set_header X-Hit ka-ok;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        # ntlm_timeout through a moved request
        location /nt/ {
            try_files /nope @nt;
        }
        location /ntmax/ {
            try_files /nope @ntmax;
        }
        location @ntmax {
            proxy_pass http://ntmax;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location @nt {
            proxy_pass http://nt;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
$t->run_auth_service(8081);
$t->run_echo_server(8082);
my $events = $t->testdir . '/nt.events';
$t->run_daemon(\&NtlmBackend::serve, port => $t->port(8083), name => 'nt', state => $events);
$t->waitforsocket($t->port(8083)) or die;
$t->run;

sub hits { my ($h) = @_; grep { ((AGTest::req_header($_, 'X-Hit'))[0] // '') eq $h } $t->requests('echo') }

# auth_request_set across error_page (also the C module's behaviour)
for my $version ('1.0', '1.1') {
    my $r = http_get('/set/x', version => $version, headers => ['X-Ctl-Hdr: X-User: alice']);
    is(http_status($r), 200, "HTTP/$version auth_request_set: moved to \@after, served");
    my ($h) = hits('after');
    is((AGTest::req_header($h, 'X-Auth-User'))[0], 'alice',
       "HTTP/$version auth_request_set: \$auth_user set in /set/ is set in \@after");
    $t->clear_requests('echo');
}
my $r = http_get('/set/x', headers => ['X-Ctl-Status: 403', 'X-Ctl-Hdr: X-User: mallory']);
is(http_status($r), 403, 'auth_request_set: a refused request is refused (no move)');
is(scalar(hits('after')), 0, 'auth_request_set: and never reaches @after');
$t->clear_requests('echo');

# auth_http: the question after the move is @acl_b's, for this request
$t->clear_requests('auth');
$r = http_get('/acl-a/x', headers => ['X-Client: c1']);
is(http_status($r), 200, 'auth_http: moved to @acl_b, allowed there, served');
my @q = map { $_->{query} } grep { $_->{path} =~ m{/_acl/acl} } $t->requests('auth');
is(scalar @q, 2, 'auth_http: asked in /acl-a/ and again in @acl_b');
like($q[0] // '', qr/(?:^|&)clientid=c1(?:&|$)/, 'auth_http: /acl-a/ asked with its %c');
like($q[0] // '', qr/(?:^|&)mount=a%2F(?:&|$)/, 'auth_http: /acl-a/ asked with its %m');
like($q[1] // '', qr/(?:^|&)clientid=b-c1(?:&|$)/, 'auth_http: @acl_b asked with its own %c');
like($q[1] // '', qr/(?:^|&)mount=b%2F(?:&|$)/, 'auth_http: @acl_b asked with its own %m');
is_deeply([map { scalar AGTest::req_header($_, 'X-Loc') } grep { $_->{path} =~ m{/_acl/acl} } $t->requests('auth')],
          ['a-c1', 'b-b-c1'], 'auth_http_header: each location\'s own header, expanded there');
is(scalar(hits('acl-b')), 1, 'auth_http: the protected upstream served once');
$t->clear_requests('echo');
$t->clear_requests('auth');
$r = http_get('/acl-a/x', headers => ['X-Client: c1', 'X-Ctl-Status: 403']);
is(http_status($r), 403, 'auth_http: denied in /acl-a/: 403, no move');
is(scalar(hits('acl-b')), 0, 'auth_http: denied: the protected upstream is never asked');

# answer=json after a move: each location reads the answer its way
$r = http_get('/json-a/x', headers => ['X-Ctl-Body: {"result":"allow"}']);
is(http_status($r), 200, 'answer=json: allowed in /json-a/ (json), moved, allowed in @json_b (text: any body)');
is(scalar(hits('json-b')), 1, 'answer=json: served by @json_b');
$t->clear_requests('echo');
$r = http_get('/json-a/x', headers => ['X-Ctl-Body: allow']);
is(http_status($r), 403, 'answer=json: a text "allow" is no JSON answer: denied in /json-a/, no move');
is(scalar(hits('json-b')), 0, 'answer=json: the protected upstream is never asked');

# auth_http_auth / auth_http_realm after a move
use MIME::Base64;
my $basic = 'Authorization: Basic ' . encode_base64('alice:pw', '');
$t->clear_requests('auth');
$r = http_get('/authn-a/x', headers => [$basic]);
is(http_status($r), 200, 'auth_http_auth: authenticated in /authn-a/, moved to @authn_b, authenticated there');
is_deeply([map { $_->{path} } grep { $_->{path} =~ /authn/ } $t->requests('auth')],
          ['/_acl/authn-a', '/_acl/authn-b'], 'auth_http_auth: asked again after the move, with its own service');
is((grep { $_->{path} eq '/_acl/authn-b' } $t->requests('auth'))[0]{query}, 'u=alice',
   'auth_http_auth: with @authn_b\'s own params');
is(scalar(hits('authn-b')), 1, 'auth_http_auth: the protected upstream served once');
$t->clear_requests('echo');
$r = http_get('/authn-a/x', headers => [$basic, 'X-Ctl-Status: 403']);
is(http_status($r), 401, 'auth_http_auth: refused in /authn-a/: 401, no move');
is_deeply([http_header($r, 'WWW-Authenticate')], ['Basic realm="realm a"'], 'auth_http_realm: that location\'s realm');
is(scalar(hits('authn-b')), 0, 'auth_http_auth: refused: the protected upstream is never asked');
$t->clear_requests('auth');
$r = http_get('/authn-ep/x', headers => [$basic, 'X-Ctl-Status: 401']);
is(http_status($r), 401, 'auth_http_auth: refused, error_page 401 = @authn_b refuses again: 401');
is_deeply([http_header($r, 'WWW-Authenticate')], ['Basic realm="realm b"'], 'auth_http_realm: one challenge');
is(scalar(grep { $_->{path} =~ /authn/ } $t->requests('auth')), 2, 'auth_http_auth: asked in both locations');
is(scalar(hits('authn-b')) + scalar(hits('authn-ep')), 0, 'auth_http_auth: no protected upstream reached');
$t->clear_requests('echo');

# key_auth_realm / key_auth_preflight after a move
$r = http_get('/kr/x');
is(http_status($r), 401, 'key_auth_realm: moved by rewrite into /kr-target/, refused there');
is_deeply([http_header($r, 'WWW-Authenticate')], ['apikey realm="realm target"'], 'key_auth_realm: with its realm');
$t->clear_requests('echo');
$r = http_get('/kp/x', method => 'OPTIONS',
              headers => ['Origin: https://a.example', 'Access-Control-Request-Method: PUT']);
is(http_status($r), 200, 'key_auth_preflight: a preflight moved by try_files into @kp (pass) goes through');
is(scalar(hits('kp')), 1, 'key_auth_preflight: served by @kp');
is(http_status(http_get('/kp/x')), 401, 'key_auth_preflight: a GET without a key moved there is still refused');
is(http_status(http_get('/kp/x', headers => ['apikey: sj-key'])), 200, 'key_auth_preflight: with a key, served');

# key_auth_allow / key_auth_deny after error_page 403
$r = http_get('/kd/x', headers => ['apikey: sj-key']);
is(http_status($r), 200, 'key_auth_deny: sj refused in /kd/, moved to @ka_ok, allowed there (group g1)');
is(scalar(hits('ka-ok')), 1, 'key_auth_deny: served by @ka_ok');
$t->clear_requests('echo');
$r = http_get('/kd/x', headers => ['apikey: sb-key']);
is(http_status($r), 200, 'key_auth_deny: sb is not denied in /kd/: served there');
is(scalar(hits('ka-ok')), 0, 'key_auth_deny: not moved');
$r = http_get('/kd2/x', headers => ['apikey: sb-key']);
is(http_status($r), 403, 'key_auth_allow: sb outside /kd2/\'s list, moved to @ka_ok, outside its list too: 403');
is(scalar(hits('ka-ok')), 0, 'key_auth_allow: the protected upstream is never asked');

# ntlm_timeout through try_files -> @nt
*req = \&NtlmBackend::request;
*hdr = \&NtlmBackend::hdr;
my $port = $t->port(8080);
my $a = NtlmBackend::client($port);
my $first = req($a, '/nt/x', auth => 'NTLM tokT');
my $conn = hdr($first, 'X-Conn-Id');
is(hdr($first, 'X-Conn-Token'), 'tokT', 'ntlm: credentials reach the upstream through try_files');
is(hdr(req($a, '/nt/y'), 'X-Conn-Id'), $conn, 'ntlm: the next request of the client is on its bound connection');
my $b = NtlmBackend::client($port);
is(hdr(req($b, '/nt/z'), 'X-Conn-Token'), '-', 'ntlm: another client never gets it');
close $b;
ok(NtlmBackend::wait_close($events, $conn, 5), 'ntlm: the idle bound connection is closed (ntlm_timeout 1s)');
my $after = req($a, '/nt/w');
isnt(hdr($after, 'X-Conn-Id'), $conn, 'ntlm: after the timeout the client gets a fresh connection');
is(hdr($after, 'X-Conn-Token'), '-', 'ntlm: not authenticated there');
close $a;

# ntlm_max_requests through try_files -> @ntmax
$a = NtlmBackend::client($port);
$first = req($a, '/ntmax/x', auth => 'NTLM tokM');
$conn = hdr($first, 'X-Conn-Id');
my $second = req($a, '/ntmax/y');
is(hdr($second, 'X-Conn-Id'), $conn, 'ntlm_max_requests: the 2nd request of the client on its bound connection');
is(hdr($second, 'X-Conn-Token'), 'tokM', 'ntlm_max_requests: authenticated');
ok(NtlmBackend::wait_close($events, $conn, 2), 'ntlm_max_requests 2: the bound connection is closed after it');
$after = req($a, '/ntmax/z');
isnt(hdr($after, 'X-Conn-Id'), $conn, 'ntlm_max_requests: the next request gets a fresh connection');
is(hdr($after, 'X-Conn-Token'), '-', 'ntlm_max_requests: not authenticated there');
close $a;

$t->done;
