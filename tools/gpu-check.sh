#!/bin/sh
# gpu-check.sh — on a machine with an NVIDIA GPU: compare every CUDA kernel
# (forward and backward, in every graph variant) with the C back end on
# random data, one training step and ten steps of cgmnist from the same
# weights; run the CUDA training programs of tests/emu_train.sh,
# gblend_emu.sh and mmp_emu.sh (every policy) against their C builds; train cgmnist on the GPU and evaluate its checkpoint with both
# builds (when Fashion-MNIST is there); then time training and evaluation of
# cgmnist (batch 128) and of the two-branch ResNet-18 (batch 8 and 64,
# 224x224) against PyTorch eager and torch.compile, and print one table of
# ratios (the figures for bench/RESULTS.md). cgmnist is timed three times:
# GEMMs by cuBLAS (the default), by the generated tiled kernel, and with
# convolutions by cuDNN (--conv cudnn); ResNet-18 with both convolution methods,
# in float32 and TF32, and (batch 64) by cuDNN on copies in NCHW order and
# with the algorithms cuDNN measures fastest.
#
#   tools/gpu-check.sh                  build the programs here first (tools/gpu-bundle.sh; needs
#                                       the build dependencies and nvcc)
#   tools/gpu-check.sh --bundle DIR     run the programs tools/gpu-bundle.sh built elsewhere
#                                       (DIR, or the DIR.tar.xz it also writes)
#
# Environment: MMNET_DATA, the Fashion-MNIST IDX files (default
# /usr/share/datasets/fashion-mnist; the training check is skipped without
# them); GPU_CHECK_LOG, a folder that receives the per-kernel profile and the
# training run's summary; GPU_CHECK_TORCH_TIMEOUT, seconds for each PyTorch
# measurement (default 300); GPU_CHECK_COMPILE=0 leaves out torch.compile
# (minutes of compilation). PyTorch's columns stay empty when it is absent.
set -eu
cd "$(dirname "$0")/.."
command -v nvidia-smi > /dev/null || { echo "gpu-check: no nvidia-smi: this needs a machine with an NVIDIA GPU"; exit 1; }
gpu=$(nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader | head -1)
arch=$(echo "$gpu" | sed 's/.*, *//; s/\.//')
echo "== $gpu (sm_$arch), $(date -u '+%Y-%m-%d %H:%M UTC')"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
if [ "${1:-}" = --bundle ]; then
    D=${2:?usage: tools/gpu-check.sh --bundle DIR|DIR.tar.xz}
    case $D in
    *.tar.xz)
        tar -C "$W" -xJf "$D" || { echo "gpu-check: cannot unpack $D"; exit 1; }
        D=$W/$(basename "$D" .tar.xz) ;;
    esac
else
    D=${TMPDIR:-/tmp}/mmnet-gpu-bundle
    tools/gpu-bundle.sh "$arch" "$D" > /dev/null
