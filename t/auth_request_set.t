#!/usr/bin/perl
# auth_request_set $var value: evaluated in the context of the auth
# subrequest ($upstream_http_*, $upstream_status, $sent_http_*, $uri ...)
# once it has finished, whatever its outcome (allow, deny, error), before
# the access decision; the value survives error_page redirects; variables
# with a set handler ($args) are set through it; scoping and inheritance;
# configuration errors.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;

$t->write_file('protected.html', "PROTECTED\n");

$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        location /refused/ {
            proxy_pass http://127.0.0.1:%%PORT_8089%%;
        }
        location = /ret/204 { return 204; }

        # status scripted by X-Ctl-Status (default 200)
        location = /set/p {
            auth_request /auth/p;
            auth_request_set $user $upstream_http_x_user;
            auth_request_set $ustatus $upstream_status;
            auth_request_set $sent_backend $sent_http_x_backend;
            auth_request_set $sr_uri $uri;
            auth_request_set $combo "u=$upstream_http_x_user;s=$upstream_status;lit";
            add_header X-User "[$user]" always;
            add_header X-Upstream-Status "[$ustatus]" always;
            add_header X-Sent-Backend "[$sent_backend]" always;
            add_header X-Sr-Uri "[$sr_uri]" always;
            add_header X-Combo "[$combo]" always;
            add_header X-Main-Uri "[$uri]" always;
            add_header X-Main-Upstream-Status "[$upstream_status]" always;
            alias %%TESTDIR%%/protected.html;
        }
        location = /set/refused {
            auth_request /refused/x;
            auth_request_set $ustatus $upstream_status;
            add_header X-Upstream-Status "[$ustatus]" always;
            alias %%TESTDIR%%/protected.html;
        }

        # error_page into named locations
        location = /set/named-proxy {
            auth_request /auth/p;
            auth_request_set $user $upstream_http_x_user;
            error_page 401 403 500 = @named_proxy;
            alias %%TESTDIR%%/protected.html;
        }
        location @named_proxy {
            add_header X-Named-User "[$user]" always;
            proxy_set_header X-User-Fwd $user;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location = /set/named-return {
            auth_request /auth/p;
            auth_request_set $user $upstream_http_x_user;
            error_page 401 403 @named_return;
            alias %%TESTDIR%%/protected.html;
        }
        location @named_return {
            add_header X-Named-User "[$user]" always;
            return 200 "named\n";
        }
        # error_page into a plain location that has no auth_request itself
        location = /set/errpage {
            auth_request /auth/p;
            auth_request_set $user $upstream_http_x_user;
            error_page 401 /set/errpage-target;
            alias %%TESTDIR%%/protected.html;
        }
        location = /set/errpage-target {
            add_header X-Target-User "[$user]" always;
            alias %%TESTDIR%%/protected.html;
        }

        # a variable with a set handler
        location = /set/args {
            auth_request /auth/200/args;
            auth_request_set $args "from=auth&user=$upstream_http_x_user";
            add_header X-Args "[$args]" always;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }

        # never set
        location = /set/never {
            auth_request /ret/204;
            auth_request_set $set_here "here";
            add_header X-Never "[$never_set]" always;
            add_header X-Here "[$set_here]" always;
            alias %%TESTDIR%%/protected.html;
        }
        location = /set/declares-never {
            auth_request /ret/204;
            auth_request_set $never_set "x";
            alias %%TESTDIR%%/protected.html;
        }
        location = /set/no-auth {
            add_header X-User "[$user]" always;
            alias %%TESTDIR%%/protected.html;
        }
        # variables set before access: auth_request_set overwrites "set"
        location = /set/overwrite {
            set $user "from-rewrite";
            auth_request /auth/p;
            auth_request_set $user $upstream_http_x_user;
            add_header X-User "[$user]" always;
            alias %%TESTDIR%%/protected.html;
        }
        # order: later auth_request_set sees earlier ones
        location = /set/order {
            auth_request /ret/204;
            auth_request_set $first "one";
            auth_request_set $second "[$first]";
            add_header X-Second "$second" always;
            alias %%TESTDIR%%/protected.html;
        }
    }

    # inheritance
    server {
        listen 127.0.0.1:%%PORT_8083%%;
        server_name localhost;

        auth_request /auth/401/srv;
        auth_request_set $a "srv-a";
        auth_request_set $b "srv-b";

        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }

        location = /inherited {
            add_header X-A "[$a]" always;
            add_header X-B "[$b]" always;
            alias %%TESTDIR%%/protected.html;
        }
        location = /own-set {
            auth_request /auth/200/own;
            auth_request_set $b "loc-b";
            add_header X-A "[$a]" always;
            add_header X-B "[$b]" always;
            alias %%TESTDIR%%/protected.html;
        }
        location = /own-set-inherited-uri {
            auth_request_set $a "loc-a";
            add_header X-A "[$a]" always;
            add_header X-B "[$b]" always;
            alias %%TESTDIR%%/protected.html;
        }
        location = /off {
            auth_request off;
            add_header X-A "[$a]" always;
            alias %%TESTDIR%%/protected.html;
        }
        location /outer/ {
            auth_request /auth/403/outer;
            location = /outer/inner {
                add_header X-A "[$a]" always;
                alias %%TESTDIR%%/protected.html;
            }
            location = /outer/inner-off {
                auth_request off;
                alias %%TESTDIR%%/protected.html;
            }
        }
    }
}
EOF2

