#!/bin/bash
# mpi_train.sh MMC ROOT WORKDIR — data-parallel training (mmc build --mpi)
# under mpirun with 2 and 3 ranks, against one process at the same global
# batch:
#  - vanilla, guided, random, modality_dropout, ogm_ge, agm and mmpareto: the same step kinds, and losses, learning
#    speeds, d_speed and every tensor of last.ckpt within 1e-5 relative
#    (tests/mpi_close.py): the ranks' gradients are averaged in another
#    order than one process sums them, which changes the last bits of a
#    float32 (a few 1e-8 relative per step; these runs stay below 3e-7);
#  - batches that N does not divide, a last batch smaller than N (empty
#    shards), the arrays reader with worker threads;
#  - gradients averaged in buckets during the backward pass, or after it;
#  - the all-reduce is used: rank 1 reading other data changes the
#    parameters rank 0 writes;
#  - --resume with another number of ranks continues the same run;
#  - an error on one rank (a missing directory) stops every rank, naming it;
#  - eval and util on 3 and 2 ranks print what one process prints;
#  - rank 0 alone writes the run directory;
#  - mmc sweep spreads its runs over the processes mpirun starts;
#  - only --mpi programs link MPI.
# Skipped (77) without mpirun or an mmc built with MPI.
set -u
MMC=$1; ROOT=$2; W=$3
rm -rf "$W"; mkdir -p "$W"
. "$(dirname "$0")/lib.sh"
command -v mpirun > /dev/null || { say "SKIP: no mpirun (tools/install-deps.sh installs openmpi-bin)"; exit 77; }
if ! "$MMC" build "$ROOT/tests/e2e/resume.mmnet" -o "$W/rs" --mpi 2> "$W/build.err"; then
    grep -q "built without MPI" "$W/build.err" && { say "SKIP: $(cat "$W/build.err")"; exit 77; }
    cat "$W/build.err"; bad "mmc build --mpi"; exit 1
fi
"$MMC" build "$ROOT/tests/e2e/mpi.mmnet" -o "$W/mp" --mpi || { bad "mmc build mpi.mmnet --mpi"; exit 1; }
# Without --mpi nothing of MPI is linked.
"$MMC" build "$ROOT/tests/e2e/resume.mmnet" -o "$W/plain" || bad "mmc build without --mpi"
ldd "$W/plain" | grep -q libmpi && bad "a program built without --mpi links MPI"
ldd "$W/rs" | grep -q libmpi || bad "a program built with --mpi does not link MPI"
MPI="mpirun --oversubscribe --allow-run-as-root"
# One thread per rank: the 2-core machine is not oversubscribed further.
mpi() { local np=$1; shift; timeout 120 $MPI -np "$np" "$@"; }
close() { python3 "$ROOT/tests/mpi_close.py" "$1" "$2" 1e-5 || bad "$3"; }

# 1. The three policies on synthetic data, batch 14 of 96 (shards of 4-5,
#    a last batch of 12), 1 process against 2 and 3 ranks.
for pol in vanilla guided random; do
    RUN="train --quiet --threads 1 --epochs 3 --batch 14 --policy $pol --warmup 0"
    "$W/rs" $RUN --out "$W/$pol.1" > /dev/null 2>&1 || bad "$pol: one process"
    for np in 2 3; do
        mpi $np "$W/rs" $RUN --out "$W/$pol.$np" > /dev/null 2> "$W/$pol.$np.err" || { bad "$pol: $np ranks"; cat "$W/$pol.$np.err"; }
        say "$pol, $np ranks: $(close "$W/$pol.1" "$W/$pol.$np" "$pol: $np ranks differ from one process")"
    done
done
# Modality dropout draws which input to zero by the example's place in the
# global batch, so the ranks drop what one process drops.
RUN="train --quiet --threads 1 --epochs 2 --batch 14 --policy modality_dropout --drop-p 0.5"
"$W/rs" $RUN --out "$W/drop.1" > /dev/null 2>&1 || bad "modality_dropout: one process"
mpi 3 "$W/rs" $RUN --out "$W/drop.3" > /dev/null 2> "$W/drop.3.err" || { bad "modality_dropout: 3 ranks"; cat "$W/drop.3.err"; }
say "modality_dropout, 3 ranks: $(close "$W/drop.1" "$W/drop.3" "modality_dropout: 3 ranks differ from one process")"
# OGM-GE's scores are summed over the ranks (the whole batch's), its noise
# drawn from the same stream on every rank, on the averaged gradients.
RUN="train --quiet --threads 1 --epochs 2 --batch 14 --policy ogm_ge --ogm-alpha 0.5"
"$W/rs" $RUN --out "$W/ogm.1" > /dev/null 2>&1 || bad "ogm_ge: one process"
mpi 2 "$W/rs" $RUN --out "$W/ogm.2" > /dev/null 2> "$W/ogm.2.err" || { bad "ogm_ge: 2 ranks"; cat "$W/ogm.2.err"; }
say "ogm_ge, 2 ranks: $(close "$W/ogm.1" "$W/ogm.2" "ogm_ge: 2 ranks differ from one process")"
python3 - "$W/ogm.1/steps.csv" "$W/ogm.2/steps.csv" <<'PY' || bad "ogm_ge: 2 ranks log other ratios than one process"
import csv, sys
a, b = (list(csv.DictReader(open(f))) for f in sys.argv[1:])
assert len(a) == len(b) > 0
for r, s in zip(a, b):
    assert abs(float(r["ogm_ratio"]) - float(s["ogm_ratio"])) <= 1e-5 * float(r["ogm_ratio"]), (r, s)
