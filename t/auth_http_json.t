#!/usr/bin/perl
# auth_http answer=json (issue 14 §6): EMQX 5 answers, opt-in per service.
#
#   * ACL: 204 allows; 200 {"result":"allow"|"deny"|"ignore"} decides
#     (ignore: auth_http_nomatch); ANYTHING ELSE IS DENY (other statuses,
#     a body that is not JSON, no or another "result") -- EMQX 5 reads
#     those as "ignore", we do not, so that a malformed answer never falls
#     through to "auth_http_nomatch allow";
#   * superuser: 200 {"is_superuser":true} is a superuser; anything else
#     is not (the ACL is asked);
#   * unreachable services are retried as with text answers;
#   * the decision cache keeps what the JSON answer meant;
#   * answer=text (default) keeps EMQX 4's reading.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('auth_http is ours only');
$t->write_file('x', "PROTECTED\n");

my $conf = <<'EOF2';
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    auth_cache_zone decisions 1m;
    map $http_x_su_status $su_status { "" 403; default $http_x_su_status; }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        add_header X-Result "[$auth_http_result]" always;
        auth_http_retry times=1 interval=10ms;
        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/;
            proxy_set_header X-Ctl-Status $http_x_acl_status;
            proxy_set_header X-Ctl-Body $http_x_acl_body;
        }
        location /_su/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/;
            proxy_set_header X-Ctl-Status $su_status;
            proxy_set_header X-Ctl-Body $http_x_su_body;
        }
        location /_down/ { internal; proxy_pass http://127.0.0.1:%%PORT_DEAD%%/; }
        location /json/ {
            auth_http_acl /_acl/acl method=get answer=json;
            alias %%TESTDIR%%/;
        }
        location /json-allow/ {
            auth_http_acl /_acl/acl method=get answer=json;
            auth_http_nomatch allow;
            alias %%TESTDIR%%/;
        }
        location /su/ {
            auth_http_superuser /_su/su answer=json;
            auth_http_acl /_acl/acl method=get answer=json;
            alias %%TESTDIR%%/;
        }
        location /text/ {
            auth_http_acl /_acl/acl method=get answer=text;
            alias %%TESTDIR%%/;
        }
        location /down/ {
            auth_http_acl /_down/acl answer=json;
            alias %%TESTDIR%%/;
        }
        location /cached/ {
            auth_http_acl /_acl/cached method=get answer=json params=t=%t;
            auth_http_cache decisions;
            auth_http_cache_valid any 1m;
            alias %%TESTDIR%%/;
        }
    }
}
EOF2
$t->port('DEAD');
$t->write_file_expand('nginx.conf', $conf);
$t->run_auth_service(8081);
$t->run;

sub ask {
    my ($uri, $status, $body, @more) = @_;
    my $r = http_get($uri, headers => [($status ? "X-Acl-Status: $status" : ()),
                                       (defined $body ? "X-Acl-Body: $body" : ()), @more]);
    return (http_status($r), scalar http_header($r, 'X-Result'));
}

for my $case ([200, '{"result":"allow"}', 200, 'allow'],
              [200, '{"result": "allow", "reason": "rule 7"}', 200, 'allow'],
              [204, undef, 200, 'allow'],
              [200, '{"result":"deny"}', 403, 'deny'],
              [200, '{"result":"ignore"}', 403, 'ignore'],
              [200, 'allow', 403, 'deny'],
              [200, 'ignore', 403, 'deny'],
              [200, '{"result":"Allow"}', 403, 'deny'],
              [200, '{"result":"allow"', 403, 'deny'],
              [200, '["allow"]', 403, 'deny'],
              [200, '{}', 403, 'deny'],
              [403, '{"result":"allow"}', 403, 'deny'],
              [500, '{"result":"allow"}', 403, 'deny']) {
    my ($status, $body, $want, $result) = @$case;
    my $name = "answer=json, $status " . ($body // '(no body)');
    my ($got, $res) = ask('/json/x', $status, $body);
    is($got, $want, "$name: $want");
    is($res, "[$result]", "$name: \$auth_http_result $result");
}
# anything else is deny, not ignore: nomatch allow does not let it in
is((ask('/json-allow/x', 200, '{"result":"ignore"}'))[0], 200, 'nomatch allow: "ignore" is let in');
is((ask('/json-allow/x', 200, 'garbage'))[0], 403, 'nomatch allow: a malformed answer is denied, not ignored');
is((ask('/json-allow/x', 200, '{"result":"maybe"}'))[0], 403, 'nomatch allow: an unknown result is denied');

# superuser
my ($st, $res) = ask('/su/x', 403, undef, 'X-Su-Status: 200', 'X-Su-Body: {"is_superuser":true}');
is($st, 200, 'superuser {"is_superuser":true}: 200 without the ACL');
is($res, '[superuser]', 'superuser: $auth_http_result');
($st, $res) = ask('/su/x', 200, '{"result":"deny"}', 'X-Su-Status: 200', 'X-Su-Body: {"is_superuser":false}');
is($res, '[deny]', '{"is_superuser":false}: not a superuser, the ACL decides');
($st, $res) = ask('/su/x', 200, '{"result":"allow"}', 'X-Su-Status: 200', 'X-Su-Body: yes');
is($res, '[allow]', 'a non-JSON superuser answer: not a superuser, the ACL decides');

# text (default reading)
is((ask('/text/x', 200, 'anything'))[0], 200, 'answer=text: any 200 body but ignore allows');
is((ask('/text/x', 204))[0], 403, 'answer=text: 204 denies');

# unreachable: retried, then 503
($st, $res) = ask('/down/x');
is($st, 503, 'answer=json, service down: 503');
is($res, '[error]', 'answer=json, service down: error');

# the cache keeps what the answer meant
$t->clear_requests('auth');
is((ask('/cached/x', 200, '{"result":"allow"}'))[0], 200, 'cache: allowed');
is((ask('/cached/x', 200, 'garbage'))[0], 200, 'cache: the cached allow');
is((ask('/cached/y', 200, '{"result":"ignore"}'))[0], 403, 'cache: ignore');
is((ask('/cached/y', 200, '{"result":"allow"}'))[0], 403, 'cache: the cached ignore');
is(scalar $t->requests('auth'), 2, 'cache: asked once per question');

# HTTP/2
my $r = http2_request('/json/x', headers => ['X-Acl-Status: 200', 'X-Acl-Body: {"result":"allow"}']);
is(http_status($r), 200, 'HTTP/2: allow');

# refusals
for my $case (['auth_http_acl /_acl/a answer=xml;', '"auth_http_acl": invalid answer "xml" (text or json)'],
              ['auth_http_superuser /_acl/a answer=;', '"auth_http_superuser": invalid answer "" (text or json)'],
              ['auth_http_acl /_acl/a answer=json answer=text;', '"auth_http_acl": duplicate option "answer=text" (already given as "answer=json")'],
              ['auth_http_auth /_acl/a answer=json;', '"auth_http_auth": unknown option "answer=json" (method=, params=)'],
              ['auth_http_acl /_acl/a anwser=json;', '"auth_http_acl": unknown option "anwser=json" (method=, params=, answer=)']) {
    my ($line, $msg) = @$case;
    (my $c = $conf) =~ s/(location \/text\/ \{)/$1 $line/ or die;
    my ($rc, $out, $file) = $t->nginx_t($c);
    isnt($rc, 0, "$line: refused");
    like($out, qr/\[emerg\] \Q$msg\E in \Q$file\E:\d+$/m, "$line: [emerg] at FILE:LINE") or diag $out;
}

$t->done;
