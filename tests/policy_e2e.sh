#!/bin/bash
# policy_e2e.sh MMC TESTS WORKDIR — the balancing policies beyond the
# paper's in a built program (tests/optim/tiny.mmnet, synthetic data):
#  - modality_dropout: mmc info shows it; --drop-p 0 is the vanilla run,
#    bit for bit; a run with p > 0 trains, differs from vanilla, and is the
#    same with any number of loader threads and when resumed, which keeps
#    its p (which examples lose which input, and the zeroed batches
#    themselves: tests/runtime/test_loader.c);
#  - bad probabilities and a one-input model give clear errors.
set -u
MMC=$1; T=$2; W=$3
rm -rf "$W"; mkdir -p "$W"
. "$T/lib.sh"

sed 's/^  policy .*/  policy modality_dropout(p=0.5)/; s/adamw(lr=0.01, betas=\[0.9, 0.99\])/sgd(lr=0.05, momentum=0.9)/; /schedule/d' \
    "$T/optim/tiny.mmnet" > "$W/drop.mmnet"
"$MMC" info "$W/drop.mmnet" | grep -qF "policy     modality_dropout(p=0.5)" || { bad "mmc info: the policy"; "$MMC" info "$W/drop.mmnet"; }
"$MMC" build "$W/drop.mmnet" -o "$W/drop" || { bad "mmc build"; exit 1; }
P="$W/drop"
"$P" train --quiet --workers 0 --out "$W/p5" > /dev/null 2> "$W/p5.err" || { bad "train"; cat "$W/p5.err"; }
"$P" train --quiet --workers 3 --out "$W/p5w3" > /dev/null 2>&1 || bad "train --workers 3"
python3 "$T/same_run.py" "$W/p5" "$W/p5w3" 3 || bad "modality dropout: another run with 3 loader threads"
"$P" train --quiet --epochs 2 --out "$W/part" > /dev/null 2>&1 || bad "train --epochs 2"
"$P" train --quiet --resume "$W/part" --epochs 3 > /dev/null 2>&1 || bad "--resume"
python3 "$T/same_run.py" "$W/p5" "$W/part" 3 || bad "modality dropout: a resumed run is not the uninterrupted one"
expect 2 "contradicts the run in .*, which has --drop-p 0.5" "$P" train --resume "$W/part" --drop-p 0.2 --epochs 4
"$P" train --quiet --policy vanilla --out "$W/van" > /dev/null 2>&1 || bad "train --policy vanilla"
"$P" train --quiet --drop-p 0 --out "$W/p0" > /dev/null 2>&1 || bad "train --drop-p 0"
python3 "$T/same_run.py" "$W/van" "$W/p0" 3 || bad "modality_dropout with p 0 is not the vanilla run"
python3 "$T/same_run.py" "$W/van" "$W/p5" 3 2> /dev/null && bad "modality_dropout(p=0.5) trained exactly like vanilla"
"$P" eval --checkpoint "$W/p5/last.ckpt" > "$W/eval.txt" 2>&1 && grep -q "^test accuracy" "$W/eval.txt" || { bad "eval"; cat "$W/eval.txt"; }
# Each step of the vanilla and the p 0.5 runs: the same steps, logged as regular steps.
[ "$(cut -d, -f1-3 "$W/p5/steps.csv")" = "$(cut -d, -f1-3 "$W/van/steps.csv")" ] || bad "steps.csv: other steps than vanilla's"

expect 2 "out of range: '1.5'" "$P" train --drop-p 1.5 --out "$W/bad"
expect 2 "drop-p" "$P" train --drop-p nan --out "$W/bad"
sed '/input b/d; /branch y/d; /mmtm/d; s/mean(x, y)/x/; s/ce(x) + ce(y)/ce(x)/' "$W/drop.mmnet" > "$W/one.mmnet"
sed 's/^  policy .*/  policy vanilla/' "$W/one.mmnet" > "$W/one_vanilla.mmnet"
"$MMC" build "$W/one_vanilla.mmnet" -o "$W/one" > /dev/null || bad "mmc build (one input)"
expect 2 "policy modality_dropout zeroes one of the inputs of each example; model 'tiny' has only one" \
    "$W/one" train --policy modality_dropout --out "$W/bad"
exit $fail
