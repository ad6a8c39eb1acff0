#!/bin/sh
# bench/data_train.sh — training from PNG files against training from
# in-memory tensors: the ModelNet40 two-branch ResNet-18
# (examples/modelnet40_resnet18.mmnet) on the same images, once through
# `data multiview` (each example decoded from two PNG views on the loader's
# worker threads) and once through `data arrays` (the same decoded values
# as float32 safetensors, memory-mapped from the page cache). Issue 15's
# target: the PNG program reaches >= 95% of the arrays program's samples/s.
#
# One run: makes a multi-view PNG tree (tests/make_data multiview: CLASSES
# classes, the heads' width, OBJECTS training objects per class, 12 views
# of 224x224 RGB), decodes views 0 and 6 of every object into
# ROOT/{train,test}.safetensors (make_data multiview-arrays), builds the
# two programs (the example with `data multiview(...)` or `data
# arrays(...)` and `augment [flip]`, val=0.1 and ImageNet's normalisation
# in both), then trains each for one epoch (batch 8, --limit-test 8),
# the programs taking turns for ROUNDS rounds, and once more from PNGs with
# --workers 0 (decoding in the training thread). Each side's figures are
# the medians over its rounds, the ratio the median of the rounds' ratios;
# bench/README.md explains the columns.
#
#   bench/data_train.sh [BUILD_DIR]        (default: build)
#
# Environment: ROUNDS (default 2), OBJECTS (training objects per class,
# default 2: 80 objects, 72 training examples after the validation split),
# WORKERS (--workers for both programs; default: the programs' own, one per
# core), KEEP=1 (keep the work directory, printed at the end).
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
ROUNDS=${ROUNDS:-2}
OBJECTS=${OBJECTS:-2}
VIEWS=12
SIZE=224
EX=examples/modelnet40_resnet18.mmnet
for t in "$B/mmc" "$B/tests/make_data"; do
    [ -x "$t" ] || { echo "data_train: no $t; build first (cmake --build $B --target mmc make_data)"; exit 1; }
done
W=$(mktemp -d)
if [ "${KEEP:-0}" = 1 ]; then trap 'echo "work directory kept: $W"' EXIT; else trap 'rm -rf "$W"' EXIT; fi
now() { date +%s.%N; }
secs() { python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$2"; }

# The example's inputs (two images) and the width of its heads.
info=$("$B/mmc" info "$EX")
inputs=$(echo "$info" | awk '/^inputs:/ {on = 1; next} /^[a-z]/ {on = 0} on {printf "%s%s", n++ ? "," : "", $1}')
classes=$(echo "$info" | awk '/^heads:/ {on = 1; next} /^[a-z]/ {on = 0} on && /->/ {print $NF; exit}')
[ "$(echo "$inputs" | tr ',' '\n' | wc -l)" = 2 ] || { echo "data_train: $EX has inputs '$inputs'; two were expected"; exit 1; }

echo "mmnet data pipeline benchmark — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
avx=no
grep -qw avx512f /proc/cpuinfo && avx=yes
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores, avx512f: $avx, load average $(cut -d' ' -f1-3 /proc/loadavg)"
wflag=
if [ -n "${WORKERS:-}" ]; then wflag="--workers $WORKERS"; echo "workers: --workers $WORKERS"
else echo "workers: the programs' default, one per core ($(nproc))"; fi

# 1. The data: PNGs, and the same pixels decoded into arrays.
R="$W/mv"
t0=$(now)
"$B/tests/make_data" multiview "$R" "$classes" "$OBJECTS" "$VIEWS" "$SIZE"
t1=$(now)
"$B/tests/make_data" multiview-arrays "$R" 0,6 "$inputs" "$SIZE"
t2=$(now)
npng=$(find "$R" -name '*.png' | wc -l)
echo "data: $classes classes x $OBJECTS objects (train) + $(( (OBJECTS + 1) / 2 )) (test), $VIEWS views of ${SIZE}x${SIZE} RGB:" \
     "$npng PNGs, $(du -sk "$R" --exclude='*.safetensors' | cut -f1) KB, written in $(secs "$t0" "$t1") s;" \
     "views 0 and 6 as float32 arrays: $(du -ck "$R"/*.safetensors | tail -1 | cut -f1) KB, decoded and written in $(secs "$t1" "$t2") s"

# 2. The two programs: the example with each data source.
norm='mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]'
sed -e "s|^  data .*|  data multiview(root=\"$R\", views=[0, 6], val=0.1, $norm)\n  augment [flip]|" "$EX" > "$W/png.mmnet"
sed -e "s|^  data .*|  data arrays(root=\"$R\", val=0.1, $norm)\n  augment [flip]|" "$EX" > "$W/arr.mmnet"
for p in png arr; do
    grep -q '^  augment \[flip\]' "$W/$p.mmnet" || { echo "data_train: no data line replaced in $EX"; exit 1; }
done
t0=$(now)
"$B/mmc" build "$W/png.mmnet" -o "$W/png" & p1=$!
"$B/mmc" build "$W/arr.mmnet" -o "$W/arr" & p2=$!
rc=0
wait $p1 || rc=1
wait $p2 || rc=1
[ $rc = 0 ] || { echo "data_train: mmc build failed"; exit 1; }
echo "mmc build, both programs at once: $(secs "$t0" "$(now)") s"

# 3. Train: the page cache holds every file before the first timed epoch.
cat "$R"/*.safetensors > /dev/null
find "$R" -name '*.png' -exec cat {} + > /dev/null
field() { python3 -c "import json, sys; print(json.loads(open(sys.argv[1]).readlines()[-1])[sys.argv[2]])" "$1/metrics.jsonl" "$2"; }
# train PROG RESULTS RUN [FLAGS]: one epoch of program PROG in $W/RUN;
# appends "samples/s steps-only-samples/s data-wait-s data-cpu-s examples" to
# $W/RESULTS.txt
train() {
    prog=$1 res=$2 run=$3
    shift 3
    "$W/$prog" train --epochs 1 --batch 8 --limit-test 8 --quiet --out "$W/$run" "$@" > /dev/null 2> "$W/$run.err" ||
        { cat "$W/$run.err"; echo "data_train: $prog train failed"; exit 1; }
    n=$(sed -n 's/.*(\([0-9]*\) train,.*/\1/p' "$W/$run.err" | head -1)
    echo "$(field "$W/$run" wall_samples_per_s) $(field "$W/$run" samples_per_s) $(field "$W/$run" data_wait_s)" \
         "$(field "$W/$run" data_cpu_s) $n" >> "$W/$res.txt"
    # shellcheck disable=SC2046
    set -- $(tail -1 "$W/$res.txt")
    printf '  %-14s %7.3f samples/s (steps only %.3f; waited %.2f s for batches; loader CPU %.2f s)\n' "$run" "$1" "$2" "$3" "$4"
}
: > "$W/png.txt"
: > "$W/arr.txt"
: > "$W/png0.txt"
echo "training, one epoch each:"
r=1
while [ $r -le "$ROUNDS" ]; do
    # The sides take turns, each round in the other order: a machine whose
    # speed drifts over minutes (a shared VM) favours neither.
    if [ $((r % 2)) = 1 ]; then order="png arr"; else order="arr png"; fi
    for p in $order; do
        # shellcheck disable=SC2086
        train $p $p "$p-round$r" $wflag
    done
    r=$((r + 1))
