#!/bin/bash
# optim_e2e.sh MMC TESTS WORKDIR — the optimizers and schedules in a built
# program (tests/optim/tiny.mmnet, synthetic data):
#  - mmc info shows the optimizer and the schedule as the .mmnet gives them;
#  - steps.csv logs every step's learning rate: the warm-up, then the cosine;
#  - an Adam run resumed from its last.ckpt (with guided re-balancing steps
#    that update one branch) ends bit-identical to an uninterrupted one:
#    parameters, both moments, step counts, logs;
#  - the flags override the .mmnet (--optimizer adam, --schedule step ...);
#  - wrong flags and schedules that do not fit the run give clear errors.
set -u
MMC=$1; T=$2; W=$3
rm -rf "$W"; mkdir -p "$W"
. "$(dirname "$0")/lib.sh"

"$MMC" info "$T/optim/tiny.mmnet" > "$W/info.txt" || bad "mmc info"
grep -qF "optimizer  adamw(lr=0.01, betas=[0.9, 0.99], eps=1e-08, weight_decay=0.01, l1=0)" "$W/info.txt" || { bad "mmc info: the optimizer"; cat "$W/info.txt"; }
grep -qF "schedule   [warmup(steps=3), cosine(min_lr=0.001)]" "$W/info.txt" || { bad "mmc info: the schedule"; cat "$W/info.txt"; }
"$MMC" build "$T/optim/tiny.mmnet" -o "$W/tiny" || { bad "mmc build"; exit 1; }
"$W/tiny" info | grep -q "optimizer adamw, lr 0.01, .*schedule cosine" || bad "tiny info: the defaults"

# 1. The learning rate of every step.
"$W/tiny" train --quiet --out "$W/cos" > /dev/null 2> "$W/cos.err" || { bad "train"; cat "$W/cos.err"; }
python3 - "$W/cos" <<'PY' || bad "steps.csv: not the learning rates of warmup(steps=3) then cosine(min_lr=0.001)"
import math, sys
rows = open(sys.argv[1] + "/steps.csv").read().split("\n")
assert rows[0].split(",")[-1] == "lr", rows[0]
lr = [float(r.split(",")[-1]) for r in rows[1:] if r]
# from 0.01, over 3 epochs of 4 steps: 3 steps of warm-up, a cosine over the 9 left
want = [0.01 * (s + 1) / 3 for s in range(3)] + [0.001 + 0.009 * (1 + math.cos(math.pi * t / 9)) / 2 for t in range(9)]
assert len(lr) == 12 and all(abs(x - y) <= 1e-5 * y for x, y in zip(lr, want)), (lr, want)
PY

# 2. Resume exactness (a schedule that does not depend on the run's length,
# since the interrupted run is given fewer epochs).
S="--quiet --schedule step --step-every 2 --step-gamma 0.5"
"$W/tiny" train $S --out "$W/full" > /dev/null 2> "$W/full.err" || { bad "train"; cat "$W/full.err"; }
"$W/tiny" train $S --epochs 2 --out "$W/part" > /dev/null 2>&1 || bad "train (2 epochs)"
"$W/tiny" train $S --epochs 3 --resume "$W/part" > /dev/null 2> "$W/resume.err" || { bad "--resume"; cat "$W/resume.err"; }
python3 - "$W/full" "$W/part" <<'PY' || bad "the resumed Adam run differs from the uninterrupted one"
import json, struct, sys
def tensors(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
a, b = tensors(sys.argv[1] + "/last.ckpt"), tensors(sys.argv[2] + "/last.ckpt")
assert any(k.startswith("optimizer.exp_avg_sq.") for k in a) and "optimizer.step" in a, sorted(a)[:8]
assert a.keys() == b.keys() and all(a[k] == b[k] for k in a), [k for k in a if a[k] != b.get(k)][:5]
steps = struct.unpack("<%dq" % (len(a["optimizer.step"]) // 8), a["optimizer.step"])
assert len(set(steps)) > 1, steps  # the branch-only re-balancing steps left some parameters out
skip = {"samples_per_s", "wall_samples_per_s", "data_wait_s", "data_cpu_s", "epoch_time_s"}
ma = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
mb = [json.loads(l) for l in open(sys.argv[2] + "/metrics.jsonl")]
assert len(ma) == len(mb) == 3
for x, y in zip(ma, mb):
    assert {k: v for k, v in x.items() if k not in skip} == {k: v for k, v in y.items() if k not in skip}, (x, y)
rows = open(sys.argv[1] + "/steps.csv").read().split("\n")
assert rows == open(sys.argv[2] + "/steps.csv").read().split("\n")
assert any("rebalance-" in r for r in rows), "no re-balancing step"
lr = [float(r.split(",")[-1]) for r in rows[1:] if r]
# warmup(steps=3), then step(every=2, gamma=0.5): 8 steps (2 epochs of 4) at 0.01, then 0.005
want = [0.01 / 3, 0.02 / 3, 0.01] + [0.01] * 8 + [0.005]
assert len(lr) == 12 and all(abs(x - y) <= 1e-5 * y for x, y in zip(lr, want)), lr
PY

# 3. The flags override the .mmnet: Adam, a step schedule, no warm-up.
"$W/tiny" train --quiet --epochs 2 --optimizer adam --schedule step --step-every 1 --step-gamma 0.5 --lr-warmup-steps 0 \
    --beta1 0.8 --eps 1e-6 --policy vanilla --out "$W/flags" > /dev/null 2> "$W/flags.err" || { bad "train with flags"; cat "$W/flags.err"; }
python3 - "$W/flags" <<'PY' || bad "--optimizer adam --schedule step: not the learning rates they give"
import sys
lr = [float(r.split(",")[-1]) for r in open(sys.argv[1] + "/steps.csv").read().split("\n")[1:] if r]
assert lr == [0.01] * 4 + [0.005] * 4, lr
PY

# 4. Errors.
expect 2 "needs its period in epochs: --step-every" "$W/tiny" train --schedule step --out "$W/e1"
expect 2 "unknown\|is 'sgd', 'adam' or 'adamw', not 'rmsprop'" "$W/tiny" train --optimizer rmsprop --out "$W/e2"
expect 2 "\-\-beta2 is out of range: '1'" "$W/tiny" train --beta2 1 --out "$W/e3"
expect 1 "warm-up (1000 steps) is as long as the run or longer (3 epochs of 4 steps: 12)" "$W/tiny" train --lr-warmup-steps 1000 --out "$W/e4"
expect 1 "warm-up (3 epochs) is as long as the run" "$W/tiny" train --lr-warmup-epochs 3 --out "$W/e5"
expect 2 "give one of them" "$W/tiny" train --lr-warmup-epochs 1 --lr-warmup-steps 2 --out "$W/e6"
cp -r "$W/part" "$W/other"
expect 2 "\-\-optimizer sgd contradicts the run in $W/other, which has --optimizer adamw" "$W/tiny" train --resume "$W/other" --optimizer sgd --epochs 4

# A checkpoint whose optimizer state is not the one its metadata names.
cp -r "$W/part" "$W/other2"
python3 "$T/ckpt_edit.py" "$W/other2/last.ckpt" config.optimizer=sgd || bad "ckpt_edit"
expect 1 "other2/last.ckpt: corrupt checkpoint: no float32 tensor 'optimizer.momentum.x.net1.conv1.weight', which optimizer sgd" \
    "$W/tiny" train --resume "$W/other2" --epochs 4

[ $fail = 0 ] && say "optim e2e: all checks passed"
exit $fail
