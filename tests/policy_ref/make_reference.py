#!/usr/bin/env python3
"""make_reference.py [OUT] -- one training step of each balancing policy on
tiny.mmnet's net, in PyTorch (float64), written from the published formulas
(docs/methods.md), into OUT (default: ref.safetensors beside this file):

  data.train.a, data.train.b, data.train.label    the batch (the whole training set)
  data.test.a, data.test.b, data.test.label       a test split, for the program's evaluation
  data.val.a, data.val.b, data.val.label          a validation split (gblend measures on it)
  init.NAME                                       the weights every step starts from
  after.POLICY.NAME                               the weights after POLICY's step

and the metadata "policies" (their names, in order) and "flags.POLICY"
(the program's options that select POLICY with the reference's settings).
tests/policy_ref.sh trains the generated program one step per policy from
the same weights and data and compares its update with the reference's.

A policy is a row of POLICIES: its flags and a function that takes the
weights and the batch and returns the weights after one step. Anything
random in a policy is switched off by its flags, so that the step is exact.
Needs PyTorch; the file it writes is committed, so the test runs without."""
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

torch.set_default_dtype(torch.float64)
LR = 0.5                                             # tiny.mmnet's sgd(lr=0.5), no momentum
LOSS_WEIGHTS = {"fused": 1.0, "a": 0.5, "b": 0.5}    # ce(fused) + 0.5 * ce(a) + 0.5 * ce(b)
B, CLASSES = 8, 3
SHAPES = {
    "a.net1.conv1.weight": (4, 2, 3, 3), "a.net1.conv1.bias": (4,),
    "a.net1.linear1.weight": (3, 4), "a.net1.linear1.bias": (3,),
    "b.net1.conv1.weight": (4, 1, 3, 3), "b.net1.conv1.bias": (4,),
    "b.net1.linear1.weight": (3, 4), "b.net1.linear1.bias": (3,),
    "fused.linear1.weight": (3, 8), "fused.linear1.bias": (3,),
}
# Each branch's own parameters (the group main_k of ALGORITHMS §4); the
# fusion head's belong to neither.
OWN = [[n for n in SHAPES if n.startswith("a.")], [n for n in SHAPES if n.startswith("b.")]]
BRANCHES = ["a", "b"]


def branch(P, k, x):
    """Branch k's features (gap of relu(conv)) and its own head's logits."""
    p = BRANCHES[k] + ".net1."
    feat = F.relu(F.conv2d(x, P[p + "conv1.weight"], P[p + "conv1.bias"], padding=1)).mean((2, 3))
    return feat, F.linear(feat, P[p + "linear1.weight"], P[p + "linear1.bias"])


def forward(P, xs):
    """{'fused': logits, 'a': logits, 'b': logits} for inputs xs = [x_a, x_b]."""
    fa, la = branch(P, 0, xs[0])
    fb, lb = branch(P, 1, xs[1])
    lf = F.linear(torch.cat([fa, fb], 1), P["fused.linear1.weight"], P["fused.linear1.bias"])
    return {"fused": lf, "a": la, "b": lb}


def loss_terms(out, y):
    """Each head's mean cross-entropy over the batch."""
    return {k: F.cross_entropy(v, y) for k, v in out.items()}


def gradients(P, loss):
    """d loss / d P, as a dict (zero where the loss does not depend on P)."""
    names = list(P)
    g = torch.autograd.grad(loss, [P[n] for n in names], allow_unused=True)
    return {n: (gi if gi is not None else torch.zeros_like(P[n])) for n, gi in zip(names, g)}


def sgd(P, G):
    return {n: (P[n] - LR * G[n]).detach() for n in P}


def weighted_loss(out, y, w=LOSS_WEIGHTS):
    t = loss_terms(out, y)
    return sum(w[k] * t[k] for k in t)


# ---- the policies' steps ------------------------------------------------------
def step_vanilla(P, xs, y):
    return sgd(P, gradients(P, weighted_loss(forward(P, xs), y)))


