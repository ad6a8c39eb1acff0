#!/bin/bash
# threads_test.sh MMC ROOT WORKDIR — a run's numbers do not depend on the
# thread count: the weight gradients' sums over the batch are taken in a
# fixed order (RT_DW_CHUNKS chunks of examples, or fixed row blocks of dW^T
# over fixed groups of examples), so training with 1, 2 or 3 threads gives
# bit-identical parameters, optimizer state and losses. Checked on a net of
# both kinds of weight gradient (tests/grad/dwrows.mmnet, which sums its
# batch of 10 in two groups), on the 3-D convolutions on padded volumes
# (tests/grad/conv3d.mmnet: one output slice per task, dW^T by row blocks
# over groups of examples) and on one with MMTMs and batch norm.
set -u
MMC=$1; ROOT=$2; W=$3
rm -rf "$W"; mkdir -p "$W"
. "$(dirname "$0")/lib.sh"
for net in grad/dwrows grad/conv3d e2e/resume; do
    name=$(basename "$net")
    "$MMC" build "$ROOT/tests/$net.mmnet" -o "$W/$name" || { bad "mmc build $net"; continue; }
    for t in 1 2 3; do
        "$W/$name" train --threads "$t" --epochs 2 --quiet --out "$W/$name.t$t" > /dev/null 2> "$W/$name.t$t.err" \
            || { bad "$name train --threads $t"; cat "$W/$name.t$t.err"; }
    done
    for t in 2 3; do
        python3 "$ROOT/tests/same_run.py" "$W/$name.t1" "$W/$name.t$t" || bad "$name: --threads $t differs from --threads 1"
    done
done
[ $fail = 0 ] && say "threads: all checks passed"
exit $fail
