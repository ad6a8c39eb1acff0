#!/usr/bin/perl
# launches.pl IN OUT — rewrite CUDA source for the CPU emulation (emu.cpp):
# every launch kernel<<<grid, block, shm, stream>>>(args) becomes
# EMU_LAUNCH(EMU_CFG(grid, block, shm, stream), (kernel), args), which
# runs the kernel as a closure on the emulated stream.
use strict;
use warnings;
my ($in, $out) = @ARGV;
open(my $f, '<', $in) or die "launches.pl: cannot read $in: $!\n";
local $/;
my $s = <$f>;
close $f;
$s =~ s/(\w+(?:<[^<>]*>)?)<<<(.*?)>>>\(/EMU_LAUNCH(EMU_CFG($2), ($1), /g;
open(my $g, '>', $out) or die "launches.pl: cannot write $out: $!\n";
print $g $s;
close $g;
