#!/bin/sh
# methods_test.sh MMC ROOT WORKDIR — tools/methods.sh --quick: every method
# trains both nets (cgmnist, cgmnist_late) on colored-and-gray Fashion-MNIST (a few hundred examples, one
# epoch) and the table has a row for each, with numbers in every column
# that is defined after one epoch. Skipped (77) without the data set.
set -u
MMC=$1; R=$2; W=$3
T=$R/tests
. "$T/lib.sh"
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || { say "no Fashion-MNIST: skipped"; exit 77; }
rm -rf "$W"
MMC=$MMC "$R/tools/methods.sh" --quick "$W" > "$W.log" 2>&1 || { bad "methods.sh --quick"; tail -20 "$W.log"; exit 1; }
for net in cgmnist cgmnist_late; do
    python3 - "$W/$net/methods.md" $net <<'PY' || bad "$net/methods.md: not a row per method with its numbers"
import sys
rows = [l.split("|")[1:-1] for l in open(sys.argv[1]) if l.startswith("| ") and not l.startswith("| method")]
names = [r[0].strip() for r in rows]
want = ["vanilla", "guided", "random", "rubi", "modality_dropout", "ogm_ge", "gblend", "agm", "mmpareto"]
if sys.argv[2] == "cgmnist_late":  # no MMTMs: no guided or random re-balancing, no conditional utilization
    want = [w for w in want if w not in ("guided", "random")]
else:  # no fusion head: no mmpareto
    want = [w for w in want if w != "mmpareto"]
assert names == want, names
for r in rows:
    acc, a0, a1 = (float(x) for x in r[3:6])
    assert all(0 <= x <= 1 for x in (acc, a0, a1)), r
    assert float(r[10]) > 0, r   # seconds per epoch
    # d_util and the conditional learning speed measure the MMTMs' cross-modal flow: MMTM nets only
    assert (r[8].strip() == "–") == (r[9].strip() == "–") == (sys.argv[2] == "cgmnist_late"), r
PY
done
exit $fail