$t->run_auth_service(8081);
$t->run_echo_server(8082);
$t->port(8089);
$t->run;

my @alice = ('X-Ctl-Hdr: X-User: alice');

###############################################################################
# subrequest context, every outcome, before the decision

for my $case ([200, 200], [204, 200], [401, 401], [403, 403], [404, 500], [503, 500]) {
    my ($ctl, $expect) = @$case;
    my $r = http_get('/set/p', headers => [@alice, "X-Ctl-Status: $ctl"]);
    is(http_status($r), $expect, "auth $ctl -> $expect");
    is(http_header($r, 'X-User'), '[alice]', "auth $ctl: \$upstream_http_x_user of the subrequest");
    is(http_header($r, 'X-Upstream-Status'), "[$ctl]", "auth $ctl: \$upstream_status of the subrequest");
    is(http_header($r, 'X-Sent-Backend'), '[auth]', "auth $ctl: \$sent_http_x_backend of the subrequest");
    is(http_header($r, 'X-Sr-Uri'), '[/auth/p]', "auth $ctl: \$uri of the subrequest");
    is(http_header($r, 'X-Combo'), "[u=alice;s=$ctl;lit]", "auth $ctl: complex value");
    is(http_header($r, 'X-Main-Uri'), '[/set/p]', "auth $ctl: main request \$uri unchanged");
    is(http_header($r, 'X-Main-Upstream-Status'), '[]',
       "auth $ctl: main request has no \$upstream_status of its own");
}

my $r = http_get('/set/p');
is(http_header($r, 'X-User'), '[]', 'header absent from auth response: empty value');

$r = http_get('/set/refused');
is(http_status($r), 500, 'refused: 500');
is(http_header($r, 'X-Upstream-Status'), '[502]', 'refused: $upstream_status 502 set anyway');

###############################################################################
# survives error_page redirects

for my $ctl (401, 403, 404) {
    $r = http_get('/set/named-proxy', headers => ['X-Ctl-Hdr: X-User: bob', "X-Ctl-Status: $ctl"]);
    is(http_status($r), 200, "named location (proxy, =) after $ctl: status from the upstream");
    is(http_header($r, 'X-Named-User'), '[bob]', "named location after $ctl: value visible");
    my $j = json_body($r) // {};
    my ($fwd) = map { $_->[1] } grep { $_->[0] eq 'X-User-Fwd' } @{ $j->{headers} || [] };
    is($fwd, 'bob', "named location after $ctl: value passed upstream");
}

for my $ctl (401, 403) {
    $r = http_get('/set/named-return', headers => ['X-Ctl-Hdr: X-User: carol', "X-Ctl-Status: $ctl"]);
    is(http_status($r), $ctl, "named location (return, no =) after $ctl: status kept");
    is(http_header($r, 'X-Named-User'), '[carol]', "named location (return) after $ctl: value visible");
    is(http_body($r), "named\n", "named location (return) after $ctl: body");
}

$r = http_get('/set/errpage', headers => ['X-Ctl-Hdr: X-User: dave', 'X-Ctl-Status: 401']);
is(http_status($r), 401, 'error_page to a uri: 401 kept');
is(http_header($r, 'X-Target-User'), '[dave]', 'error_page to a uri: value visible in target');

###############################################################################
# $args: set through its set handler, the upstream sees the new args

$r = http_get('/set/args?orig=1', headers => ['X-Ctl-Hdr: X-User: erin']);
is(http_status($r), 200, '$args: 200');
is(http_header($r, 'X-Args'), '[from=auth&user=erin]', '$args changed in the main request');
my $j = json_body($r) // {};
is($j->{uri}, '/set/args?from=auth&user=erin', '$args: upstream sees the new arguments');

###############################################################################
# unset, ordering, overwriting

$r = http_get('/set/never');
is(http_status($r), 200, 'never: 200');
is(http_header($r, 'X-Never'), '[]', 'variable never set in this request reads empty');
is(http_header($r, 'X-Here'), '[here]', 'variable set here');

$r = http_get('/set/no-auth');
is(http_header($r, 'X-User'), '[]', 'no auth_request in location: variable empty');

$r = http_get('/set/overwrite', headers => ['X-Ctl-Hdr: X-User: frank']);
is(http_header($r, 'X-User'), '[frank]', 'auth_request_set overrides a value from "set"');

$r = http_get('/set/order');
is(http_header($r, 'X-Second'), '[one]', 'auth_request_set evaluated in order');

###############################################################################
# inheritance (server on port 8083)

my $p = $t->port(8083);
$t->clear_requests('auth');

