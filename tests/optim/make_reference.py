#!/usr/bin/env python3
"""Reference values for the optimizers and learning-rate schedules, computed
by PyTorch (torch.optim, torch.optim.lr_scheduler).

Writes tests/optim/optim_ref.safetensors, which tests/optim_test.c reads:

- a tiny net (Linear(4, 3), tanh, Linear(3, 2); cross-entropy on a fixed
  batch of 5) trained STEPS steps by each optimizer case below: its initial
  parameters, and for every step the gradients PyTorch computed and the
  parameters after the step. At step MASKED the second layer gets no
  gradient (grad None: PyTorch skips it, its moments and step count stay),
  as a re-balancing step that updates only one branch leaves the other's
  parameters (ALGORITHMS 5, update=own). The C test replays the gradients
  through the CPU back end's update and compares the parameters.
- the learning rate of every step of each schedule case, from PyTorch's
  schedulers stepped once per step: LinearLR for the warm-up, then StepLR,
  CosineAnnealingLR or a constant one, joined by SequentialLR.

The cases' settings are written out again in tests/optim_test.c; a tensor
missing on either side fails the test. PyTorch is needed only to regenerate
the file:

    python3 tests/optim/make_reference.py     # a Python with PyTorch
"""
import json
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "optim_ref.safetensors")
STEPS = 6
MASKED = 2
SECOND_LAYER = ("fc2.weight", "fc2.bias")

# name, optimizer, schedule (None, or the case of SCHEDULES below with 2 steps an epoch)
OPTIMIZERS = [
    ("sgd", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("adam", lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01)),
    ("adamw", lambda p: torch.optim.AdamW(p, lr=0.01, betas=(0.8, 0.999), eps=1e-6, weight_decay=0.1)),
    ("adamw_cosine", lambda p: torch.optim.AdamW(p, lr=0.01)),  # weight_decay: AdamW's default, 0.01
]

# name: (lr, epochs, steps per epoch, warm-up steps, schedule, its options)
SCHEDULES = {
    "warmup_constant": (0.1, 4, 3, 4, "constant", {}),
    "step": (0.1, 4, 3, 0, "step", {"every": 1, "gamma": 0.5}),
    "warmup_step": (0.1, 4, 3, 3, "step", {"every": 1, "gamma": 0.5}),
    "cosine": (0.1, 4, 3, 0, "cosine", {"min_lr": 0.001}),
    "warmup_cosine": (0.1, 4, 3, 5, "cosine", {"min_lr": 0.001}),
    "adamw_cosine": (0.01, 3, 2, 2, "cosine", {"min_lr": 0.001}),
}


def scheduler(opt, case):
    lr, epochs, spe, warm, kind, o = SCHEDULES[case]
    total = epochs * spe
    if kind == "step":
        main = torch.optim.lr_scheduler.StepLR(opt, step_size=o["every"] * spe, gamma=o["gamma"])
    elif kind == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warm, eta_min=o["min_lr"])
    else:
        main = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    if not warm:
        return main
    first = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / warm, end_factor=1.0, total_iters=warm - 1)
    return torch.optim.lr_scheduler.SequentialLR(opt, [first, main], milestones=[warm])


def save_safetensors(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        dtype = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}[t.dtype]
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


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.fc2 = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def main():
    torch.manual_seed(17)
    x = torch.randn(5, 4)
    y = torch.tensor([0, 1, 1, 0, 1])
    init = Net().state_dict()
    out = {f"init.{k}": v.clone() for k, v in init.items()}
    for name, make in OPTIMIZERS:
        net = Net()
        net.load_state_dict(init)
        opt = make(net.parameters())
        sched = scheduler(opt, name) if name in SCHEDULES else None
        lrs = []
        for t in range(STEPS):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            for k, p in net.named_parameters():
                out[f"{name}.grad.{t}.{k}"] = p.grad.clone()
                if t == MASKED and k in SECOND_LAYER:
                    p.grad = None
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if sched:
                sched.step()
            for k, p in net.named_parameters():
                out[f"{name}.param.{t}.{k}"] = p.detach().clone()
        if sched:
            out[f"{name}.lr"] = torch.tensor(lrs, dtype=torch.float64)
    for case in SCHEDULES:
        lr, epochs, spe, warm, kind, o = SCHEDULES[case]
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
        sched = scheduler(opt, case)
        lrs = []
        for _ in range(epochs * spe):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        out[f"sched.{case}"] = torch.tensor(lrs, dtype=torch.float64)
    save_safetensors(OUT, out, {"torch": torch.__version__, "steps": str(STEPS), "masked": str(MASKED)})
    print(f"wrote {OUT} ({len(out)} tensors, PyTorch {torch.__version__})")


if __name__ == "__main__":
    main()
