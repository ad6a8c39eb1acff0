#!/bin/bash
# e2e_resume.sh MMC ROOT WORKDIR — what --resume restores and what it refuses,
# on a small two-branch net trained on synthetic data (tests/e2e/resume.mmnet,
# an epoch in a fraction of a second):
#  - the run's settings come back from last.ckpt: resuming with --epochs only
#    gives the uninterrupted run; a flag that contradicts the checkpoint is an
#    error naming both values; --epochs may be raised, not lowered;
#  - every metadata field of the run state and configuration is checked: a
#    corrupt value stops the program (status 1) naming the file and the key,
#    and the run's logs are left as they were;
#  - a kill between flushing steps.csv and renaming last.ckpt (or in the
#    middle of a line) leaves no duplicate or cut row after resuming;
#  - temporary checkpoints left by killed runs are removed at the next start;
#  - non-finite weights and unknown formats are refused by eval and resume.
set -u
MMC=$1; ROOT=$2; W=$3
rm -rf "$W"; mkdir -p "$W"
. "$(dirname "$0")/lib.sh"
EDIT="python3 $ROOT/tests/ckpt_edit.py"


same() { python3 "$ROOT/tests/same_run.py" "$1" "$2"; }

"$MMC" build "$ROOT/tests/e2e/resume.mmnet" -o "$W/rs" || { bad "mmc build"; exit 1; }
RS="$W/rs"

