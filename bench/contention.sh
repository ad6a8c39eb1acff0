#!/bin/sh
# bench/contention.sh — training throughput when another process shares the
# cores: the cgmnist program (examples/cgmnist.mmnet) trains random batches
# (`prog bench`, batch 128, as many threads as cores) alone and next to one
# busy process (a shell loop that never sleeps: one core's worth of work),
# with each wait policy of the OpenMP threads (--wait passive, the default,
# and --wait active, the OpenMP runtime's own: spin 200 ms after every
# parallel region). Issue 20, item 9: with active waits cgmnist fell from
# ~1,100 to ~130 samples/s on two cores next to one busy process.
#
# The four cases take turns for ROUNDS rounds; each figure is the median
# of its rounds. Printed: samples/s of each case, and as ratios
#   contended/alone   (per policy) what the busy process leaves of the
#                     throughput: with N cores and one busy process a fair
#                     share is (N - 1/2)/N or so, 0.75 on two cores;
#   passive/active    (alone) what the passive policy costs on a machine
#                     nothing else uses, and (contended) what it gains.
#
#   bench/contention.sh [BUILD_DIR]        (default: build)
#
# Environment: ROUNDS (default 3), STEPS (steps a measurement, default 10),
# PROG (a cgmnist program already built, instead of building one).
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-10}
W=$(mktemp -d)
busy=
cleanup() { [ -n "$busy" ] && kill "$busy" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
P=${PROG:-}
if [ -z "$P" ]; then
    [ -x "$B/mmc" ] || { echo "contention: no $B/mmc; build first (cmake --build $B --target mmc mmrt)"; exit 1; }
    "$B/mmc" build examples/cgmnist.mmnet -o "$W/cg" > /dev/null
    P=$W/cg
fi
sps() { # POLICY: train samples/s of one measurement
    "$P" bench --wait "$1" --batch 128 --steps "$STEPS" --reps 1 |
        python3 -c "import json,sys; print(json.load(sys.stdin)['train_samples_per_s'])"
}
for r in $(seq "$ROUNDS"); do
    for pol in passive active; do
        echo "$pol alone $(sps $pol)" >> "$W/results"
        sh -c 'while :; do :; done' &
        busy=$!
        echo "$pol contended $(sps $pol)" >> "$W/results"
        kill "$busy"; wait "$busy" 2>/dev/null || true; busy=
    done
done
python3 - "$W/results" "$(nproc)" "$ROUNDS" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for pol in ("passive", "active"):
    for case in ("alone", "contended"):
        med[pol, case] = statistics.median(float(r[2]) for r in rows if r[0] == pol and r[1] == case)
print(f"cgmnist bench, batch 128, {sys.argv[2]} cores, median of {sys.argv[3]} rounds (train samples/s)")
print(f"{'wait':10} {'alone':>10} {'contended':>10} {'contended/alone':>16}")
for pol in ("passive", "active"):
    a, c = med[pol, "alone"], med[pol, "contended"]
    print(f"{pol:10} {a:10.1f} {c:10.1f} {c / a:16.3f}")
print(f"passive/active: alone {med['passive', 'alone'] / med['active', 'alone']:.3f}, "
      f"contended {med['passive', 'contended'] / med['active', 'contended']:.3f}")
EOF
