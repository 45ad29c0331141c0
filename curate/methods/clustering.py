"""The clustering shared by SemDeDup, concept-cluster pruning and sensitivity sampling.

Fit: k-means (faiss) on a uniform sample of the valid embeddings, chosen by tie key so the sample does
not depend on sharding: a first map collects the tie keys of valid rows, a radix select finds the
S-th smallest, a second map returns the vectors at or below it. Only the sample ever sits in one
process. Assignment to the nearest centroid is a per-shard map (kernels/kmeans.py).
"""
from __future__ import annotations

import functools
import logging
import time
import typing
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.errors import ConfigError
from curate.methods.hints import StageName
from curate.policy import tie_keys
from curate.stage import ROW_HASH, FitContext, Stage
from kernels.kmeans import fit_kmeans
from kernels.vectors import packed_rows, unit_vectors, unpacked_rows, valid_vectors, vector_size, vector_type_problem

log = logging.getLogger(__name__)

# The first sample pass also returns the rows of the smallest keys, up to this 1/25 of the key space: when the
# sample is under ~4% of the pool (SemDeDup's 256 rows per 10,000-20,000-row cluster; DBP's 128,000 rows from
# 3.2M rows up), its bound falls below and the second pass, which reads every vector again, is not needed.
AHEAD = (1 << 64) // 25

# How a cluster's rows are ordered: `hard` farthest from the centroid first (the papers' default).
Order = Annotated[Literal["hard", "easy", "random"],
                  Field(description="the order inside a cluster: hard (farthest from the centroid first), easy "
                                    "(nearest first) or random")]
ORDERS = typing.get_args(typing.get_args(Order)[0])

# The parameters every clustering stage takes, declared once (each stage's signature lists them).
Embedding = Annotated[str, Field(min_length=1, description="the vector column to cluster, e.g. 'embed_text.vector'")]
K = Annotated[int, Field(ge=1)]
KOrAuto = Annotated[K | Literal["auto"], Field(description="the number of clusters, or auto")]
Niter = Annotated[int, Field(ge=1, description="k-means iterations")]
Seed = Annotated[int, Field(description="seed of the k-means and of the tie-break order")]
FitPoints = Annotated[int, Field(ge=1, description="k-means is fitted on a sample of this many rows per cluster")]


def cluster_order(dist: np.ndarray, ties: np.ndarray, order: str) -> np.ndarray:
    """Positions of a cluster's rows in processing order: `hard` farthest first, `easy` nearest first,
    `random` by tie key; ties by tie key."""
    if order == "hard":
        return np.lexsort((ties, -dist.astype(np.float64)))
    if order == "easy":
        return np.lexsort((ties, dist.astype(np.float64)))
    return np.argsort(ties, kind="stable")


