#!/usr/bin/perl
# auth_request_cache: the decision cache in front of auth_request.
#
# A hit answers without a subrequest and exactly as the miss that filled
# it (status, WWW-Authenticate list in order, auth_request_set values);
# what is never cached (5xx, refused, timed out, no-store/no-cache/private,
# statuses without a valid time, empty keys) asks every time; freshness is
# the smaller of *_cache_valid and Cache-Control / X-Accel-Expires; keys
# and questions never mix; a full zone evicts the least recently used
# entry; entries survive a reload; an entry that does not fit is not
# stored and the request is answered as without a cache.

use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('the decision cache is ours only');

$t->write_file('protected.html', "PROTECTED\n");

$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    auth_cache_zone decisions 1m;
    auth_cache_zone tiny 32k;

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_read_timeout 1s;
        }
        location /refused/ { proxy_pass http://127.0.0.1:%%PORT_8089%%; }
        location /raw/ { proxy_pass http://127.0.0.1:%%PORT_8092%%; }

        auth_request_cache decisions;
        auth_request_cache_key $http_authorization;
        auth_request_cache_valid 1m;
        auth_request_cache_valid 401 403 1m;
        add_header X-Cache "[$auth_cache_status]" always;

        location = /p {
            auth_request /auth/p;
            auth_request_set $user $upstream_http_x_user;
            auth_request_set $combo "u=$upstream_http_x_user;s=$upstream_status";
            add_header X-User "[$user]" always;
            add_header X-Combo "[$combo]" always;
            add_header X-Cache "[$auth_cache_status]" always;
            alias %%TESTDIR%%/protected.html;
        }
        # the same key, another question: never shares p's entries
        location = /q {
            auth_request /auth/q;
            alias %%TESTDIR%%/protected.html;
        }
        location = /only2xx {
            auth_request /auth/only2xx;
            auth_request_cache_valid 1m;
            alias %%TESTDIR%%/protected.html;
        }
        location = /refused {
            auth_request /refused/x;
            alias %%TESTDIR%%/protected.html;
        }
        location = /raw-head {
            auth_request /raw/head;
            alias %%TESTDIR%%/protected.html;
        }
        location = /raw-body {
            auth_request /raw/body;
            alias %%TESTDIR%%/protected.html;
        }
        location = /off {
            auth_request /auth/off;
            auth_request_cache off;
            alias %%TESTDIR%%/protected.html;
        }
        location = /big {
            auth_request /auth/big;
            auth_request_set $big $upstream_http_x_big;
            alias %%TESTDIR%%/protected.html;
        }
        location = /tiny {
            auth_request /auth/tiny;
            auth_request_cache tiny;
            alias %%TESTDIR%%/protected.html;
        }
        location = /allow204 {
            auth_request /auth/allow204;
            auth_request_allow_status 204;
            alias %%TESTDIR%%/protected.html;
        }
        location = /cookie {
            auth_request /auth/cookie;
            auth_request_cache_key "$cookie_sid:$http_authorization";
            alias %%TESTDIR%%/protected.html;
        }
    }
}
EOF2

$t->run_auth_service(8081);
# a service that closes in the middle of its header (/raw/head), or after
# announcing a body longer than it sends (/raw/body)
my $raw_port = port(8092);
my $raw_log = $t->testdir . '/raw.log';
$t->run_daemon(sub {
    my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$raw_port", Listen => 64,
                                  ReuseAddr => 1) or die "listen: $!";
    while (my $c = $s->accept) {
        my $buf = '';
        while ($buf !~ /\r\n\r\n/) { sysread($c, $buf, 65536, length $buf) or last }
        next unless $buf =~ /\r\n\r\n/;
        my ($what) = $buf =~ m{^\S+ /raw/(\w+)};
        open my $fh, '>>', $raw_log; print $fh "$what\n"; close $fh;
        syswrite($c, $what eq 'head' ? "HTTP/1.1 200 OK\r\nContent-Le"
                                     : "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        shutdown($c, 1);
        sysread($c, my $junk, 100);
        close $c;
    }
});
$t->waitforsocket("127.0.0.1:$raw_port") or die 'raw service did not start';
$t->run;

sub asked {
    my ($path) = @_;
    return scalar grep { $_->{path} eq $path } $t->requests('auth');
}

sub get {
    my ($uri, $auth, @h) = @_;
    return http_get($uri, headers => [defined $auth ? "Authorization: $auth" : (), @h]);
}

# the response without what differs between a miss and a hit
sub normalized {
    my ($r) = @_;
    my $p = parse_response($r);
    my @h = grep { $_->[0] !~ /^(Date|X-Cache|Last-Modified|ETag|Connection)$/i } @{ $p->{headers} };
    return { status => $p->{status}, headers => \@h, body => $p->{body} };
}

###############################################################################
# a hit replays the miss

