#!/usr/bin/perl
# authgate_status_zone / authgate_status: bad configuration is refused by
# nginx -t with "[emerg] ... in FILE:LINE" naming the directive and value;
# good configuration is accepted.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module('the status zone is ours only');

sub conf_with {
    my ($http, $location) = @_;
    return <<"EOF";
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
$http
    server {
        listen 127.0.0.1:%%PORT_8090%%;
        location / {
$location
        }
    }
}
EOF
}

sub line_of {
    my @l = split /\n/, $_[0];
    for my $i (0 .. $#l) { return $i + 1 if $l[$i] =~ /#L$/ }
    return scalar @l;    # the end of the http block
}

sub refused {
    my ($name, $msg, $http, $location) = @_;
    my $conf = conf_with($http, $location // '');
    my ($rc, $out, $file) = $t->nginx_t($conf);
    isnt($rc, 0, "$name: nginx -t fails");
    my $line = line_of($conf);
    like($out, qr/\[emerg\] \Q$msg\E in \Q$file\E:$line$/m, "$name: [emerg] $msg at line $line")
        or diag($out);
}

sub accepted {
    my ($name, $http, $location) = @_;
    my ($rc, $out) = $t->nginx_t(conf_with($http, $location // ''));
    is($rc, 0, "$name: accepted") or diag($out);
}

refused('bad size', 'invalid zone size "abc"', 'authgate_status_zone s abc; #L');
refused('too small', 'zone "s" is too small: 4k (at least 32768 bytes)', 'authgate_status_zone s 4k; #L');
refused('too large', 'zone "s" is too large: 100000000m (at most 65536m)', 'authgate_status_zone s 100000000m; #L');
refused('unknown option', '"authgate_status_zone": invalid parameter "consumers=yes"',
    'authgate_status_zone s 1m consumers=yes; #L');
refused('duplicate option', '"authgate_status_zone": duplicate option "consumers=off" (already given as "consumers=on")',
    'authgate_status_zone s 1m consumers=on consumers=off; #L');
refused('twice', '"authgate_status_zone" directive is duplicate',
    "authgate_status_zone s 1m;\n    authgate_status_zone t 1m; #L");
refused('no arguments', 'invalid number of arguments in "authgate_status_zone" directive',
    'authgate_status_zone s; #L');
refused('bad format', '"authgate_status": invalid format "xml" (json or prometheus)',
    'authgate_status_zone s 1m;', 'authgate_status xml; #L');
refused('status twice', '"authgate_status" directive is duplicate',
    'authgate_status_zone s 1m;', "authgate_status;\n            authgate_status json; #L");
refused('status in http', '"authgate_status" directive is not allowed here',
    'authgate_status_zone s 1m; authgate_status; #L');
{
    my $conf = conf_with('', 'authgate_status;');
    my ($rc, $out, $file) = $t->nginx_t($conf);
    isnt($rc, 0, 'status without a zone: refused');
    like($out, qr/\[emerg\] "authgate_status" needs an "authgate_status_zone" in the http block in \Q$file\E:\d+$/m,
        'status without a zone: [emerg] names it') or diag($out);
}
accepted('zone and status', 'authgate_status_zone s 1m consumers=on;', 'authgate_status prometheus;');
accepted('zone after the location that counts',
    'server { listen 127.0.0.1:%%PORT_8091%%; location /p { auth_request /a; } location /a { return 200; } }
    authgate_status_zone s 64k;', 'authgate_status;');
accepted('zone alone', 'authgate_status_zone s 32k consumers=off;');
$t->done;
