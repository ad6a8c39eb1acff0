#!/bin/sh
# methods_test.sh MMC ROOT WORKDIR — tools/methods.sh --quick: every method
# trains on colored-and-gray Fashion-MNIST (a few hundred examples, one
# epoch) and the table has a row for each, with numbers in every column
# that is defined after one epoch. Skipped (77) without the data set.
set -u
MMC=$1; R=$2; W=$3
T=$R/tests
. "$T/lib.sh"
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || { say "no Fashion-MNIST: skipped"; exit 77; }
rm -rf "$W"
MMC=$MMC "$R/tools/methods.sh" --quick "$W" > "$W.log" 2>&1 || { bad "methods.sh --quick"; tail -20 "$W.log"; exit 1; }
python3 - "$W/methods.md" <<'PY' || bad "methods.md: not a row per method with its numbers"
import sys
rows = [l.split("|")[1:-1] for l in open(sys.argv[1]) if l.startswith("| ") and not l.startswith("| method")]
names = [r[0].strip() for r in rows]
assert names == ["vanilla", "guided", "random", "rubi", "modality_dropout", "ogm_ge"], names
for r in rows:
    acc, a0, a1 = (float(x) for x in r[3:6])
    assert all(0 <= x <= 1 for x in (acc, a0, a1)), r
    assert r[9].strip() != "–" and float(r[10]) > 0, r   # mean d_speed, seconds per epoch
PY
exit $fail