for my $case (
    ['allow', ['X-Ctl-Hdr: X-User: alice'], 200],
    ['401', ['X-Ctl-Status: 401', 'X-Ctl-Www: Basic realm="a"', 'X-Ctl-Www: Bearer x=1',
             'X-Ctl-Www: Negotiate', 'X-Ctl-Hdr: X-User: bob'], 401],
    ['403', ['X-Ctl-Status: 403', 'X-Ctl-Hdr: X-User: carol'], 403],
) {
    my ($name, $ctl, $status) = @$case;
    my $before = asked('/auth/p');
    my $miss = get('/p', "Bearer $name", @$ctl);
    my $hit = get('/p', "Bearer $name");    # no control headers: the service would allow
    is(http_status($miss), $status, "$name: miss status");
    is(http_header($miss, 'X-Cache'), '[MISS]', "$name: miss");
    is(http_header($hit, 'X-Cache'), '[HIT]', "$name: hit");
    is_deeply(normalized($hit), normalized($miss), "$name: the hit is the miss")
        or diag explain [normalized($miss), normalized($hit)];
    is(asked('/auth/p'), $before + 1, "$name: the service was asked once");
}
{
    my $r = get('/p', 'Bearer 401');
    # nginx before 1.23 links one WWW-Authenticate per response (README,
    # Supported nginx versions): the miss had the first only, so has the hit
    my @all = ('Basic realm="a"', 'Bearer x=1', 'Negotiate');
    is_deeply([http_header($r, 'WWW-Authenticate')],
              $t->nginx_version >= 1_023_000 ? \@all : [$all[0]], '401 hit: challenges in order');
    like(http_header($r, 'X-Combo'), qr/^\[u=bob;s=401\]$/, '401 hit: auth_request_set values as evaluated');
}

# HEAD and HTTP/1.0 hits
{
    my $r = http_get('/p', method => 'HEAD', headers => ['Authorization: Bearer allow']);
    is(http_status($r), 200, 'HEAD hit allows');
    is(http_header($r, 'X-Cache'), '[HIT]', 'HEAD hit');
    is(http_header($r, 'X-User'), '[alice]', 'HEAD hit: the stored value');
}

# other keys, other questions
{
    my $before = asked('/auth/p');
    my $r = get('/p', 'Bearer other', 'X-Ctl-Status: 403');
    is(http_status($r), 403, 'another key: its own answer');
    is(http_header($r, 'X-Cache'), '[MISS]', 'another key: miss');
    is(asked('/auth/p'), $before + 1, 'another key: asked');
    $r = get('/q', 'Bearer allow', 'X-Ctl-Status: 401');
    is(http_status($r), 401, 'another location, same key: its own question');
    is(http_header($r, 'X-Cache'), '[MISS]', 'another location: miss');
    $r = get('/cookie', 'Bearer allow', 'Cookie: sid=1');
    is(http_header($r, 'X-Cache'), '[MISS]', 'another key template: miss');
    $r = get('/cookie', 'Bearer allow', 'Cookie: sid=1');
    is(http_header($r, 'X-Cache'), '[HIT]', 'cookie key: hit');
    $r = get('/cookie', 'Bearer allow', 'Cookie: sid=2', 'X-Ctl-Status: 403');
    is(http_status($r), 403, 'cookie key: another cookie is another client');
}

###############################################################################
# never cached