# 1. Settings other than the .mmnet's: resuming with --epochs only continues
#    that run, not one with the program's defaults.
RUN="--quiet --batch 8 --seed 7 --policy random --warmup 0 --momentum 0.5 --lr 0.02"
"$RS" train $RUN --epochs 2 --out "$W/full" > /dev/null 2>&1 || bad "train full"
"$RS" train $RUN --epochs 1 --out "$W/part" > /dev/null 2>&1 || bad "train part"
cp -r "$W/part" "$W/part0"
"$RS" train --quiet --epochs 2 --resume "$W/part" > /dev/null 2> "$W/resume.err" || { bad "resume"; cat "$W/resume.err"; }
grep -q "resuming .* with its own settings: .*--batch 8.*--seed 7" "$W/resume.err" || bad "resume did not say which settings it restored"
same "$W/full" "$W/part" || bad "resuming with --epochs only differs from the uninterrupted run"
# Flags that agree with the run are accepted; --epochs may be raised, and --lr changed.
cp -r "$W/part0" "$W/agree"
expect 0 "epoch 3/3" "$RS" train --epochs 3 --batch 8 --seed 7 --policy random --resume "$W/agree" --lr 0.01 --workers 2
# A flag that contradicts the run names both values, and changes nothing.
cp -r "$W/part0" "$W/contra"
before=$(cat "$W/contra"/* | md5sum)
expect 2 "\-\-batch 16 contradicts the run in $W/contra, which has --batch 8" "$RS" train --epochs 2 --resume "$W/contra" --batch 16
expect 2 "\-\-seed 1 contradicts .* --seed 7" "$RS" train --epochs 2 --resume "$W/contra" --seed 1
expect 2 "\-\-policy guided contradicts .* --policy random" "$RS" train --epochs 2 --resume "$W/contra" --policy guided
expect 2 "\-\-data /nowhere contradicts" "$RS" train --epochs 2 --resume "$W/contra" --data /nowhere
expect 2 "\-\-epochs 1 is below the run's 2" "$W/rs" train --epochs 1 --resume "$W/full"
[ "$(cat "$W/contra"/* | md5sum)" = "$before" ] || bad "a refused resume changed the run directory"

# 2. Corrupt metadata: status 1, the file and the key named, the logs kept.
#    Each case: the edits of last.ckpt (tests/ckpt_edit.py), then the phrase.
check_meta() {
    local phrase=$1; shift
    rm -rf "$W/meta"; cp -r "$W/part0" "$W/meta"
    $EDIT "$W/meta/last.ckpt" "$@" || { bad "ckpt_edit $*"; return; }
    local logs; logs=$(cat "$W/meta/steps.csv" "$W/meta/metrics.jsonl" | md5sum)
    expect 1 "$W/meta/last.ckpt.*$phrase" "$RS" train --quiet --epochs 2 --resume "$W/meta"
    [ "$(cat "$W/meta/steps.csv" "$W/meta/metrics.jsonl" | md5sum)" = "$logs" ] || bad "the logs changed after a refused resume ($*)"
}
check_meta "'controller_mode' is '1000000'.*out of range" controller_mode=1000000
check_meta "'controller_mode' is '-1000000'.*out of range" controller_mode=-1000000
check_meta "'controller_mode' is '0'.*out of range (allowed: -1 to -1)" controller_mode=0   # random: no windows
check_meta "'controller_mode' is 'x'.*not an integer" controller_mode=x
check_meta "'controller_left' is '3'.*out of range" controller_left=3
check_meta "'epoch' is 'abc'.*not an integer" epoch=abc
check_meta "'epoch' is '-5'.*out of range" epoch=-5
check_meta "'epoch' is '99999999999999999999'.*out of range" epoch=99999999999999999999
check_meta "'epoch' is '3'.*out of range (allowed: 1 to 2)" epoch=3
check_meta "'epoch' is '1 '.*not an integer" "epoch=1 "
check_meta "'epoch' is ''.*not an integer" epoch=
check_meta "no 'epoch'" -epoch
check_meta "'step' is '-1'.*out of range" step=-1
check_meta "'regular_steps' is '99'.*out of range" regular_steps=99
check_meta "disagree with metadata 'step' 7" step=7 regular_steps=7
check_meta "'lr' is 'nan'.*out of range" lr=nan
check_meta "'lr' is '0'.*out of range" lr=0
check_meta "'lr' is '1e9'.*out of range" lr=1e9
check_meta "'best_val' is '2'.*out of range" best_val=2
check_meta "'best_epoch' is '5'.*out of range" best_epoch=5
check_meta "'best_d_speed' is 'fast'.*not a number" best_d_speed=fast
check_meta "'rng_shuffle' is '0000.*random-number state of zeros" rng_shuffle=0000000000000000000000000000000000000000000000000000000000000000
check_meta "'rng_policy' is 'xyz'.*not 64 hexadecimal digits" rng_policy=xyz
check_meta "'plateau_best' is 'nan'" plateau_best=nan
check_meta "'plateau_stale' is '1'.*out of range" plateau_stale=1
check_meta "'perfect_epochs' is '2'.*out of range" perfect_epochs=2
check_meta "'samples_per_s' is '-1'.*out of range" samples_per_s=-1
check_meta "'config.batch' is '0'.*a run's batch is at least 1" config.batch=0
check_meta "'config.batch' is '70000'.*out of range" config.batch=70000
check_meta "'config.lr' is '0'" config.lr=0
check_meta "'config.batch' is '8x'.*not an integer" config.batch=8x
check_meta "'config.seed' is '-1'.*not an integer" config.seed=-1
check_meta "'config.policy' is 'greedy'.*not a policy" config.policy=greedy
check_meta "'config.data' is 'mnist'.*not a data source" config.data=mnist
check_meta "'config.rebalance_update' is 'some'.*not one of" config.rebalance_update=some
check_meta "'config.rubi_branch' is 'zz'.*not a branch" config.rubi_branch=zz
check_meta "'config.momentum' is 'inf'.*not a number" config.momentum=inf
check_meta "no 'config.window'" -config.window
check_meta "unknown checkpoint format 'mmnet-checkpoint-9'" format=mmnet-checkpoint-9
check_meta "older mmnet" format=mmnet-checkpoint-1
check_meta "holds model 'other'" model=other
# A count the data no longer matches: 12 steps are not an epoch of 48 examples in batches of 8.
check_meta "metadata 'step' is 12, but 1 epoch(s) of 6 steps (48 training examples in batches of 8) are 6" config.synth_train=48
check_meta "tensor 'optimizer.momentum.f.net1.linear1.weight' holds a non-finite value (inf" optimizer.momentum.f.net1.linear1.weight@2=inf

# 3. A kill after steps.csv and metrics.jsonl had the second epoch but before
#    last.ckpt was renamed (its checkpoint is the first epoch's), with a row
#    cut in the middle: resuming gives the uninterrupted run's logs.
cp -r "$W/full" "$W/kill"
cp "$W/part0/last.ckpt" "$W/kill/last.ckpt"
printf '1' >> "$W/kill/steps.csv"
"$RS" train $RUN --epochs 2 --resume "$W/kill" > /dev/null 2>&1 || bad "resume after a kill"
same "$W/full" "$W/kill" || bad "resuming after a kill between the logs and the checkpoint duplicates or cuts rows"

# 4. Temporary checkpoints of killed runs: removed when their process is gone
#    (no process has PID 999999999), kept while it runs (this shell), and
#    other names left alone.
cp -r "$W/part0" "$W/tmps"
touch "$W/tmps/last.ckpt.tmp.999999999" "$W/tmps/best.ckpt.tmp.999999998" "$W/tmps/last.ckpt.tmp.$$" "$W/tmps/last.ckpt.tmp.x1" "$W/tmps/notes.tmp.999999999"
expect 0 "removed $W/tmps/last.ckpt.tmp.999999999" "$RS" train --quiet --epochs 2 --resume "$W/tmps"
[ ! -e "$W/tmps/last.ckpt.tmp.999999999" ] && [ ! -e "$W/tmps/best.ckpt.tmp.999999998" ] || bad "a stale temporary checkpoint is left"
[ -e "$W/tmps/last.ckpt.tmp.$$" ] && [ -e "$W/tmps/last.ckpt.tmp.x1" ] && [ -e "$W/tmps/notes.tmp.999999999" ] || bad "a file that is not a stale temporary checkpoint was removed"
touch "$W/new.tmp"; mkdir -p "$W/fresh"; touch "$W/fresh/last.ckpt.tmp.999999999"
"$RS" train --quiet --epochs 1 --out "$W/fresh" > /dev/null 2>&1 || bad "train fresh"
[ ! -e "$W/fresh/last.ckpt.tmp.999999999" ] || bad "a new run in a directory left a stale temporary checkpoint"

# 5. Weights: a non-finite parameter is refused by eval naming the tensor; so
#    are an unknown format and a file that is not an mmnet checkpoint.
cp "$W/full/best.ckpt" "$W/nan.ckpt"; $EDIT "$W/nan.ckpt" "g.net1.conv1.weight@0=nan"
expect 1 "nan.ckpt: tensor 'g.net1.conv1.weight' holds a non-finite value (nan at element 0" "$RS" eval --checkpoint "$W/nan.ckpt"
cp "$W/full/best.ckpt" "$W/inf.ckpt"; $EDIT "$W/inf.ckpt" "f.net1.linear1.bias@1=-inf"
expect 1 "tensor 'f.net1.linear1.bias' holds a non-finite value (-inf at element 1" "$RS" util --checkpoint "$W/inf.ckpt"
cp "$W/full/best.ckpt" "$W/fmt.ckpt"; $EDIT "$W/fmt.ckpt" format=mmnet-checkpoint-9
expect 1 "fmt.ckpt: unknown checkpoint format 'mmnet-checkpoint-9'" "$RS" eval --checkpoint "$W/fmt.ckpt"
cp "$W/full/best.ckpt" "$W/nofmt.ckpt"; $EDIT "$W/nofmt.ckpt" -format
expect 1 "nofmt.ckpt: not an mmnet checkpoint (no 'format'" "$RS" eval --checkpoint "$W/nofmt.ckpt"
cp "$W/full/best.ckpt" "$W/cfg.ckpt"; $EDIT "$W/cfg.ckpt" config.synth_test=-3
expect 1 "cfg.ckpt: corrupt checkpoint: metadata 'config.synth_test' is '-3'" "$RS" eval --checkpoint "$W/cfg.ckpt"
# eval finds the run's data settings in the checkpoint: the same accuracy as the run's summary.
acc=$("$RS" eval --checkpoint "$W/full/best.ckpt" | awk '/^test accuracy/ {print $3}')
want=$(python3 -c "import json; print('%.4f' % json.load(open('$W/full/summary.json'))['test_acc'])")
[ "$acc" = "$want" ] || bad "eval of best.ckpt gives $acc, the run's summary $want"
exit $fail
