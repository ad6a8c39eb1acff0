#!/usr/bin/env python3
"""predict_check.py EVAL_OUT PREDICTIONS [JSONL] — checks ./prog predict's
output against ./prog eval's on the same checkpoint, data and split:

  - one row per example (eval's count), indices 0..n-1, ids unique;
  - the accuracy of the fused prediction and of every branch, computed from
    the rows, is the one eval prints (to its 4 decimals, which for up to
    10,000 examples fixes the count of right rows);
  - every head's probabilities sum to 1 and are largest at its class;
  - given a JSONL file too: the same rows as the CSV.

Prints the accuracies; exits 1 with what differs."""
import csv, json, math, re, sys

eval_out, pred_path = sys.argv[1], sys.argv[2]
text = open(eval_out).read()
m = re.search(r"(\w+) accuracy ([0-9.]+)\s+\((\d+) examples\)", text)
if not m:
    sys.exit(f"no accuracy line in eval's output:\n{text}")
n = int(m.group(3))
want = {"": m.group(2)}
for b, acc in re.findall(r"branch (\S+)\s+([0-9.]+)", text):
    want[b] = acc
branches = [b for b in want if b]

rows = list(csv.DictReader(open(pred_path)))
fail = []
if len(rows) != n:
    fail.append(f"{len(rows)} rows, eval counted {n} examples")
if [int(r["index"]) for r in rows] != list(range(len(rows))):
    fail.append("indices are not 0..n-1 in order")
if len({r["id"] for r in rows}) != len(rows):
    fail.append("ids are not unique")


def head(r, pre, C):
    return int(r[pre + "pred"]), [float(r[f"{pre}p{c}"]) for c in range(C)]


C = sum(1 for k in rows[0] if re.fullmatch(r"p\d+", k)) if rows else 0
for name in [""] + branches:
    pre = name + "_" if name else ""
    right = 0
    for r in rows:
        cls, p = head(r, pre, C)
        right += cls == int(r["label"])
        if abs(sum(p) - 1) > 1e-4:
            fail.append(f"row {r['index']}: {name or 'prediction'}'s probabilities sum to {sum(p)}")
            break
        if p[cls] < max(p):
            fail.append(f"row {r['index']}: {name or 'prediction'}'s class {cls} is not its most probable")
            break
    acc = right / n if n else 0.0
    # eval prints right/n to 4 decimals; the count must be the one that rounds to it
    if f"{acc:.4f}" != want[name]:
        fail.append(f"{name or 'prediction'}: accuracy {right}/{n} = {acc:.6f} from the rows, eval says {want[name]}")
    print(f"{name or 'prediction'}: {right}/{n} = {acc:.4f} (eval {want[name]})")

if len(sys.argv) > 3:
    lines = [json.loads(l) for l in open(sys.argv[3])]
    if len(lines) != len(rows):
        fail.append(f"JSONL has {len(lines)} lines, CSV {len(rows)} rows")
    for r, j in zip(rows, lines):
        same = (str(j["id"]) == r["id"] and j["label"] == int(r["label"]) and j["index"] == int(r["index"])
                and (j["pred"], j["probs"]) == head(r, "", C)
                and all((j["branches"][b]["pred"], j["branches"][b]["probs"]) == head(r, b + "_", C) for b in branches))
        if not same:
            fail.append(f"JSONL line {j.get('index')} differs from the CSV row")
            break
for f in fail:
    print("FAIL:", f)
sys.exit(1 if fail else 0)
