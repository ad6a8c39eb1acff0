#!/bin/bash
# gblend_emu.sh MMC PROG_EMU MMNET WORKDIR — the gblend policy in the CUDA
# training program (tests/e2e/cuda_gblend.mmnet compiled for CUDA, run on
# the CPU emulation of CUDA) against the C program built from the same
# .mmnet: the same loss weights at every step and the same losses, to
# float32 tolerance, and weights that change.
set -u
MMC=$1; EMU=$2; MMNET=$3; W=$4
rm -rf "$W"; mkdir -p "$W"
. "$(dirname "$0")/lib.sh"

"$MMC" build "$MMNET" -o "$W/cprog" > /dev/null || { bad "mmc build"; exit 1; }
for p in c emu; do
    prog=$W/cprog; [ $p = emu ] && prog=$EMU
    "$prog" train --quiet --out "$W/$p" > "$W/$p.out" 2>&1 || { bad "$p train"; tail -5 "$W/$p.out"; }
done
python3 - "$W/c" "$W/emu" <<'PY' || bad "the CUDA program's gblend run differs from the C program's"
import csv, sys
a, b = (list(csv.DictReader(open(d + "/steps.csv"))) for d in sys.argv[1:])
assert len(a) == len(b) == 6, (len(a), len(b))
cols = [k for k in a[0] if k.startswith("w_")]
assert cols == ["w_both", "w_x", "w_y"], cols
for r, s in zip(a, b):
    assert abs(float(r["loss"]) - float(s["loss"])) <= 2e-3 * max(1.0, abs(float(r["loss"]))), (r, s)
    for c in cols:
        assert abs(float(r[c]) - float(s[c])) <= 2e-3, (c, r, s)
assert len({tuple(r[c] for c in cols) for r in b}) > 1, "the weights never changed"
print("gblend_emu: the CUDA program's weights and losses are the C program's")
PY
exit $fail
