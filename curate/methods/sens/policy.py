"""The `sample` policy: m weighted draws with replacement in proportion to sensitivity."""
from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.errors import ConfigError
from curate.methods.hints import PolicyName
from curate.policy import Policy, Rows, scatter


def mixing(l_c: float, phi: float, alpha: float | None, lam: float | None) -> tuple[float, float]:
    """(Lambda, alpha) from either one: alpha = Lambda Phi / (L_c + Lambda Phi)."""
    if phi <= 0:  # every row on its centre: the distance term vanishes
        return 0.0, 0.0
    if lam is None:
        lam = alpha * l_c / ((1.0 - alpha) * phi)
    return lam, lam * phi / (l_c + lam * phi)


def shard_counts(masses: dict[str, float], m: int, seed: int) -> dict[str, int]:
    """m draws split over shards ~ Multinomial(m, P_b / sum P), shards in content-fingerprint order."""
    names = sorted(masses)
    p = np.array([masses[k] for k in names], np.float64)
    counts = np.random.default_rng([seed, 0x5E45]).multinomial(m, p / p.sum()) if len(p) else []
    return dict(zip(names, map(int, counts)))


def row_counts(p: np.ndarray, m_b: int, seed: int, fingerprint: str) -> np.ndarray:
    """A shard's m_b draws over its rows ~ Multinomial(m_b, p / sum p), keyed on (seed, shard content)."""
    if m_b == 0 or not len(p):
        return np.zeros(len(p), np.int64)
    words = [int(fingerprint[i:i + 8], 16) for i in range(0, len(fingerprint), 8)]
    return np.random.default_rng([seed, *words]).multinomial(m_b, p / p.sum())


class Sample(Policy):
    """Draw m rows with replacement with probability proportional to sensitivity; weight = count / (m p)."""

    type = "sample"

    def __init__(self, column: Annotated[str, Field(description="the stage's dist_z column")] = "sens.dist_z", *,
                 m: Annotated[int, Field(ge=1, description="the number of draws (with replacement)")],
                 alpha: Annotated[float | None, Field(ge=0, lt=1, description="the share of the sampling mass from "
                                                                              "the distance term (default 0.5 "
                                                                              "unless lambda_ is given)")] = None,
                 lambda_: Annotated[float | None, Field(ge=0, description="the distance weight Lambda "
                                                                          "(instead of alpha)")] = None,
                 seed: Annotated[int, Field(description="seed of the draws")] = 0, name: PolicyName = None):
        super().__init__(column, name)
        if alpha is not None and lambda_ is not None:
            raise ConfigError("policy sample: give alpha or lambda_, not both")
        self.m, self.alpha, self.lambda_, self.seed = m, alpha, lambda_, seed
        self._alpha = 0.5 if alpha is None and lambda_ is None else alpha
        self.facts: dict[str, Any] = {}

    @property
    def columns(self) -> list[str]:
        return [self.column, f"{self.stage}.center_loss"]

    def outputs(self) -> dict[str, pa.DataType]:
        return {"p": pa.float64(), "count": pa.int32(), "weight": pa.float64()}

    def fit(self, scan) -> None:
        l_parts, d_parts, n = [], [], 0
        for r in scan.rows():
            l_parts.append(float(np.sum(r.cols[self.columns[1]])))   # numpy sums pairwise; fsum across shards
            d_parts.append(float(np.sum(r.values)))
            n += len(r.values)
        if self.m > 1000 * max(n, 1):
            raise ConfigError(f"policy sample: m={self.m} is more than 1000 x the {n} valid rows")
        l_c, phi = math.fsum(l_parts), math.fsum(d_parts)
        self._lam, alpha = mixing(l_c, phi, self._alpha, self.lambda_)
        self._s = l_c + self._lam * phi
        masses = {r.shard: math.fsum([float(np.sum(self._p(r)))]) for r in scan.rows()}
        self._counts = shard_counts(masses, self.m, self.seed)
        self.facts = {"L_c": l_c, "Phi": phi, "Lambda": self._lam, "alpha_effective": alpha, "S": self._s,
                      "valid_rows": n, "distinct_drawn": 0, "sum_w": 0.0, "sum_w2": 0.0}

    def _p(self, rows: Rows) -> np.ndarray:
        return (rows.cols[self.columns[1]] + self._lam * rows.values) / self._s

    def decide_rows(self, rows: Rows) -> tuple[np.ndarray, pa.Array, dict[str, np.ndarray]]:
        p = self._p(rows)
        count = row_counts(p, self._counts.get(rows.shard, 0), self.seed, rows.shard)
        weight = np.where(count > 0, count / (self.m * np.where(p > 0, p, 1.0)), 0.0)
        keep = count > 0
        self.facts["distinct_drawn"] += int(keep.sum())
        self.facts["sum_w"] += float(weight.sum())
        self.facts["sum_w2"] += float((weight ** 2).sum())
        gone = np.flatnonzero(~keep)
        text = pc.binary_join_element_wise("not drawn in ", str(self.m), " draws (p = ",
                                           pc.cast(pa.array(p[gone]), pa.string()), ")", "")
        return keep, scatter(text, gone, len(keep)), {"p": p, "count": count.astype(np.int32), "weight": weight}

    def describe(self) -> dict[str, Any]:
        f = dict(self.facts)
        if f.get("sum_w2"):
            f["effective_sample_size"] = f["sum_w"] ** 2 / f["sum_w2"]
        return {**super().describe(), **f}
