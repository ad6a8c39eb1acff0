#!/usr/bin/env python3
"""Rename a torchvision ResNet-18 state dict into the ModelNet40 example's
parameter names, for a warm start:

    python3 tools/torchvision_resnet18.py resnet18.pth -o resnet18_mmnet.safetensors
    build/modelnet40 train --init resnet18_mmnet.safetensors

resnet18.pth is what torch.save(torchvision.models.resnet18(weights=...).state_dict(), ...)
writes. Each branch of examples/modelnet40_resnet18.mmnet (f and r: one
ResNet-18 per view) gets a copy: conv1/bn1 keep their names, layerS.B become
the .mmnet's blocks in order (layer1.0 -> basic1, layer1.1 -> basic2,
layer2.0 -> down1, layer2.1 -> basic3, ...), downsample.0/1 become the
shortcut's conv1/bn1, and BatchNorm running statistics come along
(num_batches_tracked has no counterpart). The ImageNet head (fc, 1000
classes) is left out unless --keep-fc: the example's heads have 40 classes,
and train --init keeps their fresh initialisation. `mmc info --params
examples/modelnet40_resnet18.mmnet` lists the names this writes.

Needs PyTorch (to read the .pth); --random writes a randomly initialised
torchvision ResNet-18 instead (needs torchvision), which the test uses.
"""
import argparse
import json
import re
import struct
import sys

BLOCKS = {(1, 0): "basic1", (1, 1): "basic2", (2, 0): "down1", (2, 1): "basic3",
          (3, 0): "down2", (3, 1): "basic4", (4, 0): "down3", (4, 1): "basic5"}


def rename(name):
    """A torchvision name -> the name inside one branch's resnet18 block, or None."""
    if name.endswith("num_batches_tracked"):
        return None
    if name.startswith("fc."):
        return "linear1." + name[3:]
    m = re.fullmatch(r"layer(\d)\.(\d)\.(.*)", name)
    if not m:
        return name  # conv1.weight, bn1.*
    block = BLOCKS[(int(m.group(1)), int(m.group(2)))]
    rest = m.group(3)
    rest = rest.replace("downsample.0.", "shortcut1.conv1.").replace("downsample.1.", "shortcut1.bn1.")
    return f"{block}.{rest}"


def convert(state, branches, block, keep_fc):
    out = {}
    for name, t in state.items():
        inner = rename(name)
        if inner is None or (inner.startswith("linear1.") and not keep_fc):
            continue
        for b in branches:
            out[f"{b}.{block}.{inner}"] = t
    return out


def save_safetensors(path, tensors, meta):
    import torch
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu().to(torch.float32)
        raw = t.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("state_dict", nargs="?", help="a torchvision ResNet-18 state dict (.pth)")
    ap.add_argument("-o", "--out", required=True, help="the safetensors file to write")
    ap.add_argument("--branches", default="f,r", help="the .mmnet's branches, comma-separated (default: f,r)")
    ap.add_argument("--block", default="resnet181", help="the ResNet-18 block's instance name in each branch (default: resnet181)")
    ap.add_argument("--keep-fc", action="store_true", help="keep the ImageNet head as linear1 (train --init-partial then skips it)")
    ap.add_argument("--random", action="store_true", help="a randomly initialised torchvision ResNet-18 instead of a file")
    a = ap.parse_args()
    import torch
    if a.random:
        import torchvision
        torch.manual_seed(0)
        state = torchvision.models.resnet18(weights=None).state_dict()
    elif a.state_dict:
        state = torch.load(a.state_dict, map_location="cpu", weights_only=True)
    else:
        ap.error("give a state dict file, or --random")
    out = convert(state, a.branches.split(","), a.block, a.keep_fc)
    save_safetensors(a.out, out, {"source": "torchvision resnet18" + (" (random)" if a.random else f" {a.state_dict}")})
    print(f"wrote {a.out}: {len(out)} tensors for branches {a.branches}", file=sys.stderr)


if __name__ == "__main__":
    main()
