"""Quality classifier (stage `quality_classifier`): each row's P(label) from a fastText supervised model, the
DCLM / FineWeb-Edu way of scoring quality with a classifier of what "good" text looks like.

The model is a local file: one trained by `curate train-classifier` (its `<model>.json` sidecar, with the
training files' hashes and held-out metrics, is recorded in summary.json), or any fastText classifier, such as
DCLM's `fasttext_oh_eli5.bin` (label `hq`). It is keyed by its content (`model_sha256`), not by where it lies,
so a retrained model rescores the rows and a moved one does not. A label the model does not have is refused at
plan time, with the model's labels.

Rows: texts have newlines replaced by spaces first (fastText reads one line; DCLM does the same); a null or
blank text is a per-row error (`null_text`, `empty_text`) with no score.
"""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.errors import ConfigError
from curate.methods.hints import StageName
from curate.methods.models import sha256_of
from curate.methods.quality_classifier import model as ft
from curate.methods.quality_classifier.presentation import QualityPresenter
from curate.methods.quality_classifier.train import SIDECAR_FORMAT, sidecar_path
from curate.stage import Stage, needs_string

ERR_NULL = "null_text: text is null"
ERR_EMPTY = "empty_text: text is blank"


class QualityClassifier(Stage):
    """P(label) of each text under a fastText classifier (a local model file; keyed by its sha256)."""

    type = "quality_classifier"
    version = "1"
    unkeyed = frozenset({"model"})  # the model is keyed by its content (model_sha256)
    presenter = QualityPresenter()

    def __init__(self,
                 model: Annotated[str | None, Field(min_length=1, description="a local fastText classifier file "
                                                                              "(.bin or .ftz; required): from `curate "
                                                                              "train-classifier`, or published "
                                                                              "(DCLM's)")] = None,
                 label: Annotated[str, Field(min_length=1, description="the label whose probability is the score "
                                                                       "(`hq` or `__label__hq`)")] = "hq",
                 text_column: Annotated[str, Field(min_length=1, description="the text column")] = "text",
                 name: StageName = None):
        super().__init__(name)
        self.model, self.label, self.text_column = model, label, text_column
        self._model: Any = None
        self._label = ft.full_label(label)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.text_column,)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        return {"score": pa.float64(), "error": pa.string()}

    def _path(self) -> Path:
        # (`model` defaults to None only so that the report can rebuild the stage from its keyed parameters)
        if self.model is None:
            raise ConfigError("quality_classifier: give `model`, the path of a local fastText model file "
                              "(`curate train-classifier` makes one)")
        path = Path(self.model).expanduser()
        if not path.is_file():
            raise ConfigError(f"quality_classifier: no model file at {path} (a local fastText model; nothing is "
                              "fetched from a hub; `curate train-classifier` makes one)")
        return path

    @cached_property
    def _identity(self) -> dict[str, Any]:
        path = self._path()
        labels = ft.model_labels(path)
        if self._label not in labels:
            raise ConfigError(f"quality_classifier: label {self.label!r} is not in the model {path}; its labels: "
                              f"{', '.join(sorted(label.removeprefix(ft.LABEL_PREFIX) for label in labels))}")
        sha = sha256_of(path)
        return {"model_sha256": sha, "labels": labels, "prepare": ft.PREPARE, "library": ft.library_version(),
                **({"training": training} if (training := _training(path, sha)) else {})}

    def depends_on(self) -> dict[str, Any]:
        return dict(self._identity)

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        return needs_string(type)

    def setup(self, artifact: pa.Table | None) -> None:
        fasttext = ft.require()
        self._model = fasttext.load_model(str(self._path()))

    def score(self, batch: pa.Table) -> pa.Table:
        if self._model is None:
            raise RuntimeError("quality_classifier: score called before setup")
        column = batch.column(self.text_column)
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if pa.types.is_null(column.type):
            column = column.cast(pa.string())
        null = column.is_null().to_numpy(zero_copy_only=False)
        blank = ~null & pc.fill_null(pc.match_substring_regex(column, r"^\s*$"), False).to_numpy(zero_copy_only=False)
        good = np.flatnonzero(~(null | blank))
        texts = ft.prepare(column.take(pa.array(good, pa.int64())).to_pylist())
        score = np.zeros(batch.num_rows)
        score[good] = ft.probabilities(self._model, texts, self._label)
        error = np.where(null, ERR_NULL, np.where(blank, ERR_EMPTY, None))
        return pa.table({"score": pa.array(score, pa.float64(), mask=null | blank),
                         "error": pa.array(error, pa.string())})

    def file_metadata(self) -> dict[str, str]:
        return {"quality_classifier.model_sha256": self._identity["model_sha256"],
                "quality_classifier.label": self._label}


def _training(path: Path, sha: str) -> dict[str, Any] | None:
    """The sidecar `curate train-classifier` wrote beside the model, when it describes this very model (a sidecar
    left beside a replaced model is not this model's, and is ignored)."""
    side = sidecar_path(path)
    try:
        record = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != SIDECAR_FORMAT or record.get("model_sha256") != sha:
        return None
    return {k: record.get(k) for k in ("label", "positive", "negative", "counts", "params", "holdout_metrics")}