class ClusterStage(Stage):
    """Base of the stages that cluster an embedding column; parameters common to all of them."""

    spherical = True

    def __init__(self, embedding: Embedding, k: KOrAuto = "auto", niter: Niter = 100, seed: Seed = 1234,
                 fit_points_per_centroid: FitPoints = 256, name: StageName = None):
        super().__init__(name)
        self.embedding, self.k, self.niter, self.seed = embedding, k, niter, seed
        self.fit_points_per_centroid = fit_points_per_centroid

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        return vector_type_problem(type) if column == self.embedding else None

    # --- which rows take part ---------------------------------------------------------------------
    @property
    def pool_columns(self) -> list[str]:
        """Extra columns `in_pool` reads (none: every valid row)."""
        return []

    def in_pool(self, table: pa.Table) -> np.ndarray:
        """Which rows the clustering is fitted on (valid embeddings are checked separately)."""
        return np.ones(table.num_rows, dtype=bool)

    def choose_k(self, n_pool: int) -> int:
        """The number of clusters for a pool of n_pool rows (before capping at n_pool)."""
        raise NotImplementedError

    # --- fit ----------------------------------------------------------------------------------------
    # A map function's name is part of its units' keys: this one was renamed (from `_sample_keys`) when its output
    # gained the leading rows, so a run directory written before recomputes it instead of misreading it.
    def _sample_keys_and_rows(self, table: pa.Table) -> pa.Table:
        """The sorted tie keys of the pool's valid rows (`tie`) and, for the leading ones at or below `AHEAD`,
        the sample pass's rows (`vector`, packed; null after them): see `fit_centroids`."""
        ok = valid_vectors(table.column(self.embedding)) & self.in_pool(table)
        ties = tie_keys(table.column(ROW_HASH).to_numpy(), self.seed)[ok]
        ties = np.sort(ties)
        ahead = self._sample_rows_packed(AHEAD, table)  # (rows in shard order; their keys are the first of `ties`)
        ahead = ahead.take(np.argsort(ahead.column("tie").to_numpy(), kind="stable"))
        c, n = ahead.num_rows, len(ties)
        if not np.array_equal(ahead.column("tie").to_numpy(), ties[:c]) or (c < n and ties[c] <= AHEAD):
            raise RuntimeError(f"stage {self.name!r}: the sample pass's rows differ from the valid rows' keys")
        rows = ahead.column("vector").combine_chunks()
        packed = pa.concat_arrays([rows, pa.nulls(n - c, rows.type)])  # (fixed-size binary: written raw)
        return pa.table({"tie": pa.array(ties, pa.uint64()), "vector": packed})

    # (renamed from `_sample_rows` when its vectors became packed rows: see `_sample_keys_and_rows`)
    def _sample_rows_packed(self, bound: int, table: pa.Table) -> pa.Table:
        """The pool's valid rows whose tie key is at or below `bound` (`tie`, and `vector`: unit vectors packed,
        kernels/vectors.packed_rows), in shard order."""
        # Only rows whose tie key is in the sample can be in it (a few percent): their vectors alone are made
        # (unit_vectors is row by row, given the whole column's row length).
        column = table.column(self.embedding)
        ties = tie_keys(table.column(ROW_HASH).to_numpy(), self.seed)
        near = np.flatnonzero(ties <= np.uint64(bound))
        picked = table.take(pa.array(near, pa.int64()))
        x, errors = unit_vectors(picked.column(self.embedding), vector_size(column))
        take = np.flatnonzero((errors == None) & self.in_pool(picked))  # noqa: E711
        return pa.table({"tie": pa.array(ties[near[take]], pa.uint64()), "vector": packed_rows(x[take])})

    def fit_centroids(self, ctx: FitContext) -> tuple[np.ndarray, dict[str, Any]]:
        """Centroids of a k-means on a uniform sample of the pool, and facts for the summary."""
        columns = [self.embedding, ROW_HASH, *self.pool_columns]

        def keys():  # each shard's sorted tie keys, read back one shard at a time
            return (t.column(0).to_numpy() for t in ctx.map(self._sample_keys_and_rows, columns))

        n_pool = sum(len(k) for k in keys())
        if n_pool == 0:
            raise ConfigError(f"stage {self.name!r}: no valid embeddings in {self.embedding!r} to cluster")
        k_asked = self.choose_k(n_pool)
        k = min(k_asked, n_pool)
        if k < k_asked:
            log.warning("stage %s: k=%d is more than the %d rows to cluster; using k=%d", self.name, k_asked, n_pool, k)
        size = min(n_pool, self.fit_points_per_centroid * k)
        bound = sample_bound(keys, size, n_pool)
        if bound <= AHEAD:  # the first pass returned every sampled row: no second pass over the shards
            sample = pa.concat_tables(_at_or_below(t, bound) for t in ctx.map(self._sample_keys_and_rows, columns))
        else:
            sample = pa.concat_tables(ctx.map(functools.partial(self._sample_rows_packed, bound), columns))
        x = unpacked_rows(sample.sort_by("tie").column("vector"))
        d = x.shape[1]
        t0 = time.perf_counter()
        centroids = fit_kmeans(x, k, self.niter, self.seed, spherical=self.spherical)
        # (no timing in the artifact: its bytes key everything downstream, and a refit must reproduce them)
        log.info("stage %s: k-means on %d x %d rows in %.1fs", self.name, len(x), d, time.perf_counter() - t0)
        return centroids, {"rows_clustered": n_pool, "k": k, "k_asked": k_asked, "sample": len(x), "dim": d}


def _at_or_below(keys: pa.Table, bound: int) -> pa.Table:
    """The rows of a `_sample_keys_and_rows` table whose key is at or below `bound` (<= AHEAD: they all have
    their vectors)."""
    return keys.slice(0, int(np.searchsorted(keys.column("tie").to_numpy(), np.uint64(bound), side="right")))


def sample_bound(keys, size: int, n: int) -> int:
    """The size-th smallest of n uniform 64-bit keys, holding only about 1.2 * size of them in memory.

    `keys()` yields the keys shard by shard and may be called again; rows with a key at or below the
    bound are the sample, whatever the sharding."""
    full = (1 << 64) - 1
    if size >= n:
        return full
    guess = min(full, int(size / n * 1.2 * 2.0**64) + (1 << 40))
    while True:
        low = np.concatenate([k[k <= np.uint64(guess)] for k in keys()] or [np.array([], np.uint64)])
        if len(low) >= size or guess == full:
            return int(np.partition(low, size - 1)[size - 1])
        guess = min(full, guess * 2)  # unlucky draw: widen and read again


def centroid_table(centroids: np.ndarray, **columns: np.ndarray) -> pa.Table:
    """The artifact's per-cluster table: `cluster`, `centroid` and any per-cluster columns."""
    k, d = centroids.shape
    flat = pa.array(centroids.astype(np.float32).reshape(-1), pa.float32())
    return pa.table({"cluster": pa.array(np.arange(k), pa.int32()),
                     "centroid": pa.FixedSizeListArray.from_arrays(flat, d), **columns})


def centroids_of(artifact: pa.Table) -> np.ndarray:
    col = artifact.column("centroid").combine_chunks()
    return np.asarray(col.values.to_numpy(), np.float32).reshape(len(col), col.type.list_size)
