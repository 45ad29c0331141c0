"""SemDeDup: semantic deduplication inside k-means clusters (stage and policy `semdedup`, specs/semdedup.md).

Fit: spherical k-means on a sample (stages/clusters.py); a shuffle assigns every row to its nearest
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
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.engine.shuffle import partition_of, read_shuffled
from curate.errors import ConfigError
from curate.policy import Policy, Rows, register_policy, scatter, tie_keys
from curate.stage import ROW_HASH, ROW_ID, FitContext, ShardInfo, register
from curate.stages.clusters import ClusterStage, centroid_table
from kernels.kmeans import fit_kmeans, nearest
from kernels.maxsim import max_sim_prev
from kernels.vectors import error_array, unit_vectors

log = logging.getLogger(__name__)

ORDERS = ("hard", "easy", "random")
META_PATHS = b"semdedup.reduced"
META_CLUSTERS = b"semdedup.clusters"


def cluster_order(dist: np.ndarray, ties: np.ndarray, order: str) -> np.ndarray:
    """Positions of a cluster's rows in processing order: `hard` farthest first, `easy` nearest first,
    `random` by tie key; ties by tie key."""
    if order == "hard":
        return np.lexsort((ties, -dist.astype(np.float64)))
    if order == "easy":
        return np.lexsort((ties, dist.astype(np.float64)))
    return np.argsort(ties, kind="stable")


@register
class SemDeDup(ClusterStage):
    type = "semdedup"
    version = "1"

    def __init__(self, embedding: str, k: int | str = "auto", niter: int = 100, seed: int = 1234,
                 fit_points_per_centroid: int = 256, order: str = "hard", max_cluster_size: int = 1_000_000,
                 tile: int = 4096, partitions: int | str = "auto", device: str = "auto", name: str | None = None):
        super().__init__(embedding, k, niter, seed, fit_points_per_centroid, name)
        if order not in ORDERS:
            raise ConfigError(f"stage semdedup: order must be one of {', '.join(ORDERS)}, got {order!r}")
        if not isinstance(max_cluster_size, int) or max_cluster_size < 2:
            raise ConfigError(f"stage semdedup: max_cluster_size must be an integer >= 2, got {max_cluster_size!r}")
        if not isinstance(tile, int) or tile < 1:
            raise ConfigError(f"stage semdedup: tile must be a positive integer, got {tile!r}")
        if partitions != "auto" and (not isinstance(partitions, int) or partitions < 1):
            raise ConfigError(f"stage semdedup: partitions must be a positive integer or 'auto', got {partitions!r}")
        if device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"stage semdedup: device must be auto, cpu or cuda, got {device!r}")
        self.order, self.max_cluster_size, self.tile = order, max_cluster_size, tile
        self.partitions, self.device = partitions, device
        self._centroids: np.ndarray | None = None
        self._parts: int = 1

    def params(self) -> dict[str, Any]:
        # tile, partitions and device change how the work is cut, never the result: not part of the key.
        return {**super().params(), "order": self.order, "max_cluster_size": self.max_cluster_size}

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.embedding, ROW_ID, ROW_HASH)

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
        paths = ctx.shuffle(self._assign, [self.embedding, ROW_ID, ROW_HASH], self._parts, self._pairs, name="pairs")
        n, max_m, splits = np.zeros(k, np.int64), np.full(k, np.nan, np.float32), np.zeros(k, np.int32)
        for p in paths:
            stats = json.loads((pq.read_schema(ctx.root / p).metadata or {}).get(META_CLUSTERS, b"{}"))
            for c, (cn, cm, cs) in stats.items():
                n[int(c)], max_m[int(c)], splits[int(c)] = cn, cm, cs
        meta = {META_PATHS: json.dumps(paths).encode(), b"semdedup.info": json.dumps(info).encode()}
        return centroid_table(centroids, n=pa.array(n), max_sim=pa.array(max_m),
                              splits=pa.array(splits)).replace_schema_metadata(meta)

    def _assign(self, table: pa.Table) -> pa.Table:
        """Shuffle map: each row's cluster, distance and partition (invalid rows travel with their error)."""
        x, errors = unit_vectors(table.column(self.embedding))
        n = table.num_rows
        ok = errors == None  # noqa: E711
        cluster = np.full(n, -1, np.int32)
        dist = np.full(n, np.nan, np.float32)
        if ok.any():
            c, sim = nearest(x[ok], self._centroids)
            cluster[ok], dist[ok] = c, 1.0 - sim
        d = x.shape[1]
        return pa.table({
            "part": partition_of(cluster.astype(np.int64), self._parts),
            "row": pa.array(np.arange(n), pa.int64()),
            "cluster": pa.array(cluster), "dist": pa.array(dist),
            "tie": pa.array(tie_keys(table.column(ROW_HASH).to_numpy(), self.seed), pa.uint64()),
            "id": table.column(ROW_ID), "error": error_array(errors),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), pa.float32()), d)})

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
        d = rows.schema.field("vector").type.list_size
        vec = np.asarray(rows.column("vector").combine_chunks().values.to_numpy(), np.float32).reshape(n, d)
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

    # --- score: the shard's rows back from the shuffle --------------------------------------------
    def setup(self, artifact: pa.Table | None) -> None:
        self._paths = json.loads(artifact.schema.metadata[META_PATHS])

    def begin_shard(self, shard: ShardInfo) -> None:
        self._rows = read_shuffled(shard.root, self._paths, shard.key, shard.rows)
        self._pos = 0

    def score(self, batch: pa.Table) -> pa.Table:
        out = self._rows.slice(self._pos, batch.num_rows)
        self._pos += batch.num_rows
        return out

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


