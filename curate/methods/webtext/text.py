"""What the web-text stages share: the text column as Arrow buffers, the shared word tokens, per-row errors."""
from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.methods.hints import StageName
from curate.methods.webtext.chars import TABLE_VERSION, tables
from curate.stage import Stage
from kernels.textwords import tokenize

TOKENIZER_VERSION = "webtext-words/1"  # kernels/textwords.py: bump when the token rule changes
SPANS = pa.list_(pa.int32())

TextColumn = Annotated[str, Field(description="the text column")]
WordsStage = Annotated[str, Field(description="the `words` stage whose tokens the rules count (its name)")]


def is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def text_buffers(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(UTF-8 bytes, int64 offsets into them, valid) of a string column."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    arr = arr.cast(pa.large_string())
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], np.int64, count=n + 1, offset=arr.offset * 8) if n else np.zeros(1, np.int64)
    raw = arr.buffers()[2]
    data = np.frombuffer(raw, np.uint8) if raw is not None and len(raw) else np.zeros(1, np.uint8)
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), np.bool_)
    return data, np.ascontiguousarray(offsets), valid


def span_buffers(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(int32 token bounds, int64 offsets of each row's bounds) of a `words.spans` column."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = arr.values.to_numpy(zero_copy_only=False) if len(arr.values) else np.zeros(0, np.int32)
    ptr = arr.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    return np.ascontiguousarray(values, np.int32), ptr


def word_spans(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each row's word tokens as byte bounds [start0, end0, start1, ...] from the row's start (null rows: null)."""
    data, offsets, valid = text_buffers(column)
    spans, ptr = tokenize(data, offsets, valid, tables()[0])
    mask = pa.array(~valid) if not valid.all() else None
    return pa.ListArray.from_arrays(pa.array(ptr.astype(np.int32)), pa.array(spans, pa.int32()), mask=mask)


def null_errors(valid: np.ndarray, column: str) -> pa.Array:
    """The per-row error of rows whose text is null."""
    if valid.all():
        return pa.nulls(len(valid), pa.string())
    return pa.array(np.where(valid, None, f"null_text: column {column!r} is null"), pa.string())


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, and 0 where den is 0 (nothing to count: the rules' other tests decide such rows)."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def masked(values: np.ndarray, valid: np.ndarray, type: pa.DataType) -> pa.Array:
    return pa.array(values, type, mask=~valid) if not valid.all() else pa.array(values, type)


class TextStage(Stage):
    """A stage over one text column: checks its type, records the character tables it reads."""

    def __init__(self, text: TextColumn = "text", name: StageName = None):
        super().__init__(name)
        self.text = text

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        if column == self.text and not is_text(type):
            return f"is {type}; needs a string column"
        return None

    def depends_on(self) -> dict[str, Any]:
        return {"chars": TABLE_VERSION, "tokenizer": TOKENIZER_VERSION}


class RuleStage(TextStage):
    """A rule stage that counts the tokens of a `words` stage (so a document is tokenised once per run)."""

    def __init__(self, text: TextColumn = "text", words: WordsStage = "words", name: StageName = None):
        super().__init__(text, name)
        self.words = words

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.text, f"{self.words}.spans")

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        if column == f"{self.words}.spans" and type != SPANS:
            return f"is {type}; needs the {SPANS} token bounds of a `words` stage"
        return super().check_input(column, type)

    def buffers(self, batch: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(bytes, offsets, valid, token bounds, token offsets) of a batch; rows without tokens count as null."""
        data, offsets, valid = text_buffers(batch.column(self.text))
        spans_col = batch.column(f"{self.words}.spans")
        spans, ptr = span_buffers(spans_col)
        valid &= np.asarray(pc.is_valid(spans_col).to_numpy(zero_copy_only=False), np.bool_)
        return data, offsets, valid, spans, ptr
