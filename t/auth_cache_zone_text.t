#!/usr/bin/perl
# The decision cache's zone never holds a key's text, nor the user name or
# client id an auth_http answer is filed under (issue 10, point 3): after
# answers are stored, nginx's shared memory (read from /proc/PID/mem of the
# master, which maps every zone) holds none of them, while it does hold an
# auth_request_set value that entries store by design (the scan reads the
# right memory).

use strict;
use warnings;
no warnings 'portable';    # 64-bit addresses in /proc/PID/maps
use Test::More;
use MIME::Base64 qw(encode_base64);
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('the decision cache is ours only');
$t->skip_all('needs /proc/PID/mem (Linux, root or ptrace rights)') unless -r "/proc/$$/mem";
$t->write_file('protected.html', "PROTECTED\n");
$t->write_file_expand('nginx.conf', <<'EOF2');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    auth_cache_zone c 1m;
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;
        add_header X-Cache "[$auth_cache_status]" always;
        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        location /_acl/ { internal; proxy_pass http://127.0.0.1:%%PORT_8081%%/acl/; }
        location = /ar {
            auth_request /auth/ar;
            auth_request_set $user $upstream_http_x_user;
            auth_request_cache c;
            auth_request_cache_key $http_authorization;
            auth_request_cache_valid 1m;
            add_header X-User $user always;
            add_header X-Cache "[$auth_cache_status]" always;
            alias %%TESTDIR%%/protected.html;
        }
        location /api/ {
            auth_http_acl /_acl/check params=u=%u,c=%c,t=%t;
            auth_http_client_id $http_x_client_id;
            auth_http_cache c;
            auth_http_cache_valid any 1m;
            alias %%TESTDIR%%/;
        }
        location = /_purge { allow 127.0.0.1; deny all; auth_cache_purge c; }
    }
}
EOF2
$t->run_auth_service(8081);
$t->run;

my $KEY = 'Bearer key-text-3f9a1c';
my $USER = 'user-text-8d2e7b';
my $CLIENT = 'client-text-51c0aa';
my $MARKER = 'set-value-c47e19';    # an auth_request_set value: stored on purpose

my $r = http_get('/ar', headers => ["Authorization: $KEY", "X-Ctl-Hdr: X-User: $MARKER"]);
is(http_header($r, 'X-User'), $MARKER, 'auth_request: stored with its auth_request_set value');
is(http_header(http_get('/ar', headers => ["Authorization: $KEY"]), 'X-Cache'), '[HIT]', 'auth_request: a hit');
my @api = ('Authorization: Basic ' . encode_base64("$USER:pw", ''), "X-Client-Id: $CLIENT");
http_get('/api/protected.html', headers => \@api);
is(http_header(http_get('/api/protected.html', headers => \@api), 'X-Cache'), '[HIT]', 'auth_http: a hit');

# Every shared mapping of the master (nginx's zones are MAP_SHARED|MAP_ANON:
# "/dev/zero (deleted)"), concatenated.
sub shared_memory {
    my $pid = $t->{nginx_pid};
    open(my $maps, '<', "/proc/$pid/maps") or return '';
    open(my $mem, '<:raw', "/proc/$pid/mem") or return '';
    my $all = '';
    while (<$maps>) {
        my ($from, $to, $perms, $name) = m{^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$} or next;
        next unless $perms =~ /^rw.s/ && $name =~ m{^/dev/zero|^/SYSV|^$};
        my ($a, $b) = (hex $from, hex $to);
        sysseek($mem, $a, 0) or next;
        my $n = sysread($mem, my $bytes, $b - $a);
        $all .= $bytes if $n;
    }
    return $all;
}

my $shm = shared_memory();
ok(length($shm) >= 1 << 20, sprintf('read %d bytes of shared memory', length $shm));
ok(index($shm, $MARKER) >= 0, 'positive control: the stored auth_request_set value is there');
for my $text ([$KEY, 'the auth_request key'], ['key-text-3f9a1c', 'the token alone'],
              [encode_base64("$USER:pw", ''), 'the auth_http Authorization value'],
              [$USER, 'the user name'], [$CLIENT, 'the client id']) {
    is(index($shm, $text->[0]), -1, "the zone does not hold $text->[1]");
}

# and the purge by those values, whose text the zone never saw, finds them
like(http_get('/_purge', method => 'DELETE', headers => ["Auth-Cache-Username: $USER"]),
     qr/purged 1\n$/, 'purge by the user name finds its entry');
like(http_get('/_purge', method => 'DELETE', headers => ["Auth-Cache-Key: $KEY"]),
     qr/purged 1\n$/, 'purge by the key finds its entry');
is(index(shared_memory(), $USER), -1, 'the purge did not write the user name either');

$t->done;
