#!/usr/bin/perl
# auth_request tests that only make sense with our module loaded (behaviour
# beyond, or checks specific to, the Rust re-implementation).  Skipped with
# TEST_NGINX_MODULE=none.  Placeholder: to be filled in; skipped for now.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AGTest;

my $t = AGTest->new;
$t->skip_unless_module('needs our module (TEST_NGINX_MODULE=none)');

$t->skip_all('placeholder: module-only auth_request tests not written yet');

# When filling in: write nginx.conf, $t->run, tests, then $t->done.
