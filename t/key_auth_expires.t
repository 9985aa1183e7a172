#!/usr/bin/perl
# key_auth (issue 14 §1): key lifetime and rotation.
#
#   * expires= on a key (RFC 3339 time or Unix time): from that second on
#     the key is an invalid key: 401 "Invalid API key in request" (or the
#     anonymous consumer, as for any invalid key), with an [info] line
#     naming the consumer and the credential, never the key;
#   * nginx -t warns about keys that are already expired (FILE:LINE);
#   * rotation: a consumer has several keys, each with its own credential
#     and expires; add the new key, reload, let the old one expire;
#   * bad values are refused with [emerg] ... in FILE:LINE.

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX qw(strftime);
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;
$t->write_file('p/x', "PROTECTED\n");

# bob's key expires 3 s after the start (15 s under valgrind, where nginx -t
# and the start alone take seconds), dave's old key as long after a reload
my $LIFE = AGTest::valgrind() ? 15 : 3;
my $bob_expires = int(time) + $LIFE;
my $future = strftime('%Y-%m-%dT%H:%M:%S+02:00', gmtime(time + 86400 * 365 + 7200));
$t->write_file('rotating.conf', "dave key=dave-1 credential=dave-1;\n");

my $conf = <<'EOF2';
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_consumers {
        jack key=jack-old-secret credential=jack-old expires=2020-01-01T00:00:00Z;
        jack key=jack-new-secret credential=jack-new expires=%%FUTURE%%;
        bob key=bob-secret credential=bob-1 expires=%%BOB%%;
        carol key=carol-secret expires=1000000000;
        anonymous;
        include %%TESTDIR%%/rotating.conf;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        add_header X-Consumer "$key_auth_consumer/$key_auth_credential" always;
        location /p/ {
            key_auth on;
            alias %%TESTDIR%%/p/;
        }
        location /anon/ {
            key_auth on;
            key_auth_anonymous_consumer anonymous;
            alias %%TESTDIR%%/p/;
        }
    }
}
EOF2
$conf =~ s/%%FUTURE%%/$future/;
$conf =~ s/%%BOB%%/$bob_expires/;

# nginx -t: warnings for the keys already expired, at their lines
my ($rc, $out, $file) = $t->nginx_t($conf);
is($rc, 0, 'nginx -t: expired keys are accepted') or diag $out;
like($out, qr/\[warn\] key_auth_consumers: the key of consumer "jack" \(credential "jack-old"\) expired at 2020-01-01T00:00:00Z: it is refused in \Q$file\E:6$/m,
     'nginx -t warns about jack-old at its line');
like($out, qr/\[warn\] key_auth_consumers: the key of consumer "carol" \(no credential=\) expired at 2001-09-09T01:46:40Z: it is refused in \Q$file\E:9$/m,
     'nginx -t warns about carol (Unix time) at its line');
is(scalar(() = $out =~ /\[warn\]/g), 2, 'and about nothing else');
unlike($out, qr/secret/, 'no key in the output');

$t->write_file_expand('nginx.conf', $conf);
$t->run;
# bob: valid, then expired while nginx runs (checked again at the end)
is(http_status(get('/p/x', 'bob-secret')), 200, 'bob before his expires: 200');

my $INVALID = '{"message":"Invalid API key in request"}';
sub get { my ($uri, $key, %o) = @_; http_get($uri, headers => [$key ? "apikey: $key" : ()], %o) }

my $r = get('/p/x', 'jack-old-secret');
is(http_status($r), 401, 'expired key: 401');
is(http_body($r), $INVALID, 'expired key: "Invalid API key in request"');
is(http_header($r, 'WWW-Authenticate'), 'apikey realm="key"', 'expired key: the challenge');
ok($t->wait_for_log(qr/\[info\].*key_auth: the key of consumer "jack" \(credential "jack-old"\) expired at 2020-01-01T00:00:00Z; refused as an invalid key, client: 127\.0\.0\.1, uri: "\/p\/x"$/m, 2),
   '[info] names the consumer and the credential');
$r = get('/p/x', 'jack-new-secret');
is(http_status($r), 200, 'the consumer\'s other key, not expired: 200');
is(http_header($r, 'X-Consumer'), 'jack/jack-new', 'as jack, credential jack-new');
$r = get('/p/x?apikey=jack-old-secret');
is(http_status($r), 401, 'expired key in the query: 401');
$r = http2_request('/p/x', headers => ['apikey: jack-old-secret']);
is(http_status($r), 401, 'HTTP/2: expired key: 401');
$r = get('/p/x', 'carol-secret');
is(http_status($r), 401, 'expired Unix time: 401');
ok($t->wait_for_log(qr/\[info\].*key_auth: the key of consumer "carol" \(no credential=\) expired at 2001-09-09T01:46:40Z/, 2),
   '[info] for a key without credential=');
