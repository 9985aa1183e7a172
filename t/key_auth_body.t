#!/usr/bin/perl
# key_auth_body_field (issue 14 item 5): the key in an
# application/x-www-form-urlencoded body, after the header and the query
# argument. The body is read without being consumed: the upstream gets it
# whole (Content-Length, chunked, HTTP/2, from memory or a temporary file);
# with key_auth_hide_credentials on, without the field, every other byte
# kept and Content-Length matching. Other content types, no body, GET: the
# body is not searched. A field given twice: 400; a body over max=: 413;
# neither ever reaches the upstream. A client that aborts or stalls while
# sending the body never gets through. The key reaches no log.

use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use Digest::MD5 qw(md5_hex);
use Time::HiRes qw(sleep);
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    log_format body '$request_body|$content_length|$request_body_file';
    client_body_buffer_size 16k;
    key_auth_consumers {
        jack key=SECRET-jack credential=cred-jack;
        guest;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        key_auth on;
        key_auth_body_field apikey;

        location /off/ {
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /h/ {
            key_auth_hide_credentials on;
            access_log %%TESTDIR%%/body.log body;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /file/ {
            client_body_buffer_size 128;
            key_auth_body_field apikey max=1m;
            location /file/h/ {
                key_auth_hide_credentials on;
                access_log %%TESTDIR%%/file.log body;
                proxy_pass http://127.0.0.1:%%PORT_8082%%;
            }
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /small/ {
            key_auth_body_field apikey max=100;
            key_auth_hide_credentials on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /anon/ {
            key_auth_anonymous_consumer guest;
            key_auth_hide_credentials on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /token/ {
            key_auth_body_field token;
            key_auth_hide_credentials on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /none/ {
            key_auth_body_field off;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /slow/ {
            client_body_timeout 1s;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
    }
}
EOF

$t->run_echo_server(8082);
$t->run;

my $FORM = 'application/x-www-form-urlencoded';
sub count { scalar(my @r = $t->requests('echo')) }
sub last_echo { ($t->requests('echo'))[-1] }
sub hdr {
    my ($j, $name) = @_;
    return join ',', map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ ($j || {})->{headers} || [] };
}
sub post {
    my ($uri, $body, %o) = @_;
    my $ct = delete $o{content_type} // $FORM;
    return http2_request($uri, method => 'POST', body => $body,
                         headers => ["Content-Type: $ct", @{ $o{headers} || [] }])
        if delete $o{h2};
    return http_post($uri, $body, content_type => $ct, %o);
}
# Sends one request and checks what the upstream got.
sub through {
    my ($name, $uri, $body, $want, %o) = @_;
    my $n = count();
    my $r = post($uri, $body, %o);
    is(http_status($r), 200, "$name: allowed") or diag($r);
    is(count(), $n + 1, "$name: the upstream is asked once");
    my $j = last_echo();
    if (length $want <= 4096) {
        is($j->{body}, $want, "$name: the upstream's body");
    } else {
        is($j->{body_md5}, md5_hex($want), "$name: the upstream's body (MD5)");
    }
    is($j->{body_length}, length $want, "$name: its length");
    is(hdr($j, 'Content-Length'), length $want, "$name: Content-Length matches");
    is(hdr($j, 'Transfer-Encoding'), '', "$name: not chunked");
    is(hdr($j, 'X-Consumer-Username'), $o{consumer} // 'jack', "$name: the consumer");
    return $j;
}
sub refused {
    my ($name, $status, $uri, $body, %o) = @_;
    my $n = count();
    my $r = post($uri, $body, %o);
    is(http_status($r), $status, "$name: $status") or diag($r);
    is(count(), $n, "$name: the upstream is not asked");
    return $r;
}

# 1. The body reaches the upstream whole (hide off), every way it can come.
my $b = 'a=1&apikey=SECRET-jack&b=%20+2';
for my $how ([], [chunked => 1, chunk_size => 5], [h2 => 1]) {
    my $w = @$how ? $how->[0] : 'Content-Length';
    through("hide off, $w", '/off/x', $b, $b, @$how);
}
my $big = 'pad=' . ('x' x 5000) . '&apikey=SECRET-jack&tail=' . ('y' x 3000);
for my $how ([], [chunked => 1, chunk_size => 700], [h2 => 1]) {
    my $w = @$how ? $how->[0] : 'Content-Length';
    through("temporary file, hide off, $w", '/file/x', $big, $big, @$how);
}

# 2. hide on: the field is gone, every other byte kept, Content-Length right.
for my $case (['apikey=SECRET-jack&a=1', 'a=1'],
              ['a=1&apikey=SECRET-jack&b=%20+2', 'a=1&b=%20+2'],
              ['a=1&apikey=SECRET-jack', 'a=1'],
              ['apikey=SECRET-jack', ''],
              ['a=1&&api%6Bey=SECRET%2Djack&', 'a=1&&'],
              ['x=apikey&apikey=SECRET-jack&apikeys=2', 'x=apikey&apikeys=2']) {
    my ($in, $out) = @$case;
    for my $how ([], [chunked => 1, chunk_size => 3], [h2 => 1]) {
        my $w = @$how ? $how->[0] : 'Content-Length';
        through("hide on, '$in', $w", '/h/x', $in, $out, @$how);
    }
}
(my $big_out = $big) =~ s/&apikey=SECRET-jack//;
for my $how ([], [chunked => 1, chunk_size => 700], [h2 => 1]) {
    my $w = @$how ? $how->[0] : 'Content-Length';
    through("temporary file, hide on, $w", '/file/h/x', $big, $big_out, @$how);
}
my @log = split /\n/, $t->read_file('body.log');
is($log[-1], 'x=apikey&apikeys=2|18|-', 'hide on: $request_body and $content_length show the body without the key');
@log = split /\n/, $t->read_file('file.log');
like($log[-1], qr/^[^|]*\|\d+\|-$/, 'hide on: $request_body_file no longer names the file holding the key');

# 3. Content types: a form with parameters or in capitals is a form; others
#    are not searched (401, the usual "missing").
through('charset parameter', '/h/x', 'apikey=SECRET-jack', '', content_type => "$FORM; charset=utf-8");
through('capitals', '/h/x', 'apikey=SECRET-jack', '', content_type => 'Application/X-WWW-Form-URLEncoded');
for my $ct ('text/plain', 'multipart/form-data; boundary=x', 'application/json', "${FORM}x") {
    my $r = refused("Content-Type $ct", 401, '/h/x', 'apikey=SECRET-jack', content_type => $ct);
    like($r, qr/Missing API key/, "Content-Type $ct: the key is missing");
}
my $r = http_get('/h/x');
is(http_status($r), 401, 'GET without a body: 401');
refused('empty form body', 401, '/h/x', '');
refused('no such field', 401, '/h/x', 'a=1&api=SECRET-other');
$r = refused('an unknown key', 401, '/h/x', 'apikey=SECRET-nope');
like($r, qr/Invalid API key/, 'an unknown key: invalid');
through('another field name', '/token/x', 'apikey=1&token=SECRET-jack', 'apikey=1');
refused('key_auth_body_field off', 401, '/none/x', 'apikey=SECRET-jack');

# 4. Precedence: header, then query argument, then body. A header (even a
#    wrong one) is the key; the body is not read then, and stays as it was.
my $j = through('header beats body', '/h/x', 'apikey=SECRET-wrong&a=1', 'apikey=SECRET-wrong&a=1',
                headers => ['apikey: SECRET-jack']);
is(hdr($j, 'apikey'), '', 'header beats body: the header is hidden');
refused('a wrong header beats a right body', 401, '/h/x', 'apikey=SECRET-jack', headers => ['apikey: nope']);
$j = through('query beats body', '/h/x?apikey=SECRET-jack&q=1', 'apikey=SECRET-wrong', 'apikey=SECRET-wrong');
is($j->{uri}, '/h/x?q=1', 'query beats body: the argument is hidden');
refused('a wrong query beats a right body', 401, '/h/x?apikey=nope', 'apikey=SECRET-jack');

# 5. A field given twice is ambiguous: 400 (even with an anonymous consumer).
refused('field twice', 400, '/h/x', 'apikey=SECRET-jack&apikey=SECRET-jack');
refused('field twice, once encoded', 400, '/h/x', 'apikey=SECRET-jack&api%6bey=x');
refused('field twice, anonymous consumer', 400, '/anon/x', 'apikey=x&apikey=y');
ok($t->grep_log(qr/\[info\].*key_auth: the form body holds the field "apikey" more than once; refused \(400\), client: 127\.0\.0\.1, uri: "\/h\/x"/),
   'field twice: logged at info');

# 6. The anonymous consumer: a wrong key from the body is hidden too.
through('anonymous, wrong key hidden', '/anon/x', 'a=1&apikey=SECRET-wrong', 'a=1', consumer => 'guest');
through('anonymous, no key', '/anon/x', 'a=1', 'a=1', consumer => 'guest');

# 7. max=: a form body over it is 413, never searched in part.
my $hundred = 'apikey=SECRET-jack&p=' . ('z' x 79);
is(length $hundred, 100, 'a body of exactly max');
through('exactly max=100', '/small/x', $hundred, 'p=' . ('z' x 79));
refused('max=100, 101 bytes', 413, '/small/x', "${hundred}z");
refused('max=100, 101 bytes chunked', 413, '/small/x', "${hundred}z", chunked => 1, chunk_size => 30);
refused('max=100, key first then padding', 413, '/small/x', 'apikey=SECRET-jack&' . ('p' x 200));
refused('max=100, 101 bytes over HTTP/2 without Content-Length', 413, '/small/x', "${hundred}z",
        h2 => 1, headers => ['Content-Length:']);
through('exactly max=100 over HTTP/2', '/small/x', $hundred, 'p=' . ('z' x 79), h2 => 1);
ok($t->grep_log(qr/key_auth_body_field: client body of 101 bytes is larger than max=100/), 'over max=: logged');
refused('default max=64k', 413, '/h/x', 'apikey=SECRET-jack&p=' . ('q' x 65536));
# other content types are not read, whatever their size
through('a large non-form body with a header key', '/h/x', 'q' x 70000, 'q' x 70000,
        content_type => 'application/octet-stream', headers => ['apikey: SECRET-jack']);

# 8. Fail closed: a client that stops sending or goes away mid-body.
{
    my $n = count();
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port(8080), Proto => 'tcp');
    print $s "POST /slow/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: $FORM\r\n"
        . "Content-Length: 100\r\nConnection: close\r\n\r\napikey=SECRET-jack&a=";
    my $resp = '';
    local $SIG{ALRM} = sub { die "timeout\n" };
    alarm 10;
    eval { while (sysread($s, my $buf, 4096)) { $resp .= $buf } };
    alarm 0;
    like($resp, qr{^HTTP/1\.1 408|^$}, 'body timeout: 408 (or closed)');
    is(count(), $n, 'body timeout: the upstream is not asked');

    $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port(8080), Proto => 'tcp');
    print $s "POST /h/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: $FORM\r\n"
        . "Content-Length: 100\r\n\r\napikey=SECRET-jack&a=";
    sleep 0.3;
    close $s;
    sleep 0.5;
    is(count(), $n, 'client gone mid-body: the upstream is not asked');
}

# 9. The key reaches no upstream with hide on, no log line at all.
my @hidden = grep { $_->{uri} =~ m{^/(?:h|file/h|anon|small|token)/} } $t->requests('echo');
ok(@hidden > 20, 'hide on: many requests seen');
unlike(join("\n", map { $_->{body} . join('', map { "@$_" } @{ $_->{headers} }) } @hidden),
       qr/SECRET-jack/, 'hide on: the key reached no upstream');
$t->stop;
# An nginx built --with-debug dumps the request line, the arguments and
# the headers at [debug]: the keys the precedence tests send there (README:
# key_auth_hide_credentials, "The key in the error log"). No line shows a
# key sent in a body, at any level.
my @elog = grep { !/\[debug\].* http (?:header|request line|args): "/ } split /\n/, $t->error_log;
unlike(join("\n", @elog), qr/SECRET/, 'error log (at ' . ($t->has_debug ? 'debug' : 'info') . ' level): no key');
# (but the request whose client went away mid-body: nginx's $request_body
# then shows the part that arrived, never searched nor edited; README says so)
my @lines = grep { $_ ne 'apikey=SECRET-jack&a=|100|-' } split /\n/, $t->read_file('body.log') . $t->read_file('file.log');
unlike(join("\n", @lines), qr/SECRET-jack/, 'access log with $request_body: no key');

# 10. Refusals at nginx -t, with FILE:LINE.
my $base = <<'EOF';
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_consumers { jack key=SECRET-jack; }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location / {
            key_auth on;
            #HERE
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
    }
}
EOF
my $size_msg = 'it must be a size above 0 such as 16k or 1m';
for my $case (['key_auth_body_field "";', '"key_auth_body_field": invalid name ""'],
              ['key_auth_body_field a=b;', '"key_auth_body_field": invalid name "a=b"'],
              ['key_auth_body_field apikey max=0;', qq{"key_auth_body_field": invalid size in "max=0", $size_msg}],
              ['key_auth_body_field apikey max=-1;', qq{"key_auth_body_field": invalid size in "max=-1", $size_msg}],
              ['key_auth_body_field apikey max=lots;', qq{"key_auth_body_field": invalid size in "max=lots", $size_msg}],
              ['key_auth_body_field apikey max=;', qq{"key_auth_body_field": invalid size in "max=", $size_msg}],
              ['key_auth_body_field apikey size=1k;', '"key_auth_body_field": invalid option "size=1k"'],
              ['key_auth_body_field off max=1k;', '"key_auth_body_field off" takes no options, "max=1k" given'],
              ['key_auth_body_field apikey max=1k max=2k;', 'invalid number of arguments in "key_auth_body_field" directive'],
              ['key_auth_body_field;', 'invalid number of arguments in "key_auth_body_field" directive'],
              ['key_auth_body_field a; key_auth_body_field b;', '"key_auth_body_field" directive is duplicate'],
              ['if ($arg_x) { key_auth_body_field apikey; }', '"key_auth_body_field" directive is not allowed here']) {
    my ($line, $msg) = @$case;
    (my $c = $base) =~ s/#HERE/$line/ or die;
    my ($rc, $out, $file) = $t->nginx_t($c);
    isnt($rc, 0, "$line: refused");
    like($out, qr/\[emerg\] \Q$msg\E in \Q$file\E:10$/m, "$line: [emerg] at FILE:LINE") or diag $out;
}
(my $ok = $base) =~ s{#HERE}{key_auth_body_field apikey max=1m; location /in/ { key_auth_body_field off; }};
my ($rc, $out) = $t->nginx_t($ok);
is($rc, 0, 'max=1m and off accepted') or diag $out;

$t->done;