done
train png png0 png-workers0 --workers 0
# The same values in the same order: the two programs take the same steps.
if cmp -s "$W/png-round1/steps.csv" "$W/arr-round1/steps.csv"; then same="identical losses, step by step"
else same="DIFFERENT losses (the arrays do not hold the PNGs' values?)"; fi
ntrain=$(sed -n 's/.*(\([0-9]*\) train, \([0-9]*\) val.*/\1 train, \2 val/p' "$W/png-round1.err" | head -1)

# 4. The table: medians over the rounds.
echo
echo "ResNet-18 x2, 1 epoch ($ntrain examples), batch 8, $ROUNDS rounds, medians; PNGs and arrays: $same"
python3 - "$W" <<'EOF'
import statistics as st, sys
w = sys.argv[1]
def rows(name):
    return [list(map(float, l.split())) for l in open(f"{w}/{name}.txt") if l.strip()]
png, arr, png0 = rows("png"), rows("arr"), rows("png0")
med = lambda rs, i: st.median(r[i] for r in rs)
cpu = lambda rs: st.median(1000 * r[3] / r[4] for r in rs)
print(f"{'data':<28} {'samples/s':>10} {'steps only':>11} {'waited s':>9} {'loader CPU ms/example':>22}")
for name, rs in (("PNGs (multiview), workers", png), ("arrays (safetensors, mmap)", arr), ("PNGs, --workers 0", png0)):
    print(f"{name:<28} {med(rs, 0):>10.3f} {med(rs, 1):>11.3f} {med(rs, 2):>9.2f} {cpu(rs):>22.1f}")
# Each round's two runs are minutes apart; the rounds can be far apart in
# the machine's speed. So the ratio is the median of the rounds' ratios.
ratios = [p[0] / a[0] for p, a in zip(png, arr)]
print(f"ratio PNGs / arrays: {st.median(ratios):.3f} (target >= 0.95), the median of the rounds' "
      f"{', '.join(f'{x:.3f}' for x in ratios)}; steps only {st.median(p[1] / a[1] for p, a in zip(png, arr)):.3f}")
print(f"--workers 0 / workers: {png0[-1][0] / png[-1][0]:.3f} (against the last round's PNG run)")
print(f"one example takes {1000 / med(arr, 0):.0f} ms of training from arrays; the loader spends {cpu(png):.1f} ms of CPU "
      f"on it from PNGs, {cpu(arr):.1f} ms from arrays")
EOF
