"""`fineweb`: the statistics of FineWeb's own quality rules (Penedo et al. 2024, section 3.4), one score column
each; the `fineweb` policy holds the thresholds."""
from __future__ import annotations

from typing import Annotated

import pyarrow as pa
from pydantic import Field

from curate.methods.hints import StageName
from curate.methods.webtext.chars import tables
from curate.methods.webtext.text import RuleStage, TextColumn, WordsStage, masked, null_errors, ratio
from kernels.textrules import fineweb


class FineWeb(RuleStage):
    """FineWeb's statistics over the non-blank lines: the share ending in terminal punctuation, the share of
    short lines, the characters of repeated lines (per character other than newlines), newlines per word."""

    type = "fineweb"
    version = "1"

    def __init__(self, text: TextColumn = "text", words: WordsStage = "words",
                 short_line_length: Annotated[int, Field(ge=0, description="a line of at most this many "
                                                                           "characters is short")] = 30,
                 name: StageName = None):
        super().__init__(text, words, name)
        self.short_line_length = short_line_length

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        f = pa.float64()
        return {"lines": pa.int64(), "line_punct_ratio": f, "short_line_ratio": f, "char_dup_ratio": f,
                "list_ratio": f, "error": pa.string()}

    def score(self, batch: pa.Table) -> pa.Table:
        data, offsets, valid, spans, ptr = self.buffers(batch)
        lines, punct, short, dup_chars, chars, newlines, words = fineweb(
            data, offsets, valid, ptr, tables()[0], self.short_line_length).T
        cols = {"lines": lines, "line_punct_ratio": ratio(punct, lines), "short_line_ratio": ratio(short, lines),
                "char_dup_ratio": ratio(dup_chars, chars), "list_ratio": ratio(newlines, words)}
        types = self.outputs
        out = {k: masked(v, valid, types[k]) for k, v in cols.items()}
        return pa.table({**out, "error": null_errors(valid, self.text)})
