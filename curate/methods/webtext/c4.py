"""`c4`: C4's line filter and document flags (Raffel et al. 2020, section 2.2). The stage writes the cleaned
text (the kept lines), which replaces the text column in `curate export --materialize`, and counts the
removed lines by reason; the `c4` policy drops documents with "lorem ipsum", a curly bracket or too few
sentences."""
from __future__ import annotations

from typing import Annotated

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.methods.hints import StageName
from curate.methods.webtext.chars import tables
from curate.methods.webtext.text import TextColumn, TextStage, masked, null_errors, text_buffers
from kernels import c4lines
from kernels.c4lines import c4_lines

POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_PHRASES = ("lorem ipsum", "javascript", *POLICY_PHRASES)
_COUNTS = {"lines_removed_long_word": c4lines.LONG_WORD, "lines_removed_no_punct": c4lines.NO_PUNCT,
           "lines_removed_few_words": c4lines.FEW_WORDS, "lines_removed_javascript": c4lines.JAVASCRIPT,
           "lines_removed_policy": c4lines.POLICY}


class C4(TextStage):
    """C4's rules: lines without terminal punctuation, with fewer than 3 words, a word over 1,000 characters,
    "javascript" or a cookie / terms-of-use phrase are removed (citation marks first); `text` holds the kept
    lines; `sentences`, `lorem_ipsum` and `curly_bracket` are for the `c4` policy."""

    type = "c4"
    version = "1"
    data_outputs = frozenset({"text"})  # the cleaned text: in scores/ and in exports, not in the manifest

    def __init__(self, text: TextColumn = "text",
                 remove_citations: Annotated[bool, Field(description="remove [12], [edit], [citation needed] "
                                                                     "from lines first")] = True,
                 filter_no_terminal_punct: Annotated[bool, Field(description="remove lines that do not end in "
                                                                             ". ? ! \" ' (or end in ...)")] = True,
                 min_words_per_line: Annotated[int, Field(description="remove lines with fewer white-space "
                                                                      "words (-1: off)")] = 3,
                 max_word_length: Annotated[int, Field(description="remove lines with a longer word, in "
                                                                   "characters (-1: off)")] = 1000,
                 filter_javascript: Annotated[bool, Field(description="remove lines mentioning "
                                                                      "javascript")] = True,
                 filter_policy: Annotated[bool, Field(description="remove lines with a cookie or "
                                                                  "terms-of-use phrase")] = True,
                 name: StageName = None):
        super().__init__(text, name)
        self.remove_citations, self.filter_no_terminal_punct = remove_citations, filter_no_terminal_punct
        self.min_words_per_line, self.max_word_length = min_words_per_line, max_word_length
        self.filter_javascript, self.filter_policy = filter_javascript, filter_policy

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.text,)

    @property
    def replaces(self) -> dict[str, str]:
        return {"text": self.text}

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        i = pa.int64()
        return {"text": pa.large_string(), "sentences": i, "lorem_ipsum": pa.bool_(), "curly_bracket": pa.bool_(),
                "lines": i, "lines_removed": i, **dict.fromkeys(_COUNTS, i), "error": pa.string()}

    def score(self, batch: pa.Table) -> pa.Table:
        data, offsets, valid = text_buffers(batch.column(self.text))
        phrases = [p.encode() for p in _PHRASES]
        flags, fold = tables()
        cleaned, off, st = c4_lines(
            data, offsets, valid, flags, fold, np.frombuffer(b"".join(phrases), np.uint8),
            np.cumsum([0] + [len(p) for p in phrases]).astype(np.int64), np.frombuffer(b"edit]", np.uint8),
            np.frombuffer(b"citation needed]", np.uint8), self.remove_citations, self.filter_no_terminal_punct,
            self.min_words_per_line, self.max_word_length, self.filter_javascript, self.filter_policy)
        text = pa.LargeStringArray.from_buffers(len(off) - 1, pa.py_buffer(off), pa.py_buffer(cleaned),
                                                pa.py_buffer(np.packbits(valid, bitorder="little")),
                                                int((~valid).sum()))
        cols = {"sentences": st[:, c4lines.SENTENCES], "lorem_ipsum": st[:, c4lines.LOREM] > 0,
                "curly_bracket": st[:, c4lines.CURLY] > 0, "lines": st[:, c4lines.LINES],
                "lines_removed": st[:, c4lines.LINES] - st[:, c4lines.KEPT],
                **{k: st[:, j] for k, j in _COUNTS.items()}}
        types = self.outputs
        return pa.table({"text": text, **{k: masked(v, valid, types[k]) for k, v in cols.items()},
                         "error": null_errors(valid, self.text)})
