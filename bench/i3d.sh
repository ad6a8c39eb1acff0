#!/bin/sh
# bench/i3d.sh — the NVGesture net (examples/nvgesture_i3d.mmnet: two I3D
# branches of 3-D convolutions joined by six MMTMs) against the same model
# in PyTorch eager (bench/torch_i3d.py) on this machine's CPU cores, at
# batch 1 and 4.
#
# The example's 64 x 224 x 224 clips would make a round take most of an
# hour on two cores, so its input shapes are rewritten to FRAMES x SIZE x
# SIZE (default 16 x 112 x 112: 1/32 of the positions; every layer keeps
# its kind, only its maps shrink) in a temporary copy of the .mmnet.
# Measures the FP32 peak (bench/peak.c), then for each batch the two sides
# take turns ROUNDS times (default 2): `./prog bench` and `torch_i3d.py`,
# each the median of REPS runs (default 2) of STEPS training steps (default
# 1) after a warm-up, then evaluation steps. Prints samples/s, peak memory
# and the ratios mmnet/PyTorch (medians of the rounds' ratios), then one
# training step at batch 1 by kind of kernel and the slowest convolution
# kernels, time, share and GFLOP/s, to read against the peak.
#
#   bench/i3d.sh [BUILD_DIR]              (default: build)
#
# Environment: PYTHON (the interpreter with torch; default python3),
# ROUNDS, STEPS, REPS, BATCHES (default "1 4"), THREADS (default: all
# cores), FRAMES, SIZE, PROF_BATCH (the profile's batch, default 1);
# AVX2=1 on an AVX-512 machine: both sides without AVX-512, as on the
# AVX2-only machines of the same kind (mmc build --arch x86-64-v3, the
# peak measured with AVX2, PyTorch with ATEN_CPU_CAPABILITY=avx2 and oneDNN
# with DNNL_MAX_CPU_ISA=AVX2);
# BASE=path/to/another/mmc adds that build's program ("before", e.g. an
# older commit's mmc) to every round and to the profile, for before/after
# ratios measured in the same run.
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
PY=${PYTHON:-python3}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
threads=${THREADS:-$(nproc)}
rounds=${ROUNDS:-2}; steps=${STEPS:-1}; reps=${REPS:-2}
frames=${FRAMES:-16}; size=${SIZE:-112}
[ -x "$B/mmc" ] || { echo "bench: no $B/mmc; build first (cmake -S . -B $B && cmake --build $B)"; exit 1; }
sed -e "s/\[3, 64, 224, 224\]/[3, $frames, $size, $size]/" -e "s/\[1, 64, 224, 224\]/[1, $frames, $size, $size]/" \
    examples/nvgesture_i3d.mmnet > "$W/i3d.mmnet"
grep -q "\[3, $frames, $size, $size\]" "$W/i3d.mmnet" || { echo "bench: the example's input shapes changed; update this script"; exit 1; }
arch=native
if [ "${AVX2:-0}" = 1 ]; then
    arch=x86-64-v3
    export ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2 ONEDNN_MAX_CPU_ISA=AVX2
fi
"$B/mmc" build "$W/i3d.mmnet" -o "$W/i3d" --arch $arch
"$B/mmc" build "$W/i3d.mmnet" -o "$W/i3d_prof" --profile --arch $arch
if [ -n "${BASE:-}" ]; then
    "$BASE" build "$W/i3d.mmnet" -o "$W/base" --arch $arch
    "$BASE" build "$W/i3d.mmnet" -o "$W/base_prof" --profile --arch $arch
fi
${CC:-clang} -O2 -march=$arch -fopenmp bench/peak.c -o "$W/peak"
peak=$("$W/peak")
have_torch=0
"$PY" -c "import torch" 2>/dev/null && have_torch=1

echo "mmnet I3D x2 CPU benchmark — $(date -u '+%Y-%m-%d %H:%M UTC'), clips ${frames}x${size}x${size} (the example's: 64x224x224)"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores," \
     "AVX-512: $(grep -q avx512f /proc/cpuinfo && echo yes || echo no); $threads threads, -march=$arch; load:$(uptime | sed 's/.*average://')"
[ $arch = native ] || echo "both sides restricted to AVX2 (AVX2=1): ATEN_CPU_CAPABILITY=$ATEN_CPU_CAPABILITY DNNL_MAX_CPU_ISA=$DNNL_MAX_CPU_ISA"
echo "$peak"
[ $have_torch = 1 ] && echo "PyTorch $("$PY" -c 'import torch; print(torch.__version__)') eager" \
    || echo "PyTorch: not installed for $PY (pip install torch; PYTHON=...): its columns are skipped"
