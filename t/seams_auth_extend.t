#!/usr/bin/perl
# Seams of the opt-in auth_request directives (issue 13): internal
# redirects (try_files, error_page = @named / URI, rewrite ... last),
# satisfy any / all, HTTP/1.0, HTTP/1.1, HEAD and HTTP/2.
#
#   * after a move into another protected location, the check runs again:
#     the client gets the client headers of the last auth response only
#     (never those of an earlier one twice), the upstream gets the upstream
#     headers of the last one only;
#   * a client-forged upstream header never reaches an upstream: not after
#     a refusal (error_page into a proxying location), not when satisfy any
#     lets the request through without asking, not after a move;
#   * a passed status goes through error_page like nginx's own statuses;
#   * an auth_request_allow_status refusal (500) goes through error_page
#     and grants nothing.
#   * auth_request_body: the body is read once and every check of the
#     request (error_page = @named, try_files into another protected
#     location) gets it whole, so does the upstream; with satisfy any a
#     neighbour that allows first means no check, so max= never applies.
#
# The auth location scripts the answer from the auth URI: every auth
# response carries "Set-Cookie: c=<auth uri>" and "X-User: u<auth uri>".

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module('the opt-in auth_request directives are ours only');
$t->write_file('empty/.keep', '');

my $E = 'http://127.0.0.1:%%PORT_8082%%';
$t->write_file_expand('nginx.conf', <<"EOF");
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        server_name localhost;
        underscores_in_headers on;

        auth_request_client_header   Set-Cookie;
        auth_request_upstream_header X-User;
        auth_request_pass_status     302 429;

        location /auth/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%\$uri?hdr=Set-Cookie:+c=\$uri&hdr=X-User:+u\$uri;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }

        # try_files from a protected location into a protected named one
        location /tf/ {
            auth_request /auth/first;
            try_files /nope \@second;
        }
        location \@second {
            auth_request /auth/second;
            proxy_set_header X-Hit P-second;
            proxy_pass $E;
        }

        # a refusal moved by error_page into proxying locations
        location /ep/ {
            auth_request /auth/ep;
            error_page 401 403 = \@open;
            proxy_pass $E;
        }
        location /epu/ {
            auth_request /auth/epu;
            error_page 401 /open/after;
            proxy_pass $E;
        }
        location \@open {
            proxy_set_header X-Hit U-open;
            proxy_pass $E;
        }
        location /open/ {
            proxy_set_header X-Hit U-open-uri;
            proxy_pass $E;
        }

        # a passed status moved by error_page
        location /busy/ {
            auth_request /auth/busy;
            error_page 429 = \@busy;
            proxy_pass $E;
        }
        location \@busy {
            proxy_set_header X-Hit U-busy;
            proxy_pass $E;
        }

        # rewrite ... last leaves before the access phase
        location /rw/ {
            auth_request /auth/rw-never;
            rewrite ^/rw/(.*)\$ /p/\$1 last;
        }
        location /p/ {
            auth_request /auth/p;
            proxy_set_header X-Hit P-p;
            proxy_pass $E;
        }

        # satisfy
        location /sa-allow/ {
            satisfy any;
            allow all;
            auth_request /auth/sa-allow;
            proxy_pass $E;
        }
        location /sall-deny/ {
            satisfy all;
            deny all;
            auth_request /auth/sall-deny;
            error_page 403 = \@open;
            proxy_pass $E;
        }

        # auth_request_body: read once, sent to every check, whole upstream
        location /auth-body/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
        location /bep/ {
            auth_request /auth-body/401/first;
            auth_request_body on;
            error_page 401 = \@body2;
            proxy_pass $E;
        }
        location /btf/ {
            auth_request /auth-body/tf;
            auth_request_body on;
            try_files /nope \@body2;
        }
        location \@body2 {
            auth_request /auth-body/second;
            auth_request_body on;
            proxy_set_header X-Hit P-body2;
            proxy_pass $E;
        }
        location /bsa/ {
            satisfy any;
            allow all;
            auth_request /auth-body/sa;
            auth_request_body on max=10;
            proxy_pass $E;
        }

        # satisfy any: auth_request refuses (401), auth_http then allows
        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/acl/;
        }
        location /sa-http/ {
            satisfy any;
            auth_request /auth/401/sahttp;
            auth_http_acl /_acl/x;
            proxy_set_header X-Hit P-sahttp;
            proxy_pass $E;
        }

        location /sa-http-pass/ {
            satisfy any;
            auth_request /auth/302/sahttppass;
            auth_http_acl /_acl/y;
            proxy_set_header X-Hit P-sahttppass;
            proxy_pass $E;
        }

        # a mirror subrequest into a location with the directive: its own
        # header list, without the client's copies (the main request's
        # location names another header, so its upstream still gets them)
        location /miru/ {
            auth_request_upstream_header X-Other;
            mirror /mt/m;
            proxy_set_header X-Hit U-miru;
            proxy_pass $E;
        }
        location /mt/ {
            internal;
            proxy_set_header X-Hit P-mt;
            proxy_pass $E;
        }

        # auth_request_allow_status refusal through error_page
        location /exact/ {
            auth_request /auth/exact;
            auth_request_allow_status 204;
            error_page 500 = \@open;
            proxy_pass $E;
        }
    }
}
EOF

