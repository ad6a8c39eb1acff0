#!/bin/bash
# inspect_test.sh MMC ROOT WORKDIR — mmc inspect on examples/cgmnist.mmnet:
#  - the listing has every kernel the training graph's run function calls;
#  - the first convolution's FLOPs are the hand-computed figure;
#  - clang's remarks reach the kernels: bn_apply's loop is vectorized;
#  - --asm prints the kernel's function, --ptx its device code (with nvcc);
#  - errors: an unknown kernel (with the nearest names), options that
#    need --kernel or another target, an unknown variant.
set -u
MMC=$1; ROOT=$2; W=$3
rm -rf "$W"; mkdir -p "$W"
. "$ROOT/tests/lib.sh"
CG=$ROOT/examples/cgmnist.mmnet

# 1. Every kernel of the train graph: the functions run_train calls in the emitted model.c.
"$MMC" emit "$CG" -o "$W/src" > /dev/null || bad "mmc emit"
sed -n '/^static void run_train(/,/^}/p' "$W/src/model.c" | grep -o '^    [a-z0-9_][a-z0-9_]*(' | tr -d ' (' | sort -u > "$W/want.txt"
"$MMC" inspect "$CG" > "$W/all.txt" 2> "$W/all.err" || { bad "mmc inspect"; cat "$W/all.err"; }
grep -o '^cgmnist_k[0-9]*_[a-z_]*  (kernels_[0-3]\.c:[0-9]*-[0-9]*)' "$W/all.txt" | cut -d' ' -f1 | sort > "$W/got.txt"
[ -s "$W/want.txt" ] && cmp -s "$W/want.txt" "$W/got.txt" ||
    { bad "the listing's kernels are not run_train's ($(wc -l < "$W/got.txt") listed, $(wc -l < "$W/want.txt") called)"; diff "$W/want.txt" "$W/got.txt" | head; }
say "train graph: $(wc -l < "$W/got.txt") kernels listed; $(head -2 "$W/all.txt" | tail -1)"

# 2. The first convolution (5x5, 3 -> 32 channels on 28x28, pad 2, with its ReLU
#    and 3x3 max pooling folded in): 2 * 32*28*28 outputs * 3*5*5 taps per example, at batch 128.
sed -n '/^cgmnist_k2_conv /,/^$/p' "$W/all.txt" > "$W/conv.txt"
grep -q '%11 conv+%13 maxpool' "$W/conv.txt" || { bad "cgmnist_k2_conv is not %11 conv+%13 maxpool"; cat "$W/conv.txt"; }
want=$((2 * 32 * 28 * 28 * 3 * 5 * 5 * 128))
grep -q "FLOPs $want " "$W/conv.txt" || { bad "cgmnist_k2_conv: not $want FLOPs"; cat "$W/conv.txt"; }
grep -q "^  FLOPs $want (481.7 MFLOP), bytes [0-9]* " "$W/conv.txt" || bad "cgmnist_k2_conv: no bytes figure"

# 3. Remarks: batch norm's apply is one vectorized loop over each plane.
"$MMC" inspect "$CG" --kernel cgmnist_k1_bn_apply > "$W/bn.txt" 2>&1 || { bad "--kernel cgmnist_k1_bn_apply"; cat "$W/bn.txt"; }
grep -q "^    [0-9]*:[0-9]*: vectorized loop (vectorization width: [0-9]*, interleaved count: [0-9]*) \[-Rpass=loop-vectorize\]" "$W/bn.txt" ||
    { bad "bn_apply: no vectorized-loop remark"; cat "$W/bn.txt"; }
grep -q "loops: [1-9][0-9]* vectorized" "$W/bn.txt" || bad "bn_apply: no vectorized loop counted"
grep -q "Rpass-missed=loop-vectorize" "$W/all.txt" || bad "the listing has no missed-vectorization remark at all"
# the same kernel by an IR node it computes
"$MMC" inspect "$CG" --kernel %13 > "$W/node.txt" 2>&1 && grep -q "^cgmnist_k2_conv " "$W/node.txt" || bad "--kernel %13 is not cgmnist_k2_conv"

# 4. --asm: the kernel's function and its OpenMP region.
"$MMC" inspect "$CG" --kernel cgmnist_k2_conv --asm > "$W/asm.txt" 2>&1 || { bad "--asm"; head "$W/asm.txt"; }
grep -q "^cgmnist_k2_conv:" "$W/asm.txt" || bad "--asm: no cgmnist_k2_conv: label"
grep -q "^\.omp_outlined\..*:" "$W/asm.txt" || bad "--asm: no OpenMP region"
grep -q "^cgmnist_k1_bn_apply:" "$W/asm.txt" && bad "--asm printed another kernel"

# 5. --ptx (when nvcc is here; no GPU needed).
if command -v nvcc > /dev/null; then
    "$MMC" inspect "$CG" --target cuda --kernel k2_conv --ptx > "$W/ptx.txt" 2>&1 || { bad "--ptx"; tail "$W/ptx.txt"; }
    grep -q "\.entry _Z[L]*11k2_conv_epi" "$W/ptx.txt" || { bad "--ptx: no k2_conv_epi entry"; head "$W/ptx.txt"; }
    grep -q "k1_bn_apply" "$W/ptx.txt" && bad "--ptx printed another kernel"
    if command -v cuobjdump > /dev/null; then
        "$MMC" inspect "$CG" --target cuda --kernel k2_conv --sass > "$W/sass.txt" 2>&1 && grep -q "Function : .*k2_conv_epi" "$W/sass.txt" ||
            bad "--sass: no k2_conv_epi"
    else
        expect 1 "needs cuobjdump" "$MMC" inspect "$CG" --target cuda --kernel k2_conv --sass
    fi
else
    say "SKIP (--ptx): no nvcc"
fi

# 6. The eval graph has no backward kernels (listed for CUDA, which needs no compiler run).
"$MMC" inspect "$CG" --variant eval --target cuda > "$W/eval.txt" 2>&1 || bad "--variant eval"
grep -q "^graph eval of model cgmnist: [0-9]* kernels, batch 128, back end cuda" "$W/eval.txt" || bad "--variant eval: no header"
grep -q "_dx\|_dw" "$W/eval.txt" && bad "--variant eval lists gradient kernels"

# 7. Errors.
expect 2 "no kernel 'cgmnist_k2_cnv' in graph train; the nearest names: 'cgmnist_k2_conv'" "$MMC" inspect "$CG" --kernel cgmnist_k2_cnv
expect 2 "\-\-asm prints one kernel's code: add --kernel NAME" "$MMC" inspect "$CG" --asm
expect 2 "\-\-ptx is for the CUDA back end: add --target cuda" "$MMC" inspect "$CG" --kernel cgmnist_k2_conv --ptx
expect 2 "no variant 'nope'" "$MMC" inspect "$CG" --variant nope
expect 2 "unknown option '--kernal' of inspect" "$MMC" inspect "$CG" --kernal x
expect 0 "note: no vectorizer remarks: they come from clang, and the C compiler is 'gcc'" "$MMC" inspect "$CG" --cc gcc --kernel %11
expect 1 "error: the vectorizer's remarks and --asm need clang" "$MMC" inspect "$CG" --cc gcc --kernel %11 --asm
expect 1 "cannot read 'absent.mmnet'" "$MMC" inspect absent.mmnet

[ $fail = 0 ] && say "PASS"
exit $fail
