#!/usr/bin/env bash
# Fails when a module of the crate imports one that imports it back.
#
# Edges come from the source text: every `crate::a::b…` path (in `use` trees, `{…}` groups
# included, and inline paths) and every `super::…` path of `src/**/*.rs`, comments and string
# literals left out. A path counts as an edge from the file's module to the module it names,
# cut to the module granularity asked for:
#
#   scripts/check-import-cycles.sh              top-level modules (`src/<module>`)
#   scripts/check-import-cycles.sh --depth 2    also submodules (`src/<module>/<sub>`); CI runs both
#
# At depth 2 and more a name reached through a parent's re-export (`crate::store::Fence`) is
# attributed to the parent, and a parent's edges to its own children (its `mod` and `pub use`
# lines) are not counted: a child importing its parent is the normal direction, and counting the
# re-exports too would make every folder a cycle.
#
# Each cycle is printed as a loop of modules, with the first line of each edge that makes it.
set -euo pipefail
cd "$(dirname "$0")/.."

depth=1
case "${1:-}" in
    "") ;;
    --depth) depth="${2:?--depth needs a number}" ;;
    *) echo "usage: $0 [--depth N]" >&2; exit 2 ;;
esac
[[ "$depth" =~ ^[1-9][0-9]*$ ]] || { echo "--depth must be a positive number" >&2; exit 2; }

find src -name '*.rs' | sort | perl -e '
use strict;
use warnings;

my $depth = shift @ARGV;
my (%edge, %where);

# A module path (list of segments) exists as src/<path>.rs or src/<path>/mod.rs.
sub is_module {
    my $p = join("/", @_);
    return -f "src/$p.rs" || -f "src/$p/mod.rs";
}

# The module a file defines: src/a/b.rs and src/a/b/mod.rs are both a::b; the crate root is ().
sub module_of {
    my ($file) = @_;
    (my $p = $file) =~ s{^src/}{};
    $p =~ s{\.rs$}{};
    my @segments = split m{/}, $p;
    pop @segments if @segments && $segments[-1] eq "mod";
    @segments = () if @segments == 1 && ($segments[0] eq "lib" || $segments[0] eq "main");
    return @segments;
}

# Cut an absolute path to its longest module prefix of at most $depth segments.
sub node_of {
    my @path = @_;
    my @node;
    for my $segment (@path) {
        last if @node >= $depth;
        last unless is_module(@node, $segment);
        push @node, $segment;
    }
    return join("::", @node);
}

# Every path a `use` tree (or an inline path) starting at $text[pos] names, as segment lists.
sub paths_at {
    my ($text, $pos, @prefix) = @_;
    my @out;
    my @path = @prefix;
    while (1) {
        if (substr($$text, $$pos) =~ /^\s*([A-Za-z_][A-Za-z0-9_]*)/) {
            push @path, $1;
            $$pos += length($&);
            if (substr($$text, $$pos) =~ /^\s*::\s*(?=[A-Za-z_{*])/) {
                $$pos += length($&);
                next;
            }
            push @out, [@path];
            return @out;
        }
        if (substr($$text, $$pos) =~ /^\s*\{/) {
            $$pos += length($&);
            while (1) {
                push @out, paths_at($text, $pos, @path);
                if (substr($$text, $$pos) =~ /^\s*(?:as\s+[A-Za-z_][A-Za-z0-9_]*\s*)?,/) {
                    $$pos += length($&);
                    next if substr($$text, $$pos) !~ /^\s*\}/;
                }
                if (substr($$text, $$pos) =~ /^\s*(?:as\s+[A-Za-z_][A-Za-z0-9_]*\s*)?\}/) {
                    $$pos += length($&);
                }
                return @out;
            }
        }
        push @out, [@path];    # `*`, `self` or the end of the path
        return @out;
    }
}

