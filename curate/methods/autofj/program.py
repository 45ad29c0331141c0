"""Auto-FuzzyJoin: fit a join program on L and (a sample of) R, save it as JSON, apply it to R rows.

docs/methods/autofj.md. `fit` blocks L-L and L-R (blocking.py), learns and applies negative rules (rules.py),
computes every join function's distances on the surviving pairs (functions.py) and runs the greedy
search with column forward selection (search.py). The program it returns is plain JSON: the selected
(function, θ) configurations in selection order, column weights, negative rules and L's fingerprint.
`Matcher` applies a program to new rows without searching: block, veto, distances of the selected
functions only, threshold test, estimate, and the highest estimate wins (earliest configuration on ties).
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from curate.methods.autofj.blocking import BlockingIndex
from curate.methods.autofj.functions import PAIR_CHUNK, ColumnViews, space_functions
from curate.methods.autofj.interval import bounds, estimates, standard_error, target_lower
from curate.methods.autofj.minhash import LSHParams
from curate.methods.autofj.new_entities import NewEntityModel, null_sample
from curate.methods.autofj.rules import NegativeRules
from curate.methods.autofj.search import Program, forward_selection, greedy, nearest, weighted
from curate.progress import steps

log = logging.getLogger(__name__)

PROGRAM_VERSION = 2  # 2: the blocker's probe budget replaced max_postings
FAR_GAP = 0.25  # "far beyond θ": more than this share of the function's distance range above θ


def records(columns: list[list[str]]) -> list[str]:
    """One string per row: the join columns joined by spaces (the blocker's and the rules' record)."""
    return [" ".join(vals) for vals in zip(*columns)] if len(columns) > 1 else list(columns[0])


def blanks(values: list[str]) -> np.ndarray:
    """Which values are blank (empty or whitespace): unknown for that column."""
    return np.fromiter((not v.strip() for v in values), bool, len(values))


def masked(d: dict[str, np.ndarray], blank: np.ndarray) -> dict[str, np.ndarray]:
    """Distances with NaN (unknown) where the pair has a blank value in this column."""
    if not blank.any():
        return d
    return {f: np.where(blank, np.nan, x) for f, x in d.items()}


def fingerprint(ids: list[str], columns: list[list[str]]) -> str:
    h = hashlib.sha256()
    for row in zip(ids, *columns):
        h.update("\x1f".join(row).encode())
        h.update(b"\x1e")
    return h.hexdigest()[:16]


def left_pairs(index: BlockingIndex, left_records: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """L-L candidate pairs (candidate, query) without self pairs."""
    q, c = index.candidates(left_records)
    keep = q != c
    return c[keep], q[keep]


@dataclass
class FitResult:
    program: dict[str, Any]
    join_l: np.ndarray  # chosen L row per search-set R row, -1 if none
    est: np.ndarray
    ll_counts: np.ndarray  # (|L|, configurations): L-L neighbours within 2θ, for `Matcher`
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Pairs:
    """Candidate pairs from the blocker: L-L (candidate, query) and L-R (R row, L row)."""

    ll_c: np.ndarray
    ll_q: np.ndarray
    r_q: np.ndarray
    r_l: np.ndarray
    lsh_skipped: int | None  # search rows whose LSH bucket was too crowded to use, summed over bands (no LSH: None)


@dataclass
class _Distances:
    """Every function's distances per join column (NaN where blank): of the L-R pairs, and of the L-L pairs
    (s_c, s_q) the search needs."""

    views: list[ColumnViews]
    blank_l: list[np.ndarray]
    lr_cols: list[dict[str, np.ndarray]]
    s_c: np.ndarray
    s_q: np.ndarray
    ll_cols: list[dict[str, np.ndarray]]
    null_rows: np.ndarray | None  # L rows the new-entity model is fitted on (None: not estimated)


def fit(left_ids: list[str], left_cols: list[list[str]], right_cols: list[list[str]], on: list[str],
        precision_target: float = 0.9, space: str = "autofj_sm", n_thresholds: int = 50, patience: float = 0.05,
        negative_rules: bool = True, k: int | None = None, blocking_budget: int | str | None = "auto",
        minhash_lsh: bool | dict | LSHParams | None = None, new_entities: bool = False,
        skip_constant_columns: bool = False, precision_target_on: str = "point") -> FitResult:
    """Search a join program for L and the given R rows (the search set) at estimated precision > τ.

    `minhash_lsh` (off by default; true or a mapping as in `LSHParams.parse`) adds MinHash LSH candidates
    to the blocker's. `new_entities` folds the estimated share of R rows without a match in L into the
    precision estimate (new_entities.py); off, the estimate is the reference's. `skip_constant_columns`
    leaves out of the search every join column with one value (blanks aside) in all of L: it cannot tell
    L rows apart, yet the reference estimate calls joins on it certain (all its distances are equal, under
    idf slightly negative, so θ < 0 and no neighbour is within 2θ); the reference uses it: off there.
    `precision_target_on` "lower": the interval's lower end must clear τ (interval.target_lower)."""
    if precision_target_on not in ("point", "lower"):
        raise ValueError(f"autofj: precision_target_on must be point or lower, not {precision_target_on!r}")
    t0, times = time.perf_counter(), {}
    n_l, n_r = len(left_ids), len(right_cols[0])
    functions = space_functions(space)
    lrec, rrec = records(left_cols), records(right_cols)
    lsh = LSHParams.parse(minhash_lsh)
    index = BlockingIndex.build(lrec, k, blocking_budget, lsh)
    pairs = _block(index, lrec, rrec)
    times["blocking_s"] = time.perf_counter() - t0
    log.info("autofj fit: blocked %d L rows and %d search rows: %d L-L and %d L-R candidate pairs in %.1f s",
             n_l, n_r, len(pairs.ll_c), len(pairs.r_q), times["blocking_s"])
    t = time.perf_counter()
    rules, pairs = _learn_rules(lrec, rrec, pairs, negative_rules)
    times["rules_s"] = time.perf_counter() - t
    log.info("autofj fit: %d negative rules in %.1f s", len(rules.codes), times["rules_s"])
    t = time.perf_counter()
    dist = _distances(functions, left_cols, right_cols, pairs, n_r, null_sample(n_l) if new_entities else None)
    times["distances_s"] = time.perf_counter() - t
    t = time.perf_counter()
    usable = [c for c, col in enumerate(left_cols) if len({v for v in col if v.strip()}) > 1]
    constant = [on[c] for c in range(len(on)) if c not in usable] if skip_constant_columns else []
    prog = forward_selection(functions, pairs.r_l, pairs.r_q, dist.lr_cols, dist.s_c, dist.s_q, dist.ll_cols, n_r,
                             precision_target, n_thresholds, patience, dist.null_rows,
                             usable if skip_constant_columns else None)
    prog.solution, search_target = (target_lower(prog.candidates, prog.solution, precision_target, patience, greedy)
                                    if precision_target_on == "lower" else (prog.solution, precision_target))
    times["search_s"] = time.perf_counter() - t
    log.info("autofj fit: distances %.1f s, search %.1f s: %d configurations", times["distances_s"],
             times["search_s"], len(prog.solution.configs))
    sol = prog.solution
    program = {**_settings(on, space, precision_target, n_thresholds, patience, index, lsh, negative_rules),
               **_learned(prog, rules, on, negative_rules),
               "left": {"rows": n_l, "fingerprint": fingerprint(left_ids, left_cols)},
               "new_entities": _new_entities(prog.candidates, sol.configs) if new_entities else None,
               "precision_target_on": precision_target_on,
               "search": {**_search_summary(prog, n_r, pairs.lsh_skipped), "search_target": search_target}}
    t = time.perf_counter()
    ll_counts = _left_counts(sol.configs, prog.weights, pairs, dist, n_l)
    times["ll_counts_s"] = time.perf_counter() - t
    _add_standard_error(program, prog, ll_counts, new_entities, times)
    _add_warnings(program, precision_target, n_l, constant)
    times["total_s"] = time.perf_counter() - t0
    return FitResult(program, sol.join_l if sol.found else np.full(n_r, -1, np.int64),
                     sol.est if sol.found else np.zeros(n_r), ll_counts, times)


