#!/bin/bash
# policy_e2e.sh MMC TESTS WORKDIR — the balancing policies beyond the
# paper's in a built program (tests/optim/tiny.mmnet, synthetic data):
#  - modality_dropout: mmc info shows it; --drop-p 0 is the vanilla run,
#    bit for bit; a run with p > 0 trains, differs from vanilla, and is the
#    same with any number of loader threads and when resumed, which keeps
#    its p (which examples lose which input, and the zeroed batches
#    themselves: tests/runtime/test_loader.c);
#  - bad probabilities and a one-input model give clear errors;
#  - ogm_ge: steps.csv logs every step's ratio and coefficients, which are
#    the rule's (1 - tanh(alpha * rho) for the dominant branch, 1 for the
#    other); outside its epochs the run is the vanilla run bit for bit; a
#    resumed run is the uninterrupted one (the noise depends on the step);
#  - mmpareto, on a late-fusion net: steps.csv logs every step's cosines
#    and multi-modal weights, which follow the rule (1/2 when the cosine
#    is positive, else inside (0, 1)); its two passes leave BatchNorm's
#    running statistics as one vanilla step does and the loss weights as
#    written; its first loss is vanilla's; a resumed run is the
#    uninterrupted one; a model without a fusion head and a bad gamma
#    are refused.
set -u
MMC=$1; T=$2; W=$3
rm -rf "$W"; mkdir -p "$W"
. "$T/lib.sh"

sed 's/^  policy .*/  policy modality_dropout(p=0.5)/; s/adamw(lr=0.01, betas=\[0.9, 0.99\])/sgd(lr=0.05, momentum=0.9)/; /schedule/d' \
    "$T/optim/tiny.mmnet" > "$W/drop.mmnet"
"$MMC" info "$W/drop.mmnet" | grep -qF "policy     modality_dropout(p=0.5)" || { bad "mmc info: the policy"; "$MMC" info "$W/drop.mmnet"; }
"$MMC" build "$W/drop.mmnet" -o "$W/drop" || { bad "mmc build"; exit 1; }
P="$W/drop"
"$P" train --quiet --workers 0 --out "$W/p5" > /dev/null 2> "$W/p5.err" || { bad "train"; cat "$W/p5.err"; }
"$P" train --quiet --workers 3 --out "$W/p5w3" > /dev/null 2>&1 || bad "train --workers 3"
python3 "$T/same_run.py" "$W/p5" "$W/p5w3" 3 || bad "modality dropout: another run with 3 loader threads"
"$P" train --quiet --epochs 2 --out "$W/part" > /dev/null 2>&1 || bad "train --epochs 2"
"$P" train --quiet --resume "$W/part" --epochs 3 > /dev/null 2>&1 || bad "--resume"
python3 "$T/same_run.py" "$W/p5" "$W/part" 3 || bad "modality dropout: a resumed run is not the uninterrupted one"
expect 2 "contradicts the run in .*, which has --drop-p 0.5" "$P" train --resume "$W/part" --drop-p 0.2 --epochs 4
"$P" train --quiet --policy vanilla --out "$W/van" > /dev/null 2>&1 || bad "train --policy vanilla"
"$P" train --quiet --drop-p 0 --out "$W/p0" > /dev/null 2>&1 || bad "train --drop-p 0"
python3 "$T/same_run.py" "$W/van" "$W/p0" 3 || bad "modality_dropout with p 0 is not the vanilla run"
python3 "$T/same_run.py" "$W/van" "$W/p5" 3 2> /dev/null && bad "modality_dropout(p=0.5) trained exactly like vanilla"
"$P" eval --checkpoint "$W/p5/last.ckpt" > "$W/eval.txt" 2>&1 && grep -q "^test accuracy" "$W/eval.txt" || { bad "eval"; cat "$W/eval.txt"; }
# Each step of the vanilla and the p 0.5 runs: the same steps, logged as regular steps.
[ "$(cut -d, -f1-3 "$W/p5/steps.csv")" = "$(cut -d, -f1-3 "$W/van/steps.csv")" ] || bad "steps.csv: other steps than vanilla's"

