#!/usr/bin/perl
# auth_http: the decision table (EMQX emqx_auth_http contract).
#
#   superuser 200                     -> allow, $auth_http_result=superuser,
#                                        the ACL service is not asked
#   superuser other status            -> ask the ACL service
#   ACL 200, body exactly "ignore"    -> auth_http_nomatch (default deny -> 403)
#   ACL 200, any other body           -> allow (allow)
#   ACL any other status              -> 403 (deny)
#   superuser only, not a superuser   -> auth_http_nomatch (ignore)
#
# The superuser service (backend "su") and the ACL service (backend "acl")
# are scripted by the client: X-Su-Status / X-Acl-Status / X-Acl-Body are
# turned into the backend's X-Ctl-* control headers by the service locations.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('auth_http is ours only');

$t->write_file('protected.html', "PROTECTED\n");

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%

    # unset -> the superuser service says "not a superuser"
    map $http_x_su_status $su_status { "" 403; default $http_x_su_status; }
    map $http_x_acl_status $acl_status { "" 200; default $http_x_acl_status; }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        # server-level defaults, inherited below
        auth_http_retry times=0 interval=10ms;
        add_header X-Result "[$auth_http_result]" always;

        location /_su/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8091%%/su/;
            proxy_set_header X-Ctl-Status $su_status;
        }
        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8092%%/acl/;
            proxy_set_header X-Ctl-Status $acl_status;
            proxy_set_header X-Ctl-Body $http_x_acl_body;
            proxy_set_header X-Ctl-Chunked $http_x_acl_chunked;
        }
        # answers 200 "ignore\n": not exactly "ignore"
        location = /_acl_nl {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8092%%/acl-nl/?body=ignore%0A;
        }

        location /both/ {
            auth_http_superuser /_su/check;
            auth_http_acl       /_acl/check;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /both-allow/ {
            auth_http_superuser /_su/check;
            auth_http_acl       /_acl/check;
            auth_http_nomatch   allow;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /acl-only/ {
            auth_http_acl /_acl/check;
            alias %%TESTDIR%%/;
        }
        location /acl-nl/ {
            auth_http_acl /_acl_nl;
            alias %%TESTDIR%%/;
        }
        location /su-only/ {
            auth_http_superuser /_su/check;
            alias %%TESTDIR%%/;
        }
        location /su-only-allow/ {
            auth_http_superuser /_su/check;
            auth_http_nomatch   allow;
            alias %%TESTDIR%%/;
        }
        location /open/ {
            alias %%TESTDIR%%/;
        }

        # an ACL service written in nginx itself (no proxy)
        location = /_local_ignore { internal; return 200 "ignore"; }
        location = /_local_allow  { internal; return 200 "ok"; }
        location = /_local_deny   { internal; return 403; }
        location /local-ignore/ {
            auth_http_acl /_local_ignore;
            alias %%TESTDIR%%/;
        }
        location /local-allow/ {
            auth_http_acl /_local_allow;
            alias %%TESTDIR%%/;
        }
        location /local-deny/ {
            auth_http_acl /_local_deny;
            alias %%TESTDIR%%/;
        }
        # a big ACL answer (more than subrequest_output_buffer_size, which
        # is the service location's)
        location /big/ {
            auth_http_acl /_acl/big;
            subrequest_output_buffer_size 1m;
            alias %%TESTDIR%%/;
        }
        location /bigbuf/ {
            auth_http_acl /_acl_bigbuf/big;
            alias %%TESTDIR%%/;
        }
        location /_acl_bigbuf/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8092%%/acl/;
            subrequest_output_buffer_size 200k;
        }

        # after an internal redirect the check runs again, in the new
        # location, with its own settings and a fresh result
        location /redirect/ {
            auth_http_acl /_acl/first;
            error_page 403 = /after-redirect/protected.html;
            alias %%TESTDIR%%/;
        }
        location /after-redirect/ {
            auth_http_acl /_local_allow;
            alias %%TESTDIR%%/;
        }
        location /redirect-deny/ {
            auth_http_acl /_acl/first;
            error_page 403 = /after-redirect-deny/protected.html;
            alias %%TESTDIR%%/;
        }
        location /after-redirect-deny/ {
            auth_http_acl /_local_deny;
            alias %%TESTDIR%%/;
        }
    }

    # inheritance: server-level settings, switched off and overridden below
    server {
        listen 127.0.0.1:%%PORT_8081%%;
        server_name localhost;

        auth_http_superuser /_su/check;
        auth_http_acl       /_acl/check;
        auth_http_nomatch   allow;
        auth_http_retry     times=0 interval=10ms;
        add_header X-Result "[$auth_http_result]" always;

        location /_su/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8091%%/su/;
            proxy_set_header X-Ctl-Status $su_status;
        }
        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8092%%/acl/;
            proxy_set_header X-Ctl-Status $acl_status;
            proxy_set_header X-Ctl-Body $http_x_acl_body;
        }
        location /inherit/ {
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /no-su/ {
            auth_http_superuser off;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /none/ {
            auth_http_superuser off;
            auth_http_acl off;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
        location /strict/ {
            auth_http_nomatch deny;
            proxy_pass http://127.0.0.1:%%PORT_8093%%;
        }
    }
}
EOF

$t->run_backend(8091, name => 'su', mode => 'auth');
$t->run_backend(8092, name => 'acl', mode => 'auth');
$t->run_echo_server(8093);
$t->run;

sub hits { my @r = $t->requests($_[0]); return scalar @r }
sub clear { $t->clear_requests($_) for qw(su acl echo) }

sub get {
    my ($uri, %h) = @_;
    my @h;
    push @h, "X-Su-Status: $h{su}" if defined $h{su};
    push @h, "X-Acl-Status: $h{acl}" if defined $h{acl};
    push @h, "X-Acl-Body: $h{body}" if defined $h{body};
    push @h, "X-Acl-Chunked: 1" if $h{chunked};
    return http_get($uri, headers => \@h, port => $h{port});
}

###############################################################################
# superuser + ACL: [uri, su, acl, acl body, status, result, su asked, acl asked]

my @table = (
    ['/both/x', 200, undef, undef,    200, 'superuser', 1, 0],
    ['/both/x', 200, 403,   undef,    200, 'superuser', 1, 0],
    ['/both/x', 403, 200,   undef,    200, 'allow',     1, 1],
    ['/both/x', 401, 200,   'allow',  200, 'allow',     1, 1],
    ['/both/x', 404, 200,   '',       200, 'allow',     1, 1],
    ['/both/x', 500, 200,   undef,    200, 'allow',     1, 1],
    ['/both/x', 204, 200,   undef,    200, 'allow',     1, 1],
    ['/both/x', 403, 200,   'ignore', 403, 'ignore',    1, 1],
    ['/both/x', 403, 200,   'Ignore', 200, 'allow',     1, 1],
    ['/both/x', 403, 200,   'ignored', 200, 'allow',    1, 1],
    ['/both/x', 403, 403,   undef,    403, 'deny',      1, 1],
    ['/both/x', 403, 401,   undef,    403, 'deny',      1, 1],
    ['/both/x', 403, 404,   undef,    403, 'deny',      1, 1],
    ['/both/x', 403, 500,   undef,    403, 'deny',      1, 1],
    ['/both/x', 403, 204,   undef,    403, 'deny',      1, 1],
    ['/both/x', 403, 201,   undef,    403, 'deny',      1, 1],
    ['/both/x', 403, 302,   undef,    403, 'deny',      1, 1],
    ['/both/x', 403, 403,   'ignore', 403, 'deny',      1, 1],

    ['/both-allow/x', 403, 200, 'ignore', 200, 'ignore', 1, 1],
    ['/both-allow/x', 403, 403, 'ignore', 403, 'deny',   1, 1],
    ['/both-allow/x', 403, 200, undef,    200, 'allow',  1, 1],
    ['/both-allow/x', 200, 200, 'ignore', 200, 'superuser', 1, 0],

    ['/acl-only/protected.html', undef, 200, undef,    200, 'allow',  0, 1],
    ['/acl-only/protected.html', undef, 200, 'ignore', 403, 'ignore', 0, 1],
    ['/acl-only/protected.html', undef, 403, undef,    403, 'deny',   0, 1],

    ['/su-only/protected.html', 200, undef, undef, 200, 'superuser', 1, 0],
    ['/su-only/protected.html', 403, undef, undef, 403, 'ignore',    1, 0],
    ['/su-only/protected.html', 404, undef, undef, 403, 'ignore',    1, 0],
    ['/su-only-allow/protected.html', 403, undef, undef, 200, 'ignore', 1, 0],
    ['/su-only-allow/protected.html', 200, undef, undef, 200, 'superuser', 1, 0],
);

for my $row (@table) {
    my ($uri, $su, $acl, $body, $status, $result, $su_n, $acl_n) = @$row;
    my $name = sprintf '%s su=%s acl=%s body=%s', $uri, $su // '-', $acl // '-',
        defined $body ? "'$body'" : '-';
    clear();
    my $r = get($uri, su => $su, acl => $acl, body => $body);
    is(http_status($r), $status, "$name: $status");
    is(http_header($r, 'X-Result'), "[$result]", "$name: \$auth_http_result=$result");
    is(hits('su'), $su_n, "$name: superuser service asked $su_n time(s)");
    is(hits('acl'), $acl_n, "$name: ACL service asked $acl_n time(s)");
    if ($status == 200) {
        if ($uri =~ m{^/both}) {
            my $j = json_body($r) // {};
            is($j->{path}, $uri, "$name: the protected upstream got the request");
            is(hits('echo'), 1, "$name: upstream asked once");
        } else {
            is(http_body($r), "PROTECTED\n", "$name: the protected file");
        }
    } else {
        is(hits('echo'), 0, "$name: the protected upstream never asked");
    }
}

# the "ignore" body is recognised in a chunked response too
my $r = get('/acl-only/protected.html', acl => 200, body => 'ignore', chunked => 1);
is(http_status($r), 403, 'chunked "ignore": no match, denied');
is(http_header($r, 'X-Result'), '[ignore]', 'chunked "ignore": result ignore');
$r = get('/acl-only/protected.html', acl => 200, body => 'yes', chunked => 1);
is(http_status($r), 200, 'chunked other body: allowed');

# "ignore\n" is not exactly "ignore"
clear();
$r = get('/acl-nl/protected.html');
is(http_status($r), 200, '"ignore\n" is an answer, not "ignore": allowed');
is(http_header($r, 'X-Result'), '[allow]', '"ignore\n": result allow');
my @a = $t->requests('acl');
is($a[0]{path}, '/acl-nl/', 'the ACL service answered "ignore\n"') if @a;

# no check -> the variable stays empty
$r = get('/open/protected.html');
is(http_status($r), 200, 'location without auth_http: served');
is(http_header($r, 'X-Result'), '[]', 'location without auth_http: $auth_http_result empty');

# the ACL answer's body and headers never reach the client
$r = get('/acl-only/protected.html', acl => 200, body => 'SECRET-ACL-BODY');
is(http_body($r), "PROTECTED\n", 'ACL answer body not shown to the client');
ok(!defined http_header($r, 'X-Backend'), 'ACL answer headers not shown to the client');
$r = get('/acl-only/protected.html', acl => 403, body => 'SECRET-ACL-BODY');
unlike(http_body($r), qr/SECRET/, 'ACL deny body not shown to the client');

# HEAD: the answer's body is still looked at
$r = http_get('/acl-only/protected.html', method => 'HEAD',
              headers => ['X-Acl-Status: 200', 'X-Acl-Body: ignore']);
is(http_status($r), 403, 'HEAD, ACL "ignore": no match, denied');
$r = http_get('/acl-only/protected.html', method => 'HEAD', headers => ['X-Acl-Body: yes']);
is(http_status($r), 200, 'HEAD, ACL allows: 200');

# an ACL service made of nginx "return" lines
for my $case (['local-ignore', 403, 'ignore'], ['local-allow', 200, 'allow'],
              ['local-deny', 403, 'deny']) {
    my ($loc, $status, $result) = @$case;
    $r = get("/$loc/protected.html");
    is(http_status($r), $status, "ACL location with return: $loc -> $status");
    is(http_header($r, 'X-Result'), "[$result]", "ACL location with return: $loc -> $result");
}

# an ACL answer bigger than subrequest_output_buffer_size
# is an nginx error: the request is terminated, the client gets nothing
$r = http_get('/big/protected.html', headers => ['X-Ctl-Bodylen: 100000']);
unlike($r, qr/PROTECTED/, 'ACL answer too big: the protected file is not served');
is(http_status($r), undef, 'ACL answer too big: connection closed without a response');
ok(scalar $t->grep_log(qr/\[error\].*too big subrequest response: 100000/),
   'ACL answer too big: nginx logs "too big subrequest response"');
$r = http_get('/big/protected.html', headers => ['X-Ctl-Bodylen: 4000']);
is(http_status($r), 200, 'ACL answer within subrequest_output_buffer_size: allowed');
$r = http_get('/bigbuf/protected.html', headers => ['X-Ctl-Bodylen: 100000']);
is(http_status($r), 200, 'subrequest_output_buffer_size 200k in the service location: 100000 bytes fit');

# internal redirect: checked again in the new location
clear();
$r = get('/redirect/protected.html', acl => 403);
is(http_status($r), 200, 'error_page after an ACL deny: the new location\'s own check allows');
is(http_header($r, 'X-Result'), '[allow]', 'error_page: the result is the new check\'s');
is(hits('acl'), 1, 'error_page: the first ACL asked once');
$r = get('/redirect-deny/protected.html', acl => 403);
is(http_status($r), 403, 'error_page into a denying location: 403');

###############################################################################
# inheritance (server 8081: superuser + ACL + nomatch allow at server level)

my $p = port(8081);
clear();
$r = get('/inherit/x', port => $p, su => 200);
is(http_status($r), 200, 'inherited: superuser allowed');
is(http_header($r, 'X-Result'), '[superuser]', 'inherited: superuser result');
$r = get('/inherit/x', port => $p, su => 403, acl => 200, body => 'ignore');
is(http_status($r), 200, 'inherited nomatch allow');
is(http_header($r, 'X-Result'), '[ignore]', 'inherited nomatch allow: ignore');
$r = get('/inherit/x', port => $p, su => 403, acl => 403);
is(http_status($r), 403, 'inherited ACL: denied');

clear();
$r = get('/no-su/x', port => $p, su => 200, acl => 403);
is(http_status($r), 403, 'auth_http_superuser off: the superuser answer is not asked');
is(hits('su'), 0, 'auth_http_superuser off: superuser service not asked');
is(hits('acl'), 1, 'auth_http_superuser off: ACL still inherited');

clear();
$r = get('/none/x', port => $p, su => 403, acl => 403);
is(http_status($r), 200, 'both off: no check');
is(http_header($r, 'X-Result'), '[]', 'both off: result empty');
is(hits('su') + hits('acl'), 0, 'both off: no service asked');

$r = get('/strict/x', port => $p, su => 403, acl => 200, body => 'ignore');
is(http_status($r), 403, 'location nomatch deny overrides the server-level allow');
is(http_header($r, 'X-Result'), '[ignore]', 'location nomatch deny: ignore');

$t->done;
