"""How likely an R row is a new entity (no match in L), from its nearest distance (docs/autofj.md).

The reference estimate 1 / (1 + |L rows within 2θ of l*|) assumes every r has its match in L. A row
without one is a wrong join whatever l* is. We treat "r is a new entity" like a null hypothesis in
multiple testing:

- null distribution: L is duplicate-free, so each L row, with itself left out, is a new entity for the
  rest of L; its nearest other L row (under the same join function, blocking and column weights) is a
  draw of the nearest distance of a new entity. G = the CDF of those leave-one-out distances.
- share of new entities π0 (Storey's estimator): a new entity's p-value G(d*(r)) is uniform, a matched
  row's is small, so π0 ≈ |{r : G(d*(r)) > λ}| / ((1 - λ) |R|).
- local false-match rate per distance bin (the search's threshold grid): expected new entities
  π0·|R|·ΔG over the observed rows in the bin, made non-decreasing in distance (pool adjacent
  violators, weighted by rows) and capped at 1.

A row's estimate becomes (1 - lfdr(d*)) / (1 + neighbours): summed over joined rows, the expected
number of correct joins also counts the new entities that the union joins.

π0 and the lfdr tables are themselves estimates from R's and the null's rows; `Inputs.bootstrap` redraws both
(rows with replacement), refits the share and the selected functions' tables and gives the models of each
draw, from which the fit takes the standard error of P̂ that they add (program.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

LAMBDA = 0.5  # Storey's λ: p-values above it are (almost) all new entities
NULL_SAMPLE = 4000  # L rows whose leave-one-out nearest distance makes the null distribution


def null_sample(n_left: int, size: int = NULL_SAMPLE) -> np.ndarray:
    """The L rows (sorted) whose leave-one-out nearest distances are the null sample: evenly spaced."""
    if n_left <= size:
        return np.arange(n_left)
    return np.unique(np.linspace(0, n_left - 1, size).round().astype(np.int64))


def pava(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit of y (pool adjacent violators)."""
    vals, wts, sizes = [], [], []
    for yi, wi in zip(y.tolist(), w.tolist()):
        vals.append(yi)
        wts.append(wi)
        sizes.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            wsum = wts[-2] + wts[-1]
            v = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / wsum if wsum > 0 else max(vals[-2], vals[-1])
            vals[-2:], wts[-2:], sizes[-2:] = [v], [wsum], [sizes[-2] + sizes[-1]]
    return np.repeat(np.array(vals, np.float64), sizes)


MIN_NULL_TAIL = 0.25  # a function whose null has less mass above its λ-quantile (ties) says little about π0


def storey_share(d_right: np.ndarray, nulls: np.ndarray, lam: float = LAMBDA) -> float | None:
    """π0 = S_R(t) / S_G(t) at t = the null's λ-quantile, S = share of distances above t (no candidate:
    above every t). Counting survivals rather than p-values keeps it right when distances tie (the
    contain-* distances put much of their mass exactly at 0 or 1); None when too few nulls lie above t.
    NaN distances (rows whose every candidate pair is blank in the columns used) are left out."""
    nulls = np.sort(nulls)
    d_right = d_right[~np.isnan(d_right)]
    if len(nulls) == 0 or len(d_right) == 0:
        return None
    t = nulls[min(int(lam * len(nulls)), len(nulls) - 1)]
    s_null = float((nulls > t).mean())
    if s_null < MIN_NULL_TAIL:
        return None
    return float(min(1.0, (d_right > t).mean() / s_null))


