"""Concept-cluster complexity pruning, DBP (stage `dbp`, policy `cluster_quota`; docs/methods/dbp.md).

Fit: spherical k-means on a sample of the pool (valid rows SemDeDup kept at `dedup_epsilon`), and each
centroid's d_inter = mean cosine distance to its l nearest other centroids. Score: a row's cluster,
cosine distance to its centroid, pool membership and its cluster's d_inter. The policy computes
d_intra (mean pool distance), complexity C = d_inter * d_intra, P = softmax(C / tau), splits the budget
by the exact water-filling solution of the reference's QP with integer quotas summing to the budget,
and keeps the rows farthest from the centroid inside each cluster. Changing tau, the budget, balance
or order re-runs only the policy.

Fixed against the reference: empty clusters are dropped before allocation (the reference gives them
lb = -1 and an average complexity, so it can keep more than N), and quotas are rounded by largest
remainder (the reference's `rint` can miss N by up to k/2).
"""
from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.methods.clustering import (
    ClusterStage,
    Embedding,
    FitPoints,
    K,
    Niter,
    Seed,
    centroid_table,
    centroids_of,
)
from curate.methods.hints import StageName
from curate.stage import ROW_HASH, FitContext
from kernels.kmeans import nearest
from kernels.vectors import error_array, unit_vectors

# Hyperparameters as the paper reports them (its defaults here) and as the reference code sets them.
PRESETS = {"paper": {"k": 500, "tau": 0.1, "balance": 0.0}, "reference": {"k": 10_000, "tau": 0.5, "balance": 0.5}}
Preset = Annotated[Literal["paper", "reference"],
                   Field(description="defaults of k, tau and balance: paper (500, 0.1, 0) or reference "
                                     "(10,000, 0.5, 0.5)")]


def inter_cluster_distance(centroids: np.ndarray, l: int) -> np.ndarray:
    """Per centroid, the mean cosine distance to its l nearest other centroids (0 when k == 1)."""
    k = len(centroids)
    l = min(l, k - 1)
    if l < 1:
        return np.zeros(k, np.float64)
    dist = 1.0 - (centroids.astype(np.float64) @ centroids.astype(np.float64).T)
    np.fill_diagonal(dist, np.inf)
    nearest_l = np.partition(dist, l - 1, axis=1)[:, :l]
    return nearest_l.mean(axis=1)


class DBP(ClusterStage):
    """Concept-cluster pruning (DBP): clusters the rows SemDeDup kept and scores each by its distance to its
    cluster's centre and the cluster's distance to its neighbours; the `cluster_quota` policy gives complex
    clusters a larger share of the budget and keeps the rows farthest from each centre."""

    type = "dbp"
    version = "1"

    def __init__(self, embedding: Embedding,
                 k: Annotated[K | Literal["auto"] | None,
                              Field(description="the number of clusters (default or auto: the preset's)")] = None,
                 l: Annotated[int, Field(ge=1, description="d_inter averages the distances to the l nearest "
                                                           "other centroids")] = 20,
                 dedup: Annotated[str | None, Field(description="the semdedup stage whose kept rows form the pool "
                                                                "(null: every valid row)")] = "semdedup",
                 dedup_epsilon: Annotated[float, Field(ge=0, le=2, description="the pool: rows with max_sim_prev "
                                                                               "<= 1 - dedup_epsilon")] = 0.07,
                 preset: Preset = "paper", niter: Niter = 100, seed: Seed = 1234,
                 fit_points_per_centroid: FitPoints = 256, name: StageName = None):
        super().__init__(embedding, k, niter, seed, fit_points_per_centroid, name)
        self.l, self.dedup, self.dedup_epsilon, self.preset = l, dedup, float(dedup_epsilon), preset

    def choose_k(self, n_pool: int) -> int:
        """The configured k (the preset's when not given or `auto`), lowered on small pools (max(2, N_pool / 50))."""
        return min(PRESETS[self.preset]["k"] if self.k in (None, "auto") else self.k, max(2, n_pool // 50))

    @property
    def pool_columns(self) -> list[str]:
        return [f"{self.dedup}.max_sim_prev", f"{self.dedup}.error"] if self.dedup else []

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.embedding, ROW_HASH, *self.pool_columns)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        return {"cluster": pa.int32(), "dist": pa.float32(), "in_pool": pa.bool_(), "d_inter": pa.float32()}

    def in_pool(self, table: pa.Table) -> np.ndarray:
        if not self.dedup:
            return np.ones(table.num_rows, dtype=bool)
        m = table.column(f"{self.dedup}.max_sim_prev").to_numpy(zero_copy_only=False).astype(np.float64)
        ok = table.column(f"{self.dedup}.error").is_null().to_numpy(zero_copy_only=False)
        return ok & ~np.isnan(m) & (m <= 1.0 - self.dedup_epsilon)

    def fit(self, ctx: FitContext) -> pa.Table:
        centroids, info = self.fit_centroids(ctx)
        d_inter = inter_cluster_distance(centroids, self.l)
        info.update(l=min(self.l, len(centroids) - 1), pool_from=self.dedup or "all valid rows")
        return centroid_table(centroids, d_inter=pa.array(d_inter)).replace_schema_metadata(
            {b"dbp.info": json.dumps(info).encode()})

    def setup(self, artifact: pa.Table | None) -> None:
        self._centroids = centroids_of(artifact)
        self._d_inter = artifact.column("d_inter").to_numpy().astype(np.float32)

    def score(self, batch: pa.Table) -> pa.Table:
        x, errors = unit_vectors(batch.column(self.embedding))
        ok = errors == None  # noqa: E711
        n = batch.num_rows
        cluster, dist = np.zeros(n, np.int32), np.zeros(n, np.float32)
        if ok.any():
            c, sim = nearest(x[ok], self._centroids)
            cluster[ok], dist[ok] = c, 1.0 - sim
        return pa.table({"cluster": pa.array(cluster, mask=~ok), "dist": pa.array(dist, mask=~ok),
                         "in_pool": pa.array(self.in_pool(batch), mask=~ok),
                         "d_inter": pa.array(self._d_inter[cluster], mask=~ok), "error": error_array(errors)})

    def describe(self, artifact: pa.Table | None) -> dict[str, Any]:
        if artifact is None:
            return {}
        info = json.loads(artifact.schema.metadata.get(b"dbp.info", b"{}"))
        return {**info, "d_inter": {"min": float(np.min(artifact.column("d_inter"))),
                                    "max": float(np.max(artifact.column("d_inter")))}}