def _block(index: BlockingIndex, lrec: list[str], rrec: list[str]) -> _Pairs:
    """The blocker's L-L pairs (no self pairs) and L-R pairs."""
    ll_c, ll_q = left_pairs(index, lrec)
    r_q, r_l = index.candidates(rrec)
    # read now: the LSH index counts the skipped buckets of its last query only
    return _Pairs(ll_c, ll_q, r_q, r_l, index.lsh.skipped_buckets if index.lsh else None)


def _learn_rules(lrec: list[str], rrec: list[str], pairs: _Pairs, use: bool) -> tuple[NegativeRules, _Pairs]:
    """Negative rules learned from the L-L pairs, and the pairs without the L-R pairs they veto (if `use`)."""
    rules = NegativeRules.learn(lrec, pairs.ll_c, pairs.ll_q)
    if use:
        vetoed, _ = rules.veto(rrec, pairs.r_l, pairs.r_q)
        pairs = replace(pairs, r_q=pairs.r_q[~vetoed], r_l=pairs.r_l[~vetoed])
    return rules, pairs


def _distances(functions: list[str], left_cols: list[list[str]], right_cols: list[list[str]], pairs: _Pairs,
               n_r: int, null_rows: np.ndarray | None) -> _Distances:
    """Distances of every L-R pair, and of the L-L pairs whose query can be some R row's nearest (or a null row)."""
    r_l, r_q = pairs.r_l, pairs.r_q
    views = [ColumnViews(col) for col in left_cols]
    blank_l, blank_r = [blanks(c) for c in left_cols], [blanks(c) for c in right_cols]
    lr_cols = [masked(v.distances(functions, r_l, r_q, rc), bl[r_l] | br[r_q])
               for v, rc, bl, br in zip(views, right_cols, blank_l, blank_r)]
    needed = _needed_left_rows(functions, r_l, r_q, lr_cols, n_r)
    if null_rows is not None:
        needed = np.union1d(needed, null_rows)
    sub = np.isin(pairs.ll_q, needed)
    s_c, s_q = pairs.ll_c[sub], pairs.ll_q[sub]
    ll_cols = [masked(v.distances(functions, s_c, s_q), bl[s_c] | bl[s_q]) for v, bl in zip(views, blank_l)]
    return _Distances(views, blank_l, lr_cols, s_c, s_q, ll_cols, null_rows)