$r = get('/anon/x', 'jack-old-secret');
is(http_status($r), 200, 'with an anonymous consumer: an expired key is an invalid key, served as anonymous');
is(http_header($r, 'X-Consumer'), 'anonymous/', 'as the anonymous consumer, without credential');


###############################################################################
# rotation: add the new key, reload, let the old one expire

is(http_status(get('/p/x', 'dave-1')), 200, 'rotation: the old key works');
is(http_status(get('/p/x', 'dave-2')), 401, 'rotation: the new key is not there yet');
my $dave_expires = int(time) + $LIFE;
$t->write_file('rotating.conf', "dave key=dave-1 credential=dave-1 expires=$dave_expires;\n"
                              . "dave key=dave-2 credential=dave-2;\n");
$t->reload;
# the old worker may still take a connection or two while it goes
# (until it has exited: five answers in a row from the new one)
my $in_a_row = 0;
for (1 .. 100) {
    $in_a_row = http_status(get('/p/x', 'dave-2')) == 200 ? $in_a_row + 1 : 0;
    last if $in_a_row == 5;
    sleep 0.05;
}
$r = get('/p/x', 'dave-1');
is(http_status($r), 200, 'rotation, after the reload: the old key still works');
is(http_header($r, 'X-Consumer'), 'dave/dave-1', 'rotation: credential dave-1');
$r = get('/p/x', 'dave-2');
is(http_status($r), 200, 'rotation, after the reload: the new key works');
is(http_header($r, 'X-Consumer'), 'dave/dave-2', 'rotation: credential dave-2');

sleep(0.2) while time < $dave_expires + 0.1 || time < $bob_expires + 0.1;
is(http_status(get('/p/x', 'bob-secret')), 401, 'bob after his expires: 401');
ok($t->wait_for_log(qr/\[info\].*key_auth: the key of consumer "bob" \(credential "bob-1"\) expired at /, 2),
   '[info] for bob');
is(http_status(get('/p/x', 'dave-1')), 401, 'rotation: the old key expired: 401');
is(http_status(get('/p/x', 'dave-2')), 200, 'rotation: the new key goes on');

$t->stop;
# (an nginx built --with-debug logs the request headers itself at [debug])
# (and continuation lines of its header dumps): entries of other levels only
my $logged = join "\n", grep { m{^\d{4}/\d\d/\d\d [\d:]{8} \[(?!debug\])} } split /\n/, $t->error_log;
unlike($logged, qr/secret|dave-1[^"]|dave-2[^"]/, 'no key in the error log');

###############################################################################
# refused values: [emerg] ... in FILE:LINE

for my $case (['expires=soon', 'invalid "expires" value "soon": expected an RFC 3339 time such as 2026-06-30T23:59:59Z, or a Unix time in seconds'],
              ['expires=2026-02-29T00:00:00Z', 'invalid "expires" value "2026-02-29T00:00:00Z": expected an RFC 3339 time'],
              ['expires=2026-06-30T23:59:59', 'invalid "expires" value "2026-06-30T23:59:59": expected an RFC 3339 time'],
              ['expires=', 'invalid "expires" value "": empty'],
              ['expires=1 expires=2', 'duplicate "expires"'],
              ['expires=253402300800', 'invalid "expires" value "253402300800": a Unix time after 9999-12-31T23:59:59Z']) {
    my ($attr, $msg) = @$case;
    my $c = $conf;
    $c =~ s/(bob key=bob-secret credential=bob-1) expires=\d+;/$1 $attr;/ or die;
    my ($rc, $out, $file) = $t->nginx_t($c);
    isnt($rc, 0, "$attr: refused");
    like($out, qr/\[emerg\] key_auth_consumers: consumer "bob": \Q$msg\E.* in \Q$file\E:8$/m, "$attr: [emerg] at FILE:LINE")
        or diag $out;
}
{
    my $c = $conf;
    $c =~ s/        anonymous;/        anonymous expires=2030-01-01T00:00:00Z;/ or die;
    my ($rc, $out, $file) = $t->nginx_t($c);
    isnt($rc, 0, 'expires without key: refused');
    like($out, qr/\[emerg\] key_auth_consumers: consumer "anonymous" has "expires" without "key" in \Q$file\E:10$/m,
         'expires without key: [emerg] at FILE:LINE') or diag $out;
}

$t->done;
