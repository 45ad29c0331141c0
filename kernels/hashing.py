"""Stable 64-bit hashes, vectorised: row-id hashes for tie keys and duplicate checks.

The definition is ours and fixed (it keys which tied rows a policy keeps, so it must not change with a
library upgrade): h = mix64(len ^ SEED), then for each 8-byte little-endian word w of the UTF-8 bytes
(the last one zero-padded) h = mix64(h ^ w), where mix64 is the splitmix64 finaliser.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SEED = np.uint64(0x6A09E667F3BCC908)
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


def mix64(x: np.ndarray | int) -> np.ndarray:
    """splitmix64 finaliser: a stable, well-mixed 64-bit permutation (vectorised)."""
    z = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hash_strings(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """uint64 hash of each string (nulls hash like the empty string); one numpy pass per 8 bytes of the longest."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    arr = pc.cast(arr, pa.large_string())
    n = len(arr)
    if n == 0:
        return np.zeros(0, np.uint64)
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset:arr.offset + n + 1]
    raw = arr.buffers()[2]
    data = np.frombuffer(raw, np.uint8) if raw is not None else np.zeros(0, np.uint8)
    data = np.concatenate([data, np.zeros(8, np.uint8)])  # 8-byte loads past the end stay in bounds
    # The little-endian word starting at every byte (overlapping, no copy): one gather per 8 bytes of a string
    # instead of eight.
    words = np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
    start = offsets[:-1]
    length = offsets[1:] - start
    if arr.null_count:
        length = np.where(arr.is_null().to_numpy(zero_copy_only=False), 0, length)
    h = mix64(length.astype(np.uint64) ^ SEED)
    for i in range(0, int(length.max()), 8):
        rows = np.flatnonzero(length > i)
        word = words[start[rows] + i]
        left = length[rows] - i
        short = left < 8
        if short.any():  # the last word of a string: zero the bytes of the next one
            word[short] &= _ONES >> (np.uint64(64) - np.uint64(8) * left[short].astype(np.uint64))
        h[rows] = mix64(h[rows] ^ word)
    return h


def partition_of(values: np.ndarray, partitions: int) -> np.ndarray:
    """A stable spread of integer group ids over `partitions` (int32)."""
    return (mix64(np.asarray(values, dtype=np.uint64)) % np.uint64(partitions)).astype(np.int32)
