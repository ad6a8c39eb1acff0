#!/bin/bash
# report_test.sh MMC ROOT WORKDIR — `prog report RUNDIR`: after a short
# guided run, the HTML page has every curve with one point per epoch (per
# step for d_speed), one mark per re-balancing step, the utilization rates
# and the settings; a run still going (no summary.json) is drawn as far as
# it got; a missing run or a malformed metrics line is an error naming the
# file (and line). With Chromium installed, the page is rendered headless
# and the screenshot must show the curves' colours.
set -u
MMC=$1; ROOT=$2; W=$3
rm -rf "$W"; mkdir -p "$W"
. "$(dirname "$0")/lib.sh"

"$MMC" build "$ROOT/tests/e2e/cuda_train.mmnet" -o "$W/prog" > /dev/null || { bad "mmc build"; exit 1; }
"$W/prog" train --quiet --epochs 3 --out "$W/run" > "$W/train.out" 2>&1 || { bad "train"; tail -5 "$W/train.out"; exit 1; }
expect 0 "wrote $W/run/report.html" "$W/prog" report "$W/run"
expect 0 "wrote $W/r.html" "$W/prog" report "$W/run" -o "$W/r.html"
cmp -s "$W/run/report.html" "$W/r.html" || bad "report -o wrote a different page"

python3 - "$W/run" <<'PY' || bad "the report's content"
import csv, json, sys
from html.parser import HTMLParser
run = sys.argv[1]
class P(HTMLParser):
    def __init__(self):
        super().__init__(); self.series = {}; self.marks = 0; self.svgs = []; self.cells = []
    def handle_starttag(self, tag, a):
        a = dict(a)
        if tag == "svg": self.svgs.append(a["id"]); self.cur = a["id"]
        if tag == "polyline": self.series[(self.cur, a["data-name"])] = len(a["points"].split())
        if tag == "line" and a.get("class") == "mark": self.marks += 1
    def handle_data(self, d): self.cells.append(d.strip())
p = P(); p.feed(open(run + "/report.html").read())
epochs = len(open(run + "/metrics.jsonl").readlines())
steps = list(csv.DictReader(open(run + "/steps.csv")))
summary = json.load(open(run + "/summary.json"))
assert p.svgs == ["chart-loss", "chart-accuracy", "chart-d_speed", "chart-lr", "chart-throughput"], p.svgs
for key in [("chart-loss", "training"), ("chart-loss", "validation"), ("chart-accuracy", "test"),
            ("chart-accuracy", "x, test"), ("chart-accuracy", "y, validation"), ("chart-throughput", "in the steps")]:
    assert p.series.get(key) == epochs, (key, p.series.get(key), epochs)
assert p.series[("chart-d_speed", "d_speed")] == len(steps), (p.series, len(steps))
rebal = sum(r["kind"] != "regular" for r in steps)
assert rebal > 0 and p.marks == rebal, (p.marks, rebal)
assert "u(m0|m1)" in p.cells and "d_util" in p.cells, "no utilization table"
assert "%.4f" % summary["test_acc"] in p.cells, "no test accuracy"
assert "policy" in p.cells and "guided" in p.cells, "no settings table"
print("report: %d epochs, %d steps, %d re-balancing marks" % (epochs, len(steps), p.marks))
PY

# A run still going: no summary.json yet.
mkdir -p "$W/going"; cp "$W/run/metrics.jsonl" "$W/run/steps.csv" "$W/going/"
expect 0 "wrote" "$W/prog" report "$W/going"
grep -q "has not finished" "$W/going/report.html" || bad "an unfinished run is not said to be"
# Errors.
expect 1 "no-such-run/metrics.jsonl" "$W/prog" report "$W/no-such-run"
mkdir -p "$W/broken"; { head -1 "$W/run/metrics.jsonl"; echo '{"epoch": 2, "train_loss": '; } > "$W/broken/metrics.jsonl"
expect 1 "broken/metrics.jsonl:2: not a metrics line" "$W/prog" report "$W/broken"
expect 2 "'report' needs a run directory" "$W/prog" report
expect 2 "unknown option '--bogus'" "$W/prog" report "$W/run" --bogus
[ ! -e "$W/broken/report.html" ] || bad "a failed report left a page"

# Rendered by a browser.
chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -n "$chrome" ]; then
    "$chrome" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1000,1900 \
        --screenshot="$W/shot.png" "file://$W/run/report.html" > "$W/chrome.out" 2>&1 || { bad "chromium could not render"; tail -3 "$W/chrome.out"; }
    python3 - "$W/shot.png" <<'PY' || bad "the rendered page does not show the curves"
import struct, sys, zlib
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n"
pos, idat, w = 8, b"", 0
while pos < len(b):
    n, t = struct.unpack(">I4s", b[pos:pos + 8]); d = b[pos + 8:pos + 8 + n]; pos += 12 + n
    if t == b"IHDR": w, h, depth, ctype = struct.unpack(">IIBB", d[:10])
    if t == b"IDAT": idat += d
assert depth == 8 and ctype in (2, 6), (depth, ctype)
bpp = 3 if ctype == 2 else 4
raw = zlib.decompress(idat); stride = w * bpp; rows = []; prev = bytearray(stride); i = 0
for y in range(h):
    f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0; up = prev[x]; c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + up) & 255
        elif f == 3: line[x] = (line[x] + (a + up) // 2) & 255
        elif f == 4:
            pa, pb, pc = abs(up - c), abs(a - c), abs(a + up - 2 * c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
    rows.append(line); prev = line
def count(rgb):
    return sum(1 for r in rows for x in range(0, stride, bpp) if abs(r[x] - rgb[0]) < 40 and abs(r[x + 1] - rgb[1]) < 40 and abs(r[x + 2] - rgb[2]) < 40)
blue, red = count((0x1f, 0x77, 0xb4)), count((0xd6, 0x27, 0x28))
assert blue > 500 and red > 200, (blue, red)
print("rendered: %d blue and %d red curve pixels" % (blue, red))
PY
else
    echo "note: Chromium is not installed; the page was checked but not rendered"
fi
[ $fail = 0 ] && echo "report_test: ok"
exit $fail
