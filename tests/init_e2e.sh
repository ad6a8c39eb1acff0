#!/bin/bash
# init_e2e.sh MMC ROOT WORKDIR — warm starts (train --init) in a built
# program (tests/optim/tiny.mmnet, synthetic data):
#  - mmc info --params lists every parameter and state tensor;
#  - --init FILE starts from FILE's weights, exactly (float64 converted);
#  - a tensor of another shape stops the run, naming both shapes, unless
#    --init-partial, which skips it; missing and unused tensors are reported;
#  - wrong uses give clear errors;
#  - tools/torchvision_resnet18.py maps a (random) torchvision ResNet-18 onto
#    the ModelNet40 example's names and shapes (skipped without PyTorch and
#    torchvision; MMNET_PYTHON names a Python that has them).
set -u
MMC=$1; ROOT=$2; W=$3
T=$ROOT/tests
PY=${MMNET_PYTHON:-python3}
rm -rf "$W"; mkdir -p "$W"
. "$(dirname "$0")/lib.sh"

"$MMC" info "$T/optim/tiny.mmnet" --params > "$W/params.txt" || bad "mmc info --params"
[ "$(grep -c ' state$' "$W/params.txt")" = 4 ] && [ "$(wc -l < "$W/params.txt")" = 18 ] || { bad "mmc info --params: not 14 parameters and 4 states"; cat "$W/params.txt"; }
grep -qx "x.net1.conv1.weight \[4,3,3,3\]" "$W/params.txt" || bad "mmc info --params: no x.net1.conv1.weight [4,3,3,3]"
expect 2 "\-\-params is an option of 'info'" "$MMC" check "$T/optim/tiny.mmnet" --params

"$MMC" build "$T/optim/tiny.mmnet" -o "$W/tiny" || { bad "mmc build"; exit 1; }
"$W/tiny" train --quiet --epochs 1 --out "$W/src" > /dev/null 2>&1 || bad "train the source run"

# 1. The weights come over exactly: a step of 1e-30 changes no float.
NOSTEP="--quiet --epochs 1 --optimizer sgd --lr 1e-30 --momentum 0 --weight-decay 0 --schedule constant --lr-warmup-steps 0 --policy vanilla --seed 9"
# A file with one tensor in float64, one of another shape, one missing and one extra.
python3 - "$W/src/last.ckpt" "$W/mixed.safetensors" <<'PY'
import array, json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
out, blobs, off = {}, [], 0
def put(name, dtype, shape, raw):
    global off
    out[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}; blobs.append(raw); off += len(raw)
for k, v in h.items():
    if k == "__metadata__" or k.startswith(("optimizer.", "train.")): continue
    raw = b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]
    if k == "x.net1.linear1.weight": put(k, "F32", [2, 4], raw[:32]); continue        # another shape
    if k == "y.net1.linear1.bias": continue                                           # missing
    if k == "x.net1.conv1.bias": put(k, "F64", v["shape"], array.array("d", array.array("f", raw)).tobytes()); continue
    put(k, v["dtype"], v["shape"], raw)
