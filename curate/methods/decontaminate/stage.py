"""`decontaminate`: word n-gram overlap between each row and benchmark sets (GPT-3, datatrove: 13-grams after
lower-casing and dropping punctuation), so that the benchmarks a model is evaluated on stay out of its training
data. Per row: the n-grams found, the longest overlap in words, and the benchmark item it overlaps most; with
`remove: span`, the text with the overlapping spans cut out, which replaces the text column in
`curate export --materialize`. The method, its choices and the peers: docs/methods/decontaminate.md."""
from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.methods.decontaminate import benchmarks as bench
from curate.methods.decontaminate.presentation import DecontaminatePresenter
from curate.methods.hints import StageName
from curate.stage import FitContext, Stage, needs_string
from kernels import ngramindex

BenchmarkEntry = str | dict[str, str]


class Decontaminate(Stage):
    """Word n-gram overlap of each row with benchmark files (n-grams found, longest overlap, item overlapped most).

    Outputs: `ngrams` found, `longest` overlap in words, the `benchmark` and `item` it overlaps most (and `item_ngrams` from it), the character offsets of the longest overlap (`start`,
    `end`) and, with `remove: span`, the cleaned `text`. A null text, or one without words, is a per-row error."""

    type = "decontaminate"
    version = "1"
    presenter = DecontaminatePresenter()

    def __init__(self,
                 benchmarks: Annotated[list[BenchmarkEntry], Field(min_length=1, description=(
                     "benchmark files (.jsonl, .parquet, .csv, or .txt with one item a line): a path, or a "
                     "mapping with `path` and optionally `column`, `id_column` (default: `id`, else the row or line number) "
                     "and `name` (default: the file's stem)"))],
                 text: Annotated[str, Field(min_length=1, description="the text column")] = "text",
                 benchmark_column: Annotated[str, Field(min_length=1, description="the benchmarks' text column, "
                                                                                  "where an entry names none")] = "text",
                 n: Annotated[int, Field(ge=1, le=64, description="words per n-gram (13: GPT-3; datatrove's "
                                                                  "default is 12)")] = 13,
                 min_words: Annotated[int, Field(ge=1, description=(
                     "a benchmark item of min_words to n - 1 words is found whole; a shorter one is not looked "
                     "for (GPT-3's floor on n is 8)"))] = 8,
                 remove: Annotated[Literal["row", "span"], Field(description=(
                     "`row`: score only (a policy drops rows); `span`: also write `text` with the overlapping "
                     "spans cut out, for `export --materialize`"))] = "row",
                 max_ngram_mb: Annotated[float, Field(gt=0, description=(
                     "refuse benchmarks whose n-gram set takes more memory than this on each worker"))] = 1024.0,
                 name: StageName = None):
        super().__init__(name)
        self.benchmarks, self.text, self.benchmark_column = list(benchmarks), text, benchmark_column
        self.n, self.min_words, self.remove, self.max_ngram_mb = n, min_words, remove, max_ngram_mb
        self._files = bench.parse(self.benchmarks, benchmark_column)
        self._hashes: list[str] | None = None

    # --- declarations -------------------------------------------------------------------------
    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.text,)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        out = {"ngrams": pa.int64(), "longest": pa.int32(), "benchmark": pa.string(), "item": pa.string(),
               "item_ngrams": pa.int64(), "start": pa.int64(), "end": pa.int64()}
        if self.remove == "span":
            out["text"] = pa.large_string()
        return {**out, "error": pa.string()}

    @property
    def data_outputs(self) -> frozenset[str]:  # the cleaned text: in scores/ and exports, not in the manifest
        return frozenset({"text"}) if self.remove == "span" else frozenset()

    @property
    def replaces(self) -> dict[str, str]:
        return {"text": self.text} if self.remove == "span" else {}

    def depends_on(self) -> dict[str, Any]:
        # Keyed by content, not path: an edited benchmark re-fits, a moved one does not.
        if self._hashes is None:
            self._hashes = [b.sha256() for b in self._files]
        return {"benchmarks_sha256": self._hashes, "words": ngramindex.UNICODE_VERSION}

    def keyed_params(self) -> dict[str, Any]:
        params = super().keyed_params()
        params.pop("max_ngram_mb", None)  # a memory bound, not a result
        return params

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        return needs_string(type) if column == self.text else None

    # --- fit: the benchmarks' n-grams, once ---------------------------------------------------
    def fit(self, ctx: FitContext) -> pa.Table:
        return bench.build(self._files, self.n, self.min_words, self.max_ngram_mb)

    def describe(self, artifact: pa.Table | None) -> dict[str, Any]:
        if artifact is None:
            return {}
        meta = json.loads(artifact.schema.metadata[b"decontaminate"])
        return {"ngrams": artifact.num_rows, "ngram_mb": round(artifact.num_rows * bench.BYTES_PER_NGRAM / 2**20, 3),
                "benchmarks": meta["benchmarks"], "short_sizes": meta["short_sizes"]}

    def setup(self, artifact: pa.Table | None) -> None:
        meta = json.loads(artifact.schema.metadata[b"decontaminate"])
        self.table_ = artifact.column("hash").to_numpy()
        self.owner_ = artifact.column("item").to_numpy()
        self.bits_ = ngramindex.prefilter(self.table_)
        self.n_items_ = len(meta["items"])
        self.item_ids_ = pa.array([i for _, i in meta["items"]], pa.string())
        labels = pa.array([b["name"] for b in meta["benchmarks"]], pa.string())
        self.item_benchmarks_ = labels.take(pa.array([k for k, _ in meta["items"]], pa.int64()))
        self.short_sizes_ = np.asarray(meta["short_sizes"], np.int64)

    # --- score --------------------------------------------------------------------------------
    def score(self, batch: pa.Table) -> pa.Table:
        column = batch.column(self.text)
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if pa.types.is_null(column.type):
            column = pa.nulls(len(column), pa.large_string())
        texts = bench.nfkc(column)
        m = ngramindex.match(texts, self.n, self.short_sizes_, self.table_, self.owner_, self.n_items_,
                             self.bits_)
        words = np.diff(m["row_words"])
        bad = words == 0
        error = np.where(column.is_null().to_numpy(zero_copy_only=False), f"null_text: column {self.text!r} is null",
                         np.where(bad, "empty_text: no words", None))
        hit = m["top"] >= 0
        top = pa.array(m["top"], pa.int64(), mask=~hit)  # a null index takes a null
        start, end = self._longest_span(texts, m)
        out = {"ngrams": pa.array(m["found"], pa.int64(), mask=bad),
               "longest": pa.array(m["longest"], pa.int32(), mask=bad),
               "benchmark": self.item_benchmarks_.take(top), "item": self.item_ids_.take(top),
               "item_ngrams": pa.array(m["top_hits"], pa.int64(), mask=~hit),
               "start": pa.array(start, pa.int64(), mask=~hit), "end": pa.array(end, pa.int64(), mask=~hit)}
        if self.remove == "span":
            out["text"] = pc.if_else(pa.array(hit), ngramindex.cut(texts, m), column.cast(pa.large_string()))
        return pa.table({**out, "error": pa.array(error, pa.string())})

    def _longest_span(self, texts: pa.Array, m: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Character offsets of each row's longest overlap, in the NFKC text (rows that overlap only: few)."""
        start, end = np.zeros(len(texts), np.int64), np.zeros(len(texts), np.int64)
        offsets = ngramindex.arrow_buffers(texts.cast(pa.large_string()))[1]
        for r in np.flatnonzero(m["top"] >= 0):
            runs = m["runs"][m["row_runs"][r]:m["row_runs"][r + 1]]
            first, last = runs[np.argmax(runs[:, 1] - runs[:, 0])]
            a = m["row_words"][r]
            raw = texts[int(r)].as_py().encode()
            b0, b1 = m["pos"][a + first, 0] - offsets[r], m["pos"][a + last - 1, 1] - offsets[r]
            start[r] = len(raw[:b0].decode())
            end[r] = start[r] + len(raw[b0:b1].decode())
        return start, end
