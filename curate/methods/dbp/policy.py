"""The `cluster_quota` policy: split a keep budget over concept clusters by complexity (DBP)."""
from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.errors import ConfigError
from curate.methods.clustering import Order
from curate.methods.dbp.presentation import QuotaPresenter
from curate.methods.dbp.stage import PRESETS, Preset
from curate.methods.hints import PolicyName
from curate.policy import Policy, Rows, order_keys, scatter, tie_keys
from kernels.allocation import integer_quotas, water_fill


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


class ClusterQuota(Policy):
    """Spend a row budget over concept clusters by complexity, keeping the least prototypical rows."""

    type = "cluster_quota"
    presenter = QuotaPresenter()

    def __init__(self, column: Annotated[str, Field(description="the stage's dist column")] = "dbp.dist",
                 fraction: Annotated[float | None, Field(ge=0, le=1, description="the budget as a share of the "
                                                                               "pool (or give k)")] = None,
                 k: Annotated[int | None, Field(ge=0, description="the budget in rows (or give fraction)")] = None,
                 tau: Annotated[float | None, Field(gt=0, description="softmax temperature over cluster "
                                                                      "complexity (default: the preset's)")] = None,
                 balance: Annotated[float | None, Field(ge=0, le=1, description="share of the budget spread "
                                                                               "evenly as per-cluster minimums "
                                                                               "(default: the preset's)")] = None,
                 order: Order = "hard", preset: Preset = "paper",
                 seed: Annotated[int, Field(description="tie-break seed")] = 0, name: PolicyName = None):
        super().__init__(column, name)
        if (fraction is None) == (k is None):
            raise ConfigError("policy cluster_quota: give exactly one of fraction and k")
        self.fraction = None if fraction is None else float(fraction)
        self.k = k
        self.tau = None if tau is None else float(tau)
        self.balance = None if balance is None else float(balance)
        self.order, self.preset, self.seed = order, preset, seed
        defaults = PRESETS[preset]
        self._tau = defaults["tau"] if tau is None else self.tau
        self._balance = defaults["balance"] if balance is None else self.balance
        self.table: dict[str, np.ndarray] = {}
        self.facts: dict[str, Any] = {}

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
        budget = self.k if self.k is not None else math.floor(self.fraction * n_pool + 0.5)
        alloc = allocate(cluster, dist, d_inter_rows, budget, self._tau, self._balance)
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
        self.facts = {"n_clusters": len(present), "N": int(budget), "pool_rows": int(n_pool), "lambda": alloc.pop("lambda"),
                      "m_min": alloc.pop("m_min"), "tau": self._tau, "balance": self._balance, "kept_total": int(q.sum())}
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
