#!/bin/sh
# test.sh — build mmnet and run the whole test suite, as CI does:
#   1. the release build and every test (front end, gradients, the PyTorch
#      oracle, runtime, end-to-end training on Fashion-MNIST);
#   2. a second build with AddressSanitizer and UndefinedBehaviorSanitizer,
#      and the libFuzzer target over the parser and passes, running all but
#      the end-to-end tests (whose trained programs are built by mmc anyway)
#      and the compile-time stress test (a speed check, not a memory one).
set -eu
cd "$(dirname "$0")/.."
tools/install-deps.sh --test
jobs=$(nproc)
cmake -S . -B build -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"
cmake -S . -B build-asan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMMNET_SANITIZE=ON -DMMNET_FUZZ=ON \
      -DMMNET_CUDA=OFF > /dev/null
cmake --build build-asan -j "$jobs"
ctest --test-dir build-asan --output-on-failure -j "$jobs" -LE "e2e|stress"
echo "test.sh: all tests passed"
