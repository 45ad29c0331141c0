"""MinHash LSH: an optional second source of blocking candidates, beside the TF-IDF top k.

Each record's token set (the blocker's tokens: padded 3-grams and words) gets a signature of
`bands * rows` min-hashes; two sets agree in one position with probability equal to their Jaccard
similarity J, so a pair lands in the same bucket of at least one band with probability
1 - (1 - J^rows)^bands (about 0.5 at J = (1/bands)^(1/rows): 0.55 for 20 x 5). The candidates it adds
are pairs with a high token overlap that the top k left out: ties beyond k, or under a probe budget an
L row sharing only common tokens with the query. A bucket holding more than `max_bucket` L rows (a
very common name) is skipped and counted, so one bucket cannot add |L| pairs per query.

Signatures and band keys are the shared kernels in kernels/minhash.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from kernels.minhash import band_keys, signatures

__all__ = ["LSHIndex", "LSHParams", "band_keys", "lsh_keys", "signatures"]


@dataclass(frozen=True)
class LSHParams:
    bands: int = 20
    rows: int = 5
    max_bucket: int = 100
    seed: int = 0

    def __post_init__(self):
        for name in ("bands", "rows", "max_bucket"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"minhash_lsh: {name} must be a positive integer, got {v!r}")

    @classmethod
    def parse(cls, value) -> LSHParams | None:
        """`False`/None (off), `True` (defaults) or a mapping with any of bands, rows, max_bucket, seed."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, LSHParams):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {"bands", "rows", "max_bucket", "seed"}
            if unknown:
                raise ValueError(f"minhash_lsh: unknown key(s) {sorted(unknown)}; known: bands, rows, max_bucket, seed")
            return cls(**value)
        raise ValueError(f"minhash_lsh must be false, true or a mapping of bands/rows/max_bucket/seed, got {value!r}")

    def as_dict(self) -> dict[str, int]:
        return {"bands": self.bands, "rows": self.rows, "max_bucket": self.max_bucket, "seed": self.seed}


def lsh_keys(m: sp.csr_matrix, params: LSHParams, block: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """(band keys of the rows with a token, that mask), block by block of rows: the signatures of a
    block are dropped once hashed, so memory holds n x bands keys, never n x (bands * rows) values."""
    n_hash = params.bands * params.rows
    parts = [band_keys(signatures(m[s:s + block], n_hash, params.seed)[0], params.bands, params.rows)
             for s in range(0, m.shape[0], block)]
    keys = np.concatenate(parts) if parts else np.zeros((0, params.bands), np.uint64)
    return keys, np.diff(m.indptr) > 0


@dataclass
class LSHIndex:
    """L's band keys, sorted per band, for bucket look-ups."""

    params: LSHParams
    n_left: int
    sorted_keys: list[np.ndarray] = field(default_factory=list)  # per band
    order: list[np.ndarray] = field(default_factory=list)  # L row of each sorted key
    skipped_buckets: int = 0  # buckets over max_bucket met by the last query

    @classmethod
    def build(cls, left: sp.csr_matrix, params: LSHParams) -> LSHIndex:
        keys, has = lsh_keys(left, params)
        rows = np.flatnonzero(has).astype(np.int32)
        index = cls(params, left.shape[0])
        for j in range(params.bands):
            o = np.argsort(keys[:, j], kind="stable")
            index.sorted_keys.append(keys[o, j])
            index.order.append(rows[o])
        return index

    def candidates(self, queries: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """(query row, L row) pairs sharing a bucket in some band (unique, sorted by query then L row)."""
        p = self.params
        keys, has = lsh_keys(queries, p)
        qrows = np.flatnonzero(has)
        pair_keys = []
        self.skipped_buckets = 0
        for j in range(p.bands):
            lo = np.searchsorted(self.sorted_keys[j], keys[:, j], side="left")
            hi = np.searchsorted(self.sorted_keys[j], keys[:, j], side="right")
            size = hi - lo
            big = size > p.max_bucket
            self.skipped_buckets += int(big.sum())
            size[big] = 0
            q = np.repeat(qrows, size)
            pos = np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size) + np.repeat(lo, size)
            pair_keys.append(q.astype(np.int64) * self.n_left + self.order[j][pos])
        if not pair_keys:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        u = np.unique(np.concatenate(pair_keys))
        return u // self.n_left, u % self.n_left
