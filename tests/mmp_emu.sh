#!/bin/bash
# mmp_emu.sh MMC PROG_EMU MMNET WORKDIR — the mmpareto policy in the CUDA
# training program (tests/e2e/cuda_gblend.mmnet compiled for CUDA, run on
# the CPU emulation of CUDA) against the C program built from the same
# .mmnet. Each step runs twice on the device (the fusion head's term, then
# the branches' terms), both gradients go to the host, the integrated one
# comes back: the same cosines, weights and losses as the C program's, to
# float32 tolerance, and the same BatchNorm running statistics (they
# advance once per step).
set -u
MMC=$1; EMU=$2; MMNET=$3; W=$4
rm -rf "$W"; mkdir -p "$W"
. "$(dirname "$0")/lib.sh"

"$MMC" build "$MMNET" -o "$W/cprog" > /dev/null || { bad "mmc build"; exit 1; }
for p in c emu; do
    prog=$W/cprog; [ $p = emu ] && prog=$EMU
    "$prog" train --quiet --policy mmpareto --epochs 6 --out "$W/$p" > "$W/$p.out" 2>&1 || { bad "$p train"; tail -5 "$W/$p.out"; }
done
python3 - "$W/c" "$W/emu" <<'PY' || bad "the CUDA program's mmpareto run differs from the C program's"
import csv, sys
a, b = (list(csv.DictReader(open(d + "/steps.csv"))) for d in sys.argv[1:])
assert len(a) == len(b) == 12, (len(a), len(b))
cols = ["loss"] + [k for k in a[0] if k.startswith("mmp_")]
assert len(cols) == 5, cols
for r, s in zip(a, b):
    for c in cols:
        x, y = float(r[c]), float(s[c])
        assert abs(x - y) <= 2e-3 * max(1.0, abs(x)), (r["step"], c, x, y)
print("mmp_emu: %d steps, cosines %s" % (len(a), " ".join(r["mmp_cos_0"] for r in a)))
PY
# The checkpoints: every parameter and state (BatchNorm's running statistics
# included) within float32 tolerance of the C program's.
python3 - "$W/c/last.ckpt" "$W/emu/last.ckpt" "$(dirname "$0")" <<'PY' || bad "the CUDA program's checkpoint differs from the C program's"
import math, sys
sys.path.insert(0, sys.argv[3] + "/policy_ref")
import st
a, _ = st.read(sys.argv[1])
b, _ = st.read(sys.argv[2])
n = 0
for k, (dt, shape, x) in a.items():
    if dt not in ("F32", "F64") or k not in b:
        continue
    y = b[k][2]
    scale = max(1e-3, math.sqrt(sum(v * v for v in x) / max(1, len(x))))
    err = max(abs(u - v) for u, v in zip(x, y)) / scale if x else 0
    assert err <= 5e-3, (k, err)
    n += 1
assert n > 10, n
print("mmp_emu: %d tensors of last.ckpt agree" % n)
PY
exit $fail
