#!/bin/bash
# emu_train.sh MMC PROG_EMU MMNET WORKDIR — the CUDA training program (its
# model compiled for CUDA, run on the CPU emulation of CUDA, tests/cuda_emu)
# against the C program built from the same .mmnet: the same steps, step
# kinds and losses to float32 tolerance, and the same accuracy. The CUDA
# program reads its batches into pinned memory and copies each one ahead
# on a copy stream while the step before runs; the emulation runs that
# stream's copies only when a step waits for them, so a step that took its
# batch before the copy, or a batch buffer reused before its copy ran,
# shows here as different losses. Then the same with ogm_ge and agm, whose
# steps take the gradients through the host.
set -u
MMC=$1; EMU=$2; MMNET=$3; W=$4
rm -rf "$W"; mkdir -p "$W"
. "$(dirname "$0")/lib.sh"

"$MMC" build "$MMNET" -o "$W/cprog" > /dev/null || { bad "mmc build"; exit 1; }
# Batches decoded on two worker threads into the loader's pinned buffers.
for p in c emu; do
    prog=$W/cprog; [ $p = emu ] && prog=$EMU
    "$prog" train --workers 2 --quiet --out "$W/$p" > "$W/$p.out" 2>&1 || { bad "$p train"; tail -5 "$W/$p.out"; }
done
python3 - "$W/c" "$W/emu" <<'PY' || bad "the CUDA program's run differs from the C program's"
import csv, json, sys
a, b = (list(csv.DictReader(open(d + "/steps.csv"))) for d in sys.argv[1:])
assert len(a) == len(b) >= 12, (len(a), len(b))
for r, s in zip(a, b):
    assert r["kind"] == s["kind"], (r, s)
    la, lb = float(r["loss"]), float(s["loss"])
    assert abs(la - lb) <= 2e-3 * max(1.0, abs(la)), (r["step"], la, lb)
kinds = {r["kind"] for r in a}
assert len(kinds) > 1, "no re-balancing step was taken: %s" % kinds
ma, mb = (json.loads(open(d + "/metrics.jsonl").readlines()[-1]) for d in sys.argv[1:])
assert abs(ma["test_acc"] - mb["test_acc"]) <= 1.5 / 16, (ma["test_acc"], mb["test_acc"])
print("steps", len(a), "kinds", sorted(kinds), "final loss", a[-1]["loss"], b[-1]["loss"])
PY
# A policy with a host hook between the backward pass and the update
# (ogm_ge: gradients to the host, modulated, noise added, and back): the same
# ratios, coefficients and losses as the C program's.
for p in c emu; do
    prog=$W/cprog; [ $p = emu ] && prog=$EMU
    "$prog" train --quiet --policy ogm_ge --ogm-alpha 0.5 --out "$W/ogm_$p" > "$W/ogm_$p.out" 2>&1 || { bad "$p train ogm_ge"; tail -5 "$W/ogm_$p.out"; }
done
python3 - "$W/ogm_c" "$W/ogm_emu" <<'PY' || bad "ogm_ge: the CUDA program's run differs from the C program's"
import csv, sys
a, b = (list(csv.DictReader(open(d + "/steps.csv"))) for d in sys.argv[1:])
assert len(a) == len(b) >= 12, (len(a), len(b))
for r, s in zip(a, b):
    for k in ("loss", "ogm_ratio", "ogm_coeff_0", "ogm_coeff_1"):
        x, y = float(r[k]), float(s[k])
        assert abs(x - y) <= 2e-3 * max(1.0, abs(x)), (r["step"], k, x, y)
assert any(float(r["ogm_coeff_0"]) < 1 for r in a) and any(float(r["ogm_coeff_1"]) < 1 for r in a), "one branch was never modulated"
print("ogm_ge: steps", len(a), "final loss", a[-1]["loss"], b[-1]["loss"])
PY
# eval reads batches through the same path.
"$EMU" eval --checkpoint "$W/emu/last.ckpt" > "$W/eval.out" 2>&1 || { bad "emu eval"; tail -5 "$W/eval.out"; }
grep -q "accuracy" "$W/eval.out" || { bad "emu eval printed no accuracy"; cat "$W/eval.out"; }
# AGM: two evaluation passes with one input zeroed before each step (the
# zeroed input is another batch than the one copied ahead), then the
# gradients through the host hook: the same scores, coefficients and losses.
for p in c emu; do
    prog=$W/cprog; [ $p = emu ] && prog=$EMU
    "$prog" train --quiet --policy agm --agm-alpha 0.5 --out "$W/agm_$p" > "$W/agm_$p.out" 2>&1 || { bad "$p train agm"; tail -5 "$W/agm_$p.out"; }
done
python3 - "$W/agm_c" "$W/agm_emu" <<'PY' || bad "agm: the CUDA program's run differs from the C program's"
import csv, sys
a, b = (list(csv.DictReader(open(d + "/steps.csv"))) for d in sys.argv[1:])
assert len(a) == len(b) >= 12, (len(a), len(b))
for r, s in zip(a, b):
    for k in ("loss", "agm_score_0", "agm_score_1", "agm_avg_0", "agm_coeff_0", "agm_coeff_1", "agm_clip"):
        x, y = float(r[k]), float(s[k])
        assert abs(x - y) <= 2e-3 * max(1.0, abs(x)), (r["step"], k, x, y)
# the zeroed passes differ from the full one: the two modalities' scores differ
assert any(abs(float(r["agm_score_0"]) - float(r["agm_score_1"])) > 1e-3 for r in a), "the two scores are equal: an input was not zeroed"
assert any(abs(float(r["agm_coeff_0"]) - 1) > 1e-3 for r in a), "agm never modulated"
print("agm: steps", len(a), "final loss", a[-1]["loss"], b[-1]["loss"])
PY
[ $fail = 0 ] && echo "emu_train: the CUDA program trains as the C program does"
exit $fail
