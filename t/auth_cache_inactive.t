#!/usr/bin/perl
# auth_cache_zone inactive=: an entry not used (stored, or answering a hit)
# for the inactive time counts as absent, even while its *_cache_valid time
# runs: the next request is a MISS and asks the service again; an entry
# used within the window stays a HIT past the inactive time; a zone
# without inactive= keeps its entries the default 10 minutes. A reload that
# changes inactive= keeps the entries (same name and size) and applies the
# new time to them.
#
# No wall-clock assertion: only orderings. A request after a sleep well
# past the inactive time must miss; a refresh counts only when the gap
# since the previous request (measured) stayed under the inactive time.

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('the decision cache is ours only');
$t->write_file('protected.html', "PROTECTED\n");

my $INACTIVE = 2;    # seconds, in the configuration below
my $conf = <<'EOF2';
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    auth_cache_zone short 1m inactive=%%INACTIVE%%;
    auth_cache_zone long 1m;
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;
        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        auth_request_cache_key $http_authorization;
        auth_request_cache_valid any 1h;
        add_header X-Cache "[$auth_cache_status]" always;
        location = /short {
            auth_request /auth/short;
            auth_request_cache short;
            alias %%TESTDIR%%/protected.html;
        }
        location = /long {
            auth_request /auth/long;
            auth_request_cache long;
            alias %%TESTDIR%%/protected.html;
        }
    }
}
EOF2
(my $c = $conf) =~ s/%%INACTIVE%%/${INACTIVE}s/;
$t->write_file_expand('nginx.conf', $c);
$t->run_auth_service(8081);
$t->run;

sub asked { my ($who) = @_; scalar grep { (AGTest::req_header($_, 'Authorization'))[0] eq $who } $t->requests('auth') }
sub cache_of {
    my ($uri, $who) = @_;
    my $r = http_get($uri, headers => ["Authorization: $who"]);
    is(http_status($r), 200, "$uri $who: 200");
    return http_header($r, 'X-Cache');
}

# alice (short zone) and carol (long zone): stored, then hits
is(cache_of('/short', 'Bearer alice'), '[MISS]', 'short: first is a miss');
is(cache_of('/short', 'Bearer alice'), '[HIT]', 'short: then a hit');
is(cache_of('/long', 'Bearer carol'), '[MISS]', 'long: first is a miss');
is(cache_of('/long', 'Bearer carol'), '[HIT]', 'long: then a hit');

# bob (short zone): used every 0.3 s for longer than the inactive time
is(cache_of('/short', 'Bearer bob'), '[MISS]', 'bob: first is a miss');
my $stored = time;
my ($prev, $refreshed, $stall_misses) = ($stored, 0, 0);
while (time - $stored < $INACTIVE + 1.5) {
    sleep 0.3;
    my $gap = time - $prev;
    my $status = http_header(http_get('/short', headers => ['Authorization: Bearer bob']), 'X-Cache');
    $prev = time;
    if ($gap < $INACTIVE - 0.5) {
        $refreshed++;
        is($status, '[HIT]', sprintf('bob: used %.1f s after the previous use: a hit', $gap));
    } elsif ($status eq '[MISS]') {
        $stall_misses++;    # the machine stalled past the window: proves nothing
    }
}
ok($refreshed > 0, "bob: used within the window $refreshed times");
is(asked('Bearer bob'), 1 + $stall_misses, 'bob: the service was asked once (and after stalls only)');

# alice has not been used since: after a generous sleep her entry is gone
sleep $INACTIVE + 1.5 - (time - $prev) if time - $prev < $INACTIVE + 1.5;
my $alice = asked('Bearer alice');
is(cache_of('/short', 'Bearer alice'), '[MISS]', 'alice: unused for longer than inactive: a miss, though valid 1h');
is(asked('Bearer alice'), $alice + 1, 'alice: the service was asked again');
is(cache_of('/short', 'Bearer alice'), '[HIT]', 'alice: stored again');
is(cache_of('/long', 'Bearer carol'), '[HIT]', 'carol: the default inactive (10m) keeps the entry');
is(asked('Bearer carol'), 1, 'carol: asked once');

# a reload that changes inactive= (same name and size): the entries stay,
# and the new time applies to them
(my $c2 = $conf) =~ s/%%INACTIVE%%/1h/;
$t->write_file_expand('nginx.conf', $c2);
$t->reload_settled;    # no old worker (old inactive=) answers after it
is(cache_of('/short', 'Bearer alice'), '[HIT]', 'reload with inactive=1h: the entry is kept');
sleep $INACTIVE + 1.5;
is(cache_of('/short', 'Bearer alice'), '[HIT]', 'after the reload: inactive=1h applies, still a hit');
is(asked('Bearer alice'), $alice + 1, 'alice: not asked again after the reload');

$t->done;
