#!/bin/sh
# l1.sh — the regularisation study of the paper (§6.3, ALGORITHMS §8) on
# colored-and-gray Fashion-MNIST: train the multi-modal net with an L1
# penalty λ·Σ|θ| at several strengths λ, a few seeds each, at one learning
# rate, then tabulate and draw, per λ, the fraction of each branch's
# parameters below a threshold (the sparsity the penalty causes), d_util,
# d_speed and the test accuracy.
#
#   tools/l1.sh OUTDIR [LAMBDAS] [SEEDS] [JOBS] [-- TRAIN-OPTIONS]
#       defaults: LAMBDAS "0 3e-5 1e-4 3e-4 1e-3 3e-3", 2 seeds, 2 jobs,
#       learning rate LR (environment, default 0.05; the example's momentum
#       0.9: the paper trained ModelNet40 without momentum, but on this data
#       set that learns nothing in this budget), train options
#       --epochs 3 --limit-train 20000 --limit-test 2000 --val 2000
#
# Writes OUTDIR/l1.csv (one row per run), OUTDIR/l1.md (the table, mean ± sd
# per λ) and OUTDIR/l1.svg (the picture). THRESHOLD (environment, default
# 1e-3) is the magnitude below which a parameter counts as zero.
set -eu
cd "$(dirname "$0")/.."
OUT=${1:?usage: tools/l1.sh OUTDIR [LAMBDAS] [SEEDS] [JOBS] [-- TRAIN-OPTIONS]}
LAMBDAS=${2:-"0 3e-5 1e-4 3e-4 1e-3 3e-3"}; LR=${LR:-0.05}; SEEDS=${3:-2}; JOBS=${4:-2}
shift $(( $# < 4 ? $# : 4 ))
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || set -- --epochs 3 --limit-train 20000 --limit-test 2000 --val 2000
MMC=${MMC:-build/mmc}
mkdir -p "$OUT"
[ -x "$OUT/cgmnist" ] || $MMC build examples/cgmnist.mmnet -o "$OUT/cgmnist"
for l in $LAMBDAS; do
    $MMC sweep examples/cgmnist.mmnet --out "$OUT/l1_$l" --label "l1=$l" --program "$OUT/cgmnist" \
        --lr-min "$LR" --lr-max "$LR" --lrs 1 --seeds "$SEEDS" --jobs "$JOBS" -- --l1 "$l" "$@"
done
python3 tools/l1_table.py "$OUT" ${THRESHOLD:-1e-3} $LAMBDAS