def _needed_left_rows(functions: list[str], r_l: np.ndarray, r_q: np.ndarray, lr_cols: list[dict[str, np.ndarray]],
                      n_r: int) -> np.ndarray:
    """The L rows whose L-L neighbourhoods the search needs: those that can be some r's nearest. With one
    column, the nearest rows of each function; with several (weights change the nearest), every L-R candidate."""
    if len(lr_cols) == 1:
        return np.unique(np.concatenate([nearest(r_l, r_q, lr_cols[0][f], n_r).l for f in functions]))
    return np.unique(r_l)


def _settings(on: list[str], space: str, precision_target: float, n_thresholds: int, patience: float,
              index: BlockingIndex, lsh: LSHParams | None, negative_rules: bool) -> dict[str, Any]:
    """The program's settings: what it was searched with (the blocker's as resolved)."""
    return {"version": PROGRAM_VERSION, "on": list(on), "space": space, "precision_target": precision_target,
            "n_thresholds": n_thresholds, "patience": patience, "k": index.k, "blocking_budget": index.budget,
            "minhash_lsh": lsh.as_dict() if lsh else None, "negative_rules": negative_rules}


def _learned(prog: Program, rules: NegativeRules, on: list[str], negative_rules: bool) -> dict[str, Any]:
    """What the search chose: configurations in selection order, column weights, rules and the column trace."""
    found = prog.solution.found
    return {"configs": [{"function": f, "theta": th} for f, th in prog.solution.configs],
            "column_weights": {on[c]: w for c, w in prog.weights.items()} if found else {},
            "rules": [list(p) for p in rules.pairs] if negative_rules else [],
            "column_selection": [{"weights": {on[c]: w for c, w in t["weights"].items()}, "reward": t["reward"],
                                  "kept": t["kept"]} for t in prog.trace]}


