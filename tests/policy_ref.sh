#!/bin/bash
# policy_ref.sh MMC TESTS WORKDIR — one training step of every balancing
# policy against PyTorch: tests/policy_ref/ref.safetensors (made by
# make_reference.py from the published formulas, in float64) holds a batch,
# the weights to start from, and each policy's weights after its step. The
# generated program for tiny.mmnet trains one step (one epoch of one batch)
# per policy from the same weights (--init) on the same data, and every
# parameter's update must be the reference's to a relative error of 1e-4
# (check.py). Runs without PyTorch: the reference is committed.
set -u
MMC=$1; T=$2; W=$3
rm -rf "$W"; mkdir -p "$W"
. "$T/lib.sh"
R="$T/policy_ref"

python3 "$R/check.py" setup "$R/ref.safetensors" "$W" > "$W/policies.txt" || { bad "check.py setup"; exit 1; }
"$MMC" build "$R/tiny.mmnet" -o "$W/tiny" > "$W/build.log" 2>&1 || { bad "mmc build"; cat "$W/build.log"; exit 1; }
n=0
while IFS=$'\t' read -r policy flags; do
    # shellcheck disable=SC2086 # the flags are words
    if ! "$W/tiny" train --quiet --workers 0 --data "$W/data" --init "$W/init.safetensors" --epochs 1 \
            $flags --out "$W/$policy" > "$W/$policy.log" 2>&1; then
        bad "$policy: train $flags"; cat "$W/$policy.log"; continue
    fi
    python3 "$R/check.py" compare "$R/ref.safetensors" "$policy" "$W/$policy/last.ckpt" || bad "$policy: the step is not the reference's"
    n=$((n + 1))
done < "$W/policies.txt"
[ "$n" -ge 2 ] || bad "only $n policies checked"
[ $fail = 0 ] && say "policy_ref: $n policies' steps agree with the reference"
exit $fail
