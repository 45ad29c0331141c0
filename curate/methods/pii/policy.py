"""The `pii` policy: drop a row with more finds of a kind, or in all, than allowed; the reason names every
bound the row breaks, with its count: `pii: secret 1 > 0; email 4 > 3`. Rows it keeps are exported with the
stage's redacted text in place of the original (`curate export --materialize`), so a policy that drops
nothing (`max_counts: {}`) keeps every row and redacts them all."""
from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.methods.hints import PolicyName
from curate.methods.pii.stage import KindName
from curate.policy import Policy, Rows, scatter


class PIIPolicy(Policy):
    """Drops rows over `max_counts[kind]` finds of a kind or over `max_total` finds in all (default: any secret)."""

    type = "pii"

    def __init__(self, column: Annotated[str, Field(description="the stage's `finds` column (names the stage)")]
                 = "pii.finds",
                 max_counts: Annotated[dict[KindName, Annotated[int, Field(ge=0)]], Field(description="kind -> the most finds a kept row "
                                                                              "may have")] = {"secret": 0},  # noqa: B006
                 max_total: Annotated[int | None, Field(ge=0, description="the most finds of all kinds a kept row "
                                                                          "may have (None: no bound)")] = None,
                 name: PolicyName = None):
        super().__init__(column, name)
        self.max_counts, self.max_total = dict(max_counts), max_total

    def _bounds(self) -> list[tuple[str, str, int]]:
        """(column, label, bound) of each rule, in the order reasons name them."""
        bounds = [(f"{self.stage}.{k}", k, v) for k, v in self.max_counts.items()]
        return bounds + ([(self.column, "total", self.max_total)] if self.max_total is not None else [])

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys([self.column, *(c for c, _, _ in self._bounds())]))

    def decide_rows(self, rows: Rows) -> tuple[np.ndarray, pa.Array, dict[str, np.ndarray]]:
        n = len(rows.values)
        over = {label: np.asarray(rows.cols[c]) > bound for c, label, bound in self._bounds()}
        drop = np.logical_or.reduce(list(over.values())) if over else np.zeros(n, bool)
        gone = np.flatnonzero(drop)
        if not len(gone):
            return np.ones(n, bool), pa.nulls(n, pa.string()), {}
        parts = []
        for c, label, bound in self._bounds():
            counts = np.asarray(rows.cols[c])[gone].astype(np.int64)
            text = pc.binary_join_element_wise(f"{label} ", pc.cast(pa.array(counts), pa.string()), f" > {bound}", "")
            parts.append(pc.if_else(pa.array(over[label][gone]), text, pa.scalar(None, pa.string())))
        reason = pc.binary_join_element_wise(*parts, "; ", null_handling="skip")
        reason = pc.binary_join_element_wise(f"{self.name}: ", reason, "")
        return ~drop, scatter(reason, gone, n), {}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "rules": [f"{label} > {bound}" for _, label, bound in self._bounds()]}
