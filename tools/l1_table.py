#!/usr/bin/env python3
"""l1_table.py OUTDIR THRESHOLD LAMBDA... — the table and picture of tools/l1.sh.

For every run of every OUTDIR/l1_LAMBDA sweep: the fraction of each branch's
parameters (the names under the branch's prefix, "c." and "g."; the MMTMs'
apart) whose magnitude in best.ckpt is below THRESHOLD, read straight from the
safetensors file (no numpy), and d_util, d_speed and the test accuracy from
summary.json. Writes OUTDIR/l1.csv, OUTDIR/l1.md and OUTDIR/l1.svg."""
import array, glob, json, math, os, struct, sys

out, thr, lambdas = sys.argv[1], float(sys.argv[2]), sys.argv[3:]

def sparsity(path, branches):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        base = 8 + n
        # The parameters are the tensors the optimizer keeps state for
        # ("optimizer.momentum.NAME", ...): the model state (batch-norm and
        # MMTM running means) has none.
        params = {n.split(".", 2)[2] for n in head if n.startswith("optimizer.") and n.count(".") >= 2}
        small, total = {}, {}
        for name, t in head.items():
            if name not in params or t["dtype"] != "F32":
                continue
            group = next((b for b in branches if name.startswith(b + ".")), "fusion")
            a, b = t["data_offsets"]
            f.seek(base + a)
            v = array.array("f"); v.frombytes(f.read(b - a))
            small[group] = small.get(group, 0) + sum(1 for x in v if abs(x) < thr)
            total[group] = total.get(group, 0) + len(v)
    return {g: small[g] / total[g] for g in total}

rows = []
for lam in lambdas:
    for run in sorted(glob.glob(os.path.join(out, "l1_" + lam, "runs", "*"))):
        try:
            s = json.load(open(os.path.join(run, "summary.json")))
        except (OSError, ValueError):
            continue
        sp = sparsity(os.path.join(run, "best.ckpt"), s["branches"])
        rows.append(dict(l1=float(lam), run=os.path.basename(run), test_acc=s["test_acc"], d_util=s.get("d_util", math.nan),
                         d_speed=s.get("d_speed", math.nan), **{"sparsity_" + k: v for k, v in sp.items()}))
if not rows:
    sys.exit("l1_table.py: no finished runs under %s" % out)
branches = [k[9:] for k in rows[0] if k.startswith("sparsity_") and k != "sparsity_fusion"]
cols = ["l1", "run", "test_acc", "d_util", "d_speed"] + ["sparsity_" + b for b in branches] + ["sparsity_fusion"]
with open(os.path.join(out, "l1.csv"), "w") as f:
    f.write(",".join(cols) + "\n")
    for r in rows:
        f.write(",".join(str(r.get(c, "")) if not isinstance(r.get(c), float) else "%.6g" % r[c] for c in cols) + "\n")

def ms(v):
    v = [x for x in v if isinstance(x, float) and math.isfinite(x)]
    if not v: return math.nan, math.nan
    m = sum(v) / len(v)
    return m, (math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0)

lams = sorted({r["l1"] for r in rows})
stats = {}
with open(os.path.join(out, "l1.md"), "w") as f:
    f.write("| λ | runs | " + " | ".join("params of %s below %g" % (b, thr) for b in branches) + " | d_util | d_speed | test acc. |\n")
    f.write("|---" * (5 + len(branches)) + "|\n")
    for lam in lams:
        rs = [r for r in rows if r["l1"] == lam]
        st = {c: ms([r.get(c) for r in rs]) for c in ["d_util", "d_speed", "test_acc"] + ["sparsity_" + b for b in branches]}
        stats[lam] = st
        f.write("| %g | %d | " % (lam, len(rs)) + " | ".join("%.3f ± %.3f" % st["sparsity_" + b] for b in branches) +
                " | %.3f ± %.3f | %.3f ± %.3f | %.3f ± %.3f |\n" % (st["d_util"] + st["d_speed"] + st["test_acc"]))

# The picture: mean ± sd against λ (λ = 0 drawn at the left edge), three panels.
W, H, M = 900, 300, 50
pw = (W - 4 * M) / 3
xs = [l for l in lams if l > 0]
lo, hi = (math.log10(min(xs)), math.log10(max(xs))) if xs else (0, 1)
if hi == lo: hi = lo + 1
def px(panel, lam):
    t = 0 if lam <= 0 else 0.1 + 0.9 * (math.log10(lam) - lo) / (hi - lo)
    return M + panel * (pw + M) + t * pw
colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]
svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">' % (W, H)]
panels = [("parameters below %g" % thr, ["sparsity_" + b for b in branches], branches),
          ("d_util and d_speed", ["d_util", "d_speed"], ["d_util", "d_speed"]), ("test accuracy", ["test_acc"], ["test accuracy"])]
for p, (title, keys, names) in enumerate(panels):
    vals = [stats[l][k][0] + s * stats[l][k][1] for l in lams for k in keys for s in (-1, 1) if math.isfinite(stats[l][k][0])]
    y0, y1 = (min(vals), max(vals)) if vals else (0, 1)
    if y1 - y0 < 1e-9: y0, y1 = y0 - 0.5, y1 + 0.5
    py = lambda v: M / 2 + (1 - (v - y0) / (y1 - y0)) * (H - 1.5 * M)
    x0 = M + p * (pw + M)
    svg.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/>' % (x0, M / 2, pw, H - 1.5 * M))
    svg.append('<text x="%.1f" y="14" text-anchor="middle">%s</text>' % (x0 + pw / 2, title))
    for v in (y0, (y0 + y1) / 2, y1):
        svg.append('<text x="%.1f" y="%.1f" text-anchor="end">%.3g</text>' % (x0 - 3, py(v) + 4, v))
    for l in lams:
        svg.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>' % (px(p, l), H - M / 2 - 4, l))
    svg.append('<text x="%.1f" y="%d" text-anchor="middle">L1 weight λ</text>' % (x0 + pw / 2, H - 4))
    for i, (k, name) in enumerate(zip(keys, names)):
        c = colors[i % 4]
        pts = [(px(p, l), py(stats[l][k][0])) for l in lams if math.isfinite(stats[l][k][0])]
        svg.append('<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"/>' % (c, " ".join("%.1f,%.1f" % q for q in pts)))
        for l in lams:
            m, s = stats[l][k]
            if math.isfinite(m):
                svg.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s"/>' % (px(p, l), px(p, l), py(m - s), py(m + s), c))
        svg.append('<text x="%.1f" y="%.1f" fill="%s">%s</text>' % (x0 + 6, M / 2 + 14 + 13 * i, c, name))
svg.append("</svg>")
open(os.path.join(out, "l1.svg"), "w").write("\n".join(svg) + "\n")
print(open(os.path.join(out, "l1.md")).read(), end="")
