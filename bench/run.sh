#!/bin/sh
# bench/run.sh — the cgmnist program against PyTorch on this machine.
#
# Builds the program (timing mmc build), measures this machine's FP32 peak,
# then, in one session and on the same cores: training and evaluation
# samples/s and peak memory of the generated program and of the same model
# in PyTorch (whatever version pip installed; skipped with a message when
# absent), with all cores and with one thread, batch 128, SGD with momentum.
# Each side: medians of 5 runs of 10 steps after a warm-up, the sides
# taking turns for ROUNDS rounds (default 3). Prints one table with the
# ratios ours/PyTorch; bench/README.md explains the columns.
#
#   bench/run.sh [BUILD_DIR]          (default: build)
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cores=$(nproc)
[ -x "$B/mmc" ] || { echo "bench: no $B/mmc; build first (cmake -S . -B $B && cmake --build $B)"; exit 1; }

t0=$(date +%s%N)
"$B/mmc" build examples/cgmnist.mmnet -o "$W/cgmnist"
t1=$(date +%s%N)
compile=$(python3 -c "print(($t1 - $t0) / 1e9)")
"$B/mmc" build examples/cgmnist.mmnet -o "$W/cgmnist_prof" --profile

${CC:-clang} -O2 -march=native -fopenmp bench/peak.c -o "$W/peak"
peak=$("$W/peak")

have_torch=0
python3 -c "import torch" 2>/dev/null && have_torch=1

echo "mmnet CPU benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $cores cores"
echo "$peak"
printf 'mmc build examples/cgmnist.mmnet: %.1f s\n' "$compile"
[ $have_torch = 1 ] && echo "PyTorch $(python3 -c 'import torch; print(torch.__version__)')" || echo "PyTorch: not installed (pip install torch): its columns are skipped"
echo
printf '%-8s %-9s %14s %14s %12s %14s %14s\n' threads side train/s eval/s "peak MB" "train ratio" "eval ratio"
# The two sides take turns (ROUNDS rounds, default 3) and each reports the
# median over its rounds: this machine's speed drifts over minutes (a shared
# VM), and alternating spreads that drift over both sides alike.
rounds=${ROUNDS:-3}
median() { python3 -c "import sys, statistics as s; print(s.median(float(v) for v in sys.argv[1:]))" "$@"; }
field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d['$1'])"; }
for t in $cores 1; do
    otr=; oev=; omem=; ttr=; tev=; tmem=
    r=0
    while [ $r -lt "$rounds" ]; do
        ours=$("$W/cgmnist" bench --threads "$t" --batch 128)
        otr="$otr $(echo "$ours" | field train_samples_per_s)"; oev="$oev $(echo "$ours" | field eval_samples_per_s)"
        omem="$omem $(echo "$ours" | field peak_rss_mb)"
        if [ $have_torch = 1 ]; then
            th=$(python3 bench/torch_cgmnist.py --threads "$t" --batch 128 2>/dev/null)
            ttr="$ttr $(echo "$th" | field train_samples_per_s)"; tev="$tev $(echo "$th" | field eval_samples_per_s)"
            tmem="$tmem $(echo "$th" | field peak_rss_mb)"
        fi
        r=$((r + 1))
    done
    set -- $(median $otr) $(median $oev) $(median $omem)
    printf '%-8s %-9s %14.1f %14.1f %12.1f\n' "$t" mmnet "$1" "$2" "$3"
    if [ $have_torch = 1 ]; then
        set -- "$1" "$2" $(median $ttr) $(median $tev) $(median $tmem)
        printf '%-8s %-9s %14.1f %14.1f %12.1f %14.2f %14.2f\n' "$t" pytorch "$3" "$4" "$5" "$(python3 -c "print($1 / $3)")" "$(python3 -c "print($2 / $4)")"
    fi
done
echo
echo "per-kernel profile of one training step, $cores threads (time, share, GFLOP/s against the peak above):"
"$W/cgmnist_prof" bench --profile --steps 1 --reps 1 2>&1 | sed -n '/^profile of one .train/,/^total/p'
