"""The `decontaminate` policy: drop a row with at least `min_ngrams` benchmark n-grams (default 1: any overlap, as
GPT-3 and datatrove do); the reason names the count and the benchmark item overlapped most:
`decontaminate: 20 n-grams, 18 of squad item 56be4db0`."""
from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.methods.hints import PolicyName
from curate.policy import Policy, Rows, scatter


class DecontaminatePolicy(Policy):
    """Drops rows with `min_ngrams` or more benchmark n-grams (or whole short items) in them."""

    type = "decontaminate"

    def __init__(self, column: Annotated[str, Field(description="the stage's `ngrams` column (names the stage)")]
                 = "decontaminate.ngrams",
                 min_ngrams: Annotated[int, Field(ge=1, description="drop a row with this many overlapping n-grams "
                                                                   "or more (1: any overlap)")] = 1,
                 name: PolicyName = None):
        super().__init__(column, name)
        self.min_ngrams = min_ngrams

    @property
    def columns(self) -> list[str]:
        return [self.column, *(f"{self.stage}.{c}" for c in ("benchmark", "item", "item_ngrams"))]

    def decide_rows(self, rows: Rows) -> tuple[np.ndarray, pa.Array, dict[str, np.ndarray]]:
        drop = np.asarray(rows.values) >= self.min_ngrams
        gone = np.flatnonzero(drop)
        col = {c: rows.cols[f"{self.stage}.{c}"] for c in ("benchmark", "item", "item_ngrams")}
        reasons = [f"{self.name}: {int(rows.values[i])} n-grams, {int(col['item_ngrams'][i])} of "
                   f"{col['benchmark'][i]} item {col['item'][i]}" for i in gone]
        return ~drop, scatter(pa.array(reasons, pa.string()), gone, len(drop)), {}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "rule": f"n-grams >= {self.min_ngrams}"}
