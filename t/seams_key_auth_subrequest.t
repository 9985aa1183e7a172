#!/usr/bin/perl
# key_auth where its access handler does not run (issue 9, the two bypasses
# of t/seams_matrix_key_auth.t):
#
#   * subrequests (SSI include virtual=, mirror) into a key_auth location:
#     nginx skips the access phase for them. They never carry the client's
#     identity headers (any spelling) to the upstream and, with
#     key_auth_hide_credentials on, never the key (header in any spelling,
#     query argument, $request_uri, $request); they carry our identity
#     headers when the main request was identified by key_auth. The
#     parent's headers are not changed for its other subrequests.
#   * satisfy any + allow all + key_auth_hide_credentials on: allow decides,
#     key_auth never checks the request, the key is hidden all the same
#     (upstream, $request, $request_uri, $args, access log).
#   * satisfy any + deny all + a valid key: the normal path, unchanged.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;
use Time::HiRes qw(sleep);

my $t = AGTest->new->skip_unless_module;

$t->write_file('ssi/page.html',
    qq{BEGIN\n<!--# include virtual="/p/ssi" -->\n<!--# include virtual="/open/ssi" -->\nEND\n});
$t->write_file('ssi/args.html', qq{BEGIN\n<!--# include virtual="/p/ssi?\$args" -->\nEND\n});
$t->write_file('ssi/named.html', qq{BEGIN\n<!--# include virtual="/pk/ssi" -->\nEND\n});
$t->write_file('ssi/nohide.html', qq{BEGIN\n<!--# include virtual="/pn/ssi" -->\nEND\n});

my $E = 'http://127.0.0.1:%%PORT_8082%%';
my $vars = 'proxy_set_header X-Orig $request_uri; proxy_set_header X-Req $request; '
         . 'proxy_set_header X-Args $args;';
my $HIDE = 'key_auth on; key_auth_hide_credentials on;';

$t->write_file_expand('nginx.conf', <<"EOF");
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    log_format sub '\$uri|\$request|\$request_uri|\$args';
    key_auth_consumers {
        jack key=jack-key credential=cred-jack custom_id=cid-jack;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;
        underscores_in_headers on;
        access_log %%TESTDIR%%/sub.log sub;

        location /ssiu/   { ssi on; alias %%TESTDIR%%/ssi/; }
        location /ssip/   { $HIDE ssi on; alias %%TESTDIR%%/ssi/; }
        location /p/      { $HIDE proxy_set_header X-Hit P-p; $vars proxy_pass $E; }
        location /pk/     { $HIDE key_auth_header X-Api-Key; proxy_set_header X-Hit P-pk; $vars proxy_pass $E; }
        location /pn/     { key_auth on; proxy_set_header X-Hit P-pn; $vars proxy_pass $E; }
        location /open/   { proxy_set_header X-Hit U-open; $vars proxy_pass $E; }

        location /miru/   { mirror /mt/m; proxy_set_header X-Hit U-miru; proxy_pass $E; }
        location /mirp/   { $HIDE mirror /mt/m; proxy_set_header X-Hit P-mirp; proxy_pass $E; }
        location /mt/     { internal; $HIDE proxy_set_header X-Hit P-mt; $vars proxy_pass $E; }

        location /saallow/ { satisfy any; allow all; $HIDE proxy_set_header X-Hit P-saallow; $vars proxy_pass $E; }
        location /sakey/   { satisfy any; allow all; $HIDE key_auth_header X-Api-Key; proxy_set_header X-Hit P-sakey; $vars proxy_pass $E; }
        location /sadeny/  { satisfy any; deny all;  $HIDE proxy_set_header X-Hit P-sadeny; $vars proxy_pass $E; }
    }
}
EOF
$t->run_echo_server(8082);
$t->run;

my $KEY = 'jack-key';
my @FORGED = ('X-Consumer-Username: admin', 'X-Credential-Identifier: forged',
              'X-Consumer-Custom-Id: forged');
my @FORGED_ = ('X_Consumer_Username: admin', 'X_Credential_Identifier: forged',
               'X_Consumer_Custom_Id: forged');
my %JACK = ('x-consumer-username' => ['jack'], 'x-credential-identifier' => ['cred-jack'],
            'x-consumer-custom-id' => ['cid-jack']);

# one request; the echo records by X-Hit (a mirror finishes in the background)
sub run {
    my ($uri, $want, @h) = @_;
    $t->clear_requests('echo');
    my $r = http_get($uri, headers => \@h);
    my $deadline = Time::HiRes::time() + 2;
    my @recs;
    while (1) {
        @recs = $t->requests('echo');
        last if @recs >= $want || Time::HiRes::time() > $deadline;
        sleep 0.02;
    }
    my %by;
    push @{ $by{ scalar AGTest::req_header($_, 'X-Hit') // '' } }, $_ for @recs;
    return ($r, \%by);
}
# identity headers in any spelling ("_" read as "-")
sub identity {
    my ($rec) = @_;
    my %h;
    for my $hd (@{ $rec->{headers} }) {
        my $n = lc($hd->[0]) =~ tr/_/-/r;
        push @{ $h{$n} }, $hd->[1] if $n =~ /^x-(consumer|credential)-/;
    }
    return \%h;
}
# header names (any spelling) that carry the key, and every other trace
sub key_headers { my ($rec, $name) = @_;
                  return [map { $_->[0] } grep { (lc($_->[0]) =~ tr/_/-/r) eq $name } @{ $rec->{headers} }] }
sub traces { my ($rec) = @_; return scalar grep { $_->[1] =~ /\Q$KEY\E/ } @{ $rec->{headers} } }
sub one { my ($by, $hit) = @_; return ($by->{$hit} || [])->[0] || { headers => [] } }

# --- SSI include from an unprotected page -----------------------------------

for my $case (['no key', []], ['a key', ["apikey: $KEY"]]) {
    my ($what, $key) = @$case;
    my ($r, $by) = run('/ssiu/page.html', 2, @$key, @FORGED, @FORGED_);
    is(http_status($r), 200, "SSI, unprotected page, $what: 200");
    my $p = one($by, 'P-p');
    is(scalar @{ $by->{'P-p'} || [] }, 1, "SSI, unprotected page, $what: the protected upstream is asked once");
    is_deeply(identity($p), {}, "SSI, unprotected page, $what: no forged identity, either spelling, reaches it");
    is_deeply(key_headers($p, 'apikey'), [], "SSI, unprotected page, $what: no key header reaches it");
    is(traces($p), 0, "SSI, unprotected page, $what: no trace of the key ($what)");
    # the parent's other include still sees the client's headers: the
    # subrequest's headers were its own
    my $o = one($by, 'U-open');
    is(scalar(grep { $_->[0] eq 'X-Consumer-Username' && $_->[1] eq 'admin' } @{ $o->{headers} }), 1,
       "SSI, unprotected page, $what: the unprotected include still sees the client's headers");
    is(scalar(grep { $_->[0] eq 'X_Consumer_Username' } @{ $o->{headers} }), 1,
       "SSI, unprotected page, $what: ... in both spellings");
    is_deeply(key_headers($o, 'apikey'), @$key ? ['apikey'] : [],
              "SSI, unprotected page, $what: ... and the key header (not key_auth's location)");
}

# the key in the query: the include passes the page's arguments on
{
    my ($r, $by) = run("/ssiu/args.html?z=%2f&apikey=$KEY&b", 1, @FORGED);
    is(http_status($r), 200, 'SSI, unprotected page, ?apikey: 200');
    my $p = one($by, 'P-p');
    is($p->{query}, 'z=%2f&b', 'SSI, unprotected page, ?apikey: the include\'s own arguments lose the key');
    is(scalar AGTest::req_header($p, 'X-Args'), 'z=%2f&b', '... $args in the subrequest');
    is(scalar AGTest::req_header($p, 'X-Orig'), '/ssiu/args.html?z=%2f&b', '... $request_uri in the subrequest');
    is(scalar AGTest::req_header($p, 'X-Req'), 'GET /ssiu/args.html?z=%2f&b HTTP/1.1', '... $request in the subrequest');
    is(traces($p), 0, '... no trace of the key');
    is_deeply(identity($p), {}, '... no forged identity');
}

# another key header name, sent in its underscore spelling
{
    my ($r, $by) = run('/ssiu/named.html', 1, "X_Api_Key: $KEY", "x-api-key: $KEY", @FORGED_);
    is(http_status($r), 200, 'SSI, unprotected page, X_Api_Key: 200');
    my $p = one($by, 'P-pk');
    is_deeply(key_headers($p, 'x-api-key'), [], 'SSI, key_auth_header X-Api-Key: no spelling of it reaches the upstream');
    is_deeply(identity($p), {}, '... no forged identity');
}

# key_auth on without hide: the identity is still not the client's
{
    my ($r, $by) = run('/ssiu/nohide.html', 1, "apikey: $KEY", @FORGED, @FORGED_);
    my $p = one($by, 'P-pn');
    is_deeply(identity($p), {}, 'SSI, key_auth without hide: no forged identity');
    is_deeply(key_headers($p, 'apikey'), ['apikey'], 'SSI, key_auth without hide: the key header is kept');
}

# --- SSI include from a protected page ------------------------------------

{
    my ($r, $by) = run("/ssip/page.html?z=1&apikey=$KEY", 2, @FORGED, @FORGED_);
    is(http_status($r), 200, 'SSI, protected page, ?apikey: 200');
    my $p = one($by, 'P-p');
    is_deeply(identity($p), \%JACK, 'SSI, protected page: the include carries our identity for jack, once');
    is(traces($p), 0, 'SSI, protected page: no trace of the key');
    is(scalar AGTest::req_header($p, 'X-Orig'), '/ssip/page.html?z=1', 'SSI, protected page: $request_uri without the key');

    ($r, $by) = run('/ssip/page.html', 2, "apikey: $KEY", @FORGED, @FORGED_);
    $p = one($by, 'P-p');
    is_deeply(identity($p), \%JACK, 'SSI, protected page, key header: our identity for jack, once');
    is_deeply(key_headers($p, 'apikey'), [], 'SSI, protected page, key header: no key');

    ($r, $by) = run('/ssip/page.html', 0, @FORGED);
    is(http_status($r), 401, 'SSI, protected page, no key: 401');
    is(scalar(keys %$by), 0, 'SSI, protected page, no key: nothing included');
}

# --- mirror -------------------------------------------------------------------

{
    my ($r, $by) = run("/miru/x?z=1&apikey=$KEY", 2, "apikey: $KEY", @FORGED, @FORGED_);
    is(http_status($r), 200, 'mirror, unprotected: 200');
    my $m = one($by, 'P-mt');
    is(scalar @{ $by->{'P-mt'} || [] }, 1, 'mirror, unprotected: the protected mirror target is asked');
    is_deeply(identity($m), {}, 'mirror, unprotected: no forged identity, either spelling');
    is_deeply(key_headers($m, 'apikey'), [], 'mirror, unprotected: no key header');
    like($m->{uri}, qr{^/mt/m\?z=1$}, 'mirror, unprotected: the mirrored arguments lose the key');
    is(traces($m), 0, 'mirror, unprotected: no trace of the key');
    my $u = one($by, 'U-miru');
    is(scalar(grep { $_->[0] eq 'X-Consumer-Username' } @{ $u->{headers} }), 1,
       'mirror, unprotected: the main request (unprotected) keeps its headers');

    ($r, $by) = run("/mirp/x?z=1&apikey=$KEY", 2, @FORGED, @FORGED_);
    is(http_status($r), 200, 'mirror, protected, ?apikey: 200');
    $m = one($by, 'P-mt');
    is_deeply(identity($m), \%JACK, 'mirror, protected: the mirror carries our identity for jack, once');
    is(traces($m), 0, 'mirror, protected: no trace of the key');
    is_deeply(identity(one($by, 'P-mirp')), \%JACK, 'mirror, protected: the main request too');
}

# --- satisfy any + allow all ----------------------------------------------

{
    my ($r, $by) = run("/saallow/x?z=%2f&apikey=$KEY&b", 1, @FORGED, @FORGED_);
    is(http_status($r), 200, 'satisfy any + allow all, ?apikey: 200');
    my $p = one($by, 'P-saallow');
    is($p->{query}, 'z=%2f&b', 'satisfy any + allow all, ?apikey: the upstream sees no key, other arguments kept');
    is(traces($p), 0, 'satisfy any + allow all, ?apikey: no trace in $request_uri, $request, $args');
    is_deeply(identity($p), {}, 'satisfy any + allow all: no identity (allow decided)');

    ($r, $by) = run('/saallow/h', 1, "apikey: $KEY", "APIKEY: $KEY");
    $p = one($by, 'P-saallow');
    is_deeply(key_headers($p, 'apikey'), [], 'satisfy any + allow all, key header: removed, every copy');
    is(traces($p), 0, 'satisfy any + allow all, key header: no trace');

    ($r, $by) = run('/sakey/h', 1, "X-Api-Key: $KEY", "X_Api_Key: $KEY");
    $p = one($by, 'P-sakey');
    is_deeply(key_headers($p, 'x-api-key'), [], 'satisfy any + allow all, X_Api_Key spelling: removed');
}

# --- satisfy any + deny all: the normal path ---------------------------------

{
    my ($r, $by) = run("/sadeny/x?z=%2f&apikey=$KEY&b", 1, @FORGED);
    is(http_status($r), 200, 'satisfy any + deny all, ?apikey: 200');
    my $p = one($by, 'P-sadeny');
    is($p->{query}, 'z=%2f&b', 'satisfy any + deny all, ?apikey: key removed, other arguments kept');
    is_deeply(identity($p), \%JACK, 'satisfy any + deny all: our identity, once');
    is(traces($p), 0, 'satisfy any + deny all: no trace of the key');

    # a valid header key hides the header only: the query argument stays, as
    # in any key_auth location (hidden once, from the key's source)
    ($r, $by) = run('/sadeny/x?apikey=other', 1, "apikey: $KEY");
    $p = one($by, 'P-sadeny');
    is_deeply(key_headers($p, 'apikey'), [], 'satisfy any + deny all, key header: removed');
    is($p->{query}, 'apikey=other', 'satisfy any + deny all, key header: the query is the source of no key, kept');
    is_deeply(identity($p), \%JACK, 'satisfy any + deny all, key header: our identity, once');

    ($r, $by) = run('/sadeny/x', 0, 'apikey: wrong');
    is(http_status($r), 401, 'satisfy any + deny all, invalid key: 401');
    is(scalar(keys %$by), 0, 'satisfy any + deny all, invalid key: the upstream is not asked');
}

# --- the access log ----------------------------------------------------------

my @log = split /\n/, ($t->read_file('sub.log') // '');
my @sa = grep { m{^/sa(allow|deny)/} } @log;
ok(@sa >= 5, 'access log: satisfy any lines written');
is_deeply([grep { /\Q$KEY\E/ } @sa], [], 'access log: no satisfy any line holds the key');
ok(scalar(grep { m{^/saallow/x\|GET /saallow/x\?z=%2f&b HTTP/1.1\|/saallow/x\?z=%2f&b\|z=%2f&b$} } @sa),
   'access log: satisfy any + allow all logged without the key');
is_deeply([grep { /\Q$KEY\E/ && m{^/(ssip|mirp)/} } @log], [], 'access log: no protected main request line holds the key');

$t->done;
