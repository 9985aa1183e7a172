#!/usr/bin/perl
# The worked example nginx-conf/oauth2-proxy.conf, end to end (issue 13
# "Proof"): an oauth2-proxy-shaped service (t/backends/AGBackend.pm mode
# oauth2: /oauth2/auth, /oauth2/start, /oauth2/callback) and a browser that
# follows redirects and keeps cookies, over HTTP/1.1 and HTTP/2:
#
#   unauthenticated -> 302 to /oauth2/start (passed through, never 500);
#   /oauth2/start -> callback -> the session cookie is set -> back to the page;
#   authenticated -> allowed, X-Auth-Request-User/-Email on the upstream (the
#   client's forged ones removed), the refreshed cookie and the cleared CSRF
#   cookie on the client; a revoked session starts over.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module('the opt-in auth_request directives are ours only');
my $example = $t->read_file($t->root . '/nginx-conf/oauth2-proxy.conf');
$example =~ s/127\.0\.0\.1:(8080|4180|8082)/127.0.0.1:%%PORT_$1%%/g;
$example =~ s/(listen 127\.0\.0\.1:%%PORT_8080%%;)/$1 http2 on;/;
$t->write_file_expand('nginx.conf', <<"EOF");
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
$example
}
EOF
$t->run_backend(4180, name => 'oauth2', mode => 'oauth2');
$t->run_echo_server(8082);
$t->run;

my $port = $t->port(8080);

# A browser: a cookie jar, and one request at a time.
sub browse {
    my ($proto, $jar, $uri, @extra) = @_;
    my @h = (%$jar ? ('Cookie: ' . join('; ', map { "$_=$jar->{$_}" } sort keys %$jar)) : (), @extra);
    my $r = $proto eq 'h2' ? http2_request($uri, headers => \@h) : http_get($uri, headers => \@h);
    for my $c (http_header($r, 'Set-Cookie')) {
        my ($n, $v, $attrs) = $c =~ /^([^=]+)=([^;]*)(.*)$/ or next;
        if ($attrs =~ /Max-Age=0/i) { delete $jar->{$n} } else { $jar->{$n} = $v }
    }
    return $r;
}

sub path_of {
    my ($location) = @_;
    $location //= '';
    $location =~ s{^https?://[^/]+}{};
    return $location;
}

for my $proto ('1.1', 'h2') {
    my %jar;
    $t->clear_requests('echo');

    # 1. not signed in: the sign-in redirect reaches the browser
    my $r = browse($proto, \%jar, '/app/page?x=1', 'X-Auth-Request-User: mallory');
    is(http_status($r), 302, "$proto: unauthenticated -> 302");
    my $loc = path_of(scalar http_header($r, 'Location'));
    is($loc, '/oauth2/start?rd=/app/page%3Fx%3D1', "$proto: to the sign-in flow, with the page to return to");
    is(scalar(my @e = $t->requests('echo')), 0, "$proto: the application is never asked");

    # 2. the sign-in flow (oauth2-proxy's own pages, proxied)
    $r = browse($proto, \%jar, $loc);
    is(http_status($r), 302, "$proto: /oauth2/start redirects");
    is($jar{_oauth2_proxy_csrf}, 'x5rf', "$proto: CSRF cookie set");
    $loc = path_of(scalar http_header($r, 'Location'));
    like($loc, qr{^/oauth2/callback\?code=c0de&state=}, "$proto: to the callback");
    $r = browse($proto, \%jar, $loc);
    is(http_status($r), 302, "$proto: callback redirects");
    is($jar{_oauth2_proxy}, 'session-1', "$proto: callback sets the session cookie");
    $loc = path_of(scalar http_header($r, 'Location'));
    is($loc, '/app/page?x=1', "$proto: back to the page");

    # 3. signed in: allowed, the user on the upstream, refreshed cookies
    $r = browse($proto, \%jar, $loc, 'X-Auth-Request-User: mallory', 'X_Auth_Request_Email: m@evil');
    is(http_status($r), 200, "$proto: authenticated -> allowed");
    my $body = json_body($r) // {};
    is($body->{uri}, '/app/page?x=1', "$proto: the application's answer");
    my ($e) = reverse $t->requests('echo');
    is_deeply([AGTest::req_header($e, 'X-Auth-Request-User')], ['alice'],
        "$proto: the user on the upstream (never the client's)");
    is_deeply([AGTest::req_header($e, 'X-Auth-Request-Email')], ['alice@example.com'],
        "$proto: the email on the upstream");
    is_deeply([AGTest::req_header($e, 'X_Auth_Request_Email')], [], "$proto: no forged spelling");
    is_deeply([http_header($r, 'Set-Cookie')],
        ['_oauth2_proxy=session-2; Path=/; HttpOnly; SameSite=Lax', '_oauth2_proxy_csrf=; Path=/; Max-Age=0'],
        "$proto: both Set-Cookie of the auth response reach the browser, in order");
    is($jar{_oauth2_proxy}, 'session-2', "$proto: session refreshed");
    ok(!exists $jar{_oauth2_proxy_csrf}, "$proto: CSRF cookie cleared");

    $r = browse($proto, \%jar, '/app/other');
    is(http_status($r), 200, "$proto: next page allowed");
    is($jar{_oauth2_proxy}, 'session-3', "$proto: refreshed again");

    # 4. a revoked session starts over
    $jar{_oauth2_proxy} = 'session-revoked';
    $r = browse($proto, \%jar, '/app/again');
    is(http_status($r), 302, "$proto: revoked -> 302");
    is(path_of(scalar http_header($r, 'Location')), '/oauth2/start?rd=/app/again', "$proto: sign in again");
}

$t->done;
