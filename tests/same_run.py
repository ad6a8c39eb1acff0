#!/usr/bin/env python3
"""same_run.py A B [EPOCHS] — two run directories hold the same run: the same
tensors in last.ckpt, the same metrics.jsonl lines but for the timings (and
EPOCHS of them, if given), the same steps.csv."""
import json, struct, sys

def tensors(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}

A, B = sys.argv[1], sys.argv[2]
a, b = tensors(A + "/last.ckpt"), tensors(B + "/last.ckpt")
assert a.keys() == b.keys() and all(a[k] == b[k] for k in a), [k for k in a if a[k] != b.get(k)][:5]
skip = {"samples_per_s", "wall_samples_per_s", "data_wait_s", "data_cpu_s", "epoch_time_s"}
ma = [json.loads(l) for l in open(A + "/metrics.jsonl")]
mb = [json.loads(l) for l in open(B + "/metrics.jsonl")]
assert len(ma) == len(mb), (len(ma), len(mb))
if len(sys.argv) > 3: assert len(ma) == int(sys.argv[3]), (len(ma), sys.argv[3])
for x, y in zip(ma, mb):
    assert {k: v for k, v in x.items() if k not in skip} == {k: v for k, v in y.items() if k not in skip}, (x, y)
sa, sb = open(A + "/steps.csv").read(), open(B + "/steps.csv").read()
assert sa == sb, "steps.csv differs: %d and %d lines" % (sa.count("\n"), sb.count("\n"))
