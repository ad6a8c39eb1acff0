#!/bin/sh
# table1.sh — the Table 1 experiment of ALGORITHMS §8 on colored-and-gray
# Fashion-MNIST: uni-modal (each modality), vanilla, RUBi, random and guided,
# SEEDS seeds each, EPOCHS epochs, full training set; then the table of test
# accuracies (mean ± std), branch accuracies and d_util (tools/table1.py).
#
#   tools/table1.sh OUTDIR [EPOCHS] [SEEDS] [JOBS]      (defaults: 10 3 2)
#
# Every run is `PROG train --seed S --threads 1 --out OUTDIR/METHOD_sS [--policy P]`
# on the examples' train sections (SGD with momentum 0.9: lr 0.01 at batch 128
# for the multi-modal net; batch 64 and lr 0.05 (gray) or 0.01 (colour) for the
# uni-modal ones); a finished run (with its summary.json) is not redone.
set -eu
cd "$(dirname "$0")/.."
OUT=${1:?usage: tools/table1.sh OUTDIR [EPOCHS] [SEEDS] [JOBS]}
EPOCHS=${2:-10}; SEEDS=${3:-3}; JOBS=${4:-2}
MMC=${MMC:-build/mmc}
mkdir -p "$OUT"
$MMC build examples/cgmnist.mmnet -o "$OUT/cgmnist"
$MMC build examples/cgmnist_unimodal_gray.mmnet -o "$OUT/gray"
$MMC build examples/cgmnist_unimodal_color.mmnet -o "$OUT/color"
# One job per line: PROGRAM NAME POLICY SEED
for s in $(seq 1 "$SEEDS"); do
    echo "gray unimodal_gray vanilla $s"
    echo "color unimodal_color vanilla $s"
    for m in vanilla rubi random guided; do echo "cgmnist $m $m $s"; done
done | xargs -P "$JOBS" -L 1 sh -c '
    prog=$0; name=$1; policy=$2; seed=$3
    [ "$policy" = rubi ] && policy=rubi:c       # the colour branch is the biased one
    run='"$OUT"'/${name}_s$seed
    [ -f "$run/summary.json" ] && exit 0
    '"$OUT"'/$prog train --epochs '"$EPOCHS"' --seed $seed --threads 1 --policy $policy --out $run --quiet > $run.log 2>&1 \
        && echo "done: $run" || echo "FAILED: $run (see $run.log)"
'
python3 tools/table1.py "$OUT"
