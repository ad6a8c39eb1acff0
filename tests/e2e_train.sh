#!/bin/bash
# e2e_train.sh MMC ROOT WORKDIR — build the examples with mmc and train them
# for real on a few thousand Fashion-MNIST examples:
#  - the loss falls and accuracy beats chance by a wide margin;
#  - the run directory has metrics.jsonl, steps.csv, summary.json, best.ckpt
#    and last.ckpt, and the checkpoints are valid safetensors;
#  - --resume with only --epochs continues exactly as an uninterrupted run;
#  - eval and util read a checkpoint;
#  - a NaN loss stops with a clear message and keeps the last checkpoint;
#  - corrupt or missing data and bad flags give clear errors, exit non-zero.
set -u
MMC=$1; ROOT=$2; W=$3
DATA=${MMNET_TEST_DATA:-/usr/share/datasets/fashion-mnist}
rm -rf "$W"; mkdir -p "$W"
. "$(dirname "$0")/lib.sh"

if [ ! -d "$DATA" ]; then
    say "SKIP: no data in $DATA (install dataset-fashion-mnist)"; exit 77
fi


"$MMC" build "$ROOT/examples/cgmnist_unimodal_gray.mmnet" -o "$W/gray" || { bad "mmc build gray"; exit 1; }
"$MMC" build "$ROOT/examples/cgmnist.mmnet" -o "$W/cg" || { bad "mmc build cgmnist"; exit 1; }

# 1. A short real run of the uni-modal net: loss falls, accuracy far above chance.
# Four epochs: after three the net is still in its steepest descent, where
# its test accuracy moves by 0.06 with the last bits of the kernels'
# rounding and 0.43-0.60 with the seed; after four it is 0.59-0.62.
COMMON="--data $DATA --limit-train 3000 --limit-test 1000 --val 1000 --batch 32 --lr 0.05 --quiet"
"$W/gray" train $COMMON --epochs 4 --out "$W/gray_run" > "$W/gray.out" 2> "$W/gray.err" || { bad "gray train"; cat "$W/gray.err"; }
for f in metrics.jsonl steps.csv summary.json best.ckpt last.ckpt; do
    [ -s "$W/gray_run/$f" ] || bad "gray run has no $f"
done
first=$(head -1 "$W/gray_run/metrics.jsonl" | python3 -c "import json,sys; print(json.load(sys.stdin)['train_loss'])")
last=$(tail -1 "$W/gray_run/metrics.jsonl" | python3 -c "import json,sys; print(json.load(sys.stdin)['train_loss'])")
acc=$(json "$W/gray_run/summary.json" "d['test_acc']")
say "gray: train loss $first -> $last, test accuracy $acc"
python3 -c "import sys; sys.exit(0 if $last < 0.8 * $first else 1)" || bad "the training loss did not fall ($first -> $last)"
python3 -c "import sys; sys.exit(0 if $acc > 0.55 else 1)" || bad "test accuracy $acc is not far above chance (0.1)"
for k in test_acc val_acc branch_test_acc best_epoch epochs samples_per_s; do
    json "$W/gray_run/summary.json" "d['$k']" > /dev/null || bad "summary.json has no $k"
done

# The checkpoint is a safetensors file any reader can parse (json + struct here).
python3 - "$W/gray_run/best.ckpt" <<'EOF' || bad "best.ckpt is not valid safetensors"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
size = {"F32": 4, "F64": 8, "I64": 8}
end = 0
for k, v in h.items():
    if k == "__metadata__": continue
    cnt = 1
    for d in v["shape"]: cnt *= d
    s, e = v["data_offsets"]
    assert e - s == cnt * size[v["dtype"]], k
    end = max(end, e)
assert 8 + n + end == len(b)
assert "g.bn1.weight" in h and h["__metadata__"]["model"] == "cgmnist_unimodal_gray"
EOF