def step_ogm(P, xs, y, alpha):
    """OGM (Peng et al. CVPR 2022, GeWu-Lab/OGM-GE_CVPR2022 main.py
    train_epoch) without the GE noise: the batch sums of each branch head's
    softmax at the label, their ratio, 1 - tanh(alpha * relu(ratio)) on the
    dominant branch's own gradients."""
    out = forward(P, xs)
    G = gradients(P, weighted_loss(out, y))
    s = [F.softmax(out[BRANCHES[k]], 1).gather(1, y[:, None]).sum().item() for k in range(2)]
    rho = s[0] / s[1]
    coeff = [1.0, 1.0]
    if rho > 1:
        coeff[0] = 1 - torch.tanh(torch.tensor(alpha * max(rho, 0.0))).item()
    else:
        coeff[1] = 1 - torch.tanh(torch.tensor(alpha * max(1 / rho, 0.0))).item()
    for k in range(2):
        for n in OWN[k]:
            G[n] = G[n] * coeff[k]
    return sgd(P, G)


def step_gblend(P, xs, y, val):
    """Online G-Blend (Wang, Tran, Feiszli, CVPR 2020, Algorithms 1-2 and
    eq. 9: w_k = dG_k / dO_k^2, normalised to sum 1) with a super-epoch of
    one epoch, here one step: the first step weighs the loss terms as the
    .mmnet does, divided by their sum; the measurements before and after it
    (each head's mean cross-entropy on the training batch and on the
    validation split) give dG = L^V_0 - L^V_1 and dO = O_1 - O_0 with
    O = L^V - L^T, and the weights of the second step, whose result is
    compared. A head whose validation loss rose would get 0."""
    def measure(P):
        with torch.no_grad():
            return loss_terms(forward(P, xs), y), loss_terms(forward(P, val[0]), val[1])
    s = sum(LOSS_WEIGHTS.values())
    w0 = {k: v / s for k, v in LOSS_WEIGHTS.items()}
    lt0, lv0 = measure(P)
    P1 = sgd(P, gradients(P, weighted_loss(forward(P, xs), y, w0)))
    lt1, lv1 = measure(P1)
    raw = {}
    for k in w0:
        dG = (lv0[k] - lv1[k]).item()
        dO = ((lv1[k] - lt1[k]) - (lv0[k] - lt0[k])).item()
        raw[k] = max(dG, 0.0) / max(dO * dO, 1e-8)
    w1 = {k: raw[k] / sum(raw.values()) for k in raw}
    assert all(0.01 < v < 0.99 for v in w1.values()), w1   # every term weighs in the compared step
    P1 = {n: v.clone().requires_grad_(True) for n, v in P1.items()}
    return sgd(P1, gradients(P1, weighted_loss(forward(P1, xs), y, w1)))


VAL = []  # the validation split [[x_a, x_b], y], made in main()

def step_agm(P, xs, y, alpha, clip=1.0):
    """AGM (Li et al. ICCV 2023, lihong2303/AGM_ICCV2023 run/AVMNIST_main.py
    train and model/AVMNIST_net.py GradMod), the first step of a run: the
    multi-modal output (the fusion head's logits) on the batch and with
    each modality zeroed, the Shapley responses phi_a = (total - pad_a +
    pad_b) / 2 and phi_b = (total - pad_b + pad_a) / 2, their scores (mean
    -log softmax at the label, each term at most -log 1e-8), the ratios
    exp(2 (mean score - score_k)), against the running means of earlier
    scores (0 before the first step, as the code starts them) the optimal
    ratios exp(2 (mean avg - avg_k)) = 1, the coefficients exp(alpha
    (optimal - ratio)), each on its branch's own gradients, then the code's
    gradient clipping."""
    out = forward(P, xs)
    G = gradients(P, weighted_loss(out, y))
    with torch.no_grad():
        total = out["fused"]
        pad = [forward(P, [torch.zeros_like(xs[0]), xs[1]])["fused"],   # modality a zeroed
               forward(P, [xs[0], torch.zeros_like(xs[1])])["fused"]]   # modality b zeroed
        phi = [0.5 * (total - pad[0] + pad[1]), 0.5 * (total - pad[1] + pad[0])]
        score = []
        for k in range(2):
            p = F.softmax(phi[k], 1).gather(1, y[:, None])[:, 0]
            score.append(torch.where(p < 1e-8, torch.full_like(p, 1e-8), p).log().neg().mean().item())
        mean = sum(score) / 2
        avg = [0.0, 0.0]
        mean_avg = sum(avg) / 2
        coeff = [math.exp(alpha * (math.exp(2 * (mean_avg - avg[k])) - math.exp(2 * (mean - score[k])))) for k in range(2)]
    for k in range(2):
        for n in OWN[k]:
            G[n] = G[n] * coeff[k]
    # The code's safeguard after every AGM backward pass: when the head's
    # weight gradient leaves [-1, 1], clip_grad_norm_(all parameters, 1).
    gw = G["fused.linear1.weight"]
    if gw.max() > clip or gw.min() < -clip:
        norm = math.sqrt(sum((g * g).sum().item() for g in G.values()))
        f = clip / (norm + 1e-6)
        if f < 1:
            G = {n: g * f for n, g in G.items()}
    return sgd(P, G)