def pooled_share(per_function: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """One π0 for R (it does not depend on the join function): the median of the functions' estimates.

    Each function's estimate is noisy in its own way (a function that cannot tell two L rows apart
    makes every r look new); the median ignores the odd ones out."""
    shares = [s for s in (storey_share(d, n) for d, n in per_function) if s is not None]
    return float(np.median(shares)) if shares else 0.0


@dataclass
class NewEntityModel:
    """For one join function: the new-entity share and lfdr per distance bin (bin i = (edges[i-1], edges[i]])."""

    edges: np.ndarray
    lfdr: np.ndarray
    share: float  # π0
    null_rows: int  # size of the null sample with a finite distance

    @classmethod
    def fit(cls, d_right: np.ndarray, d_null: np.ndarray, edges: np.ndarray, share: float) -> NewEntityModel:
        """From R's nearest distances (inf: no candidate; NaN: unknown, left out), the null sample's, the
        sorted threshold grid and π0."""
        edges = np.asarray(edges, np.float64)
        d_right = d_right[~np.isnan(d_right)]
        n = len(d_right)
        nulls = np.sort(d_null)  # inf (no L-L candidate) sorts last and never falls under a threshold
        if n == 0 or len(nulls) == 0:
            return cls(edges, np.zeros(len(edges)), 0.0, 0)
        g = np.searchsorted(nulls, edges, side="right") / len(nulls)
        observed = np.diff(np.searchsorted(np.sort(d_right), edges, side="right"), prepend=0).astype(np.float64)
        expected = share * n * np.diff(g, prepend=0.0)
        seen = np.flatnonzero(observed > 0)
        if len(seen) == 0:
            return cls(edges, np.zeros(len(edges)), share, int(np.isfinite(nulls).sum()))
        fitted = np.clip(pava(expected[seen] / observed[seen], observed[seen]), 0.0, 1.0)
        # A bin no search row fell in takes the value of the last bin before it that had rows.
        lfdr = fitted[np.maximum(np.searchsorted(seen, np.arange(len(edges)), side="right") - 1, 0)]
        return cls(edges, lfdr, share, int(np.isfinite(nulls).sum()))

    def keep(self, d: np.ndarray) -> np.ndarray:
        """1 - lfdr at each distance: the probability that a row this close has its match in L."""
        i = np.minimum(np.searchsorted(self.edges, d, side="left"), len(self.edges) - 1)
        return 1.0 - self.lfdr[i] if len(self.edges) else np.ones(len(d))

    def as_dict(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "lfdr": self.lfdr.tolist(), "share": self.share,
                "null_rows": self.null_rows}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NewEntityModel:
        return cls(np.array(d["edges"], np.float64), np.array(d["lfdr"], np.float64), float(d["share"]),
                   int(d["null_rows"]))


BOOTSTRAP = 200  # draws for the standard error the new-entity model adds to P̂
BOOTSTRAP_SEED = 0  # fixed: a fit is reproducible


@dataclass
class Inputs:
    """What the models were fitted from: per function R's nearest distances (NaN: unknown) and the null
    sample's; per modelled function its bin edges; per function R's second-nearest distances (the
    new-share model's null, section 4 of docs/autofj.md; None when not kept). Row i of every function's
    array is the same R row (the same null row), so a draw takes the same rows under every function, as the
    pooled share needs."""

    seen: dict[str, np.ndarray]
    nulls: dict[str, np.ndarray]
    edges: dict[str, np.ndarray]
    second: dict[str, np.ndarray] | None = None

    def draws(self, draws: int = BOOTSTRAP, seed: int = BOOTSTRAP_SEED):
        """`draws` pairs (R rows, null rows), each drawn with replacement (fixed seed: reproducible)."""
        rng = np.random.default_rng(seed)
        any_f = next(iter(self.seen))
        n_r, n_null = len(self.seen[any_f]), len(self.nulls[any_f])
        for _ in range(draws):
            yield rng.integers(0, n_r, n_r), rng.integers(0, n_null, n_null)

    def refit(self, functions: list[str], i: np.ndarray, j: np.ndarray) -> dict[str, NewEntityModel]:
        """π0 (pooled over every function, as in the fit) and the models of `functions` on R rows i and
        null rows j."""
        share = pooled_share([(self.seen[f][i], self.nulls[f][j]) for f in self.seen])
        return {f: NewEntityModel.fit(self.seen[f][i], self.nulls[f][j], self.edges[f], share) for f in functions}

    def refit_new_share(self, functions: list[str], i: np.ndarray) -> dict[str, NewEntityModel]:
        """The new-share model on R rows i: share = new_share (Storey against R's second-nearest
        distances) and each function's lfdr table against that same null, the null's rows being R's own."""
        assert self.second is not None
        per_f = {f: (self.seen[f][i], self.second[f][i][~np.isnan(self.seen[f][i])]) for f in self.seen}
        share = pooled_share(list(per_f.values()))
        return {f: NewEntityModel.fit(*per_f[f], self.edges[f], share) for f in functions}

    def draw_shares(self, draws: int = BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> list[float]:
        """π0 (pooled, against the L-L null) on each of `draws()`'s draws, as `refit` computes it; kept
        after the first call (the union model's spread asks for it more than once per fit)."""
        key = (draws, seed)
        cache = self.__dict__.setdefault("_draw_shares", {})
        if key not in cache:
            cache[key] = [pooled_share([(self.seen[f][i], self.nulls[f][j]) for f in self.seen])
                          for i, j in self.draws(draws, seed)]
        return cache[key]

    def bootstrap(self, functions: list[str], draws: int = BOOTSTRAP, seed: int = BOOTSTRAP_SEED
                  ) -> list[dict[str, NewEntityModel]]:
        """`draws` refits of π0 and of the models of `functions`, each on R's rows and the null's rows
        drawn with replacement."""
        return [self.refit(functions, i, j) for i, j in self.draws(draws, seed)]
