"""EL2N and GraNd: how hard a labelled row is for a proxy early in training (stage `el2n`; docs/methods/el2n.md).

Paul et al., "Deep Learning on a Data Diet" (NeurIPS 2021). Fit: draw a sample S of the valid rows (all of
them up to `fit_rows`, above it the rows with the smallest tie keys, a seeded uniform sample), record the
class set and the per-feature standardisation, and train R proxies (seed + r: independent init and data
order) for `score_epoch` epochs (or `score_step` steps). Score, per shard and per run, in eval mode on
un-augmented inputs: EL2N = ||softmax(z) - onehot(y)||, CE, and optionally GraNd (the per-example gradient
norm over all trainable parameters via torch.func, or the exact last-layer closed form). Mean and std over
the runs go to the manifest; the policy `el2n_keep` keeps the hardest, the easiest or an offset window,
globally or per class.

Artifact: one row per run (`run`, `train_acc`, `weights` = torch.save of the state dict at the score step,
`grand_weights` at the GraNd step or null when it is the same), and `el2n.info` JSON in the schema metadata
(classes, d, feature mean and std, steps, proxy shape, sample sizes). Errors: `bad_label`, `invalid_features`,
`nonfinite_logits` (every run gave non-finite logits; a row with some finite runs is scored over those,
`el2n.runs` says how many).
"""
from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from pydantic import Field
from torch import nn

from curate.errors import DataError
from curate.methods.el2n import proxy
from curate.methods.hints import StageName
from curate.policy import tie_keys
from curate.stage import ROW_HASH, FitContext, Stage

_U64 = 2**64
PositiveInt = Annotated[int, Field(ge=1)]


