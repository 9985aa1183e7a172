#!/usr/bin/perl
# key_auth_body_field at nginx's seams: the form body is read once and,
# with key_auth_hide_credentials on, stripped once, whatever moved the
# request (rewrite ... last from another location, rewrite ... break,
# try_files into a named location, error_page = @named after the upstream
# answered, error_page 401 into a location without key_auth), under
# satisfy any (allow lets the request in before key_auth runs: the field is
# removed all the same) and satisfy any with deny all, over HTTP/1.0,
# HTTP/1.1, HEAD and HTTP/2. Every upstream request gets the body without
# the field and a Content-Length that matches it.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    key_auth_consumers {
        jack key=SECRET-jack credential=cred-jack;
    }
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        http2 on;
        key_auth_hide_credentials on;
        key_auth_body_field apikey;
        proxy_set_header X-Seen-Length $content_length;

        location /old/ {
            rewrite ^/old/(.*)$ /p/$1 last;
        }
        location /p/ {
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /rb/ {
            key_auth on;
            rewrite ^/rb/(.*)$ /rbx/$1 break;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /tf/ {
            key_auth on;
            try_files /nope @named;
        }
        location /ep/ {
            key_auth on;
            proxy_intercept_errors on;
            error_page 404 = @named;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location @named {
            key_auth on;
            # another field name: a second strip would remove "token" too
            key_auth_body_field token;
            proxy_set_header X-Echo-Ctl-Status "";
            proxy_set_header X-Seen-Length $content_length;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /refused/ {
            key_auth on;
            error_page 401 /open/;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /open/ {
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /saallow/ {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /sadeny/ {
            satisfy any;
            deny all;
            key_auth on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        # with auth_request_body in the same location: one read body for
        # both, the auth service gets it as the upstream does
        location /ar/ {
            key_auth on;
            auth_request /auth/ar;
            auth_request_body on;
            proxy_pass http://127.0.0.1:%%PORT_8082%%;
        }
        location /auth/ {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
        location /satry/ {
            satisfy any;
            allow 127.0.0.1;
            key_auth on;
            try_files /nope @named;
        }
    }
}
EOF
$t->run_echo_server(8082);
$t->run_auth_service(8081);
$t->run;

my $FORM = 'application/x-www-form-urlencoded';
sub hdr {
    my ($j, $name) = @_;
    return join ',', map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ ($j || {})->{headers} || [] };
}
sub send_as {
    my ($proto, $uri, $body, @h) = @_;
    return http2_request($uri, method => 'POST', body => $body, headers => ["Content-Type: $FORM", @h])
        if $proto eq 'h2';
    return http_post($uri, $body, content_type => $FORM, headers => \@h,
                     $proto eq 'HEAD' ? (method => 'HEAD') : (), version => $proto eq '1.0' ? '1.0' : '1.1');
}

my $in = 'a=1&apikey=SECRET-jack&token=t&b=%20+2';
my $out = 'a=1&token=t&b=%20+2';
my @CASES = (
    # uri, what, status, upstream requests, upstream uri of the last one, consumer
    ['/old/x', 'rewrite ... last from another location', 200, 1, '/p/x', 'jack'],
    ['/rb/x', 'rewrite ... break', 200, 1, '/rbx/x', 'jack'],
    ['/tf/x', 'try_files -> @named', 200, 1, '/tf/x', 'jack'],
    ['/ep/x', 'error_page 404 = @named after the upstream', 200, 2, '/ep/x', 'jack'],
    ['/saallow/x', 'satisfy any, allow lets it in before key_auth', 200, 1, '/saallow/x', ''],
    ['/sadeny/x', 'satisfy any, deny all: key_auth decides', 200, 1, '/sadeny/x', 'jack'],
    # allow let it in, and the field was removed before try_files: @named
    # (satisfy all, its field "token" holds no key) refuses, as it would a
    # hidden header or argument
    ['/satry/x', 'satisfy any, allow, then try_files -> @named', 401, 0, undef, ''],
);
for my $case (@CASES) {
    my ($uri, $what, $status, $n, $upstream_uri, $consumer) = @$case;
    for my $proto ('1.0', '1.1', 'HEAD', 'h2') {
        my $name = "$what ($proto)";
        $t->clear_requests('echo');
        my $r = send_as($proto, $uri, $in, 'X-Echo-Ctl-Status: 404');
        $status = 404 if $uri eq '/rb/x' || $uri eq '/old/x' || $uri =~ /^\/sa(?:allow|deny)/;
        is(http_status($r), $status, "$name: status") or diag($r);
        my @seen = $t->requests('echo');
        is(scalar @seen, $n, "$name: $n upstream request(s)");
        for my $j (@seen) {
            is($j->{body}, $out, "$name: the upstream's body without the field, stripped once");
            is(hdr($j, 'Content-Length'), length $out, "$name: Content-Length matches");
            is(hdr($j, 'X-Seen-Length'), length $out, "$name: \$content_length matches");
        }
        next unless $n;
        is($seen[-1] && $seen[-1]{uri}, $upstream_uri, "$name: upstream URI");
        # satisfy any + allow: key_auth never ran in /saallow/, nobody is named
        is(hdr($seen[-1], 'X-Consumer-Username'), $consumer, "$name: consumer");
    }
}

# refused (a wrong key in the body), error_page 401 to a location without
# key_auth: the wrong key is removed too
for my $proto ('1.1', 'h2') {
    $t->clear_requests('echo');
    my $r = send_as($proto, '/refused/x', 'apikey=SECRET-wrong&c=3');
    my @seen = $t->requests('echo');
    is(scalar @seen, 1, "refused, error_page 401 /open/ ($proto): served by /open/");
    is($seen[0] && $seen[0]{body}, 'c=3', "refused ($proto): the invalid key is removed");
    is(hdr($seen[0], 'Content-Length'), 3, "refused ($proto): Content-Length matches");
}

# auth_request_body after key_auth: the auth service gets the stripped body
for my $proto ('1.1', 'h2') {
    $t->clear_requests('echo');
    my $r = send_as($proto, '/ar/x', $in);
    is(http_status($r), 200, "auth_request_body too ($proto): allowed");
    my ($auth) = ($t->requests('auth'))[-1];
    is($auth && $auth->{body}, $out, "auth_request_body too ($proto): the auth service gets the body without the field");
    is(AGTest::req_header($auth, 'Content-Length'), length $out, "auth_request_body too ($proto): with its Content-Length");
    my ($j) = $t->requests('echo');
    is($j && $j->{body}, $out, "auth_request_body too ($proto): so does the upstream");
}

# no request ever carried the key upstream
$t->stop;
unlike($t->error_log, qr/SECRET/, 'error log: no key');

$t->done;
