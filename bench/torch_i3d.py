#!/usr/bin/env python3
"""Two I3D branches (RGB and depth, 25 classes) with MMTMs after inception
modules 4c-4f, 5b and 5c in PyTorch — the model of examples/nvgesture_i3d.mmnet
— timed like `./prog bench`: medians of REPS runs of STEPS steps after a
warm-up, training (SGD with momentum) and evaluation, one JSON line. The
clip is FRAMES x SIZE x SIZE (the example's is 64 x 224 x 224).

    python3 bench/torch_i3d.py --batch 4 --frames 16 --size 112 [--threads 2] [--steps 2] [--reps 3]
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time


def build(torch, nn, F):
    class Unit(nn.Sequential):  # Unit3D: conv3d (no bias), BatchNorm, ReLU
        def __init__(self, cin, cout, k, s=1, p=0):
            super().__init__(nn.Conv3d(cin, cout, k, s, p, bias=False), nn.BatchNorm3d(cout), nn.ReLU())

    class Inception(nn.Module):
        def __init__(self, cin, a, b1, b2, c1, c2, d):
            super().__init__()
            self.a = Unit(cin, a, 1)
            self.b = nn.Sequential(Unit(cin, b1, 1), Unit(b1, b2, 3, 1, 1))
            self.c = nn.Sequential(Unit(cin, c1, 1), Unit(c1, c2, 3, 1, 1))
            self.d = nn.Sequential(nn.MaxPool3d(3, 1, 1), Unit(cin, d, 1))
            self.cout = a + b2 + c2 + d

        def forward(self, x):
            return torch.cat([self.a(x), self.b(x), self.c(x), self.d(x)], 1)

    class I3D(nn.Module):
        def __init__(self, cin, classes):
            super().__init__()
            self.stem = nn.Sequential(Unit(cin, 64, 7, 2, 3), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
                                      Unit(64, 64, 1), Unit(64, 192, 3, 1, 1), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
            specs = [(64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), "pool", (192, 96, 208, 16, 48, 64),
                     (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
                     (256, 160, 320, 32, 128, 128), "pool2", (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)]
            self.mods, c = nn.ModuleList(), 192
            for s in specs:
                if s == "pool":
                    self.mods.append(nn.MaxPool3d(3, 2, 1))
                elif s == "pool2":
                    self.mods.append(nn.MaxPool3d(2, 2))
                else:
                    self.mods.append(Inception(c, *s))
                    c = self.mods[-1].cout
            self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(c, classes))

    class MMTM(nn.Module):  # ratio 4: squeeze 2c -> c, one excitation per branch
        def __init__(self, c):
            super().__init__()
            self.sq = nn.Linear(2 * c, c)
            self.e0 = nn.Linear(c, c)
            self.e1 = nn.Linear(c, c)

        def forward(self, a, b):
            z = F.relu(self.sq(torch.cat([a.mean((2, 3, 4)), b.mean((2, 3, 4))], 1)))
            g0, g1 = torch.sigmoid(self.e0(z)), torch.sigmoid(self.e1(z))
            return a * g0[:, :, None, None, None], b * g1[:, :, None, None, None]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.r, self.d = I3D(3, 25), I3D(1, 25)
            # the MMTMs after 4c, 4d, 4e, 4f, 5b, 5c (mods 4-7, 9, 10)
            self.at = {4: 0, 5: 1, 6: 2, 7: 3, 9: 4, 10: 5}
            self.mmtm = nn.ModuleList(MMTM(c) for c in (512, 512, 528, 832, 832, 1024))

        def forward(self, x, y):
            x, y = self.r.stem(x), self.d.stem(y)
            for i, (mr, md) in enumerate(zip(self.r.mods, self.d.mods)):
                x, y = mr(x), md(y)
                if i in self.at:
                    x, y = self.mmtm[self.at[i]](x, y)
            return self.r.head(x.mean((2, 3, 4))), self.d.head(y.mean((2, 3, 4)))

    return Net()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError:
        print(json.dumps({"skipped": "PyTorch is not installed (pip install torch)"}))
        return 0
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    net = build(torch, nn, F)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(7)
    x = torch.rand(a.batch, 3, a.frames, a.size, a.size, generator=g)
    y = torch.rand(a.batch, 1, a.frames, a.size, a.size, generator=g)
    t = torch.randint(0, 25, (a.batch,), generator=g)

    def train_step():
        net.train()
        fa, fb = net(x, y)
        loss = F.cross_entropy(fa, t) + F.cross_entropy(fb, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def eval_step():
        net.eval()
        with torch.no_grad():
            fa, fb = net(x, y)
            ((fa.softmax(1) + fb.softmax(1)) / 2).argmax(1)

    train_step()
    eval_step()
    tt, te = [], []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            train_step()
        tt.append(a.steps * a.batch / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in range(a.steps):
            eval_step()
        te.append(a.steps * a.batch / (time.perf_counter() - t0))
    print(json.dumps({
        "model": "nvgesture_i3d", "backend": "pytorch " + torch.__version__ + " eager cpu", "batch": a.batch,
        "params": sum(p.numel() for p in net.parameters()),
        "train_samples_per_s": round(statistics.median(tt), 3), "eval_samples_per_s": round(statistics.median(te), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
