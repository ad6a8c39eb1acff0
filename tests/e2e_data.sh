#!/bin/bash
# e2e_data.sh MMC MAKE_DATA ROOT WORKDIR — the data sources end to end: data
# sets written in their real layouts (tests/make_data, the ffmpeg command),
# programs built by mmc, trained for real:
#  - the colored-and-gray set written as safetensors and read through
#    `data arrays` trains to the same losses as the IDX path;
#  - a multi-view PNG tree trains (crops, flips, normalisation, a held-out
#    validation split), with the same results for any number of workers;
#  - NVGesture-style clips (a .lst and AVIs) train;
#  - bad data stops with a message naming the file, and a non-zero exit.
set -u
MMC=$1; MAKE=$2; ROOT=$3; W=$4
DATA=${MMNET_TEST_DATA:-/usr/share/datasets/fashion-mnist}
rm -rf "$W"; mkdir -p "$W"
. "$(dirname "$0")/lib.sh"

# 1. arrays = IDX: the same tensors give the same losses, step by step.
if [ -d "$DATA" ]; then
    "$MAKE" arrays-cg "$DATA" "$W/cg" 500 2000 1 1000 || bad "make_data arrays-cg"
    sed -e 's|data colored_gray([^)]*)|data arrays(root="cg")|' "$ROOT/examples/cgmnist.mmnet" > "$W/cg_arrays.mmnet"
    grep -q 'data arrays' "$W/cg_arrays.mmnet" || bad "could not rewrite cgmnist's data line"
    "$MMC" build "$ROOT/examples/cgmnist.mmnet" -o "$W/cg_idx" && "$MMC" build "$W/cg_arrays.mmnet" -o "$W/cg_arr" ||
        { bad "mmc build cgmnist"; exit 1; }
    COMMON="--epochs 1 --batch 64 --seed 1 --limit-test 1000 --quiet"
    "$W/cg_idx" train --data "$DATA" --limit-train 2000 --val 500 $COMMON --out "$W/run_idx" > /dev/null 2> "$W/idx.err" ||
        { bad "cgmnist train (IDX)"; cat "$W/idx.err"; }
    "$W/cg_arr" train --data "$W/cg" $COMMON --out "$W/run_arr" > /dev/null 2> "$W/arr.err" ||
        { bad "cgmnist train (arrays)"; cat "$W/arr.err"; }
    if cmp -s "$W/run_idx/steps.csv" "$W/run_arr/steps.csv"; then
        say "arrays: $(($(wc -l < "$W/run_arr/steps.csv") - 1)) steps, the same losses as the IDX path"
    else
        bad "the arrays run's steps.csv differs from the IDX run's"; diff "$W/run_idx/steps.csv" "$W/run_arr/steps.csv" | head -5
    fi
    a=$(json "$W/run_idx/summary.json" "d['test_acc']"); b=$(json "$W/run_arr/summary.json" "d['test_acc']")
    [ "$a" = "$b" ] || bad "test accuracy: IDX $a, arrays $b"
else
    say "SKIP (arrays = IDX): no Fashion-MNIST in $DATA"
fi

# 2. A multi-view PNG tree: 4 classes, 12 training objects each, 3 views of 32x32.
"$MAKE" multiview "$W/mv" 4 12 3 32 || bad "make_data multiview"
"$MMC" build "$ROOT/tests/e2e/multiview.mmnet" -o "$W/mv_prog" || { bad "mmc build multiview"; exit 1; }
for w in 0 2; do
    "$W/mv_prog" train --data "$W/mv" --workers $w --out "$W/mv_run$w" --quiet > /dev/null 2> "$W/mv$w.err" ||
        { bad "multiview train (--workers $w)"; cat "$W/mv$w.err"; }
done
grep -q "(36 train, 12 val, 24 test)" "$W/mv0.err" || { bad "multiview: not the expected split"; head -2 "$W/mv0.err"; }
cmp -s "$W/mv_run0/steps.csv" "$W/mv_run2/steps.csv" || bad "multiview: --workers 0 and 2 train differently"
acc=$(json "$W/mv_run0/summary.json" "d['test_acc']")
say "multiview: test accuracy $acc after 8 epochs (chance 0.25)"
python3 -c "import sys; sys.exit(0 if $acc > 0.5 else 1)" || bad "multiview: test accuracy $acc is not above chance"
expect 0 "test accuracy" "$W/mv_prog" eval --checkpoint "$W/mv_run0/best.ckpt" --data "$W/mv"

