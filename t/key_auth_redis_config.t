#!/usr/bin/perl
# key_auth_quota_store: every bad value is refused by nginx -t with
# "[emerg] ... in FILE:LINE" naming the directive and the value, and no
# message ever shows the password; password_file= is read (relative to
# nginx.conf's directory), a missing or empty one refused; good forms pass.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('key_auth is ours only');
$t->write_file('index.html', "x\n");

sub conf_with {
    my ($http_body, $zone) = @_;
    $zone //= '';
    return <<"EOF";
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
$zone
$http_body
    key_auth_consumers {
        jack key=jack-key limit=3/30s;
    }
    server {
        listen 127.0.0.1:%%PORT_8090%%;
        location / { key_auth on; alias %%TESTDIR%%/index.html; }
    }
}
EOF
}

sub line_of {
    my ($conf) = @_;
    my @l = split /\n/, $conf;
    for my $i (0 .. $#l) { return $i + 1 if $l[$i] =~ /#L$/ }
    die "no #L marker";
}

sub refused {
    my ($name, $msg, $body, $zone) = @_;
    my $conf = conf_with($body, $zone);
    my ($rc, $out, $file) = $t->nginx_t($conf);
    isnt($rc, 0, "$name: nginx -t fails");
    my $line = line_of($conf);
    like($out, qr/\[emerg\] \Q$msg\E in \Q$file\E:$line$/m, "$name: [emerg] at line $line")
        or diag $out;
    unlike($out, qr/topsecret/, "$name: the password is not shown");
}

sub accepted {
    my ($name, $body, $zone) = @_;
    my ($rc, $out) = $t->nginx_t(conf_with($body, $zone));
    is($rc, 0, "$name: accepted") or diag $out;
    unlike($out, qr/topsecret/, "$name: the password is not shown");
}

my $D = '"key_auth_quota_store": ';
my $U = 'redis://u:topsecret@127.0.0.1:6379';

refused('not redis', $D . 'the store must be a "redis://" URL',
        "key_auth_quota_store http://u:topsecret\@127.0.0.1:6379; #L");
refused('tls', $D . '"rediss://" (TLS) is not supported; use "redis://"',
        "key_auth_quota_store rediss://u:topsecret\@127.0.0.1:6379; #L");
refused('port 0', $D . 'invalid port "0" in the URL',
        "key_auth_quota_store redis://u:topsecret\@127.0.0.1:0; #L");
refused('port text', $D . 'invalid port "x" in the URL',
        "key_auth_quota_store redis://u:topsecret\@127.0.0.1:x; #L");
refused('no host', $D . 'invalid host "" in the URL',
        "key_auth_quota_store redis://u:topsecret\@:6379; #L");
refused('bad db', $D . 'invalid database "one" in the URL',
        "key_auth_quota_store $U/one; #L");
refused('bad percent', $D . "invalid percent-encoding in the URL's password",
        "key_auth_quota_store redis://u:top%zzsecret\@127.0.0.1:6379; #L");
refused('empty password', $D . 'empty password in the URL',
        "key_auth_quota_store redis://u:\@127.0.0.1:6379; #L");
refused('timeout 0', $D . 'invalid "timeout=0": expected 1ms to 60s, e.g. 50ms',
        "key_auth_quota_store $U timeout=0; #L");
refused('timeout long', $D . 'invalid "timeout=61s": expected 1ms to 60s, e.g. 50ms',
        "key_auth_quota_store $U timeout=61s; #L");
refused('timeout word', $D . 'invalid "timeout=soon": expected 1ms to 60s, e.g. 50ms',
        "key_auth_quota_store $U timeout=soon; #L");
refused('on_error', $D . 'invalid "on_error=maybe": it must be "deny", "local" or "allow"',
        "key_auth_quota_store $U on_error=maybe; #L");
refused('prefix', $D . 'invalid "prefix=a\\x01b": at most 256 visible characters',
        "key_auth_quota_store $U prefix=a\x01b; #L");
refused('unknown option', $D . 'unknown option "colour=blue"',
        "key_auth_quota_store $U colour=blue; #L");
refused('bare word', $D . 'unknown option "fast"',
        "key_auth_quota_store $U fast; #L");
refused('duplicate option',
        '"key_auth_quota_store": duplicate option "timeout=2s" (already given as "timeout=1s")',
        "key_auth_quota_store $U timeout=1s timeout=2s; #L");
refused('both passwords', $D . '"password_file=" and a password in the URL: give one of them',
        "key_auth_quota_store $U password_file=pw; #L");
refused('missing password file',
        $D . 'cannot read "password_file=nonexistent.pw": No such file or directory (os error 2)',
        "key_auth_quota_store redis://u\@127.0.0.1:6379 password_file=nonexistent.pw; #L");
$t->write_file('empty.pw', "\nsecond line\n");
refused('empty password file', $D . '"password_file=empty.pw" holds no password on its first line',
        "key_auth_quota_store redis://127.0.0.1:6379 password_file=empty.pw; #L");
refused('unresolvable', $D . 'cannot resolve "no-such-host.invalid:6379": host not found',
        "key_auth_quota_store redis://u:topsecret\@no-such-host.invalid:6379; #L");
refused('duplicate', '"key_auth_quota_store" directive is duplicate',
        "key_auth_quota_store $U;\n    key_auth_quota_store $U; #L");
refused('on_error=local needs a zone',
        '"key_auth_quota_store" has "on_error=local" but no "key_auth_zone" is configured to count in,',
        "key_auth_quota_store $U on_error=local; #L");

# server level is not its place
{
    my $conf = conf_with('');
    $conf =~ s/(listen [^\n]*\n)/$1        key_auth_quota_store redis:\/\/127.0.0.1:6379;\n/;
    my ($rc, $out, $file) = $t->nginx_t($conf);
    isnt($rc, 0, 'server level: refused');
    like($out, qr/\[emerg\] "key_auth_quota_store" directive is not allowed here in \Q$file\E:\d+/,
         'server level: not allowed here')
        or diag $out;
}

# good forms (nginx -t does not connect)
$t->write_file('redis.pw', "topsecret\n");
accepted('defaults', 'key_auth_quota_store redis://127.0.0.1:6379;');
accepted('no port', 'key_auth_quota_store redis://localhost;');
accepted('every option', "key_auth_quota_store $U/2 timeout=1s prefix=gate: on_error=allow;");
accepted('acl user and password file (relative to nginx.conf)',
         'key_auth_quota_store redis://gate@127.0.0.1:6379 password_file=redis.pw on_error=deny;');
accepted('password file, absolute',
         'key_auth_quota_store redis://127.0.0.1:6379 password_file=' . $t->testdir . '/redis.pw;');
accepted('local with a zone', "key_auth_quota_store $U on_error=local;", 'key_auth_zone z 1m;');
accepted('a quota store instead of a zone', 'key_auth_quota_store redis://127.0.0.1:6379;');
accepted('ipv6', 'key_auth_quota_store redis://[::1]:6379;');

$t->done;
