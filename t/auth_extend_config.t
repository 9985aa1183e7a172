#!/usr/bin/perl
# The opt-in auth_request directives (issue 13): bad values are refused by
# nginx -t with "[emerg] ... in FILE:LINE" naming the directive and the
# value; good ones are accepted in http, server and location.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module('the opt-in auth_request directives are ours only');

sub conf_with {
    my ($location_body, $server_body, $http_body) = @_;
    $_ //= '' for $server_body, $http_body;
    return <<"EOF";
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
$http_body
    server {
        listen 127.0.0.1:%%PORT_8090%%;
$server_body
        location / {
            auth_request /auth;
$location_body
        }
        location = /auth { proxy_pass http://127.0.0.1:%%PORT_8091%%; }
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

sub conf_error {
    my ($name, $msg, @bodies) = @_;
    my $conf = conf_with(@bodies);
    my ($rc, $out, $file) = $t->nginx_t($conf);
    isnt($rc, 0, "$name: nginx -t fails");
    my $line = line_of($conf);
    like($out, qr/\[emerg\] \Q$msg\E in \Q$file\E:$line$/m, "$name: [emerg] $msg at line $line")
        or diag $out;
}

sub conf_ok {
    my ($name, @bodies) = @_;
    my ($rc, $out) = $t->nginx_t(conf_with(@bodies));
    is($rc, 0, "$name: accepted") or diag $out;
}

my $PASS = 'it must be a status from 300 to 599 other than 304, 401 and 403';
my $ALLOW = 'it must be a status from 200 to 299';

for my $bad (qw(200 299 304 401 403 600 099 30 3020 30x abc)) {
    conf_error("pass_status $bad", qq{"auth_request_pass_status": invalid status "$bad", $PASS},
        "auth_request_pass_status 302 $bad; #L");
}
conf_error('pass_status repeated',
    qq{"auth_request_pass_status": invalid status "302" (given twice), $PASS},
    'auth_request_pass_status 302 429 302; #L');
conf_error('pass_status duplicate', '"auth_request_pass_status" directive is duplicate',
    "auth_request_pass_status 302;\n auth_request_pass_status 303; #L");
conf_error('pass_status without value', 'invalid number of arguments in "auth_request_pass_status" directive',
    'auth_request_pass_status; #L');

for my $bad (qw(199 300 302 401 2x0 20)) {
    conf_error("allow_status $bad", qq{"auth_request_allow_status": invalid status "$bad", $ALLOW},
        "auth_request_allow_status 200 $bad; #L");
}
conf_error('allow_status duplicate', '"auth_request_allow_status" directive is duplicate',
    "auth_request_allow_status 200;\n auth_request_allow_status 204; #L");

for my $d (qw(auth_request_client_header auth_request_upstream_header)) {
    for my $bad ('"a b"', '"x:y"', '""', '"x\\"y"') {
        (my $shown = $bad) =~ s/^"|"$//g;
        $shown =~ s/\\"/"/g;
        conf_error("$d $bad", qq{"$d": invalid header name "$shown"}, "$d $bad; #L");
    }
    for my $framing (qw(Content-Length content_type Transfer-Encoding Connection Host)) {
        conf_error("$d $framing",
            qq{"$d": "$framing" describes the message itself and cannot be taken from the auth response},
            "$d $framing; #L");
    }
    conf_error("$d twice", qq{"$d": "x_user" is given twice in this block},
        "$d X-User;\n $d x_user; #L");
    conf_error("$d two names", qq{invalid number of arguments in "$d" directive}, "$d X-A X-B; #L");
}

conf_error('body value', '"auth_request_body": invalid value "yes", it must be "on" or "off"',
    'auth_request_body yes; #L');
conf_error('body option', '"auth_request_body": invalid option "size=1k"', 'auth_request_body on size=1k; #L');
for my $bad (qw(0 -1 1x k 99999999999999999999)) {
    conf_error("body max=$bad",
        qq{"auth_request_body": invalid size in "max=$bad", it must be a size above 0 such as 16k or 1m},
        "auth_request_body on max=$bad; #L");
}
conf_error('body off with option', '"auth_request_body off" takes no options, "max=1k" given',
    'auth_request_body off max=1k; #L');
conf_error('body duplicate', '"auth_request_body" directive is duplicate',
    "auth_request_body on;\n auth_request_body off; #L");

my $all = join "\n", 'auth_request_pass_status 302 303 307 429 503;', 'auth_request_allow_status 200 204;',
    'auth_request_client_header Set-Cookie;', 'auth_request_client_header X-Note;',
    'auth_request_upstream_header X-User;', 'auth_request_upstream_header X_Groups;',
    'auth_request_body on max=64k;';
conf_ok('every directive in location', $all);
conf_ok('every directive in server', '', $all);
conf_ok('every directive in http', '', '', $all);
conf_ok('auth_request_body on, default max', 'auth_request_body on;');
conf_ok('the same name in two blocks', 'auth_request_client_header Set-Cookie;', 'auth_request_client_header Set-Cookie;');

$t->done;
