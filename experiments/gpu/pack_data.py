"""Pack the data a lent GPU machine needs into ``.devdata/`` (at most ~55 MB travels with the tree).

A lent GPU machine receives only the repository's working tree (64 MiB in all), not the data
folder. This writes a data folder in the layout :mod:`l2l.data` reads: ``cifar10/`` with the first
TRAIN training images and the first TEST test images of the recovered copy, and ``art/`` with the
neural-art crops and styles (compressed). Usage:
``python experiments/gpu/pack_data.py SRC_DATA_DIR [TRAIN] [TEST] [--out FOLDER]`` (default
``.devdata`` in the repository; a folder to send, not to commit).
"""

import argparse
import shutil
from pathlib import Path

import numpy as np

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("src", type=Path, metavar="SRC_DATA_DIR", help="the full data folder (L2L_DATA)")
parser.add_argument("train", type=int, nargs="?", default=9000, metavar="TRAIN")
parser.add_argument("test", type=int, nargs="?", default=1000, metavar="TEST")
parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / ".devdata")
args = parser.parse_args()
src, train, test, out = args.src, args.train, args.test, args.out
(out / "cifar10").mkdir(parents=True, exist_ok=True)
for split, n in (("train", train), ("test", test)):
    with np.load(src / "cifar10" / f"cifar10_{split}.npz") as a:
        np.savez_compressed(out / "cifar10" / f"cifar10_{split}.npz", x=a["x"][:n], y=a["y"][:n])
art = out / "art"
if art.exists():
    shutil.rmtree(art)
shutil.copytree(src / "art" / "styles", art / "styles")
for name in ("ATTRIBUTION.md", "content_splits.json", "content_sources.json"):
    shutil.copy(src / "art" / name, art / name)
with np.load(src / "art" / "content_64.npz") as a:
    np.savez_compressed(art / "content_64.npz", **{k: a[k] for k in ("x", "train", "val", "test")})
with np.load(src / "art" / "content_128_heldout.npz") as a:
    np.savez_compressed(art / "content_128_heldout.npz", **{k: a[k] for k in a.files})
print(sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20, "MiB in", out)
