#!/bin/bash
# e2e_limits.sh MMC ROOT WORKDIR — a run at the limits of its machine, on a
# small net over synthetic data (tests/e2e/limits.mmnet):
#  - a log that cannot be written (a full disk: /dev/full; a reader gone: a
#    FIFO whose reader left after the first line) stops the run at once with
#    the file named and a non-zero exit; last.ckpt holds the last epoch whose
#    logs were written in full, and --resume goes on from it;
#  - a batch larger than the training set is cut to it, saying so;
#  - a batch whose memory plan exceeds the memory available is refused
#    before anything is allocated, with both figures and the largest batch
#    that fits, which then runs under the same limit; `mmc info --batch`
#    prints the same plan.
set -u
MMC=$1; ROOT=$2; W=$3
rm -rf "$W"; mkdir -p "$W"
. "$(dirname "$0")/lib.sh"
# ckpt_epoch FILE: the epoch in a checkpoint's metadata.
ckpt_epoch() {
    python3 -c "import json,struct,sys; b=open(sys.argv[1],'rb').read(); n=struct.unpack('<Q',b[:8])[0]; print(json.loads(b[8:8+n])['__metadata__']['epoch'])" "$1"
}

P=$W/lim
"$MMC" build "$ROOT/tests/e2e/limits.mmnet" -o "$P" || { bad "mmc build limits"; exit 1; }

# ---- 1. log writes ----------------------------------------------------------
# steps.csv on a full disk: the first epoch's lines are lost, so the run stops
# before any checkpoint.
mkdir "$W/full_steps" && ln -s /dev/full "$W/full_steps/steps.csv"
expect 1 "cannot write $W/full_steps/steps.csv: No space left on device; training stopped in epoch 1 of 3. There is no checkpoint yet" \
    "$P" train --quiet --out "$W/full_steps"
[ -e "$W/full_steps/last.ckpt" ] && bad "a run whose steps.csv failed wrote last.ckpt"

# metrics.jsonl on a full disk.
mkdir "$W/full_metrics" && ln -s /dev/full "$W/full_metrics/metrics.jsonl"
expect 1 "cannot write $W/full_metrics/metrics.jsonl: No space left on device; training stopped in epoch 1 of 3" \
    "$P" train --quiet --out "$W/full_metrics"

# metrics.jsonl failing after the first epoch: its reader reads one line and
# leaves (a write then fails with EPIPE; the signal is ignored as a disk's
# error would raise none). Epoch 1 is checkpointed; epoch 2 is not, since its
# line is missing; --resume redoes epoch 2 and ends as the uninterrupted run.
"$P" train --quiet --out "$W/whole" > /dev/null 2>&1 || bad "the uninterrupted run failed"
mkdir "$W/pipe" && mkfifo "$W/pipe/metrics.jsonl"
head -n 1 "$W/pipe/metrics.jsonl" > "$W/pipe_first.jsonl" &
reader=$!
expect 1 "cannot write $W/pipe/metrics.jsonl: Broken pipe; training stopped in epoch 2 of 3. $W/pipe/last.ckpt holds epoch 1; once the file can be written, continue with --resume $W/pipe" \
    bash -c 'trap "" PIPE; exec "$@"' sh "$P" train --quiet --out "$W/pipe"
wait $reader
[ "$(ckpt_epoch "$W/pipe/last.ckpt" 2>/dev/null)" = 1 ] || bad "last.ckpt after the failed metrics write is not epoch 1's"
[ -e "$W/pipe/summary.json" ] && bad "the stopped run wrote summary.json"
rm "$W/pipe/metrics.jsonl"
"$P" train --quiet --resume "$W/pipe" > /dev/null 2>&1 || bad "--resume after the failed metrics write"
cat "$W/pipe_first.jsonl" "$W/pipe/metrics.jsonl" > "$W/pipe_all.jsonl"
python3 - "$W/whole/metrics.jsonl" "$W/pipe_all.jsonl" <<'EOF' || bad "the resumed run's metrics differ from the uninterrupted run's"
import json, sys
timing = {"samples_per_s", "wall_samples_per_s", "data_wait_s", "data_cpu_s", "epoch_time_s"}
a, b = ([{k: v for k, v in json.loads(l).items() if k not in timing} for l in open(p)] for p in sys.argv[1:])
assert len(a) == 3 and a == b, (a, b)
EOF

# summary.json on a full disk (its temporary file): the run's epochs are all
# checkpointed; --resume with nothing left to train writes the summary.
mkdir "$W/full_summary" && ln -s /dev/full "$W/full_summary/summary.json.tmp"
expect 1 "cannot write $W/full_summary/summary.json: No space left on device; training stopped in epoch 1 of 1. $W/full_summary/last.ckpt holds epoch 1" \
    "$P" train --quiet --epochs 1 --out "$W/full_summary"