sub never_cached {
    my ($name, $uri, $auth, $status, $count, @ctl) = @_;
    my $before = $count->();
    for my $i (1 .. 2) {
        my $r = get($uri, $auth, @ctl);
        is(http_status($r), $status, "$name: $status ($i)");
        like(http_header($r, 'X-Cache') // '', qr/^\[(MISS|BYPASS|)\]$/, "$name: not a hit ($i)");
    }
    is($count->(), $before + 2, "$name: asked every time");
}

my $p = sub { asked('/auth/p') };
never_cached('500', '/p', 'Bearer e500', 500, $p, 'X-Ctl-Status: 500');
never_cached('503', '/p', 'Bearer e503', 500, $p, 'X-Ctl-Status: 503');
never_cached('404', '/p', 'Bearer e404', 500, $p, 'X-Ctl-Status: 404');
never_cached('timeout', '/p', 'Bearer slow', 500, $p, 'X-Ctl-Delay: 1.5');
never_cached('dropped', '/p', 'Bearer drop', 500, $p, 'X-Ctl-Drop: 1');
for my $cc ('no-store', 'no-cache', 'private', 'max-age=0', 'public, max-age=x') {
    never_cached("Cache-Control: $cc", '/p', "Bearer cc $cc", 200, $p, "X-Ctl-Hdr: Cache-Control: $cc");
}
never_cached('X-Accel-Expires: 0', '/p', 'Bearer xae0', 200, $p, 'X-Ctl-Hdr: X-Accel-Expires: 0');
never_cached('401 without a valid time', '/only2xx', 'Bearer x', 401, sub { asked('/auth/only2xx') },
             'X-Ctl-Status: 401');
never_cached('cache off', '/off', 'Bearer x', 200, sub { asked('/auth/off') });
{
    my $before = asked('/auth/p');
    for (1 .. 2) {
        my $r = get('/p', undef);
        is(http_header($r, 'X-Cache'), '[BYPASS]', 'no credential: bypass');
    }
    is(asked('/auth/p'), $before + 2, 'no credential: asked every time');
}
{
    my $raw = sub { my $w = shift; scalar(() = ($t->read_file('raw.log') // '') =~ /^$w$/mg) };
    for (1 .. 2) {
        is(http_status(get('/raw-head', 'Bearer raw')), 500, 'a header cut short: 500');
    }
    is($raw->('head'), 2, 'a header cut short: asked every time');
    # the body of an auth answer is never read (as in nginx's C module):
    # the status and headers are the whole answer
    is(http_status(get('/raw-body', 'Bearer raw')), 200, 'a body cut short: the status decides');
    is(http_header(get('/raw-body', 'Bearer raw'), 'X-Cache'), '[HIT]', 'a body cut short: cached');
}
{
    my $before = asked('/auth/refused');
    my $r = get('/refused', 'Bearer r');
    is(http_status($r), 500, 'refused: 500');
    $r = get('/refused', 'Bearer r');
    is(http_status($r), 500, 'refused again: 500, not a cached decision');
    is(http_header($r, 'X-Cache'), '[MISS]', 'refused: a miss each time');
}

# auth_request_allow_status: a 2xx it does not list is an error, never
# cached; one it lists is a decision, and the hit applies the same rule
{
    my $n = sub { asked('/auth/allow204') };
    never_cached('2xx not in auth_request_allow_status', '/allow204', 'Bearer a200', 500, $n);
    my $before = $n->();
    is(http_status(get('/allow204', 'Bearer a204', 'X-Ctl-Status: 204')), 200, 'listed 204: allowed');
    my $r = get('/allow204', 'Bearer a204');
    is(http_status($r), 200, 'listed 204: the hit allows');
    is($n->(), $before + 1, 'listed 204: asked once');
}

###############################################################################
# freshness: the smaller of *_cache_valid and the service's headers

for my $case (['max-age', 'Cache-Control: max-age=1'], ['s-maxage', 'Cache-Control: s-maxage=1, max-age=60'],
              ['X-Accel-Expires', 'X-Accel-Expires: 1']) {
    my ($name, $hdr) = @$case;
    my $auth = "Bearer fresh $name";
    my $before = asked('/auth/p');
    get('/p', $auth, "X-Ctl-Hdr: $hdr");
    my $r = get('/p', $auth);
    is(http_header($r, 'X-Cache'), '[HIT]', "$name=1: hit at once");
    sleep 1.3;
    $r = get('/p', $auth, 'X-Ctl-Status: 403');
    is(http_header($r, 'X-Cache'), '[EXPIRED]', "$name=1: expired after 1 s");
    is(http_status($r), 403, "$name: the new answer counts");
    is(asked('/auth/p'), $before + 2, "$name: asked again once stale");
    $r = get('/p', $auth);
    is(http_status($r), 403, "$name: the new answer is cached");
}

###############################################################################
# an entry that does not fit is not stored; the request is answered

{
    my $big = 'v' x 1500;
    my $before = asked('/auth/big');
    for (1 .. 2) {
        my $r = get('/big', 'Bearer big', "X-Ctl-Hdr: X-Big: $big");
        is(http_status($r), 200, 'too large to store: still answered');
    }
    is(asked('/auth/big'), $before + 2, 'too large: asked every time');
    ok($t->grep_log(qr/auth cache: decision larger than \d+ bytes, not stored/), 'too large: logged');
}

###############################################################################
# a full zone evicts the least recently used entry

{
    my ($room) = ($t->error_log =~ /auth_cache_zone "tiny": room for (\d+) entries/);
    ok($room && $room > 2, "tiny zone: room for $room entries");
    get('/tiny', 'Bearer t0');
    for my $i (1 .. $room + 2) {
        get('/tiny', "Bearer t$i");
        get('/tiny', 'Bearer t0') if $i % 4 == 0;   # keeps t0 recently used
    }
    is(http_header(get('/tiny', 'Bearer t0'), 'X-Cache'), '[HIT]', 'full zone: a recently used entry stays');
    is(http_header(get('/tiny', 'Bearer t1'), 'X-Cache'), '[MISS]', 'full zone: the least recently used left');
    is(http_header(get('/tiny', "Bearer t" . ($room + 2)), 'X-Cache'), '[HIT]', 'full zone: the newest stays');
}

###############################################################################
# entries survive a reload (same zone name and size)

{
    my $before = asked('/auth/p');
    get('/p', 'Bearer reload', 'X-Ctl-Status: 403');
    $t->reload;
    my $r = get('/p', 'Bearer reload');
    is(http_status($r), 403, 'after reload: the stored decision');
    is(http_header($r, 'X-Cache'), '[HIT]', 'after reload: hit');
    is(asked('/auth/p'), $before + 1, 'after reload: not asked again');
}

$t->done;