def _search_summary(prog: Program, n_r: int, lsh_skipped: int | None) -> dict[str, Any]:
    """The search set's outcome: estimated precision (its standard error comes later), matches, diagnostics."""
    sol = prog.solution
    far = None
    if sol.found and prog.candidates is not None:
        far = _far_share(prog.candidates, sol.configs)
    return {"rows": n_r, "est_precision": sol.precision if sol.found else None, "est_precision_se": None,
            "matched": sol.n_joins,
            "est_true_matches": float(sol.est[sol.join_l >= 0].sum()) if sol.found else 0.0,
            "far_beyond_theta_share": far, "iterations": sol.iterations,
            "proposals": sol.n_proposals, "lsh_skipped_buckets": lsh_skipped}


def _left_counts(configs: list[tuple[str, float]], weights: dict[int, float], pairs: _Pairs, dist: _Distances,
                 n_l: int) -> np.ndarray:
    """Every L row's neighbour counts (ll_neighbour_counts) under the selected configurations, as apply needs."""
    selected = sorted({f for f, _ in configs})
    views, blank_l, ll_c, ll_q = dist.views, dist.blank_l, pairs.ll_c, pairs.ll_q
    ll_counts = np.zeros((n_l, len(configs)), np.int32)
    for s in steps(len(ll_c), 4 * PAIR_CHUNK, "autofj L-L counts"):  # chunks: every L-L pair's distances at once is GBs at 1M L
        c, q = ll_c[s:s + 4 * PAIR_CHUNK], ll_q[s:s + 4 * PAIR_CHUNK]
        full = [masked(views[col].distances(selected, c, q), blank_l[col][c] | blank_l[col][q])
                if col in weights else None for col in range(len(views))]
        ll_counts += ll_neighbour_counts(configs, q, weighted(full, weights, selected), n_l)
    return ll_counts


def _add_standard_error(program: dict[str, Any], prog: Program, ll_counts: np.ndarray, new_entities: bool,
                        times: dict[str, float]) -> None:
    """The standard error of P̂: which joined rows are right (binomial), and, with the new-entity model, the
    uncertainty of π0 and the lfdr tables the estimates rest on (bootstrap; docs/autofj.md section 2); then
    the interval over the new-entity models (interval.py)."""
    sol = prog.solution
    n_joined = sol.n_joins
    model_se = None
    modelled = new_entities and prog.candidates is not None and prog.candidates.inputs is not None
    if n_joined and modelled:
        t = time.perf_counter()
        model_se = _model_se(prog.candidates, sol.configs, ll_counts, sol.join_l >= 0)
        times["bootstrap_s"] = time.perf_counter() - t
    s = program["search"]
    s["est_precision_interval"], s["precision_models"] = None, None
    if n_joined:
        s["est_precision_se"] = standard_error(sol.precision, n_joined, model_se)
        s["est_precision_model_se"] = model_se
        _add_interval(s, prog, ll_counts, model_se if modelled else None, times)


def _add_interval(s: dict[str, Any], prog: Program, ll_counts: np.ndarray, model_se: float | None,
                  times: dict[str, float]) -> None:
    """`est_precision_interval` [lower, upper] and each model's estimates (`precision_models`)."""
    if prog.candidates is None:
        return
    t = time.perf_counter()
    s["precision_models"] = estimates(prog.candidates, prog.solution, ll_counts, model_se)
    s["est_precision_interval"] = list(bounds(s["precision_models"]))
    times["interval_s"] = time.perf_counter() - t


