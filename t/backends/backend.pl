#!/usr/bin/perl
# Standalone runner for the scripted backend (see AGBackend.pm):
#   perl t/backends/backend.pl --port 8081 [--mode auth|echo] [--name auth]
#                              [--log /tmp/auth.requests]
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin";
use Getopt::Long;
use AGBackend;

my %o = (mode => 'auth');
GetOptions(\%o, 'port=i', 'mode=s', 'name=s', 'log=s', 'ctl_prefix=s')
    or die "usage: $0 --port N [--mode auth|echo] [--name NAME] [--log FILE]\n";
die "--port required\n" unless $o{port};
$o{name} //= $o{mode};
AGBackend::serve(%o);
