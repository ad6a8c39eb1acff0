#!/bin/sh
# bench/optim.sh — what Adam and AdamW cost against SGD: the fused update
# pass (optimizer and learning-speed norms, one pass over the parameters)
# and whole training steps, on the ModelNet40 example (two ResNet-18s,
# 23.8M parameters: the model whose update moves the most memory).
#
# Builds it with --profile, then for each optimizer in turn (ROUNDS rounds,
# default 3) runs `bench --profile` (batch BATCH, default 4): the profile's
# "update (optimizer + norms)" line is one update's time, and bench's
# train samples/s the steps'. Prints per round and the medians, with the
# ratios adam/sgd and adamw/sgd measured in the same run.
#
#   bench/optim.sh [BUILD_DIR]          (default: build)
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
ROUNDS=${ROUNDS:-3}
BATCH=${BATCH:-4}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
[ -x "$B/mmc" ] || { echo "bench: no $B/mmc; build first"; exit 1; }
"$B/mmc" build examples/modelnet40_resnet18.mmnet --profile -o "$W/mn40"

echo "mmnet optimizer benchmark — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores, avx512f: $(grep -c avx512f /proc/cpuinfo)"
echo "model: examples/modelnet40_resnet18.mmnet, batch $BATCH"
printf '%-6s %-6s %12s %16s\n' round opt "update ms" "train samples/s"
for r in $(seq "$ROUNDS"); do
    for opt in sgd adam adamw; do
        "$W/mn40" bench --optimizer "$opt" --batch "$BATCH" --steps 2 --reps 3 --profile > "$W/out" 2> "$W/prof"
        u=$(grep -m1 '^update (optimizer + norms)' "$W/prof" | awk '{print $NF}')
        s=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['train_samples_per_s'])" "$W/out")
        printf '%-6s %-6s %12s %16s\n' "$r" "$opt" "$u" "$s"
        echo "$opt $u $s" >> "$W/all"
    done
done
python3 - "$W/all" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {o: (statistics.median(float(r[1]) for r in rows if r[0] == o), statistics.median(float(r[2]) for r in rows if r[0] == o))
       for o in ("sgd", "adam", "adamw")}
print("medians: " + ", ".join(f"{o} update {u:.1f} ms, {s:.2f} train samples/s" for o, (u, s) in med.items()))
for o in ("adam", "adamw"):
    print(f"{o}/sgd: update time x{med[o][0] / med['sgd'][0]:.2f}, training samples/s x{med[o][1] / med['sgd'][1]:.3f}")
PY