while (my $file = <STDIN>) {
    chomp $file;
    my @self = module_of($file);
    open my $fh, "<", $file or die "cannot read $file: $!\n";
    my $text = do { local $/; <$fh> };
    close $fh;
    # Line numbers survive the clean-up: removed text keeps its newlines.
    my $blank = sub { (my $s = shift) =~ s/[^\n]//g; $s };
    $text =~ s{/\*.*?\*/}{$blank->($&)}gse;
    $text =~ s{r(#*)".*?"\1}{$blank->($&)}gse;
    $text =~ s{"(?:[^"\\]|\\.)*"}{$blank->($&)}gse;
    $text =~ s{'"'"'(?:[^'"'"'\\\n]|\\.)'"'"'}{ }g;    # char literals, e.g. the quote char
    $text =~ s{//[^\n]*}{}g;
    my $from = node_of(@self);
    next if $from eq "";
    while ($text =~ /\b(crate|super)\s*::/g) {
        my ($anchor, $start) = ($1, $-[0]);
        my $pos = pos($text);
        my @base;
        if ($anchor eq "crate") {
            @base = ();
        } else {
            # `super` of src/a/b.rs is a; of src/a/b/mod.rs is a too (the file is a::b).
            @base = @self;
            pop @base;
            while (substr($text, $pos) =~ /^\s*super\s*::/) {
                $pos += length($&);
                pop @base;
            }
        }
        my $line = 1 + (substr($text, 0, $start) =~ tr/\n//);
        for my $path (paths_at(\$text, \$pos, @base)) {
            my $to = node_of(@$path);
            next if $to eq "" || $to eq $from;
            # A parent reaching into its own children is structure, not an import back.
            next if index("$to\::", "$from\::") == 0;
            $edge{$from}{$to} = 1;
            $where{"$from $to"} //= "$file:$line";
        }
        pos($text) = $pos;
    }
}

# Tarjan: the strongly connected components with more than one module are the cycles.
my ($index, @stack, %on, %idx, %low, @components) = (0);
sub visit {
    my ($v) = @_;
    $idx{$v} = $low{$v} = $index++;
    push @stack, $v;
    $on{$v} = 1;
    for my $w (sort keys %{ $edge{$v} || {} }) {
        if (!exists $idx{$w}) {
            visit($w);
            $low{$v} = $low{$w} if $low{$w} < $low{$v};
        } elsif ($on{$w}) {
            $low{$v} = $idx{$w} if $idx{$w} < $low{$v};
        }
    }
    if ($low{$v} == $idx{$v}) {
        my @component;
        while (1) {
            my $w = pop @stack;
            delete $on{$w};
            push @component, $w;
            last if $w eq $v;
        }
        push @components, [sort @component] if @component > 1;
    }
}
my %nodes = map { $_ => 1 } keys %edge;
$nodes{$_} = 1 for map { keys %$_ } values %edge;
visit($_) for grep { !exists $idx{$_} } sort keys %nodes;

# One shortest loop through the first module of a component, for the message.
sub loop_through {
    my ($start, %in) = @_;
    my %parent;
    my @queue = ($start);
    while (@queue) {
        my $v = shift @queue;
        for my $w (sort keys %{ $edge{$v} || {} }) {
            next unless $in{$w};
            if ($w eq $start) {
                my @loop = ($v);
                unshift @loop, $parent{$loop[0]} while exists $parent{$loop[0]};
                return (@loop, $start);
            }
            next if exists $parent{$w};
            $parent{$w} = $v;
            push @queue, $w;
        }
    }
    return ($start);
}

if (!@components) {
    printf "No import cycles between modules (depth %d, %d modules, %d edges).\n",
        $depth, scalar(keys %nodes), scalar(map { keys %$_ } values %edge);
    exit 0;
}
for my $component (sort { $a->[0] cmp $b->[0] } @components) {
    my %in = map { $_ => 1 } @$component;
    my @loop = loop_through($component->[0], %in);
    print "import cycle: ", join(" -> ", @loop), "\n";
    for my $i (0 .. $#loop - 1) {
        my ($from, $to) = @loop[$i, $i + 1];
        print "    $from -> $to: ", $where{"$from $to"}, "\n";
    }
    next unless @$component > @loop - 1;
    my %shown = map { ("$loop[$_] $loop[$_ + 1]" => 1) } 0 .. $#loop - 1;
    print "  and, among the same modules (", join(", ", @$component), "):\n";
    for my $from (@$component) {
        for my $to (grep { $in{$_} && !$shown{"$from $_"} } sort keys %{ $edge{$from} }) {
            print "    $from -> $to: ", $where{"$from $to"}, "\n";
        }
    }
}
exit 1;
' "$depth"
