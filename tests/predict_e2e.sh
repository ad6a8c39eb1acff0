#!/bin/bash
# predict_e2e.sh MMC MAKE_DATA ROOT WORKDIR — ./prog predict on built
# programs, trained briefly:
#  - synthetic data (tests/optim/tiny.mmnet), every split: the accuracy of
#    the fused prediction and of each branch computed from the rows is what
#    ./prog eval prints; probabilities sum to 1; CSV and JSONL agree;
#  - a multi-view PNG tree (ids are the objects' files), objects as
#    arrays, colored-and-gray digits from IDX files (with Fashion-MNIST),
#    NVGesture-style clips (with ffmpeg; ids are the clips' directories);
#  - errors: no checkpoint, a corrupt one, another model's, a bad --format
#    or --split, an -o that cannot be written or whose format is unknown.
set -u
MMC=$1; MAKE=$2; ROOT=$3; W=$4
T=$ROOT/tests
rm -rf "$W"; mkdir -p "$W"
. "$T/lib.sh"

# check PROG CKPT SPLIT [DATA...]: predict as CSV and JSONL against eval.
check() {
    local prog=$1 ckpt=$2 split=$3; shift 3
    "$prog" eval --checkpoint "$ckpt" --split "$split" "$@" > "$W/eval.txt" 2>&1 || { bad "$prog eval --split $split"; cat "$W/eval.txt"; return; }
    "$prog" predict --checkpoint "$ckpt" --split "$split" "$@" -o "$W/p.csv" 2> "$W/p.err" || { bad "$prog predict -o p.csv"; cat "$W/p.err"; return; }
    "$prog" predict --checkpoint "$ckpt" --split "$split" "$@" --format jsonl > "$W/p.jsonl" 2> "$W/p.err" ||
        { bad "$prog predict --format jsonl"; cat "$W/p.err"; return; }
    say "$(basename "$prog") --split $split:"
    python3 "$T/predict_check.py" "$W/eval.txt" "$W/p.csv" "$W/p.jsonl" || bad "$(basename "$prog") --split $split: predict disagrees with eval"
}

# 1. Synthetic data, every split.
"$MMC" build "$T/optim/tiny.mmnet" -o "$W/tiny" || { bad "mmc build tiny"; exit 1; }
"$W/tiny" train --quiet --epochs 3 --out "$W/tiny_run" > /dev/null 2>&1 || bad "tiny: train"
for s in test val train; do check "$W/tiny" "$W/tiny_run/best.ckpt" $s; done
# stdout is CSV by default, with the logits on request
"$W/tiny" predict --checkpoint "$W/tiny_run/best.ckpt" --logits 2> /dev/null | head -1 > "$W/head.txt"
grep -q "^index,id,label,pred,p0,p1,p2,logit0,logit1,logit2,x_pred,x_p0,x_p1,x_p2,x_logit0,x_logit1,x_logit2,y_pred," "$W/head.txt" ||
    { bad "predict --logits: not the expected CSV header"; cat "$W/head.txt"; }

# 2. Multi-view PNGs (4 classes, 12 training objects each), then the same as arrays.
"$MAKE" multiview "$W/mv" 4 12 3 32 || bad "make_data multiview"
"$MMC" build "$T/e2e/multiview.mmnet" -o "$W/mv_prog" || { bad "mmc build multiview"; exit 1; }
"$W/mv_prog" train --data "$W/mv" --epochs 2 --out "$W/mv_run" --quiet > /dev/null 2>&1 || bad "multiview: train"
check "$W/mv_prog" "$W/mv_run/best.ckpt" test --data "$W/mv"
check "$W/mv_prog" "$W/mv_run/best.ckpt" val --data "$W/mv"
# --workers reaches eval and predict's loaders: none, or three threads decoding, the same rows
check "$W/mv_prog" "$W/mv_run/best.ckpt" val --data "$W/mv" --workers 3
cp "$W/eval.txt" "$W/eval_w3.txt"
"$W/mv_prog" eval --checkpoint "$W/mv_run/best.ckpt" --split val --data "$W/mv" --workers 0 > "$W/eval_w0.txt" 2>&1 || bad "eval --workers 0"
cmp -s "$W/eval_w0.txt" "$W/eval_w3.txt" || { bad "eval with --workers 0 and 3 differ"; diff "$W/eval_w0.txt" "$W/eval_w3.txt"; }
# the ids are the objects' first views, under their class's directory
python3 - "$W/p.csv" <<'PY' || bad "multiview: ids are not the objects' files"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
classes = sorted({r["id"].split("/")[0] for r in rows})
assert len(classes) == 4, classes
for r in rows:
    c, split, f = r["id"].split("/")
    assert split == "train" and f.endswith("_v001.png") and classes.index(c) == int(r["label"]), r["id"]
PY
"$MAKE" multiview "$W/mva" 4 12 3 28 && "$MAKE" multiview-arrays "$W/mva" 0,2 front,rear 28 || bad "make_data multiview-arrays"
sed -e 's|data multiview([^)]*)|data arrays(root="mva", val=0.25, mean=[0.5], std=[0.25])|' -e 's|augment \[.*\]||' \
    "$T/e2e/multiview.mmnet" > "$W/mva.mmnet"
