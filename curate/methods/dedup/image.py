"""`image_hash`: near-duplicate images by perceptual hash, no model weights.

Each image gets a 64-bit pHash or dHash (the `imagehash` library, 8 x 8). Two images are near-duplicates
when their hashes differ in at most `radius` bits. Candidates come from multi-index hashing (Norouzi et
al., CVPR 2012): the 64 bits are cut into radius + 1 blocks, and by the pigeonhole principle a pair within
the radius agrees exactly on at least one block, so rows sharing a block value are the only pairs
compared (then checked exactly). Components and the keep rule: components.py. `hamming` is each row's
smallest distance to a linked row; byte-identical images always have distance 0.
"""
from __future__ import annotations

import io
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.methods.dedup.components import GraphStage, KeepBy, KeepLargest, Partitions, Seed
from curate.methods.hints import StageName

BITS = 64
def _imagehash() -> Any:
    # (imported here, not with the registry: a run without this stage never loads PIL and imagehash)
    import imagehash

    return imagehash


def image_hash(data: bytes, kind: str) -> int:
    """The 64-bit perceptual hash of an encoded image (raises on bytes that are not an image)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
            # on white, as shown: imagehash's grey conversion drops alpha, and transparent pixels keep
            # whatever colour they were stored with (often black: line art then looks alike)
            rgba = img.convert("RGBA")
            img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        bits = getattr(_imagehash(), kind)(img, hash_size=8).hash.ravel()
    return int(np.packbits(bits).view(">u8")[0])


def blocks(radius: int) -> list[tuple[int, int]]:
    """radius + 1 contiguous bit ranges covering the 64 bits, as equal as they can be."""
    cuts = np.linspace(0, BITS, radius + 2).round().astype(int)
    return list(zip(cuts[:-1].tolist(), cuts[1:].tolist()))


class ImageHash(GraphStage):
    """Near-duplicate images: perceptual hashes within a Hamming radius, components, keep rule.

    Outputs: `component` (the group: set on every row that was scored, a row with no duplicate alone in its
    own; `size` > 1 marks a group of duplicates), `size`, `dup_of` (the id of the row kept in the group, on
    the others), `match` (`near`), `hamming` (the row's smallest distance to a row linked to it).
    """

    type = "image_hash"
    similarity_name = "hamming"
    similarity_type = pa.int32()
    similarity_is_distance = True

    def __init__(self, image_column: Annotated[str, Field(description="the column of encoded image bytes")] = "image",
                 hash: Annotated[Literal["phash", "dhash"], Field(description="perceptual hash (64 bits)")] = "phash",
                 radius: Annotated[int, Field(ge=0, le=16, description="largest Hamming distance of a near-duplicate "
                                                                       "pair")] = 4,
                 keep_by: KeepBy = None, keep_largest: KeepLargest = True, seed: Seed = 0,
                 partitions: Partitions = "auto", name: StageName = None):
        super().__init__(keep_by, keep_largest, seed, partitions, name)
        self.image_column, self.hash, self.radius = image_column, hash, radius

    @property
    def data_inputs(self) -> tuple[str, ...]:
        return (self.image_column,)

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        if column == self.image_column and not (pa.types.is_binary(type) or pa.types.is_large_binary(type)):
            return f"is {type}; needs encoded image bytes (binary)"
        return super().check_input(column, type)

    def node_key(self) -> dict[str, Any]:
        return {"image_column": self.image_column, "hash": self.hash, "imagehash": _imagehash().__version__}

    def node_payload(self, table: pa.Table) -> tuple[dict[str, pa.Array], np.ndarray, np.ndarray | None]:
        values = table.column(self.image_column).to_pylist()
        sig = np.zeros(len(values), np.uint64)
        errors = np.full(len(values), None, object)
        for i, v in enumerate(values):
            if v is None:
                errors[i] = f"null_image: column {self.image_column!r} is null"
                continue
            try:
                sig[i] = image_hash(v, self.hash)
            except Exception as e:  # any decoder failure is this row's problem, not the shard's
                errors[i] = f"bad_image: {type(e).__name__}: {e}"
        length = np.asarray(pc.fill_null(pc.binary_length(table.column(self.image_column)), 0).to_numpy(), np.float64)
        return {"sig": pa.array(sig, pa.uint64())}, errors, length

    def bucket_key(self) -> dict[str, Any]:
        return {"radius": self.radius}

    def payload_key(self, nodes: pa.Table) -> np.ndarray:
        return np.asarray(nodes.column("sig").to_numpy(), np.uint64)

    def bucket_keys(self, nodes: pa.Table) -> np.ndarray:
        sig = np.asarray(nodes.column("sig").to_numpy(), np.uint64)
        cols = [(sig >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1) for lo, hi in blocks(self.radius)]
        return np.stack(cols, 1) if len(sig) else np.zeros((0, len(cols)), np.uint64)

    def similarity(self, a: pa.Table, b: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(a.column("sig").to_numpy(), np.uint64) ^ np.asarray(b.column("sig").to_numpy(), np.uint64)
        distance = np.bitwise_count(x).astype(np.float64)
        return -distance, distance <= self.radius  # larger is more similar

    def similarity_column(self, sim: np.ndarray) -> np.ndarray:
        return -sim

    @property
    def similarity_cut(self) -> float:
        return float(self.radius)
