#!/usr/bin/perl
# Configuration fuzzing: every nginx-conf/*.conf example, mutated a few
# hundred times with a fixed seed (deterministic), through `nginx -t`.
#
# Every directive of the module (read from the command tables in
# src/*/conf.rs and src/*/module.rs) gets mutated
# values (empty, huge, negative, zero, junk with quotes / semicolons /
# braces / `$` / `%`, binary, 10 000-byte strings, duplicated and unknown
# options), is duplicated, loses arguments, is moved to the wrong context,
# or is inserted where it does not belong. Whatever the mutation, nginx must
# either accept the configuration or refuse it with an
# "[emerg] ... in FILE:LINE" of the configuration file; it must never die
# by a signal, hang (10 s), or print [alert], [crit] or a Rust panic.
#
#   TEST_CONFIG_FUZZ_COUNT=N   number of mutations (default 300)
#   TEST_CONFIG_FUZZ_ONLY=N    run only mutation N (as numbered in the test
#                              names), printing its configuration file
#   TEST_CONFIG_FUZZ_SEED=S    another seed than 12345, to explore by hand
#
# A failure prints the mutation (base example, operation, the mutated lines)
# and nginx's output; TEST_CONFIG_FUZZ_ONLY=N reproduces it.

use strict;
use warnings;
use Test::More;
use POSIX qw(_exit WNOHANG);
use lib 't/lib';
use AGTest;

my $t = AGTest->new->skip_unless_module('the configuration fuzz targets our directives');
my $root = $t->root;
my $count = $ENV{TEST_CONFIG_FUZZ_COUNT} // 300;
my $only = $ENV{TEST_CONFIG_FUZZ_ONLY};
my $timeout = 10;
# nginx -t maps shared zones: a mutated key_auth_zone size must not make it
# take real memory from the machine.
my $memory_limit = 4 * 1024 * 1024 * 1024;

###############################################################################
# Known bugs: mutations that fail for a reason reported and not fixed yet.
# Each rule names the bug; its mutations run as TODO tests.
###############################################################################
my @known_bugs = (
    # (none: key_auth_zone sizes above 65536m, which nginx could not map and
    # would refuse with "[alert] mmap() failed" and no FILE:LINE, are now
    # an [emerg] with FILE:LINE)
);

###############################################################################
# The module's directives, from the command tables.
###############################################################################
my @directives;
for my $file (sort glob("$root/src/*/conf.rs"), glob("$root/src/*/module.rs")) {
    my $text = $t->read_file($file);
    while ($text =~ /^(.*)ngx_string!\("([a-z_]+)"\)/mg) {
        my ($before, $name) = ($1, $2);
        next if $before =~ /declare_readonly|variables::/;   # variable names
        push @directives, $name;
    }
}
my %seen;
@directives = grep { !$seen{$_}++ } @directives;
my %is_directive = map { $_ => 1 } @directives;
cmp_ok(scalar @directives, '>=', 17, 'directives found in src/*/conf.rs') or diag("@directives");
ok($is_directive{$_}, "$_ is among them") for qw(auth_cache_zone auth_cache_purge auth_request_cache);

###############################################################################
# The examples, as complete configurations.
###############################################################################
sub ports { my ($text) = @_; $text =~ s/127\.0\.0\.1:(\d+)/127.0.0.1:%%PORT_$1%%/g; $text }

