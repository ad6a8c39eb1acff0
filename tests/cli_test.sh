#!/bin/sh
# mmc's command line: help, version, and wrong usage exits 2 with a message
# naming the offending word; a missing file exits 1 naming it.
set -u
MMC=$1; ROOT=$2
fail=0
expect() { # expect STATUS PATTERN CMD...
    want=$1; pat=$2; shift 2
    out=$("$@" 2>&1); st=$?
    if [ "$st" != "$want" ] || ! printf '%s' "$out" | grep -q -- "$pat"; then
        echo "FAIL: $* -> status $st (want $want), output:"; printf '%s\n' "$out"; fail=1
    fi
}
expect 0 "usage: mmc" "$MMC" --help
expect 0 "mmc [0-9]" "$MMC" --version
expect 2 "usage: mmc" "$MMC"
expect 2 "unknown command 'chek'; did you mean 'check'" "$MMC" chek x.mmnet
expect 2 "unknown option '--bogus'" "$MMC" check "$ROOT/examples/cgmnist.mmnet" --bogus
expect 2 "'check' needs a .mmnet file" "$MMC" check
expect 2 "needs -o" "$MMC" build "$ROOT/examples/cgmnist.mmnet"
expect 2 "unknown target 'tpu'" "$MMC" emit "$ROOT/examples/cgmnist.mmnet" --target tpu -o /tmp/x
expect 2 "unknown GEMM 'cudnn'" "$MMC" emit "$ROOT/examples/cgmnist.mmnet" --target cuda --gemm cudnn -o /tmp/x
expect 2 "unknown convolution method 'fft' (--conv gemm or cudnn)" "$MMC" emit "$ROOT/examples/cgmnist.mmnet" --target cuda --conv fft -o /tmp/x
expect 2 "conv applies to the CUDA back end: add --target cuda" "$MMC" emit "$ROOT/examples/cgmnist.mmnet" --conv cudnn -o /tmp/x
expect 2 "gemm applies to the CUDA back end" "$MMC" build "$ROOT/examples/cgmnist.mmnet" --gemm tiled -o /tmp/x
expect 2 "takes a CUDA architecture like sm_90, not 'native'" "$MMC" build "$ROOT/examples/cgmnist.mmnet" --target cuda --arch native -o /tmp/x
expect 2 "takes a CPU architecture for -march (native, x86-64-v3, ...), not 'sm_90'" "$MMC" build "$ROOT/examples/cgmnist.mmnet" --arch sm_90 -o /tmp/x
expect 2 "not 'x; rm'" "$MMC" build "$ROOT/examples/cgmnist.mmnet" --arch "x; rm" -o /tmp/x
expect 2 "unknown pass 'parse'" "$MMC" dump-ir "$ROOT/examples/cgmnist.mmnet" --after parse
expect 2 "no variant 'nope'" "$MMC" dump-ir "$ROOT/examples/cgmnist.mmnet" --variant nope
expect 1 "cannot read 'no/such.mmnet': No such file" "$MMC" check no/such.mmnet
expect 0 "rebalance-c" "$MMC" dump-ir "$ROOT/examples/cgmnist.mmnet" --variant list
expect 0 "graph cut" "$MMC" dump-ir "$ROOT/examples/cgmnist.mmnet" --variant cut
expect 0 "conv_dw" "$MMC" dump-ir "$ROOT/examples/cgmnist.mmnet" --after autodiff
# The C back end folds the first max pooling into its convolution; the CUDA back end keeps it a kernel.
expect 0 "%13 *= maxpool(%12) .* fused-into=%11" "$MMC" dump-ir "$ROOT/examples/cgmnist.mmnet" --variant train
out=$("$MMC" dump-ir "$ROOT/examples/cgmnist.mmnet" --variant train --target cuda 2>&1)
if printf '%s' "$out" | grep -q "maxpool(%12).*fused-into"; then echo "FAIL: dump-ir --target cuda shows the pooling folded"; fail=1; fi
expect 0 "maxpool(%12)" printf '%s' "$out"
# --dot: Graphviz with the branches and MMTMs as clusters; the cut variant
# reads the training-set squeeze means (orange state nodes) in place of the
# other branch, the forward graph does not.
expect 2 "--dot is an option of dump-ir" "$MMC" check "$ROOT/examples/cgmnist.mmnet" --dot
dot_cut=$("$MMC" dump-ir "$ROOT/examples/cgmnist.mmnet" --dot --variant cut 2>&1)
dot_fwd=$("$MMC" dump-ir "$ROOT/examples/cgmnist.mmnet" --dot 2>&1)
for pat in '^digraph "cgmnist.cut"' 'cluster_branch0' 'cluster_branch1' 'label="MMTM mmtm1' 'state mmtm1.squeeze_mean'; do
    printf '%s\n' "$dot_cut" | grep -q -- "$pat" || { echo "FAIL: dump-ir --dot --variant cut has no '$pat'"; fail=1; }
