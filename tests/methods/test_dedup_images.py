"""image_hash: perceptual-hash near-duplicates of images the test draws; multi-index blocks against brute force."""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image, ImageDraw

import curate
from curate.errors import DataError
from curate.methods.dedup import Dedup, ImageHash
from curate.methods.dedup.image import blocks
from testkit.helpers import write_shards


def png(seed: int, size: int = 128) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.integers(0, size - 20, 2)
        x1, y1 = x0 + rng.integers(10, 60), y0 + rng.integers(10, 60)
        draw.ellipse([int(x0), int(y0), int(x1), int(y1)], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return img


def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    base = png(0)
    images = {"base": encode(base), "same_bytes": encode(base), "resized": encode(base.resize((96, 96))),
              "jpeg": encode(base, "JPEG")}
    images.update({f"other{i}": encode(png(i + 1)) for i in range(12)})
    images["broken"] = b"not an image"
    t = pa.table({"id": list(images), "image": pa.array(list(images.values()), pa.binary())})
    data = write_shards(root / "data", t, 3)
    pipe = curate.Pipeline(stages=[ImageHash(radius=6, keep_by="length", partitions=2)],
                           policies=[Dedup(column="image_hash.component")], id_column="id")
    summary = curate.run(pipe, data, root / "run", executor="local")
    return summary, {r["id"]: r for r in curate.load_manifest(root / "run").to_pylist()}, images


def test_identical_bytes_and_re_renders_collapse_to_one_row(run):
    _, rows, images = run
    group = [rows[k] for k in ("base", "same_bytes", "resized", "jpeg")]
    assert len({r["image_hash.component"] for r in group}) == 1 and sum(r["keep"] for r in group) == 1
    assert rows["same_bytes"]["image_hash.hamming"] == 0 or rows["base"]["image_hash.hamming"] == 0
    assert all(r["image_hash.hamming"] <= 6 for r in group)
    kept = next(r for r in group if r["keep"])
    assert len(images[kept["id"]]) == max(len(images[r["id"]]) for r in group)  # keep_by length: the largest file
    assert all(r["drop_reason"] == f"near duplicate of {kept['id']}" for r in group if not r["keep"])


def test_different_images_are_kept_and_bad_bytes_are_errors(run):
    summary, rows, _ = run
    assert all(rows[f"other{i}"]["keep"] and rows[f"other{i}"]["image_hash.size"] == 1 for i in range(12))
    assert rows["broken"]["error"].startswith("image_hash: bad_image: UnidentifiedImageError")
    assert summary["result"]["errored"] == 1


def test_a_column_that_is_not_bytes_fails_the_plan(tmp_path):
    data = write_shards(tmp_path / "data", pa.table({"id": ["a"], "image": ["x.png"]}), 1)
    pipe = curate.Pipeline(stages=[ImageHash()], policies=[Dedup(column="image_hash.component")], id_column="id")
    with pytest.raises(DataError, match="column 'image' is string; needs encoded image bytes"):
        curate.run(pipe, data, tmp_path / "run", executor="local")


@pytest.mark.parametrize("radius", [0, 3, 8])
def test_every_pair_within_the_radius_shares_a_block(radius):
    rng = np.random.default_rng(radius)
    base = rng.integers(0, 2**64, 300, dtype=np.uint64)
    flips = [np.uint64(sum(1 << int(b) for b in rng.choice(64, int(rng.integers(0, 2 * radius + 2)), replace=False)))
             for _ in base]
    other = base ^ np.array(flips, np.uint64)
    stage = ImageHash(radius=radius)
    ka = stage.bucket_keys(pa.table({"sig": pa.array(base, pa.uint64())}))
    kb = stage.bucket_keys(pa.table({"sig": pa.array(other, pa.uint64())}))
    distance = np.bitwise_count(base ^ other)
    shares = (ka == kb).any(axis=1)
    within = distance <= radius
    assert within.sum() > 50 and shares[within].all()  # the pigeonhole guarantee: no pair is missed
    assert sum(hi - lo for lo, hi in blocks(radius)) == 64 and len(blocks(radius)) == radius + 1