# 2. The multi-modal net: trains, and resuming gives the uninterrupted run.
CG="--data $DATA --limit-train 2000 --limit-test 500 --val 500 --batch 64 --lr 0.05 --quiet --seed 5 --policy guided --warmup 1"
"$W/cg" train $CG --epochs 2 --out "$W/full" > /dev/null 2> "$W/full.err" || { bad "cgmnist train"; cat "$W/full.err"; }
"$W/cg" train $CG --epochs 1 --out "$W/part" > /dev/null 2>&1 || bad "cgmnist train (1 epoch)"
# Only --epochs: the data, its limits, the split, batch, seed and policy come from the checkpoint.
"$W/cg" train --quiet --epochs 2 --resume "$W/part" > /dev/null 2> "$W/resume.err" || { bad "cgmnist --resume"; cat "$W/resume.err"; }
python3 "$ROOT/tests/same_run.py" "$W/full" "$W/part" 2 || bad "the resumed run differs from the uninterrupted one"
grep -q "rebalance-" "$W/full/steps.csv" || bad "the guided run took no re-balancing step"
json "$W/full/summary.json" "d['util']['u(m1|m0)'], d['d_util'], d['d_speed']" > /dev/null || bad "summary.json has no util/d_util/d_speed"

# 3. eval and util read a checkpoint.
expect 0 "test accuracy" "$W/cg" eval --checkpoint "$W/full/best.ckpt" --data "$DATA"
expect 0 "d_util" "$W/cg" util --checkpoint "$W/full/best.ckpt" --data "$DATA"
expect 1 "holds model 'cgmnist_unimodal_gray'" "$W/cg" eval --checkpoint "$W/gray_run/best.ckpt" --data "$DATA"

# 4. A diverging run stops on the non-finite loss and keeps its last checkpoint.
cp -r "$W/part" "$W/nan"
before=$(md5sum < "$W/nan/last.ckpt")
expect 1 "the loss is .* at epoch 3" "$W/cg" train $CG --epochs 3 --resume "$W/nan" --lr 100   # the largest it takes
[ "$(md5sum < "$W/nan/last.ckpt")" = "$before" ] || bad "last.ckpt changed after the NaN stop"

# 5. Bad data and bad flags.
mkdir -p "$W/trunc"
for f in train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do ln -sf "$DATA/$f.gz" "$W/trunc/$f.gz"; done
head -c 100000 "$DATA/train-images-idx3-ubyte.gz" > "$W/trunc/train-images-idx3-ubyte.gz"
expect 1 "train-images-idx3-ubyte.gz" "$W/gray" train --data "$W/trunc" --epochs 1 --out "$W/x"
expect 1 "does not exist" "$W/gray" train --data "$W/no-such-dir" --epochs 1 --out "$W/x"
ln -sf "$DATA/train-images-idx3-ubyte.gz" "$W/trunc/train-images-idx3-ubyte.gz"
printf 'not an idx file at all' > "$W/trunc/train-labels-idx1-ubyte"; rm -f "$W/trunc/train-labels-idx1-ubyte.gz"
expect 1 "train-labels-idx1-ubyte: not an IDX file" "$W/gray" train --data "$W/trunc" --epochs 1 --out "$W/x"
expect 2 "unknown option '--epoch'" "$W/gray" train --epoch 3
expect 2 "--epochs needs an integer, not 'three'" "$W/gray" train --epochs three
expect 2 "--lr is out of range" "$W/gray" train --lr -1
expect 2 "unknown policy 'greedy'" "$W/cg" train --policy greedy
expect 2 "has none" "$W/gray" train --policy guided
expect 2 "needs --checkpoint" "$W/gray" eval
expect 2 "unknown command 'fit'" "$W/gray" fit
expect 1 "cannot resume" "$W/gray" train --resume "$W/no-such-run"
expect 1 "no-such.ckpt" "$W/gray" eval --checkpoint "$W/no-such.ckpt"
exit $fail