# 3. NVGesture-style clips: a .lst and gray AVIs (ffv1) written by ffmpeg.
if command -v ffmpeg > /dev/null; then
    C="$W/clips"; mkdir -p "$C"
    : > "$C/nvgesture_train_correct_cvpr2016_v2.lst"; : > "$C/nvgesture_test_correct_cvpr2016_v2.lst"
    for cls in 1 2 3; do
        for s in 1 2 3 4; do
            d="Video_data/class_0$cls/subject${s}_r0"; mkdir -p "$C/$d"
            for m in color depth; do
                "$MAKE" frames 24 20 14 $((cls * 5 + s)) |
                    ffmpeg -loglevel error -f rawvideo -pix_fmt gray -s 24x20 -r 10 -i - -c:v ffv1 "$C/$d/sk_$m.avi" ||
                    bad "ffmpeg: $d/sk_$m.avi"
            done
            list=train; [ "$s" = 4 ] && list=test
            echo "path:./$d depth:sk_depth:1:13 color:sk_color:1:13 label:$cls" >> "$C/nvgesture_${list}_correct_cvpr2016_v2.lst"
        done
    done
    "$MMC" build "$ROOT/tests/e2e/clips.mmnet" -o "$W/cl_prog" || { bad "mmc build clips"; exit 1; }
    "$W/cl_prog" train --data "$C" --out "$W/cl_run" --quiet > /dev/null 2> "$W/cl.err" || { bad "clips train"; cat "$W/cl.err"; }
    grep -q "(7 train, 2 val, 3 test)" "$W/cl.err" || { bad "clips: not the expected split"; head -2 "$W/cl.err"; }
    [ "$(wc -l < "$W/cl_run/metrics.jsonl")" = 2 ] || bad "clips: no metrics for 2 epochs"
    say "clips: 2 epochs, $(json "$W/cl_run/summary.json" "d['test_acc']") test accuracy"
    # a clip whose range runs past its end
    cp -r "$C" "$W/clips_bad"
    sed -i '1s/color:sk_color:1:13/color:sk_color:1:30/' "$W/clips_bad/nvgesture_train_correct_cvpr2016_v2.lst"
    expect 1 "sk_color.avi.*past the end" "$W/cl_prog" train --data "$W/clips_bad" --out "$W/cl_bad" --quiet
    # a line that does not parse names the list and the line
    printf 'path:./x depth:sk_depth:1 label:1\n' >> "$W/clips_bad/nvgesture_train_correct_cvpr2016_v2.lst"
    expect 1 "nvgesture_train_correct_cvpr2016_v2.lst:10" "$W/cl_prog" train --data "$W/clips_bad" --out "$W/cl_bad" --quiet
else
    say "SKIP (clips): no ffmpeg command"
fi

# 4. Bad data: each stops with a message naming what is wrong, exit 1.
expect 1 "does not exist" "$W/mv_prog" train --data "$W/nowhere" --out "$W/bad" --quiet
cp -r "$W/mv" "$W/mv5"; mkdir -p "$W/mv5/class04/train" "$W/mv5/class04/test"
cp "$W/mv/class00/train/c00_o00000_v00"* "$W/mv5/class04/train/"; cp "$W/mv/class00/test/c00_o00000_v00"* "$W/mv5/class04/test/"
expect 1 "5 classes but the model's heads predict 4" "$W/mv_prog" train --data "$W/mv5" --out "$W/bad" --quiet
cp -r "$W/mv" "$W/mv_trunc"
f=$(ls "$W/mv_trunc/class02/train/"*.png | head -1); head -c 100 "$f" > "$f.tmp" && mv "$f.tmp" "$f"
expect 1 "$(basename "$f")" "$W/mv_prog" train --data "$W/mv_trunc" --out "$W/bad" --quiet
cp -r "$W/mv" "$W/mv_few"; rm "$W/mv_few/class01/train/c01_o00003_v003.png"
expect 1 "c01_o00003" "$W/mv_prog" train --data "$W/mv_few" --out "$W/bad" --quiet
expect 1 "val" "$W/mv_prog" train --data "$W/mv" --val 48 --out "$W/bad" --quiet
expect 2 "workers" "$W/mv_prog" train --data "$W/mv" --workers -3 --out "$W/bad" --quiet

[ $fail = 0 ] && say "e2e_data: all passed"
exit $fail
