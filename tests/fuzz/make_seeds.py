#!/usr/bin/env python3
"""make_seeds.py — writes the seed corpora of the reader fuzz targets
(corpus_ckpt/, corpus_idx/, corpus_arrays/, corpus_image/, corpus_clips/):
a few small valid files of each format. Inputs that found bugs are added
to the corpora by hand (named after the bug) and are not made here.
PNG and JPEG seeds need the ffmpeg command.

    tests/fuzz/make_seeds.py"""
import gzip
import json
import os
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def put(corpus, name, data):
    d = os.path.join(HERE, "corpus_" + corpus)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, meta=None):
    """tensors: name -> (dtype, shape, bytes)."""
    header, body = {}, b""
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(data)]}
        body += data
    if meta is not None:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + body


def npy(descr, shape, data):
    d = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, "".join("%d," % s for s in shape))
    h = d.encode() + b" "
    h += b" " * (-(10 + len(h) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data


f32 = lambda *v: struct.pack("<%df" % len(v), *v)
i64 = lambda *v: struct.pack("<%dq" % len(v), *v)

# checkpoints: what rt_ckpt_save writes (tensors and string metadata)
put("ckpt", "small.ckpt", safetensors({"w": ("F32", [2, 2], f32(1, 2, 3, 4)), "b": ("F64", [1], struct.pack("<d", 0.5)),
                                       "step": ("I64", [1], i64(7))},
                                      {"format": "mmnet-ckpt-1", "epoch": "3", "step": "120", "controller_mode": "0"}))
put("ckpt", "empty.ckpt", safetensors({}, {}))
put("ckpt", "scalar.ckpt", safetensors({"w": ("F32", [], f32(1))}))

# IDX: images (3 dimensions) and labels (1), plain and gzip-compressed
images = struct.pack(">IIII", 0x0803, 2, 2, 2) + bytes(range(8))
labels = struct.pack(">II", 0x0801, 3) + bytes([0, 1, 9])
put("idx", "images.idx3", images)
put("idx", "labels.idx1", labels)
put("idx", "images.idx3.gz", gzip.compress(images, mtime=0))

# arrays: first byte 0 safetensors, 1 the input's .npy, 2 the labels' .npy
put("arrays", "split.safetensors", b"\0" + safetensors({"a": ("F32", [2, 1, 2, 2], f32(*range(8))),
                                                         "label": ("I64", [2], i64(0, 1))}))
put("arrays", "split_u8.safetensors", b"\0" + safetensors({"a": ("U8", [2, 1, 2, 2], bytes(range(8))),
                                                            "label": ("I32", [2], struct.pack("<2i", 1, 0))}))
put("arrays", "input.npy", b"\1" + npy("<f4", [2, 1, 2, 2], f32(*range(8))))
put("arrays", "input_f16.npy", b"\1" + npy("<f2", [2, 1, 2, 2], bytes(16)))
put("arrays", "label.npy", b"\2" + npy("<i8", [2], i64(1, 0)))

# images: a 5x3 PNG (RGB and gray) and JPEG, made by ffmpeg
with tempfile.TemporaryDirectory() as t:
    for name, args in (("rgb.png", ["-pix_fmt", "rgb24"]), ("gray.png", ["-pix_fmt", "gray"]),
                       ("rgb.jpg", ["-pix_fmt", "yuvj420p"]), ("gray.jpg", ["-pix_fmt", "gray"])):
        out = os.path.join(t, name)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=5x3:rate=1",
                        "-frames:v", "1"] + args + [out], check=True)
        with open(out, "rb") as f:
            put("image", name, f.read())

# NVGesture lists
put("clips", "two.lst", b"path:./Video_data/class_01/subject1_r0 depth:sk_depth:10:30 color:sk_color:10:30 "
                        b"duo_left:duo_left:12:40 label:1\n"
                        b"path:./Video_data/class_03/subject2_r1 depth:sk_depth:200:280 color:sk_color:205:285 label:3\r\n")
put("clips", "blank.lst", b"\n  \npath:./v/a color:sk_color:0:2\tdepth:sk_depth:0:1 label:25   \n")
