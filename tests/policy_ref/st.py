"""st.py -- read and write safetensors files with the standard library only
(float32, float64 and int64 tensors as flat lists), for the policy reference
tests, which must run where neither numpy nor PyTorch is installed."""
import json
import struct

_FMT = {"F32": ("f", 4), "F64": ("d", 8), "I64": ("q", 8), "I32": ("i", 4)}


def read(path):
    """{name: (dtype, shape, flat list)}, and the metadata dict."""
    buf = open(path, "rb").read()
    n = struct.unpack("<Q", buf[:8])[0]
    header = json.loads(buf[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = buf[8 + n:]
    out = {}
    for name, t in header.items():
        code, size = _FMT[t["dtype"]]
        a, b = t["data_offsets"]
        out[name] = (t["dtype"], t["shape"], list(struct.unpack("<%d%s" % ((b - a) // size, code), data[a:b])))
    return out, meta


def write(path, tensors, meta=None):
    """tensors: {name: (dtype, shape, flat list)}, written in the given order."""
    header, chunks, off = {}, [], 0
    for name, (dtype, shape, flat) in tensors.items():
        code, size = _FMT[dtype]
        raw = struct.pack("<%d%s" % (len(flat), code), *flat)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    if meta:
        header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
