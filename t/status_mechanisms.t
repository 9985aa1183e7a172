#!/usr/bin/perl
# authgate_status: auth_http and ntlm counters equal the traffic sent, on 2
# workers. auth_http: results per deciding service (superuser, allow, deny,
# nomatch, error), retries, exhaustions, encoded answers, latency. ntlm:
# bindings, bound and idle gauges, requests over bound connections, closes
# by reason (client closed, timeout; the other reasons: t/status_ntlm_closes.t),
# HTTP/2 clients refused.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep);
use lib 't/lib', 't/backends';
use AGTest;
use NtlmBackend;

my $t = AGTest->new->skip_unless_module;
$t->write_file('protected.html', "PROTECTED\n");
$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
worker_processes 2;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    authgate_status_zone status 256k;

    map $http_x_acl_status $acl_status { "" 200; default $http_x_acl_status; }
    map $http_x_su_status  $su_status  { "" 403; default $http_x_su_status; }

    upstream app {
        server 127.0.0.1:%%PORT_8082%%;
        ntlm;
        ntlm_timeout 1s;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        location /_acl/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/acl/;
            proxy_set_header X-Ctl-Status $acl_status;
            proxy_set_header X-Ctl-Body   $http_x_acl_body;
            proxy_set_header X-Ctl-Hdr    $http_x_acl_hdr;
        }
        location /_su/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/su/;
            proxy_set_header X-Ctl-Status $su_status;
        }
        location = /acl {
            auth_http_superuser /_su/check;
            auth_http_acl       /_acl/check;
            auth_http_retry     times=1 interval=50ms;
            auth_http_nomatch   allow;
            alias %%TESTDIR%%/protected.html;
        }
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /status {
            authgate_status;
        }
    }
    server {
        listen 127.0.0.1:%%PORT_8083%%;
        http2 on;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF2
$t->run_auth_service(8081);
my $events = $t->testdir . '/b.events';
$t->run_daemon(\&NtlmBackend::serve, port => $t->port(8082), name => 'b', state => $events);
$t->waitforsocket($t->port(8082)) or die;
$t->run;

sub status { decode_json(http_body(http_get('/status', port => $t->port(8080)))) }
sub send_acl {
    my ($want, @h) = @_;
    is(http_status(http_get('/acl', port => $t->port(8080), headers => [@h])), $want, "/acl @h -> $want");
}

# --- auth_http -------------------------------------------------------------
send_acl(200, 'X-Su-Status: 200') for 1 .. 2;                 # superuser 2
send_acl(200) for 1 .. 3;                                      # allow 3
send_acl(403, 'X-Acl-Status: 403') for 1 .. 2;                 # deny 2
send_acl(200, 'X-Acl-Body: ignore');                           # nomatch 1
send_acl(503, 'X-Acl-Status: 503');                            # retried once, exhausted, error
send_acl(503, 'X-Acl-Hdr: Content-Encoding: gzip');            # encoded twice, exhausted, error

my $s = status();
my %ah = map { $_->{service} => $_ } @{ $s->{auth_http} };
is_deeply($ah{'/_su/check'}{results},
    { authenticated => 0, unauthenticated => 0, superuser => 2, allow => 0, deny => 0, nomatch => 0, error => 0 },
    'superuser service: 2 superuser results');
is_deeply($ah{'/_acl/check'}{results},
    { authenticated => 0, unauthenticated => 0, superuser => 0, allow => 3, deny => 2, nomatch => 1, error => 2 },
    'ACL service: allow 3, deny 2, nomatch 1, error 2');
is($ah{'/_acl/check'}{retries}, 2, 'ACL service: 2 retries');
is($ah{'/_acl/check'}{exhausted}, 2, 'ACL service: 2 exhaustions');
is_deeply($ah{'/_acl/check'}{bad_answers}, { truncated => 0, encoded => 2 }, 'ACL service: 2 encoded answers');
is($ah{'/_su/check'}{duration_ms}{count}, 10, 'superuser service asked once per request (latency count)');
is($ah{'/_acl/check'}{duration_ms}{count}, 10, 'ACL service asked 10 times (8 requests, 2 of them twice)');

# --- ntlm --------------------------------------------------------------------
my $port = $t->port(8080);
my $a = NtlmBackend::client($port);
is(NtlmBackend::request($a, '/x', auth => 'NTLM tokA')->{status}, 200, 'client A binds');
NtlmBackend::request($a, "/x$_") for 1 .. 3;
my $b = NtlmBackend::client($port);
is(NtlmBackend::request($b, '/y', auth => 'Negotiate tokB')->{status}, 200, 'client B binds');
NtlmBackend::request($b, '/y1');
my $plain = NtlmBackend::client($port);
NtlmBackend::request($plain, '/z');                              # no credentials: not bound

my ($n) = @{ status()->{ntlm} };
is($n->{upstream}, 'app', 'ntlm series for upstream "app"');
is($n->{bindings}, 2, '2 bindings');
is($n->{bound}, 2, '2 bound now');
is($n->{idle}, 2, 'both idle now');
is($n->{bound_requests}, 4, '4 requests over bound connections');

close $a;
my $waited = 0;
while ($waited < 5) { ($n) = @{ status()->{ntlm} }; last if $n->{closes}{client_closed}; sleep 0.1; $waited += 0.1 }
is($n->{closes}{client_closed}, 1, 'client A closed: its binding closed');
is($n->{bound}, 1, '1 bound after A left');
is($n->{idle}, 1, '1 idle after A left');

# B stays idle past ntlm_timeout (1 s): its upstream connection times out
$waited = 0;
while ($waited < 5) { ($n) = @{ status()->{ntlm} }; last if $n->{closes}{timeout}; sleep 0.2; $waited += 0.2 }
is($n->{closes}{timeout}, 1, 'idle binding timed out');
is($n->{bound}, 0, 'none bound');
is($n->{idle}, 0, 'none idle');
close $b;
close $plain;

# HTTP/2: never bound, counted as refused
my $r = http2_request('/h2', port => $t->port(8083), headers => ['Authorization: NTLM tokC']);
like($r, qr{^HTTP/2 200}m, 'HTTP/2 request served');
($n) = @{ status()->{ntlm} };
is($n->{http2_refused}, 1, 'HTTP/2 client with credentials: refused binding, counted');
is($n->{bindings}, 2, 'no binding for it');
is_deeply([@{ $n->{closes} }{qw(upstream_closed evicted limit error)}], [0, 0, 0, 0], 'no other closes');

$t->done;