"$MMC" build "$W/mva.mmnet" -o "$W/mva_prog" || { bad "mmc build arrays"; exit 1; }
"$W/mva_prog" train --data "$W/mva" --epochs 2 --out "$W/mva_run" --quiet > /dev/null 2>&1 || bad "arrays: train"
check "$W/mva_prog" "$W/mva_run/best.ckpt" test --data "$W/mva"

# 3. Colored-and-gray digits from IDX files (when Fashion-MNIST is installed): the 200 held-out ones.
DATA=${MMNET_TEST_DATA:-/usr/share/datasets/fashion-mnist}
if [ -d "$DATA" ]; then
    "$MMC" build "$ROOT/examples/cgmnist.mmnet" -o "$W/cg" || { bad "mmc build cgmnist"; exit 1; }
    "$W/cg" train --data "$DATA" --epochs 1 --limit-train 1000 --val 200 --limit-test 500 --quiet --out "$W/cg_run" \
        > /dev/null 2>&1 || bad "cgmnist: train"
    check "$W/cg" "$W/cg_run/best.ckpt" val --data "$DATA"
else
    say "SKIP (colored_gray): no Fashion-MNIST in $DATA"
fi

# 4. NVGesture-style clips (a .lst and gray AVIs written by ffmpeg): ids are the clips' directories.
if command -v ffmpeg > /dev/null; then
    CL="$W/clips"; mkdir -p "$CL"
    : > "$CL/nvgesture_train_correct_cvpr2016_v2.lst"; : > "$CL/nvgesture_test_correct_cvpr2016_v2.lst"
    for cls in 1 2 3; do
        for s in 1 2 3 4; do
            d="Video_data/class_0$cls/subject${s}_r0"; mkdir -p "$CL/$d"
            for m in color depth; do
                "$MAKE" frames 24 20 14 $((cls * 5 + s)) |
                    ffmpeg -loglevel error -f rawvideo -pix_fmt gray -s 24x20 -r 10 -i - -c:v ffv1 "$CL/$d/sk_$m.avi" || bad "ffmpeg"
            done
            list=train; [ "$s" = 4 ] && list=test
            echo "path:./$d depth:sk_depth:1:13 color:sk_color:1:13 label:$cls" >> "$CL/nvgesture_${list}_correct_cvpr2016_v2.lst"
        done
    done
    "$MMC" build "$T/e2e/clips.mmnet" -o "$W/cl_prog" || { bad "mmc build clips"; exit 1; }
    "$W/cl_prog" train --data "$CL" --epochs 1 --out "$W/cl_run" --quiet > /dev/null 2>&1 || bad "clips: train"
    check "$W/cl_prog" "$W/cl_run/best.ckpt" test --data "$CL"
    cut -d, -f2 "$W/p.csv" | tail -n +2 | tr '\n' ' ' > "$W/ids.txt"
    for cls in 1 2 3; do
        grep -q "$CL/Video_data/class_0$cls/subject4_r0 " "$W/ids.txt" || { bad "clips: no id for class $cls's test clip"; cat "$W/ids.txt"; }
    done
else
    say "SKIP (clips): no ffmpeg"
fi

# 5. Errors.
C="$W/tiny_run/best.ckpt"
expect 2 "'predict' needs --checkpoint FILE" "$W/tiny" predict
expect 2 "\-\-format is 'csv' or 'jsonl', not 'xml'" "$W/tiny" predict --checkpoint "$C" --format xml
expect 2 "\-\-split is 'test', 'val' or 'train', not 'dev'" "$W/tiny" predict --checkpoint "$C" --split dev
expect 2 "-o out.txt: cannot tell the format from the name" "$W/tiny" predict --checkpoint "$C" -o out.txt
expect 1 "$W/nodir/p.csv" "$W/tiny" predict --checkpoint "$C" -o "$W/nodir/p.csv"
expect 1 "$W/absent.ckpt" "$W/tiny" predict --checkpoint "$W/absent.ckpt"
head -c 100 "$C" > "$W/cut.ckpt"
expect 1 "$W/cut.ckpt" "$W/tiny" predict --checkpoint "$W/cut.ckpt"
expect 1 "model 'mv'" "$W/tiny" predict --checkpoint "$W/mv_run/best.ckpt"
# a failed run leaves no file, not even a temporary one
ls "$W" | grep -q "tmp\." && bad "predict left a temporary file: $(ls "$W" | grep tmp.)"
# --format wins over the extension
"$W/tiny" predict --checkpoint "$C" --format jsonl -o "$W/x.csv" 2> /dev/null && python3 -c "
import json, sys; [json.loads(l) for l in open(sys.argv[1])]" "$W/x.csv" || bad "--format jsonl -o x.csv is not JSON Lines"

[ $fail = 0 ] && say "PASS"
exit $fail
