#!/usr/bin/perl
# The example nginx-conf/ntlm.conf works as documented: a client that sends
# NTLM credentials keeps one upstream connection; anonymous clients never
# get it.

use strict;
use warnings;
use Test::More;
use lib 't/lib', 't/backends';
use AGTest;
use NtlmBackend;

my $t = AGTest->new->skip_unless_module;
my $example = $t->read_file($t->root . '/nginx-conf/ntlm.conf');
$example =~ s/127\.0\.0\.1:8090/127.0.0.1:%%PORT_8090%%/g;
$example =~ s/127\.0\.0\.1:8091/127.0.0.1:%%PORT_8091%%/g;
$t->write_file_expand('nginx.conf', <<"EOF2");
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
$example
}
EOF2
$t->run;
my $port = $t->port(8090);

my $a = NtlmBackend::client($port);
my @conns = map {
    my $r = NtlmBackend::request($a, "/$_", $_ == 1 ? (auth => 'NTLM TlRMTVNTUAABAAAAB4IIog==') : ());
    (($r && $r->{body}) // '') =~ /upstream connection (\d+)/ ? $1 : 'none';
} 1 .. 4;
my %u = map { $_ => 1 } @conns;
is(scalar keys %u, 1, 'example: bound client keeps one upstream connection') or diag("@conns");
my $b = NtlmBackend::client($port);
for (1 .. 3) {
    my $r = NtlmBackend::request($b, '/');
    my ($c) = ($r->{body} // '') =~ /upstream connection (\d+)/;
    isnt($c, $conns[0], "example: anonymous request $_ never uses the bound connection");
}
$t->done;
