#!/usr/bin/env python3
"""Two ResNet-18 branches with MMTMs after stages 2, 3 and 4 (40 classes,
3x224x224 per view) in PyTorch — the model of examples/modelnet40_resnet18.mmnet
— timed like `./prog bench`: medians of REPS runs of STEPS steps after a
warm-up, training (SGD) and evaluation, one JSON line.

    python3 bench/torch_resnet.py --batch 64 [--device cuda] [--compile] [--steps 10] [--reps 5]
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time


def build(torch, nn, F):
    class Basic(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.short = None
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
            return F.relu(y + (self.short(x) if self.short is not None else x))

    class ResNet18(nn.Module):
        def __init__(self, classes):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            self.s1 = nn.Sequential(Basic(64, 64, 1), Basic(64, 64, 1))
            self.s2 = nn.Sequential(Basic(64, 128, 2), Basic(128, 128, 1))
            self.s3 = nn.Sequential(Basic(128, 256, 2), Basic(256, 256, 1))
            self.s4 = nn.Sequential(Basic(256, 512, 2), Basic(512, 512, 1))
            self.head = nn.Linear(512, classes)

    class MMTM(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.sq = nn.Linear(2 * c, c)
            self.e0 = nn.Linear(c, c)
            self.e1 = nn.Linear(c, c)

        def forward(self, a, b):
            z = F.relu(self.sq(torch.cat([a.mean((2, 3)), b.mean((2, 3))], 1)))
            return a * torch.sigmoid(self.e0(z))[:, :, None, None], b * torch.sigmoid(self.e1(z))[:, :, None, None]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.f, self.r = ResNet18(40), ResNet18(40)
            self.m2, self.m3, self.m4 = MMTM(128), MMTM(256), MMTM(512)

        def forward(self, x, y):
            x, y = self.f.s1(self.f.stem(x)), self.r.s1(self.r.stem(y))
            x, y = self.m2(self.f.s2(x), self.r.s2(y))
            x, y = self.m3(self.f.s3(x), self.r.s3(y))
            x, y = self.m4(self.f.s4(x), self.r.s4(y))
            return self.f.head(x.mean((2, 3))), self.r.head(y.mean((2, 3)))

    return Net()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError:
        print(json.dumps({"skipped": "PyTorch is not installed (pip install torch)"}))
        return 0
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    net = build(torch, nn, F).to(dev)
    assert sum(p.numel() for p in net.parameters()) == 23773008
    model = torch.compile(net) if a.compile else net
    opt = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    g = torch.Generator().manual_seed(7)
    x = torch.rand(a.batch, 3, 224, 224, generator=g).to(dev)
    y = torch.rand(a.batch, 3, 224, 224, generator=g).to(dev)
    t = torch.randint(0, 40, (a.batch,), generator=g).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def train_step():
        net.train()
        fa, fb = model(x, y)
        loss = F.cross_entropy(fa, t) + F.cross_entropy(fb, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def eval_step():
        net.eval()
        with torch.no_grad():
            fa, fb = model(x, y)
            ((fa + fb) / 2).argmax(1)

    for _ in range(3):
        train_step()
        eval_step()
    sync()
    tt, te = [], []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            train_step()
        sync()
        tt.append(a.steps * a.batch / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in range(a.steps):
            eval_step()
        sync()
        te.append(a.steps * a.batch / (time.perf_counter() - t0))
    print(json.dumps({
        "model": "modelnet40_resnet18", "backend": "pytorch " + torch.__version__ + (" compile" if a.compile else " eager") + " " + a.device,
        "batch": a.batch, "train_samples_per_s": round(statistics.median(tt), 1), "eval_samples_per_s": round(statistics.median(te), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
