#!/usr/bin/env python3
"""Reference values for the cgmnist net, computed by PyTorch.

Writes tests/oracle/cgmnist_ref.safetensors: one fixed batch (inputs,
labels), fixed weights under mmc's parameter names, and what PyTorch computes
for them in float64 — the branch logits (training-mode BatchNorm), the loss
CE(f_c, y) + CE(f_g, y) and the gradient of every parameter. The C test
tests/oracle_test.c runs the generated program on the same batch and weights
and compares. PyTorch is needed only to regenerate the file:

    pip install torch numpy && python3 tests/oracle/make_reference.py

The model follows ALGORITHMS §1 and examples/cgmnist.mmnet; the MMTM is the
authors' (squeeze: mean over positions; FC to 2*(C0+C1)/ratio; ReLU; one FC
per branch; plain sigmoid gates).
"""
import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "cgmnist_ref.safetensors")
B = 8


class Branch(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1)
        self.linear1 = nn.Linear(64, 10)


class MMTM(nn.Module):
    def __init__(self, c0, c1, ratio=4):
        super().__init__()
        h = 2 * (c0 + c1) // ratio
        self.squeeze = nn.Linear(c0 + c1, h)
        self.excite_c = nn.Linear(h, c0)
        self.excite_g = nn.Linear(h, c1)

    def forward(self, a, b):
        s = torch.cat([a.mean(dim=(2, 3)), b.mean(dim=(2, 3))], 1)
        z = F.relu(self.squeeze(s))
        ga = torch.sigmoid(self.excite_c(z))
        gb = torch.sigmoid(self.excite_g(z))
        return a * ga[:, :, None, None], b * gb[:, :, None, None]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = Branch(3)
        self.g = Branch(1)
        self.mmtm1 = MMTM(32, 32)
        self.mmtm2 = MMTM(32, 32)
        self.mmtm3 = MMTM(64, 64)

    def forward(self, color, gray):
        c, g = self.c, self.g
        x = F.max_pool2d(F.relu(c.conv1(c.bn1(color))), 3, 2, 1)
        y = F.max_pool2d(F.relu(g.conv1(g.bn1(gray))), 3, 2, 1)
        x, y = self.mmtm1(x, y)
        x, y = F.relu(c.conv2(x)), F.relu(g.conv2(y))
        x, y = self.mmtm2(x, y)
        x, y = F.relu(c.conv3(x)), F.relu(g.conv3(y))
        x, y = self.mmtm3(x, y)
        x, y = F.relu(c.conv4(x)), F.relu(g.conv4(y))
        return c.linear1(x.mean(dim=(2, 3))), g.linear1(y.mean(dim=(2, 3)))


def mmc_name(torch_name):
    """c.conv1.weight -> c.convnet1.conv1.weight (the block instance in the .mmnet)."""
    head, rest = torch_name.split(".", 1)
    return f"{head}.convnet1.{rest}" if head in ("c", "g") else torch_name


def save_safetensors(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        raw = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
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
    torch.manual_seed(20221)
    net = Net().double()
    with torch.no_grad():  # BatchNorm affine away from (1, 0) so its gradients are tested in general position
        for bn in (net.c.bn1, net.g.bn1):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    net.train()
    gen = torch.Generator().manual_seed(7)
    gray = torch.rand(B, 1, 28, 28, generator=gen, dtype=torch.float64)
    color = gray * torch.rand(B, 3, 1, 1, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 10, (B,), generator=gen)
    fc, fg = net(color, gray)
    loss = F.cross_entropy(fc, labels) + F.cross_entropy(fg, labels)
    loss.backward()
    t = {"input.color": color.float(), "input.gray": gray.float(), "labels": labels,
         "logits.c": fc.float(), "logits.g": fg.float(), "loss": loss.reshape(1).float()}
    for name, p in net.named_parameters():
        t["param." + mmc_name(name)] = p.float()
        t["grad." + mmc_name(name)] = p.grad.float()
    save_safetensors(OUT, t, {"torch": torch.__version__, "model": "cgmnist", "precision": "float64, stored as float32"})
    print(f"wrote {OUT}: loss {loss.item():.6f}, {sum(p.numel() for p in net.parameters())} parameters, torch {torch.__version__}")


if __name__ == "__main__":
    sys.exit(main())