def _add_warnings(program: dict[str, Any], precision_target: float, n_l: int, constant: list[str]) -> None:
    """The program's warnings (fit_warnings, and the constant columns left out first), each logged."""
    program["warnings"] = fit_warnings(program, precision_target, n_l)
    if constant:
        program["warnings"].insert(0, f"constant_columns: {', '.join(constant)} has one value in every L row; "
                                   "it cannot tell L rows apart and is not used")
    for w in program["warnings"]:
        log.warning("autofj: %s", w)


MANY_NEW = 0.3  # estimated share of new entities in R (new_share) above which the estimate is flagged as fragile
FEW_NULLS = 50  # L rows with an L-L neighbour below which the new-entity model has too little to go on
MAX_SE = 0.05  # standard error of P̂ above which it is flagged


def fit_warnings(program: dict[str, Any], target: float, n_left: int) -> list[str]:
    """What the caller must know about the program's estimate, one "code: explanation" string each."""
    out = []
    s, ne = program["search"], program.get("new_entities")
    if s["est_precision"] is None:
        out.append(f"target_not_met: no program reaches an estimated precision above {target:g} on this data; "
                   "it joins nothing (lower precision_target, or try space autofj_md)")
    interval = s.get("est_precision_interval")
    if s["est_precision"] is not None and interval is not None and interval[0] < target:
        out.append(f"target_at_risk: the precision interval [{interval[0]:.3f}, {interval[1]:.3f}] reaches below "
                   f"the target {target:g} (the new-entity models disagree or the estimate is noisy); set "
                   "precision_target_on: lower for a program whose lower end clears it")
    new_share = None if ne is None else ne.get("new_share", ne["share"])
    if new_share is not None and new_share > MANY_NEW:
        out.append(f"many_new_entities: about {new_share:.0%} of R are new entities with no match in L (and about "
                   f"{ne['share']:.0%} has none within reach); the estimate leans on the new-entity model, so check "
                   "a sample of the matches")
    if ne is not None and ne["null_rows"] < FEW_NULLS:
        out.append(f"few_reference_pairs: only {ne['null_rows']} L rows have an L-L neighbour to model new "
                   "entities from; the estimate is unreliable")
    if ne is None and n_left < FEW_NULLS:
        out.append(f"few_reference_pairs: L has only {n_left} rows; the estimate is unreliable")
    if ne is None and (s["far_beyond_theta_share"] or 0) > 0.2:
        out.append(f"new_entities_unseen: {s['far_beyond_theta_share']:.0%} of R is far beyond every threshold "
                   "and the reference estimator assumes every row has a match; P̂ may be optimistic (mode: default "
                   "estimates new entities)")
    if s["est_precision_se"] is not None and s["est_precision_se"] > MAX_SE:
        out.append(f"imprecise_estimate: P̂ rests on {s['matched']} joined rows (standard error "
                   f"{s['est_precision_se']:.3f})")
    return out


def _new_entities(cands, configs: list[tuple[str, float]]) -> dict[str, Any] | None:
    """The new-entity models of the selected functions and the estimated share of R without a match."""
    if cands is None or not cands.models:
        return None
    first = next(iter(cands.models.values()))  # every function's model holds the same pooled share
    return {"share": first.share, "new_share": cands.new_share,
            "null_rows": max(m.null_rows for m in cands.models.values()),
            "models": {f: cands.models[f].as_dict() for f in sorted({f for f, _ in configs})}}


def _model_se(cands, configs: list[tuple[str, float]], ll_counts: np.ndarray, joined: np.ndarray) -> float:
    """Standard deviation of P̂ over bootstrap refits of the new-entity model (new_entities.Inputs): the
    joined rows and their neighbour counts are fixed, each row's estimate is recomputed as `Matcher` does
    (the best over the configurations that propose it) with each draw's π0 and lfdr tables."""
    selected = sorted({f for f, _ in configs})
    fi = {f: cands.functions.index(f) for f in selected}
    rows = np.flatnonzero(joined)
    base = np.zeros((len(configs), len(rows)))  # ok / (1 + neighbours) per configuration and joined row
    for j, (f, th) in enumerate(configs):
        l, d = cands.lstar[fi[f], rows], cands.dstar[fi[f], rows]
        base[j] = np.where((l >= 0) & (d <= th), 1.0 / (1.0 + ll_counts[np.maximum(l, 0), j]), 0.0)
    of = [selected.index(f) for f, _ in configs]
    draws = []
    for models in cands.inputs.bootstrap(selected):
        keep = np.stack([models[f].keep(cands.dstar[fi[f], rows]) for f in selected])
        draws.append(float((keep[of] * base).max(axis=0).mean()))
    return float(np.std(draws, ddof=1))