PY
# AGM: each rank zeroes and evaluates its shard; the scores are the global
# batch's means (the ranks' sums added), the coefficients scale the
# averaged gradients.
RUN="train --quiet --threads 1 --epochs 2 --batch 14 --policy agm --agm-alpha 0.5"
"$W/rs" $RUN --out "$W/agm.1" > /dev/null 2>&1 || bad "agm: one process"
mpi 3 "$W/rs" $RUN --out "$W/agm.3" > /dev/null 2> "$W/agm.3.err" || { bad "agm: 3 ranks"; cat "$W/agm.3.err"; }
say "agm, 3 ranks: $(close "$W/agm.1" "$W/agm.3" "agm: 3 ranks differ from one process")"
# MMPareto (on a late-fusion variant of rs): both passes' gradients are
# averaged before they are integrated.
sed 's/ gap$/ gap @feat/; s/^  mmtm.*/  fuse fused { concat(f.feat, g.feat) linear(3) }/; s/^  predict .*/  predict fused/;
     s/^  loss .*/  loss ce(fused) + ce(f) + ce(g)/; s/^  policy .*/  policy mmpareto/' "$ROOT/tests/e2e/resume.mmnet" > "$W/late.mmnet"
"$MMC" build "$W/late.mmnet" -o "$W/late" --mpi > /dev/null || bad "mmc build late.mmnet --mpi"
RUN="train --quiet --threads 1 --epochs 2 --batch 14 --policy mmpareto"
"$W/late" $RUN --out "$W/mmp.1" > /dev/null 2>&1 || bad "mmpareto: one process"
mpi 2 "$W/late" $RUN --out "$W/mmp.2" > /dev/null 2> "$W/mmp.2.err" || { bad "mmpareto: 2 ranks"; cat "$W/mmp.2.err"; }
say "mmpareto, 2 ranks: $(close "$W/mmp.1" "$W/mmp.2" "mmpareto: 2 ranks differ from one process")"
python3 - "$W/agm.1/steps.csv" "$W/agm.3/steps.csv" "$W/mmp.1/steps.csv" "$W/mmp.2/steps.csv" <<'PY' || bad "agm or mmpareto: the ranks log other scores or weights than one process"
import csv, sys
f = sys.argv[1:]
for (x, y, cols) in ((f[0], f[1], ("agm_score_0", "agm_score_1", "agm_coeff_0", "agm_coeff_1")),
                     (f[2], f[3], ("mmp_cos_0", "mmp_cos_1", "mmp_alpha_0", "mmp_alpha_1"))):
    a, b = (list(csv.DictReader(open(p))) for p in (x, y))
    assert len(a) == len(b) > 0
    for r, s in zip(a, b):
        for c in cols:
            assert abs(float(r[c]) - float(s[c])) <= 1e-5 * max(1.0, abs(float(r[c]))), (c, r, s)
# AGM's coefficients must move apart somewhere, or the comparison above would
# hold for a policy that never modulates (MMPareto's weights may tie).
a = list(csv.DictReader(open(f[0])))
assert any(abs(float(r["agm_coeff_0"]) - float(r["agm_coeff_1"])) > 1e-6 for r in a), "agm never modulated"
PY
kinds=$(cut -d, -f3 "$W/random.3/steps.csv" | sort | uniq -c | tr -s ' ' | tr '\n' ' ')
say "random's step kinds: $kinds"
grep -q rebalance "$W/guided.3/steps.csv" || bad "guided took no re-balancing step: the test does not cover the controller"

