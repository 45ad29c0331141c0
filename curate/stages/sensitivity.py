"""Clustering-based sensitivity sampling (stage `sens`, policy `sample`; specs/sensitivity-sampling.md).

Fit: Euclidean k-means (z = 2) on a sample of the unit embeddings; per cluster the row nearest to the
centre becomes its representative r_j, and the loss is evaluated there only (k calls): a constant, a
per-row loss column read at r_j, or a user callable. Score: each row's cluster, d_e = ||e - r_c||^z and
its cluster's loss. The policy: s_e = l_c(e) + Lambda d_e, p_e = s_e / S, exactly m draws with
replacement, distributed by shard (a central multinomial over shards in content order, then one per
shard keyed on (seed, shard content)), so the law is that of m i.i.d. draws for any sharding; each
row's weight = count / (m p). All of p, sums and weights are float64.
"""
from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import ConfigError
from curate.policy import Policy, Rows, register_policy, scatter, tie_keys
from curate.stage import ROW_HASH, ROW_ID, FitContext, register
from curate.stages.clusters import ClusterStage, centroid_table, centroids_of
from kernels.kmeans import nearest
from kernels.vectors import error_array, unit_vectors

LOSS_SOURCES = ("constant", "column", "model")


def _load_callable(spec: str | Callable) -> Callable:
    if callable(spec):
        return spec
    module, _, attr = str(spec).partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"stage sens: cannot import the loss callable {spec!r} ({e}); use 'module:function'") from e


