#!/usr/bin/env python3
"""mpi_data.py DIR N SEED [invert] — arrays data for tests/e2e/mpi.mmnet:
DIR/train.safetensors (N examples) and DIR/test.safetensors (32), inputs a
and b uint8 [N, 1, 8, 8] whose brightness carries the class (3 classes),
labels int64. With `invert`, the training images are 255 - x: the same
count and labels, other data."""
import json, os, random, struct, sys

def save(path, tensors):
    head, blobs, off = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        head[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw); off += len(raw)
    h = json.dumps(head).encode(); h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

def split(n, rng, invert):
    y = [rng.randrange(3) for _ in range(n)]
    ims = {}
    for inp in ("a", "b"):
        px = bytearray()
        for c in y:
            for _ in range(64):
                v = min(255, max(0, int(60 + 60 * c + rng.gauss(0, 40))))
                px.append(255 - v if invert else v)
        ims[inp] = ("U8", [n, 1, 8, 8], bytes(px))
    ims["label"] = ("I64", [n], struct.pack("<%dq" % n, *y))
    return ims

d, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
invert = len(sys.argv) > 4 and sys.argv[4] == "invert"
rng = random.Random(seed)
os.makedirs(d, exist_ok=True)
save(d + "/train.safetensors", split(n, rng, invert))
save(d + "/test.safetensors", split(32, rng, False))
