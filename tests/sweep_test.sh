#!/bin/bash
# sweep_test.sh MMC ROOT WORKDIR — `mmc sweep` end to end on a tiny model
# (tests/e2e/resume.mmnet, synthetic data, one epoch per run):
#  - 2 learning rates x 2 seeds give four finished runs in sweep.csv, a
#    well-formed sweep.svg, and report.html: the sweep's panels inline, one
#    table row per run, each linking to that run's own report;
#  - a second call keeps the finished runs (an interrupted sweep continues);
#  - the user's label is escaped in the SVG and the HTML;
#  - failed runs are marked, and the sweep's status says so;
#  - wrong options give clear errors.
set -u
MMC=$1; ROOT=$2; W=$3
rm -rf "$W"; mkdir -p "$W"
. "$(dirname "$0")/lib.sh"
NET=$ROOT/tests/e2e/resume.mmnet

"$MMC" sweep "$NET" --out "$W/s" --lrs 2 --seeds 2 --jobs 2 --label 'tiny<&>' -- --epochs 1 --policy vanilla \
    > "$W/s.out" 2> "$W/s.err" || { bad "sweep"; cat "$W/s.err"; }
[ "$(grep -c '^/' "$W/s.out")" = 3 ] || { bad "the sweep prints its three files once each"; cat "$W/s.out"; }
python3 - "$W/s" <<'PY' || bad "sweep.csv, sweep.svg or report.html"
import csv, html.parser, os, sys, xml.etree.ElementTree as ET
d = sys.argv[1]
rows = list(csv.DictReader(open(d + "/sweep.csv")))
assert len(rows) == 4 and all(r["status"] == "ok" for r in rows), rows
assert sorted({r["seed"] for r in rows}) == ["1", "2"] and len({r["lr"] for r in rows}) == 2, rows
assert all(r["label"] == "tiny<&>" for r in rows)
ET.parse(d + "/sweep.svg")                       # the label is escaped: the SVG is well-formed XML

class P(html.parser.HTMLParser):
    def __init__(s):
        super().__init__(); s.links = []; s.rows = 0; s.svgs = 0; s.text = ""
    def handle_starttag(s, t, a):
        if t == "a": s.links.append(dict(a)["href"])
        if t == "tr": s.rows += 1
        if t == "svg": s.svgs += 1
    def handle_data(s, data): s.text += data
p = P(); p.feed(open(d + "/report.html").read())
assert p.svgs == 1 and p.rows == 5, (p.svgs, p.rows)   # the header row and four runs
assert "sweep tiny<&>" in p.text and "train --epochs 1 --policy vanilla" in p.text, p.text[:300]
assert len(p.links) == 4, p.links
for l in p.links:
    r = open(os.path.join(d, l)).read()               # each run's own report, drawn from its files
    assert "<svg" in r and "d_speed" in r, l
for r in rows:   # the table shows each run's test accuracy
    assert "%.4f" % float(r["test_acc"]) in p.text, r
PY

# 2. Called again, the finished runs are kept.
stamp=$(stat -c %y "$W"/s/runs/*/summary.json | md5sum)
"$MMC" sweep "$NET" --out "$W/s" --lrs 2 --seeds 2 --jobs 2 -- --epochs 1 --policy vanilla > /dev/null 2> "$W/s2.err" \
    || { bad "sweep again"; cat "$W/s2.err"; }
[ "$(stat -c %y "$W"/s/runs/*/summary.json | md5sum)" = "$stamp" ] || bad "the second sweep trained again"
grep -q '\[[0-9]/4\]' "$W/s2.err" && bad "the second sweep started runs: $(cat "$W/s2.err")"

# 3. Failed runs: marked in the CSV and the report, and the status is 1.
expect 1 "1 of 1 runs failed" "$MMC" sweep "$NET" --out "$W/f" --lrs 1 --seeds 1 -- --no-such-flag
grep -q ',failed,' "$W/f/sweep.csv" || bad "the failed run is not marked in sweep.csv"
grep -q "class='failed'" "$W/f/report.html" || bad "the failed run is not marked in report.html"

# 4. Errors.
expect 2 "needs --out DIR" "$MMC" sweep "$NET"
expect 2 "needs a .mmnet file" "$MMC" sweep --out "$W/e"
expect 2 "\-\-lr-min is above --lr-max" "$MMC" sweep "$NET" --out "$W/e" --lr-min 0.1 --lr-max 0.01
expect 2 "\-\-seeds needs a number in \[1, 10000\], not '0'" "$MMC" sweep "$NET" --out "$W/e" --seeds 0
expect 2 "unknown option '--bogus'" "$MMC" sweep "$NET" --out "$W/e" --bogus
expect 2 "\-\-plot needs CSV files and -o FIGURE.svg" "$MMC" sweep --plot "$W/s/sweep.csv"
expect 1 "is not a sweep CSV" "$MMC" sweep --plot "$NET" -o "$W/e.svg"

[ $fail = 0 ] && say "sweep: all checks passed"
exit $fail