expect 2 "out of range: '1.5'" "$P" train --drop-p 1.5 --out "$W/bad"
expect 2 "drop-p" "$P" train --drop-p nan --out "$W/bad"
sed '/input b/d; /branch y/d; /mmtm/d; s/mean(x, y)/x/; s/ce(x) + ce(y)/ce(x)/' "$W/drop.mmnet" > "$W/one.mmnet"
sed 's/^  policy .*/  policy vanilla/' "$W/one.mmnet" > "$W/one_vanilla.mmnet"
"$MMC" build "$W/one_vanilla.mmnet" -o "$W/one" > /dev/null || bad "mmc build (one input)"
expect 2 "policy modality_dropout zeroes one of the inputs of each example; model 'tiny' has only one" \
    "$W/one" train --policy modality_dropout --out "$W/bad"

sed 's/^  policy .*/  policy ogm_ge(alpha=0.3, start=1, end=1)/' "$W/drop.mmnet" > "$W/ogm.mmnet"
"$MMC" info "$W/ogm.mmnet" | grep -qF "policy     ogm_ge(alpha=0.3, start=1, end=1, ge=1)" || bad "mmc info: ogm_ge"
"$MMC" build "$W/ogm.mmnet" -o "$W/ogm" > /dev/null || { bad "mmc build ogm"; exit 1; }
"$W/ogm" train --quiet --out "$W/ogm1" > /dev/null 2>&1 || bad "train ogm_ge"
python3 - "$W/ogm1/steps.csv" <<'PY' || bad "ogm_ge: steps.csv's coefficients are not the rule's"
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 12, len(rows)
for r in rows:
    rho, c0, c1, ep = float(r["ogm_ratio"]), float(r["ogm_coeff_0"]), float(r["ogm_coeff_1"]), int(r["epoch"])
    want = (1, 1) if ep != 2 else (1 - math.tanh(0.3 * rho), 1) if rho > 1 else (1, 1 - math.tanh(0.3 / rho))
    assert abs(c0 - want[0]) < 1e-5 and abs(c1 - want[1]) < 1e-5, (r, want)
