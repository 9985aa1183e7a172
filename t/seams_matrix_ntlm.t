#!/usr/bin/perl
# The seam matrix for ntlm (issue 9 §3): a client A authenticates
# (Authorization: NTLM) through each way nginx moves a request into a
# location proxying to an ntlm upstream (rewrite last/break, error_page
# = @named, = URI, URI, try_files, X-Accel-Redirect from another upstream,
# a chain of two named locations, an SSI include, a mirror), over HTTP/1.1
# keep-alive, HTTP/1.0, HEAD and HTTP/2. Then other clients B (HTTP/1.1
# keep-alive, HTTP/1.0, HTTP/2) go the same way, before and after A closes.
#
# What happens: a bound connection is never shared. Every upstream
# connection that ever carried A's credentials (from the backend's own
# event log: the main request's, a mirror's, an include's) never serves
# B, and B never sees A's token. A's later requests on its connection
# follow the same move onto its bound connection. An HTTP/1.0 or HTTP/2 A
# is never bound, and its credentialed connection is not reused either.
# The upstream has keepalive (unbound connections are pooled, as nginx
# 1.29.7+ does by default): the invariants hold either way.
# satisfy any and backend failures of an auth service do not apply (ntlm
# is no access check); a bound connection that fails (the backend drops
# it) is covered by the last cell.

use strict;
use warnings;
use Test::More;
use lib 't/lib', 't/backends';
use AGTest;
use NtlmBackend;

