#!/usr/bin/perl
# key_auth: identity headers cannot be spoofed through name normalisation
# (issue 9, item 5).
#
# With "underscores_in_headers on", nginx passes a client's
# "X_Consumer_Username: admin" on as a header of its own, next to ours.
# FastCGI, uwsgi, SCGI (and PHP, Rack, WSGI behind them) turn both spellings
# into HTTP_X_CONSUMER_USERNAME.  Every client header whose name, case
# folded and with "_" equal to "-", is one of the consumer headers is
# removed; so is every spelling of the key header with
# key_auth_hide_credentials on.  Checked with a proxied echo server and
# with a uwsgi application (what it sees as HTTP_* variables).

use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_consumers {
        jack key=jack-key credential=cred-jack custom_id=495aec6a;
        plain key=plain-key;
        anonymous;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        underscores_in_headers on;
        location /echo/ {
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /anon/ {
            key_auth on;
            key_auth_anonymous_consumer anonymous;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /any/ {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /hide/ {
            key_auth on;
            key_auth_header X-API-Key;
            key_auth_hide_credentials on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        # removing headers nginx chains (known headers with repeats): the
        # chains and slots must stay coherent around what moves
        location /hide-xff/ {
            key_auth on;
            key_auth_header X-Forwarded-For;
            key_auth_hide_credentials on;
            proxy_set_header X-Cookie-Var $http_cookie;
            proxy_set_header X-XFF-Var $proxy_add_x_forwarded_for;
            proxy_set_header X-Referer-Var $http_referer;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /open/ {
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /uwsgi/ {
            key_auth on;
            uwsgi_pass 127.0.0.1:%%PORT_8083%%;
        }
    }
}
EOF
$t->run_echo_server(8082);

# a uwsgi application that answers with the HTTP_* variables it was given,
# one "NAME=value" line each, in order
my $uport = port(8083);
$t->run_daemon(sub {
    my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$uport", Listen => 16,
                                  ReuseAddr => 1) or die "listen: $!";
    while (my $c = $s->accept) {
        my $read = sub {
            my ($n) = @_;
            my $buf = '';
            while (length $buf < $n) { sysread($c, $buf, $n - length $buf, length $buf) or return }
            return $buf;
        };
        my $head = $read->(4) // next;          # a bare connect (waitforsocket)
        my (undef, $size) = unpack('C v', $head);
        my $vars = $read->($size) // next;
        my $out = '';
        while (length $vars >= 2) {
            my $kl = unpack('v', substr($vars, 0, 2, ''));
            my $k = substr($vars, 0, $kl, '');
            my $vl = unpack('v', substr($vars, 0, 2, ''));
            my $v = substr($vars, 0, $vl, '');
            $out .= "$k=$v\n" if $k =~ /^HTTP_/;
        }
        syswrite($c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     . "Content-Length: " . length($out) . "\r\n\r\n$out");
        close $c;
    }
});
$t->waitforsocket("127.0.0.1:$uport") or die 'uwsgi application did not start';
$t->run;

sub hdrs {
    my ($j, $name) = @_;
    return [map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ $j->{headers} || [] }];
}

# every spelling an application folds into the same variable
sub spelled {
    my ($name) = @_;
    (my $u = $name) =~ tr/-/_/;                  # X_Consumer_Username
    (my $last = $name) =~ s/-([^-]*)$/_$1/;      # X-Consumer_Username
    (my $first = $name) =~ s/-/_/;               # X_Consumer-Username
    return ($u, lc $u, uc $u, $last, $first);
}

my @ours = ('X-Consumer-Username', 'X-Credential-Identifier', 'X-Consumer-Custom-Id');
my @forged;
for my $name (@ours) {
    my $i = 0;
    push @forged, map { "$_: forged" . $i++ } spelled($name);
}
# the same name in the usual spelling is removed as before
push @forged, 'X-Consumer-Username: mallory';

my %want = ('X-Consumer-Username' => 'jack', 'X-Credential-Identifier' => 'cred-jack',
            'X-Consumer-Custom-Id' => '495aec6a');

# the names as the echo server saw them, folded as an application folds them
sub folded {
    my ($j, $name) = @_;
    (my $f = lc $name) =~ tr/_/-/;
    return [map { $_->[1] } grep { (my $k = lc $_->[0]) =~ tr/_/-/; $k eq $f }
            @{ $j->{headers} || [] }];
}

for my $version ('1.0', '1.1') {
    my $j = json_body(http_get('/echo/x', version => $version,
                               headers => ['apikey: jack-key', @forged]));
    for my $name (@ours) {
        is_deeply(folded($j, $name), [$want{$name}],
                  "HTTP/$version proxy: only our $name, in any spelling");
        is_deeply(hdrs($j, $name), [$want{$name}], "HTTP/$version proxy: ours is $name");
    }

    $j = json_body(http_get('/anon/x', version => $version, headers => [@forged]));
    is_deeply(folded($j, 'X-Consumer-Username'), ['anonymous'],
              "HTTP/$version anonymous: only our X-Consumer-Username");
    is_deeply(folded($j, 'X-Credential-Identifier'), [],
              "HTTP/$version anonymous: no X-Credential-Identifier at all");

    $j = json_body(http_get('/any/x', version => $version, headers => [@forged]));
    for my $name (@ours) {
        is_deeply(folded($j, $name), [],
                  "HTTP/$version satisfy any, allowed by address: no $name in any spelling");
    }

    # key_auth_hide_credentials: no spelling of the key header goes upstream
    $j = json_body(http_get('/hide/x', version => $version,
                            headers => ['X-API-Key: jack-key', 'X_API_Key: plain-key',
                                        'x_api-key: other']));
    is_deeply(hdrs($j, 'X-Consumer-Username'), ['jack'], "HTTP/$version hide: the key of X-API-Key counts");
    is_deeply(folded($j, 'X-API-Key'), [], "HTTP/$version hide: no spelling of X-API-Key upstream");

    # an underscore spelling is no key header (nginx matches it exactly)
    my $r = http_get('/hide/x', version => $version, headers => ['X_API_Key: jack-key']);
    is(http_status($r), 401, "HTTP/$version X_API_Key is not the key header: 401");

    # uwsgi: what the application sees
    $r = http_get('/uwsgi/x', version => $version, headers => ['apikey: jack-key', @forged]);
    is(http_status($r), 200, "HTTP/$version uwsgi: 200");
    my @vars = split /\n/, http_body($r);
    is_deeply([grep { /^HTTP_X_CONSUMER_USERNAME=/ } @vars], ['HTTP_X_CONSUMER_USERNAME=jack'],
              "HTTP/$version uwsgi: one HTTP_X_CONSUMER_USERNAME, ours");
    is_deeply([grep { /^HTTP_X_CREDENTIAL_IDENTIFIER=/ } @vars],
              ['HTTP_X_CREDENTIAL_IDENTIFIER=cred-jack'],
              "HTTP/$version uwsgi: one HTTP_X_CREDENTIAL_IDENTIFIER, ours");
    is_deeply([grep { /^HTTP_X_CONSUMER_CUSTOM_ID=/ } @vars],
              ['HTTP_X_CONSUMER_CUSTOM_ID=495aec6a'],
              "HTTP/$version uwsgi: one HTTP_X_CONSUMER_CUSTOM_ID, ours");
}

# removal inside nginx's header chains, with unknown headers in between
for my $version ('1.0', '1.1') {
    my $j = json_body(http_get('/hide-xff/x', version => $version, headers => [
        'Cookie: a=1', 'X-Forwarded-For: jack-key', 'X-Unknown: u1', 'Cookie: b=2',
        'Referer: http://r/', 'X_Forwarded_For: 10.0.0.9', 'X-Forwarded-For: 10.0.0.1',
        'X-Unknown: u2', 'Cookie: c=3']));
    is_deeply(hdrs($j, 'X-Consumer-Username'), ['jack'], "HTTP/$version hide-xff: the key counted");
    is_deeply(folded($j, 'X-Forwarded-For'), [], "HTTP/$version hide-xff: no X-Forwarded-For upstream");
    is_deeply(hdrs($j, 'X-XFF-Var'), ['127.0.0.1'], "HTTP/$version hide-xff: \$proxy_add_x_forwarded_for sees none");
    is_deeply(hdrs($j, 'X-Cookie-Var'), ['a=1; b=2; c=3'], "HTTP/$version hide-xff: cookie chain intact");
    is_deeply(hdrs($j, 'Cookie'), ['a=1', 'b=2', 'c=3'], "HTTP/$version hide-xff: cookies upstream");
    is_deeply(hdrs($j, 'X-Referer-Var'), ['http://r/'], "HTTP/$version hide-xff: referer slot intact");
    is_deeply(hdrs($j, 'X-Unknown'), ['u1', 'u2'], "HTTP/$version hide-xff: other headers kept");
}

# without key_auth the forged spellings do reach the upstream: the test
# would prove nothing if nginx dropped them itself
my $j = json_body(http_get('/open/x', headers => [@forged]));
is(scalar @{ folded($j, 'X-Consumer-Username') }, 6, 'no key_auth: all six spellings arrive');

# A list part emptied by the removal must not stay linked: nginx's walkers
# (proxy, fastcgi, $http_*) read the first element of the next part before
# checking it has one, and would send the last header removed. nginx keeps
# request headers in parts of 20: Host + 19 fillers fill the first, 20
# forged headers the second, one more header starts a third. (http_get
# sends Host and Connection first: 18 fillers complete the first part.)
{
    my @fill = map { "X-Fill-$_: $_" } 1 .. 18;
    my @many = map { 'X-Consumer-Username: admin' } 1 .. 20;
    for my $case (['/echo/x', 'apikey: jack-key', 'identified'],
                  ['/anon/x', undef, 'anonymous'],
                  ['/any/x', undef, 'satisfy any + allow']) {
        my ($uri, $key, $what) = @$case;
        my @h = (@fill, @many, 'X-Z: 1', $key ? ($key) : ());
        my $j = json_body(http_get($uri, headers => \@h));
        ok($j, "emptied part ($what): answered");
        is_deeply([grep { $_ eq 'admin' } @{ folded($j, 'X-Consumer-Username') }], [],
                  "emptied part ($what): no forged X-Consumer-Username reaches the upstream");
        is(scalar @{ hdrs($j, 'X-Z') }, 1, "emptied part ($what): the header after them arrives once");
    }
    # HTTP/2 (request headers in parts of 20 too): curl's own headers and
    # the Host nginx adds come first, so try every alignment
    for my $n (0 .. 19) {
        my @h2 = ((map { "X-Fill-$_: $_" } 1 .. $n), @many, 'X-Z: 1', 'apikey: jack-key');
        my $out = http2_request('/echo/x', headers => \@h2);
        my ($body) = $out =~ /\r\n\r\n(.*)\z/s;
        my $j = eval { JSON::PP::decode_json($body // '') };
        ok($j && !grep({ $_ eq 'admin' } @{ folded($j, 'X-Consumer-Username') }),
           "emptied part (HTTP/2, $n fillers): no forged X-Consumer-Username reaches the upstream");
    }
    # the hidden key, filling a part of its own
    my @keys = map { 'X-API-Key: jack-key' } 1 .. 20;
    my $j = json_body(http_get('/hide/x', headers => [@fill, @keys, 'X-Z: 1']));
    ok($j, 'emptied part (hide): answered');
    is_deeply(folded($j, 'X-API-Key'), [], 'emptied part (hide): no key reaches the upstream');
    is(scalar @{ hdrs($j, 'X-Z') }, 1, 'emptied part (hide): the header after them arrives once');
}

$t->done;
