"""`words`: the word tokens every web-text rule counts, computed once per row and stored for the rule stages."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.methods.hints import StageName
from curate.methods.webtext.text import SPANS, TextColumn, TextStage, null_errors, word_spans


class Words(TextStage):
    """Word tokens of a text column (kernels/textwords.py: punctuation split off words, runs of '.' as one
    token), stored as byte bounds for the `gopher_quality`, `gopher_repetition` and `fineweb` stages."""

    type = "words"
    version = "1"
    data_outputs = frozenset({"spans"})  # read by the rule stages, left out of the manifest

    def __init__(self, text: TextColumn = "text", name: StageName = None):
        super().__init__(text, name)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.text,)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        return {"spans": SPANS, "tokens": pa.int64(), "error": pa.string()}

    def score(self, batch: pa.Table) -> pa.Table:
        spans = word_spans(batch.column(self.text))
        valid = np.asarray(pc.is_valid(spans).to_numpy(zero_copy_only=False), np.bool_)
        return pa.table({"spans": spans, "tokens": pc.divide(pc.list_value_length(spans), 2).cast(pa.int64()),
                         "error": null_errors(valid, self.text)})
