#!/bin/bash
# gblend_e2e.sh MMC TESTS WORKDIR — the gblend policy in a built program
# (tests/optim/tiny.mmnet with a plain loss ce(x) + ce(y), and a late-fusion
# variant with a fused head; synthetic data):
#  - the plain sum keeps weight states under gblend; the first super-epoch
#    trains with the .mmnet's weights divided by their sum; steps.csv logs
#    every step's weights, metrics.jsonl each estimate's losses, and the
#    weights it sets are the rule's (recomputed here from the logged losses);
#  - the weights change, and the run with them differs from vanilla; the
#    same program run with --policy vanilla is the vanilla program's run,
#    bit for bit (the weight states multiply by 1);
#  - a resumed run is the uninterrupted one, in and at the end of a super-epoch;
#  - two data-parallel ranks train as one process does (when MPI is there);
#  - errors: no validation split, a program whose loss keeps no weights,
#    a bad --gblend-every, a fused head's term that is not the prediction.
set -u
MMC=$1; T=$2; W=$3
rm -rf "$W"; mkdir -p "$W"
. "$T/lib.sh"

base() { sed "s/^  policy .*/  policy $1/; s/adamw(lr=0.01, betas=\[0.9, 0.99\])/sgd(lr=0.05, momentum=0.9)/; /schedule/d" "$T/optim/tiny.mmnet"; }
base "gblend(every=1)" > "$W/gb.mmnet"
base vanilla > "$W/van.mmnet"
"$MMC" info "$W/gb.mmnet" | grep -qF "policy     gblend(every=1)" || bad "mmc info: the policy"
"$MMC" build "$W/gb.mmnet" -o "$W/gb" > /dev/null || { bad "mmc build"; exit 1; }
"$MMC" build "$W/van.mmnet" -o "$W/van" > /dev/null || { bad "mmc build (vanilla)"; exit 1; }
"$W/gb" train --quiet --epochs 4 --out "$W/g1" > /dev/null 2> "$W/g1.err" || { bad "train"; cat "$W/g1.err"; }

# The weights of every step, and each estimate against the rule.
cat > "$W/check.py" <<'PY'
import csv, json, sys
run, init = sys.argv[1], [float(v) for v in sys.argv[2].split(",")]
rows = list(csv.DictReader(open(run + "/steps.csv")))
names = [k[2:] for k in rows[0] if k.startswith("w_")]
assert len(names) == len(init), names
mets = [json.loads(l) for l in open(run + "/metrics.jsonl")]
w = dict(zip(names, init))                     # the weights of the first super-epoch
prev = None
for m in mets:
    for r in rows:
        if int(r["epoch"]) == m["epoch"]:
            got = [float(r["w_" + n]) for n in names]
            assert all(abs(got[i] - w[n]) < 1e-6 for i, n in enumerate(names)), (m["epoch"], got, w)
            assert abs(sum(got) - 1) < 1e-5, got
    g = m["gblend"]
    if prev is not None:                       # (the first estimate's start is not logged)
        raw = {}
        for n in names:
            dG = prev["val_loss"][n] - g["val_loss"][n]
            dO = (g["val_loss"][n] - g["train_loss"][n]) - (prev["val_loss"][n] - prev["train_loss"][n])
            assert abs(dG - g["dG"][n]) < 1e-9 and abs(dO - g["dO"][n]) < 1e-9, (n, dG, dO, g)
            raw[n] = max(dG, 0) / max(dO * dO, 1e-8)
        s = sum(raw.values())
        assert g["updated"] == (s > 0), g
        if s > 0: w = {n: raw[n] / s for n in names}
        assert all(abs(m["loss_weights"][n] - w[n]) < 1e-6 for n in names), (m["loss_weights"], w)
    w = m["loss_weights"]
    prev = g
print(" ".join("%s %s" % (m["epoch"], m["loss_weights"]) for m in mets))
PY
python3 "$W/check.py" "$W/g1" 0.5,0.5 > "$W/g1.w" || bad "gblend: the logged weights are not the rule's"
grep -q "^gblend: loss weights x " "$W/g1.err" || bad "gblend: no line with the weights on stderr"
[ "$(cut -d, -f9- "$W/g1/steps.csv" | sed 1d | sort -u | wc -l)" -gt 1 ] || bad "gblend: the weights never changed"

