#!/bin/sh
# bench/resnet.sh — the paper's ModelNet40 net (examples/modelnet40_resnet18.mmnet:
# two ResNet-18 branches joined by three MMTMs, 2 x 3 x 224 x 224 per
# example) against the same model in PyTorch eager (bench/torch_resnet.py)
# on this machine's CPU cores, at batch 8 and 32.
#
# Measures the machine's FP32 peak (bench/peak.c), then for each batch the
# two sides take turns ROUNDS times (default 2): `./prog bench` and
# `torch_resnet.py --device cpu`, each the median of REPS runs (default 3) of
# STEPS training steps (default 3) after a warm-up, then evaluation steps.
# Prints samples/s, peak memory and the ratios mmnet/PyTorch (medians over
# the rounds), then the time per kind of kernel in one training step at
# batch 8 and the convolutions' GFLOP/s against the peak.
#
#   bench/resnet.sh [BUILD_DIR]           (default: build)
#
# Environment: PYTHON (the interpreter with torch; default python3),
# ROUNDS, STEPS, REPS, BATCHES (default "8 32"), THREADS (default: all cores);
# AVX2=1 on an AVX-512 machine: both sides without AVX-512, as on the
# AVX2-only machines of the same kind (mmc build --arch x86-64-v3, the
# peak measured with AVX2, PyTorch with ATEN_CPU_CAPABILITY=avx2 and oneDNN
# with DNNL_MAX_CPU_ISA=AVX2).
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
PY=${PYTHON:-python3}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
threads=${THREADS:-$(nproc)}
rounds=${ROUNDS:-2}; steps=${STEPS:-3}; reps=${REPS:-3}
[ -x "$B/mmc" ] || { echo "bench: no $B/mmc; build first (cmake -S . -B $B && cmake --build $B)"; exit 1; }
arch=native
if [ "${AVX2:-0}" = 1 ]; then
    arch=x86-64-v3
    export ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2 ONEDNN_MAX_CPU_ISA=AVX2
fi
"$B/mmc" build examples/modelnet40_resnet18.mmnet -o "$W/rn" --arch $arch
"$B/mmc" build examples/modelnet40_resnet18.mmnet -o "$W/rn_prof" --profile --arch $arch
${CC:-clang} -O2 -march=$arch -fopenmp bench/peak.c -o "$W/peak"
peak=$("$W/peak")
have_torch=0
"$PY" -c "import torch" 2>/dev/null && have_torch=1

echo "mmnet ResNet-18 x2 CPU benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores," \
     "AVX-512: $(grep -q avx512f /proc/cpuinfo && echo yes || echo no); $threads threads; -march=$arch"
[ $arch = native ] || echo "both sides restricted to AVX2 (AVX2=1): ATEN_CPU_CAPABILITY=$ATEN_CPU_CAPABILITY DNNL_MAX_CPU_ISA=$DNNL_MAX_CPU_ISA"
echo "$peak"
[ $have_torch = 1 ] && echo "PyTorch $("$PY" -c 'import torch; print(torch.__version__)') eager" \
    || echo "PyTorch: not installed for $PY (pip install torch; PYTHON=...): its columns are skipped"
echo
median() { python3 -c "import sys, statistics as s; print(s.median(float(v) for v in sys.argv[1:]))" "$@"; }
field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d['$1'])"; }
printf '%-6s %-9s %12s %12s %10s %12s %12s\n' batch side train/s eval/s "peak MB" "train ratio" "eval ratio"
for b in ${BATCHES:-8 32}; do
    otr=; oev=; omem=; ttr=; tev=; tmem=; rtr=; rev=
    r=0
    while [ $r -lt "$rounds" ]; do
        ours=$("$W/rn" bench --threads "$threads" --batch "$b" --steps "$steps" --reps "$reps")
        o1=$(echo "$ours" | field train_samples_per_s); o2=$(echo "$ours" | field eval_samples_per_s)
        otr="$otr $o1"; oev="$oev $o2"; omem="$omem $(echo "$ours" | field peak_rss_mb)"
        if [ $have_torch = 1 ]; then
            th=$("$PY" bench/torch_resnet.py --device cpu --threads "$threads" --batch "$b" --steps "$steps" --reps "$reps" 2>/dev/null)
            t1=$(echo "$th" | field train_samples_per_s); t2=$(echo "$th" | field eval_samples_per_s)
            ttr="$ttr $t1"; tev="$tev $t2"; tmem="$tmem $(echo "$th" | field peak_rss_mb)"
            rtr="$rtr $(python3 -c "print($o1 / $t1)")"; rev="$rev $(python3 -c "print($o2 / $t2)")"
        fi
        r=$((r + 1))
    done
    printf '%-6s %-9s %12.2f %12.2f %10.0f\n' "$b" mmnet "$(median $otr)" "$(median $oev)" "$(median $omem)"
    [ $have_torch = 1 ] && printf '%-6s %-9s %12.2f %12.2f %10.0f %12.2f %12.2f\n' "$b" pytorch "$(median $ttr)" "$(median $tev)" \
        "$(median $tmem)" "$(median $rtr)" "$(median $rev)"
done
echo
echo "one training step at batch 8 by kind of kernel (mmc build --profile; GFLOP/s against the peak above):"
"$W/rn_prof" bench --profile --threads "$threads" --batch 8 --steps 1 --reps 1 2>&1 | sed -n '/^profile of one .train/,/^total/p' > "$W/prof"
python3 - "$W/prof" <<'PY'
import re, sys, collections
t = collections.Counter(); f = collections.Counter()
total = 0; upd = None
for line in open(sys.argv[1]):
    m = re.match(r"%\d+ (\S+).*?\s([\d.]+)\s+[\d.]+%\s+([\d.]+)\s*$", line)
    if m:
        op, ms, gf = m.group(1), float(m.group(2)), float(m.group(3))
        t[op] += ms; f[op] += ms * gf / 1e3   # GFLOP
    elif line.startswith("total"):
        total = float(line.split()[-1])
    elif line.startswith("update"):
        upd = line.split()[-1]
for op, ms in t.most_common(8):
    print("  %-12s %8.1f ms  %5.1f%%  %6.1f GFLOP/s" % (op, ms, 100 * ms / total, f[op] / ms * 1e3 if ms else 0))
conv = sum(t[o] for o in ("conv", "conv_dx", "conv_dw")); cf = sum(f[o] for o in ("conv", "conv_dx", "conv_dw"))
print("  convolutions: %.1f ms of %.1f, %.1f GFLOP/s" % (conv, total, cf / conv * 1e3))
if upd: print("  optimizer update (after the kernels, one run): %s ms" % upd)
PY
