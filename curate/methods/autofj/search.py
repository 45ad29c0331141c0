"""The configuration search (docs/methods/autofj.md steps 4-7), vectorised over configurations.

A configuration is (join function f, threshold θ). For every f, the nearest L row of each R row is
l*(f, r) (ties: lowest L index); (f, θ) proposes (r, l*) when f(l*, r) <= θ, with the estimate
p = 1 / (1 + |{l' in LLcand(l*) : f(l*, l') <= 2θ}|). The greedy union adds, one at a time, the
configuration with the best TP'/(N' - TP'); all configurations are scored at once from dense arrays
P[c, r] (estimate, 0 where c proposes nothing) and covered[f, r] (is l*(f, r) already proposed for r).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from curate.methods.autofj.new_entities import Inputs, NewEntityModel, pooled_share

log = logging.getLogger(__name__)

EPS = 1e-9


@dataclass
class Nearest:
    """l*(f, r) and its distance for every R row of the search set (-1 / inf without candidates)."""

    l: np.ndarray
    d: np.ndarray


def nearest(li: np.ndarray, ri: np.ndarray, d: np.ndarray, n_r: int) -> Nearest:
    """argmin_l d(l, r) per r, ties broken by the lowest L index."""
    best_l = np.full(n_r, -1, np.int64)
    best_d = np.full(n_r, np.inf)
    if len(d) == 0:
        return Nearest(best_l, best_d)
    if not (np.all(ri[1:] >= ri[:-1]) and np.all((ri[1:] > ri[:-1]) | (li[1:] > li[:-1]))):
        order = np.lexsort((li, ri))  # pairs come sorted by (r, l) from blocking; sort otherwise
        li, ri, d = li[order], ri[order], d[order]
    starts = np.flatnonzero(np.r_[True, ri[1:] != ri[:-1]])
    seg_min = np.minimum.reduceat(d, starts)
    seg = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(d)]))
    at_min = np.flatnonzero(d == seg_min[seg])
    first = at_min[np.r_[True, seg[at_min][1:] != seg[at_min][:-1]]]  # lowest l of each r's minima
    best_l[ri[first]] = li[first]
    best_d[ri[first]] = d[first]
    return Nearest(best_l, best_d)


def second_nearest(li: np.ndarray, ri: np.ndarray, d: np.ndarray, near: Nearest) -> np.ndarray:
    """Per R row, the distance to its nearest L candidate other than l* (inf with fewer than two): the
    nearest distance r would have if l* were not in L."""
    other = li != near.l[ri]
    return nearest(li[other], ri[other], d[other], len(near.l)).d


def loo_nearest(ll_cand: np.ndarray, ll_query: np.ndarray, d_ll: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Nearest L-L candidate distance of each L row in `rows` (itself excluded; inf without candidates)."""
    mine = np.isin(ll_query, rows)
    n_q = int(ll_query.max()) + 1 if len(ll_query) else 0
    out = np.full(len(rows), np.inf)
    if n_q:
        d = nearest(ll_cand[mine], ll_query[mine], d_ll[mine], n_q).d
        inside = rows < n_q
        out[inside] = d[rows[inside]]
    return out


def thresholds(near: Nearest, n: int) -> list[float]:
    """θ_i = d_min + (i/(n-1))(d_max - d_min) over nearest distances, in the reference's (set) order.

    The reference iterates a Python set of these floats; keeping that order keeps its tie-breaks.
    """
    found = near.d[np.isfinite(near.d)]
    if len(found) == 0:
        return []
    lo, hi = found.min(), found.max()
    return list(set((np.linspace(0, 1, n) * (hi - lo) + lo).tolist()))


def neighbour_counts(cand: np.ndarray, query: np.ndarray, d_ll: np.ndarray, ls: np.ndarray,
                     thetas: np.ndarray) -> np.ndarray:
    """counts[j, i] = |{LL candidates l' of ls[j] : d(l', ls[j]) <= 2·thetas[i]}| (thetas ascending)."""
    counts = np.zeros((len(ls), len(thetas)), np.int32)
    if len(ls) == 0 or len(d_ll) == 0:
        return counts
    pos = np.searchsorted(ls, query)
    pos_c = np.minimum(pos, len(ls) - 1)
    mine = ls[pos_c] == query
    first_ok = np.searchsorted(2.0 * thetas, d_ll[mine], side="left")  # first i with d <= 2θ_i
    within = first_ok < len(thetas)
    flat = pos_c[mine][within] * len(thetas) + first_ok[within]
    hist = np.bincount(flat, minlength=len(ls) * len(thetas)).reshape(len(ls), len(thetas))
    counts[:] = np.cumsum(hist, axis=1)
    return counts


