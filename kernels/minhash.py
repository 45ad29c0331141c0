"""MinHash signatures and LSH banding, vectorised: one implementation for blocking (autofj) and dedup.

A set of 64-bit tokens gets `n_hash` min-hashes (multiply-shift over a mixed token code: odd
multiplier a_k, offset b_k, top 32 bits of mix(t) * a_k + b_k mod 2^64). Two sets agree in one position
with probability equal to their Jaccard similarity J, so a pair shares the bucket of at least one of
`bands` bands of `rows` values with probability 1 - (1 - J^rows)^bands (the S-curve).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numba
import numpy as np

if TYPE_CHECKING:  # only the type: scipy's import costs a run that never builds a sparse matrix ~0.1-0.5 s
    import scipy.sparse as sp


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: token ids may be small consecutive integers, the hashes need spread bits."""
    x = np.asarray(x).astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def permutations(n_hash: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) of each of `n_hash` hash functions (a odd)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1 << 63, n_hash, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 1 << 63, n_hash, dtype=np.uint64)
    return a, b


@numba.njit(cache=True, nogil=True)
def _min_hashes(tokens: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n, k = len(offsets) - 1, len(a)
    out = np.empty((n, k), np.uint32)
    m = np.empty(k, np.uint64)
    s30, s27, s31, s32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)
    m1, m2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
    for i in range(n):
        m[:] = np.uint64(0xFFFFFFFFFFFFFFFF)
        for t in range(offsets[i], offsets[i + 1]):
            x = tokens[t]  # mix(), inlined
            x = (x ^ (x >> s30)) * m1
            x = (x ^ (x >> s27)) * m2
            x = x ^ (x >> s31)
            for j in range(k):
                h = x * a[j] + b[j]
                if h < m[j]:
                    m[j] = h
        for j in range(k):
            out[i, j] = np.uint32(m[j] >> s32)  # the top 32 bits: their minimum is the minimum's
    return out


def min_hashes(tokens: np.ndarray, offsets: np.ndarray, n_hash: int, seed: int = 0) -> np.ndarray:
    """(sets x n_hash) uint32 signatures of the token sets tokens[offsets[i]:offsets[i+1]], none empty:
    for hash k, the top 32 bits of min over tokens t of mix(t) * a_k + b_k mod 2^64. Compiled (numba): the
    numpy form (a tokens x hashes matrix, then minimum.reduceat) ran 8x slower and needed chunking."""
    offsets = np.ascontiguousarray(offsets, np.int64)
    if len(offsets) > 1 and (np.diff(offsets) <= 0).any():
        raise ValueError("min_hashes: every set needs at least one token")
    a, b = permutations(n_hash, seed)
    return _min_hashes(np.ascontiguousarray(tokens, np.uint64), offsets, a, b)


def signatures(m: sp.csr_matrix, n_hash: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(signatures: (rows with a token) x n_hash uint32, mask of the rows with a token) of a sparse
    matrix whose columns are token ids (only its structure is read)."""
    counts = np.diff(m.indptr)
    has = counts > 0
    offsets = np.concatenate([[0], np.cumsum(counts[has])]).astype(np.int64)  # empty rows hold no tokens
    return min_hashes(m.indices, offsets, n_hash, seed), has


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n x bands) uint64: one hash of each band's `rows` signature values."""
    n = sig.shape[0]
    keys = np.zeros((n, bands), np.uint64)
    for j in range(rows):
        keys = mix(keys ^ sig[:, j::rows][:, :bands].astype(np.uint64))
    return keys


def candidate_probability(j: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """P(a pair of Jaccard j shares a bucket in at least one band): the S-curve."""
    return 1.0 - (1.0 - np.asarray(j, np.float64) ** rows) ** bands


def choose_bands(n_hash: int, threshold: float, max_false_negative: float) -> tuple[int, int]:
    """(bands, rows), bands * rows <= n_hash, that misses a pair at `threshold` with probability at most
    `max_false_negative` and, among those, brings the fewest pairs below the threshold (the area under
    the S-curve on [0, threshold]). If none reaches the target, the one that misses least."""
    grid = np.linspace(0.0, threshold, 201)
    best, best_cost = None, None
    for rows in range(1, n_hash + 1):
        bands = n_hash // rows
        miss = 1.0 - float(candidate_probability(threshold, bands, rows))
        false_pos = float(np.trapezoid(candidate_probability(grid, bands, rows), grid))
        cost = (miss > max_false_negative, miss if miss > max_false_negative else false_pos)
        if best_cost is None or cost < best_cost:
            best, best_cost = (bands, rows), cost
    return best


def s_curve(bands: int, rows: int, points: tuple[float, ...] = (0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
            ) -> dict[str, float]:
    """The candidate probability at a few Jaccard values (for the summary and the logs)."""
    return {f"{j:g}": round(float(candidate_probability(j, bands, rows)), 4) for j in points}


def threshold_of(bands: int, rows: int) -> float:
    """The S-curve's steepest point, about (1/bands)^(1/rows)."""
    return math.pow(1.0 / bands, 1.0 / rows)
