"""The precision interval (docs/autofj.md section 2, "The interval"): P̂ under each new-entity model the
join computes, each with its own standard error, and the span from the lowest to the highest.

Two models of which R rows are new entities are both plausible and neither can be checked without labels:

- `within_reach` (the estimate's): π0 and the lfdr tables against L's leave-one-out null. It counts rows
  whose match is too unlike L to find as new, and its null is written the way L is, not R.
- `new_share`: the same Storey share and lfdr tables against R's own null, each row's second-nearest
  distance (the distance it would have if its nearest L row were not in L: section 4). Its null is too far
  out when many rows are new.

Which is right depends on the table (a restaurant pair: the first; the 50 benchmark tasks, whose new
entities are made by removing their match from L: the second), so the interval carries both: its lower end
is the lower of the two models' P̂ - z·se, its upper end the higher P̂ + z·se, se = √(P̂(1 - P̂)/N + σ²_model)
with σ_model each model's bootstrap spread (same draws of R rows). z = Z_ONE_SIDED: each end is a
one-sided 95% bound of the model it comes from, so a two-sided 90% interval when the right model is known.

Two bounds below enter the lower end only (`BOUNDS_BELOW`): `union` (Storey's false-discovery estimate with
the whole union as one rejection region, its null pass rate α_U measured on L's leave-one-out null) and
`union_r` (the same with R's own null: α_R the share of the joined rows the union would still join without
their delivered L row).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from curate.methods.autofj.new_entities import NewEntityModel

Z_ONE_SIDED = 1.645  # each end a one-sided 95% bound: 90% two-sided, the coverage the interval is meant to have
MODELS = ("within_reach", "new_share", "union", "union_r")
BOUNDS_BELOW = ("union", "union_r")  # models that enter the lower end only: bounds, not best guesses


@dataclass
class Joined:
    """The joined rows' fixed parts: per configuration, 1 / (1 + neighbours) where it proposes the row
    (0 elsewhere), and the nearest distance under each selected function."""

    base: np.ndarray  # (configurations, joined rows)
    of: list[int]  # selected-function index of each configuration
    dstar: dict[str, np.ndarray]  # per selected function, the joined rows' nearest distances

    @classmethod
    def build(cls, cands, configs: list[tuple[str, float]], counts: np.ndarray, rows: np.ndarray) -> Joined:
        """`counts[j, i]`: neighbours of joined row i's l* under configuration j (the program's
        ll_counts taken at l*)."""
        selected = sorted({f for f, _ in configs})
        base = np.zeros((len(configs), len(rows)))
        dstar = {f: cands.dstar[cands.functions.index(f), rows] for f in selected}
        for j, (f, th) in enumerate(configs):
            l = cands.lstar[cands.functions.index(f), rows]
            base[j] = np.where((l >= 0) & (dstar[f] <= th), 1.0 / (1.0 + counts[j]), 0.0)
        return cls(base, [selected.index(f) for f, _ in configs], dstar)

    def precision(self, models: dict[str, NewEntityModel] | None, least: bool = False) -> float:
        """P̂ of these joins with each row's estimate the best over the configurations proposing it (as the
        search and `Matcher` compute it); models None: the reference estimate (every row has a match).
        `least`: the row's 1 - lfdr is instead the least over the functions of the configurations that
        propose it (times the best configuration's 1 / (1 + neighbours)): the union's pessimistic reading."""
        if self.base.shape[1] == 0:
            return float("nan")
        if models is None:
            return float(self.base.max(axis=0).mean())
        keep = np.stack([models[f].keep(d) for f, d in self.dstar.items()])[self.of]
        scored = keep * self.base
        if not least:
            return float(scored.max(axis=0).mean())
        best = scored.argmax(axis=0)
        proposing = self.base > 0
        worst = np.where(proposing, keep, np.inf).min(axis=0)
        worst[~proposing.any(axis=0)] = 0.0
        return float((worst * self.base[best, np.arange(len(best))]).mean())


def standard_error(p: float, n: int, model_se: float | None) -> float:
    """√(P̂(1 - P̂)/N + σ²_model): which joined rows are right (binomial), and the model's own spread."""
    return math.sqrt(max(p * (1 - p), 0.0) / n + (model_se or 0.0) ** 2) if n else float("nan")


def bounds(estimates: dict[str, dict[str, float]], z: float = Z_ONE_SIDED) -> tuple[float, float]:
    """(lower, upper): the lowest P̂ - z·se with P̂ counted over every proposed pair, and the highest
    P̂ + z·se with P̂ counted over the delivered rows, over the models (the union model's only for the lower
    end: it is a bound), within [0, 1]."""
    lo = min(min(e["precision_proposals"], e.get("precision_least", 1.0)) - z * e["se"] for e in estimates.values())
    hi = max(e["precision"] + z * e["se"] for name, e in estimates.items() if name not in BOUNDS_BELOW)
    return max(0.0, lo), min(1.0, hi)


def union_pass(nulls: dict[str, np.ndarray], configs: list[tuple[str, float]]) -> np.ndarray:
    """Which null rows the union would join: some configuration's function puts the row's leave-one-out
    nearest distance within its θ (NaN, unknown: not joined; inf, no L-L candidate: never)."""
    hit = np.zeros(len(next(iter(nulls.values()))), bool)
    for f, th in configs:
        hit |= np.nan_to_num(nulls[f], nan=np.inf) <= th
    return hit


def union_precision(joined: Joined, n_right: int, share: float, alpha: float) -> float:
    """P̂ with the union as one rejection region (Storey's FDR estimate): the joins' expected true matches
    under the reference's 1 / (1 + neighbours), less the π0·|R|·α_U new entities expected among them."""
    n = joined.base.shape[1]
    if n == 0:
        return float("nan")
    return max(0.0, float(joined.base.max(axis=0).sum() - share * n_right * alpha) / n)


def union_model(cands, joined: Joined, configs: list[tuple[str, float]], spread: bool = True
                ) -> tuple[float, float | None, float, float]:
    """The union model: (P̂, its bootstrap spread over the same draws of R rows and null rows as the
    fit's (None without `spread`), π0, α_U). π0 is the within-reach model's (pooled Storey share against the
    same null)."""
    inputs = cands.inputs
    hit = union_pass(inputs.nulls, configs)
    n_right = len(next(iter(inputs.seen.values())))
    share = next(iter(cands.models.values())).share
    alpha = float(hit.mean()) if len(hit) else 0.0
    p = union_precision(joined, n_right, share, alpha)
    if not spread:
        return p, None, share, alpha
    draws = [union_precision(joined, n_right, s, float(hit[j].mean()) if len(j) else 0.0)
             for s, (_, j) in zip(inputs.draw_shares(), inputs.draws())]
    return p, float(np.std(draws, ddof=1)), share, alpha


def without_delivered(cands, configs: list[tuple[str, float]], rows: np.ndarray, join_l: np.ndarray
                      ) -> dict[str, np.ndarray]:
    """Per selected function, each joined row's nearest distance were its delivered L row not in L: the
    row's second-nearest where that function's nearest is the delivered row, else its nearest (another L
    row, which stays)."""
    second = cands.inputs.second
    out = {}
    for f in sorted({f for f, _ in configs}):
        fi = cands.functions.index(f)
        same = cands.lstar[fi, rows] == join_l[rows]
        out[f] = np.where(same, second[f][rows], cands.dstar[fi, rows])
    return out


def union_r_pass(cands, configs: list[tuple[str, float]], join_l: np.ndarray) -> np.ndarray:
    """Per joined row (in row order): would the union still join it if its delivered L row were not in L
    (some configuration's function puts its distance without that row within θ)? Each such row is a draw
    of R's own null: a new entity written the way the rows this union joins are."""
    rows = np.flatnonzero(join_l >= 0)
    return union_pass(without_delivered(cands, configs, rows, join_l), configs)


def joined_share(hit: np.ndarray, join_l: np.ndarray, i: np.ndarray) -> float:
    """α_R on the R rows `i` (a bootstrap draw, with repeats): the share of its joined rows that `hit`
    (one entry per joined row, in row order) marks; 0 when the draw holds no joined row."""
    pos = np.cumsum(join_l >= 0) - 1
    drawn = i[join_l[i] >= 0]
    return float(hit[pos[drawn]].mean()) if len(drawn) else 0.0


def union_r_model(cands, joined: Joined, configs: list[tuple[str, float]], join_l: np.ndarray, spread: bool = True
                  ) -> tuple[float, float | None, float, float]:
    """The union model with R's own null (`union_r`): (P̂, its bootstrap spread over the fit's draws of R
    rows (None without `spread`), π0, α_R). Same Storey estimate as `union_model`, α_R the share of the joined
    rows the union would still join without their delivered L row (`union_r_pass`); π0 the within-reach
    model's."""
    inputs = cands.inputs
    hit = union_r_pass(cands, configs, join_l)
    n_right = len(join_l)
    share = next(iter(cands.models.values())).share
    alpha = float(hit.mean()) if len(hit) else 0.0
    p = union_precision(joined, n_right, share, alpha)
    if not spread:
        return p, None, share, alpha
    draws = [union_precision(joined, n_right, s, joined_share(hit, join_l, i))
             for s, (i, _) in zip(inputs.draw_shares(), inputs.draws())]
    return p, float(np.std(draws, ddof=1)), share, alpha


def estimate(p: float, rows: int, proposals: int, model_se: float | None, least: float | None = None
             ) -> dict[str, Any]:
    """One model's estimates: `precision` of the delivered join (the mean of its rows' estimates),
    `precision_proposals` the same expected true matches over every proposed pair (the search's P̂ and the
    reference's definition), `precision_least` the delivered join under the least convinced function
    (`Joined.precision(least=True)`), and the standard error."""
    return {"precision": p, "precision_proposals": p * rows / max(proposals, rows),
            "precision_least": p if least is None else least, "model_se": model_se,
            "se": standard_error(p, rows, model_se)}


def model_estimates(cands, joined: Joined, proposals: int, se_within_reach: float | None,
                    configs: list[tuple[str, float]], join_l: np.ndarray) -> dict[str, dict[str, Any]]:
    """Each model's P̂ of the joins and its standard error; the within-reach model's spread is the one the
    fit already drew (`se_within_reach`), the new-share and union models' are drawn here on the same seed's
    R rows (and null rows)."""
    selected = list(joined.dstar)
    inputs = cands.inputs
    full = np.arange(len(next(iter(inputs.seen.values()))))
    fitted = {"within_reach": {f: cands.models[f] for f in selected},
              "new_share": inputs.refit_new_share(selected, full)}
    draws = [joined.precision(inputs.refit_new_share(selected, i)) for i, _ in inputs.draws()]
    spread = {"within_reach": se_within_reach, "new_share": float(np.std(draws, ddof=1))}
    rows = joined.base.shape[1]
    out = {name: {**estimate(joined.precision(fitted[name]), rows, proposals, spread[name],
                             joined.precision(fitted[name], least=True)),
                  "share": next(iter(fitted[name].values())).share} for name in fitted}
    p, spread_u, share, alpha = union_model(cands, joined, configs)
    out["union"] = {**estimate(p, rows, proposals, spread_u), "share": share, "null_pass": alpha}
    p, spread_u, share, alpha = union_r_model(cands, joined, configs, join_l)
    out["union_r"] = {**estimate(p, rows, proposals, spread_u), "share": share, "null_pass": alpha}
    return out


def estimates(cands, sol, ll_counts: np.ndarray, model_se: float | None) -> dict[str, dict[str, Any]]:
    """Each model's estimates of the program's joins, the neighbour counts taken from the program's
    `ll_counts` as `Matcher` takes them; without the new-entity models (the reference estimator: `model_se`
    None) one model, `reference`, whose interval is its P̂ ± z·se."""
    rows = np.flatnonzero(sol.join_l >= 0)
    lstar = {f: cands.lstar[cands.functions.index(f), rows] for f, _ in sol.configs}
    counts = np.stack([ll_counts[np.maximum(lstar[f], 0), j] for j, (f, _) in enumerate(sol.configs)])
    joined = Joined.build(cands, sol.configs, counts, rows)
    if model_se is None or cands.inputs is None or cands.inputs.second is None:
        return {"reference": estimate(joined.precision(None), len(rows), sol.n_proposals, None)}
    return model_estimates(cands, joined, sol.n_proposals, model_se, sol.configs, sol.join_l)


def refits(cands) -> dict[str, dict[str, NewEntityModel]]:
    """Both models of every function the candidates modelled, fitted on all R rows."""
    every = np.arange(len(next(iter(cands.inputs.seen.values()))))
    return {"within_reach": cands.models, "new_share": cands.inputs.refit_new_share(list(cands.models), every)}


def from_candidates(cands, sol) -> Joined:
    """`Joined` for one of the search's unions from the candidates alone (no L-L pass): each row's
    1 / (1 + neighbours) is read back from its estimate, P / keep under the within-reach model (a proposal
    that model gives 0 counts 0 under both: the only difference from `Joined.build`)."""
    rows = np.flatnonzero(sol.join_l >= 0)
    index = {(cands.functions[fi], th): c for c, (fi, th) in enumerate(cands.configs)}
    selected = sorted({f for f, _ in sol.configs})
    dstar = {f: cands.dstar[cands.functions.index(f), rows] for f in selected}
    base = np.zeros((len(sol.configs), len(rows)))
    for j, (f, th) in enumerate(sol.configs):
        keep = cands.models[f].keep(dstar[f])
        np.divide(cands.P[index[(f, th)], rows], keep, out=base[j], where=keep > 0)
    return Joined(base, [selected.index(f) for f, _ in sol.configs], dstar)


def spreads(cands, joined: Joined, configs: list[tuple[str, float]], join_l: np.ndarray) -> dict[str, float]:
    """Each model's bootstrap spread of P̂ for these joins (the same draws as the fit's standard error)."""
    selected = list(joined.dstar)
    a = [joined.precision(m) for m in cands.inputs.bootstrap(selected)]
    b = [joined.precision(cands.inputs.refit_new_share(selected, i)) for i, _ in cands.inputs.draws()]
    return {"within_reach": float(np.std(a, ddof=1)), "new_share": float(np.std(b, ddof=1)),
            "union": union_model(cands, joined, configs)[1],
            "union_r": union_r_model(cands, joined, configs, join_l)[1]}


def lower_end(cands, joined: Joined, sol, fitted: dict[str, dict[str, NewEntityModel]],
              spread: dict[str, float]) -> float:
    """The interval's lower end for one of the search's unions, the spreads given (measured once)."""
    rows, proposals = joined.base.shape[1], sol.n_proposals
    ests = {name: estimate(joined.precision(models), rows, proposals, spread[name],
                           joined.precision(models, least=True)) for name, models in fitted.items()}
    ests["union"] = estimate(union_model(cands, joined, sol.configs, spread=False)[0], rows, proposals,
                             spread["union"])
    ests["union_r"] = estimate(union_r_model(cands, joined, sol.configs, sol.join_l, spread=False)[0], rows,
                               proposals, spread["union_r"])
    return bounds(ests)[0]


LOWER_ROUNDS = 7  # bisection steps on the search's own target: about 0.001 apart at the end


def target_lower(cands, sol, target: float, patience: float, greedy) -> tuple[Any, float]:
    """`precision_target_on: lower`: the largest union whose interval's lower end clears `target`.

    A higher target for the search's own P̂ gives a smaller union and (mostly) a higher lower end, so the
    search's target is bisected between `target` and 0.999 for the lowest one whose union's lower end
    clears `target`; when none does, the union with the highest lower end seen. The models' spreads are
    measured once, on the point-target union. Returns (union, search target)."""
    if not sol.found or cands is None or cands.inputs is None or cands.inputs.second is None:
        return sol, target
    fitted = refits(cands)
    joined = from_candidates(cands, sol)
    spread = spreads(cands, joined, sol.configs, sol.join_l)
    lo = lower_end(cands, joined, sol, fitted, spread)
    if lo >= target:
        return sol, target
    best, best_lo, best_t = sol, lo, target
    cleared = None
    below, above = target, 0.999
    for _ in range(LOWER_ROUNDS):
        t = (below + above) / 2
        cand = greedy(cands, t, patience)
        if not cand.found:  # no union reaches t: too high
            above = t
            continue
        lo = lower_end(cands, from_candidates(cands, cand), cand, fitted, spread)
        if lo >= target:
            cleared, above = (cand, t), t
        else:
            below = t
        if lo > best_lo:
            best, best_lo, best_t = cand, lo, t
    return cleared if cleared is not None else (best, best_t)
