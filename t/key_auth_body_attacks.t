#!/usr/bin/perl
# key_auth_body_field under attack (the adversarial review): ways a client
# might get a body key past key_auth_hide_credentials on to an upstream, or
# desynchronise the connection after a body key_auth read or refused.
# Each attack is a regression test: pipelined requests after a stripped,
# a refused (401, 400) or an over-max (413, unread) body are parsed at the
# right byte; Expect: 100-continue; Transfer-Encoding plus Content-Length;
# proxy_request_buffering off; client_body_in_file_only; mirror (also with
# satisfy any, where the field is stripped in the precontent phase);
# error_page after the upstream answered (the second upstream gets the
# stripped body too); HTTP/2 without content-length; %00 and + in the
# value. A second Content-Type header was a hole: with "text/plain" first
# and a form second, key_auth did not search the body and an upstream
# reading the last Content-Type found the key (hide on, anonymous consumer
# or satisfy any); now refused with 400 when one of them is a form. So was
# a form body with a Content-Encoding (the upstream may decode it and find
# the key key_auth could not search): now 415; and a form in a charset
# that is not ASCII-compatible (UTF-16, UTF-7, EBCDIC): 415. One
# Content-Type naming the form among other text ("…urlencoded, text/plain",
# which PHP reads as a form): 400.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;