my $t = AGTest->new->skip_unless_module;
$t->write_file('empty/.keep', '');
$t->write_file('ssi/page.html', qq{PAGE <!--# include virtual="/n/ssi" --> END\n});

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    upstream app { server 127.0.0.1:%%PORT_8081%%; keepalive 4; ntlm; }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        server_name localhost;
        location /n/        { proxy_pass http://app; }
        location @N         { proxy_pass http://app; }
        location /rwin/     { rewrite ^/rwin/(.*)$ /n/$1 last; }
        location /rwb/      { rewrite ^/rwb/(.*)$ /n/rwb/$1 break; proxy_pass http://app; }
        location /ep404n/   { root %%TESTDIR%%/empty; error_page 404 = @N; }
        location /ep404eq/  { root %%TESTDIR%%/empty; error_page 404 = /n/ep; }
        location /ep404u/   { root %%TESTDIR%%/empty; error_page 404 /n/ep; }
        location /tf/       { try_files /nope @N; }
        location /xa/       { proxy_set_header X-Echo-Ctl-Hdr "X-Accel-Redirect: /n/xa";
                              proxy_pass http://127.0.0.1:%%PORT_8082%%; }
        location /ch/       { try_files /nope @c1; }
        location @c1        { root %%TESTDIR%%/empty; error_page 404 = @N; }
        location /ssiu/     { ssi on; alias %%TESTDIR%%/ssi/; }
        location /mir/      { mirror /n/mirror; proxy_pass http://app; }
    }
}
EOF
my $ev = $t->testdir . '/b1.events';
$t->run_daemon(\&NtlmBackend::serve, port => $t->port(8081), name => 'b1', state => $ev);
$t->waitforsocket($t->port(8081)) or die;
$t->run_echo_server(8082);
$t->run;
my $port = $t->port(8080);

my @CELLS = (
    ['direct', '/n/d'], ['rewrite last', '/rwin/x'], ['rewrite break', '/rwb/x'],
    ['error_page 404 = @N', '/ep404n/x'], ['error_page 404 = /n/', '/ep404eq/x'],
    ['error_page 404 /n/', '/ep404u/x'], ['try_files @N', '/tf/x'],
    ['X-Accel-Redirect', '/xa/x'], ['chain @c1 -> @N', '/ch/x'],
    ['SSI include', '/ssiu/page.html'], ['mirror', '/mir/x'],
);

# (conn id, token) of a response: headers, else the (included) body
sub conn_of {
    my ($r) = @_;
    return (undef, undef) unless $r;
    my $id = NtlmBackend::hdr($r, 'X-Conn-Id');
    return ($id, NtlmBackend::hdr($r, 'X-Conn-Token')) if defined $id;
    return NtlmBackend::body_conn($r->{body});
}
# upstream connections that ever carried (or were bound to) this token
sub conns_of_token {
    my ($tok) = @_;
    my %ids = map { $_->{id} => 1 }
              grep { $_->{type} eq 'req' && ($_->{sent} eq $tok || $_->{token} eq $tok) }
              NtlmBackend::events($ev);
    return \%ids;
}
# B's requests through the cell: list of [what, id, token]
sub b_requests {
    my ($uri) = @_;
    my @seen;
    my $s = NtlmBackend::client($port);
    for my $i (1, 2) {
        my $r = NtlmBackend::request($s, $uri);
        push @seen, ["B 1.1 #$i", conn_of($r)];
    }
    close $s;
    my $r = parse_response(http_get($uri, version => '1.0'));
    push @seen, ['B 1.0', conn_of($r)];
    $r = parse_response(http2_request($uri));
    push @seen, ['B h2', conn_of($r)];
    return @seen;
}
sub check_b {
    my ($tag, $tok, @seen) = @_;
    my $a = conns_of_token($tok);
    for my $b (@seen) {
        my ($what, $id, $btok) = @$b;
        ok(defined $id, "$tag: $what reached the upstream") or next;
        ok(!$a->{$id}, "$tag: $what not on a connection of A (conn $id)");
        is($btok, '-', "$tag: $what does not see A's token");
    }
}

my $cells = 0;
my $n = 0;
for my $cell (@CELLS) {
    my ($name, $uri) = @$cell;

    # A over HTTP/1.1 keep-alive, GET then HEAD
    for my $method ('GET', 'HEAD') {
        next if $method eq 'HEAD' && $uri =~ /ssi/;   # HEAD: no include
        $cells++;
        my $tok = 'tokA' . ++$n;
        my $tag = "$name [A 1.1 $method]";
        my $s = NtlmBackend::client($port);
        my $m = $method eq 'HEAD' ? "HEAD" : "GET";
        my $req = sub { my ($auth) = @_;
            my $raw = "$m $uri HTTP/1.1\r\nHost: localhost\r\n"
                . ($auth ? "Authorization: NTLM $tok\r\n" : '') . "\r\n";
            my $sock = $s;
            syswrite($sock, $raw);
            my $buf = '';
            my $sel = IO::Select->new($sock);
            while ($sel->can_read(5)) {
                last unless sysread($sock, $buf, 65536, length $buf);
                my @r = parse_responses($buf, head => $m eq 'HEAD');
                return $r[0] if @r && $r[0]{complete} && $buf =~ /\r\n\r\n/;
            }
            return parse_response($buf);
        };
        my ($id1, $tok1) = conn_of($req->(1));
        is($tok1, $tok, "$tag: A authenticated through the move");
        my ($id2, $tok2) = conn_of($req->(0));
        is($tok2, $tok, "$tag: A's next request follows the move onto a connection bound to A");
        ok(defined $id2 && conns_of_token($tok)->{$id2}, "$tag: ... one that carried A's credentials");
        # With a mirror, the main request and the mirror subrequest carry
        # A's credentials at the same time over two connections: whichever
        # is freed first becomes A's binding (the other is closed), so only
        # "one that carried A's credentials" holds there. Never shared with
        # another client either way (check_b below).
        is($id2, $id1, "$tag: ... the main request's connection") unless $uri =~ /mir/;
        check_b("$tag, A open", $tok, b_requests($uri));
        close $s;
        NtlmBackend::wait_close($ev, $id1, 2);
        check_b("$tag, A closed", $tok, b_requests($uri));
    }

    # A over HTTP/1.0 and HTTP/2: never bound, its connection never reused
    for my $proto ('1.0', 'h2') {
        $cells++;
        my $tok = 'tokA' . ++$n;
        my $tag = "$name [A $proto]";
        my $r = $proto eq 'h2'
            ? parse_response(http2_request($uri, headers => ["Authorization: NTLM $tok"]))
            : parse_response(http_get($uri, version => '1.0', headers => ["Authorization: NTLM $tok"]));
        my ($id, $atok) = conn_of($r);
        is($atok, $tok, "$tag: A's credentials reached the upstream");
        NtlmBackend::wait_close($ev, $id, 2) if defined $id;
        check_b($tag, $tok, b_requests($uri));
    }
}

# a bound connection that fails: the backend drops it when it is asked
# again; nginx retries on a fresh connection, which stays unauthenticated
# and is not A's; B never gets A's connection
{
    my $tok = 'tokDrop';
    my $s = NtlmBackend::client($port);
    my ($id1) = conn_of(NtlmBackend::request($s, '/rwin/x', auth => "NTLM $tok"));
    my $r = NtlmBackend::request($s, '/rwin/x?drop_if_token=1');
    my ($id2, $tok2) = conn_of($r);
    isnt($id2 // $id1, $id1, 'bound connection dropped: A is retried on another connection');
    is($tok2 // '-', '-', 'bound connection dropped: the retry is unauthenticated');
    check_b('bound connection dropped', $tok, b_requests('/tf/x'));
    close $s;
    $cells++;
}
diag("cells: $cells") if $ENV{SEAMS_DEBUG};

$t->done;
