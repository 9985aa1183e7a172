package SeamsMatrix;

# The seam matrix (issue 9 §3), shared by t/seams_matrix_*.t: the locations
# through which nginx moves a request (rewrite last/break, error_page = @named
# / =URI / URI, try_files, X-Accel-Redirect, chains of named locations,
# satisfy any neighbours, SSI and mirror subrequests), generated around one
# mechanism's directives, and a client that sends one request in one of four
# protocols (HTTP/1.0, HTTP/1.1, HEAD, HTTP/2).
#
# Every location that proxies to the echo backend names itself in the
# request header X-Hit: "P-..." for a protected location (one with the
# mechanism), "U-..." for an unprotected one. "The protected upstream was
# hit" means: the echo backend recorded a request with X-Hit P-*.

use strict;
use warnings;
use Time::HiRes qw(sleep);
use AGTest;

our @PROTOCOLS = ('1.0', '1.1', 'HEAD', 'h2');

# locations(M => 'mechanism directives', echo => 'http://127.0.0.1:PORT',
#           dir => testdir, extra => 'lines for every proxying location')
sub locations {
    my (%o) = @_;
    my ($M, $E, $dir) = @o{qw(M echo dir)};
    my $x = $o{extra} // '';
    my $px = sub { my ($hit) = @_; "proxy_set_header X-Hit $hit; $x proxy_pass $E;" };
    my $codes = '401 403 500 502 503 504';
    return <<"EOF";
        # targets
        location /p/        { $M ${\ $px->('P-p') } }
        location \@P        { $M ${\ $px->('P-named') } }
        location /open/     { ${\ $px->('U-open') } }
        location \@U        { ${\ $px->('U-named') } }
        location /sadeny/   { satisfy any; deny all;  $M ${\ $px->('P-sadeny') } }
        location /saallow/  { satisfy any; allow all; $M ${\ $px->('P-saallow') } }
        # rewrite ... last into / out of a protected location, rewrite ... break
        location /rwin/     { rewrite ^/rwin/(.*)\$ /p/\$1 last; }
        location /rwinsa/   { rewrite ^/rwinsa/(.*)\$ /sadeny/\$1 last; }
        location /rwoutp/   { $M rewrite ^/rwoutp/(.*)\$ /p/\$1 last; }
        location /rwoutu/   { $M rewrite ^/rwoutu/(.*)\$ /open/\$1 last; }
        location /rwb/      { $M rewrite ^/rwb/(.*)\$ /rewritten/\$1 break; ${\ $px->('P-rwb') } }
        # error_page from an unprotected location (a static 404) into a protected one
        location /ep404n/   { root $dir/empty; error_page 404 = \@P; }
        location /ep404eq/  { root $dir/empty; error_page 404 = /p/ep; }
        location /ep404u/   { root $dir/empty; error_page 404 /p/ep; }
        # error_page from a protected location that refused
        location /eprn/     { $M error_page $codes = \@P; ${\ $px->('P-eprn') } }
        location /epreq/    { $M error_page $codes = /p/epr; ${\ $px->('P-epreq') } }
        location /epru/     { $M error_page $codes /p/epr; ${\ $px->('P-epru') } }
        location /epr2n/    { $M error_page $codes = \@U; ${\ $px->('P-epr2n') } }
        location /epr2u/    { $M error_page $codes /open/epr; ${\ $px->('P-epr2u') } }
        location /fb/       { $M error_page 500 502 503 504 = \@fallback; ${\ $px->('P-fb') } }
        location \@fallback { $M ${\ $px->('P-fallback') } }
        # try_files
        location /tf/       { try_files /nope \@P; }
        location /tfp/      { $M try_files /nope \@P; }
        # X-Accel-Redirect from an (unprotected) upstream
        location /xa/       { proxy_set_header X-Echo-Ctl-Hdr "X-Accel-Redirect: /p/xa"; ${\ $px->('U-xa') } }
        location /xan/      { proxy_set_header X-Echo-Ctl-Hdr "X-Accel-Redirect: \@P"; ${\ $px->('U-xan') } }
        # chains of two named locations
        location /ch/       { try_files /nope \@c1; }
        location \@c1       { root $dir/empty; error_page 404 = \@P; }
        location /chp/      { try_files /nope \@c1p; }
        location \@c1p      { $M error_page $codes = \@c2p; ${\ $px->('P-c1p') } }
        location \@c2p      { $M ${\ $px->('P-c2p') } }
        # subrequests: SSI (page unprotected / protected), mirror
        location /ssiu/     { ssi on; alias $dir/ssi/; }
        location /ssip/     { $M ssi on; alias $dir/ssi/; }
        location /mir/      { $M mirror /mt/m; ${\ $px->('P-mir') } }
        location /miru/     { mirror /mt/m; ${\ $px->('U-miru') } }
        location /mt/       { internal; $M ${\ $px->('P-mt') } }
EOF
}

