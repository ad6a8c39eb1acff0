#!/bin/sh
# methods.sh — the balancing methods side by side on colored-and-gray
# Fashion-MNIST (docs/methods.md): vanilla, guided, random, RUBi, modality
# dropout and OGM-GE (their default options) on the cgmnist net, SEEDS seeds each, then one table
# (tools/methods_table.py): test accuracy of the prediction and of each
# branch, u(m0|m1), u(m1|m0), d_util, the mean d_speed over the run and the
# time per epoch, mean ± sd over the seeds.
#
#   tools/methods.sh OUTDIR [EPOCHS] [SEEDS] [JOBS] [-- TRAIN-OPTIONS]
#       defaults: 10 epochs, 3 seeds, 2 jobs, the examples' train sections
#       (SGD, lr 0.01, momentum 0.9, batch 128, the full training set);
#       writes OUTDIR/methods.md and the table into docs/results.md
#   tools/methods.sh --quick OUTDIR
#       a smoke test: 1 epoch, 1 seed, 512 training and 256 validation and
#       test examples; writes OUTDIR/methods.md only
#
# Every run is `PROG train --seed S --threads 1 --policy P --out
# OUTDIR/METHOD_sS [TRAIN-OPTIONS]`; a finished run (with its summary.json)
# is not redone. METHODS (environment) replaces the list of methods:
# "vanilla guided random rubi:c modality_dropout ogm_ge" by default (RUBi with the
# colour branch, the one that learns fastest, as its bias branch).
set -eu
cd "$(dirname "$0")/.."
QUICK=0
if [ "${1:-}" = "--quick" ]; then QUICK=1; shift; fi
OUT=${1:?usage: tools/methods.sh [--quick] OUTDIR [EPOCHS] [SEEDS] [JOBS] [-- TRAIN-OPTIONS]}
EPOCHS=${2:-10}; SEEDS=${3:-3}; JOBS=${4:-2}
shift $(( $# < 4 ? $# : 4 ))
[ "${1:-}" = "--" ] && shift
if [ $QUICK = 1 ]; then
    EPOCHS=1; SEEDS=1
    set -- --limit-train 512 --val 256 --limit-test 256 "$@"
fi
METHODS=${METHODS:-"vanilla guided random rubi:c modality_dropout ogm_ge"}
MMC=${MMC:-build/mmc}
mkdir -p "$OUT"
[ -x "$OUT/cgmnist" ] || $MMC build examples/cgmnist.mmnet -o "$OUT/cgmnist"
# One job per line: NAME POLICY SEED (the train options go through the
# environment: words without spaces)
export OPTS="$*"
fails=$OUT/failed
: > "$fails"
for s in $(seq 1 "$SEEDS"); do
    for m in $METHODS; do echo "${m%%:*} $m $s"; done
done | xargs -P "$JOBS" -L 1 sh -c '
    name=$0; policy=$1; seed=$2
    run='"$OUT"'/${name}_s$seed
    [ -f "$run/summary.json" ] && exit 0
    '"$OUT"'/cgmnist train --epochs '"$EPOCHS"' --seed $seed --threads 1 --policy $policy --out $run --quiet $OPTS \
        > $run.log 2>&1 && echo "done: $run" || { echo "FAILED: $run (see $run.log)"; echo $run >> '"$fails"'; }
'
[ -s "$fails" ] && { echo "methods.sh: $(wc -l < "$fails") runs failed" >&2; exit 1; }
if [ $QUICK = 1 ]; then
    python3 tools/methods_table.py "$OUT"
else
    python3 tools/methods_table.py "$OUT" docs/results.md
fi
