#!/usr/bin/perl
# key_auth across moves between locations that differ (issue 9, found by
# review):
#
#   * the key is hidden under the names it was found under: a request
#     identified in a location with "key_auth_header X-Key" (or
#     "key_auth_query token") and moved into one with hide on and the
#     default names still loses X-Key (token) before that upstream;
#   * a request key_auth refused gets nothing from a key_auth location
#     through a subrequest either: an unprotected error page that includes
#     a key_auth location shows no protected content.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;

$t->write_file('err/401.html', qq{DENIED\n<!--# include virtual="/inc/x" -->\nEND\n});

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_consumers {
        jack key=jack-key credential=cred-jack;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        # identified under X-Key / ?token, the upstream answers 404, the
        # request moves to @b (hide on, default names)
        location /a/ {
            key_auth on;
            key_auth_header X-Key;
            key_auth_query token;
            proxy_intercept_errors on;
            error_page 404 = @b;
            proxy_set_header X-Echo-Ctl-Status 404;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location @b {
            key_auth on;
            key_auth_hide_credentials on;
            proxy_set_header X-Hit b;
            proxy_set_header X-Orig $request_uri;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        # refused: the error page includes a key_auth location
        location /r/ {
            key_auth on;
            error_page 401 /err/401.html;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /err/ { ssi on; alias %%TESTDIR%%/err/; }
        location /inc/ {
            key_auth on;
            proxy_set_header X-Hit inc;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
    }
}
EOF
$t->run_echo_server(8082);
$t->run;

sub hits { [grep { (AGTest::req_header($_, 'X-Hit'))[0] // '' } $t->requests('echo')] }

# 1. header name of the checking location
my $r = http_get('/a/x', headers => ['X-Key: jack-key']);
is(http_status($r), 200, 'moved to @b: served');
my @b = grep { ((AGTest::req_header($_, 'X-Hit'))[0] // '') eq 'b' } $t->requests('echo');
is(scalar @b, 1, '@b upstream asked once');
is_deeply([AGTest::req_header($b[0], 'X-Key')], [], '@b upstream: no X-Key (hidden under the name it came in)');
$t->clear_requests('echo');

# 2. query name of the checking location
$r = http_get('/a/x?z=1&token=jack-key&y=2');
is(http_status($r), 200, 'moved to @b (key in ?token): served');
@b = grep { ((AGTest::req_header($_, 'X-Hit'))[0] // '') eq 'b' } $t->requests('echo');
is(scalar @b, 1, '@b upstream asked once');
unlike($b[0]{uri}, qr/jack-key/, '@b upstream: no key in the URI');
unlike((AGTest::req_header($b[0], 'X-Orig'))[0] // '', qr/jack-key/, '@b: no key in $request_uri');
$t->clear_requests('echo');

# 3. refused, the unprotected error page includes a key_auth location
for my $headers ([], ['apikey: wrong']) {
    my $what = @$headers ? 'invalid key' : 'no key';
    $r = http_get('/r/x', headers => $headers);
    is(http_status($r), 401, "$what: 401");
    like(http_body($r), qr/DENIED/, "$what: the error page");
    is(scalar(grep { ((AGTest::req_header($_, 'X-Hit'))[0] // '') eq 'inc' } $t->requests('echo')), 0,
       "$what: the included key_auth location's upstream is never asked");
    $t->clear_requests('echo');
}

$t->done;
