#!/bin/sh
# bench/run.sh — the cgmnist program against PyTorch on this machine.
#
# Builds the program (timing mmc build), measures this machine's FP32 peak,
# then, in one session and on the same cores: training and evaluation
# samples/s and peak memory of the generated program and of the same model
# in PyTorch (whatever version pip installed; skipped with a message when
# absent), with all cores and with one thread, batch 128, SGD with momentum.
# Medians of 5 runs of 10 steps after a warm-up. Prints one table with the
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
for t in $cores 1; do
    ours=$("$W/cgmnist" bench --threads "$t" --batch 128)
    ot=$(echo "$ours" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['train_samples_per_s'], d['eval_samples_per_s'], d['peak_rss_mb'])")
    set -- $ot
    printf '%-8s %-9s %14s %14s %12s\n' "$t" mmnet "$1" "$2" "$3"
    if [ $have_torch = 1 ]; then
        th=$(python3 bench/torch_cgmnist.py --threads "$t" --batch 128 2>/dev/null | tail -1)
        tt=$(echo "$th" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['train_samples_per_s'], d['eval_samples_per_s'], d['peak_rss_mb'])")
        set -- $ot $tt
        printf '%-8s %-9s %14s %14s %12s %14.2f %14.2f\n' "$t" pytorch "$4" "$5" "$6" "$(python3 -c "print($1 / $4)")" "$(python3 -c "print($2 / $5)")"
    fi
done
echo
echo "per-kernel profile of one training step, $cores threads (time, share, GFLOP/s against the peak above):"
"$W/cgmnist_prof" bench --profile --steps 1 --reps 1 2>&1 | sed -n '/^profile of one .train/,/^total/p'