@dataclass
class Candidates:
    """The search's inputs for one column weighting: per function, nearest L rows, thresholds, estimates."""

    functions: list[str]
    configs: list[tuple[int, float]]  # (function index, θ) in search order
    f_of: np.ndarray  # function index of each configuration
    lstar: np.ndarray  # (F, n_r)
    dstar: np.ndarray  # (F, n_r)
    P: np.ndarray  # (C, n_r) float64 estimate where proposing, else 0
    prop: np.ndarray  # (C, n_r) bool
    models: dict[str, NewEntityModel] = field(default_factory=dict)  # per function, when new entities are estimated
    new_share: float | None = None  # share of R estimated new against R's own second-nearest null (warnings)
    inputs: Inputs | None = None  # what the models were fitted from (their bootstrap: the standard error of P̂)


def build_candidates(functions: list[str], li: np.ndarray, ri: np.ndarray, d_lr: dict[str, np.ndarray],
                     ll_cand: np.ndarray, ll_query: np.ndarray, d_ll: dict[str, np.ndarray], n_r: int,
                     n_thresholds: int = 50, null_rows: np.ndarray | None = None) -> Candidates:
    """Steps 4-5 for every function (sorted by name, the reference's order) and every threshold.

    With `null_rows` (L rows whose L-L candidates are all in ll_cand/ll_query), each estimate is also
    multiplied by the probability that r is not a new entity (new_entities.py); without, it is the reference's.
    """
    functions = sorted(functions)
    nears = {f: nearest(li, ri, d_lr[f], n_r) for f in functions}
    models: dict[str, NewEntityModel] = {}
    edges: dict[str, np.ndarray] = {}
    new_share = None
    if null_rows is not None:
        seen, d_null, second, share, new_share = _null_distances(functions, li, ri, d_lr, nears, ll_cand, ll_query, d_ll,
                                                         n_r, null_rows)
    lstar = np.full((len(functions), n_r), -1, np.int64)
    dstar = np.full((len(functions), n_r), np.inf)
    configs: list[tuple[int, float]] = []
    P_rows, prop_rows = [], []
    for fi, f in enumerate(functions):
        near = nears[f]
        lstar[fi], dstar[fi] = near.l, near.d
        ths = thresholds(near, n_thresholds)
        if not ths:
            continue
        sorted_th = np.array(sorted(ths))
        has = near.l >= 0
        ls = np.unique(near.l[has])
        counts = neighbour_counts(ll_cand, ll_query, d_ll[f], ls, sorted_th)
        row_of = np.searchsorted(ls, near.l[has])
        keep = 1.0
        if null_rows is not None:
            models[f] = NewEntityModel.fit(seen[f], d_null[f], sorted_th, share)
            edges[f] = sorted_th
            keep = models[f].keep(near.d[has])
        for th in ths:
            i = int(np.searchsorted(sorted_th, th))
            p = np.zeros(n_r, np.float64)
            ok = np.zeros(n_r, bool)
            ok[has] = near.d[has] <= th
            est = keep / (1.0 + counts[row_of, i])
            p[has] = np.where(ok[has], est, 0.0)
            configs.append((fi, th))
            P_rows.append(p)
            prop_rows.append(ok)
    C = len(configs)
    P = np.stack(P_rows) if C else np.zeros((0, n_r), np.float64)
    prop = np.stack(prop_rows) if C else np.zeros((0, n_r), bool)
    f_of = np.array([c[0] for c in configs], np.int64)
    inputs = Inputs(seen, d_null, edges, second) if null_rows is not None else None
    return Candidates(functions, configs, f_of, lstar, dstar, P, prop, models, new_share, inputs)


