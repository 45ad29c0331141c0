"""SemDeDup: semantic deduplication inside k-means clusters (stage and policy `semdedup`, docs/methods/semdedup.md).

Fit: spherical k-means on a sample (methods/clustering.py); a shuffle assigns every row to its nearest
centroid and groups the rows by cluster partition; each partition orders every cluster (farthest from
the centroid first for `hard`) and computes, for each row, the largest cosine to any earlier row in the
cluster and which row that was (kernels/maxsim.py, tiled). Scoring a shard reads its rows back.
The policy removes row j iff M_j > 1 - epsilon, exactly the reference rule: j is compared with every
earlier member, removed or not, so a chain a~b, b~c keeps only a. Storing M makes any epsilon a
policy-only re-run.
"""
from __future__ import annotations

import json
import logging
import math
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.methods.clustering import (
    ClusterStage,
    Embedding,
    FitPoints,
    K,
    KOrAuto,
    Niter,
    Order,
    Seed,
    centroid_table,
    cluster_order,
)
from curate.methods.hints import Device, StageName
from curate.methods.semdedup.presentation import PRESENTER
from curate.policy import tie_keys
from curate.stage import ROW_HASH, ROW_ID, ROW_INDEX, FitContext, ScoresFromShuffle
from kernels.hashing import partition_of
from kernels.kmeans import fit_kmeans, nearest
from kernels.maxsim import max_sim_prev
from kernels.vectors import error_array, packed_rows, unit_vectors, unpacked_rows

log = logging.getLogger(__name__)

META_PATHS = b"semdedup.reduced"
META_CLUSTERS = b"semdedup.clusters"


