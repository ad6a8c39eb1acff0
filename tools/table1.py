#!/usr/bin/env python3
"""Aggregate the runs of tools/table1.sh into the table of docs/results.md:
test accuracy (mean ± std over seeds) of the prediction and of each branch,
u(m1|m0), u(m0|m1), d_util and d_speed. Reads OUTDIR/*/summary.json.

    tools/table1.py OUTDIR            the table of means
    tools/table1.py OUTDIR --runs     one row per run"""
import glob
import json
import os
import statistics
import sys


def ms(xs, pct=True):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "—"
    k = 100 if pct else 1
    m = statistics.mean(xs) * k
    s = statistics.stdev(xs) * k if len(xs) > 1 else 0.0
    return f"{m:.2f} ± {s:.2f}" if pct else f"{m:.3f} ± {s:.3f}"


def f(x, pct=True):
    return "—" if x is None else (f"{100 * x:.2f}" if pct else f"{x:.3f}")


def per_run(rows, order):
    print("| method | seed | best epoch | test acc. (%) | color branch (%) | gray branch (%) | u(m1\\|m0) | u(m0\\|m1) | d_util | d_speed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in order:
        for x in sorted(rows.get(name, []), key=lambda x: x["seed"]):
            uni = name.startswith("unimodal")
            b = x["branch_test_acc"]
            u = x.get("util", {})
            print(f"| {name} | {x['seed']} | {x['best_epoch']} | {f(x['test_acc'])} | "
                  f"{'—' if uni else f(b[0])} | {'—' if uni else f(b[1])} | "
                  f"{f(u.get('u(m1|m0)'), False)} | {f(u.get('u(m0|m1)'), False)} | "
                  f"{f(x.get('d_util'), False)} | {f(x.get('d_speed'), False)} |")


def main():
    out = sys.argv[1]
    rows = {}
    for path in sorted(glob.glob(os.path.join(out, "*_s*", "summary.json"))):
        name = os.path.basename(os.path.dirname(path)).rsplit("_s", 1)[0]
        rows.setdefault(name, []).append(json.load(open(path)))
    order = ["unimodal_gray", "unimodal_color", "vanilla", "rubi", "random", "guided"]
    if "--runs" in sys.argv[2:]:
        per_run(rows, order + sorted(set(rows) - set(order)))
        return
    print("| method | runs | test acc. (%) | color branch (%) | gray branch (%) | u(m1\\|m0) | u(m0\\|m1) | d_util | d_speed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in order + sorted(set(rows) - set(order)):
        if name not in rows:
            continue
        r = rows[name]
        uni = name.startswith("unimodal")
        b = lambda i: [x["branch_test_acc"][i] if len(x["branch_test_acc"]) > i else None for x in r]
        u = lambda k: [x.get("util", {}).get(k) for x in r]
        print(f"| {name} | {len(r)} | {ms([x['test_acc'] for x in r])} | "
              f"{'—' if uni else ms(b(0))} | {'—' if uni else ms(b(1))} | "
              f"{ms(u('u(m1|m0)'), False)} | {ms(u('u(m0|m1)'), False)} | "
              f"{ms([x.get('d_util') for x in r], False)} | {ms([x.get('d_speed') for x in r], False)} |")


if __name__ == "__main__":
    main()
