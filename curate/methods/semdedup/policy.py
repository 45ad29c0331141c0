"""The `semdedup` policy: remove a row whose cosine to an earlier row of its cluster exceeds 1 - epsilon."""
from __future__ import annotations

import logging
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.methods.hints import PolicyName
from curate.methods.semdedup.presentation import PRESENTER
from curate.policy import Policy, Rows, scatter

log = logging.getLogger(__name__)

DEFAULT_SWEEP = [0.01, 0.03, 0.07, 0.124, 0.26]


class SemDeDupPolicy(Policy):
    """Remove a row whose cosine to an earlier row of its cluster exceeds 1 - epsilon (SemDeDup's rule)."""

    type = "semdedup"
    presenter = PRESENTER

    def __init__(self,
                 column: Annotated[str, Field(description="the stage's max_sim_prev column")] = "semdedup.max_sim_prev",
                 epsilon: Annotated[float, Field(ge=0, le=2, description="remove a row whose cosine to an earlier "
                                                                         "row of its cluster is above 1 - "
                                                                         "epsilon")] = 0.07,
                 sweep: Annotated[list[Annotated[float, Field(ge=0, le=2)]] | None,
                                  Field(description="epsilons whose kept counts the summary reports (default: "
                                                    "0.01, 0.03, 0.07, 0.124, 0.26)")] = None,
                 name: PolicyName = None):
        super().__init__(column, name)
        if epsilon < 1e-5:
            log.warning("policy semdedup: epsilon=%g is below 1e-5; float32 rounding decides whether exact copies "
                        "are removed (an exact copy's cosine lands within 6e-7 of 1)", epsilon)
        self.epsilon = float(epsilon)
        self.sweep = None if sweep is None else list(sweep)
        self._sweep = DEFAULT_SWEEP if sweep is None else self.sweep
        self._swept: dict[str, dict[str, int]] = {}

    @property
    def columns(self) -> list[str]:
        return [self.column, f"{self.stage}.dup_of"]

    def fit(self, scan) -> None:
        eps = sorted({*self._sweep, self.epsilon})
        removed, total = np.zeros(len(eps), np.int64), 0
        for v, _ in scan():
            removed += [(v > 1 - e).sum() for e in eps]
            total += len(v)
        self._swept = {f"{e:g}": {"kept": int(total - r), "removed": int(r)} for e, r in zip(eps, removed)}

    def decide_rows(self, rows: Rows) -> tuple[np.ndarray, pa.Array, dict[str, np.ndarray]]:
        threshold = 1.0 - self.epsilon
        keep = ~(rows.values > threshold)
        gone = np.flatnonzero(~keep)
        if not len(gone):
            return keep, pa.nulls(len(keep), pa.string()), {}
        sims = pc.cast(pa.array(np.round(rows.values[gone], 7)), pa.string())
        text = pc.binary_join_element_wise("near-duplicate of ", pa.array(rows.cols[self.columns[1]][gone], pa.string()),
                                           " (cosine ", sims, f" > 1 - epsilon = {threshold:.7g})", "")
        return keep, scatter(text, gone, len(keep)), {}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "threshold": 1.0 - self.epsilon, "epsilon_sweep": self._swept}