# 2. A last batch of 1 for 3 ranks (two empty shards), the arrays reader
#    with worker threads and flips.
python3 "$ROOT/tests/mpi_data.py" "$W/d1" 113 1 && python3 "$ROOT/tests/mpi_data.py" "$W/d2" 113 1 invert || bad "mpi_data.py"
RUN="train --quiet --threads 1 --workers 2 --data $W/d1"   # 85 train (113 - 28 val): 6 x 14 + 1
"$W/mp" $RUN --out "$W/arr.1" > /dev/null 2>&1 || bad "arrays: one process"
mpi 3 "$W/mp" $RUN --out "$W/arr.3" > /dev/null 2> "$W/arr.3.err" || { bad "arrays: 3 ranks"; cat "$W/arr.3.err"; }
say "arrays, 3 ranks: $(close "$W/arr.1" "$W/arr.3" "arrays: 3 ranks differ from one process")"
# Gradients averaged in buckets while the backward pass goes on (--bucket-mb,
# here a few hundred bytes, so a step sends several; two ranks have empty
# shards in the last batch and send the same buckets of zeros): the same
# run; --bucket-mb 0 sends none before the backward pass ends.
mpi 3 "$W/mp" $RUN --bucket-mb 0.0002 --out "$W/arr_bk.3" > /dev/null 2> "$W/arr_bk.3.err" || { bad "arrays, buckets: 3 ranks"; cat "$W/arr_bk.3.err"; }
say "arrays, buckets of 52 floats, 3 ranks: $(close "$W/arr.1" "$W/arr_bk.3" "arrays, buckets: 3 ranks differ from one process")"
mpi 2 "$W/mp" $RUN --bucket-mb 0 --out "$W/arr_bk0.2" > /dev/null 2> "$W/arr_bk0.2.err" || { bad "arrays, no buckets: 2 ranks"; cat "$W/arr_bk0.2.err"; }
say "arrays, no buckets, 2 ranks: $(close "$W/arr.1" "$W/arr_bk0.2" "arrays, no buckets: 2 ranks differ from one process")"
python3 - "$W/arr_bk.3/metrics.jsonl" "$W/arr_bk0.2/metrics.jsonl" <<'PY' || bad "allreduce_buckets: buckets were not sent during the backward pass, or were with --bucket-mb 0"
import json, sys
a, b = ([json.loads(l) for l in open(f)] for f in sys.argv[1:])
assert all(e["allreduce_buckets"] >= 7 for e in a), [e["allreduce_buckets"] for e in a]   # 7 steps an epoch, several each
assert all(e["allreduce_buckets"] == 0 for e in b), [e["allreduce_buckets"] for e in b]
PY
# AGM with two empty shards in the last batch: those ranks add nothing to the scores' sums.
"$W/mp" $RUN --epochs 1 --policy agm --out "$W/arr_agm.1" > /dev/null 2>&1 || bad "arrays, agm: one process"
mpi 3 "$W/mp" $RUN --epochs 1 --policy agm --out "$W/arr_agm.3" > /dev/null 2> "$W/arr_agm.3.err" || { bad "arrays, agm: 3 ranks"; cat "$W/arr_agm.3.err"; }
say "arrays, agm, 3 ranks: $(close "$W/arr_agm.1" "$W/arr_agm.3" "arrays, agm: 3 ranks differ from one process")"

# 3. The all-reduce is used: rank 1 reads inverted images; what rank 0
#    writes then differs from the one-process run on rank 0's data.
timeout 120 $MPI -np 1 "$W/mp" $RUN --out "$W/mixed" : -np 1 "$W/mp" train --quiet --threads 1 --workers 2 --data "$W/d2" --out "$W/mixed" \
    > /dev/null 2> "$W/mixed.err" || { bad "mixed data: 2 ranks"; cat "$W/mixed.err"; }
if [ ! -f "$W/mixed/last.ckpt" ]; then
    bad "mixed data: no checkpoint"
elif python3 "$ROOT/tests/mpi_close.py" "$W/arr.1" "$W/mixed" 1e-3 > /dev/null 2>&1; then
    bad "rank 1's data did not reach rank 0's parameters: the gradients are not all-reduced"
else
    say "mixed data: rank 0's parameters carry rank 1's gradients"
fi

# 4. --resume with another number of ranks: 1 epoch on 2 ranks, then the
#    rest on 3, then on 1, is the 3-epoch run of one process.
RUN="train --quiet --threads 1 --batch 14 --policy guided --warmup 0"
mpi 2 "$W/rs" $RUN --epochs 1 --out "$W/res" > /dev/null 2>&1 || bad "resume: first epoch on 2 ranks"
mpi 3 "$W/rs" train --quiet --threads 1 --epochs 2 --resume "$W/res" > /dev/null 2>&1 || bad "resume on 3 ranks"
"$W/rs" train --quiet --threads 1 --epochs 3 --resume "$W/res" > /dev/null 2>&1 || bad "resume on 1 process"
say "resumed 2 -> 3 -> 1 ranks: $(close "$W/guided.1" "$W/res" "a run resumed with other rank counts differs from the uninterrupted one")"

