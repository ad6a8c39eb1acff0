#!/usr/bin/env python3
"""torch_decode.py — the reference bench/data_decode.c measures itself
against: the PNGs of DIR/*/train/*.png decoded by PIL with T worker
processes, each image opened, converted to RGB and made a float tensor in
[0, 1], [3, H, W] (what torchvision's ToTensor does, without torchvision).

With PyTorch: a torch.utils.data.DataLoader with num_workers=T, batches of
32, persistent workers. Without it but with PIL and numpy: a
multiprocessing.Pool of T processes doing the same decoding and conversion
to a float32 array, the arrays not sent back (so an upper bound on what a
DataLoader could do). Without PIL: says so.

One warm-up epoch (workers started, files in the page cache), then EPOCHS
timed ones; prints one JSON line: images_per_s (the median epoch), side,
threads, images, or {"missing": ...}.
"""
import argparse
import glob
import json
import multiprocessing
import os
import statistics
import sys
import time


def load_rgb(path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def decode_only(path):
    import numpy as np

    x = load_rgb(path).transpose(2, 0, 1).astype(np.float32) / 255
    return 1 if x.shape[0] == 3 else 0


class Files:
    """A map-style data set of image files (a torch Dataset by duck typing)."""

    def __init__(self, files):
        self.files = files

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        import torch

        a = torch.from_numpy(load_rgb(self.files[i]))
        return a.permute(2, 0, 1).contiguous().float().div(255)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    files = sorted(glob.glob(os.path.join(a.dir, "*", "train", "*.png")))
    if not files:
        print(json.dumps({"missing": f"no PNGs in {a.dir}/*/train"}))
        return 1
    try:
        import numpy  # noqa: F401
        import PIL
        from PIL import Image  # noqa: F401
    except ImportError as e:
        print(json.dumps({"missing": f"{e.name} is not installed: no PIL reference"}))
        return 0
    try:
        import torch
        import torch.utils.data
    except ImportError:
        torch = None

    if torch is not None:
        side = f"PyTorch {torch.__version__} DataLoader + PIL {PIL.__version__}"
        dl = torch.utils.data.DataLoader(Files(files), batch_size=a.batch, num_workers=a.threads,
                                         persistent_workers=a.threads > 0)

        def epoch():
            return sum(b.shape[0] for b in dl)
    else:
        side = f"PIL {PIL.__version__} alone (multiprocessing.Pool, arrays not sent back; no PyTorch)"
        pool = multiprocessing.Pool(a.threads)

        def epoch():
            return sum(pool.imap_unordered(decode_only, files, chunksize=16))

    n = epoch()
    if n != len(files):
        print(json.dumps({"missing": f"decoded {n} of {len(files)} images"}))
        return 1
    rates = []
    for _ in range(a.epochs):
        t = time.perf_counter()
        n = epoch()
        rates.append(n / (time.perf_counter() - t))
    print(json.dumps({"images_per_s": statistics.median(rates), "side": side, "threads": a.threads, "images": len(files)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