# The same program under vanilla is the vanilla program, bit for bit; gblend is not.
"$W/gb" train --quiet --epochs 4 --policy vanilla --out "$W/gv" > /dev/null 2>&1 || bad "train --policy vanilla"
"$W/van" train --quiet --epochs 4 --out "$W/v" > /dev/null 2>&1 || bad "train (vanilla program)"
cmp -s "$W/gv/steps.csv" "$W/v/steps.csv" || bad "the gblend program under --policy vanilla: other steps than the vanilla program's"
python3 - "$W" <<'PY' || bad "the gblend program under --policy vanilla: other parameters than the vanilla program's"
import json, struct, sys
def t(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
a, b = t(sys.argv[1] + "/gv/last.ckpt"), t(sys.argv[1] + "/v/last.ckpt")
assert set(a) - set(b) == {"loss.weight.x", "loss.weight.y"}, set(a) ^ set(b)
assert all(a[k] == b[k] for k in b), [k for k in b if a[k] != b[k]][:5]
PY
[ "$(cut -d, -f4 "$W/g1/steps.csv")" != "$(cut -d, -f4 "$W/v/steps.csv")" ] || bad "gblend trained exactly like vanilla"

# Resumed: at the end of a super-epoch (every 1) and within one (every 2).
"$W/gb" train --quiet --epochs 2 --out "$W/p1" > /dev/null 2>&1 || bad "train --epochs 2"
"$W/gb" train --quiet --resume "$W/p1" --epochs 4 > /dev/null 2>&1 || bad "--resume"
python3 "$T/same_run.py" "$W/g1" "$W/p1" 4 || bad "gblend: a resumed run is not the uninterrupted one"
"$W/gb" train --quiet --epochs 4 --gblend-every 2 --out "$W/g2" > /dev/null 2>&1 || bad "train --gblend-every 2"
python3 "$W/check.py" "$W/g2" 0.5,0.5 > /dev/null 2>&1 && bad "every 2: the weights changed every epoch"
"$W/gb" train --quiet --epochs 3 --gblend-every 2 --out "$W/p2" > /dev/null 2>&1 || bad "train --gblend-every 2 --epochs 3"
"$W/gb" train --quiet --resume "$W/p2" --epochs 4 > /dev/null 2>&1 || bad "--resume (every 2)"
python3 "$T/same_run.py" "$W/g2" "$W/p2" 4 || bad "gblend every 2: a resumed run is not the uninterrupted one"
expect 2 "contradicts the run in .*gblend-every" "$W/gb" train --resume "$W/p2" --gblend-every 3 --epochs 5

# Late fusion: the fused head is the prediction and a term of its own.
sed 's/gap$/gap @f/; s/^  mmtm.*/  fuse both { concat(x.f, y.f) linear(3) }/; s/predict mean(x, y)/predict both/; s/loss ce(x) + ce(y)/loss ce(both) + 0.5 * ce(x) + 0.5 * ce(y)/' \
    "$W/gb.mmnet" > "$W/late.mmnet"
"$MMC" build "$W/late.mmnet" -o "$W/late" > /dev/null || { bad "mmc build (late fusion)"; exit 1; }
"$W/late" train --quiet --out "$W/l1" > /dev/null 2>&1 || bad "train (late fusion)"
head -1 "$W/l1/steps.csv" | grep -q ",w_both,w_x,w_y$" || bad "late fusion: steps.csv's weight columns"
python3 "$W/check.py" "$W/l1" 0.5,0.25,0.25 > /dev/null || bad "late fusion: the logged weights are not the rule's"

# Data-parallel: two ranks measure their shards and sum them, and train as one process does.
if command -v mpirun > /dev/null && "$MMC" build "$W/gb.mmnet" -o "$W/gbmpi" --mpi > /dev/null 2>&1; then
    OMP_NUM_THREADS=1 timeout 120 mpirun --oversubscribe --allow-run-as-root -np 2 "$W/gbmpi" train --quiet --threads 1 --epochs 4 \
        --out "$W/mpi2" > /dev/null 2>&1 || bad "gblend under mpirun -np 2"
    python3 "$T/mpi_close.py" "$W/g1" "$W/mpi2" 1e-5 > /dev/null || bad "gblend: 2 ranks are not the one-process run"
fi

# Errors.
DATA=${MMNET_TEST_DATA:-/usr/share/datasets/fashion-mnist}
if [ -d "$DATA" ]; then   # synthetic data always has its validation split: the colored-and-gray set
    sed 's/data synthetic([^)]*)/data colored_gray(val=100)/; s/input a \[3, 8, 8\]/input color [3, 28, 28]/; s/input b \[1, 8, 8\]/input gray [1, 28, 28]/; s/x(a)/x(color)/; s/y(b)/y(gray)/; s/net(3)/net(10)/' \
        "$W/gb.mmnet" > "$W/cg.mmnet"
    "$MMC" build "$W/cg.mmnet" -o "$W/cg" > /dev/null || bad "mmc build (colored_gray)"
    expect 1 "validation split, and this run has none" "$W/cg" train --data "$DATA" --limit-train 300 --val 0 --out "$W/bad"
fi
expect 1 "loss keeps none.*policy gblend" "$W/van" train --policy gblend --out "$W/bad"
expect 2 "gblend-every" "$W/gb" train --gblend-every 0 --out "$W/bad"
sed 's/^  policy .*/  policy vanilla/; s/predict both/predict mean(x, y)/' "$W/late.mmnet" > "$W/late_mean.mmnet"
"$MMC" build "$W/late_mean.mmnet" -o "$W/late_mean" > /dev/null || bad "mmc build (late fusion, predict mean)"
expect 1 "fusion head 'both' is not the prediction (model 'tiny' predicts mean(x, y))" "$W/late_mean" train --policy gblend --out "$W/bad"
exit $fail
