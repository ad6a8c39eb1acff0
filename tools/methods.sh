#!/bin/sh
# methods.sh — the balancing methods side by side on colored-and-gray
# Fashion-MNIST (docs/methods.md): every method, with its default options,
# on the cgmnist net (MMTM fusion, a head per branch) and on its late-fusion
# variant cgmnist_late (a concatenation head over the branches' features,
# the branch heads as auxiliary losses), SEEDS seeds each, then a table per
# net (tools/methods_table.py): test accuracy of the prediction and of each
# branch, u(m0|m1), u(m1|m0), d_util, the mean d_speed over the run and the
# time per epoch, mean ± sd over the seeds.
#
#   tools/methods.sh OUTDIR [EPOCHS] [SEEDS] [JOBS] [-- TRAIN-OPTIONS]
#       defaults: 10 epochs, 3 seeds, 2 jobs, the examples' train sections
#       (SGD, lr 0.01, momentum 0.9, batch 128, the full training set);
#       writes OUTDIR/NET/methods.md and the tables into docs/results.md
#   tools/methods.sh --quick OUTDIR
#       a smoke test: 1 epoch, 1 seed, 512 training and 256 validation and
#       test examples; writes OUTDIR/NET/methods.md only
#
# Every run is `OUTDIR/NET/prog train --seed S --threads 1 --policy P --out
# OUTDIR/NET/METHOD_sS [TRAIN-OPTIONS]`; a finished run (with its
# summary.json) is not redone. Environment:
#   NETS     the examples to train: "cgmnist cgmnist_late" by default
#   METHODS  the methods: by default every policy; RUBi with the colour
#            branch, the one that learns fastest, as its bias branch. The
#            methods that re-balance through MMTM gates (guided, random) are
#            left out on a net without MMTMs, and mmpareto, which needs a
#            fusion head, on a net without one. A method may be written
#            LABEL=POLICY+OPTION+VALUE...: the runs are named LABEL and get
#            the options, after the TRAIN-OPTIONS (so they win over them),
#            e.g. METHODS="agm_a0.1=agm+--agm-alpha+0.1 ogm_ge_lr0.01=ogm_ge+--lr+0.01".
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
NETS=${NETS:-"cgmnist cgmnist_late"}
ALL="vanilla guided random rubi:c modality_dropout ogm_ge gblend agm mmpareto"
MMC=${MMC:-build/mmc}
# One job per line: NET NAME POLICY SEED (the train options go through the
# environment: words without spaces)
export OPTS="$*"
fails=$OUT/failed
mkdir -p "$OUT"
: > "$fails"
for net in $NETS; do
    mkdir -p "$OUT/$net"
    [ -x "$OUT/$net/prog" ] || $MMC build "examples/$net.mmnet" -o "$OUT/$net/prog"
    # gblend sets the loss's weights, which a plain ce(c) + ce(g) keeps only when built for it
    [ -x "$OUT/$net/prog_gblend" ] || { sed 's/^  policy .*/  policy gblend/' "examples/$net.mmnet" > "$OUT/$net/gblend.mmnet" &&
        $MMC build "$OUT/$net/gblend.mmnet" -o "$OUT/$net/prog_gblend"; }
done
for s in $(seq 1 "$SEEDS"); do
    for net in $NETS; do
        mmtm=1
        $MMC info "examples/$net.mmnet" | grep -q '^fusion: none' && mmtm=0
        fuse=0
        $MMC info "examples/$net.mmnet" | grep -q '^  [^ ]*  *fuse ' && fuse=1
        for m in ${METHODS:-$ALL}; do
            label=${m%%=*}; spec=${m#*=}        # LABEL=POLICY+OPTIONS, or POLICY
            policy=${spec%%+*}; extra=${spec#"$policy"}
            [ "$label" = "$m" ] && label=${policy%%:*}
            case "${policy%%:*}" in guided|random) [ "$mmtm" -gt 0 ] || continue ;; esac
            case "${policy%%:*}" in mmpareto) [ "$fuse" -gt 0 ] || continue ;; esac
            echo "$net $label $policy $s ${extra:-+}"
        done
    done
done | xargs -P "$JOBS" -L 1 sh -c '
    net=$0; name=$1; policy=$2; seed=$3; extra=$(echo "$4" | tr + " ")
    run='"$OUT"'/$net/${name}_s$seed
    [ -f "$run/summary.json" ] && exit 0
    prog='"$OUT"'/$net/prog; [ -x ${prog}_$policy ] && prog=${prog}_$policy
    $prog train --epochs '"$EPOCHS"' --seed $seed --threads 1 --policy $policy --out $run --quiet $OPTS $extra \
        > $run.log 2>&1 && echo "done: $run" || { echo "FAILED: $run (see $run.log)"; echo $run >> '"$fails"'; }
'
# A run that stopped (a diverged one: a non-finite loss) is left out of the
# means and named under its net's table; the tables are written all the same.
for net in $NETS; do
    if [ $QUICK = 1 ]; then
        python3 tools/methods_table.py "$OUT/$net"
    else
        python3 tools/methods_table.py "$OUT/$net" docs/results.md "$net"
    fi
done
[ -s "$fails" ] && { echo "methods.sh: $(wc -l < "$fails") runs failed" >&2; exit 1; }
exit 0