def min_norm_2(v1v1, v1v2, v2v2):
    """MinNormSolver._min_norm_element_from2 (MMPareto_ICML2024
    code/min_norm_solvers.py): the weight c of x1 in the least-norm point
    c x1 + (1 - c) x2 of the segment, from the dot products."""
    if v1v2 >= v1v1:
        return 0.999
    if v1v2 >= v2v2:
        return 0.001
    return -1.0 * ((v1v2 - v2v2) / (v1v1 + v2v2 - 2 * v1v2))


MMP_COS = {}


def step_mmpareto(P, xs, y, gamma):
    """MMPareto (Wei & Hu, ICML 2024; GeWu-Lab/MMPareto_ICML2024
    code/MMPareto.py train_epoch): for each encoder (a branch's parameters
    but its head: the code's names without 'head'), the multi-modal term's
    gradient g_m and the branch's own term's g_u; weights 1/2 each when
    cos(g_m, g_u) > 0, else the two-vector min-norm weights; then per
    parameter new = 2 (w_m g_m + w_u g_u), scaled by |g_m + g_u| / |new|
    when that is above 1, times gamma. The heads keep the loss's gradient.
    Each term is weighted as the loss writes it."""
    w = LOSS_WEIGHTS
    G = gradients(P, weighted_loss(forward(P, xs), y))   # the code's loss.backward() of the sum
    g_mm = gradients(P, w["fused"] * loss_terms(forward(P, xs), y)["fused"])
    for k, name in enumerate(BRANCHES):
        enc = [n for n in OWN[k] if ".linear1." not in n]
        g_u = gradients(P, w[name] * loss_terms(forward(P, xs), y)[name])
        gm = torch.cat([g_mm[n].flatten() for n in enc])
        gu = torch.cat([g_u[n].flatten() for n in enc])
        cos = F.cosine_similarity(gm, gu, dim=0).item()
        MMP_COS[name] = cos
        if cos > 0:
            k0 = k1 = 0.5
        else:
            c = min_norm_2((gm @ gm).item(), (gm @ gu).item(), (gu @ gu).item())
            k0, k1 = c, 1 - c
        for n in enc:
            three = G[n].norm()
            new = 2 * k0 * g_mm[n] + 2 * k1 * g_u[n]
            diff = three / new.norm()
            G[n] = diff * new * gamma if diff > 1 else new * gamma
    return sgd(P, G)


# ---- the program's random draws (runtime/rt_util.c), for modality_dropout ----
M64 = (1 << 64) - 1


class Rng:
    """rt_rng: xoshiro256** seeded by splitmix64."""

    def __init__(self, seed):
        self.s = []
        for _ in range(4):
            seed = (seed + 0x9E3779B97F4A7C15) & M64
            z = seed
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            self.s.append(z ^ (z >> 31))

    def next(self):
        s = self.s
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & M64
        out = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return out

    def uniform(self):
        return (self.next() >> 11) * 2.0 ** -53

    def below(self, n):
        lim = M64 - M64 % n
        while True:
            x = self.next()
            if x < lim:
                return x % n