# 5. An error on one rank stops all of them, with its message.
timeout 60 $MPI -np 1 "$W/mp" $RUN --data "$W/d1" --out "$W/err" : -np 1 "$W/mp" $RUN --data "$W/nowhere" --out "$W/err" > "$W/err.out" 2>&1
st=$?
[ $st = 124 ] && bad "an error on rank 1 left the run hanging"
[ $st = 0 ] && bad "an error on rank 1: status 0"
grep -q "rank 1 of 2: .*$W/nowhere" "$W/err.out" || { bad "rank 1's error does not name the directory"; tail -5 "$W/err.out"; }

# 6. mmc sweep spread over 2 processes: each trains its share, process 0
#    gathers the same sweep.csv as one process; --mpi alone is refused.
SW="--lrs 2 --seeds 2 --jobs 1 --program $W/rs"
timeout 200 $MPI -np 2 "$MMC" sweep "$ROOT/tests/e2e/resume.mmnet" --out "$W/sw2" $SW --mpi -- --epochs 1 > /dev/null 2> "$W/sw2.err" \
    || { bad "mmc sweep on 2 processes"; tail -5 "$W/sw2.err"; }
"$MMC" sweep "$ROOT/tests/e2e/resume.mmnet" --out "$W/sw1" $SW -- --epochs 1 > /dev/null 2>&1 || bad "mmc sweep, one process"
[ "$(grep -c 'process 1 of 2' "$W/sw2.err")" = 1 ] || bad "mmc sweep --mpi: process 1 did not take part"
cmp -s "$W/sw1/sweep.csv" "$W/sw2/sweep.csv" || { bad "sweep.csv of 2 processes differs from one process's"; diff "$W/sw1/sweep.csv" "$W/sw2/sweep.csv"; }
[ -s "$W/sw2/sweep.svg" ] || bad "no sweep.svg from 2 processes"
expect 2 "not started by mpirun" "$MMC" sweep "$ROOT/tests/e2e/resume.mmnet" --out "$W/sw0" --mpi

# With nvcc: --target cuda --mpi compiles and links NCCL; without a GPU
# every rank stops with the message (tests/emu_mpi.sh runs its step).
if command -v nvcc > /dev/null; then
    if "$MMC" build "$ROOT/tests/e2e/resume.mmnet" -o "$W/rs_cuda" --target cuda --mpi --arch sm_90 > "$W/cuda.err" 2>&1; then
        ldd "$W/rs_cuda" | grep -q libnccl || bad "--target cuda --mpi: not linked with NCCL"
        nvidia-smi > /dev/null 2>&1 || expect 1 "no CUDA device" timeout 60 $MPI -np 2 "$W/rs_cuda" train --quiet --out "$W/cuda_run"
    else
        bad "mmc build --target cuda --mpi"; tail -3 "$W/cuda.err"
    fi
fi

# eval and util under mpirun: each rank evaluates its shard, the counts
# are summed; the same lines as one process.
"$W/rs" eval --checkpoint "$W/guided.1/best.ckpt" > "$W/eval.1" 2>&1 || bad "eval, one process"
mpi 3 "$W/rs" eval --checkpoint "$W/guided.1/best.ckpt" > "$W/eval.3" 2>&1 || bad "eval, 3 ranks"
cmp -s "$W/eval.1" "$W/eval.3" || { bad "eval on 3 ranks differs from one process"; diff "$W/eval.1" "$W/eval.3"; }
"$W/rs" util --checkpoint "$W/guided.1/best.ckpt" > "$W/util.1" 2>&1 || bad "util, one process"
mpi 2 "$W/rs" util --checkpoint "$W/guided.1/best.ckpt" > "$W/util.2" 2>&1 || bad "util, 2 ranks"
cmp -s "$W/util.1" "$W/util.2" || { bad "util on 2 ranks differs from one process"; diff "$W/util.1" "$W/util.2"; }

# 7. Rank 0 alone writes: one line per step, no leftovers.
[ "$(ls "$W/guided.3" | tr '\n' ' ')" = "best.ckpt last.ckpt metrics.jsonl steps.csv summary.json " ] || bad "run directory of 3 ranks: $(ls "$W/guided.3")"
[ "$(wc -l < "$W/guided.3/steps.csv")" = "$(wc -l < "$W/guided.1/steps.csv")" ] || bad "steps.csv of 3 ranks has another number of lines"
exit $fail
