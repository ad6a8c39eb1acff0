#!/bin/sh
# gpu-bundle.sh — on any machine with the CUDA toolkit (no GPU needed), build
# every program tools/gpu-check.sh runs, for one GPU architecture, into one
# folder, together with the shared libraries they need that a GPU machine
# with only the CUDA driver, cuBLAS and a C compiler may lack (cJSON, OpenMP,
# zlib, the CUDA runtime). For GPU machines without flex, bison or the -dev
# packages:
#
#   tools/gpu-bundle.sh 90 gpu-bundle        here (sm_90: H100, H200)
#   tools/gpu-check.sh --bundle gpu-bundle   there
#
# It also writes gpu-bundle.tar.xz (about 51 MB: the programs link FFmpeg,
# whose libraries are most of the 190 MB), which gpu-check.sh takes in place
# of the folder: `tools/gpu-check.sh --bundle gpu-bundle.tar.xz`.
#
# The C side (gpu_check's reference kernels, the CPU build of cgmnist) is
# compiled for x86-64-v3 (AVX2), so the bundle runs on any recent x86-64 host.
set -eu
cd "$(dirname "$0")/.."
arch=${1:?usage: tools/gpu-bundle.sh ARCH [DIR]   (ARCH: 80, 90, ...; DIR default gpu-bundle)}
D=${2:-gpu-bundle}
B=${TMPDIR:-/tmp}/mmnet-gpu-bundle-build
cmake -S . -B "$B" -DCMAKE_C_COMPILER="$(command -v clang || command -v cc)" -DCMAKE_BUILD_TYPE=Release \
      -DMMNET_CUDA_ARCHS="$arch" -DMMNET_MARCH=x86-64-v3 > /dev/null
checks="gpu_check_cgmnist gpu_check_grad_mmtm gpu_check_grad_layers2d gpu_check_grad_layers3d gpu_check_wide
        gpu_check_cgmnist_cudnn gpu_check_grad_layers2d_cudnn gpu_check_grad_layers3d_cudnn"
# shellcheck disable=SC2086
cmake --build "$B" -j "$(nproc)" --target mmc $checks > "$B/build.log" 2>&1 || { tail -30 "$B/build.log"; exit 1; }
rm -rf "$D"
mkdir -p "$D/bin" "$D/lib"
for c in $checks; do cp "$B/tests/$c" "$D/bin/"; done
mmc() { "$B/mmc" "$@" > /dev/null; }
mmc build examples/cgmnist.mmnet --target cuda --arch "sm_$arch" -o "$D/bin/cgmnist"
mmc build examples/cgmnist.mmnet --target cuda --arch "sm_$arch" --gemm tiled -o "$D/bin/cgmnist-tiled"
mmc build examples/cgmnist.mmnet --target cuda --arch "sm_$arch" --profile -o "$D/bin/cgmnist-profile"
mmc build examples/cgmnist.mmnet --arch x86-64-v3 -o "$D/bin/cgmnist-cpu"
mmc build examples/modelnet40_resnet18.mmnet --target cuda --arch "sm_$arch" -o "$D/bin/modelnet40_resnet18"
mmc build examples/modelnet40_resnet18.mmnet --target cuda --arch "sm_$arch" --profile -o "$D/bin/modelnet40_resnet18-profile"
# Convolutions by cuDNN (--conv cudnn), timed against the default im2col + GEMM.
mmc build examples/cgmnist.mmnet --target cuda --arch "sm_$arch" --conv cudnn -o "$D/bin/cgmnist-cudnn"
mmc build examples/modelnet40_resnet18.mmnet --target cuda --arch "sm_$arch" --conv cudnn -o "$D/bin/modelnet40_resnet18-cudnn"
mmc build examples/modelnet40_resnet18.mmnet --target cuda --arch "sm_$arch" --conv cudnn --profile \
    -o "$D/bin/modelnet40_resnet18-cudnn-profile"
# The training programs of tests/emu_train.sh, gblend_emu.sh and mmp_emu.sh
# (every policy's host hooks), CUDA and C builds: gpu-check runs those tests
# with the GPU in place of the emulation.
for m in cuda_train cuda_gblend; do
    mmc build "tests/e2e/$m.mmnet" --target cuda --arch "sm_$arch" -o "$D/bin/$m"
    mmc build "tests/e2e/$m.mmnet" --arch x86-64-v3 -o "$D/bin/$m-cpu"
done
# Libraries beyond the C library's own, libstdc++, cuBLAS and cuDNN (hundreds
# of megabytes, and part of every CUDA installation and of PyTorch's wheels).
for f in "$D"/bin/*; do ldd "$f"; done | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
    grep -Ev '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|libcublas|libcublasLt|libcudnn)\.so' |
    while read -r l; do cp -L "$l" "$D/lib/"; done
# Without their symbol tables the programs are about 13% smaller.
! command -v strip > /dev/null || strip "$D"/bin/*
echo "$arch" > "$D/arch"
tar -C "$(dirname "$D")" -cf - "$(basename "$D")" | xz -T0 -9 > "$D.tar.xz"
echo "gpu-bundle: $D (sm_$arch): $(ls "$D/bin" | tr '\n' ' ')"
echo "$(du -sh "$D" | cut -f1) in $D, $(du -sh "$D.tar.xz" | cut -f1) in $D.tar.xz"
