#!/usr/bin/env python3
"""ckpt_edit.py FILE EDIT... -- change a safetensors checkpoint in place, as
the resume checks (tests/e2e_resume.sh) need to make corrupt ones:

  KEY=VALUE     set the metadata entry KEY to VALUE (VALUE may be empty)
  -KEY          remove the metadata entry KEY
  TENSOR@I=X    set element I of float32 tensor TENSOR to X (nan, inf, a number)

The tensors' bytes and order are kept; the header is rewritten and padded
to 8 bytes as the format asks."""
import json
import struct
import sys

path, edits = sys.argv[1], sys.argv[2:]
buf = bytearray(open(path, "rb").read())
n = struct.unpack("<Q", buf[:8])[0]
header = json.loads(buf[8:8 + n])
data = buf[8 + n:]
meta = header.setdefault("__metadata__", {})
for e in edits:
    if e.startswith("-"):
        meta.pop(e[1:], None)
    elif "@" in e.split("=", 1)[0]:
        lhs, x = e.split("=", 1)
        name, i = lhs.split("@")
        t = header[name]
        assert t["dtype"] == "F32", name
        off = t["data_offsets"][0] + 4 * int(i)
        data[off:off + 4] = struct.pack("<f", float(x))
    else:
        k, v = e.split("=", 1)
        meta[k] = v
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * ((8 - (8 + len(text)) % 8) % 8)
open(path, "wb").write(struct.pack("<Q", len(text)) + text + bytes(data))
