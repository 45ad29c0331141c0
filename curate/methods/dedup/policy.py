"""The `dedup` policy: keep one row per duplicate group, drop the others naming the row kept."""
from __future__ import annotations

from typing import Annotated

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.methods.hints import PolicyName
from curate.policy import Policy, Rows, scatter


class Dedup(Policy):
    """Drop every row a dedup stage found to duplicate the row kept in its group (`dup_of`)."""

    type = "dedup"

    def __init__(self, column: Annotated[str, Field(description="the dedup stage's `component` column, like "
                                                                "'minhash_dedup.component' (set on every scored "
                                                                "row, a row without duplicates in a group of its "
                                                                "own: `size` > 1 marks a group)")] = "minhash_dedup.component",
                 name: PolicyName = None):
        super().__init__(column, name)

    @property
    def columns(self) -> list[str]:
        return [self.column, f"{self.stage}.dup_of", f"{self.stage}.match"]

    def decide_rows(self, rows: Rows) -> tuple[np.ndarray, pa.Array, dict[str, np.ndarray]]:
        dup_of = rows.cols[self.columns[1]]
        keep = np.array([d is None for d in dup_of], bool)
        gone = np.flatnonzero(~keep)
        if not len(gone):
            return keep, pa.nulls(len(keep), pa.string()), {}
        text = pc.binary_join_element_wise(pa.array(rows.cols[self.columns[2]][gone], pa.string()), " duplicate of ",
                                           pa.array(dup_of[gone], pa.string()), "")
        return keep, scatter(text, gone, len(keep)), {}
