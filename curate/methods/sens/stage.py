"""Clustering-based sensitivity sampling (stage `sens`, policy `sample`; docs/methods/sens.md).

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
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.errors import ConfigError
from curate.methods.clustering import (
    ClusterStage,
    Embedding,
    FitPoints,
    Niter,
    Seed,
    centroid_table,
    centroids_of,
)
from curate.methods.hints import StageName
from curate.policy import tie_keys
from curate.stage import ROW_HASH, ROW_ID, FitContext
from kernels.kmeans import nearest
from kernels.vectors import error_array, unit_vectors


def _load_callable(spec: str | Callable) -> Callable:
    if callable(spec):
        return spec
    module, _, attr = str(spec).partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"stage sens: cannot import the loss callable {spec!r} ({e}); use 'module:function'") from e


class Sensitivity(ClusterStage):
    """Clustering-based sensitivity sampling: clusters the embeddings, evaluates the loss at one representative
    per cluster, and scores each row by its cluster's loss plus its distance to the representative; the `sample`
    policy draws a weighted sample proportional to that score."""

    type = "sens"
    version = "1"
    spherical = False  # k-means cost (z = 2) on the unit vectors

    unkeyed = frozenset({"loss_model"})  # keyed by its name (depends_on): a callable has no stable repr

    def __init__(self, embedding: Embedding,
                 k: Annotated[int, Field(ge=1, description="the number of clusters (at most N / 20)")] = 1000,
                 z: Annotated[int, Field(ge=1, le=2, description="distance power: 1 (k-median) or 2 "
                                                                 "(k-means)")] = 2,
                 loss: Annotated[Literal["constant", "column", "model"],
                                 Field(description="the loss at each cluster's representative: a constant, a "
                                                   "column (loss_column) or a callable (loss_model)")] = "constant",
                 loss_column: Annotated[str | None, Field(description="loss: column - the column holding the "
                                                                      "per-row loss")] = None,
                 loss_model: Annotated[str | Callable | None,
                                       Field(description="loss: model - a 'module:function' of a batch of "
                                                         "representatives")] = None,
                 loss_inputs: Annotated[list[str] | None, Field(description="extra columns loss_model "
                                                                            "reads")] = None,
                 distance_to: Annotated[Literal["representative", "centroid"],
                                        Field(description="d_e is measured to the cluster's representative row "
                                                          "or to its centroid")] = "representative",
                 niter: Niter = 100, seed: Seed = 1234, fit_points_per_centroid: FitPoints = 256,
                 name: StageName = None):
        super().__init__(embedding, k, niter, seed, fit_points_per_centroid, name)
        if (loss == "column") != (loss_column is not None):
            raise ConfigError("stage sens: loss: column needs loss_column (and only then)")
        if (loss == "model") != (loss_model is not None):
            raise ConfigError("stage sens: loss: model needs loss_model, a 'module:function' of a batch (and only then)")
        self.z, self.loss, self.loss_column, self.loss_model = z, loss, loss_column, loss_model
        self.loss_inputs = None if loss_inputs is None else list(loss_inputs)
        self._loss_inputs = list(loss_inputs or [])
        self.distance_to = distance_to

    def depends_on(self) -> dict[str, Any]:
        model = self.loss_model if isinstance(self.loss_model, (str, type(None))) else \
            f"{self.loss_model.__module__}.{self.loss_model.__qualname__}"
        return {"loss_model": model}

    def choose_k(self, n_pool: int) -> int:
        return max(1, min(self.k, n_pool // 20))

    @property
    def inputs(self) -> tuple[str, ...]:
        extra = [self.loss_column] if self.loss_column else []
        return (self.embedding, ROW_ID, ROW_HASH, *extra, *self._loss_inputs)

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
        for c in ([self.loss_column] if self.loss_column else []) + self._loss_inputs:
            out[c] = table.column(c).take(pa.array(rows))
        return pa.table(out)

    def fit(self, ctx: FitContext) -> pa.Table:
        centroids, info = self.fit_centroids(ctx)
        self._centroids = centroids
        cols = [self.embedding, ROW_ID, ROW_HASH] + ([self.loss_column] if self.loss_column else []) + self._loss_inputs
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
                              **{c: reps.column(c) for c in self._loss_inputs}})
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