def ll_neighbour_counts(configs: list[tuple[str, float]], query: np.ndarray, d: dict[str, np.ndarray],
                        n_l: int) -> np.ndarray:
    """counts[l, j]: L-L candidates of l within 2θ_j under configuration j's function."""
    counts = np.zeros((n_l, len(configs)), np.int32)
    for j, (f, th) in enumerate(configs):
        counts[:, j] = np.bincount(query[d[f] <= 2.0 * th], minlength=n_l)
    return counts


def _far_share(cands, configs: list[tuple[str, float]]) -> float:
    """Share of search rows whose nearest distance is far beyond θ for every selected function."""
    far = np.ones(cands.dstar.shape[1], bool)
    for f, th in configs:
        fi = cands.functions.index(f)
        d = cands.dstar[fi]
        fin = d[np.isfinite(d)]
        span = (fin.max() - fin.min()) if len(fin) else 0.0
        far &= ~(d <= th + FAR_GAP * span)
    return float(far.mean()) if far.size else float("nan")


REASONS = ("matched", "no_candidate", "above_threshold", "vetoed", "no_program", "blank_program_columns")


@dataclass
class Matches:
    """Per query row: chosen L row (-1), estimate, index of the configuration that fired, its distance,
    number of distinct proposals, reason code (index into REASONS), the vetoing rule (or '') and the
    distance to the nearest L row under the first configuration's function (NaN: none)."""

    l: np.ndarray
    est: np.ndarray
    config: np.ndarray
    distance: np.ndarray
    n_proposals: np.ndarray
    reason: np.ndarray
    veto: list[str]
    nearest: np.ndarray