def dropped_inputs(seed, n, p, ninputs=2):
    """For each example of the first epoch (n of them, one batch), the input
    modality_dropout zeroes, or -1: the epoch's order (rt_train.c
    train_epoch's Fisher-Yates shuffle), the loader's seed for epoch 0, and
    rt_modality_drop of each position in that order (docs/methods.md)."""
    shuffle = Rng(seed ^ 0x73687566)
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = shuffle.below(i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    loader_seed = seed ^ 0x6175676d
    p = struct.unpack("f", struct.pack("f", p))[0]   # the program compares with the float32 p
    drop = [-1] * n
    for g in range(n):
        r = Rng(loader_seed ^ 0x6d6f64726f70 ^ ((0xD1B54A32D192ED03 * (g + 1)) & M64))
        if r.uniform() < p:
            drop[perm[g]] = r.below(ninputs)
    return drop


DROPS = {}


def step_modality_dropout(P, xs, y, seed, p):
    """Modality dropout (docs/methods.md; ModDrop's one-of-M form): each
    example, with probability p, has one of its inputs, chosen uniformly,
    set to zero; then a vanilla step on that batch. The draws are the
    program's own (dropped_inputs), so the step is exact."""
    drop = dropped_inputs(seed, len(y), p)
    DROPS[seed] = drop
    assert 0 in drop and 1 in drop and -1 in drop, drop   # each input dropped somewhere, some examples whole
    xs = [x.clone() for x in xs]
    for i, d in enumerate(drop):
        if d >= 0:
            xs[d][i] = 0
    return step_vanilla(P, xs, y)


POLICIES = {
    "vanilla": (["--policy", "vanilla"], step_vanilla),
    "ogm_ge": (["--policy", "ogm_ge", "--ogm-alpha", "0.8", "--ogm-ge", "0"],
               lambda P, xs, y: step_ogm(P, xs, y, 0.8)),
    # two epochs of one step: the second step's weights are the first estimate's
    "gblend": (["--policy", "gblend", "--gblend-every", "1", "--epochs", "2"],
               lambda P, xs, y: step_gblend(P, xs, y, VAL)),
    "agm": (["--policy", "agm", "--agm-alpha", "4", "--agm-start", "0"],
            lambda P, xs, y: step_agm(P, xs, y, 4.0)),
    "agm_clip": (["--policy", "agm", "--agm-alpha", "4", "--agm-start", "0", "--agm-clip", "0.05"],
                 lambda P, xs, y: step_agm(P, xs, y, 4.0, clip=0.05)),
    "mmpareto": (["--policy", "mmpareto", "--mmp-gamma", "1.5"], lambda P, xs, y: step_mmpareto(P, xs, y, 1.5)),
    # On the batch's first two examples branch a's gradients conflict (cos -0.50): the min-norm weights.
    "mmpareto_conflict": (["--policy", "mmpareto", "--mmp-gamma", "2", "--limit-train", "2"],
                          lambda P, xs, y: step_mmpareto(P, [x[:2] for x in xs], y[:2], 2.0)),
    "modality_dropout": (["--policy", "modality_dropout", "--drop-p", "0.6", "--seed", "3"],
                         lambda P, xs, y: step_modality_dropout(P, xs, y, 3, 0.6)),
}


def flat(t):
    return t.detach().reshape(-1).tolist()


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref.safetensors")
    g = torch.Generator().manual_seed(20261205)
    data = {}
    for split in ("train", "test"):
        xa = torch.rand(B, 2, 6, 6, generator=g)
        xb = torch.rand(B, 1, 6, 6, generator=g)
        y = torch.arange(B) % CLASSES
        data[split] = ([xa, xb], y)
    init = {n: ((torch.rand(s, generator=g) * 2 - 1) * 0.6) for n, s in SHAPES.items()}
    tensors = {}
    for split, (xs, y) in data.items():
        # float32 values, so that the program reads exactly the batch the reference uses
        for nm, x in zip(BRANCHES, xs):
            tensors["data.%s.%s" % (split, nm)] = ("F32", list(x.shape), flat(x.float().double()))
        tensors["data.%s.label" % split] = ("I64", [B], flat(y))
    # A validation split (gblend measures on it), drawn after the rest so that they stay as they were.
    xa, xb = torch.rand(B, 2, 6, 6, generator=g), torch.rand(B, 1, 6, 6, generator=g)
    yv = torch.arange(B) % CLASSES
    for nm, x in zip(BRANCHES, (xa, xb)):
        tensors["data.val.%s" % nm] = ("F32", list(x.shape), flat(x.float()))
    tensors["data.val.label"] = ("I64", [B], flat(yv))
    VAL[:] = [[xa.float().double(), xb.float().double()], yv]
    P0 = {n: v.float().double() for n, v in init.items()}
    for n, v in P0.items():
        tensors["init." + n] = ("F32", list(v.shape), flat(v))
    xs, y = data["train"]
    xs = [x.float().double() for x in xs]
    meta = {"policies": ",".join(POLICIES)}
    for name, (flags, step) in POLICIES.items():
        P = {n: v.clone().requires_grad_(True) for n, v in P0.items()}
        after = step(P, xs, y)
        for n in SHAPES:
            tensors["after.%s.%s" % (name, n)] = ("F64", list(after[n].shape), flat(after[n]))
        meta["flags." + name] = " ".join(flags)
    st.write(out_path, tensors, meta)
    print("wrote %s: %d policies" % (out_path, len(POLICIES)))


if __name__ == "__main__":
    main()
