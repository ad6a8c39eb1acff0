#!/bin/sh
# gpu-check.sh — on a machine with an NVIDIA GPU: build mmnet with the CUDA
# back end for this GPU, compare every CUDA kernel (forward and backward, in
# every graph variant) with the C back end on random data, one training step
# and ten steps of cgmnist from the same weights; then time training and
# evaluation of cgmnist (batch 128) and of the two-branch ResNet-18 (batch 8
# and 64, 224x224) against PyTorch eager and torch.compile, and print one
# table of ratios (the figures for bench/RESULTS.md). cgmnist is timed twice:
# GEMMs by cuBLAS (the default) and by the generated tiled kernel.
#
#   tools/gpu-check.sh [BUILD_DIR]      (default build-gpu; needs nvcc; PyTorch for the comparison)
set -eu
cd "$(dirname "$0")/.."
B=${1:-build-gpu}
command -v nvidia-smi > /dev/null || { echo "gpu-check: no nvidia-smi: this needs a machine with an NVIDIA GPU"; exit 1; }
gpu=$(nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader | head -1)
arch=$(echo "$gpu" | sed 's/.*, *//; s/\.//')
echo "== $gpu (sm_$arch), $(date -u '+%Y-%m-%d %H:%M UTC')"
cmake -S . -B "$B" -DCMAKE_C_COMPILER="$(command -v clang || command -v cc)" -DCMAKE_BUILD_TYPE=Release \
      -DMMNET_CUDA_ARCHS="$arch" > /dev/null
cmake --build "$B" -j "$(nproc)" > "$B/build.log" 2>&1 || { tail -30 "$B/build.log"; exit 1; }

echo "== kernels, one step, ten steps: CUDA against the C back end"
fail=0
for m in cgmnist grad_mmtm grad_layers2d grad_layers3d; do
    echo "-- $m"
    "$B/tests/gpu_check_$m" || fail=1
done

echo "== throughput (samples/s, medians of 5 runs of 10 steps after a warm-up)"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$B/mmc" build examples/cgmnist.mmnet --target cuda --arch "sm_$arch" -o "$W/cg"
"$B/mmc" build examples/cgmnist.mmnet --target cuda --arch "sm_$arch" --gemm tiled -o "$W/cg-tiled"
"$B/mmc" build examples/modelnet40_resnet18.mmnet --target cuda --arch "sm_$arch" -o "$W/rn"
row() { # MODEL BATCH OURS-JSON TORCH-EAGER-JSON TORCH-COMPILE-JSON
    python3 - "$@" <<'PY'
import json, sys
m, b, ours, eager, comp = sys.argv[1], sys.argv[2], *[json.loads(s) if s.strip().startswith("{") else {} for s in sys.argv[3:6]]
def g(d, k): return d.get(k)
def r(a, c): return f"{a / c:6.2f}" if a and c else "   —  "
for k, name in (("train_samples_per_s", "train"), ("eval_samples_per_s", "eval")):
    o, e, c = g(ours, k), g(eager, k), g(comp, k)
    print(f"{m:22s} {b:>5s} {name:5s} {o or 0:12.1f} {e or 0:12.1f} {c or 0:12.1f}   x eager {r(o, e)}   x compile {r(o, c)}")
PY
}
printf '%-22s %5s %-5s %12s %12s %12s\n' model batch step mmnet "torch eager" "torch compile"
row cgmnist 128 "$("$W/cg" bench --batch 128)" \
    "$(python3 bench/torch_cgmnist.py --device cuda --batch 128 2>/dev/null | tail -1)" \
    "$(python3 bench/torch_cgmnist.py --device cuda --batch 128 --compile 2>/dev/null | tail -1)"
row "cgmnist --gemm tiled" 128 "$("$W/cg-tiled" bench --batch 128)" \
    "$(python3 bench/torch_cgmnist.py --device cuda --batch 128 2>/dev/null | tail -1)" ""
for bs in 8 64; do
    row modelnet40_resnet18 "$bs" "$("$W/rn" bench --batch "$bs" --steps 5 --reps 3)" \
        "$(python3 bench/torch_resnet.py --device cuda --batch "$bs" --steps 5 --reps 3 2>/dev/null | tail -1)" \
        "$(python3 bench/torch_resnet.py --device cuda --batch "$bs" --steps 5 --reps 3 --compile 2>/dev/null | tail -1)"
done
exit $fail
