#!/usr/bin/perl
# Two nginx nodes, two workers each, one redis-server (key_auth_quota_store):
# the seed walkthrough replayed with requests alternating between the nodes
# gives jack 200: 3, 429: 2 and anonymous 200: 1, 429: 4; bounded parallel
# clients against both nodes get exactly the limit admitted per window;
# nginx -s reload of one node keeps counting (the counters live in Redis).

use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use POSIX qw(_exit);
use Time::HiRes qw(sleep time);
use lib 't/lib';
use AGTest;
use AGRedis;

my $t1 = AGTest->new->skip_unless_module;
$t1->skip_all('no redis-server (ci/setup.sh installs it)') unless AGRedis->available;
my $redis = AGRedis->start($t1);
my $t2 = AGTest->new;

my $BURST = 25;
my $conf = <<'EOF';
%%TEST_GLOBALS%%
worker_processes 2;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_quota_store redis://127.0.0.1:REDIS_PORT timeout=1s;
    key_auth_consumers {
        jack       key=jack-key  credential=cred-jack-key-auth  custom_id=495aec6a  limit=3/30s  limit_status=429;
        anonymous                                                                  limit=1/30s  limit_status=429;
        burst      key=burst-key limit=BURST/1m limit_status=429;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        add_header X-Node NODE always;
        add_header X-Worker $pid always;
        location / {
            key_auth on;
            key_auth_anonymous_consumer anonymous;
            root %%TESTDIR%%;
        }
    }
}
EOF
my $i = 0;
for my $t ($t1, $t2) {
    $i++;
    $t->write_file('index.html', "node $i\n");
    (my $c = $conf) =~ s/REDIS_PORT/$redis->port/e;
    $c =~ s/NODE/node$i/;
    $c =~ s/BURST/$BURST/;
    $t->write_file_expand('nginx.conf', $c);
    $t->run;
}
my @ports = ($t1->port(8080), $t2->port(8080));
isnt($ports[0], $ports[1], 'two nodes on two ports');

sub get { my ($node, @h) = @_; http_get('/index.html', port => $ports[$node], headers => [@h]) }

# the walkthrough, alternating nodes
my (%jack, %anon, %nodes, %workers);
for my $n (0 .. 4) {
    my $r = get($n % 2, 'apikey: jack-key');
    $jack{ http_status($r) }++;
    $nodes{ http_header($r, 'X-Node') }++;
    $workers{ http_header($r, 'X-Node') . '/' . http_header($r, 'X-Worker') }++;
    is(http_header($r, 'X-RateLimit-Remaining'), $n < 3 ? 2 - $n : 0,
       "jack #" . ($n + 1) . " on node " . ($n % 2 + 1) . ": X-RateLimit-Remaining counts the fleet");
}
is_deeply(\%jack, { 200 => 3, 429 => 2 }, 'jack, alternating nodes: 200: 3, 429: 2');
is_deeply(\%nodes, { node1 => 3, node2 => 2 }, 'both nodes answered');
for my $n (0 .. 4) {
    $anon{ http_status(get($n % 2)) }++;
}
is_deeply(\%anon, { 200 => 1, 429 => 4 }, 'anonymous, alternating nodes: 200: 1, 429: 4');
is($redis->command('GET', 'authgate:jack'), 5, 'one counter for jack in Redis');

# bounded concurrency: 8 clients, 10 requests each, alternating nodes,
# each request on its own connection (so every worker of both nodes serves)
my $dir = $t1->testdir;
my @kids;
pipe(my $go_r, my $go_w) or die;
for my $c (1 .. 8) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        close $go_w;
        my $x = <$go_r>;
        open my $out, '>', "$dir/client-$c.out" or _exit(1);
        for my $k (1 .. 10) {
            my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ports[($c + $k) % 2],
                                          Timeout => 5) or do { print $out "none\n"; next };
            print $s "GET /index.html HTTP/1.1\r\nHost: a\r\napikey: burst-key\r\nConnection: close\r\n\r\n";
            local $/;
            my $r = <$s> // '';
            my ($st) = $r =~ m{^HTTP/1\.1 (\d{3})};
            my ($node) = $r =~ /^X-Node: (\w+)/mi;
            my ($w) = $r =~ /^X-Worker: (\d+)/mi;
            print $out join(' ', $st // 'none', $node // '-', $w // '-'), "\n";
        }
        close $out;
        _exit(0);
    }
    push @kids, $pid;
}
close $go_r;
close $go_w;
waitpid($_, 0) for @kids;
my (%status, %served);
for my $c (1 .. 8) {
    open my $in, '<', "$dir/client-$c.out" or die;
    while (<$in>) {
        my ($st, $node, $w) = split;
        $status{$st}++;
        $served{"$node/$w"}++ if $st ne 'none';
    }
}
is_deeply(\%status, { 200 => $BURST, 429 => 80 - $BURST },
          "80 concurrent requests on both nodes: exactly $BURST admitted");
is(scalar(keys %served), 4, 'served by both workers of both nodes') or diag(join ' ', keys %served);
is($redis->command('GET', 'authgate:burst'), 80, 'each request counted once in Redis');
my @nginx_clients = grep { /cmd=eval/ } split /\n/, $redis->command('CLIENT', 'LIST');
is(scalar @nginx_clients, 4, 'one keep-alive connection per worker: 4 for 2 nodes x 2 workers, shared by all their requests')
    or diag(join "\n", @nginx_clients);

# a reload of node 1 keeps counting: jack is still over on both nodes
$t1->reload;
sleep 0.3;
is(http_status(get(0, 'apikey: jack-key')), 429, 'after node 1 reloads: jack still over there');
is(http_status(get(1, 'apikey: jack-key')), 429, 'and on node 2');
is($redis->command('GET', 'authgate:jack'), 7, 'counted in the same window');

$t2->stop;
my @bad = $t2->_bad_log_lines;
ok(!@bad, 'node 2: no alert/crit in its error log') or diag(join "\n", @bad);
$t2->{done} = 1;    # its error log is checked just above
$t1->done;