@register_policy
class Dedup(Policy):
    """Remove a row whose cosine to an earlier row of its cluster exceeds 1 - epsilon (SemDeDup's rule)."""

    type = "semdedup"

    def __init__(self, column: str = "semdedup.max_sim_prev", epsilon: float = 0.07,
                 sweep: list[float] | None = None, name: str | None = None):
        super().__init__(column, name)
        if not isinstance(epsilon, (int, float)) or not 0 <= epsilon <= 2 or math.isnan(epsilon):
            raise ConfigError(f"policy semdedup: epsilon must be in [0, 2], got {epsilon!r}")
        if epsilon < 1e-5:
            log.warning("policy semdedup: epsilon=%g is below 1e-5; float32 rounding decides whether exact copies "
                        "are removed (an exact copy's cosine lands within 6e-7 of 1)", epsilon)
        self.epsilon = float(epsilon)
        self.sweep = list(sweep) if sweep is not None else [0.01, 0.03, 0.07, 0.124, 0.26]
        self._swept: dict[str, dict[str, int]] = {}

    @property
    def columns(self) -> list[str]:
        return [self.column, f"{self.stage}.dup_of"]

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "epsilon": self.epsilon, "sweep": self.sweep}

    def fit(self, scan) -> None:
        eps = sorted({*self.sweep, self.epsilon})
        removed, total = np.zeros(len(eps), np.int64), 0
        for v, _ in scan():
            removed += [(v > 1 - e).sum() for e in eps]
            total += len(v)
        self._swept = {f"{e:g}": {"kept": int(total - r), "removed": int(r)} for e, r in zip(eps, removed)}

    def decide_rows(self, rows: Rows) -> tuple[np.ndarray, pa.Array, dict[str, np.ndarray]]:
        threshold = 1.0 - self.epsilon
        keep = ~(rows.values > threshold)
        gone = np.flatnonzero(~keep)
        if not len(gone):
            return keep, pa.nulls(len(keep), pa.string()), {}
        sims = pc.cast(pa.array(np.round(rows.values[gone], 7)), pa.string())
        text = pc.binary_join_element_wise("near-duplicate of ", pa.array(rows.cols[self.columns[1]][gone], pa.string()),
                                           " (cosine ", sims, f" > 1 - epsilon = {threshold:.7g})", "")
        return keep, scatter(text, gone, len(keep)), {}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "threshold": 1.0 - self.epsilon, "epsilon_sweep": self._swept}