echo
median() { python3 -c "import sys, statistics as s; print(s.median(float(v) for v in sys.argv[1:]))" "$@"; }
field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d['$1'])"; }
printf '%-6s %-9s %12s %12s %10s %12s %12s\n' batch side train/s eval/s "peak MB" "train ratio" "eval ratio"
for b in ${BATCHES:-1 4}; do
    otr=; oev=; omem=; ttr=; tev=; tmem=; rtr=; rev=; btr=; bev=; bmem=; rbtr=; rbev=; t1=; t2=; t3=
    r=0
    while [ $r -lt "$rounds" ]; do
        ours=$("$W/i3d" bench --threads "$threads" --batch "$b" --steps "$steps" --reps "$reps")
        o1=$(echo "$ours" | field train_samples_per_s); o2=$(echo "$ours" | field eval_samples_per_s)
        o3=$(echo "$ours" | field peak_rss_mb)
        otr="$otr $o1"; oev="$oev $o2"; omem="$omem $o3"
        if [ -n "${BASE:-}" ]; then
            bs=$("$W/base" bench --threads "$threads" --batch "$b" --steps "$steps" --reps "$reps")
            b1=$(echo "$bs" | field train_samples_per_s); b2=$(echo "$bs" | field eval_samples_per_s)
            btr="$btr $b1"; bev="$bev $b2"; bmem="$bmem $(echo "$bs" | field peak_rss_mb)"
            rbtr="$rbtr $(python3 -c "print($o1 / $b1)")"; rbev="$rbev $(python3 -c "print($o2 / $b2)")"
            echo "  round $((r + 1)), batch $b: before $b1 / $b2 samples/s, $(echo "$bs" | field peak_rss_mb) MB"
        fi
        if [ $have_torch = 1 ]; then
            th=$("$PY" bench/torch_i3d.py --threads "$threads" --batch "$b" --frames "$frames" --size "$size" --steps "$steps" --reps "$reps" 2>/dev/null)
            t1=$(echo "$th" | field train_samples_per_s); t2=$(echo "$th" | field eval_samples_per_s)
            t3=$(echo "$th" | field peak_rss_mb)
            ttr="$ttr $t1"; tev="$tev $t2"; tmem="$tmem $t3"
            rtr="$rtr $(python3 -c "print($o1 / $t1)")"; rev="$rev $(python3 -c "print($o2 / $t2)")"
        fi
        echo "  round $((r + 1)), batch $b: mmnet $o1 / $o2 samples/s, $o3 MB${t1:+; pytorch $t1 / $t2 samples/s, $t3 MB}; load:$(uptime | sed 's/.*average://')"
        r=$((r + 1))
    done
    printf '%-6s %-9s %12.3f %12.3f %10.0f\n' "$b" mmnet "$(median $otr)" "$(median $oev)" "$(median $omem)"
    [ -n "${BASE:-}" ] && printf '%-6s %-9s %12.3f %12.3f %10.0f %12.2f %12.2f   (mmnet/before)\n' "$b" before "$(median $btr)" "$(median $bev)" \
        "$(median $bmem)" "$(median $rbtr)" "$(median $rbev)"
    [ $have_torch = 1 ] && printf '%-6s %-9s %12.3f %12.3f %10.0f %12.2f %12.2f\n' "$b" pytorch "$(median $ttr)" "$(median $tev)" \
        "$(median $tmem)" "$(median $rtr)" "$(median $rev)"
done
pb=${PROF_BATCH:-1}
echo
echo "one training step at batch $pb by kind of kernel (mmc build --profile; GFLOP/s against the peak above):"
for prog in ${BASE:+base_prof} i3d_prof; do
[ "$prog" = base_prof ] && echo "before (BASE):" || { [ -n "${BASE:-}" ] && echo "after:"; }
"$W/$prog" bench --profile --threads "$threads" --batch "$pb" --steps 1 --reps 1 2>&1 | sed -n '/^profile of one .train/,/^total/p' > "$W/prof"
python3 - "$W/prof" <<'PY'
import re, sys, collections
t = collections.Counter(); f = collections.Counter(); rows = []
total = 0; upd = None
for line in open(sys.argv[1]):
    m = re.match(r"%\d+ (\S+).*?\s([\d.]+)\s+[\d.]+%\s+([\d.]+)\s*$", line)
    if m:
        op, ms, gf = m.group(1), float(m.group(2)), float(m.group(3))
        t[op] += ms; f[op] += ms * gf / 1e3   # GFLOP
        if op.startswith("conv"): rows.append((ms, gf, line.strip()))
    elif line.startswith("total"):
        total = float(line.split()[-1])
    elif line.startswith("update"):
        upd = line.split()[-1]
for op, ms in t.most_common(10):
    print("  %-12s %8.1f ms  %5.1f%%  %6.1f GFLOP/s" % (op, ms, 100 * ms / total, f[op] / ms * 1e3 if ms else 0))
for o in ("conv", "conv_dx", "conv_dw"):
    if t[o]: print("  %-12s %.1f GFLOP/s" % (o, f[o] / t[o] * 1e3))
conv = sum(t[o] for o in ("conv", "conv_dx", "conv_dw")); cf = sum(f[o] for o in ("conv", "conv_dx", "conv_dw"))
print("  convolutions: %.1f ms of %.1f, %.1f GFLOP/s" % (conv, total, cf / conv * 1e3 if conv else 0))
if upd: print("  optimizer update (after the kernels, one run): %s ms" % upd)
print("the slowest convolution kernels:")
for ms, gf, line in sorted(rows, reverse=True)[:12]:
    print("  " + line[:150])
PY
done
