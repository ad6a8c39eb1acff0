#!/bin/bash
# agm_e2e.sh MMC TESTS WORKDIR — the agm policy in built programs, on the two
# kinds of net (tests/agm/mmtm.mmnet: MMTM, the multi-modal output is the
# mean of the branch logits; tests/agm/late.mmnet: a fusion head, whose
# inputs are declared in the other order than the branches read them):
#  - mmc info shows the policy; steps.csv logs every step's scores, ratios,
#    running means and coefficients, and they are the rule's: the running
#    means are those of the logged scores of the steps before, the ratios
#    exp(s_other - s_k), the coefficients exp(alpha (exp(avg_other - avg_k)
#    - ratio_k)) in epochs start..end and 1 outside them;
#  - one SGD step from the same weights: each branch's parameters move by its
#    coefficient times the vanilla step, the shared ones (MMTM, fusion head)
#    and the BatchNorm running statistics exactly as vanilla's (the passes
#    with a modality zeroed change no state);
#  - the authors' safeguard: when a prediction head's weight gradient leaves
#    [-clip, clip], every gradient is scaled to norm clip, by the logged
#    factor;
#  - outside its epochs (and without the safeguard) the run is the vanilla
#    run, bit for bit;
#  - a resumed run is the uninterrupted one (the running means are in
#    last.ckpt), and a corrupt running mean in it is refused;
#  - bad options give clear errors.
set -u
MMC=$1; T=$2; W=$3
rm -rf "$W"; mkdir -p "$W"
. "$T/lib.sh"

"$MMC" info "$T/agm/mmtm.mmnet" | grep -qF "policy     agm(alpha=1, start=1, end=2, clip=1)" || { bad "mmc info: the policy"; "$MMC" info "$T/agm/mmtm.mmnet"; }
for net in mmtm late; do
    P=$W/$net
    "$MMC" build "$T/agm/$net.mmnet" -o "$P" > /dev/null || { bad "mmc build $net"; continue; }
    "$P" train --quiet --out "$W/$net.run" > /dev/null 2> "$W/$net.err" || { bad "$net: train"; cat "$W/$net.err"; }
    python3 - "$W/$net.run/steps.csv" 1 1 2 <<'PY' || bad "$net: steps.csv's AGM columns are not the rule's"
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
alpha, start, end = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
assert len(rows) == 12, len(rows)
avg = [0.0, 0.0]
modulated = 0
for i, r in enumerate(rows):
    s = [float(r["agm_score_0"]), float(r["agm_score_1"])]
    a = [float(r["agm_avg_0"]), float(r["agm_avg_1"])]
    assert all(abs(a[k] - avg[k]) < 1e-6 for k in range(2)), (i, a, avg)
    ratio = [math.exp(s[1] - s[0]), math.exp(s[0] - s[1])]
    assert all(abs(float(r["agm_ratio_%d" % k]) - ratio[k]) < 1e-6 for k in range(2)), (i, r, ratio)
    want = [math.exp(alpha * (math.exp(a[1 - k] - a[k]) - ratio[k])) for k in range(2)]
    if not start <= int(r["epoch"]) - 1 <= end: want = [1, 1]
    else: modulated += 1
    got = [float(r["agm_coeff_0"]), float(r["agm_coeff_1"])]
    assert all(abs(got[k] - want[k]) < 1e-6 * max(1, want[k]) for k in range(2)), (i, got, want)
    assert all(0 < x < -math.log(1e-8) + 1e-6 for x in s), s
    avg = [(avg[k] * i + s[k]) / (i + 1) for k in range(2)]
assert modulated == 8 and any(abs(float(r["agm_coeff_0"]) - 1) > 1e-4 for r in rows), "no step was modulated"
PY
    # Resumed: the same run (the running means come back from last.ckpt).
    "$P" train --quiet --epochs 2 --out "$W/$net.part" > /dev/null 2>&1 || bad "$net: train --epochs 2"
    "$P" train --quiet --resume "$W/$net.part" --epochs 3 > /dev/null 2>&1 || bad "$net: --resume"
    python3 "$T/same_run.py" "$W/$net.run" "$W/$net.part" 3 || bad "$net: a resumed run is not the uninterrupted one"
    # Outside its epochs: vanilla, bit for bit (the zeroed passes change nothing).
    "$P" train --quiet --agm-start 5 --agm-end 9 --agm-clip 0 --out "$W/$net.out" > /dev/null 2>&1 || bad "$net: train outside the epochs"
    "$P" train --quiet --policy vanilla --out "$W/$net.van" > /dev/null 2>&1 || bad "$net: train vanilla"
    for d in out van; do cut -d, -f1-8 "$W/$net.$d/steps.csv" > "$W/$net.$d/s8"; done
    cmp -s "$W/$net.out/s8" "$W/$net.van/s8" || bad "$net: agm outside its epochs: other steps than vanilla's"
    python3 - "$W/$net.out/last.ckpt" "$W/$net.van/last.ckpt" <<'PY' || bad "$net: agm outside its epochs: not vanilla's parameters and state"
