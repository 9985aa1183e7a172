#!/usr/bin/perl
# The seam matrix for key_auth (issue 9 §3): every move of
# t/lib/SeamsMatrix.pm x HTTP/1.0, HTTP/1.1, HEAD, HTTP/2, with
# key_auth on + key_auth_hide_credentials on in every protected location,
# for a client without a key, with an invalid key, with a valid key (in
# the header, or in the query where the move keeps the arguments), and
# always with forged identity headers (X-Consumer-Username: admin, ...;
# in a second server with underscores_in_headers on also spelled with
# underscores). key_auth has no backend: "a backend failure" does not
# apply.
#
# What happens:
#   * a refusal is final: a request without a valid key gets 401 after
#     every move into a key_auth location; the protected upstream is
#     never reached.
#   * the key never reaches a protected upstream nor the access log
#     ($request, $request_uri, $args) once key_auth ran for the request;
#     the upstream sees the module's identity headers once, never the
#     client's.
#   * moves before the access phase leave key_auth behind: "rewrite ...
#     last" out of a key_auth location into an unprotected one serves
#     the request there, key (and forged headers) included, as nginx's
#     allow/deny would let it through.
#   * satisfy any + allow all: allow all decides first, key_auth does not
#     run; the client's identity headers are still removed (the strip runs
#     in the preaccess phase of every key_auth location) and so is the key
#     (header and query: key_auth_hide_credentials acts in the precontent
#     phase when the access handler did not).
#   * subrequests skip the access phase (nginx's rule): an SSI include of a
#     key_auth location from an unprotected page and a mirror from an
#     unprotected location into one reach the protected upstream without
#     a key, but without the client's identity headers (any spelling) and
#     without the key either. From a protected page or location the main
#     request's check guards them: without a key nothing is included or
#     mirrored, with one the subrequest carries the main request's identity
#     and no key.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;
use SeamsMatrix;
use JSON::PP ();

my $t = AGTest->new->skip_unless_module;
SeamsMatrix::write_files($t);

my $loc = SeamsMatrix::locations(
    M => 'key_auth on; key_auth_hide_credentials on;',
    echo => 'http://127.0.0.1:%%PORT_8082%%', dir => '%%TESTDIR%%');

