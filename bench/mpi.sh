#!/bin/bash
# bench/mpi.sh BUILD [ROUNDS] — data-parallel scaling of the CPU back end:
# 2 ranks x 1 thread against 1 rank x 1 thread, the same global batch
# (cgmnist, batch 128, 2560 training examples = 20 steps an epoch, one
# epoch per round), with the share of a step spent averaging gradients
# and state across the ranks (metrics.jsonl's allreduce_s over the time of
# the training steps). The two configurations take turns; each figure is
# the median of its rounds. Needs Open MPI (mpirun) and the data set.
set -eu
BUILD=$1; ROUNDS=${2:-3}
MMC=$BUILD/mmc
W=${W:-/tmp/mmnet-bench-mpi}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$W"
"$MMC" build "$ROOT/examples/cgmnist.mmnet" -o "$W/cg" --mpi
MPI="mpirun --oversubscribe --allow-run-as-root --bind-to none"
RUN="train --quiet --threads 1 --wait passive --epochs 1 --limit-train 2560 --val 256 --limit-test 256"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, avx512f on $(grep -c avx512f /proc/cpuinfo) cpus; load $(cut -d' ' -f1-3 /proc/loadavg)"
stats() { python3 -c "
import json,sys
m=[json.loads(l) for l in open(sys.argv[1]+'/metrics.jsonl')][-1]
n=2560; t=n/m['samples_per_s']
print('%.1f %.4f %.3f' % (m['samples_per_s'], m.get('allreduce_s', 0)/t, t/20*1e3))" "$1"; }
one=(); two=(); share=()
for r in $(seq "$ROUNDS"); do
    rm -rf "$W/r1" "$W/r2"
    "$W/cg" $RUN --out "$W/r1" > /dev/null
    $MPI -np 2 "$W/cg" $RUN --out "$W/r2" > /dev/null
    read -r s1 _ ms1 <<< "$(stats "$W/r1")"
    read -r s2 sh2 ms2 <<< "$(stats "$W/r2")"
    echo "round $r: 1 rank $s1 samples/s ($ms1 ms/step), 2 ranks $s2 samples/s ($ms2 ms/step), all-reduce $(python3 -c "print('%.1f%%' % (100*$sh2))") of a step; load $(cut -d' ' -f1 /proc/loadavg)"
    one+=("$s1"); two+=("$s2"); share+=("$sh2")
done
python3 - "${one[*]}" "${two[*]}" "${share[*]}" <<'PY'
import statistics as st, sys
a, b, c = ([float(x) for x in s.split()] for s in sys.argv[1:4])
print("median: 1 rank x 1 thread %.0f samples/s, 2 ranks x 1 thread %.0f samples/s: %.2fx; all-reduce %.1f%% of a step"
      % (st.median(a), st.median(b), st.median(b) / st.median(a), 100 * st.median(c)))
PY

# RESNET=1: the two-branch ResNet-18 (23.8M parameters, a 95 MB gradient
# arena) on synthetic inputs of its shape (the .mmnet's data line replaced),
# batch 16, 2 steps, one round.
[ "${RESNET:-0}" = 1 ] || exit 0
python3 - "$ROOT/examples/modelnet40_resnet18.mmnet" "$W/resnet.mmnet" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
t = re.sub(r"data multiview\([^)]*\)", "data synthetic(train=32, test=16)", t, flags=re.S).replace("augment [flip]", "")
open(sys.argv[2], "w").write(t)
PY
"$MMC" build "$W/resnet.mmnet" -o "$W/rn" --mpi
RUN="train --quiet --threads 1 --wait passive --epochs 1 --batch 16 --val 0 --limit-test 16"
# 2 ranks twice: the gradients averaged in 25 MB buckets during the
# backward pass (--bucket-mb 25), and all after it (the default).
rm -rf "$W/n1" "$W/n2" "$W/n0"
"$W/rn" $RUN --out "$W/n1" > /dev/null
$MPI -np 2 "$W/rn" $RUN --bucket-mb 25 --out "$W/n2" > /dev/null
$MPI -np 2 "$W/rn" $RUN --out "$W/n0" > /dev/null
python3 - "$W/n1" "$W/n2" "$W/n0" <<'PY'
import json, sys
a, b, c = ([json.loads(l) for l in open(d + "/metrics.jsonl")][-1] for d in sys.argv[1:4])
for name, r in (("--bucket-mb 25: buckets during the backward pass", b), ("all after it (the default)", c)):
    t2 = 32 / r["samples_per_s"]
    print("resnet18 x2: 1 rank x 1 thread %.3f samples/s, 2 ranks x 1 thread %.3f samples/s: %.2fx; all-reduce %.1f%% of a step "
          "(%.0f ms a step, %d buckets sent early); %s"
          % (a["samples_per_s"], r["samples_per_s"], r["samples_per_s"] / a["samples_per_s"], 100 * r["allreduce_s"] / t2,
             r["allreduce_s"] / 2 * 1e3, r["allreduce_buckets"], name))
PY