def label_values(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """int64 labels and per-row `bad_label` errors (None where valid): nulls, non-integers, wrong types."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    errors = np.full(n, None, dtype=object)
    if pa.types.is_null(arr.type):
        errors[:] = "bad_label: null"
        return np.zeros(n, np.int64), errors
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        errors[:] = f"bad_label: label column has type {arr.type}, expected an integer class index"
        return np.zeros(n, np.int64), errors
    null = arr.is_null().to_numpy(zero_copy_only=False)
    v = np.asarray(pc.fill_null(arr, 0).to_numpy(zero_copy_only=False))
    if pa.types.is_floating(arr.type):
        with np.errstate(invalid="ignore"):
            bad = ~null & ~(np.isfinite(v) & (v == np.round(v)) & (np.abs(v) < 2**53))
        errors[bad] = [f"bad_label: {float(x)} is not an integer" for x in v[bad]]
        v = np.where(bad, 0, v)
    errors[null] = "bad_label: null"
    return v.astype(np.int64), errors


def _first_error(*errors: np.ndarray) -> np.ndarray:
    out = errors[0].copy()
    for e in errors[1:]:
        free = out == None  # noqa: E711
        out[free] = e[free]
    return out


@dataclass(frozen=True)
class _SampleRows:
    """Fit map: the valid rows (features of length d, a label) whose tie key is <= cutoff.

    A dataclass so that its repr, part of the fit unit's key, names the cutoff and d.
    """

    stage: EL2N
    d: int
    cutoff: int

    def __call__(self, table: pa.Table) -> pa.Table:
        s = self.stage
        x, ferr = proxy.feature_matrix(table.column(s.features), self.d)
        y, lerr = label_values(table.column(s.label))
        tie = tie_keys(table.column(ROW_HASH).to_numpy(), s.seed)
        rows = np.flatnonzero((_first_error(lerr, ferr) == None) & (tie <= np.uint64(self.cutoff)))  # noqa: E711
        flat = pa.array(x[rows].reshape(-1), pa.float32())
        return pa.table({"tie": pa.array(tie[rows], pa.uint64()), "label": pa.array(y[rows], pa.int64()),
                         "x": pa.FixedSizeListArray.from_arrays(flat, self.d)})

    def __repr__(self) -> str:
        return f"_SampleRows(d={self.d}, cutoff={self.cutoff})"


class EL2N(Stage):
    """EL2N and GraNd (Paul et al. 2021): how hard a labelled row is for small proxy models early in
    training, averaged over R proxy runs (higher = harder); the `el2n_keep` policy keeps the hardest, the
    easiest or an offset window. docs/methods/el2n.md has the details."""

    type = "el2n"
    version = "1"

    unkeyed = frozenset({"proxy"})  # keyed by its description (depends_on): a module or factory has no stable repr

    def __init__(self,
                 features: Annotated[str, Field(min_length=1, description="the feature column (a list of numbers: "
                                                                          "an embedding or flat pixels)")] = "features",
                 label: Annotated[str, Field(min_length=1, description="the integer class column")] = "label",
                 runs: Annotated[int, Field(ge=1, description="proxies trained (seed + r); scores are the mean "
                                                              "over runs")] = 10,
                 score_epoch: Annotated[int, Field(ge=0, description="epochs trained before scoring")] = 2,
                 score_step: Annotated[int | None, Field(ge=0, description="steps trained before scoring "
                                                                           "(instead of score_epoch)")] = None,
                 proxy: Annotated[Literal["mlp"] | nn.Module | Callable[[int, int], nn.Module],
                                  Field(description="the proxy: mlp (configs), or a torch Module or a factory "
                                                    "(d, n_classes) -> Module (Python API)")] = "mlp",
                 hidden: Annotated[list[PositiveInt] | PositiveInt,
                                   Field(description="mlp: hidden layer widths")] = 256,
                 dropout: Annotated[float, Field(ge=0, lt=1, description="mlp: dropout rate")] = 0.0,
                 optimizer: Annotated[Literal["adam", "sgd"], Field(description="the proxy's optimiser")] = "adam",
                 lr: Annotated[float, Field(ge=0, description="learning rate")] = 2e-3,
                 weight_decay: Annotated[float, Field(ge=0, description="weight decay")] = 0.0,
                 batch_size: Annotated[int, Field(ge=1, description="training batch size")] = 256,
                 grand: Annotated[Literal["off", "last_layer", "full"],
                                  Field(description="GraNd too: off, last_layer (exact closed form) or full "
                                                    "(per-example gradients over all parameters)")] = "off",
                 grand_epoch: Annotated[int | None, Field(ge=0, description="epochs trained before GraNd "
                                                                            "(default: as the score)")] = None,
                 fit_rows: Annotated[int, Field(ge=2, description="the proxies train on a seeded uniform sample "
                                                                  "of at most this many rows")] = 1_000_000,
                 seed: Annotated[int, Field(ge=0, description="seed of the sample, the inits and the data "
                                                              "order")] = 0,
                 name: StageName = None):
        super().__init__(name)
        self.features, self.label, self.runs = features, label, runs
        self.score_epoch, self.score_step, self.grand_epoch = score_epoch, score_step, grand_epoch
        self.batch_size, self.fit_rows, self.seed = batch_size, fit_rows, seed
        self.hidden = list(hidden) if isinstance(hidden, list) else hidden
        self._hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        self.proxy = proxy
        self.grand, self.optimizer = grand, optimizer
        self.lr, self.weight_decay, self.dropout = float(lr), float(weight_decay), float(dropout)
        self._models: list[nn.Module] = []
        self._grand_models: list[nn.Module | None] = []
        self._info: dict[str, Any] = {}

    # --- declarations ---------------------------------------------------------------------------
    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.features, self.label, ROW_HASH)  # the row hash keys the fit sample

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        return {"score": pa.float32(), "std": pa.float32(), "runs": pa.int16(), "loss": pa.float32(),
                "grand": pa.float32(), "grand_std": pa.float32(), "label": pa.int64(), "error": pa.string()}

    def _proxy_id(self) -> Any:
        if self.proxy == "mlp":
            return {"mlp": self._hidden, "dropout": self.dropout}
        if isinstance(self.proxy, nn.Module):
            return {"module": f"{type(self.proxy).__module__}.{type(self.proxy).__qualname__}", "repr": repr(self.proxy)}
        try:
            source = inspect.getsource(self.proxy)
        except (OSError, TypeError):
            source = ""
        return {"factory": f"{self.proxy.__module__}.{self.proxy.__qualname__}", "source": source}

    def depends_on(self) -> dict[str, Any]:
        return {"proxy": self._proxy_id(), "torch": torch.__version__.split("+")[0]}

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        if pa.types.is_null(type):
            return None
        if column == self.label and not (pa.types.is_integer(type) or pa.types.is_floating(type)):
            return f"is {type}; needs an integer class index"
        if column == self.features and not proxy.is_feature_type(type):
            return f"is {type}; needs a list or fixed_size_list of numbers (an embedding or flat pixels)"
        return None

    # --- fit --------------------------------------------------------------------------------------
    def count_fn(self, table: pa.Table) -> pa.Table:
        """Fit map 1: valid rows per (feature length, label) in one shard."""
        col = table.column(self.features).combine_chunks()
        if proxy.is_feature_type(col.type) and not pa.types.is_fixed_size_list(col.type):
            lengths = pc.fill_null(pc.list_value_length(col), -1).to_numpy(zero_copy_only=False)
        else:
            lengths = np.full(len(col), col.type.list_size if proxy.is_feature_type(col.type) else -1)
        ok = np.zeros(len(col), bool)
        for d in np.unique(lengths[lengths >= 0]):  # rows of each length, validated at that length
            _, err = proxy.feature_matrix(col, int(d))
            ok |= (lengths == d) & (err == None)  # noqa: E711
        y, lerr = label_values(table.column(self.label))
        ok &= lerr == None  # noqa: E711
        if not ok.any():
            return pa.table({"d": pa.array([], pa.int64()), "label": pa.array([], pa.int64()),
                             "n": pa.array([], pa.int64())})
        pairs, n = np.unique(np.stack([lengths[ok].astype(np.int64), y[ok]]), axis=1, return_counts=True)
        return pa.table({"d": pairs[0], "label": pairs[1], "n": n.astype(np.int64)})

    def _steps(self, n_sample: int) -> tuple[int, int]:
        per_epoch = proxy.steps_per_epoch(n_sample, self.batch_size)
        score = self.score_step if self.score_step is not None else self.score_epoch * per_epoch
        grand = score if self.grand_epoch is None else self.grand_epoch * per_epoch
        return score, grand

    def fit(self, ctx: FitContext) -> pa.Table:
        counts = pa.concat_tables(list(ctx.map(self.count_fn, [self.features, self.label])))
        if counts.num_rows == 0:
            raise DataError([f"stage {self.name!r}: no row has both a valid label ({self.label!r}) and valid "
                             f"features ({self.features!r}); nothing to train the proxies on"])
        ds, labels, ns = (counts.column(c).to_numpy() for c in ("d", "label", "n"))
        by_d = {int(d): int(ns[ds == d].sum()) for d in np.unique(ds)}
        d = max(by_d, key=lambda k: (by_d[k], -k))  # the common feature length; others are invalid rows
        n_valid = by_d[d]
        all_labels = np.unique(labels[ds == d])
        sample = self._sample(ctx, d, n_valid)
        x = np.asarray(pc.list_flatten(sample.column("x")).to_numpy(), np.float32).reshape(-1, d)
        y_raw = sample.column("label").to_numpy()
        classes = np.unique(y_raw)
        if len(classes) < 2:
            raise DataError([f"stage {self.name!r}: the fit sample has {len(classes)} class(es) in {self.label!r} "
                             f"({classes.tolist()}); EL2N needs at least 2"])
        y = np.searchsorted(classes, y_raw)
        mean, std = proxy.standardisation(x)
        score_step, grand_step = self._steps(len(x))
        checkpoints = sorted({score_step, grand_step})
        rows = []
        for r in range(self.runs):
            model = proxy.build_proxy(self.proxy, d, len(classes), self._hidden, self.dropout, self.seed + r)
            res = proxy.train_proxy(model, x, y, mean, std, checkpoints, self.batch_size, self.lr, self.seed + r,
                                    self.optimizer, self.weight_decay)
            rows.append({"run": r, "train_acc": res.train_acc, "weights": res.checkpoints[score_step],
                         "grand_weights": res.checkpoints[grand_step] if grand_step != score_step else None})
        info = {"classes": classes.tolist(), "d": d, "mean": mean.tolist(), "std": std.tolist(),
                "valid_rows": n_valid, "fit_rows": len(x), "score_step": score_step, "grand_step": grand_step,
                "steps_per_epoch": proxy.steps_per_epoch(len(x), self.batch_size),
                "labels_outside_fit": sorted(set(all_labels.tolist()) - set(classes.tolist())),
                "fit_class_histogram": dict(zip(map(str, classes.tolist()), np.bincount(y).tolist())),
                "proxy": proxy.describe_model(model)}
        table = pa.Table.from_pylist(rows, schema=pa.schema([("run", pa.int32()), ("train_acc", pa.float64()),
                                                              ("weights", pa.binary()), ("grand_weights", pa.binary())]))
        return table.replace_schema_metadata({b"el2n.info": json.dumps(info).encode()})

    def _sample(self, ctx: FitContext, d: int, n_valid: int) -> pa.Table:
        """All valid rows up to fit_rows; above it the fit_rows rows with the smallest tie keys (exact)."""
        frac, slack = self.fit_rows / n_valid, 6.0 * math.sqrt(self.fit_rows) + 100
        while True:  # a cutoff a little above the fraction, widened in the (rare) case it falls short
            cutoff = _U64 - 1 if n_valid <= self.fit_rows else min(_U64 - 1, int(_U64 * min(1.0, frac + slack / n_valid)))
            got = pa.concat_tables(list(ctx.map(_SampleRows(self, d, cutoff), self._fit_columns)))
            if got.num_rows >= self.fit_rows or cutoff == _U64 - 1:
                # In tie-key order, so that training batches do not depend on how the rows are sharded.
                order = np.lexsort((got.column("label").to_numpy(), got.column("tie").to_numpy()))
                return got.take(pa.array(order[:self.fit_rows]))
            slack *= 4

    @property
    def _fit_columns(self) -> list[str]:
        return [self.features, self.label, ROW_HASH]

    # --- score ------------------------------------------------------------------------------------
    def setup(self, artifact: pa.Table | None) -> None:
        if artifact is None:
            raise ValueError("el2n: setup needs the proxy checkpoints produced by fit")
        info = json.loads(artifact.schema.metadata[b"el2n.info"])
        self._info = info
        self._classes = np.asarray(info["classes"], np.int64)
        self._d = int(info["d"])
        self._mean = torch.tensor(info["mean"], dtype=torch.float64)
        self._std = torch.tensor(info["std"], dtype=torch.float64)
        rows = artifact.to_pylist()

        def load(data: bytes) -> nn.Module:
            model = proxy.build_proxy(self.proxy, self._d, len(self._classes), self._hidden, self.dropout, 0)
            return proxy.load_state(model, data).double().eval()

        self._models = [load(r["weights"]) for r in rows]
        self._grand_models = [load(r["grand_weights"]) if r["grand_weights"] is not None else None for r in rows]

    def score(self, batch: pa.Table) -> pa.Table:
        if not self._models:
            raise RuntimeError("el2n: score called before setup")
        n = batch.num_rows
        x, ferr = proxy.feature_matrix(batch.column(self.features), self._d)
        y, lerr = label_values(batch.column(self.label))
        idx = np.searchsorted(self._classes, y)
        known = (idx < len(self._classes)) & (self._classes[np.minimum(idx, len(self._classes) - 1)] == y)
        outside = (lerr == None) & ~known  # noqa: E711
        lerr[outside] = [f"bad_label: {v} is not in the fitted class set" for v in y[outside]]
        errors = _first_error(lerr, ferr)
        ok = np.flatnonzero(errors == None)  # noqa: E711
        per_run = self.score_runs(x[ok], idx[ok])
        el2n, el2n_std, count = proxy.aggregate(per_run["el2n"])
        loss, _, _ = proxy.aggregate(per_run["loss"])
        lost = count == 0
        errors[ok[lost]] = f"nonfinite_logits: all {self.runs} proxy runs gave non-finite logits"
        good = np.zeros(n, bool)
        good[ok[~lost]] = True

        def col(values: np.ndarray | None, dtype: pa.DataType, mask: np.ndarray = good) -> pa.Array:
            full = np.zeros(n, np.float64 if pa.types.is_floating(dtype) else np.int64)
            if values is not None:
                full[ok] = values
            else:
                mask = np.zeros(n, bool)
            return pa.array(full, mask=~mask).cast(dtype)

        out = {"score": col(el2n, pa.float32()), "std": col(el2n_std, pa.float32()), "runs": col(count, pa.int16()),
               "loss": col(loss, pa.float32())}
        if per_run["grand"] is not None:
            g, g_std, g_count = proxy.aggregate(per_run["grand"])
            gmask = good.copy()
            gmask[ok] &= g_count > 0
            out["grand"], out["grand_std"] = col(g, pa.float32(), gmask), col(g_std, pa.float32(), gmask)
        else:
            out["grand"], out["grand_std"] = col(None, pa.float32()), col(None, pa.float32())
        out["label"] = col(y[ok], pa.int64())
        out["error"] = pa.array(errors.tolist(), pa.string())
        return pa.table(out)

    def score_runs(self, x: np.ndarray, y_index: np.ndarray) -> dict[str, np.ndarray | None]:
        """Per-run scores (R, n) of valid rows (raw features, class indices): `el2n`, `loss`, `grand` (or None)."""
        xt = (torch.from_numpy(np.ascontiguousarray(x, np.float64)) - self._mean) / self._std
        yt = torch.tensor(np.asarray(y_index, np.int64))
        runs = [proxy.score_run(m, xt, yt, self.grand, gm) for m, gm in zip(self._models, self._grand_models)]
        return {"el2n": np.stack([r.el2n for r in runs]) if runs else np.zeros((0, len(x))),
                "loss": np.stack([r.loss for r in runs]) if runs else np.zeros((0, len(x))),
                "grand": np.stack([r.grand for r in runs]) if self.grand != "off" else None}

    def describe(self, artifact: pa.Table | None) -> dict[str, Any]:
        if artifact is None:
            return {}
        info = json.loads(artifact.schema.metadata[b"el2n.info"])
        info.pop("mean", None)
        info.pop("std", None)
        per_epoch = info["steps_per_epoch"]
        return {"runs": artifact.num_rows, "epochs": info["score_step"] / per_epoch, **info,
                "train_acc": [round(a, 6) for a in artifact.column("train_acc").to_pylist()]}
