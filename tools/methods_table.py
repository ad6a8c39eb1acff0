#!/usr/bin/env python3
"""methods_table.py OUTDIR [RESULTS.md NET] — a table of tools/methods.sh.

Reads every run OUTDIR/METHOD_sSEED: summary.json (the test accuracy of the
prediction and of each branch at the best epoch, the conditional utilization
rates and d_util), steps.csv (d_speed after every step: its mean over the
run's steps where it is defined) and metrics.jsonl (the time per epoch).
Writes OUTDIR/methods.csv (a row per run) and OUTDIR/methods.md (mean ± sd
per method), and with RESULTS.md replaces the text between its lines
<!-- methods:NET:begin --> and <!-- methods:NET:end --> with the table."""
import csv, glob, json, math, os, re, sys

out = sys.argv[1]
order = ["vanilla", "guided", "random", "rubi", "modality_dropout", "ogm_ge", "gblend", "agm", "mmpareto"]

def mean_dspeed(path):
    v = []
    with open(path) as f:
        for r in csv.DictReader(f):
            try:
                x = float(r["d_speed"])
            except (KeyError, ValueError):
                continue
            if math.isfinite(x): v.append(x)
    return sum(v) / len(v) if v else math.nan

rows, stopped = [], []
for run in sorted(glob.glob(os.path.join(out, "*_s*"))):
    m = re.fullmatch(r"(.+)_s(\d+)", os.path.basename(run))
    if not m or not os.path.isdir(run):
        continue
    if not os.path.isfile(os.path.join(run, "summary.json")):
        # a run that stopped: its log's last line says why (a non-finite loss)
        log = run + ".log"
        last = [l.strip() for l in open(log) if l.strip()][-1:] if os.path.isfile(log) else []
        if last and "error: " in last[0]:
            why = last[0].split("error: ", 1)[1].split("; training stopped")[0]
            stopped.append("%s, seed %s: %s" % (m.group(1), m.group(2), why))
        continue
    s = json.load(open(os.path.join(run, "summary.json")))
    u = s.get("util", {})
    ep = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
    bt = s["branch_test_acc"]
    rows.append(dict(method=m.group(1), seed=int(m.group(2)), branches=s["branches"], test_acc=s["test_acc"],
                     acc0=bt[0], acc1=bt[1] if len(bt) > 1 else math.nan,
                     u01=u.get("u(m0|m1)", math.nan), u10=u.get("u(m1|m0)", math.nan), d_util=s.get("d_util", math.nan),
                     d_speed=mean_dspeed(os.path.join(run, "steps.csv")),
                     epoch_s=sum(e["epoch_time_s"] for e in ep) / len(ep) if ep else math.nan, epochs=len(ep)))
if not rows:
    sys.exit("methods_table.py: no finished runs under %s" % out)
cols = ["method", "seed", "test_acc", "acc0", "acc1", "u01", "u10", "d_util", "d_speed", "epoch_s", "epochs"]
with open(os.path.join(out, "methods.csv"), "w") as f:
    f.write(",".join(cols) + "\n")
    for r in rows:
        f.write(",".join("%.6g" % r[c] if isinstance(r[c], float) else str(r[c]) for c in cols) + "\n")

def ms(v):
    v = [x for x in v if math.isfinite(x)]
    if not v: return "–"
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return "%.3f ± %.3f" % (m, sd) if len(v) > 1 else "%.3f" % m

b = rows[0]["branches"]
methods = sorted({r["method"] for r in rows}, key=lambda x: (order.index(x) if x in order else len(order), x))
lines = ["| method | runs | epochs | test acc. | %s acc. | %s acc. | u(%s\\|%s) | u(%s\\|%s) | d_util | mean d_speed | s / epoch |"
         % (b[0], b[1], b[0], b[1], b[1], b[0]), "|---" * 11 + "|"]
for me in methods:
    rs = [r for r in rows if r["method"] == me]
    lines.append("| %s | %d | %d | " % (me, len(rs), max(r["epochs"] for r in rs)) +
                 " | ".join(ms([r[c] for r in rs]) for c in ["test_acc", "acc0", "acc1", "u01", "u10", "d_util", "d_speed"]) +
                 " | %s |" % ms([r["epoch_s"] for r in rs]))
table = "\n".join(lines) + "\n"
if stopped:
    table += "\nStopped, left out of the means:\n\n" + "".join("- %s\n" % x.replace("|", "\\|") for x in stopped)
open(os.path.join(out, "methods.md"), "w").write(table)
print(table, end="")
if len(sys.argv) > 2:
    doc = open(sys.argv[2]).read()
    net = sys.argv[3] if len(sys.argv) > 3 else os.path.basename(os.path.normpath(out))
    a, z = "<!-- methods:%s:begin -->\n" % net, "<!-- methods:%s:end -->" % net
    if a not in doc or z not in doc:
        sys.exit("methods_table.py: %s has no %s ... %s section to replace" % (sys.argv[2], a.strip(), z))
    i, j = doc.index(a) + len(a), doc.index(z)
    open(sys.argv[2], "w").write(doc[:i] + table + doc[j:])