@register
class Sensitivity(ClusterStage):
    type = "sens"
    version = "1"
    spherical = False  # k-means cost (z = 2) on the unit vectors

    def __init__(self, embedding: str, k: int = 1000, z: int = 2, loss: str = "constant", loss_column: str | None = None,
                 loss_model: str | Callable | None = None, loss_inputs: list[str] | None = None,
                 distance_to: str = "representative", niter: int = 100, seed: int = 1234,
                 fit_points_per_centroid: int = 256, name: str | None = None):
        super().__init__(embedding, k, niter, seed, fit_points_per_centroid, name)
        if z not in (1, 2):
            raise ConfigError(f"stage sens: z must be 1 or 2, got {z!r}")
        if loss not in LOSS_SOURCES:
            raise ConfigError(f"stage sens: loss must be one of {', '.join(LOSS_SOURCES)}, got {loss!r}")
        if (loss == "column") != (loss_column is not None):
            raise ConfigError("stage sens: loss: column needs loss_column (and only then)")
        if (loss == "model") != (loss_model is not None):
            raise ConfigError("stage sens: loss: model needs loss_model, a 'module:function' of a batch (and only then)")
        if distance_to not in ("representative", "centroid"):
            raise ConfigError(f"stage sens: distance_to must be representative or centroid, got {distance_to!r}")
        self.z, self.loss, self.loss_column, self.loss_model = z, loss, loss_column, loss_model
        self.loss_inputs = list(loss_inputs or [])
        self.distance_to = distance_to

    def params(self) -> dict[str, Any]:
        model = self.loss_model if isinstance(self.loss_model, (str, type(None))) else \
            f"{self.loss_model.__module__}.{self.loss_model.__qualname__}"
        return {**super().params(), "z": self.z, "loss": self.loss, "loss_column": self.loss_column,
                "loss_model": model, "loss_inputs": self.loss_inputs, "distance_to": self.distance_to}

    def choose_k(self, n_pool: int) -> int:
        return max(1, min(self.k, n_pool // 20))

    @property
    def inputs(self) -> tuple[str, ...]:
        extra = [self.loss_column] if self.loss_column else []
        return (self.embedding, ROW_ID, ROW_HASH, *extra, *self.loss_inputs)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        return {"cluster": pa.int32(), "dist_z": pa.float64(), "center_loss": pa.float64()}

    # --- fit ----------------------------------------------------------------------------------------
    def _nearest_rows(self, table: pa.Table) -> pa.Table:
        """Fit map: per cluster of this shard, its row count and the row nearest to the centre."""
        x, errors = unit_vectors(table.column(self.embedding))
        ok = np.flatnonzero(errors == None)  # noqa: E711
        if not len(ok):
            return pa.table({"cluster": pa.array([], pa.int32())})
        cluster, d2 = nearest(x[ok], self._centroids, metric="l2")
        ties = tie_keys(table.column(ROW_HASH).to_numpy()[ok], self.seed)
        order = np.lexsort((ties, d2, cluster))
        first = order[np.r_[True, cluster[order][1:] != cluster[order][:-1]]]
        rows = ok[first]
        d = x.shape[1]
        out = {"cluster": pa.array(cluster[first]), "n": pa.array(np.bincount(cluster, minlength=len(self._centroids))[cluster[first]]),
               "d2": pa.array(d2[first].astype(np.float64)), "tie": pa.array(ties[first], pa.uint64()),
               "id": table.column(ROW_ID).take(pa.array(rows)),
               "vector": pa.FixedSizeListArray.from_arrays(pa.array(x[rows].reshape(-1), pa.float32()), d)}
        for c in ([self.loss_column] if self.loss_column else []) + self.loss_inputs:
            out[c] = table.column(c).take(pa.array(rows))
        return pa.table(out)

    def fit(self, ctx: FitContext) -> pa.Table:
        centroids, info = self.fit_centroids(ctx)
        self._centroids = centroids
        cols = [self.embedding, ROW_ID, ROW_HASH] + ([self.loss_column] if self.loss_column else []) + self.loss_inputs
        parts = pa.concat_tables([t for t in ctx.map(self._nearest_rows, cols) if t.num_rows])
        n = np.bincount(parts.column("cluster").to_numpy(), weights=parts.column("n").to_numpy(),
                        minlength=len(centroids)).astype(np.int64)
        best = parts.take(pa.array(np.lexsort((parts.column("tie").to_numpy(), parts.column("d2").to_numpy(),
                                               parts.column("cluster").to_numpy()))))
        cl = best.column("cluster").to_numpy()
        best = best.take(pa.array(np.flatnonzero(np.r_[True, cl[1:] != cl[:-1]])))  # global nearest per cluster
        keep = best.column("cluster").to_numpy()                                    # clusters with rows
        losses = self._losses(best)
        floor = 1e-9 * losses.mean() if losses.max() > 0 else 1.0
        losses = np.maximum(losses, floor)
        info.update(loss=self.loss, loss_floor=floor, clusters_dropped_empty=int(len(centroids) - len(keep)))
        return centroid_table(centroids[keep], source_cluster=pa.array(keep, pa.int32()), n=pa.array(n[keep]),
                              rep_id=best.column("id"), rep_vector=best.column("vector"),
                              loss=pa.array(losses, pa.float64())).replace_schema_metadata(
            {b"sens.info": json.dumps(info).encode()})

    def _losses(self, reps: pa.Table) -> np.ndarray:
        if self.loss == "constant":
            return np.ones(reps.num_rows)
        if self.loss == "column":
            values = reps.column(self.loss_column).to_numpy(zero_copy_only=False).astype(np.float64)
        else:
            # The callable sees the representatives' ids, unit embeddings (under the embedding's name) and loss_inputs.
            batch = pa.table({"id": reps.column("id"), self.embedding: reps.column("vector"),
                              **{c: reps.column(c) for c in self.loss_inputs}})
            values = np.asarray(_load_callable(self.loss_model)(batch), np.float64)
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
        if len(bad):
            i = int(bad[0])
            raise ConfigError(f"stage sens: the loss at representative row {reps.column('id')[i].as_py()!r} is "
                              f"{values[i]!r}; losses must be finite and >= 0")
        return values

    # --- score --------------------------------------------------------------------------------------
    def setup(self, artifact: pa.Table | None) -> None:
        self._centroids = centroids_of(artifact)
        rep = artifact.column("rep_vector").combine_chunks()
        self._reps = np.asarray(rep.values.to_numpy(), np.float32).reshape(len(rep), rep.type.list_size)
        self._loss = artifact.column("loss").to_numpy()
        self._cluster_ids = artifact.column("source_cluster").to_numpy()

    def score(self, batch: pa.Table) -> pa.Table:
        x, errors = unit_vectors(batch.column(self.embedding))
        ok = errors == None  # noqa: E711
        n = batch.num_rows
        j, dist = np.zeros(n, np.int64), np.zeros(n)
        if ok.any():
            j[ok], _ = nearest(x[ok], self._centroids, metric="l2")
            anchor = self._reps if self.distance_to == "representative" else self._centroids
            diff = x[ok].astype(np.float64) - anchor[j[ok]]
            dist[ok] = np.sqrt(np.einsum("ij,ij->i", diff, diff)) ** self.z
        return pa.table({"cluster": pa.array(self._cluster_ids[j].astype(np.int32), mask=~ok),
                         "dist_z": pa.array(dist, mask=~ok), "center_loss": pa.array(self._loss[j], mask=~ok),
                         "error": error_array(errors)})

    def describe(self, artifact: pa.Table | None) -> dict[str, Any]:
        if artifact is None:
            return {}
        info = json.loads(artifact.schema.metadata.get(b"sens.info", b"{}"))
        clusters = [{"cluster": int(c), "n": int(n), "representative": r, "loss": float(l)}
                    for c, n, r, l in zip(artifact.column("source_cluster").to_pylist(), artifact.column("n").to_pylist(),
                                          artifact.column("rep_id").to_pylist(), artifact.column("loss").to_pylist())]
        return {**info, "z": self.z, "distance_to": self.distance_to, "clusters": clusters}


# --- the draw ---------------------------------------------------------------------------------------
def mixing(l_c: float, phi: float, alpha: float | None, lam: float | None) -> tuple[float, float]:
    """(Lambda, alpha) from either one: alpha = Lambda Phi / (L_c + Lambda Phi)."""
    if phi <= 0:  # every row on its centre: the distance term vanishes
        return 0.0, 0.0
    if lam is None:
        lam = alpha * l_c / ((1.0 - alpha) * phi)
    return lam, lam * phi / (l_c + lam * phi)


def shard_counts(masses: dict[str, float], m: int, seed: int) -> dict[str, int]:
    """m draws split over shards ~ Multinomial(m, P_b / sum P), shards in content-fingerprint order."""
    names = sorted(masses)
    p = np.array([masses[k] for k in names], np.float64)
    counts = np.random.default_rng([seed, 0x5E45]).multinomial(m, p / p.sum()) if len(p) else []
    return dict(zip(names, map(int, counts)))


def row_counts(p: np.ndarray, m_b: int, seed: int, fingerprint: str) -> np.ndarray:
    """A shard's m_b draws over its rows ~ Multinomial(m_b, p / sum p), keyed on (seed, shard content)."""
    if m_b == 0 or not len(p):
        return np.zeros(len(p), np.int64)
    words = [int(fingerprint[i:i + 8], 16) for i in range(0, len(fingerprint), 8)]
    return np.random.default_rng([seed, *words]).multinomial(m_b, p / p.sum())


@register_policy
class Sample(Policy):
    """Draw m rows with replacement with probability proportional to sensitivity; weight = count / (m p)."""

    type = "sample"

    def __init__(self, column: str = "sens.dist_z", m: int = 0, alpha: float | None = None,
                 lambda_: float | None = None, seed: int = 0, name: str | None = None):
        super().__init__(column, name)
        if not isinstance(m, int) or m < 1:
            raise ConfigError(f"policy sample: m (the number of draws) must be a positive integer, got {m!r}")
        if alpha is not None and lambda_ is not None:
            raise ConfigError("policy sample: give alpha or lambda_, not both")
        if alpha is None and lambda_ is None:
            alpha = 0.5
        if alpha is not None and not 0 <= alpha < 1:
            raise ConfigError(f"policy sample: alpha must be in [0, 1), got {alpha!r}")
        if lambda_ is not None and lambda_ < 0:
            raise ConfigError(f"policy sample: lambda_ must be >= 0, got {lambda_!r}")
        self.m, self.alpha, self.lambda_, self.seed = m, alpha, lambda_, seed
        self.facts: dict[str, Any] = {}

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "m": self.m, "alpha": self.alpha, "lambda_": self.lambda_, "seed": self.seed}

    @property
    def columns(self) -> list[str]:
        return [self.column, f"{self.stage}.center_loss"]

    def outputs(self) -> dict[str, pa.DataType]:
        return {"p": pa.float64(), "count": pa.int32(), "weight": pa.float64()}

    def fit(self, scan) -> None:
        l_parts, d_parts, n = [], [], 0
        for r in scan.rows():
            l_parts.append(float(np.sum(r.cols[self.columns[1]])))   # numpy sums pairwise; fsum across shards
            d_parts.append(float(np.sum(r.values)))
            n += len(r.values)
        if self.m > 1000 * max(n, 1):
            raise ConfigError(f"policy sample: m={self.m} is more than 1000 x the {n} valid rows")
        l_c, phi = math.fsum(l_parts), math.fsum(d_parts)
        self._lam, alpha = mixing(l_c, phi, self.alpha, self.lambda_)
        self._s = l_c + self._lam * phi
        masses = {r.shard: math.fsum([float(np.sum(self._p(r)))]) for r in scan.rows()}
        self._counts = shard_counts(masses, self.m, self.seed)
        self.facts = {"L_c": l_c, "Phi": phi, "Lambda": self._lam, "alpha_effective": alpha, "S": self._s,
                      "valid_rows": n, "distinct_drawn": 0, "sum_w": 0.0, "sum_w2": 0.0}

    def _p(self, rows: Rows) -> np.ndarray:
        return (rows.cols[self.columns[1]] + self._lam * rows.values) / self._s

    def decide_rows(self, rows: Rows) -> tuple[np.ndarray, pa.Array, dict[str, np.ndarray]]:
        p = self._p(rows)
        count = row_counts(p, self._counts.get(rows.shard, 0), self.seed, rows.shard)
        weight = np.where(count > 0, count / (self.m * np.where(p > 0, p, 1.0)), 0.0)
        keep = count > 0
        self.facts["distinct_drawn"] += int(keep.sum())
        self.facts["sum_w"] += float(weight.sum())
        self.facts["sum_w2"] += float((weight ** 2).sum())
        gone = np.flatnonzero(~keep)
        text = pc.binary_join_element_wise("not drawn in ", str(self.m), " draws (p = ",
                                           pc.cast(pa.array(p[gone]), pa.string()), ")", "")
        return keep, scatter(text, gone, len(keep)), {"p": p, "count": count.astype(np.int32), "weight": weight}

    def describe(self) -> dict[str, Any]:
        f = dict(self.facts)
        if f.get("sum_w2"):
            f["effective_sample_size"] = f["sum_w"] ** 2 / f["sum_w2"]
        return {**super().describe(), **f}