$r = http_get('/inherited', port => $p);
is(http_status($r), 401, 'inherited server-level auth_request: 401');
is(http_header($r, 'X-A'), '[srv-a]', 'inherited auth_request_set $a');
is(http_header($r, 'X-B'), '[srv-b]', 'inherited auth_request_set $b');

$r = http_get('/own-set', port => $p);
is(http_status($r), 200, 'own auth_request: 200');
is(http_header($r, 'X-A'), '[]', 'own auth_request_set list replaces the inherited one: $a unset');
is(http_header($r, 'X-B'), '[loc-b]', 'own auth_request_set: $b');

$r = http_get('/own-set-inherited-uri', port => $p);
is(http_status($r), 401, 'inherited auth_request with own set list: 401');
is(http_header($r, 'X-A'), '[loc-a]', 'own list: $a');
is(http_header($r, 'X-B'), '[]', 'own list: inherited $b not set');

$t->clear_requests('auth');
$r = http_get('/off', port => $p);
is(http_status($r), 200, 'auth_request off: 200');
is(http_header($r, 'X-A'), '[]', 'auth_request off: inherited auth_request_set not applied');
is(scalar $t->requests('auth'), 0, 'auth_request off: auth service not hit');

$r = http_get('/outer/inner', port => $p);
is(http_status($r), 403, 'nested location inherits auth_request');
is(http_header($r, 'X-A'), '[srv-a]', 'nested location inherits auth_request_set from server');
$r = http_get('/outer/inner-off', port => $p);
is(http_status($r), 200, 'nested location with auth_request off');

###############################################################################
# configuration errors

sub conf_with {
    my ($server_body, $http_body) = @_;
    $http_body //= '';
    return <<"EOF2";
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
$http_body
    server {
        listen 127.0.0.1:%%PORT_8090%%;
$server_body
    }
}
EOF2
}

# line of the marker "#L" in the generated config
sub line_of {
    my ($conf) = @_;
    my @l = split /\n/, $conf;
    for my $i (0 .. $#l) { return $i + 1 if $l[$i] =~ /#L$/ }
    die "no #L marker";
}

sub conf_error {
    my ($name, $body, $re, $http) = @_;
    my $conf = conf_with($body, $http);
    my ($rc, $out, $file) = $t->nginx_t($conf);
    isnt($rc, 0, "$name: nginx -t fails");
    if ($body =~ /#L/) {
        my $line = line_of($conf);
        like($out, qr/\[emerg\] $re in \Q$file\E:$line\b/, "$name: message at $line");
    } else {
        # detected after parsing (variables are resolved at init): no file:line
        like($out, qr/\[emerg\] $re$/m, "$name: message");
    }
}

conf_error('duplicate in location',
           "location / { auth_request /a;\n auth_request /b; #L\n }",
           qr/"auth_request" directive is duplicate/);
conf_error('off then uri',
           "location / { auth_request off;\n auth_request /b; #L\n }",
           qr/"auth_request" directive is duplicate/);
conf_error('uri then off',
           "location / { auth_request /a;\n auth_request off; #L\n }",
           qr/"auth_request" directive is duplicate/);
conf_error('duplicate in server',
           "auth_request /a;\n auth_request /b; #L\n",
           qr/"auth_request" directive is duplicate/);
conf_error('invalid variable name',
           "location / { auth_request_set user 1; #L\n }",
           qr/invalid variable name "user"/);
conf_error('no arguments',
           "location / { auth_request; #L\n }",
           qr/invalid number of arguments in "auth_request" directive/);
conf_error('two arguments',
           "location / { auth_request /a /b; #L\n }",
           qr/invalid number of arguments in "auth_request" directive/);
conf_error('auth_request_set one argument',
           "location / { auth_request_set \$x; #L\n }",
           qr/invalid number of arguments in "auth_request_set" directive/);
conf_error('auth_request_set three arguments',
           "location / { auth_request_set \$x a b; #L\n }",
           qr/invalid number of arguments in "auth_request_set" directive/);
conf_error('not allowed in if',
           "location / { if (\$arg_x) { auth_request /a; #L\n } }",
           qr/"auth_request" directive is not allowed here/);
conf_error('unknown variable in value',
           "location / { auth_request_set \$x \$no_such_variable_here; }",
           qr/unknown "no_such_variable_here" variable/);
conf_error('non-changeable variable',
           "location / { auth_request_set \$uri x; #L\n }",
           qr/the duplicate "uri" variable/);

my ($rc, $out) = $t->nginx_t(conf_with("location / { auth_request /b; auth_request_set \$x 1; auth_request_set \$x 2; }",
                                       "auth_request /a; auth_request_set \$y \$x;"));
is($rc, 0, 'http-level auth_request, override in location, repeated variable: ok') or diag $out;

($rc, $out) = $t->nginx_t(conf_with("location / { auth_request off; auth_request_set \$args x; }"));
is($rc, 0, 'auth_request off with auth_request_set, $args: ok') or diag $out;

$t->done;
