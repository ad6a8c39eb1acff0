#!/bin/sh
# greedy.sh — the greediness study of ALGORITHMS §8 on colored-and-gray
# Fashion-MNIST: the same sweep of learning rates and seeds for the real
# modalities (colour and gray) and for the identical-modality control (gray
# twice), then one picture of both (docs/results.md shows it).
#
#   tools/greedy.sh OUTDIR [LRS] [SEEDS] [JOBS] [-- TRAIN-OPTIONS]
#       defaults: 6 learning rates in [0.003, 0.1], 2 seeds, 2 jobs,
#       train options --epochs 3 --limit-train 20000 --limit-test 2000
set -eu
cd "$(dirname "$0")/.."
OUT=${1:?usage: tools/greedy.sh OUTDIR [LRS] [SEEDS] [JOBS] [-- TRAIN-OPTIONS]}
LRS=${2:-6}; SEEDS=${3:-2}; JOBS=${4:-2}
shift $(( $# < 4 ? $# : 4 ))
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || set -- --epochs 3 --limit-train 20000 --limit-test 2000
MMC=${MMC:-build/mmc}
mkdir -p "$OUT"
$MMC sweep examples/cgmnist.mmnet --out "$OUT/real" --label "colour+gray" \
    --lr-min 0.003 --lr-max 0.1 --lrs "$LRS" --seeds "$SEEDS" --jobs "$JOBS" -- "$@"
$MMC sweep examples/cgmnist_identical.mmnet --out "$OUT/identical" --label "gray+gray" \
    --lr-min 0.003 --lr-max 0.1 --lrs "$LRS" --seeds "$SEEDS" --jobs "$JOBS" -- "$@"
$MMC sweep --plot "$OUT/real/sweep.csv" "$OUT/identical/sweep.csv" -o "$OUT/greedy.svg"
