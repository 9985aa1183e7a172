#!/usr/bin/perl
# key_auth (issue 14 §2): restricting a location to consumers or groups.
#
#   * consumers get group=a,b;
#   * key_auth_allow / key_auth_deny NAME | group:NAME ... per location (off
#     cancels an inherited list): a known consumer the deny list names, or
#     one outside the allow list, gets 403 and its quota is not charged
#     (the lists are checked after the key and before the quota);
#   * the anonymous consumer is allowed or denied like any other;
#   * the lists are per location: after an internal redirect the new
#     location's lists decide (t/seams_directives.t);
#   * unknown consumers and groups are refused at nginx -t.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;
$t->write_file('x', "PROTECTED\n");

my $conf = <<'EOF2';
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_zone ka 1m;
    key_auth_consumers {
        jack key=jack-key group=partners,staff limit=2/60s limit_status=429;
        jack key=jack-key-2;
        rose key=rose-key group=partners;
        bob key=bob-key;
        anonymous group=public;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        add_header X-Consumer $key_auth_consumer always;
        key_auth on;
        location /allow-jack/ { key_auth_allow jack; alias %%TESTDIR%%/; }
        location /deny-jack/  { key_auth_deny jack; alias %%TESTDIR%%/; }
        location /partners/   { key_auth_allow group:partners; alias %%TESTDIR%%/; }
        location /nobob/      { key_auth_deny bob; alias %%TESTDIR%%/; }
        location /mixed/      { key_auth_allow group:partners bob; key_auth_deny rose group:staff; alias %%TESTDIR%%/; }
        location /anon-in/    { key_auth_anonymous_consumer anonymous; key_auth_allow anonymous jack; alias %%TESTDIR%%/; }
        location /anon-out/   { key_auth_anonymous_consumer anonymous; key_auth_deny group:public; alias %%TESTDIR%%/; }
        location /outer/ {
            key_auth_allow jack;
            alias %%TESTDIR%%/;
            location /outer/inner/ { key_auth_allow off; alias %%TESTDIR%%/; }
            location /outer/keeps/ { alias %%TESTDIR%%/; }
        }
        location /sa/ { satisfy any; deny all; key_auth_deny bob; alias %%TESTDIR%%/; }
    }
}
EOF2
$t->write_file_expand('nginx.conf', $conf);
$t->run;

sub st {
    my ($uri, $key, %o) = @_;
    my $r = $o{h2} ? http2_request($uri, headers => [$key ? "apikey: $key" : ()])
                   : http_get($uri, headers => [$key ? "apikey: $key" : ()]);
    return http_status($r);
}
my %K = (jack => 'jack-key', rose => 'rose-key', bob => 'bob-key', none => undef);
sub cases {
    my ($uri, %want) = @_;
    for my $who (sort keys %want) {
        is(st($uri, $K{$who}), $want{$who}, "$uri $who: $want{$who}");
    }
}

# the quota first: denied requests do not count (jack: 2 per 60 s)
for (1 .. 4) { is(st('/deny-jack/x', 'jack-key'), 403, "key_auth_deny jack: 403 ($_)") }
my $r = http_get('/allow-jack/x', headers => ['apikey: jack-key']);
is(http_status($r), 200, 'after four refusals jack still has his quota');
is(http_header($r, 'X-RateLimit-Remaining'), '1', 'the refusals were not counted');
$r = http_get('/deny-jack/x', headers => ['apikey: jack-key']);
is(http_header($r, 'X-Consumer'), 'jack', 'a refused request is logged with its consumer');
is(scalar(() = http_header($r, 'X-RateLimit-Remaining')), 0, 'and gets no quota headers');
ok($t->grep_log(qr/\[error\].*key_auth: access forbidden to consumer "jack" by key_auth_deny/), '[error] line');
is(st('/allow-jack/x', 'jack-key-2'), 200, 'jack\'s other key: allowed, counted');
is(st('/allow-jack/x', 'jack-key'), 429, 'then over quota: 429');

cases('/allow-jack/x', rose => 403, bob => 403, none => 401);
cases('/partners/x', rose => 200, bob => 403);
cases('/nobob/x', rose => 200, bob => 403, none => 401);
cases('/mixed/x', rose => 403, bob => 200);
is(st('/mixed/x', 'jack-key'), 403, '/mixed/ jack: in the allowed group, but in the denied group staff: deny wins');
cases('/anon-in/x', none => 200, bob => 403, rose => 403);
is(st('/anon-in/x', 'wrong-key'), 200, '/anon-in/ an unknown key is the anonymous consumer: allowed');
cases('/anon-out/x', none => 403, bob => 200);
cases('/outer/x', bob => 403);
cases('/outer/inner/x', bob => 200, rose => 200);
cases('/outer/keeps/x', bob => 403);
cases('/sa/x', bob => 403, rose => 200, none => 401);
is(st('/nobob/x', 'bob-key', h2 => 1), 403, 'HTTP/2: 403');
is(st('/nobob/x', 'rose-key', h2 => 1), 200, 'HTTP/2: 200');

###############################################################################
# refusals at nginx -t

sub refused {
    my ($from, $to, $re, $name) = @_;
    my $c = $conf;
    $c =~ s/\Q$from\E/$to/ or die "no $from";
    my ($rc, $out, $file) = $t->nginx_t($c);
    isnt($rc, 0, "$name: refused");
    like($out, qr/\[emerg\] (?:key_auth_consumers: )?$re/, "$name: message") or diag $out;
}
refused('key_auth_allow jack;', 'key_auth_allow jake;',
        qr/"key_auth_allow" names the consumer "jake", which no line of "key_auth_consumers" defines, in \S+:18$/m,
        'unknown consumer');
refused('key_auth_deny group:public;', 'key_auth_deny group:pubic;',
        qr/"key_auth_deny" names the group "pubic", which no line of "key_auth_consumers" defines, in \S+:24$/m,
        'unknown group');
refused('key_auth_allow off;', 'key_auth_allow off jack;', qr/"key_auth_allow off" takes nothing else in \S+:28$/m, 'off with names');
refused('key_auth_deny bob;', 'key_auth_deny group:;', qr/"key_auth_deny": empty name \(NAME or group:NAME\) in \S+:21$/m, 'empty group name');
refused('key_auth_deny bob;', 'key_auth_deny bob; key_auth_deny rose;', qr/"key_auth_deny" directive is duplicate in \S+:21$/m, 'duplicate');
refused('key_auth_deny bob;', 'key_auth_deny;', qr/invalid number of arguments in "key_auth_deny" directive in \S+:21$/m, 'no arguments');
refused('group=partners,staff', 'group=partners,,staff',
        qr/key_auth_consumers: consumer "jack": invalid "group" value "partners,,staff": empty group name in \S+:7$/m, 'group= with an empty name');
refused('group=partners;', 'group=partners group=x;', qr/consumer "rose": duplicate "group" in \S+:9$/m, 'group= twice');
refused('jack key=jack-key-2;', 'jack key=jack-key-2 group=other;',
        qr/consumer "jack" has conflicting "group" values in \S+:8$/m, 'conflicting groups across lines');

$t->done;
