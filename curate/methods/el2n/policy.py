"""The `el2n_keep` policy: keep the hardest, the easiest, or an offset window of rows by a difficulty score.

Rows are ordered by (score, tie_key) - descending for `hard` and `offset`, ascending for `easy` - and a
window of ranks [s, s + m) is kept: s = round(offset * N), m = round(fraction * N) over the N valid rows
(s = 0 unless `direction: offset`, the paper's "drop the top q% as likely label noise, keep the next
fraction"). With `per_class: true` the same rule runs inside each label, with s_c and m_c rounded by
largest remainder so that they sum to s and m. Both ends of the window are exact cuts found by the radix
select of curate/policy.py, so counts are exact and independent of sharding. Non-finite scores are never
ranked (the manifest already treats them as invalid; here they are dropped if they reach the policy).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.errors import ConfigError
from curate.methods.hints import PolicyName
from curate.policy import Policy, Rows, order_keys, scatter, select_boundary, tie_keys
from kernels.allocation import integer_quotas


def _round(x: float) -> int:
    return math.floor(x + 0.5)


class El2nKeep(Policy):
    """Keep a window of the difficulty order (hard / easy / offset), globally or per class, exactly."""

    type = "el2n_keep"

    def __init__(self, column: Annotated[str, Field(description="the difficulty score column")] = "el2n.score",
                 fraction: Annotated[float, Field(ge=0, le=1, description="share of the valid rows kept")] = 0.5,
                 direction: Annotated[Literal["hard", "easy", "offset"],
                                      Field(description="keep the hardest, the easiest, or the hardest after "
                                                        "skipping the top offset")] = "hard",
                 offset: Annotated[float, Field(ge=0, le=1, description="direction offset: share of the hardest "
                                                                       "rows skipped as likely label "
                                                                       "noise")] = 0.0,
                 per_class: Annotated[bool, Field(description="apply the rule inside each label")] = False,
                 label_column: Annotated[str | None, Field(description="the label column (default: "
                                                                       "<stage>.label)")] = None,
                 seed: Annotated[int, Field(description="tie-break seed")] = 0, name: PolicyName = None):
        super().__init__(column, name)
        if direction != "offset" and offset:
            raise ConfigError(f"policy el2n_keep: offset applies to direction: offset only (got direction {direction!r})")
        if fraction + offset > 1 + 1e-12:
            raise ConfigError(f"policy el2n_keep: offset + fraction must be <= 1, got {offset} + {fraction}")
        self.fraction, self.direction, self.offset = float(fraction), direction, float(offset)
        self.per_class, self.label_column, self.seed = per_class, label_column, seed
        self._label_column = label_column or f"{self.stage}.label"
        self._classes = np.zeros(0)
        self._lo: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._hi: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.facts: dict[str, Any] = {}

    @property
    def columns(self) -> list[str]:
        return [self.column, self._label_column]

    @property
    def largest(self) -> bool:
        return self.direction != "easy"

    def _keys(self, rows: Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(finite mask, order keys, tie keys, class index) of one shard's rows."""
        finite = np.isfinite(rows.values)
        keys = order_keys(np.where(finite, rows.values, 0.0), self.largest)
        label = rows.cols[self._label_column]
        idx = np.searchsorted(self._classes, label) if self.per_class else np.zeros(len(label), np.int64)
        return finite, keys, tie_keys(rows.id_hash, self.seed), idx

    def fit(self, scan) -> None:
        classes: set[float] = set()
        for r in scan.rows():
            classes |= set(np.unique(r.cols[self._label_column][np.isfinite(r.values)]).tolist())
        self._classes = np.array(sorted(classes), np.float64)
        n_class = np.zeros(len(self._classes), np.int64)
        for r in scan.rows():
            label = r.cols[self._label_column][np.isfinite(r.values)]
            n_class += np.bincount(np.searchsorted(self._classes, label), minlength=len(self._classes))
        n = int(n_class.sum())
        n_group = n_class if self.per_class else np.array([n])
        skip, keep = _round(self.offset * n), _round(self.fraction * n)
        keep = min(keep, n - skip)
        if self.per_class:
            s_c = integer_quotas(self.offset * n_group, n_group, skip)
            m_c = integer_quotas(np.minimum(self.fraction * n_group, n_group - s_c), n_group - s_c, keep)
        else:
            s_c, m_c = np.array([skip]), np.array([keep])
        self._lo = self._bounds(scan, s_c)
        self._hi = self._bounds(scan, s_c + m_c)
        kept = np.zeros(len(self._classes), np.int64)
        for r in scan.rows():  # the kept class histogram (and a check of the exact count)
            k = self._window(r)
            idx = np.searchsorted(self._classes, r.cols[self._label_column][k])
            kept += np.bincount(idx, minlength=len(self._classes))
        if int(kept.sum()) != int(m_c.sum()):
            raise RuntimeError(f"policy el2n_keep: kept {kept.sum()} rows, expected {m_c.sum()}; please report it")
        labels = [str(int(c)) if float(c).is_integer() else str(c) for c in self._classes]
        self.facts = {"valid_rows": n, "skipped_top": int(s_c.sum()), "kept_target": int(m_c.sum()),
                      "rows_per_class": dict(zip(labels, n_class.tolist())),
                      "kept_per_class": dict(zip(labels, kept.tolist()))}

    def _bounds(self, scan, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per group: whether any row is inside, and the (key, tie) of the k-th row in order."""
        has = k > 0
        bk, bt = np.zeros(len(k), np.uint64), np.zeros(len(k), np.uint64)
        for g in np.flatnonzero(has):
            def keyed(g: int = g) -> Iterator[tuple[np.ndarray, np.ndarray]]:
                for r in scan.rows():
                    finite, keys, ties, idx = self._keys(r)
                    sel = finite & (idx == g)
                    yield keys[sel], ties[sel]
            key, tie = select_boundary(keyed, int(k[g]))
            bk[g], bt[g] = np.uint64(key), np.uint64(tie)
        return has, bk, bt

    @staticmethod
    def _at_or_before(bounds, keys, ties, g) -> np.ndarray:
        has, bk, bt = bounds
        return has[g] & ((keys < bk[g]) | ((keys == bk[g]) & (ties <= bt[g])))

    def _window(self, rows: Rows) -> np.ndarray:
        finite, keys, ties, g = self._keys(rows)
        g = np.where(finite, np.minimum(g, max(len(self._lo[0]) - 1, 0)), 0)
        if not len(self._lo[0]):
            return np.zeros(len(keys), bool)
        return finite & self._at_or_before(self._hi, keys, ties, g) & ~self._at_or_before(self._lo, keys, ties, g)

    def decide_rows(self, rows: Rows) -> tuple[np.ndarray, pa.Array, dict[str, np.ndarray]]:
        if self._lo is None:
            raise RuntimeError("policy el2n_keep: decide before fit")
        keep = self._window(rows)
        gone = np.flatnonzero(~keep)
        if not len(gone):
            return keep, pa.nulls(len(keep), pa.string()), {}
        finite, keys, ties, g = self._keys(rows)
        g = np.where(finite, np.minimum(g, max(len(self._lo[0]) - 1, 0)), 0)
        top = finite[gone] & self._at_or_before(self._lo, keys[gone], ties[gone], g[gone])
        scope = " within its class" if self.per_class else ""
        shown = pc.cast(pa.array(np.round(rows.values[gone], 6)), pa.string())
        where = "below" if self.largest else "above"
        text = pc.if_else(pa.array(top),
                          pc.binary_join_element_wise(f"{self.column} ", shown,
                                                      f" in the top {self.offset:g}{scope}, skipped as likely label noise", ""),
                          pc.binary_join_element_wise(f"{self.column} ", shown,
                                                      f" {where} the kept {self.direction} window of fraction "
                                                      f"{self.fraction:g}{scope}", ""))
        text = pc.if_else(pa.array(finite[gone]), text, f"{self.column} is not finite (never ranked)")
        return keep, scatter(text, gone, len(keep)), {}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self.facts}
