#!/usr/bin/perl
# auth_http: the client's password (%P) never reaches the error log through
# the module's own lines (the retry [info] and the "not reachable" [error]
# lines name the configured service URI, not the subrequest's). With the
# default method=post no line holds it at all; with method=get (accepted
# with a [warn]) the password is in the subrequest's arguments, and nginx's
# own upstream lines for that subrequest (`connect() failed … upstream:
# "http://…/auth?…&password=…"`) print it: what the README says.

use strict;
use warnings;
use Test::More;
use MIME::Base64 qw(encode_base64);
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('auth_http is ours only');
$t->write_file('protected.html', "PROTECTED\n");
$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
worker_processes 1;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        # nothing listens there: connection refused -> 502
        location /_down/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8099%%/;
        }
        location /post/ {
            auth_http_auth  /_down/auth method=post params="username=%u,password=%P";
            auth_http_retry times=1 interval=50ms;
            alias %%TESTDIR%%/;
        }
        location /get/ {
            auth_http_auth  /_down/auth method=get params="username=%u,password=%P";
            auth_http_retry times=1 interval=50ms;
            alias %%TESTDIR%%/;
        }
    }
}
EOF2
$t->expect_errors(qr/sends the Basic-auth password/);
$t->run;

sub get {
    my ($uri, $password) = @_;
    http_status(http_get($uri, headers => ['Authorization: Basic ' . encode_base64("jack:$password", '')]));
}
sub ours { grep { /auth_http: / && !/\[debug\]/ } split /\n/, $t->error_log }
sub entries { join "\n", grep { m{^\d{4}/\d\d/\d\d [\d:]{8} \[(?!debug\])} } split /\n/, $t->error_log }

is(get('/post/protected.html', 'postsecretpw'), 503, 'method=post, service down: 503');
ok(scalar $t->wait_for_log(qr/\[error\].*auth_http: authentication service "\/_down\/auth" not reachable after 2 attempts/, 2),
   'method=post: the [error] line is written') or diag($t->error_log);
ok(scalar(grep { /\[info\].*auth_http: authentication service "\/_down\/auth" not reachable \(status 502\), retrying/ } ours()),
   'method=post: the retry [info] line is written');
unlike(entries(), qr/postsecretpw/, 'method=post: the password is in no line of the error log');

is(get('/get/protected.html', 'getsecretpw'), 503, 'method=get, service down: 503');
ok(scalar $t->wait_for_log(qr/\[error\].*auth_http: authentication service "\/_down\/auth" not reachable after 2 attempts.*\/get\//, 2),
   'method=get: the [error] line is written') or diag($t->error_log);
my @ours = grep { /\/get\// } ours();
is(scalar @ours, 2, 'method=get: our retry and failure lines') or diag(join "\n", @ours);
unlike(join("\n", @ours), qr/getsecretpw/, "method=get: the password is in none of the module's lines");
my @nginx = grep { /getsecretpw/ } split /\n/, entries();
ok(@nginx && !grep({ !/upstream: "http:\/\/127\.0\.0\.1:\d+\/auth\?[^"]*password=getsecretpw/ } @nginx),
   "method=get: only nginx's own upstream lines show it (the subrequest URI with its arguments)")
    or diag(join "\n", @nginx);

$t->done;
