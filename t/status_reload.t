#!/usr/bin/perl
# authgate_status_zone: the counters survive `nginx -s reload` when the zone
# keeps its name and size (series found again by their labels; a series
# the new configuration adds starts at 0); a zone of another size starts
# afresh.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;
$t->write_file('protected.html', "PROTECTED\n");
my $conf = <<'EOF2';
%%TEST_GLOBALS%%
worker_processes 2;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    authgate_status_zone status %%SIZE%%;
    server {
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
        %%EXTRA%%
        location = /p {
            auth_request /auth/p;
            alias %%TESTDIR%%/protected.html;
        }
        location = /status {
            authgate_status;
        }
    }
}
EOF2
sub config {
    my ($size, $extra) = @_;
    (my $c = $conf) =~ s/%%SIZE%%/$size/;
    $c =~ s/%%EXTRA%%/$extra/;
    $t->write_file_expand('nginx.conf', $c);
}
# A reload, once both new workers run and both old ones have exited (so
# that every request below is served by the new configuration).
sub reload {
    my $count = sub { my $n = () = $t->error_log =~ /$_[0]/g; $n };
    my ($started, $exited) = ($count->(qr/start worker process \d+/), $count->(qr/exited with code/));
    $t->reload;
    for (1 .. 200) {
        last if $count->(qr/start worker process \d+/) >= $started + 2 && $count->(qr/exited with code/) >= $exited + 2;
        select undef, undef, undef, 0.05;
    }
}
sub status { decode_json(http_body(http_get('/status'))) }
sub decisions {
    my ($s, $uri) = @_;
    my ($series) = grep { $_->{uri} eq $uri } @{ $s->{auth_request} };
    return $series ? $series->{decisions} : undef;
}

config('1m', '');
$t->run_auth_service(8081);
$t->run;
is(http_status(http_get('/p')), 200) for 1 .. 3;
is(http_status(http_get('/p', headers => ['X-Ctl-Status: 401'])), 401);
my $s = status();
is(decisions($s, '/auth/p')->{allow}, 3, 'before reload: allow 3');
is($s->{process}{reloads}, 0, 'no reload yet');

# the same zone, a configuration with one more auth URI
config('1m', 'location = /q { auth_request /auth/q; alias %%TESTDIR%%/protected.html; }');
reload();
$s = status();
is_deeply(decisions($s, '/auth/p'), { allow => 3, unauthorized => 1, forbidden => 0, passed => 0, error => 0 },
    'after reload: the counts went on');
is($s->{process}{reloads}, 1, 'reloads = 1');
is(decisions($s, '/auth/q')->{allow}, 0, 'the new URI starts at 0');
is(http_status(http_get('/p')), 200);
is(http_status(http_get('/q')), 200);
$s = status();
is(decisions($s, '/auth/p')->{allow}, 4, 'counting goes on after reload');
is(decisions($s, '/auth/q')->{allow}, 1, 'and for the new URI');
is($s->{process}{series}, 2, 'two series');

# a reload that drops /q: its series stays with its last value
config('1m', '');
reload();
$s = status();
is(decisions($s, '/auth/q')->{allow}, 1, 'a series the configuration no longer has keeps its value');
is($s->{process}{reloads}, 2, 'reloads = 2');

# another size: another zone, counts start afresh
config('2m', '');
reload();
$s = status();
is(decisions($s, '/auth/p')->{allow}, 0, 'a zone of another size starts afresh');
is($s->{process}{reloads}, 0, 'and its reload count too');
is(http_status(http_get('/p')), 200);
is(decisions(status(), '/auth/p')->{allow}, 1, 'and counts');

$t->done;