def _null_distances(functions: list[str], li: np.ndarray, ri: np.ndarray, d_lr: dict[str, np.ndarray],
                    nears: dict[str, Nearest], ll_cand: np.ndarray, ll_query: np.ndarray,
                    d_ll: dict[str, np.ndarray], n_r: int, null_rows: np.ndarray
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray], float, float]:
    """What the new-entity models are fitted from, per function: R's nearest distances as seen (NaN:
    unknown), the null rows' leave-one-out nearest L-L distances and R's second-nearest distances; and the pooled shares of new rows,
    against the L-L null (the models') and against R's own second-nearest null (the warning's)."""
    d_null = {f: loo_nearest(ll_cand, ll_query, d_ll[f], null_rows) for f in functions}
    # A row with candidates but no finite distance is blank in every weighted column: unknown, not new.
    has_pair = np.bincount(ri, minlength=n_r) > 0
    seen = {f: np.where(has_pair & ~np.isfinite(nears[f].d), np.nan, nears[f].d) for f in functions}
    share = pooled_share([(seen[f], d_null[f]) for f in functions])
    # The share of R that is new, for the warning: L-L distances also call "new" every row whose match
    # is out of reach (R written unlike L), so the share above reads 0.55 on tasks with none. A row with
    # its match at l* has as second-nearest distance what its nearest would be without that match, a
    # null draw written the way R is; new rows' second-nearest lies beyond their nearest, so with many
    # new rows this one reads low (docs/autofj.md section 4).
    second = {f: second_nearest(li, ri, d_lr[f], nears[f]) for f in functions}
    new_share = pooled_share([(seen[f], second[f][~np.isnan(seen[f])]) for f in functions])
    return seen, d_null, second, share, new_share


@dataclass
class Solution:
    """The last recorded union: its configurations, each r's chosen l and estimate, P̂ and the reward."""

    configs: list[tuple[str, float]] = field(default_factory=list)
    join_l: np.ndarray | None = None  # (n_r,) chosen L row or -1
    est: np.ndarray | None = None  # (n_r,) best estimate of the chosen proposal
    precision: float = float("nan")
    n_proposals: int = 0
    iterations: int = 0  # greedy iterations when this union was recorded
    added: int = 0  # configurations the greedy added in all (recorded or not)

    @property
    def found(self) -> bool:
        return self.join_l is not None

    @property
    def n_joins(self) -> int:
        return 0 if self.join_l is None else int((self.join_l >= 0).sum())

    @property
    def reward(self) -> float:
        return self.precision * self.n_joins if self.found else float("-inf")


def greedy(cands: Candidates, target: float, patience: float = 0.05) -> Solution:
    """Step 6: greedy union maximising estimated recall subject to estimated precision > target."""
    n_f, n_r = cands.lstar.shape
    C = len(cands.configs)
    sol = Solution()
    if C == 0:
        return sol
    # same[f, g, r]: functions f and g propose the same l for r (so g's proposal is not a new pair).
    same = (cands.lstar[:, None, :] == cands.lstar[None, :, :]) & (cands.lstar[None, :, :] >= 0)
    covered = np.zeros((n_f, n_r), bool)
    bp = np.zeros(n_r, np.float64)
    join = np.full(n_r, -1, np.int64)
    tp, n_joins = 0.0, 0
    selected: list[int] = []
    P, prop, f_of = cands.P, cands.prop, cands.f_of
    it = 0
    while True:
        it += 1
        new = prop & ~covered[f_of]
        d_n = new.sum(axis=1)
        d_tp = np.maximum(P - bp[None, :], 0.0).sum(axis=1, dtype=np.float64)
        tp_new = tp + d_tp
        n_new = n_joins + d_n
        profit = np.where(d_n > 0, tp_new / (n_new - tp_new + EPS), -np.inf)
        best = int(np.argmax(profit))
        if not np.isfinite(profit[best]):
            break
        avg_prec = tp_new[best] / (n_new[best] + EPS)
        # Update the union with configuration `best`.
        selected.append(best)
        fb, pb = f_of[best], P[best]
        better = prop[best] & (pb > bp)
        join[better] = cands.lstar[fb, better]
        bp[better] = pb[better]
        covered |= same[fb] & prop[best][None, :]
        tp, n_joins = float(tp_new[best]), int(n_new[best])
        if avg_prec > target:
            sol = Solution([(cands.functions[cands.configs[c][0]], cands.configs[c][1]) for c in selected],
                           join.copy(), bp.copy(), float(avg_prec), n_joins, it)
        log.debug("greedy iteration %d: precision %.4f, %d joins", it, avg_prec, int((join >= 0).sum()))
        if avg_prec < target - patience:
            break
    sol.added = len(selected)
    return sol