PY
"$W/ogm" train --quiet --ogm-start 3 --ogm-end 5 --out "$W/ogm_out" > /dev/null 2>&1 || bad "train ogm_ge (after the run)"
"$W/ogm" train --quiet --policy vanilla --out "$W/ogm_van" > /dev/null 2>&1 || bad "train vanilla"
cut -d, -f1-8 "$W/ogm_out/steps.csv" > "$W/ogm_out/s8" && cut -d, -f1-8 "$W/ogm_van/steps.csv" > "$W/ogm_van/s8"
cmp -s "$W/ogm_out/s8" "$W/ogm_van/s8" || bad "ogm_ge outside its epochs: other steps than vanilla's"
cmp -s "$W/ogm_out/last.ckpt" "$W/ogm_van/last.ckpt" 2> /dev/null || python3 - "$W" <<'PY' || bad "ogm_ge outside its epochs: not the vanilla parameters"
import json, struct, sys
def t(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
a, b = t(sys.argv[1] + "/ogm_out/last.ckpt"), t(sys.argv[1] + "/ogm_van/last.ckpt")
assert a == b, [k for k in a if a[k] != b.get(k)][:5]
PY
"$W/ogm" train --quiet --epochs 2 --out "$W/ogm_part" > /dev/null 2>&1 || bad "train ogm_ge --epochs 2"
"$W/ogm" train --quiet --resume "$W/ogm_part" --epochs 3 > /dev/null 2>&1 || bad "ogm_ge --resume"
python3 "$T/same_run.py" "$W/ogm1" "$W/ogm_part" 3 || bad "ogm_ge: a resumed run is not the uninterrupted one"
expect 2 "ogm-alpha" "$W/ogm" train --ogm-alpha -1 --out "$W/bad"

cat > "$W/late.mmnet" <<'EOF'
model late {
  input a [3, 8, 8]
  input b [1, 8, 8]
  block net(classes) {
    batchnorm
    conv(4, k=3, p=1) relu
    gap @feat
    linear(classes)
  }
  branch x(a) { net(3) }
  branch y(b) { net(3) }
  fuse fused { concat(x.feat, y.feat) linear(3) }
  predict fused
  loss ce(fused) + 0.5 * ce(x) + 0.5 * ce(y)
}
train {
  data synthetic(train=64, test=32)
  optimizer sgd(lr=0.05, momentum=0.9)
  batch 16
  epochs 3
  policy mmpareto(gamma=1.5)
}
EOF
"$MMC" info "$W/late.mmnet" | grep -qF "policy     mmpareto(gamma=1.5)" || bad "mmc info: mmpareto"
"$MMC" build "$W/late.mmnet" -o "$W/late" > /dev/null || { bad "mmc build late"; exit 1; }
"$W/late" train --quiet --out "$W/mmp" > /dev/null 2>&1 || bad "train mmpareto"
python3 - "$W/mmp/steps.csv" <<'PY' || bad "mmpareto: steps.csv's cosines and weights do not follow the rule"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 12, len(rows)
conflicts = 0
for r in rows:
    for k in (0, 1):
        c, a = float(r["mmp_cos_%d" % k]), float(r["mmp_alpha_%d" % k])
        assert -1 <= c <= 1, r
        assert a == 0.5 if c > 0 else 0 < a < 1, r
        conflicts += c <= 0
assert conflicts > 0, "no step in conflict: the min-norm weights were not exercised"
PY
"$W/late" train --quiet --epochs 2 --out "$W/mmp_part" > /dev/null 2>&1 || bad "train mmpareto --epochs 2"
"$W/late" train --quiet --resume "$W/mmp_part" --epochs 3 > /dev/null 2>&1 || bad "mmpareto --resume"
python3 "$T/same_run.py" "$W/mmp" "$W/mmp_part" 3 || bad "mmpareto: a resumed run is not the uninterrupted one"
# One step each: the same running statistics (counted once), the loss weights as written, other parameters.
"$W/late" train --quiet --epochs 1 --limit-train 16 --out "$W/mmp1" > /dev/null 2>&1 || bad "train mmpareto, one step"
"$W/late" train --quiet --epochs 1 --limit-train 16 --policy vanilla --out "$W/van1" > /dev/null 2>&1 || bad "train vanilla, one step"
python3 - "$W" <<'PY' || bad "mmpareto: one step's state is not one vanilla step's"
import json, struct, sys, csv
def t(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
a, b = t(sys.argv[1] + "/mmp1/last.ckpt"), t(sys.argv[1] + "/van1/last.ckpt")
stats = [k for k in a if "running" in k]
assert len(stats) == 4 and all(a[k] == b[k] for k in stats), [k for k in stats if a[k] != b[k]]
w = {k: struct.unpack("<f", a[k])[0] for k in a if k.startswith("loss.weight.")}
assert w == {"loss.weight.fused": 1.0, "loss.weight.x": 0.5, "loss.weight.y": 0.5}, w
assert a["x.net1.conv1.weight"] != b["x.net1.conv1.weight"], "the encoder trained as vanilla"
rows = [list(csv.DictReader(open(sys.argv[1] + d + "/steps.csv"))) for d in ("/mmp1", "/van1")]
assert [len(r) for r in rows] == [1, 1], "--limit-train 16 at batch 16 is not one step on synthetic data: %s" % [len(r) for r in rows]
l = [float(r[0]["loss"]) for r in rows]
assert abs(l[0] - l[1]) < 1e-5 * abs(l[1]), l
PY
expect 2 "mmp-gamma" "$W/late" train --mmp-gamma 0 --out "$W/bad"
expect 2 "policy mmpareto integrates a multi-modal loss (a fusion head's cross-entropy) .* model 'tiny' has no fusion head" \
    "$W/drop" train --policy mmpareto --out "$W/bad"
exit $fail