done
printf '%s\n' "$dot_fwd" | grep -q 'squeeze_mean' && { echo "FAIL: the forward graph's dot shows squeeze means"; fail=1; }
printf '%s\n' "$dot_fwd" | grep -q '^digraph "cgmnist.forward"' || { echo "FAIL: dump-ir --dot is not the forward graph"; fail=1; }
n_edges=$(printf '%s\n' "$dot_cut" | grep -c ' -> ')
[ "$n_edges" -gt 50 ] || { echo "FAIL: dump-ir --dot has $n_edges edges"; fail=1; }
if command -v dot > /dev/null; then
    svg=$(printf '%s\n' "$dot_cut" | dot -Tsvg 2>&1) || { echo "FAIL: dot -Tsvg rejects the graph: $svg" | head -5; fail=1; }
    for pat in '<svg' 'MMTM mmtm1' 'branch c (input'; do
        printf '%s' "$svg" | grep -q -- "$pat" || { echo "FAIL: the SVG has no '$pat'"; fail=1; }
    done
else
    echo "note: Graphviz's dot is not installed; the SVG was not rendered"
fi
# The branch-only re-balancing option reads back.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sed 's/policy vanilla/policy guided(alpha=0.1, window=5, warmup=1, update=own)/' "$ROOT/examples/cgmnist.mmnet" > "$tmp/own.mmnet"
expect 0 "guided(alpha=0.1, window=5, warmup=1, update=own)" "$MMC" info "$tmp/own.mmnet"
# The CUDA GEMM choice is stated in the generated source.
"$MMC" emit "$ROOT/examples/cgmnist.mmnet" --target cuda -o "$tmp/cublas" && grep -q "GEMMs by cuBLAS" "$tmp/cublas/model.cu" \
    || { echo "FAIL: mmc emit --target cuda does not say 'GEMMs by cuBLAS'"; fail=1; }
"$MMC" emit "$ROOT/examples/cgmnist.mmnet" --target cuda --gemm tiled -o "$tmp/tiled" && grep -q "GEMMs by a tiled kernel" "$tmp/tiled/model.cu" \
    || { echo "FAIL: mmc emit --gemm tiled does not say 'GEMMs by a tiled kernel'"; fail=1; }
grep -q "convolutions by im2col and GEMM" "$tmp/cublas/model.cu" && ! grep -q "MMNET_CUDNN" "$tmp/cublas/model.cu" \
    || { echo "FAIL: mmc emit --target cuda: convolutions not by im2col and GEMM by default"; fail=1; }
# --conv cudnn: every convolution but the pointwise ones is planned and run by cuDNN.
"$MMC" emit "$ROOT/examples/modelnet40_resnet18.mmnet" --target cuda --conv cudnn -o "$tmp/cudnn" > /dev/null &&
    grep -q "convolutions by cuDNN" "$tmp/cudnn/model.cu" && grep -q "^#define MMNET_CUDNN 1" "$tmp/cudnn/model.cu" \
    || { echo "FAIL: mmc emit --conv cudnn does not say 'convolutions by cuDNN'"; fail=1; }
# info --batch: the memory plan (tests/e2e_limits.sh checks it against the program's).
expect 0 "^memory at batch 128, 2 threads (C back end): [0-9.]* MiB ([0-9]* bytes)" "$MMC" info "$ROOT/examples/cgmnist.mmnet" --batch 128 --threads 2
expect 0 "activations  *44.8 MiB  (91760 floats an example)" "$MMC" info "$ROOT/examples/cgmnist.mmnet" --batch 128 --threads 2
expect 2 "--batch needs a whole number from 1 to 65536, not '65537'" "$MMC" info "$ROOT/examples/cgmnist.mmnet" --batch 65537
expect 2 "--threads needs a whole number from 1 to 4096, not 'all'" "$MMC" info "$ROOT/examples/cgmnist.mmnet" --batch 8 --threads all
expect 2 "--batch is an option of 'mmc info'" "$MMC" check "$ROOT/examples/cgmnist.mmnet" --batch 8
expect 2 "--threads goes with --batch B" "$MMC" info "$ROOT/examples/cgmnist.mmnet" --threads 2
nconv=$(grep -c "^static mmk_dnn_conv" "$tmp/cudnn/model.cu"); nrun=$(grep -c "mmk_dnn_run(e, &" "$tmp/cudnn/model.cu")
nim2col=$(grep -c "mmk_im2col_launch<" "$tmp/cudnn/model.cu")
[ "$nconv" -gt 20 ] && [ "$nconv" = "$nrun" ] && [ "$nim2col" = 0 ] && grep -q "^static void plan_train" "$tmp/cudnn/model.cu" \
    || { echo "FAIL: mmc emit --conv cudnn: $nconv cuDNN convolutions, $nrun calls, $nim2col im2col left"; fail=1; }
exit $fail