def column_weight_grid(old: list[float] | None, n_weights: int = 10) -> list[list[float]]:
    """Step 7's candidates for one more column: old weights scaled by α, the new column 1 - α."""
    if old is None:
        return [[1.0]]
    return [[w * a for w in old] + [1.0 - a] for a in np.linspace(0, 1, n_weights)[1:-1].tolist()]


def weighted(per_column: list[dict[str, np.ndarray] | None], weights: dict[int, float], functions: list[str]
             ) -> dict[str, np.ndarray]:
    """Record distance Σ_c w_c d_f^c for each function; columns without a weight count 0.

    A NaN distance means the column is blank on one side of the pair (unknown): that pair's weights are
    renormalised over the columns present, and a pair with none present gets inf (it cannot join).
    Pairs with every column present keep the plain sum, bit for bit."""
    out = {}
    cols = sorted(weights)
    for f in functions:
        total = np.zeros_like(per_column[cols[0]][f]) if cols else np.zeros(0)
        present = np.zeros(len(total))
        missing = np.zeros(len(total), bool)
        for c in cols:
            d = per_column[c][f]
            blank = np.isnan(d)
            missing |= blank
            total = total + np.where(blank, 0.0, d) * weights[c]
            present = present + np.where(blank, 0.0, weights[c])
        if missing.any():
            with np.errstate(invalid="ignore", divide="ignore"):
                total = np.where(missing, np.where(present > 0, total / present, np.inf), total)
        out[f] = total
    return out


@dataclass
class Program:
    """Column weights (column index -> weight) and the greedy's solution under them."""

    weights: dict[int, float]
    solution: Solution
    candidates: Candidates | None = None
    trace: list[dict] = field(default_factory=list)  # per step: best weights and reward, kept or not


def forward_selection(functions: list[str], li: np.ndarray, ri: np.ndarray, lr_cols: list[dict[str, np.ndarray]],
                      ll_cand: np.ndarray, ll_query: np.ndarray, ll_cols: list[dict[str, np.ndarray]], n_r: int,
                      target: float, n_thresholds: int = 50, patience: float = 0.05,
                      null_rows: np.ndarray | None = None, columns: list[int] | None = None) -> Program:
    """Step 7: add columns one at a time (best reward P̂·|J|), re-weighting on the α grid; stop when no gain.
    `columns`: the columns it may use (default all)."""
    best = Program({}, Solution())
    best_reward = float("-inf")
    best_cols: list[int] = []
    best_w: list[float] | None = None
    trace: list[dict] = []
    for _ in range(len(lr_cols)):
        step: Program | None = None
        step_reward = float("-inf")
        step_cols: list[int] = []
        step_w: list[float] | None = None
        for c in range(len(lr_cols)) if columns is None else columns:
            if c in best_cols:
                continue
            cols = best_cols + [c]
            for ws in column_weight_grid(best_w):
                weights = dict(zip(cols, ws))
                cands = build_candidates(functions, li, ri, weighted(lr_cols, weights, functions), ll_cand,
                                         ll_query, weighted(ll_cols, weights, functions), n_r, n_thresholds,
                                         null_rows)
                sol = greedy(cands, target, patience)
                if sol.reward > step_reward:
                    step, step_reward, step_cols, step_w = Program(weights, sol, cands), sol.reward, cols, ws
        if step is not None:
            trace.append({"weights": dict(step.weights), "reward": step_reward, "kept": step_reward > best_reward})
        if step is None or step_reward <= best_reward:
            break
        best, best_reward, best_cols, best_w = step, step_reward, step_cols, step_w
    best.trace = trace
    return best