class SemDeDup(ScoresFromShuffle, ClusterStage):
    """Semantic deduplication: spherical k-means on the embeddings, then each row's largest cosine to an
    earlier row of its cluster (the `semdedup` policy removes the rows above 1 - epsilon)."""

    type = "semdedup"
    version = "1"
    presenter = PRESENTER
    outputs_key = META_PATHS  # the artifact metadata naming the reduce outputs (ScoresFromShuffle)

    unkeyed = frozenset({"tile", "partitions", "device"})  # how the work is cut, never the result
    score_inputs = frozenset({ROW_INDEX})  # scoring reads a shard's rows back from the shuffle, not its vectors

    def __init__(self, embedding: Embedding, k: KOrAuto = "auto", niter: Niter = 100, seed: Seed = 1234,
                 fit_points_per_centroid: FitPoints = 256, order: Order = "hard",
                 max_cluster_size: Annotated[int, Field(ge=2, description="larger clusters are cut by a sub-k-means "
                                                                          "before the pairwise step")] = 1_000_000,
                 tile: Annotated[int, Field(ge=1, description="rows per tile of the pairwise step")] = 4096,
                 partitions: Annotated[K | Literal["auto"],
                                       Field(description="shuffle partitions of the pairwise step (auto: about "
                                                         "50,000 rows each)")] = "auto",
                 device: Device = "auto", name: StageName = None):
        super().__init__(embedding, k, niter, seed, fit_points_per_centroid, name)
        self.order, self.max_cluster_size, self.tile = order, max_cluster_size, tile
        self.partitions, self.device = partitions, device
        self._centroids: np.ndarray | None = None
        self._parts: int = 1

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.embedding, ROW_ID, ROW_HASH, ROW_INDEX)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        return {"cluster": pa.int32(), "dist": pa.float32(), "rank": pa.int32(),
                "max_sim_prev": pa.float32(), "dup_of": pa.string()}

    def choose_k(self, n_pool: int) -> int:
        return math.ceil(n_pool / 10_000) if self.k == "auto" else self.k

    # --- fit: cluster, shuffle by cluster, pairwise step per partition --------------------------
    def fit(self, ctx: FitContext) -> pa.Table:
        centroids, info = self.fit_centroids(ctx)
        self._centroids = centroids
        k = len(centroids)
        # ~50,000 rows per partition keeps a reduce's memory flat as the dataset grows
        self._parts = min(k, max(4, math.ceil(info["rows_clustered"] / 50_000))) if self.partitions == "auto" \
            else self.partitions
        shuffled = ctx.shuffle(self._assign_packed, [self.embedding, ROW_ID, ROW_HASH], self._parts, self._pairs, name="pairs")
        n, max_m, splits = np.zeros(k, np.int64), np.full(k, np.nan, np.float32), np.zeros(k, np.int32)
        for meta in shuffled.metadata:
            for c, (cn, cm, cs) in json.loads(meta.get(META_CLUSTERS, b"{}")).items():
                n[int(c)], max_m[int(c)], splits[int(c)] = cn, cm, cs
        meta = {META_PATHS: json.dumps(shuffled.outputs).encode(), b"semdedup.info": json.dumps(info).encode()}
        return centroid_table(centroids, n=pa.array(n), max_sim=pa.array(max_m),
                              splits=pa.array(splits)).replace_schema_metadata(meta)

    # A map function's name is part of its units' keys: renamed (from `_assign`) when the vectors became packed
    # rows, so a run directory written before recomputes the shuffle instead of misreading it.
    def _assign_packed(self, table: pa.Table) -> pa.Table:
        """Shuffle map: each row's cluster, distance and partition (invalid rows travel with their error)."""
        x, errors = unit_vectors(table.column(self.embedding))
        n = table.num_rows
        ok = errors == None  # noqa: E711
        cluster = np.full(n, -1, np.int32)
        dist = np.full(n, np.nan, np.float32)
        if ok.any():
            c, sim = nearest(x[ok], self._centroids)
            cluster[ok], dist[ok] = c, 1.0 - sim
        return pa.table({
            "part": pa.array(partition_of(cluster.astype(np.int64), self._parts)),
            "row": pa.array(np.arange(n), pa.int64()),
            "cluster": pa.array(cluster), "dist": pa.array(dist),
            "tie": pa.array(tie_keys(table.column(ROW_HASH).to_numpy(), self.seed), pa.uint64()),
            "id": table.column(ROW_ID), "error": error_array(errors),
            "vector": packed_rows(x)})

    def _device(self) -> str:
        if self.device != "auto":
            return self.device
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"

    def _pairs(self, rows: pa.Table) -> pa.Table:
        """Shuffle reduce: the pairwise step for every cluster of one partition."""
        device = self._device()
        n = rows.num_rows
        cluster = rows.column("cluster").to_numpy()
        dist = rows.column("dist").to_numpy(zero_copy_only=False)
        ties = rows.column("tie").to_numpy()
        ids = rows.column("id").combine_chunks()
        vec = unpacked_rows(rows.column("vector"))
        rank, m = np.full(n, -1, np.int32), np.full(n, np.nan, np.float32)
        dup = np.full(n, -1, np.int64)
        stats = {}
        by = np.argsort(cluster, kind="stable")
        bounds = np.flatnonzero(np.r_[True, cluster[by][1:] != cluster[by][:-1], True])
        for s, e in zip(bounds[:-1], bounds[1:]):
            members = by[s:e]
            c = int(cluster[members[0]])
            if c < 0:
                continue
            groups = self._split(vec[members], ties[members]) if len(members) > self.max_cluster_size else [np.arange(len(members))]
            for g in groups:
                rows_g = members[g]
                o = rows_g[cluster_order(dist[rows_g], ties[rows_g], self.order)]
                mg, arg = max_sim_prev(vec[o], self.tile, device)
                rank[o], m[o] = np.arange(len(o), dtype=np.int32), mg
                dup[o] = np.where(arg >= 0, o[np.maximum(arg, 0)], -1)
            stats[c] = [len(members), float(np.nanmax(m[members])), len(groups) if len(groups) > 1 else 0]
        valid = cluster >= 0
        dup_of = pc.take(ids, pa.array(np.maximum(dup, 0)))
        dup_of = pc.if_else(pa.array(dup >= 0), dup_of, pa.scalar(None, ids.type))
        out = pa.table({
            "shard": rows.column("shard"), "row": rows.column("row"),
            "cluster": pa.array(cluster, mask=~valid), "dist": pa.array(dist, mask=~valid),
            "rank": pa.array(rank, mask=~valid), "max_sim_prev": pa.array(m, mask=~valid),
            "dup_of": pc.cast(dup_of, pa.string()), "error": rows.column("error")})
        return out.replace_schema_metadata({META_CLUSTERS: json.dumps(stats).encode()})

    def _split(self, vec: np.ndarray, ties: np.ndarray) -> list[np.ndarray]:
        """An oversize cluster cut by a sub-k-means into pieces of about max_cluster_size rows."""
        ks = math.ceil(len(vec) / self.max_cluster_size)
        take = np.argsort(ties, kind="stable")[: self.fit_points_per_centroid * ks]
        sub = fit_kmeans(vec[take], ks, self.niter, self.seed, spherical=True)
        which, _ = nearest(vec, sub)
        return [np.flatnonzero(which == j) for j in range(ks) if (which == j).any()]

    def describe(self, artifact: pa.Table | None) -> dict[str, Any]:
        if artifact is None:
            return {}
        info = json.loads(artifact.schema.metadata.get(b"semdedup.info", b"{}"))
        n = artifact.column("n").to_numpy()
        big = int(np.argmax(n))
        return {**info, "cluster_sizes": {q: int(v) for q, v in zip(("min", "p50", "p90", "max"),
                                                                    np.quantile(n, [0, 0.5, 0.9, 1.0]))},
                "largest_cluster": {"cluster": big, "n": int(n[big])},
                "empty_clusters": int((n == 0).sum()),
                "split_clusters": int((artifact.column("splits").to_numpy() > 0).sum())}
