#!/usr/bin/env python3
"""check.py -- the standard-library side of tests/policy_ref.sh:

  check.py setup REF DIR          write DIR/data/{train,test}.safetensors and
                                  DIR/init.safetensors from REF, and print a
                                  line "POLICY<TAB>FLAGS" per policy
  check.py compare REF POLICY CKPT
                                  compare CKPT's weights with REF's after POLICY's
                                  step: for every parameter, the update the program
                                  made (after - init) against the reference's, as
                                  |difference| / |reference's update| <= 1e-4"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

TOL = 1e-4


def setup(ref, out):
    t, meta = st.read(ref)
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    for split in ("train", "test"):
        part = {k.split(".", 2)[2]: v for k, v in t.items() if k.startswith("data.%s." % split)}
        st.write(os.path.join(out, "data", split + ".safetensors"), part)
    st.write(os.path.join(out, "init.safetensors"), {k[5:]: v for k, v in t.items() if k.startswith("init.")})
    for p in meta["policies"].split(","):
        print("%s\t%s" % (p, meta["flags." + p]))


def compare(ref, policy, ckpt):
    t, _ = st.read(ref)
    c, _ = st.read(ckpt)
    bad = 0
    for k in t:
        if not k.startswith("after.%s." % policy):
            continue
        name = k[len("after.%s." % policy):]
        if name not in c:
            print("%s: %s: the checkpoint has no '%s'" % (policy, ckpt, name))
            bad += 1
            continue
        init, want, got = t["init." + name][2], t[k][2], c[name][2]
        du = math.sqrt(sum((g - w) ** 2 for g, w in zip(got, want)))
        dr = math.sqrt(sum((w - i) ** 2 for w, i in zip(want, init)))
        err = du / dr if dr > 0 else du
        ok = err <= TOL and all(math.isfinite(g) for g in got)
        print("%-8s %-24s update %.3e  relative error %.2e %s" % (policy, name, dr, err, "ok" if ok else "FAIL"))
        bad += not ok
    return bad


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "compare":
        sys.exit(1 if compare(sys.argv[2], sys.argv[3], sys.argv[4]) else 0)
    else:
        sys.exit("usage: check.py setup REF DIR | compare REF POLICY CKPT")
