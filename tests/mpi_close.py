#!/usr/bin/env python3
"""mpi_close.py A B TOL — run directory B (N ranks) holds the run of A (one
process at the same global batch) up to float summation: the same step
kinds in steps.csv; each step's loss, learning speeds s_k and d_speed, and
every tensor of last.ckpt (parameters, optimizer buffers, model state)
within TOL relative to max(1, |value|) (steps.csv's values, printed to 6
significant digits, within TOL + 1e-5: their last digit may round the
other way); the same epochs in metrics.jsonl
with their losses within TOL. Prints the largest differences it saw."""
import json, struct, sys, array

def tensors(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__": continue
        raw = b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]
        code = {"F32": "f", "F64": "d", "I64": "q"}[v["dtype"]]
        out[k] = array.array(code, raw)
    return out

A, B, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
import math
def rel(x, y):
    if math.isnan(x) or math.isnan(y): return 0.0 if math.isnan(x) and math.isnan(y) else math.inf   # s_k before its window fills
    return abs(x - y) / max(1.0, abs(x))
worst = {"ckpt": 0.0, "steps": 0.0, "metrics": 0.0}
a, b = tensors(A + "/last.ckpt"), tensors(B + "/last.ckpt")
assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
for k in a:
    assert len(a[k]) == len(b[k]), k
    d = max((rel(x, y) for x, y in zip(a[k], b[k])), default=0.0)
    worst["ckpt"] = max(worst["ckpt"], d)
    assert d <= tol, "last.ckpt %s differs by %g (tolerance %g)" % (k, d, tol)
sa = [l.rstrip("\n").split(",") for l in open(A + "/steps.csv")]
sb = [l.rstrip("\n").split(",") for l in open(B + "/steps.csv")]
assert len(sa) == len(sb) and sa[0] == sb[0], "steps.csv: %d and %d lines" % (len(sa), len(sb))
for x, y in zip(sa[1:], sb[1:]):
    assert x[:3] == y[:3], "step %s: %s and %s" % (x[0], x[:3], y[:3])   # step, epoch, kind
    for i in range(3, len(x)):
        d = rel(float(x[i]), float(y[i]))
        worst["steps"] = max(worst["steps"], d)
        assert d <= tol + 1e-5, "step %s: %s %s and %s" % (x[0], sa[0][i], x[i], y[i])
ma = [json.loads(l) for l in open(A + "/metrics.jsonl")]
mb = [json.loads(l) for l in open(B + "/metrics.jsonl")]
assert len(ma) == len(mb), (len(ma), len(mb))
for x, y in zip(ma, mb):
    assert x["epoch"] == y["epoch"] and x["steps_by_kind"] == y["steps_by_kind"], (x, y)
    for k in ("train_loss", "val_loss", "d_speed"):
        if k in x:
            d = rel(x[k], y[k]); worst["metrics"] = max(worst["metrics"], d)
            assert d <= tol, "epoch %d: %s %g and %g" % (x["epoch"], k, x[k], y[k])
print("largest relative differences: last.ckpt %.3g, steps.csv %.3g, metrics %.3g" % (worst["ckpt"], worst["steps"], worst["metrics"]))