$t->write_file_expand('nginx.conf', <<"EOF");
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    log_format seams '\$server_port|\$request|\$request_uri|\$args';
    key_auth_consumers {
        jack key=jack-key credential=cred-jack custom_id=cid-jack;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        server_name localhost;
        access_log %%TESTDIR%%/seams.log seams;
$loc
    }
    server {
        listen 127.0.0.1:%%PORT_8090%%;
        underscores_in_headers on;
        server_name localhost;
        access_log %%TESTDIR%%/seams.log seams;
$loc
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
my %IDENTITY = ('x-consumer-username' => 'jack', 'x-credential-identifier' => 'cred-jack',
                'x-consumer-custom-id' => 'cid-jack');

sub run { my ($cell, $proto, $want, $uri, @h) = @_;
          my %o = (headers => \@h, want => $want);
          $o{port} = $t->port(8090) if $proto eq 'us';
          my $c = [@$cell]; $c->[1] = $uri;
          return SeamsMatrix::run($t, $c, $proto eq 'us' ? '1.1' : $proto, %o) }

# where the key travels in the records of the protected upstream
sub leaks { my @p = @_; return grep { JSON::PP->new->canonical->encode([$_->{uri}, $_->{headers}]) =~ /\Q$KEY\E/ } @p }
# identity headers (any spelling: "-" or "_") as the protected upstream saw them
sub identity {
    my ($rec, $underscores) = @_;
    my %h;
    for my $hd (@{ $rec->{headers} }) {
        my $n = lc $hd->[0];
        next unless $underscores ? $n =~ tr/_/-/r =~ /^x-(consumer|credential)-/ : $n =~ /^x-(consumer|credential)-/;
        push @{ $h{ $underscores ? $n =~ tr/_/-/r : $n } }, $hd->[1];
    }
    return \%h;
}
my %JACK = map { $_ => [$IDENTITY{$_}] } keys %IDENTITY;

# moves that keep the arguments until key_auth runs (error_page URI and
# X-Accel-Redirect replace them: there the key must be a header)
my %QUERY_OK = map { $_ => 1 } qw(/p/d /rwin/x /rwoutp/x /rwb/x /ep404n/x /eprn/x /epreq/x
    /epru/x /fb/x /tf/x /tfp/x /ch/x /chp/x /sadeny/x /rwinsa/x /ssip/page.html /mir/x /saallow/x);

my ($cells, $n) = (0, 0);
for my $cell (@SeamsMatrix::CELLS) {
    my ($name, $uri, $refused) = @$cell;
    for my $proto (@SeamsMatrix::PROTOCOLS, 'us') {
        $cells++;
        my $tag = "$name [$proto]";
        my $want = SeamsMatrix::hits_for($cell, $proto eq 'us' ? '1.1' : $proto);
        my @forged = ($proto eq 'us' ? (@FORGED, @FORGED_) : @FORGED);

        # a valid key in the header (and forged identity headers)
        my ($r, $p, $recs) = run($cell, $proto, scalar @$want, $uri, "apikey: $KEY", @forged);
        if ($refused ne 'open') {
            is_deeply($p, $want, "$tag key: the protected upstream serves");
            is($r->{status}, $uri =~ m{^/ep404u/} ? 404 : 200, "$tag key: status");
            my $sub_open = $refused eq 'sub';    # key_auth never ran: see below
            for my $rec (@$recs) {
                my $h = SeamsMatrix::hit_of($rec);
                is_deeply([leaks($rec)], [], "$tag key: $h sees no key");
                if ($refused eq 'allowall' || $sub_open) {
                    my $why = $sub_open ? 'the main request was not checked' : 'allow all decided';
                    is_deeply(identity($rec, 1), {}, "$tag key: $h sees no identity headers ($why)");
                    next;
                }
                is_deeply(identity($rec), \%JACK, "$tag key: $h sees the module's identity, once");
                if ($proto eq 'us') {
                    is_deeply(identity($rec, 1), \%JACK, "$tag key: $h sees no underscore-spelled identity");
                }
            }
        }

        # the key in the query
        if ($QUERY_OK{$uri} && $proto ne 'us') {
            my $q = ($uri =~ /\?/ ? '&' : '?') . "z=%2f&apikey=$KEY&b";
            ($r, $p, $recs) = run($cell, $proto, scalar @$want, "$uri$q", @forged);
            is_deeply($p, $want, "$tag ?apikey: the protected upstream serves");
            is_deeply([leaks(@$recs)], [], "$tag ?apikey: the protected upstream sees no key");
            my @q = grep { $_->{uri} =~ /\?/ } @$recs;
            is_deeply([map { $_->{query} } @q], [map { 'z=%2f&b' } @q],
                      "$tag ?apikey: the other arguments are kept");
        }

        # no key / an invalid key
        for my $bad ([], ["apikey: wrong"]) {
            next if @$bad && $proto ne '1.1';
            my $what = @$bad ? 'invalid key' : 'no key';
            ($r, $p, $recs) = run($cell, $proto, $refused =~ /^(sub|allowall)$/ ? scalar @$want : 0,
                                  $uri, @$bad, @forged);
            if ($refused eq 'refuse') {
                is_deeply($p, [], "$tag $what: the protected upstream is never hit");
                is($r->{status}, 401, "$tag $what: 401");
            } elsif ($refused eq 'open') {
                is_deeply($p, [], "$tag $what: the protected upstream is never hit");
                is(scalar(SeamsMatrix::uhits($t)), 1, "$tag $what: the unprotected location serves");
                is($r->{status}, $uri =~ m{^/epr2u/} ? 401 : 200, "$tag $what: status");
            } elsif ($refused eq 'allowall') {
                is_deeply($p, $want, "$tag $what: satisfy any + allow all serves");
                is_deeply(identity($recs->[0]), {}, "$tag $what: no identity reaches the upstream");
                if ($proto eq 'us') {
                    is_deeply(identity($recs->[0], 1), {}, "$tag $what: no underscore-spelled identity either");
                }
            } else {   # sub: subrequests skip the access phase (nginx's rule)
                is_deeply($p, $want, "$tag $what: the subrequest is served without a key");
                for my $rec (@$recs) {
                    is_deeply(identity($rec, 1), {}, "$tag $what: the forged identity does not reach "
                              . SeamsMatrix::hit_of($rec));
                }
            }
        }
    }
}

# the access log: $request, $request_uri, $args never hold the key of a
# request that passed key_auth (the cells where key_auth never ran for the
# main request carried the key in a header only)
my @log = split /\n/, ($t->read_file('seams.log') // '');
ok(@log > 300, 'access log written (' . scalar(@log) . ' lines)');
is_deeply([grep { /\Q$KEY\E/ && !m{/saallow/} } @log], [], 'no access log line holds the key');
is_deeply([grep { /\Q$KEY\E/ && m{/saallow/} } @log], [], 'satisfy any + allow all: no access log line holds the key');
ok(scalar(grep { /z=%2f&b/ } @log) >= 4 * (keys(%QUERY_OK) - 1), 'the query-key requests are logged without the key');
diag("cells: $cells") if $ENV{SEAMS_DEBUG};

$t->done;