sub write_files {
    my ($t) = @_;
    $t->write_file('empty/.keep', '');
    $t->write_file('ssi/page.html',
        qq{PAGE-BEGIN\n<!--# include virtual="/p/ssi" -->\nPAGE-END\n});
}

# The cells: [name, uri, refused, allowed_hits]
#   refused: what a client the mechanism refuses gets
#     'refuse'   refused (not 2xx), protected upstream never hit
#     'open'     moved, before any check, to an unprotected location that
#                serves it (operator's choice); protected upstream not hit
#     'allowall' satisfy any + allow all: served without the mechanism
#     'sub'      a subrequest into a protected location: nginx skips the
#                access phase, the protected upstream IS hit (documented)
#   allowed_hits: the P-* hits an allowed request makes (HEAD: SSI includes
#     are not fetched, see hits_for)
our @CELLS = (
    ['direct',                  '/p/d',          'refuse',   ['P-p']],
    ['rewrite last into',       '/rwin/x',       'refuse',   ['P-p']],
    ['rewrite last out into P', '/rwoutp/x',     'refuse',   ['P-p']],
    ['rewrite last out into U', '/rwoutu/x',     'open',     []],
    ['rewrite break',           '/rwb/x',        'refuse',   ['P-rwb']],
    ['error_page 404 = @P',     '/ep404n/x',     'refuse',   ['P-named']],
    ['error_page 404 = /p/',    '/ep404eq/x',    'refuse',   ['P-p']],
    ['error_page 404 /p/',      '/ep404u/x',     'refuse',   ['P-p']],
    ['refused, error_page = @P',  '/eprn/x',     'refuse',   ['P-eprn']],
    ['refused, error_page = /p/', '/epreq/x',    'refuse',   ['P-epreq']],
    ['refused, error_page /p/',   '/epru/x',     'refuse',   ['P-epru']],
    ['refused, error_page = @U',  '/epr2n/x',    'open',     ['P-epr2n']],
    ['refused, error_page /open/', '/epr2u/x',   'open',     ['P-epr2u']],
    ['error_page 5xx = @fallback', '/fb/x',      'refuse',   ['P-fb']],
    ['try_files @P',            '/tf/x',         'refuse',   ['P-named']],
    ['protected try_files @P',  '/tfp/x',        'refuse',   ['P-named']],
    ['X-Accel-Redirect /p/',    '/xa/x',         'refuse',   ['P-p']],
    ['X-Accel-Redirect @P',     '/xan/x',        'refuse',   ['P-named']],
    ['chain @c1 -> @P',         '/ch/x',         'refuse',   ['P-named']],
    ['chain @c1p -> @c2p',      '/chp/x',        'refuse',   ['P-c1p']],
    ['satisfy any, deny all',   '/sadeny/x',     'refuse',   ['P-sadeny']],
    ['rewrite into satisfy any', '/rwinsa/x',    'refuse',   ['P-sadeny']],
    ['satisfy any, allow all',  '/saallow/x',    'allowall', ['P-saallow']],
    ['SSI, unprotected page',   '/ssiu/page.html', 'sub',    ['P-p']],
    ['SSI, protected page',     '/ssip/page.html', 'refuse', ['P-p']],
    ['mirror, protected',       '/mir/x',        'refuse',   ['P-mir', 'P-mt']],
    ['mirror, unprotected',     '/miru/x',       'sub',      ['P-mt']],
);

sub cell { my ($name) = @_; my ($c) = grep { $_->[0] eq $name } @CELLS; return $c }

# P-* hits expected for an allowed request of this cell in this protocol
sub hits_for {
    my ($cell, $proto) = @_;
    return [] if $proto eq 'HEAD' && $cell->[1] =~ /ssi/;   # HEAD: no includes
    return [sort @{ $cell->[3] }];
}

# req($proto, $uri, headers => [...], port => N) -> parsed response
sub req {
    my ($proto, $uri, %o) = @_;
    my $h = $o{headers} || [];
    my $raw;
    if ($proto eq 'h2') {
        $raw = http2_request($uri, headers => $h, ($o{port} ? (port => $o{port}) : ()));
    } else {
        $raw = http_get($uri, headers => $h,
                        method => $proto eq 'HEAD' ? 'HEAD' : 'GET',
                        version => $proto eq '1.0' ? '1.0' : '1.1',
                        ($o{port} ? (port => $o{port}) : ()));
    }
    return AGTest::parse_response($raw);
}

sub hit_of { scalar AGTest::req_header($_[0], 'X-Hit') // '' }

# echo records of the protected upstream (X-Hit P-*), waiting up to $wait
# seconds for $want of them (mirror subrequests finish in the background)
sub phits {
    my ($t, $want, $wait) = @_;
    my $deadline = Time::HiRes::time() + ($wait // 0);
    while (1) {
        my @p = grep { hit_of($_) =~ /^P-/ } $t->requests('echo');
        return @p if Time::HiRes::time() >= $deadline || ($want && @p >= $want);
        sleep 0.02;
    }
}

sub uhits { my ($t) = @_; return grep { hit_of($_) =~ /^U-/ } $t->requests('echo') }

# run($t, $cell, $proto, want => N, headers => [...], port => N)
# -> (parsed response, [sorted X-Hit values of the protected upstream's
# requests]). Clears the echo and auth logs first. With a mirror, waits
# for `want` protected hits (up to 2 s), or 0.1 s when none is wanted: the
# mirror subrequest starts before the main request is proxied, so one
# that would come has come by then.
sub run {
    my ($t, $cell, $proto, %o) = @_;
    $t->clear_requests($_) for qw(echo auth);
    my $r = req($proto, $cell->[1], %o);
    my $wait = $cell->[1] =~ m{^/mir} ? ($o{want} ? 2 : 0.1) : 0;
    my @p = phits($t, $o{want}, $wait);
    Test::More::diag("$cell->[0] [$proto] @{ $o{headers} || [] }: " . ($r->{status} // '-')
                     . " P=" . join(',', map { hit_of($_) } @p)) if $ENV{SEAMS_DEBUG};
    return ($r, [sort map { hit_of($_) } @p], \@p);
}

1;