[ -e "$W/full_summary/summary.json" ] && bad "summary.json written from a failed write"
"$P" train --quiet --epochs 1 --resume "$W/full_summary" > /dev/null 2>&1 || bad "--resume to write the summary"
[ -s "$W/full_summary/summary.json" ] || bad "no summary.json after --resume"

# ---- 2. memory ---------------------------------------------------------------
# A batch larger than the training set (256 examples) is the whole set.
expect 0 "batch 65536 is larger than the training set (256 examples): using batch 256, one step an epoch" \
    "$P" train --quiet --epochs 1 --batch 65536 --out "$W/clamp"
[ "$(json "$W/clamp/summary.json" "d['batch']" 2>/dev/null)" = 256 ] || bad "summary.json of the clamped run does not say batch 256"
expect 0 "batch 65536 is larger than the data (256 examples): using batch 256" \
    "$P" eval --checkpoint "$W/clamp/last.ckpt" --batch 65536

# The plan at batch 256 with 3 threads, as mmc info prints it (in bytes)
# and as the program counts it when it refuses the batch under a 36 MiB
# limit: the same figure. The largest batch it says fits is the largest
# whose plan (mmc info's) is within the bytes it says are available.
plan_bytes() { # BATCH: mmc info's plan at 3 threads
    "$MMC" info "$ROOT/tests/e2e/limits.mmnet" --batch "$1" --threads 3 | sed -n "s/^memory at batch $1, 3 threads (C back end): .* (\([0-9]*\) bytes)$/\1/p"
}
plan=$(plan_bytes 256)
[ -n "$plan" ] || bad "mmc info --batch prints no plan"
out=$(MMNET_MEMORY_LIMIT=36M "$P" train --quiet --batch 256 --threads 3 --out "$W/mem" 2>&1); st=$?
printf '%s' "$out" | grep -q "error: batch 256 needs [0-9.]* MiB of memory ($plan bytes: activations .*), but [0-9.]* MiB is available ([0-9]* bytes: MMNET_MEMORY_LIMIT=36M, of which the process uses [0-9.]* MiB): the largest batch that fits is [0-9]* (--batch [0-9]*)" \
    && [ $st = 1 ] || bad "batch 256 under a 36 MiB limit -> status $st: $out"
[ -e "$W/mem/steps.csv" ] && bad "the refused run started its logs"
most=$(printf '%s' "$out" | sed -n 's/.*the largest batch that fits is \([0-9]*\).*/\1/p')
avail=$(printf '%s' "$out" | sed -n 's/.* is available (\([0-9]*\) bytes:.*/\1/p')
if [ -n "$most" ] && [ -n "$avail" ]; then
    a=$(plan_bytes "$most"); b=$(plan_bytes $((most + 1)))
    [ "$a" -le "$avail" ] && [ "$b" -gt "$avail" ] || bad "the largest batch that fits, $most, is not ($a, $b bytes against $avail)"
fi
expect 0 "batch 200," env MMNET_MEMORY_LIMIT=64M "$P" train --batch 200 --epochs 1 --out "$W/mem_fit"
expect 1 "MMNET_MEMORY_LIMIT is 'lots': give the memory this process may use in bytes, or with K, M, G or T" \
    env MMNET_MEMORY_LIMIT=lots "$P" train --quiet --out "$W/mem_bad"
expect 2 "mmc: --batch needs a whole number from 1 to 65536, not '0'" "$MMC" info "$ROOT/tests/e2e/limits.mmnet" --batch 0

# A real limit on the address space (ulimit -v): the refused batch, then the
# one it says fits, allocated for real (the benchmark holds the whole batch).
# Not under AddressSanitizer, which reserves terabytes of address space.
if (ulimit -v 400000; "$P" info > /dev/null 2>&1); then
    out=$(ulimit -v 400000; "$P" bench --batch 60000 --steps 1 --reps 1 2>&1); st=$?
    printf '%s' "$out" | grep -q "error: batch 60000 needs .* is available ([0-9]* bytes: the address-space limit (ulimit -v) of 390.6 MiB less the process's" \
        && [ $st = 1 ] || bad "bench at batch 60000 under ulimit -v 400000 -> status $st: $out"
    most=$(printf '%s' "$out" | sed -n 's/.*the largest batch that fits is \([0-9]*\).*/\1/p')
    [ -n "$most" ] && { expect 0 "\"batch\": $most," bash -c 'ulimit -v 400000; exec "$@"' sh "$P" bench --batch "$most" --steps 1 --reps 1; }
else
    say "skip: the program does not start under ulimit -v (a sanitizer build)"
fi

if [ $fail = 0 ]; then say "e2e limits: all passed"; fi
exit $fail
