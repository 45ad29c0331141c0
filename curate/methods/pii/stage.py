"""`pii`: e-mail addresses, IP addresses (v4 and v6), phone numbers, card numbers (Luhn), IBANs (mod 97) and
secrets (private keys, AWS access keys, tokens with a known prefix), counted per row by kind; `text` is the row
with each find replaced by `<EMAIL>`, `<IP>`, `<PHONE>`, `<CARD>`, `<IBAN>` or `<SECRET>`, and replaces the text
column in `curate export --materialize`. What it finds and misses: docs/methods/pii.md."""
from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.methods.hints import StageName
from curate.methods.pii.patterns import NAMES
from curate.methods.pii.presentation import PIIPresenter
from curate.methods.pii.redact import redact
from curate.stage import Stage

PATTERNS_VERSION = "pii-patterns/1"  # patterns.py and checks.py: bump when what is found changes

KindName = Literal["email", "ip", "phone", "card", "iban", "secret"]


class PII(Stage):
    """Finds e-mails, IPs, phones, cards, IBANs, secrets: counts per kind and in all (`finds`), redacted `text`.

    A null text is a per-row error. What it finds and misses: docs/methods/pii.md."""

    type = "pii"
    version = "1"
    data_outputs = frozenset({"text"})  # the redacted text: in scores/ and in exports, not in the manifest
    presenter = PIIPresenter()

    def __init__(self, text: Annotated[str, Field(description="the text column")] = "text",
                 kinds: Annotated[list[KindName], Field(min_length=1, description="the kinds to find and "
                                                                                  "redact")] = list(NAMES),  # noqa: B006
                 name: StageName = None):
        super().__init__(name)
        self.text = text
        self.kinds = [k for k in NAMES if k in kinds]  # detection order is fixed (patterns.KINDS)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.text,)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        return {"text": pa.large_string(), **dict.fromkeys(self.kinds, pa.int64()), "finds": pa.int64(),
                "error": pa.string()}

    @property
    def replaces(self) -> dict[str, str]:
        return {"text": self.text}

    def depends_on(self) -> dict[str, Any]:
        return {"patterns": PATTERNS_VERSION, "arrow": pa.__version__}  # RE2 comes with Arrow

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        if column == self.text and not (pa.types.is_string(type) or pa.types.is_large_string(type)):
            return f"is {type}; needs a string column"
        return None

    def score(self, batch: pa.Table) -> pa.Table:
        column = batch.column(self.text)
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        text, counts = redact(column, tuple(self.kinds))
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        mask = None if valid.all() else ~valid
        cols = {k: pa.array(v, pa.int64(), mask=mask) for k, v in counts.items()}
        finds = pa.array(np.sum(list(counts.values()), axis=0), pa.int64(), mask=mask)
        error = pa.array(np.where(valid, None, f"null_text: column {self.text!r} is null"), pa.string())
        return pa.table({"text": text, **cols, "finds": finds, "error": error})