$t->run_auth_service(8081);
$t->run_echo_server(8082);
$t->run;

my $FORGED = ['X-User: forged', 'X_User: forged2', 'x-user: forged3'];
sub last_echo { ($t->requests('echo'))[-1] }
sub auth_paths { [map { $_->{path} } $t->requests('auth')] }
sub get {
    my ($proto, $uri, @h) = @_;
    return http2_request($uri, headers => [@$FORGED, @h]) if $proto eq 'h2';
    return http_get($uri, headers => [@$FORGED, @h], $proto eq 'HEAD' ? (method => 'HEAD') : (),
        $proto eq '1.0' ? (version => '1.0') : ());
}

for my $proto ('1.0', '1.1', 'HEAD', 'h2') {
    # try_files: two checks, the second one's headers only
    $t->clear_requests('auth');
    $t->clear_requests('echo');
    my $r = get($proto, '/tf/x');
    is(http_status($r), 200, "$proto try_files: allowed");
    is_deeply(auth_paths(), ['/auth/first', '/auth/second'], "$proto try_files: checked in both locations");
    is_deeply([http_header($r, 'Set-Cookie')], ['c=/auth/second'],
        "$proto try_files: the cookie of the last auth response only");
    my $e = last_echo();
    is(AGTest::req_header($e, 'X-Hit'), 'P-second', "$proto try_files: the named location's upstream");
    is_deeply([AGTest::req_header($e, 'X-User')], ['u/auth/second'],
        "$proto try_files: the X-User of the last auth response only");
    is_deeply([AGTest::req_header($e, 'X_User')], [], "$proto try_files: no forged X_User");

    # error_page after a refusal: cookie of the refusal, no forged header
    # (error_page 401 /uri keeps the 401; = @named takes the target's status)
    for my $case (['/ep/x', 401, 'U-open', 200], ['/ep/y', 403, 'U-open', 200],
                  ['/epu/x', 401, 'U-open-uri', 401]) {
        my ($uri, $status, $hit, $client) = @$case;
        $t->clear_requests('echo');
        $r = get($proto, $uri, "X-Ctl-Status: $status");
        is(http_status($r), $client, "$proto $uri $status -> error_page: the unprotected page");
        (my $auth = $uri) =~ s{^/(\w+)/.*}{/auth/$1};
        is_deeply([http_header($r, 'Set-Cookie')], ["c=$auth"], "$proto $uri: the refusal's cookie");
        $e = last_echo();
        is(AGTest::req_header($e, 'X-Hit'), $hit, "$proto $uri: the error_page target");
        is_deeply([AGTest::req_header($e, 'X-User')], [], "$proto $uri: no X-User (forged or not)");
        is_deeply([AGTest::req_header($e, 'X_User')], [], "$proto $uri: no X_User");
    }

    # a passed status through error_page = @named
    $t->clear_requests('echo');
    $r = get($proto, '/busy/x', 'X-Ctl-Status: 429', 'X-Ctl-Hdr: Retry-After: 9');
    is(http_status($r), 200, "$proto passed 429 -> error_page = \@busy");
    is(AGTest::req_header(last_echo(), 'X-Hit'), 'U-busy', "$proto passed 429: the named location");
    is_deeply([AGTest::req_header(last_echo(), 'X-User')], [], "$proto passed 429: no X-User");

    # rewrite ... last: only the target's check
    $t->clear_requests('auth');
    $r = get($proto, '/rw/x');
    is(http_status($r), 200, "$proto rewrite last");
    is_deeply(auth_paths(), ['/auth/p'], "$proto rewrite last: only the target checks");
    is_deeply([http_header($r, 'Set-Cookie')], ['c=/auth/p'], "$proto rewrite last: its cookie");
    is_deeply([AGTest::req_header(last_echo(), 'X-User')], ['u/auth/p'], "$proto rewrite last: its X-User");

    # satisfy any, allow all: not asked, forged headers removed, no cookie
    $t->clear_requests('auth');
    $r = get($proto, '/sa-allow/x');
    is(http_status($r), 200, "$proto satisfy any: allowed");
    is_deeply(auth_paths(), [], "$proto satisfy any: auth service not asked");
    is_deeply([http_header($r, 'Set-Cookie')], [], "$proto satisfy any: no auth cookie");
    is_deeply([AGTest::req_header(last_echo(), 'X-User')], [], "$proto satisfy any: no forged X-User");
    is_deeply([AGTest::req_header(last_echo(), 'X_User')], [], "$proto satisfy any: no forged X_User");

    # satisfy all, deny all: not asked; error_page target sees no forged header
    $t->clear_requests('auth');
    $r = get($proto, '/sall-deny/x');
    is(http_status($r), 200, "$proto satisfy all, deny -> error_page");
    is_deeply(auth_paths(), [], "$proto satisfy all: auth service not asked");
    is_deeply([AGTest::req_header(last_echo(), 'X-User')], [], "$proto satisfy all: no forged X-User");

    # auth_request_body across moves: each check gets the whole body, so
    # does the upstream; satisfy any allowing first reads nothing early
    next if $proto eq 'HEAD' || $proto eq '1.0';
    my $body = join '', map { chr(65 + $_ % 26) } 1 .. 9000;
    my $post = sub {
        my ($uri, @h) = @_;
        return $proto eq 'h2' ? http2_request($uri, method => 'POST', body => $body, headers => \@h)
                              : http_post($uri, $body, headers => \@h);
    };
    for my $case (['/bep/x', ['/auth-body/401/first', '/auth-body/second']],
                  ['/btf/x', ['/auth-body/tf', '/auth-body/second']]) {
        my ($uri, $checks, @h) = @$case;
        $t->clear_requests('auth');
        $r = $post->($uri, @h);
        is(http_status($r), 200, "$proto body $uri: allowed by the second check");
        my @a = $t->requests('auth');
        is_deeply([map { $_->{path} } @a], $checks, "$proto body $uri: both checks");
        is_deeply([map { $_->{body_md5} } @a], [(md5_hex($body)) x 2], "$proto body $uri: both got the body");
        is(json_body($r)->{body_md5}, md5_hex($body), "$proto body $uri: the upstream got it whole");
    }
    $t->clear_requests('auth');
    $r = $post->('/bsa/x');
    is(http_status($r), 200, "$proto body satisfy any: allowed (max=10 never applies: not asked)");
    is_deeply(auth_paths(), [], "$proto body satisfy any: not asked");
    is(json_body($r)->{body_md5}, md5_hex($body), "$proto body satisfy any: the upstream got it whole");
}

