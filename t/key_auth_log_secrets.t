#!/usr/bin/perl
# The key never reaches the error log through the module's own lines, even
# when it travels in the query string (?apikey=KEY, which nginx's request
# context would print as `request: "GET /x?apikey=KEY HTTP/1.0"`), with
# key_auth_hide_credentials on and off: the consumer-restriction line
# (key_auth_allow / key_auth_deny), the zone-full line, the quota store's
# Redis-down line. Each line is still written, and names the client and the
# URI (without its arguments) instead.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

# Entries other than [debug]: an nginx built --with-debug logs the request
# headers and line itself at [debug].
sub logged {
    my ($t) = @_;
    return join "\n", grep { m{^\d{4}/\d\d/\d\d [\d:]{8} \[(?!debug\])} } split /\n/, $t->error_log;
}
sub get { my ($t, $uri) = @_; http_status(http_get($uri, port => $t->port(8080))) }

# 1. Restriction and zone full, one nginx.
{
    my $t = AGTest->new->skip_unless_module;
    my $n = 600;
    $t->write_file('many.conf', join '', map { "c$_ key=zsecret$_ limit=5/1m;\n" } 1 .. $n);
    $t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_zone small 32k;
    key_auth_consumers {
        jack key=jsecretkey;
        include %%TESTDIR%%/many.conf;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        key_auth on;
        key_auth_query apikey;
        location /deny-on/  { key_auth_deny jack; key_auth_hide_credentials on;  alias %%TESTDIR%%/; }
        location /deny-off/ { key_auth_deny jack; key_auth_hide_credentials off; alias %%TESTDIR%%/; }
        location /on/       { key_auth_hide_credentials on;  alias %%TESTDIR%%/; }
        location /off/      { key_auth_hide_credentials off; alias %%TESTDIR%%/; }
    }
}
EOF
    $t->write_file('index.html', "OK\n");
    $t->expect_errors(qr/key_auth zone is full/);
    $t->run;

    for my $hide (qw(on off)) {
        is(get($t, "/deny-$hide/index.html?apikey=jsecretkey"), 403, "hide $hide: denied consumer: 403");
    }
    my @deny = $t->grep_log(qr/\[error\].*key_auth: access forbidden to consumer "jack" by key_auth_deny/);
    is(scalar @deny, 2, 'restriction: the [error] line is written for each request') or diag($t->error_log);
    like($deny[0] // '', qr/, client: 127\.0\.0\.1, uri: "\/deny-on\/index\.html"$/,
         'restriction: the line names the client and the URI without arguments');

    my ($room) = map { /room for (\d+) limited consumers/ ? $1 : () } $t->grep_log(qr/room for/);
    ok($room && $room < $n - 2, "small zone has room for $room counters") or diag($t->error_log);
    $room //= $n - 2;
    my %st;
    $st{ get($t, '/on/index.html?apikey=zsecret' . $_) }++ for 1 .. $room;
    is_deeply(\%st, { 200 => $room }, "$room consumers counted");
    my $first_full = $room + 1;
    is(get($t, "/on/index.html?apikey=zsecret$first_full"), 503, 'hide on: zone full: 503');
    is(get($t, '/off/index.html?apikey=zsecret' . ($first_full + 1)), 503, 'hide off: zone full: 503');
    my @full = $t->grep_log(qr/\[error\].*key_auth zone is full: cannot count the requests of consumer "c\d+"/);
    is(scalar @full, 2, 'zone full: the [error] line is written for each request') or diag($t->error_log);
    like($full[1] // '', qr/\(make key_auth_zone larger\), client: 127\.0\.0\.1, uri: "\/off\/index\.html"$/,
         'zone full: the line names the client and the URI without arguments');

    my $logged = logged($t);
    unlike($logged, qr/jsecretkey/, 'restriction: no key in the error log');
    unlike($logged, qr/zsecret/, 'zone full: no key in the error log');
    unlike($logged, qr/apikey=/, 'no request line with the key argument in the error log');
    # done() would end the plan: the error-log check it makes, for this nginx
    $t->stop;
    $t->{done} = 1;
    my @bad = $t->_bad_log_lines;
    ok(!@bad, 'no alert/crit/unexpected emerg/crash in error.log') or diag(join "\n", @bad);
}

# 2. The quota store's Redis is down (nothing listens on its port).
{
    my $t = AGTest->new->skip_unless_module;
    my $down = $t->port('redis_down');
    $t->write_file_expand('nginx.conf', <<"EOF");
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_quota_store redis://127.0.0.1:$down timeout=200ms;
    key_auth_consumers {
        jack key=rsecretkey limit=5/30s;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        key_auth on;
        key_auth_query apikey;
        location /on/  { key_auth_hide_credentials on;  alias %%TESTDIR%%/; }
        location /off/ { key_auth_hide_credentials off; alias %%TESTDIR%%/; }
    }
}
EOF
    $t->write_file('index.html', "OK\n");
    $t->run;
    for my $hide (qw(on off)) {
        is(get($t, "/$hide/index.html?apikey=rsecretkey"), 503, "hide $hide: Redis down: 503");
    }
    ok(scalar $t->wait_for_log(qr/\[error\].*key_auth_quota_store redis:\/\/127\.0\.0\.1:$down: .*\(on_error=deny\) until Redis answers again/, 2),
       'Redis down: the [error] line is written') or diag($t->error_log);
    my $logged = logged($t);
    unlike($logged, qr/rsecretkey/, 'Redis down: no key in the error log');
    unlike($logged, qr/apikey=/, 'Redis down: no request line with the key argument in the error log');
    $t->done;
}
