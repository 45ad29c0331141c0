"""Concept-cluster complexity pruning, DBP (stage `dbp`, policy `cluster_quota`; specs/concept-clusters.md).

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
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import ConfigError
from curate.policy import Policy, Rows, order_keys, register_policy, scatter, tie_keys
from curate.stage import ROW_HASH, FitContext, register
from curate.stages.clusters import ClusterStage, centroid_table, centroids_of
from curate.stages.semdedup import ORDERS
from kernels.allocation import integer_quotas, water_fill
from kernels.kmeans import nearest
from kernels.vectors import error_array, unit_vectors


# Hyperparameters as the paper reports them (its defaults here) and as the reference code sets them.
PRESETS = {"paper": {"k": 500, "tau": 0.1, "balance": 0.0}, "reference": {"k": 10_000, "tau": 0.5, "balance": 0.5}}


def _preset(name: str, where: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ConfigError(f"{where}: preset must be one of {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name]


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


@register
class DBP(ClusterStage):
    type = "dbp"
    version = "1"

    def __init__(self, embedding: str, k: int | str | None = None, l: int = 20, dedup: str | None = "semdedup",
                 dedup_epsilon: float = 0.07, preset: str = "paper", niter: int = 100, seed: int = 1234,
                 fit_points_per_centroid: int = 256, name: str | None = None):
        k = _preset(preset, "stage dbp")["k"] if k is None else k
        super().__init__(embedding, k, niter, seed, fit_points_per_centroid, name)
        if not isinstance(l, int) or l < 1:
            raise ConfigError(f"stage dbp: l must be a positive integer, got {l!r}")
        if not isinstance(dedup_epsilon, (int, float)) or not 0 <= dedup_epsilon <= 2:
            raise ConfigError(f"stage dbp: dedup_epsilon must be in [0, 2], got {dedup_epsilon!r}")
        self.l, self.dedup, self.dedup_epsilon, self.preset = l, dedup, float(dedup_epsilon), preset

    def params(self) -> dict[str, Any]:
        return {**super().params(), "l": self.l, "dedup": self.dedup, "dedup_epsilon": self.dedup_epsilon,
                "preset": self.preset}

    def choose_k(self, n_pool: int) -> int:
        """The configured k (the preset's for `auto`), lowered on small pools (max(2, N_pool / 50))."""
        return min(PRESETS[self.preset]["k"] if self.k == "auto" else self.k, max(2, n_pool // 50))

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


def allocate(cluster: np.ndarray, dist: np.ndarray, d_inter: np.ndarray, budget: int, tau: float,
             balance: float = 0.0) -> dict[str, Any]:
    """DBP's per-cluster quotas from the pool rows' clusters, distances and their clusters' d_inter.

    Returns per non-empty cluster (`cluster`): n, d_intra, d_inter, C, P, NP, x, q, capped; plus `n_all`
    (rows per cluster id), `lambda` and `m_min`. Raises ConfigError when the bounds admit no solution.
    """
    cluster = np.asarray(cluster, np.int64)
    if budget > len(cluster):
        raise ConfigError(f"policy cluster_quota: a budget of {budget} rows is more than the {len(cluster)} pool rows")
    kmax = int(cluster.max()) + 1 if len(cluster) else 0
    n_all = np.bincount(cluster, minlength=kmax)
    present = np.flatnonzero(n_all > 0)               # empty clusters take no part (the reference's bug, fixed)
    n = n_all[present]
    d_intra = np.bincount(cluster, weights=dist, minlength=kmax)[present] / np.maximum(n, 1)
    inter = np.zeros(kmax)
    inter[cluster] = d_inter
    inter = inter[present]
    c = inter * d_intra
    finite = np.isfinite(c)
    if not finite.all():                              # as the reference: NaN complexity -> mean of the others
        c = np.where(finite, c, c[finite].mean() if finite.any() else 0.0)
    k = len(present)
    z = np.exp((c - c.max()) / tau) if k else c
    p = z / z.sum() if k else z
    m_min = math.floor(budget / k * balance) if balance > 0 and k else 1
    lb = np.maximum(0, np.minimum(m_min, n - 1))
    if not k:
        x, lam = np.array([]), 0.0
    else:
        try:
            x, lam = water_fill(budget * p, lb, n, budget)
        except ValueError as e:
            raise ConfigError(f"policy cluster_quota: {e} (lower bounds from balance={balance})") from e
    q = integer_quotas(x, n, budget) if k else np.array([], np.int64)
    return {"cluster": present, "n": n, "d_intra": d_intra, "d_inter": inter, "C": c, "P": p, "NP": budget * p,
            "x": x, "q": q, "capped": q >= n, "n_all": n_all, "lambda": float(lam), "m_min": int(m_min)}


@register_policy
class ClusterQuota(Policy):
    """Spend a row budget over concept clusters by complexity, keeping the least prototypical rows."""

    type = "cluster_quota"

    def __init__(self, column: str = "dbp.dist", keep_fraction: float | None = None, keep_count: int | None = None,
                 tau: float | None = None, balance: float | None = None, order: str = "hard", preset: str = "paper",
                 seed: int = 0, name: str | None = None):
        super().__init__(column, name)
        defaults = _preset(preset, "policy cluster_quota")
        tau = defaults["tau"] if tau is None else tau
        balance = defaults["balance"] if balance is None else balance
        if (keep_fraction is None) == (keep_count is None):
            raise ConfigError("policy cluster_quota: give exactly one of keep_fraction and keep_count")
        if keep_fraction is not None and not 0 <= keep_fraction <= 1:
            raise ConfigError(f"policy cluster_quota: keep_fraction must be in [0, 1], got {keep_fraction!r}")
        if keep_count is not None and (not isinstance(keep_count, int) or keep_count < 0):
            raise ConfigError(f"policy cluster_quota: keep_count must be a non-negative integer, got {keep_count!r}")
        if not isinstance(tau, (int, float)) or not tau > 0:
            raise ConfigError(f"policy cluster_quota: tau must be > 0, got {tau!r}")
        if not isinstance(balance, (int, float)) or not 0 <= balance <= 1:
            raise ConfigError(f"policy cluster_quota: balance must be in [0, 1], got {balance!r}")
        if order not in ORDERS:
            raise ConfigError(f"policy cluster_quota: order must be one of {', '.join(ORDERS)}, got {order!r}")
        self.keep_fraction, self.keep_count = keep_fraction, keep_count
        self.tau, self.balance, self.order, self.seed = float(tau), float(balance), order, seed
        self.table: dict[str, np.ndarray] = {}
        self.facts: dict[str, Any] = {}

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "keep_fraction": self.keep_fraction, "keep_count": self.keep_count,
                "tau": self.tau, "balance": self.balance, "order": self.order, "seed": self.seed}

    @property
    def columns(self) -> list[str]:
        return [self.column] + [f"{self.stage}.{c}" for c in ("cluster", "in_pool", "d_inter")]

    def _keys(self, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
        ties = tie_keys(rows.id_hash, self.seed)
        if self.order == "random":
            return np.zeros(len(ties), np.uint64), ties
        return order_keys(rows.values, largest=self.order == "hard"), ties

    def fit(self, scan) -> None:
        parts = list(scan.rows())

        def pooled(get, dtype):  # one array over the shards' pool rows
            arrays = [np.asarray(get(r))[r.cols[self.columns[2]].astype(bool)] for r in parts]
            return np.concatenate(arrays).astype(dtype) if arrays else np.array([], dtype)

        cluster = pooled(lambda r: r.cols[self.columns[1]], np.int64)
        dist = pooled(lambda r: r.values, np.float64)
        d_inter_rows = pooled(lambda r: r.cols[self.columns[3]], np.float64)
        key = pooled(lambda r: self._keys(r)[0], np.uint64)
        tie = pooled(lambda r: self._keys(r)[1], np.uint64)
        n_pool = len(cluster)
        budget = self.keep_count if self.keep_count is not None else math.floor(self.keep_fraction * n_pool + 0.5)
        alloc = allocate(cluster, dist, d_inter_rows, budget, self.tau, self.balance)
        present, q, n = alloc.pop("cluster"), alloc["q"], alloc.pop("n_all")
        kmax = len(n)
        # Each cluster's cut: the (key, tie) of its q-th row in keep order.
        order = np.lexsort((tie, key, cluster))
        start = np.searchsorted(cluster[order], present)
        bound_key, bound_tie = np.zeros(kmax, np.uint64), np.zeros(kmax, np.uint64)
        quota = np.zeros(kmax, np.int64)
        quota[present] = q
        has = q > 0
        last = order[start[has] + q[has] - 1]
        bound_key[present[has]], bound_tie[present[has]] = key[last], tie[last]
        self._bound, self._quota, self._n = (bound_key, bound_tie), quota, n
        self.facts = {"k": len(present), "N": int(budget), "pool_rows": int(n_pool), "lambda": alloc.pop("lambda"),
                      "m_min": alloc.pop("m_min"), "tau": self.tau, "balance": self.balance, "kept_total": int(q.sum())}
        self.table = {"cluster": present, **alloc}

    def decide_rows(self, rows: Rows) -> tuple[np.ndarray, pa.Array, dict[str, np.ndarray]]:
        pool = rows.cols[self.columns[2]].astype(bool)
        cluster = rows.cols[self.columns[1]].astype(np.int64)
        known = pool & (cluster < len(self._quota))
        c = np.where(known, cluster, 0)
        key, tie = self._keys(rows)
        bk, bt = self._bound[0][c], self._bound[1][c]
        keep = known & (self._quota[c] > 0) & ((key < bk) | ((key == bk) & (tie <= bt)))
        gone = np.flatnonzero(~keep)
        if not len(gone):
            return keep, pa.nulls(len(keep), pa.string()), {}
        text = lambda a: pc.cast(pa.array(a), pa.string())  # noqa: E731
        g = c[gone]
        quota_text = pc.binary_join_element_wise("cluster ", text(g), " quota ", text(self._quota[g]), " of ",
                                                 text(self._n[g]), f": {self.column} ",
                                                 text(np.round(rows.values[gone], 6)),
                                                 f" not among the kept ({self.order})", "")
        reason = pc.if_else(pa.array(pool[gone]), quota_text,
                            f"not in the {self.stage} pool (a near-duplicate removed first)")
        return keep, scatter(reason, gone, len(keep)), {}

    def describe(self) -> dict[str, Any]:
        clusters = [{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in self.table.items()}
                    for i in range(len(self.table.get("cluster", [])))]
        return {**super().describe(), **self.facts, "clusters": clusters}