import json, struct, sys
def t(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items() if not k.startswith(("__", "train."))}
a, b = t(sys.argv[1]), t(sys.argv[2])
assert a == b, [k for k in a if a[k] != b.get(k)][:5]
PY
    # One step of plain SGD from the same weights, agm against vanilla.
    ONE="train --quiet --init $W/$net.van/last.ckpt --batch 64 --epochs 1 --momentum 0"
    "$P" $ONE --policy vanilla --out "$W/$net.v1" > /dev/null 2>&1 || bad "$net: one vanilla step"
    "$P" $ONE --agm-alpha 20 --agm-start 0 --agm-clip 0 --out "$W/$net.a1" > /dev/null 2>&1 || bad "$net: one agm step"
    "$P" $ONE --agm-alpha 20 --agm-start 0 --agm-clip 1e-4 --out "$W/$net.c1" > /dev/null 2>&1 || bad "$net: one clipped agm step"
    python3 - "$W/$net.van/last.ckpt" "$W/$net.a1" "$W/$net.c1" <<'PY' || bad "$net: one step: the clipped update is not the logged factor times the unclipped one"
import array, csv, json, struct, sys
def t(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
w0, a, c = t(sys.argv[1]), t(sys.argv[2] + "/last.ckpt"), t(sys.argv[3] + "/last.ckpt")
ra, rc = (list(csv.DictReader(open(d + "/steps.csv")))[0] for d in sys.argv[2:])
assert float(ra["agm_clip"]) == 1, ra["agm_clip"]
f = float(rc["agm_clip"])
assert 0 < f < 0.5, f
params = [k[len("optimizer.momentum."):] for k in a if k.startswith("optimizer.momentum.")]
assert len(params) > 10, params
for k in params:
    f0, fa, fc = (array.array("f", x[k]) for x in (w0, a, c))
    for i in range(len(f0)):
        want = f * (fa[i] - f0[i])
        assert abs((fc[i] - f0[i]) - want) <= 1e-4 * abs(want) + 2.5e-7 * max(1, abs(f0[i])), (k, i, fc[i] - f0[i], want)
print("clipped by", f)
PY
    python3 - "$W/$net.van/last.ckpt" "$W/$net.v1" "$W/$net.a1" <<'PY' || bad "$net: one step: the branches' updates are not the coefficients times vanilla's"
import csv, json, struct, sys
import array
def t(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: (v["dtype"], b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]) for k, v in h.items() if k != "__metadata__"}
w0, v, a = t(sys.argv[1]), t(sys.argv[2] + "/last.ckpt"), t(sys.argv[3] + "/last.ckpt")
rows = list(csv.DictReader(open(sys.argv[3] + "/steps.csv")))
assert len(rows) == 1, len(rows)
c = [float(rows[0]["agm_coeff_0"]), float(rows[0]["agm_coeff_1"])]
assert abs(c[0] - 1) > 0.02 and abs(c[1] - 1) > 0.02, c
checked = 0
for k, (dt, vb) in v.items():
    if k.startswith(("optimizer.", "train.")): continue
    if k.startswith(("x.", "y.")) and not k.endswith(("running_mean", "running_var")):
        coeff = c[0] if k.startswith("x.") else c[1]
        f0, fv, fa = (array.array("f", x[k][1]) for x in (w0, v, a))
        for i in range(len(f0)):
            want = coeff * (fv[i] - f0[i])
            assert abs((fa[i] - f0[i]) - want) <= 1e-4 * abs(want) + 2e-7, (k, i, fa[i] - f0[i], want)
        checked += 1
    else:   # shared parameters, running statistics, loss weights: vanilla's, bit for bit
        assert a[k][1] == vb, k
print("one step:", checked, "branch tensors scaled by", c)
PY
done

# A corrupt running mean in last.ckpt is refused, naming it.
python3 - "$W/mmtm.part/last.ckpt" "$W/corrupt.ckpt" <<'PY'
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read()); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
o = 8 + n + h["train.agm_avg"]["data_offsets"][0]
b[o:o + 8] = struct.pack("<d", -3.0)
open(sys.argv[2], "wb").write(b)
PY
mkdir -p "$W/corrupt" && cp "$W/mmtm.part/"* "$W/corrupt/" 2> /dev/null && cp "$W/corrupt.ckpt" "$W/corrupt/last.ckpt"
expect 1 "corrupt checkpoint: train.agm_avg\[0\] is -3" "$W/mmtm" train --quiet --resume "$W/corrupt" --epochs 3
expect 2 "agm-alpha" "$W/mmtm" train --agm-alpha -1 --out "$W/bad"
expect 2 "agm-alpha" "$W/mmtm" train --agm-alpha nan --out "$W/bad"
expect 2 "contradicts the run in .*" "$W/mmtm" train --resume "$W/mmtm.part" --agm-alpha 3 --epochs 4
exit $fail