class Matcher:
    """A fitted program bound to L: blocks, vetoes and scores query rows (no search)."""

    def __init__(self, program: dict[str, Any], left_ids: list[str], left_cols: list[list[str]],
                 ll_counts: np.ndarray | None = None):
        if program.get("version") != PROGRAM_VERSION:
            raise ValueError(f"autofj program version {program.get('version')!r}; this code reads {PROGRAM_VERSION}")
        fp = fingerprint(left_ids, left_cols)
        if fp != program["left"]["fingerprint"]:
            raise ValueError(f"autofj: the reference table's fingerprint {fp} differs from the program's "
                             f"{program['left']['fingerprint']}: apply a program with the L it was fitted on")
        self.program = program
        self.configs = [(c["function"], float(c["theta"])) for c in program["configs"]]
        self.functions = sorted({f for f, _ in self.configs})
        on = program["on"]
        self.weights = {on.index(c): w for c, w in program["column_weights"].items()}
        self.lrec = records(left_cols)
        self.index = BlockingIndex.build(self.lrec, program["k"], program["blocking_budget"],
                                         LSHParams.parse(program.get("minhash_lsh")))
        self.rules = NegativeRules.learn(self.lrec, np.zeros(0, np.int64), np.zeros(0, np.int64))
        self.rules.codes = self._rule_codes(program["rules"])
        self.views = [ColumnViews(col) for col in left_cols]
        self.blank_l = [blanks(col) for col in left_cols]
        self.ll_counts = self._ll_counts() if ll_counts is None else ll_counts
        models = (program.get("new_entities") or {}).get("models", {})
        self.models = {f: NewEntityModel.from_dict(m) for f, m in models.items()}

    def _rule_codes(self, pairs: list[list[str]]) -> np.ndarray:
        n = len(self.rules.vocab)
        if not pairs:
            return np.zeros(0, np.int64)
        ids = self.rules.vocab.index.get_indexer([w for p in pairs for w in p]).reshape(-1, 2)
        if (ids < 0).any():
            raise ValueError("autofj: a negative rule names a word that is not in L")
        return np.unique(ids[:, 0].astype(np.int64) * n + ids[:, 1])

    def _distances(self, li: np.ndarray, ri: np.ndarray, right_cols: list[list[str]] | None = None
                   ) -> dict[str, np.ndarray]:
        """Weighted distances of the program's functions over pairs (L row li, query row ri; L itself
        when right_cols is None), blanks as unknown."""
        per_col = []
        for i, view in enumerate(self.views):
            if i not in self.weights:
                per_col.append(None)
                continue
            right = None if right_cols is None else right_cols[i]
            blank = self.blank_l[i][li] | (self.blank_l[i][ri] if right is None else blanks(right)[ri])
            per_col.append(masked(view.distances(self.functions, li, ri, right), blank))
        return weighted(per_col, self.weights, self.functions)

    def _ll_counts(self) -> np.ndarray:
        """counts[l, j]: L-L candidates of l within 2θ_j under configuration j's function."""
        n_l = len(self.lrec)
        counts = np.zeros((n_l, len(self.configs)), np.int32)
        if not self.configs:
            return counts
        c, q = left_pairs(self.index, self.lrec)
        return ll_neighbour_counts(self.configs, q, self._distances(c, q), n_l)

    def match(self, right_cols: list[list[str]]) -> Matches:
        n = len(right_cols[0])
        rrec = records(right_cols)
        r_q, r_l = self.index.candidates(rrec)
        has_cand = np.bincount(r_q, minlength=n) > 0
        vetoed, fired = self.rules.veto(rrec, r_l, r_q)
        veto_rule = np.full(n, -1, np.int64)
        veto_rule[r_q[vetoed][::-1]] = fired[vetoed][::-1]  # the first vetoed candidate's rule
        r_q, r_l = r_q[~vetoed], r_l[~vetoed]
        left_after = np.bincount(r_q, minlength=n) > 0
        best_l = np.full(n, -1, np.int64)
        best_p = np.zeros(n)
        best_c = np.full(n, -1, np.int64)
        best_d = np.full(n, np.nan)
        n_prop = np.zeros(n, np.int64)
        first = np.full(n, np.nan)
        if self.configs:
            d = self._distances(r_l, r_q, right_cols)
            near = {f: nearest(r_l, r_q, d[f], n) for f in self.functions}
            proposals = np.full((len(self.configs), n), -1, np.int64)
            for j, (f, th) in enumerate(self.configs):
                nf = near[f]
                ok = (nf.l >= 0) & (nf.d <= th)
                keep = self.models[f].keep(nf.d) if f in self.models else 1.0
                p = np.where(ok, keep / (1.0 + self.ll_counts[np.maximum(nf.l, 0), j]), 0.0)
                better = ok & (p > best_p)
                best_l[better], best_p[better], best_c[better], best_d[better] = nf.l[better], p[better], j, nf.d[better]
                proposals[j] = np.where(ok, nf.l, -1)
            d0 = near[self.configs[0][0]].d
            first = np.where(np.isfinite(d0), d0, np.nan)
            srt = np.sort(proposals, axis=0)
            n_prop = ((srt >= 0) & np.vstack([np.ones((1, n), bool), srt[1:] != srt[:-1]])).sum(axis=0)
        reason = np.where(best_l >= 0, 0, np.where(~has_cand, 1, np.where(~left_after, 3, 2)))
        if not self.configs:
            reason = np.where(has_cand & left_after, 4, reason)
        else:  # R rows are never dropped over a column the program does not use: only its own columns count
            unknown = np.logical_and.reduce([blanks(right_cols[i]) for i in self.weights])
            reason = np.where((best_l < 0) & unknown, 5, reason)
        veto = [self.rules.describe(int(c)) if (r == 3 and c >= 0) else "" for r, c in zip(reason, veto_rule)]
        return Matches(best_l, best_p, best_c, best_d, n_prop, reason, veto, first)
