#!/usr/bin/perl
# ntlm / ntlm_timeout / ntlm_max_requests / ntlm_max_time configuration: values, errors with FILE:LINE, context,
# and the directive order relative to balancers and keepalive (any order
# works: ntlm always wraps the finished chain).

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;

sub conf {
    my ($upstream, $location) = @_;
    $location //= 'proxy_pass http://u;';
    return <<"EOF2";
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    upstream u {
        server 127.0.0.1:%%PORT_8081%%;
        $upstream
    }
    server { listen 127.0.0.1:%%PORT_8080%%; location / { $location } }
}
EOF2
}

for my $ok ('ntlm;', 'ntlm 1;', 'ntlm 1000;', 'ntlm; ntlm_timeout 5s;', 'ntlm_timeout 1m; ntlm 10;',
            'ntlm; ntlm_timeout 500ms;', 'ntlm; ntlm_max_requests 1;', 'ntlm_max_requests 4294967295; ntlm;',
            'ntlm; ntlm_max_time 1ms;', 'ntlm_max_time 30d; ntlm; ntlm_max_requests 10; ntlm_timeout 1s;',
            'keepalive 4; keepalive_requests 5; keepalive_time 1m; ntlm;', 'keepalive_requests 5; ntlm;', 'hash $uri; ntlm;', 'ntlm; hash $uri;',
            'least_conn; ntlm;', 'ntlm; least_conn;', 'ip_hash; ntlm;', 'random; ntlm;',
            'keepalive 8; ntlm;', 'ntlm; keepalive 8;', 'least_conn; keepalive 4; ntlm 5;', 'zone z 64k; ntlm;', 'ntlm; zone z 64k; hash $uri consistent;') {
    my ($rc, $out) = $t->nginx_t(conf($ok));
    is($rc, 0, "accepted: $ok") or diag($out);
}

for my $case (
    ['ntlm 0;', qr/invalid number of connections "0" in "ntlm" directive/],
    ['ntlm -1;', qr/invalid number of connections "-1" in "ntlm" directive/],
    ['ntlm abc;', qr/invalid number of connections "abc" in "ntlm" directive/],
    ['ntlm 10k;', qr/invalid number of connections "10k" in "ntlm" directive/],
    ['ntlm 1000001;', qr/invalid number of connections "1000001" in "ntlm" directive, an integer from 1 to 1000000 is expected/],
    ['ntlm 1 2;', qr/invalid number of arguments in "ntlm" directive/],
    ['ntlm; ntlm;', qr/"ntlm" directive is duplicate/],
    ['ntlm; ntlm_timeout abc;', qr/invalid value "abc" in "ntlm_timeout" directive/],
    ['ntlm; ntlm_timeout 0;', qr/invalid value "0" in "ntlm_timeout" directive/],
    ['ntlm; ntlm_timeout;', qr/invalid number of arguments in "ntlm_timeout" directive/],
    ['ntlm; ntlm_timeout 1s; ntlm_timeout 2s;', qr/"ntlm_timeout" directive is duplicate/],
    (map { ["ntlm; ntlm_max_requests $_;",
            qr/invalid value "\Q$_\E" in "ntlm_max_requests" directive, an integer from 1 to 4294967295 is expected/] }
         qw(0 -1 abc 10k 4294967296 1.5)),
    ['ntlm; ntlm_max_requests;', qr/invalid number of arguments in "ntlm_max_requests" directive/],
    ['ntlm; ntlm_max_requests 1 2;', qr/invalid number of arguments in "ntlm_max_requests" directive/],
    ['ntlm; ntlm_max_requests 5; ntlm_max_requests 5;', qr/"ntlm_max_requests" directive is duplicate/],
    (map { ["ntlm; ntlm_max_time $_;", qr/invalid value "\Q$_\E" in "ntlm_max_time" directive, a positive time is expected/] }
         qw(0 abc -1s 0ms)),
    ['ntlm; ntlm_max_time;', qr/invalid number of arguments in "ntlm_max_time" directive/],
    ['ntlm; ntlm_max_time 1s; ntlm_max_time 2s;', qr/"ntlm_max_time" directive is duplicate/],
) {
    my ($snippet, $re) = @$case;
    my ($rc, $out, $file) = $t->nginx_t(conf($snippet));
    isnt($rc, 0, "refused: $snippet");
    like($out, qr/\[emerg\] .*$re.* in \Q$file\E:\d+/, "message: $snippet");
    like($out, qr/\Q$file\E:7\b/, "line of the directive: $snippet");
}

# ntlm_timeout without ntlm: refused, naming where it is
my ($rc, $out, $file);
($rc, $out, $file) = $t->nginx_t(conf('ntlm_timeout 5s;'));
isnt($rc, 0, 'ntlm_timeout without ntlm: refused');
like($out, qr/\[emerg\] "ntlm_timeout" in \Q$file\E:7 has no effect: upstream "u" has no "ntlm" directive/,
     'ntlm_timeout without ntlm: message with its FILE:LINE');

for my $d ('ntlm_max_requests 5;', 'ntlm_max_time 1h;', 'ntlm_max_time 1h; ntlm_timeout 5s;') {
    (my $name = $d) =~ s/ .*//;
    ($rc, $out, $file) = $t->nginx_t(conf($d));
    isnt($rc, 0, "$d without ntlm: refused");
    like($out, qr/\[emerg\] "$name" in \Q$file\E:7 has no effect: upstream "u" has no "ntlm" directive/,
         "$d without ntlm: the first such directive named with its FILE:LINE");
}
($rc, $out) = $t->nginx_t(conf('', 'ntlm_max_requests 5; proxy_pass http://u;'));
like($out, qr/"ntlm_max_requests" directive is not allowed here/, 'ntlm_max_requests in a location: refused');

# only in upstream blocks
($rc, $out) = $t->nginx_t(conf('', 'ntlm; proxy_pass http://u;'));
isnt($rc, 0, 'ntlm in a location: refused');
like($out, qr/"ntlm" directive is not allowed here/, 'ntlm in a location: message');

$t->done;
