"""Build the Fashion-MNIST dataset from the Debian package ``dataset-fashion-mnist`` (MIT, Zalando SE).

The package ships the four upstream IDX files (gzip): 60,000 training and 10,000 test images of 28x28
grey pixels with labels 0-9 (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag,
Ankle boot). Files are found through ``dpkg -L``, never a hard-coded folder.

Output: ``out/train/part-00000.parquet`` ... and ``out/test/part-00000.parquet`` ... (contiguous shards in
file order) with ``id`` (``train-00000``), ``label`` (int64), ``pixels`` (fixed_size_list<uint8>[784],
the row-major image, the EL2N proxy's features) and ``image`` (PNG bytes), then ``out/.complete``
(JSON, written last), so an interrupted build is detected and rebuilt.
"""
from __future__ import annotations

import gzip
import io
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from curate.data.demo import _dpkg_list, _shard_bounds, package_version
from curate.errors import DataError

PACKAGE = "dataset-fashion-mnist"
INSTALL_HINT = f"install it with `sudo apt-get install {PACKAGE}` (or `make test`, which installs it)"
FILES = {"train_x": "train-images-idx3-ubyte.gz", "train_y": "train-labels-idx1-ubyte.gz",
         "test_x": "t10k-images-idx3-ubyte.gz", "test_y": "t10k-labels-idx1-ubyte.gz"}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
COMPLETE = ".complete"
SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("label", pa.int64(), nullable=False),
    pa.field("pixels", pa.list_(pa.uint8(), 784), nullable=False),
    pa.field("image", pa.binary(), nullable=False),
])


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (gzip): two zero bytes, type 0x08 (uint8), the rank, big-endian uint32 dims, then data."""
    raw = gzip.open(path, "rb").read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError([f"{path}: not an uint8 IDX file (header {raw[:4].hex()})"])
    rank = raw[3]
    dims = tuple(int(v) for v in np.frombuffer(raw, ">u4", count=rank, offset=4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * rank)
    if data.size != int(np.prod(dims)):
        raise DataError([f"{path}: {data.size} bytes of data for dimensions {dims}"])
    return data.reshape(dims)


def package_paths(listed: list[str] | None = None) -> dict[str, Path]:
    """The four IDX files of the installed package; DataError with the install hint when absent."""
    listed = _dpkg_list(PACKAGE) if listed is None else listed
    if listed is None:
        raise DataError([f"Debian package {PACKAGE!r} is not installed (`dpkg -L {PACKAGE}` failed); {INSTALL_HINT}"])
    found = {key: next((Path(p) for p in listed if p.endswith("/" + name) and Path(p).is_file()), None)
             for key, name in FILES.items()}
    missing = [FILES[k] for k, v in found.items() if v is None]
    if missing:
        raise DataError([f"Debian package {PACKAGE!r} lists no {', '.join(missing)} on disk; reinstall it: {INSTALL_HINT}"])
    return found


def load_fashion_mnist(listed: list[str] | None = None) -> dict[str, np.ndarray]:
    """`train_x` (60000, 784) uint8, `train_y` (60000,) int64, `test_x`, `test_y`, from the package files."""
    paths = package_paths(listed)
    out = {}
    for split in ("train", "test"):
        x, y = read_idx(paths[f"{split}_x"]), read_idx(paths[f"{split}_y"])
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError([f"{PACKAGE}: {split} images {x.shape} and labels {y.shape} do not match"])
        out[f"{split}_x"], out[f"{split}_y"] = x.reshape(len(x), -1), y.astype(np.int64)
    return out


def png_bytes(images: np.ndarray) -> list[bytes]:
    """Each (784,) uint8 row as a 28x28 greyscale PNG."""
    out = []
    for row in images:
        buf = io.BytesIO()
        Image.fromarray(row.reshape(28, 28), mode="L").save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def split_table(split: str, x: np.ndarray, y: np.ndarray, start: int = 0) -> pa.Table:
    """Rows [start, start + len(x)) of a split as a table of SCHEMA."""
    ids = [f"{split}-{i:05d}" for i in range(start, start + len(x))]
    flat = pa.array(np.ascontiguousarray(x, np.uint8).reshape(-1), pa.uint8())
    return pa.table([pa.array(ids, pa.string()), pa.array(y, pa.int64()),
                     pa.FixedSizeListArray.from_arrays(flat, 784), pa.array(png_bytes(x), pa.binary())], schema=SCHEMA)


def build_fashion_mnist(out: str | Path, shards: int = 8) -> dict:
    """Write train/ and test/ shards under `out` (see the module docstring); returns the .complete record."""
    out = Path(out)
    t0 = time.perf_counter()
    data = load_fashion_mnist()
    out.mkdir(parents=True, exist_ok=True)
    (out / COMPLETE).unlink(missing_ok=True)
    info: dict = {"package": PACKAGE, "version": package_version(PACKAGE), "classes": list(CLASSES)}
    for split in ("train", "test"):
        folder = out / split
        folder.mkdir(exist_ok=True)
        for old in folder.glob("part-*.parquet"):
            old.unlink()
        x, y = data[f"{split}_x"], data[f"{split}_y"]
        bounds = _shard_bounds(len(x), shards)
        for i, (a, b) in enumerate(bounds):
            tmp = folder / f".part-{i:05d}.parquet.tmp"
            pq.write_table(split_table(split, x[a:b], y[a:b], a), tmp, row_group_size=4096)
            tmp.rename(folder / f"part-{i:05d}.parquet")
        info[split] = {"rows": int(len(x)), "shards": len(bounds),
                       "class_counts": np.bincount(y, minlength=10).tolist()}
    info["seconds"] = round(time.perf_counter() - t0, 2)
    (out / f"{COMPLETE}.tmp").write_text(json.dumps(info, indent=1))
    (out / f"{COMPLETE}.tmp").rename(out / COMPLETE)
    return info


def flip_labels(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Label noise for experiments: each chosen row gets another of the 10 classes, uniformly.

    Returns (noisy labels, flipped mask)."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(y), int(round(fraction * len(y))), replace=False)
    noisy = y.copy()
    noisy[rows] = (y[rows] + rng.integers(1, 10, len(rows))) % 10
    flipped = np.zeros(len(y), bool)
    flipped[rows] = True
    return noisy, flipped