my @bases;
my $conf_dir = "$root/nginx-conf";
for my $file (sort glob("$conf_dir/*.conf")) {
    (my $name = $file) =~ s{.*/}{};
    my $text = $t->read_file($file);
    if ($text =~ /^\s*include\s+modules\.conf;/m) {
        # demo.conf: the whole demo in one file, includes inlined.
        $text =~ s/^\s*include\s+modules\.conf;.*$/%%TEST_GLOBALS%%\n#MAIN/m;
        $text =~ s/^(\s*http\s*\{.*)$/$1\n    %%TEST_GLOBALS_HTTP%%/m;
        $text =~ s{^\s*include\s+([\w.]+\.conf);.*$}{$t->read_file("$conf_dir/$1")}mge;
    } else {
        $text = "%%TEST_GLOBALS%%\n#MAIN\nevents {}\nhttp {\n    %%TEST_GLOBALS_HTTP%%\n#HTTP\n$text}\n";
    }
    push @bases, { name => $name, lines => [split /\n/, ports($text)] };
}
mkdir $t->testdir . '/logs';    # demo.conf's access_log logs/access.log

# Where statements are, and where a statement can be inserted.
for my $b (@bases) {
    my @l = @{$b->{lines}};
    my (@stmts, @consumers, @contexts, $in_consumers);
    for my $i (0 .. $#l) {
        local $_ = $l[$i];
        if ($in_consumers) {
            if (/^\s*\}/) { $in_consumers = 0; next }
            push @consumers, $i if /^\s*[^\s#;{}]+.*;\s*(#.*)?$/;
            next;
        }
        if (/^\s*key_auth_consumers\s*\{/) {
            $in_consumers = 1;
            push @contexts, ['key_auth_consumers', $i];
            next;
        }
        push @stmts, $i if /^\s*([a-z_]+)\b[^{}]*;\s*(#.*)?$/ && $is_directive{$1};
        push @contexts, ['main', $i] if /^#MAIN$/;
        push @contexts, ['http', $i] if /^(#HTTP$|\s*http\s*\{)/;
        push @contexts, [$1, $i] if /^\s*(server|location|upstream|if|map|events)\b[^;]*\{\s*(#.*)?$/;
    }
    die "no module directive in $b->{name}" unless @stmts || @consumers;
    @$b{qw(stmts consumers contexts)} = (\@stmts, \@consumers, \@contexts);
}

###############################################################################
# Values.
###############################################################################
my @huge = qw(99999999999999999999 18446744073709551616 9223372036854775807 4294967296 1000000000000000);
my @numbers = ('0', '-1', '-0', '+5', '1.5', '0x10', '1e3', '00000000001', @huge);
my @junk = (
    '"', "'", ';', '{', '}', '$', '%', '%%', '%x', '%u%P%c', '$undefined_variable_x', '${', '${}',
    'a;b', 'a{b}', '"a;b"', "'a b'", '\\', 'off on', 'on off', '=', 'a=', '=b', ',', ',,', 'key=',
    'params=', 'params="', 'method=', 'method=delete', 'times=', 'interval=0', 'backoff=NaN', 'limit=0/0s',
    'limit=1/1s1s', 'limit_status=200', 'sha256:xyz', '@named', '/', '/?', '/a?b=c',
);
my %near = (
    auth_request => ['off', '@named', '/a /b', 'relative', '/_auth?x=1', '""'],
    auth_request_set => ['$v', 'v $x', '$v $undefined_variable_x', '$v "${"', '$uri $x', '$v'],
    auth_request_pass_status => ['200', '304', '401', '302 302', '600', '3O2', '302 abc', '""'],
    auth_request_allow_status => ['302', '199', '200 200', '2OO', '""'],
    auth_request_client_header => ['Content-Length', 'a b', 'x:y', '""', 'Set-Cookie Set-Cookie', "\x01"],
    auth_request_upstream_header => ['Host', 'Transfer_Encoding', 'a b', '""', 'X-User X-Groups'],
    auth_request_body => ['yes', 'on max=0', 'on max=-1', 'on max=1k max=2k', 'off max=1k', 'on size=1k', 'on max='],
    auth_http_auth => ['off', 'off x', '/auth method=get', '/auth params=p=%P,q=%z', '@auth', 'auth'],
    auth_http_header => ['X-A %x', 'Host x', '"X Y" v', 'X-A 10%', 'X-A', 'X-A %c%u$remote_addr'],
    auth_http_realm => ['""', '"a\\"b"', 'a b', "caf\xc3\xa9", "\x01"],
    auth_http_superuser => ['/su answer=json', '/su answer=xml', '/su answer=json answer=text', 'off', 'off x', '/su method=get method=post', '/su params=a=%z', '@su', 'su'],
    auth_http_acl => ['/acl params="a=1,,b=2"', '/acl params=%u', '/acl params==x', '/acl method=put params=',
        '/acl params="a=%"', '/acl params=a=$', '/acl params="a=${x"', 'off'],
    auth_http_retry => ['times=11', 'times=-1', 'interval=2h', 'backoff=0.5', 'backoff=inf', 'times=1 times=2',
        'tries=3', 'interval=500ms backoff=10 times=10', ''],
    auth_http_client_id => ['$undefined_variable_x', '${', '$', 'a b'],
    auth_http_mountpoint => ['$', '${http_x', 'm/', '""'],
    auth_http_nomatch => ['allow deny', 'maybe', 'ALLOW', '""'],
    key_auth_realm => ['""', '"a\\"b"', 'x y', "\x01", 'key'],
    key_auth_preflight => ['maybe', 'pass check', 'PASS', '""'],
    key_auth_allow => ['off', 'off x', 'group:', 'nobody', 'group:nobody', 'jack group:'],
    key_auth_deny => ['off', 'off x', 'group:', 'nobody', 'group:nobody', '""'],
    key_auth => ['maybe', 'on off', 'ON', '1'],
    key_auth_header => ['a b', '""', 'x:y', 'apikey', "\x01"],
    key_auth_query => ['a=b', '""', 'apikey apikey', 'k&'],
    key_auth_hide_credentials => ['yes', '""', 'on on'],
    key_auth_body_field => ['""', 'a=b', 'apikey max=0', 'apikey max=-1', 'apikey max=1k max=2k', 'off max=1k',
        'apikey size=1k', 'apikey max=', 'off', 'apikey max=99999999999999999999'],
    key_auth_anonymous_consumer => ['nobody', 'off', '""', 'jack', 'a b'],
    key_auth_zone => ['z', 'z 0', 'z 1k', '"" 1m', 'key_auth 1m', 'z 10m extra', 'z -1m', 'z 1000000000000000',
        'z 9223372036854775807'],
    ntlm => ['0', '1000001', '1000000', 'abc', '10k', '-5', '1 2'],
    ntlm_max_requests => ['0', '4294967296', '4294967295', '-1', '1k', '1 2'],
    ntlm_max_time => ['0', '-1s', '1h30', 'soon', '0ms', '9999999999999999999d'],
    ntlm_timeout => ['0', '-1s', '1y', '9999999999999999999d', '1h30', 'soon', '0ms'],
);
my @attrs = qw(key credential expires group custom_id limit limit_status);

sub rnd { $_[int rand @_] }

sub binary {
    my $len = 1 + int rand 40;
    return join '', map { chr(1 + int rand 255) } 1 .. $len;
}

# A value as nginx reads it: raw (the tokenizer sees its bytes), or quoted.
sub render {
    my ($v) = @_;
    return $v if rand() < 0.5;
    (my $q = $v) =~ s/(["\\])/\\$1/g;
    return qq{"$q"};
}

sub junk_value {
    my ($directive) = @_;
    my $r = rand;
    return rnd(@{$near{$directive}}) if $directive && $near{$directive} && $r < 0.35;
    return '""' if $r < 0.42;
    return rnd(@numbers) if $r < 0.55;
    return render(rnd(@junk)) if $r < 0.75;
    return render(binary()) if $r < 0.85;
    return render(rnd('a', '%u', '/', '$x', 'k=v ') x 10_000) if $r < 0.92;
    return join ' ', map { render(rnd(@junk, @numbers)) } 1 .. 2 + int rand 3;
}

sub directive_of { $_[0] =~ /^\s*([a-z_]+)/ ? $1 : undef }

sub args_of {
    my ($line) = @_;
    $line =~ s/\s*#.*$//;
    $line =~ /^\s*[a-z_]+\s*(.*?)\s*;\s*$/ or return ();
    return split ' ', $1;
}

sub indent { $_[0] =~ /^(\s*)/; $1 }

###############################################################################
# Mutations: each is (base, description, new lines).
###############################################################################
srand($ENV{TEST_CONFIG_FUZZ_SEED} // 12345);

sub mutate {
    my ($b) = @_;
    my @l = @{$b->{lines}};
    my @ops = qw(value value value value drop dup move insert insert option);
    push @ops, qw(consumer consumer consumer) if @{$b->{consumers}};
    my $op = rnd(@ops);
    $op = 'consumer' unless @{$b->{stmts}} || $op eq 'insert';
    my $i = @{$b->{stmts}} ? rnd(@{$b->{stmts}}) : undef;
    my $d = defined $i ? directive_of($l[$i]) : undef;
    my ($desc, @touched);

    if ($op eq 'value') {
        my $v = junk_value($d);
        $l[$i] = indent($l[$i]) . "$d $v;";
        ($desc, @touched) = ("replace the value of $d", $i);
    } elsif ($op eq 'drop') {
        my @a = args_of($l[$i]);
        my $all = rand() < 0.4 || @a < 2;
        pop @a;
        $l[$i] = indent($l[$i]) . join(' ', $d, $all ? () : @a) . ';';
        ($desc, @touched) = ($all ? "drop every argument of $d" : "drop the last argument of $d", $i);
    } elsif ($op eq 'dup') {
        splice @l, $i + 1, 0, $l[$i];
        ($desc, @touched) = ("duplicate $d", $i, $i + 1);
    } elsif ($op eq 'option') {
        my @a = args_of($l[$i]);
        my $extra = @a && rand() < 0.5 ? $a[-1] : rnd('foo=bar', 'x=1', 'method=get', 'params=a=1', 'times=1',
            'interval=1s', '=', 'on');
        $l[$i] = indent($l[$i]) . join(' ', $d, @a, $extra) . ';';
        ($desc, @touched) = ("add the option '$extra' to $d", $i);
    } elsif ($op eq 'move' || $op eq 'insert') {
        my $ctx = rnd(@{$b->{contexts}});
        my $line;
        if ($op eq 'move') {
            $line = $l[$i];
            $line =~ s/^\s*//;
            splice @l, $i, 1;
            $desc = "move $d into $ctx->[0] (line " . ($ctx->[1] + 1) . ")";
        } else {
            my $name = rnd(@directives);
            $line = "$name " . junk_value($name) . ';';
            $desc = "insert $name into $ctx->[0] (line " . ($ctx->[1] + 1) . ")";
        }
        my $at = $ctx->[1] + 1;
        $at-- if $op eq 'move' && $i < $at;
        splice @l, $at, 0, "    $line";
        @touched = ($at);
    } else {    # consumer
        my $c = rnd(@{$b->{consumers}});
        my @w = args_of("x $l[$c]");
        my $r = rand;
        if ($r < 0.4 && @w > 1) {
            my $k = 1 + int rand(@w - 1);
            my ($attr) = $w[$k] =~ /^([^=]*)=/;
            $attr //= rnd(@attrs);
            $w[$k] = "$attr=" . junk_value(undef);
            $desc = "consumer line: replace $attr";
        } elsif ($r < 0.55) {
            $w[0] = junk_value(undef);
            $desc = 'consumer line: replace the name';
        } elsif ($r < 0.7 && @w > 1) {
            push @w, $w[1 + int rand(@w - 1)];
            $desc = 'consumer line: duplicate an attribute';
        } elsif ($r < 0.85) {
            push @w, rnd('colour=blue', 'key', '=x', 'include', 'limit=', 'key=' . ('k' x 10_000));
            $desc = 'consumer line: add an unknown or broken attribute';
        } else {
            @w = ($w[0]);
            $desc = 'consumer line: only the name';
        }
        $l[$c] = indent($l[$c]) . join(' ', @w) . ';';
        @touched = ($c);
    }
    return { base => $b->{name}, desc => "$op: $desc", lines => \@l, touched => \@touched };
}

my @mutations = map { mutate($bases[$_ % @bases]) } 0 .. $count - 1;

# A few fixed ones after the random ones, so that the limits and the known
# bugs are tried whatever the seed: (example, directive, new value).
for my $fixed (
    ['key_auth.conf', 'key_auth_zone', 'key_auth 1000000000000000'],    # known bug (see above)
    ['ntlm.conf', 'ntlm', '1000000'],                                    # the largest LRU
    ['key_auth.conf', 'key_auth_header', 'h' x 10_000],
) {
    my ($name, $directive, $value) = @$fixed;
    my ($b) = grep { $_->{name} eq $name } @bases or next;
    my ($i) = grep { directive_of($b->{lines}[$_]) eq $directive } @{$b->{stmts}} or next;
    my @l = @{$b->{lines}};
    $l[$i] = indent($l[$i]) . "$directive $value;";
    push @mutations, { base => $name, desc => "fixed: $directive " . shorten($value, 40), lines => \@l,
        touched => [$i] };
}

###############################################################################
# Running nginx -t with a timeout.
###############################################################################
# ($exit_code, $signal, $output, $path), or undef on timeout.
sub nginx_t_bounded {
    my ($conf, $name) = @_;
    my $result = $t->testdir . "/$name.result";
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        setpgrp(0, 0);
        system('prlimit', "--pid=$$", "--as=$memory_limit") if -x '/usr/bin/prlimit';
        my ($rc, $out, $path) = $t->nginx_t($conf, name => $name);
        my $sig = $? & 127;
        open my $fh, '>', $result or _exit(2);
        print $fh "$rc $sig $path\n$out";
        close $fh;
        _exit(0);
    }
    my $deadline = time + $timeout;
    while (waitpid($pid, WNOHANG) == 0) {
        if (time > $deadline) {
            kill 'KILL', -$pid;
            waitpid($pid, 0);
            return;
        }
        select(undef, undef, undef, 0.02);
    }
    open my $fh, '<', $result or die "no result from the nginx -t child ($?)";
    local $/;
    my $text = <$fh>;
    close $fh;
    unlink $result;
    my ($head, $out) = split /\n/, $text, 2;
    my ($rc, $sig, $path) = split / /, $head, 3;
    return ($rc, $sig, $out // '', $path);
}

sub shorten {
    my ($s, $max) = @_;
    $max //= 300;
    $s =~ s/([^\x20-\x7e\n])/sprintf '\\x%02x', ord $1/ge;
    return length $s > $max ? substr($s, 0, $max) . '... (' . length($s) . ' bytes)' : $s;
}

# '' when the outcome is one of the two allowed ones, else why not.
sub verdict {
    my ($rc, $sig, $out, $path, $conf) = @_;
    my $nlines = () = $conf =~ /\n/g;
    return "timed out after ${timeout}s" unless defined $rc;
    return "nginx died by signal $sig" if $sig;
    return 'a Rust panic' if $out =~ /panick/;
    return "[$1] in the output" if $out =~ /\[(alert|crit)\]/;
    if ($rc == 0) {
        return $out =~ /test is successful/ ? '' : 'exit 0 without "test is successful"';
    }
    return "exit $rc without [emerg]" unless $out =~ /\[emerg\]/;
    # One message per "nginx: [level]"; a value with a newline spans lines.
    for my $message (grep { /^nginx: \[emerg\]/ } split /(?=^nginx: \[)/m, $out) {
        next unless $message =~ /\[emerg\] .* in \Q$path\E:(\d+)/s;
        return '' if $1 >= 1 && $1 <= $nlines + 1;
        return "line $1 is not in the file ($nlines lines)";
    }
    # nginx checks variable names after parsing, without a line, for its own
    # directives too (proxy_set_header X $nosuch; -- checked below).
    return '' if $out =~ /^nginx: \[emerg\] unknown "(\w+)" variable$/m && $conf =~ /\$\{?\Q$1\E\b/;
    return "exit $rc: [emerg] without \"in $path:LINE\"";
}

# What nginx itself says about an unknown variable (see verdict()).
{
    my ($rc, $sig, $out) = nginx_t_bounded(<<'EOF', 'control-variable');
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        location / { proxy_set_header X $undefined_variable_x; proxy_pass http://127.0.0.1:%%PORT_8081%%; }
    }
}
EOF
    like($out, qr/^nginx: \[emerg\] unknown "undefined_variable_x" variable$/m,
        'nginx reports an unknown variable without FILE:LINE for its own directives too');
}

# The examples themselves pass.
for my $b (@bases) {
    my $conf = join "\n", @{$b->{lines}}, '';
    my ($rc, $sig, $out) = nginx_t_bounded($conf, "base-$b->{name}");
    is($rc, 0, "example $b->{name} passes nginx -t") or diag($out);
}

my %outcomes;
for my $n (1 .. @mutations) {
    next if defined $only && $n != $only;
    my $m = $mutations[$n - 1];
    my $conf = join "\n", @{$m->{lines}}, '';
    my ($rc, $sig, $out, $path) = nginx_t_bounded($conf, "fuzz-$n.conf");
    my $why = verdict($rc, $sig, $out, $path, $conf);
    my ($bug) = grep { $_->[1]->(join "\n", map { $m->{lines}[$_] } @{$m->{touched}}) } @known_bugs;
    $outcomes{$why ? ($bug ? 'todo' : 'bad') : $rc ? 'refused' : 'accepted'}++;
    TODO: {
        local $TODO = $bug ? "known bug: $bug->[0]" : undef;
        ok(!$why, "mutation $n: $m->{base}: $m->{desc}") or diag(
            "why: $why\n",
            (map { sprintf "line %d: %s\n", $_ + 1, shorten($m->{lines}[$_]) } @{$m->{touched}}),
            "nginx -t output:\n", shorten($out // '', 2000), "\n",
            "reproduce: TEST_CONFIG_FUZZ_ONLY=$n prove -I t/lib t/config_fuzz.t",
        );
    }
    diag("configuration:\n$conf") if defined $only;
}

note(join ', ', map { "$_: " . ($outcomes{$_} // 0) } qw(accepted refused todo bad));
$t->done;
