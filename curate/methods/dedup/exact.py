"""`exact_dedup`: rows whose text (after a declared normalisation) or bytes have the same xxh3-128 hash
form one group; one row per group is kept (keep rule in components.py), the others are `dup_of` it."""
from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pydantic import Field

from curate.methods.dedup.components import GraphStage, KeepBy, KeepLargest, Partitions, Seed
from curate.methods.dedup.text import NORMALIZE_HELP, Normalize, normalize
from curate.methods.hints import StageName
from curate.stage import FitContext, Shuffled


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_bytes(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def content_hashes(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(high, low) uint64 halves of each value's xxh3-128 (null values: 0, 0)."""
    digests = [xxhash.xxh3_128_digest(v) if v is not None else bytes(16) for v in values.to_pylist()]
    both = np.frombuffer(b"".join(digests), ">u8").reshape(-1, 2) if digests else np.zeros((0, 2), np.uint64)
    return both[:, 0].astype(np.uint64), both[:, 1].astype(np.uint64)


class ExactDedup(GraphStage):
    """Exact duplicates of a text column (after `normalize`) or a binary column (image bytes).

    Outputs: `component` (the group: set on every row that was scored, a row with no duplicate alone in its
    own; `size` > 1 marks a group of duplicates), `size` (rows in the group), `dup_of` (the id of the row
    kept in the group, on the others), `match` (`exact`).
    """

    type = "exact_dedup"
    version = "2"  # 2: control characters separate words (normalize, the shingle kernel)
    match = "exact"

    def __init__(self, hash_column: Annotated[str, Field(description="the text or binary column hashed")] = "text",
                 normalize: Annotated[Normalize, Field(description=f"text only: {NORMALIZE_HELP}")] = "none",
                 keep_by: KeepBy = None, keep_largest: KeepLargest = True, seed: Seed = 0,
                 partitions: Partitions = "auto", name: StageName = None):
        super().__init__(keep_by, keep_largest, seed, partitions, name)
        self.hash_column, self.normalize = hash_column, normalize

    @property
    def data_inputs(self) -> tuple[str, ...]:
        return (self.hash_column,)

    @property
    def payload(self) -> tuple[str, ...]:
        return ("label", "label2")

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        if column == self.hash_column:
            if _is_bytes(type):
                return None if self.normalize == "none" else f"is {type}; normalize {self.normalize!r} needs text"
            return None if _is_text(type) else f"is {type}; needs a string or binary column"
        return super().check_input(column, type)

    def node_key(self) -> dict[str, Any]:
        return {"hash_column": self.hash_column, "normalize": self.normalize}

    def node_payload(self, table: pa.Table) -> tuple[dict[str, pa.Array], np.ndarray, np.ndarray | None]:
        values = table.column(self.hash_column).combine_chunks()
        text = _is_text(values.type)
        if text:
            values = normalize(values, self.normalize)
            length = pc.utf8_length(table.column(self.hash_column))
        else:
            length = pc.binary_length(table.column(self.hash_column))
        length = np.asarray(pc.fill_null(length, 0).to_numpy(zero_copy_only=False), np.float64)
        empty = pc.fill_null(pc.equal(pc.binary_length(values), 0), False).to_numpy(zero_copy_only=False)
        null = values.is_null().to_numpy(zero_copy_only=False)
        errors = np.full(len(values), None, object)
        errors[empty] = "empty_text: nothing left after normalisation" if text else "empty_bytes: zero-length value"
        errors[null] = f"null_value: column {self.hash_column!r} is null"
        hi, lo = content_hashes(pc.cast(values, pa.large_binary()))
        return {"label": pa.array(hi, pa.uint64()), "label2": pa.array(lo, pa.uint64())}, errors, length

    def bucket_key(self) -> dict[str, Any]:
        return {}

    def groups(self, ctx: FitContext, nodes: Shuffled) -> Shuffled:
        return ctx.shuffle(self._keep_map, [], self._parts, self._keep_reduce, name="keep", source=[nodes])
