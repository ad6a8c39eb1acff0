#!/usr/bin/env python3
"""The cgmnist net in PyTorch, timed the way `./cgmnist bench` times itself.

Same model (tests/oracle/make_reference.py), same batch, same optimizer (SGD
with momentum), random inputs of the same shapes; medians of REPS timed runs
of STEPS steps after a warm-up, for training and for evaluation; the
process's peak memory. One JSON line, like the generated program's.

    python3 bench/torch_cgmnist.py --threads 2 [--batch 128] [--steps 10] [--reps 5] [--device cpu|cuda] [--compile]
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "oracle"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    a = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print(json.dumps({"skipped": "PyTorch is not installed (pip install torch)"}))
        return 0
    from make_reference import Net

    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    net = Net().to(dev)
    model = torch.compile(net) if a.compile else net
    opt = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    g = torch.Generator().manual_seed(7)
    color = torch.rand(a.batch, 3, 28, 28, generator=g).to(dev)
    gray = torch.rand(a.batch, 1, 28, 28, generator=g).to(dev)
    y = torch.randint(0, 10, (a.batch,), generator=g).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def train_step():
        net.train()
        fc, fg = model(color, gray)
        loss = F.cross_entropy(fc, y) + F.cross_entropy(fg, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def eval_step():
        net.eval()
        with torch.no_grad():
            fc, fg = model(color, gray)
            ((fc + fg) / 2).argmax(1)

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
        "model": "cgmnist", "backend": "pytorch " + torch.__version__ + (" compile" if a.compile else " eager") + " " + a.device,
        "batch": a.batch, "threads": a.threads,
        "train_samples_per_s": round(statistics.median(tt), 1), "eval_samples_per_s": round(statistics.median(te), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