for my $proto ('1.0', '1.1', 'HEAD', 'h2') {
    my $r;
    # allow_status: an unlisted 2xx is 500 -> error_page, never access
    $t->clear_requests('echo');
    $r = get($proto, '/exact/x', 'X-Ctl-Status: 200');
    is(http_status($r), 200, "$proto allow_status 500 -> error_page");
    is(AGTest::req_header(last_echo(), 'X-Hit'), 'U-open', "$proto allow_status: the unprotected target");
    is_deeply([AGTest::req_header(last_echo(), 'X-User')], [], "$proto allow_status: no X-User");
    is_deeply([http_header($r, 'Set-Cookie')], [], "$proto allow_status: no cookie on a failure");
}

# satisfy any: a later check allows after auth_request refused with 401
my $r = http_get('/sa-http/x', headers => ['X-Ctl-Www: Basic realm="s"']);
is(http_status($r), 200, 'satisfy any: auth_http allows after the 401');
is_deeply([http_header($r, 'WWW-Authenticate')], [], "satisfy any: nginx hides the refusal's challenge");
is_deeply([http_header($r, 'Set-Cookie')], ['c=/auth/401/sahttp'],
    "satisfy any: the refusal's client headers stay (as documented)");
is_deeply([AGTest::req_header(last_echo(), 'X-User')], [], 'satisfy any: no X-User from a refusal');

# satisfy any: a passed status is final, the later check is not asked
$t->clear_requests('auth');
$r = http_get('/sa-http-pass/x', headers => ['X-Ctl-Hdr: Location: https://sso.example/p']);
is(http_status($r), 302, 'satisfy any: the passed 302 is final');
is(scalar http_header($r, 'Location'), 'https://sso.example/p', 'satisfy any: with its Location');
is_deeply(auth_paths(), ['/auth/302/sahttppass'], 'satisfy any: auth_http, which runs later, is not asked');

# mirror: the subrequest's own list; the parent's is untouched
$t->clear_requests('echo');
$r = http_get('/miru/x', headers => ['X-User: client-user', 'X_User: client2']);
is(http_status($r), 200, 'mirror: main request served');
for (1 .. 50) { last if (my @e = $t->requests('echo')) >= 2; select undef, undef, undef, 0.05 }
my %by = map { (AGTest::req_header($_, 'X-Hit') // '') => $_ } $t->requests('echo');
ok($by{'P-mt'}, 'mirror: the mirror subrequest reached its upstream');
is_deeply([AGTest::req_header($by{'P-mt'} // {}, 'X-User')], [], 'mirror subrequest: no client X-User');
is_deeply([AGTest::req_header($by{'P-mt'} // {}, 'X_User')], [], 'mirror subrequest: no client X_User');
is_deeply([AGTest::req_header($by{'U-miru'} // {}, 'X-User')], ['client-user'],
    "mirror: the parent's own upstream still gets its headers (its location does not name X-User)");

$t->done;