fi
[ "$(cat "$D/arch")" = "$arch" ] || echo "gpu-check: warning: $D was built for sm_$(cat "$D/arch"), this GPU is sm_$arch"
BIN=$D/bin
LD_LIBRARY_PATH="$(cd "$D/lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
# cuBLAS and cuDNN from the CUDA installation or from PyTorch's wheels, when
# the loader does not know them. Without cuDNN the --conv cudnn programs are
# left out.
cudnn=1
for l in libcublas.so libcublasLt.so libcudnn.so; do
    need=$(ldd "$BIN"/* 2> /dev/null | grep "$l.* not found" | grep -o "$l\.[0-9]*" | head -1)
    [ -n "$need" ] || continue
    site=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null || true)
    # shellcheck disable=SC2086
    f=$(find /usr/local /opt /usr/lib $site -name "$need" 2>/dev/null | head -1)
    if [ -n "$f" ]; then
        LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$(dirname "$f")
    elif [ "$l" = libcudnn.so ]; then
        echo "gpu-check: $need is not installed (CUDA toolkit, or pip nvidia-cudnn): the cuDNN programs are left out"; cudnn=0
    else
        echo "gpu-check: $need is not installed (CUDA toolkit, or pip nvidia-cublas)"; exit 1
    fi
done
LOG=${GPU_CHECK_LOG:-}
fail=0

echo "== kernels, one step, ten steps: CUDA against the C back end"
checks="cgmnist grad_mmtm grad_layers2d grad_layers3d wide"
[ "$cudnn" = 0 ] || checks="$checks cgmnist_cudnn grad_layers2d_cudnn grad_layers3d_cudnn"
for m in $checks; do
    echo "-- $m"
    timeout 600 "$BIN/gpu_check_$m" || fail=1
done
for m in grad_layers2d_cudnn grad_layers3d_cudnn; do
    [ "$cudnn" = 1 ] || break
    echo "-- $m, operands copied to NCHW order (MMNET_CUDNN_LAYOUT=nchw)"
    MMNET_CUDNN_LAYOUT=nchw timeout 600 "$BIN/gpu_check_$m" || fail=1
done

echo "== training programs, every policy: CUDA against the C program (tests/emu_train.sh, gblend_emu.sh, mmp_emu.sh)"
# Those tests build the C program with mmc; here a stand-in for
# "mmc build MMNET -o OUT" copies the bundle's C build of MMNET.
printf '#!/bin/sh\ncp "%s/$(basename "$2" .mmnet)-cpu" "$4"\n' "$(cd "$BIN" && pwd)" > "$W/mmc"
chmod +x "$W/mmc"
for t in "emu_train cuda_train" "gblend_emu cuda_gblend" "mmp_emu cuda_gblend"; do
    # shellcheck disable=SC2086
    set -- $t
    echo "-- $1"
    timeout 300 bash "tests/$1.sh" "$W/mmc" "$BIN/$2" "tests/e2e/$2.mmnet" "$W/$1" || fail=1
done

echo "== cgmnist trained on the GPU; its checkpoint evaluated by the CUDA and the C build"
DATA=${MMNET_DATA:-/usr/share/datasets/fashion-mnist}
if [ -f "$DATA/train-images-idx3-ubyte.gz" ] || [ -f "$DATA/train-images-idx3-ubyte" ]; then
    t0=$(date +%s)
    if "$BIN/cgmnist" train --data "$DATA" --epochs 2 --out "$W/run" --quiet > "$W/train.log" 2>&1; then
        echo "2 epochs in $(($(date +%s) - t0)) s; $(grep -E '^epoch' "$W/train.log" | tail -1)"
        acc() { "$@" eval --checkpoint "$W/run/best.ckpt" --data "$DATA" | awk '/^test accuracy/ {print $3}'; }
        a=$(acc "$BIN/cgmnist"); c=$(acc "$BIN/cgmnist-cpu")
        echo "test accuracy of best.ckpt: cuda $a, c $c"
        awk -v a="$a" -v c="$c" 'BEGIN { d = a - c; if (d < 0) d = -d; exit !(a != "" && d <= 0.002) }' ||
            { echo "FAIL: the two builds disagree on the GPU-trained checkpoint"; fail=1; }
    else
        tail -20 "$W/train.log"; echo "FAIL: training on the GPU"; fail=1
    fi
    [ -z "$LOG" ] || cp "$W/train.log" "$W/run/summary.json" "$LOG/" 2>/dev/null || true
else
    echo "(no Fashion-MNIST in $DATA: skipped; set MMNET_DATA)"
fi

profile() { # NAME PROGRAM BATCH: the slowest kernels of one training step
    echo "== time and GFLOP/s of the slowest CUDA kernels, one $1 training step at batch $3"
    "$2" bench --batch "$3" --steps 1 --reps 1 --profile 2> "$W/profile-$1.txt" > /dev/null || fail=1
    head -2 "$W/profile-$1.txt"
    awk '/^total/ {exit} NR > 2 {print $(NF - 1), $0}' "$W/profile-$1.txt" | sort -g -r | cut -d' ' -f2- | head -12
    grep -m1 '^total' "$W/profile-$1.txt" || true
    [ -z "$LOG" ] || cp "$W/profile-$1.txt" "$LOG/"
}
profile cgmnist "$BIN/cgmnist-profile" 128
profile modelnet40_resnet18 "$BIN/modelnet40_resnet18-profile" 64
[ "$cudnn" = 0 ] || profile modelnet40_resnet18-cudnn "$BIN/modelnet40_resnet18-cudnn-profile" 64
[ "$cudnn" = 0 ] || {
    echo "== cuDNN's plans for ResNet-18 at batch 64 (algorithm; NCHW: operands copied, else channel-major strides)"
    MMNET_VERBOSE=1 "$BIN/modelnet40_resnet18-cudnn" bench --batch 64 --steps 1 --reps 1 2> "$W/plans.txt" > /dev/null || fail=1
    echo "$(grep -c "cuDNN:.*batch 64" "$W/plans.txt") plans, $(grep -c "cuDNN:.*batch 64.*NCHW" "$W/plans.txt") of them on NCHW copies"
    grep "cuDNN:.*batch 64" "$W/plans.txt" | sed 's/.*: algorithm/algorithm/; s/, workspace.*bytes//' | sort | uniq -c | sort -rn | head -6
    [ -z "$LOG" ] || cp "$W/plans.txt" "$LOG/"
}

echo "== throughput (samples/s after a warm-up; medians of 5 runs of 10 steps, ResNet-18 of 3 runs of 5)"
row() { # MODEL BATCH OURS-JSON TORCH-EAGER-JSON TORCH-COMPILE-JSON
    python3 - "$@" <<'PY'
import json, sys
def parse(s):
    for line in reversed(s.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}
m, b = sys.argv[1], sys.argv[2]
ours, eager, comp = (parse(s) for s in sys.argv[3:6])
def r(a, c): return f"{a / c:6.2f}" if a and c else "   -  "
for k, name in (("train_samples_per_s", "train"), ("eval_samples_per_s", "eval")):
    o, e, c = ours.get(k), eager.get(k), comp.get(k)
    print(f"{m:22s} {b:>5s} {name:5s} {o or 0:12.1f} {e or 0:12.1f} {c or 0:12.1f}   x eager {r(o, e)}   x compile {r(o, c)}", flush=True)
PY
}
ptc() { [ "${GPU_CHECK_COMPILE:-1}" = 0 ] || pt "$@" --compile; }
pt() { timeout "${GPU_CHECK_TORCH_TIMEOUT:-300}" python3 "$@" 2> "$W/torch.err" || { tail -3 "$W/torch.err" >&2; true; }; }
printf '%-22s %5s %-5s %12s %12s %12s\n' model batch step mmnet "torch eager" "torch compile"
eager=$(pt bench/torch_cgmnist.py --device cuda --batch 128)
row cgmnist 128 "$("$BIN/cgmnist" bench --batch 128)" "$eager" "$(ptc bench/torch_cgmnist.py --device cuda --batch 128)"
row "cgmnist --gemm tiled" 128 "$("$BIN/cgmnist-tiled" bench --batch 128)" "$eager" ""
[ "$cudnn" = 0 ] || row "cgmnist --conv cudnn" 128 "$("$BIN/cgmnist-cudnn" bench --batch 128)" "$eager" ""
# PyTorch's cuDNN convolutions use TF32 tensor cores by default; the rows
# "TF32" are ours with MMNET_TF32=1 (cuBLAS TF32), the default being float32.
for bs in 8 64; do
    e=$(pt bench/torch_resnet.py --device cuda --batch "$bs" --steps 5 --reps 3)
    c=$(ptc bench/torch_resnet.py --device cuda --batch "$bs" --steps 5 --reps 3)
    row modelnet40_resnet18 "$bs" "$("$BIN/modelnet40_resnet18" bench --batch "$bs" --steps 5 --reps 3)" "$e" "$c"
    row "modelnet40_resnet18 TF32" "$bs" "$(MMNET_TF32=1 "$BIN/modelnet40_resnet18" bench --batch "$bs" --steps 5 --reps 3)" "$e" "$c"
    [ "$cudnn" = 1 ] || continue
    rn="$BIN/modelnet40_resnet18-cudnn"
    row "resnet18 cudnn" "$bs" "$("$rn" bench --batch "$bs" --steps 5 --reps 3)" "$e" "$c"
    row "resnet18 cudnn TF32" "$bs" "$(MMNET_TF32=1 "$rn" bench --batch "$bs" --steps 5 --reps 3)" "$e" "$c"
    [ "$bs" = 64 ] || continue
    row "resnet18 cudnn NCHW TF32" "$bs" "$(MMNET_CUDNN_LAYOUT=nchw MMNET_TF32=1 "$rn" bench --batch "$bs" --steps 5 --reps 3)" "$e" "$c"
    row "resnet18 cudnn find TF32" "$bs" "$(MMNET_CUDNN_FIND=1 MMNET_TF32=1 "$rn" bench --batch "$bs" --steps 5 --reps 3)" "$e" "$c"
done
exit $fail
