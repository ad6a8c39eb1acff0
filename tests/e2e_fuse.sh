#!/bin/bash
# e2e_fuse.sh MMC ROOT WORKDIR — late-fusion heads end to end, on a few
# thousand colored-and-gray Fashion-MNIST examples:
#  - examples/cgmnist_late.mmnet (concat head, loss ce(fused) + 0.5 ce(c) +
#    0.5 ce(g)) and small film and gated nets train: the loss falls;
#  - summary.json reports the fused test accuracy and each branch head's;
#  - branches without heads of their own (late_headless: loss ce(fused)
#    only) train, and report no accuracy of their own (null, '-');
#  - eval reads the checkpoint; util refuses a net without MMTMs, clearly;
#  - the loss weights are state tensors the program reads at every step
#    (loss.weight.NAME in the checkpoint; set to 0 there, the loss is 0);
#  - RUBi masks the fused logits and trains.
set -u
MMC=$1; ROOT=$2; W=$3
DATA=${MMNET_TEST_DATA:-/usr/share/datasets/fashion-mnist}
rm -rf "$W"; mkdir -p "$W"
. "$(dirname "$0")/lib.sh"

if [ ! -d "$DATA" ]; then
    say "SKIP: no data in $DATA (install dataset-fashion-mnist)"; exit 77
fi

COMMON="--data $DATA --limit-train 2000 --limit-test 500 --val 500 --batch 64 --lr 0.02 --momentum 0.9 --quiet --seed 3"
train_loss() { python3 -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print(r[$2]['train_loss'])" "$1"; }
for net in "$ROOT/examples/cgmnist_late.mmnet" "$ROOT/tests/e2e/late_film.mmnet" "$ROOT/tests/e2e/late_gated.mmnet" \
           "$ROOT/tests/e2e/late_headless.mmnet"; do
    name=$(basename "$net" .mmnet)
    "$MMC" build "$net" -o "$W/$name" || { bad "mmc build $name"; continue; }
    "$W/$name" train $COMMON --epochs 2 --out "$W/${name}_run" > /dev/null 2> "$W/$name.err" || { bad "$name train"; cat "$W/$name.err"; continue; }
    first=$(train_loss "$W/${name}_run/metrics.jsonl" 0)
    last=$(train_loss "$W/${name}_run/metrics.jsonl" -1)
    acc=$(json "$W/${name}_run/summary.json" "d['test_acc']")
    br=$(json "$W/${name}_run/summary.json" "d['branch_test_acc']")
    say "$name: train loss $first -> $last, fused test accuracy $acc, branch heads $br"
    python3 -c "import sys; sys.exit(0 if $last < 0.92 * $first else 1)" || bad "$name: the training loss did not fall ($first -> $last)"
    json "$W/${name}_run/summary.json" "len(d['branch_test_acc']) == 2 or exit(1)" > /dev/null || bad "$name: summary.json has no branch accuracies"
done

# eval reads the late net's checkpoint: the fused accuracy and each branch head's.
expect 0 "branch g" "$W/cgmnist_late" eval --checkpoint "$W/cgmnist_late_run/best.ckpt" --data "$DATA"
# No MMTM, so no cut variant: util says so instead of reporting zeros.
expect 1 "needs a model with MMTMs" "$W/cgmnist_late" util --checkpoint "$W/cgmnist_late_run/best.ckpt" --data "$DATA"
# Headless branches: no accuracy of their own, in the summary and in eval.
json "$W/late_headless_run/summary.json" "d['branch_test_acc'] == [None, None] or exit(1)" > /dev/null ||
    bad "late_headless: branch_test_acc is not [null, null]"
expect 0 "branch c  *-  (no head of its own)" "$W/late_headless" eval --checkpoint "$W/late_headless_run/best.ckpt" --data "$DATA"
expect 2 "head of its own" "$W/late_headless" train $COMMON --epochs 1 --policy rubi:c --out "$W/rubi_headless"
# predict: the fused head's class and probabilities, empty fields (null) for the headless branches.
"$W/late_headless" predict --checkpoint "$W/late_headless_run/best.ckpt" --data "$DATA" -o "$W/hl.csv" 2> "$W/hl.err" || { bad "predict (headless)"; cat "$W/hl.err"; }
"$W/late_headless" predict --checkpoint "$W/late_headless_run/best.ckpt" --data "$DATA" -o "$W/hl.jsonl" 2> "$W/hl.err" || { bad "predict (headless, jsonl)"; cat "$W/hl.err"; }
python3 - "$W/hl.csv" "$W/hl.jsonl" <<'PY' || bad "predict on a net with headless branches"
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert rows and all(r["c_pred"] == "" and r["g_pred"] == "" and r["pred"] != "" for r in rows), rows[:2]
assert all(abs(sum(float(r["p%d" % c]) for c in range(10)) - 1) < 1e-4 for r in rows)
j = [json.loads(l) for l in open(sys.argv[2])]
assert len(j) == len(rows) and all(x["branches"]["c"]["pred"] is None and x["pred"] == int(r["pred"]) for x, r in zip(j, rows))
PY

# The weights are in the checkpoint as written, and the program reads them
# from there: all set to 0, the resumed epoch's loss is 0.
json_ckpt() { python3 -c "
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
s, e = h[sys.argv[2]]['data_offsets']; print(struct.unpack('<f', b[8 + n + s:8 + n + e])[0])" "$@"; }
[ "$(json_ckpt "$W/late_film_run/last.ckpt" loss.weight.c)" = 0.5 ] || bad "last.ckpt has no loss.weight.c of 0.5"
[ "$(json_ckpt "$W/late_film_run/last.ckpt" loss.weight.fused)" = 1.0 ] || bad "last.ckpt has no loss.weight.fused of 1"
cp -r "$W/late_film_run" "$W/zero"
python3 "$ROOT/tests/ckpt_edit.py" "$W/zero/last.ckpt" loss.weight.fused@0=0 loss.weight.c@0=0 loss.weight.g@0=0
"$W/late_film" train --quiet --epochs 3 --resume "$W/zero" > /dev/null 2> "$W/zero.err" || { bad "resume with zero weights"; cat "$W/zero.err"; }
zl=$(train_loss "$W/zero/metrics.jsonl" -1)
say "late_film with every loss weight set to 0 in its checkpoint: next epoch's loss $zl"
python3 -c "import sys; sys.exit(0 if $zl == 0 else 1)" || bad "the loss with zero weights is $zl, not 0"

# RUBi's mask applies to the fused logits.
"$W/late_gated" train $COMMON --epochs 1 --policy rubi:c --out "$W/rubi" > /dev/null 2> "$W/rubi.err" ||
    { bad "late_gated with rubi"; cat "$W/rubi.err"; }
grep -q ",rubi," "$W/rubi/steps.csv" || bad "the rubi run took no rubi step"
exit $fail