put("fc.weight", "F32", [1], b"\0\0\0\0")                                             # not in the model
hj = json.dumps(out).encode(); hj += b" " * ((8 - (8 + len(hj)) % 8) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
PY
"$W/tiny" train $NOSTEP --init "$W/src/last.ckpt" --out "$W/same" > /dev/null 2> "$W/same.err" || { bad "--init"; cat "$W/same.err"; }
grep -q "loaded 14 of 14 parameters and 4 of 4 state tensors" "$W/same.err" || { bad "--init: no report of what it loaded"; cat "$W/same.err"; }
"$W/tiny" train $NOSTEP --init "$W/mixed.safetensors" --init-partial --out "$W/part" > /dev/null 2> "$W/part.err" || { bad "--init-partial"; cat "$W/part.err"; }
for p in "loaded 12 of 14 parameters" "1 tensor of another shape, skipped (--init-partial): x.net1.linear1.weight" \
         "1 tensor not in the file, freshly initialised: y.net1.linear1.bias" "1 tensor of the file not in the model: fc.weight"; do
    grep -qF "$p" "$W/part.err" || { bad "--init-partial: no '$p'"; cat "$W/part.err"; }
done
"$W/tiny" train $NOSTEP --out "$W/fresh" > /dev/null 2>&1 || bad "train without --init"
python3 - "$W/src" "$W/same" "$W/part" "$W/fresh" <<'PY' || bad "--init did not start from the file's weights"
import json, struct, sys
def tensors(p):
    b = open(p + "/last.ckpt", "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
src, same, part, fresh = (tensors(p) for p in sys.argv[1:])
params = [k for k in src if not k.startswith(("optimizer.", "train.")) and "_mean_" not in k]
assert len(params) == 14, params
assert all(same[k] == src[k] for k in params), [k for k in params if same[k] != src[k]]
for k in params:
    want = fresh[k] if k in ("x.net1.linear1.weight", "y.net1.linear1.bias") else src[k]
    assert part[k] == want, k
assert src["x.net1.conv1.weight"] != fresh["x.net1.conv1.weight"]
PY

# 2. Errors.
expect 1 "tensor 'x.net1.linear1.weight' has shape \[2, 4\] in the file and \[3, 4\] in the model; --init-partial skips" \
    "$W/tiny" train --quiet --init "$W/mixed.safetensors" --out "$W/e1"
python3 - "$W/other.safetensors" <<'PY'
import json, struct, sys
h = json.dumps({"fc.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
h += b" " * ((8 - (8 + len(h)) % 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + b"\0\0\0\0")
PY
expect 1 "holds none of the model's 14 parameters under their names (mmc info --params" \
    "$W/tiny" train --quiet --init "$W/other.safetensors" --out "$W/e2"
# A NaN weight, and a float64 one beyond float32's range, are refused, naming the tensor and element.
cp "$W/src/last.ckpt" "$W/nan.safetensors"
python3 "$T/ckpt_edit.py" "$W/nan.safetensors" "x.net1.conv1.weight@3=nan"
expect 1 "nan.safetensors: tensor 'x.net1.conv1.weight' holds a non-finite value as float32 (nan at element 3 of" \
    "$W/tiny" train --quiet --init "$W/nan.safetensors" --out "$W/e4"
python3 - "$W/big.safetensors" <<'PY'
import json, struct, sys
h = json.dumps({"x.net1.linear1.bias": {"dtype": "F64", "shape": [3], "data_offsets": [0, 24]}}).encode()
h += b" " * ((8 - (8 + len(h)) % 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + struct.pack("<3d", 0.5, 1e300, 0))
PY
expect 1 "tensor 'x.net1.linear1.bias' holds a non-finite value as float32 (1e+300 at element 1 of 3)" \
    "$W/tiny" train --quiet --init "$W/big.safetensors" --out "$W/e5"
printf 'not a checkpoint' > "$W/junk.safetensors"
expect 1 "junk.safetensors" "$W/tiny" train --quiet --init "$W/junk.safetensors" --out "$W/e3"
expect 2 "\-\-init .* starts a new run from its weights; --resume .* continues a run" "$W/tiny" train --init "$W/src/last.ckpt" --resume "$W/src"
expect 2 "\-\-init-partial goes with --init FILE" "$W/tiny" train --init-partial
expect 2 "option '--init' is for 'train', not 'eval'" "$W/tiny" eval --init "$W/src/last.ckpt" --checkpoint "$W/src/last.ckpt"

# 3. torchvision's ResNet-18 onto the ModelNet40 example.
if "$PY" -c "import torch, torchvision" 2> /dev/null; then
    "$PY" "$ROOT/tools/torchvision_resnet18.py" --random -o "$W/tv.safetensors" 2> /dev/null || bad "tools/torchvision_resnet18.py --random"
    "$MMC" info "$ROOT/examples/modelnet40_resnet18.mmnet" --params > "$W/mn40.txt"
    python3 - "$W/tv.safetensors" "$W/mn40.txt" <<'PY' || bad "torchvision_resnet18.py: names or shapes differ from the example's"
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); h.pop("__metadata__")
model = {}
for line in open(sys.argv[2]):
    name, shape = line.split()[:2]
    model[name] = json.loads(shape)
for k, v in h.items():
    assert k in model and model[k] == v["shape"], (k, v["shape"], model.get(k))
want = {k for k in model if k.startswith(("f.", "r.")) and ".linear1." not in k}
assert want == set(h), sorted(want ^ set(h))[:5]
PY
    "$PY" - "$W/tv.safetensors" <<'PY' || bad "torchvision_resnet18.py: a tensor's values are not its torchvision counterpart's"
import json, struct, sys
import numpy as np, torch, torchvision
torch.manual_seed(0)  # as the script's --random
tv = torchvision.models.resnet18(weights=None).state_dict()
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
def get(k):
    s, e = h[k]["data_offsets"]
    return np.frombuffer(b[8 + n + s: 8 + n + e], dtype=np.float32).reshape(h[k]["shape"])
pairs = {"conv1.weight": "conv1.weight", "bn1.running_mean": "bn1.running_mean",
         "layer1.0.conv1.weight": "basic1.conv1.weight", "layer1.1.bn2.running_var": "basic2.bn2.running_var",
         "layer2.0.downsample.0.weight": "down1.shortcut1.conv1.weight", "layer2.1.conv1.weight": "basic3.conv1.weight",
         "layer3.1.conv2.weight": "basic4.conv2.weight", "layer4.0.downsample.1.bias": "down3.shortcut1.bn1.bias",
         "layer4.1.bn1.weight": "basic5.bn1.weight"}
for t, m in pairs.items():
    for br in ("f", "r"):
        assert np.array_equal(get(f"{br}.resnet181.{m}"), tv[t].numpy()), (t, m, br)
PY
    say "torchvision ResNet-18: $(grep -c . "$W/mn40.txt") tensors in the example, names, shapes and values match"
else
    say "SKIP (part 3): no PyTorch with torchvision for $PY"
fi

[ $fail = 0 ] && say "init e2e: all checks passed"
exit $fail