$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_consumers {
        jack key=SECRET-jack;
        guest;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        key_auth on;
        key_auth_body_field apikey max=100;
        key_auth_hide_credentials on;

        location /h/ {
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /nobuf/ {
            proxy_request_buffering off;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /infile/ {
            client_body_in_file_only on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /mirror/ {
            mirror /_mirror;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /anymirror/ {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            mirror /_mirror;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location = /_mirror {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8082%%/mirrored$request_uri;
        }
        location /err/ {
            proxy_intercept_errors on;
            error_page 502 = @again;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location @again {
            proxy_set_header X-Echo-Ctl-Status "";
            proxy_pass http://127.0.0.1:%%PORT_8082%%/again$request_uri;
        }
        location /anon/ {
            key_auth_anonymous_consumer guest;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
    }
    server {
        listen 127.0.0.1:%%PORT_8083%%;
        underscores_in_headers on;
        key_auth on;
        key_auth_body_field apikey max=100;
        key_auth_hide_credentials on;
        key_auth_anonymous_consumer guest;
        location /u/ {
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
    }
}
EOF2

$t->run_echo_server(8082);
$t->run;

my $FORM = 'application/x-www-form-urlencoded';
sub echoes { $t->requests('echo') }
sub count { scalar(my @r = echoes()) }
sub hdr {
    my ($j, $name) = @_;
    return join ',', map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ ($j || {})->{headers} || [] };
}
sub no_key_upstream {
    my ($name) = @_;
    my @leaks = grep { ($_->{body} // '') =~ /SECRET/ || grep { "@$_" =~ /SECRET/ } @{ $_->{headers} } } echoes();
    is(scalar @leaks, 0, "$name: no upstream request holds the key") or diag explain \@leaks;
}
sub post_raw {
    my ($uri, $body, @headers) = @_;
    return "POST $uri HTTP/1.1\r\nHost: localhost\r\nContent-Type: $FORM\r\n"
        . join('', map { "$_\r\n" } @headers)
        . "Content-Length: " . length($body) . "\r\n\r\n" . $body;
}

# 1. Pipelining: three requests in one write on one keep-alive connection;
#    the first body is stripped (shorter), the second has no key in the body
#    (401, read), the third uses a header key. Each is parsed at its byte.
{
    $t->clear_requests('echo');
    my $raw = post_raw('/h/one', 'a=1&apikey=SECRET-jack&b=2')
        . post_raw('/h/two', 'x=GET%20/h/smuggled')
        . "GET /h/three HTTP/1.1\r\nHost: localhost\r\napikey: SECRET-jack\r\nConnection: close\r\n\r\n";
    my @r = parse_responses(http($raw));
    is(join(' ', map { $_->{status} } @r), '200 401 200', 'pipelined: 200, 401, 200 in order');
    my @e = echoes();
    is(join(' ', map { $_->{path} } @e), '/h/one /h/three', 'pipelined: the upstream saw the first and the third');
    is($e[0]{body}, 'a=1&b=2', 'pipelined: the first body stripped');
    no_key_upstream('pipelined');
}

# 2. A body over max= announced by Content-Length is refused before it is
#    read; the unread body (a whole request with a valid key) is not parsed
#    as the next request.
{
    $t->clear_requests('echo');
    my $smuggled = "GET /h/smuggled HTTP/1.1\r\nHost: localhost\r\napikey: SECRET-jack\r\n\r\n";
    my $body = 'a=' . ('x' x 100) . '&' . $smuggled;
    my $raw = post_raw('/h/big', $body) . "GET /h/after HTTP/1.1\r\nHost: localhost\r\napikey: SECRET-jack\r\nConnection: close\r\n\r\n";
    my @r = parse_responses(http($raw));
    is($r[0]{status}, 413, 'over max: 413');
    my @paths = map { $_->{path} } echoes();
    ok(!grep({ $_ eq '/h/smuggled' } @paths), 'over max: the unread body is not a request') or diag "@paths";
    ok(@r == 1 || $r[1]{status} == 200 && "@paths" eq '/h/after',
       'over max: the connection is closed, or the next request is the one sent after the body')
        or diag "@paths";
    # a duplicate field: read, then 400
    $t->clear_requests('echo');
    $raw = post_raw('/h/dup', 'apikey=SECRET-jack&apikey=x')
        . "GET /h/after HTTP/1.1\r\nHost: localhost\r\napikey: SECRET-jack\r\nConnection: close\r\n\r\n";
    @r = parse_responses(http($raw));
    is($r[0]{status}, 400, 'field twice, pipelined: 400');
    @paths = map { $_->{path} } echoes();
    ok("@paths" eq '' || "@paths" eq '/h/after', 'field twice, pipelined: nothing else reached the upstream') or diag "@paths";
}

# 3. Expect: 100-continue: nginx sends 100 before reading; the body is then
#    read and stripped.
{
    $t->clear_requests('echo');
    my $body = 'apikey=SECRET-jack&c=3';
    my $head = "POST /h/expect HTTP/1.1\r\nHost: localhost\r\nContent-Type: $FORM\r\nExpect: 100-continue\r\n"
        . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n";
    my $resp = http($head, parts => [$body], delay => 0.3);
    like($resp, qr{^HTTP/1\.1 100 Continue\r\n\r\nHTTP/1\.1 200 }s, 'Expect: 100-continue, then 200');
    is((echoes())[-1]{body}, 'c=3', 'Expect: the body stripped');
}

# 4. Transfer-Encoding and Content-Length together: nginx refuses (400),
#    nothing reaches the upstream.
{
    $t->clear_requests('echo');
    my $raw = "POST /h/te HTTP/1.1\r\nHost: localhost\r\nContent-Type: $FORM\r\nContent-Length: 5\r\n"
        . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n16\r\napikey=SECRET-jack&d=4\r\n0\r\n\r\n";
    is(http_status(http($raw)), 400, 'Transfer-Encoding with Content-Length: 400');
    is(count(), 0, 'Transfer-Encoding with Content-Length: the upstream is not asked');
}

# 5. Ways the body can reach an upstream: unbuffered proxying, a body kept
#    in a file only, a mirror (with key_auth in the access phase, and under
#    satisfy any where key_auth only strips, in the precontent phase), a
#    second upstream after error_page.
for my $case (['/nobuf/x', 1], ['/infile/x', 1], ['/mirror/x', 2], ['/anymirror/x', 2]) {
    my ($uri, $n) = @$case;
    $t->clear_requests('echo');
    my $r = http_post($uri, 'a=1&apikey=SECRET-jack&e=5', content_type => $FORM);
    is(http_status($r), 200, "$uri: 200") or diag $r;
    for (1 .. 50) { last if count() >= $n; select undef, undef, undef, 0.05 }
    my @e = echoes();
    is(scalar @e, $n, "$uri: $n upstream request(s)");
    is(join(' ', map { $_->{body} } @e), join(' ', ('a=1&e=5') x $n), "$uri: every upstream body stripped");
    is(join(' ', map { hdr($_, 'Content-Length') } @e), join(' ', (7) x $n), "$uri: Content-Length matches");
}
{
    $t->clear_requests('echo');
    my $r = http_post('/err/x', 'a=1&apikey=SECRET-jack&e=5', content_type => $FORM,
                      headers => ['X-Echo-Ctl-Status: 502']);
    is(http_status($r), 200, 'error_page after the upstream: the second upstream answers');
    my @e = echoes();
    is(join(' ', map { $_->{path} } @e), '/err/x /again/err/x', 'error_page: both upstreams asked');
    is(join(' ', map { $_->{body} } @e), 'a=1&e=5 a=1&e=5', 'error_page: both got the stripped body');
}

# 6. HTTP/2 without content-length (curl streams stdin).
SKIP: {
    skip 'curl without HTTP/2', 3 unless `curl -V 2>/dev/null` =~ /HTTP2/;
    $t->clear_requests('echo');
    my $port = http2_port($t->port(8080));
    my $out = `printf 'apikey=SECRET-jack&f=6' | curl -sS -i --http2-prior-knowledge -X POST -T - -H 'Content-Type: $FORM' http://127.0.0.1:$port/h/h2 2>&1`;
    like($out, qr{^HTTP/2 200}, 'HTTP/2 without content-length: 200') or diag $out;
    my $j = (echoes())[-1];
    is($j->{body}, 'f=6', 'HTTP/2 without content-length: stripped');
    is(hdr($j, 'Content-Length'), 3, 'HTTP/2 without content-length: Content-Length set');
}

# 7. Values: a NUL or a plus makes another key (401), never a prefix match.
for my $v ('SECRET-jack%00', 'SECRET-jack%00x', 'SECRET+jack', 'SECRET-jac', 'SECRET-jackk', '%53ECRET-jack') {
    $t->clear_requests('echo');
    my $r = http_post('/h/x', "apikey=$v", content_type => $FORM);
    my $want = $v eq '%53ECRET-jack' ? 200 : 401;
    is(http_status($r), $want, "value '$v': $want");
}
no_key_upstream('values');

# 8. Two Content-Type headers (one a form): the upstream could read either;
#    key_auth does not guess (400), whichever comes first.
for my $cts (["text/plain", $FORM], [$FORM, "text/plain"]) {
    for my $uri ('/h/x', '/anon/x', '/anymirror/x') {
        $t->clear_requests('echo');
        my $raw = "POST $uri HTTP/1.1\r\nHost: localhost\r\nContent-Type: $cts->[0]\r\nContent-Type: $cts->[1]\r\n"
            . "Content-Length: 18\r\nConnection: close\r\n\r\napikey=SECRET-jack";
        is(http_status(http($raw)), 400, "$uri, Content-Type $cts->[0] then $cts->[1]: 400");
        is(count(), 0, "$uri, two Content-Types: the upstream is not asked");
    }
}

ok($t->grep_log(qr/\[info\].*key_auth: the request has 2 "Content-Type" headers, one a form; refused \(400\), client: 127\.0\.0\.1, uri: "\/h\/x"/),
   'two Content-Types: logged at info');
# two Content-Types, neither a form: not a form body, not searched (401)
is(http_status(http("POST /h/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Type: text/csv\r\n"
    . "Content-Length: 18\r\nConnection: close\r\n\r\napikey=SECRET-jack")), 401, 'two Content-Types, no form: 401 (not searched)');

# 8b. One Content-Type whose media type names the form among other text:
#     no form to nginx's reading, but PHP cuts the media type at "," or a
#     space and parses the body as a form. key_auth does not guess (400),
#     also with an anonymous consumer and under satisfy any.
for my $ct ("$FORM, text/plain", "text/plain, $FORM", "$FORM text/plain; charset=utf-8") {
    for my $uri ('/h/x', '/anon/x', '/anymirror/x') {
        $t->clear_requests('echo');
        my $r = http_post($uri, 'apikey=SECRET-jack', content_type => $ct);
        is(http_status($r), 400, "$uri, Content-Type '$ct': 400");
        is(count(), 0, "$uri, Content-Type '$ct': the upstream is not asked");
    }
}
ok($t->grep_log(qr/\[info\].*key_auth: the request's "Content-Type" names a form among other text; refused \(400\), client: 127\.0\.0\.1, uri: "\/h\/x"/),
   'a form among other text: logged at info');
# a form type in a parameter is no form and not ambiguous: not searched (401)
is(http_status(http_post('/h/x', 'apikey=SECRET-jack', content_type => "text/plain; x=$FORM")), 401,
   'a form type in a parameter: not a form, not searched (401)');

# 8c. underscores_in_headers on: "Content_Type" and "Content_Encoding" are
#     headers of their own that nginx passes on, and CGI-style gateways may
#     read as the same: they count as Content-Type and Content-Encoding.
{
    my $uport = $t->port(8083);
    my $u = sub { http($_[0], port => $uport) };
    for my $cts (["Content-Type: text/plain", "Content_Type: $FORM"], ["Content_Type: text/plain", "Content-Type: $FORM"]) {
        $t->clear_requests('echo');
        my $raw = "POST /u/x HTTP/1.1\r\nHost: localhost\r\n$cts->[0]\r\n$cts->[1]\r\n"
            . "Content-Length: 18\r\nConnection: close\r\n\r\napikey=SECRET-jack";
        is(http_status($u->($raw)), 400, "underscores: $cts->[0], $cts->[1]: 400");
        is(count(), 0, "underscores: $cts->[0], $cts->[1]: the upstream is not asked");
    }
    $t->clear_requests('echo');
    my $raw = "POST /u/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: $FORM\r\nContent_Encoding: gzip\r\n"
        . "Content-Length: 18\r\nConnection: close\r\n\r\napikey=SECRET-jack";
    is(http_status($u->($raw)), 415, 'underscores: Content_Encoding: gzip on a form: 415');
    is(count(), 0, 'underscores: Content_Encoding: the upstream is not asked');
    # one form Content-Type, nothing else: searched and stripped as usual
    $raw = "POST /u/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: $FORM\r\n"
        . "Content-Length: 22\r\nConnection: close\r\n\r\napikey=SECRET-jack&u=1";
    is(http_status($u->($raw)), 200, 'underscores server: a plain form body: 200');
    is((echoes())[-1]{body}, 'u=1', 'underscores server: stripped');
}

# 9. A form body with a Content-Encoding (gzip of "apikey=SECRET-jack"):
#    key_auth cannot search the coded bytes, an upstream that decodes them
#    would find the key: refused with 415, also with an anonymous consumer
#    and under satisfy any. "identity" is no coding.
{
    use IO::Compress::Gzip qw(gzip $GzipError);
    gzip(\'apikey=SECRET-jack' => \my $gz) or die $GzipError;
    for my $uri ('/h/x', '/anon/x', '/anymirror/x') {
        for my $ce ('gzip', 'GZIP', 'identity, gzip') {
            $t->clear_requests('echo');
            my $r = http_post($uri, $gz, content_type => $FORM, headers => ["Content-Encoding: $ce"]);
            is(http_status($r), 415, "$uri, Content-Encoding: $ce: 415");
            is(count(), 0, "$uri, Content-Encoding: $ce: the upstream is not asked");
        }
    }
    ok($t->grep_log(qr/\[info\].*key_auth: a form body with a "Content-Encoding" cannot be searched; refused \(415\), client: 127\.0\.0\.1, uri: "\/h\/x"/),
       'Content-Encoding: logged at info');
    my $r = http_post('/h/x', 'apikey=SECRET-jack&g=7', content_type => $FORM, headers => ['Content-Encoding: identity']);
    is(http_status($r), 200, 'Content-Encoding: identity: searched as usual');
    is((echoes())[-1]{body}, 'g=7', 'Content-Encoding: identity: stripped');
}

# 10. A charset that is not ASCII-compatible (UTF-16, UTF-7, EBCDIC):
#     "%00a%00p%00i%00k%00e%00y" is the field "apikey" to an upstream that
#     decodes the form with charset=utf-16be, and another field to
#     key_auth's bytes; refused with 415. UTF-8, ASCII, Latin-1 are searched.
for my $cs ('utf-16be', 'UTF-16', '"utf-16le"', 'utf-7', 'ibm037', 'x-unknown') {
    for my $uri ('/h/x', '/anon/x', '/anymirror/x') {
        $t->clear_requests('echo');
        my $r = http_post($uri, '%00a%00p%00i%00k%00e%00y=%00S%00E%00C%00R%00E%00T', content_type => "$FORM; charset=$cs");
        is(http_status($r), 415, "$uri, charset=$cs: 415");
        is(count(), 0, "$uri, charset=$cs: the upstream is not asked");
    }
}
ok($t->grep_log(qr/\[info\].*key_auth: a form body in a charset other than UTF-8, ASCII or Latin-1 cannot be searched; refused \(415\), client: 127\.0\.0\.1, uri: "\/h\/x"/),
   'charset: logged at info');
for my $cs ('utf-8', 'UTF-8', '"utf-8"', 'us-ascii', 'iso-8859-1', 'ISO-8859-15', 'windows-1252', 'utf8') {
    my $r = http_post('/h/x', 'apikey=SECRET-jack&h=8', content_type => "$FORM; charset=$cs");
    is(http_status($r), 200, "charset=$cs: searched") or diag $r;
    is((echoes())[-1]{body}, 'h=8', "charset=$cs: stripped");
}

no_key_upstream('all attacks');
$t->done;
