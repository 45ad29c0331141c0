"""Auto-FuzzyJoin: fit a join program on L and (a sample of) R, save it as JSON, apply it to R rows.

specs/autofj.md. `fit` blocks L-L and L-R (blocking.py), learns and applies negative rules (rules.py),
computes every join function's distances on the surviving pairs (functions.py) and runs the greedy
search with column forward selection (search.py). The program it returns is plain JSON: the selected
(function, θ) configurations in selection order, column weights, negative rules and L's fingerprint.
`Matcher` applies a program to new rows without searching: block, veto, distances of the selected
functions only, threshold test, estimate, and the highest estimate wins (earliest configuration on ties).
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curate.methods.autofj.blocking import BlockingIndex
from curate.methods.autofj.functions import PAIR_CHUNK, ColumnViews, space_functions
from curate.methods.autofj.minhash import LSHParams
from curate.methods.autofj.rules import NegativeRules
from curate.methods.autofj.search import forward_selection, nearest
from curate.progress import steps

log = logging.getLogger(__name__)

PROGRAM_VERSION = 2  # 2: the blocker's probe budget replaced max_postings
FAR_GAP = 0.25  # "far beyond θ": more than this share of the function's distance range above θ


def records(columns: list[list[str]]) -> list[str]:
    """One string per row: the join columns joined by spaces (the blocker's and the rules' record)."""
    return [" ".join(vals) for vals in zip(*columns)] if len(columns) > 1 else list(columns[0])


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


def fit(left_ids: list[str], left_cols: list[list[str]], right_cols: list[list[str]], on: list[str],
        precision_target: float = 0.9, space: str = "autofj_sm", n_thresholds: int = 50, patience: float = 0.05,
        negative_rules: bool = True, k: int | None = None, blocking_budget: int | str | None = "auto",
        minhash_lsh: bool | dict | LSHParams | None = None) -> FitResult:
    """Search a join program for L and the given R rows (the search set) at estimated precision > τ.

    `minhash_lsh` (off by default; true or a mapping as in `LSHParams.parse`) adds MinHash LSH candidates
    to the blocker's."""
    t0 = time.perf_counter()
    times: dict[str, float] = {}
    n_l, n_r = len(left_ids), len(right_cols[0])
    functions = space_functions(space)
    lrec, rrec = records(left_cols), records(right_cols)
    lsh = LSHParams.parse(minhash_lsh)
    index = BlockingIndex.build(lrec, k, blocking_budget, lsh)
    ll_c, ll_q = left_pairs(index, lrec)
    r_q, r_l = index.candidates(rrec)
    # search rows whose LSH bucket was too crowded to use, summed over bands (None without LSH)
    lsh_skipped = index.lsh.skipped_buckets if index.lsh else None
    times["blocking_s"] = time.perf_counter() - t0
    log.info("autofj fit: blocked %d L rows and %d search rows: %d L-L and %d L-R candidate pairs in %.1f s",
             n_l, n_r, len(ll_c), len(r_q), times["blocking_s"])
    t = time.perf_counter()
    rules = NegativeRules.learn(lrec, ll_c, ll_q)
    if negative_rules:
        vetoed, _ = rules.veto(rrec, r_l, r_q)
        r_q, r_l = r_q[~vetoed], r_l[~vetoed]
    times["rules_s"] = time.perf_counter() - t
    log.info("autofj fit: %d negative rules in %.1f s", len(rules.codes), times["rules_s"])
    t = time.perf_counter()
    views = [ColumnViews(col) for col in left_cols]
    lr_cols = [v.distances(functions, r_l, r_q, rc) for v, rc in zip(views, right_cols)]
    # The search needs L-L neighbourhoods only of L rows that can be some r's nearest: with one column the
    # nearest rows of each function, with several (weights change the nearest) every L-R candidate.
    if len(views) == 1:
        needed = np.unique(np.concatenate([nearest(r_l, r_q, lr_cols[0][f], n_r).l for f in functions]))
    else:
        needed = np.unique(r_l)
    sub = np.isin(ll_q, needed)
    s_c, s_q = ll_c[sub], ll_q[sub]
    ll_cols = [v.distances(functions, s_c, s_q) for v in views]
    times["distances_s"] = time.perf_counter() - t
    t = time.perf_counter()
    prog = forward_selection(functions, r_l, r_q, lr_cols, s_c, s_q, ll_cols, n_r, precision_target,
                             n_thresholds, patience)
    times["search_s"] = time.perf_counter() - t
    log.info("autofj fit: distances %.1f s, search %.1f s: %d configurations", times["distances_s"],
             times["search_s"], len(prog.solution.configs))
    sol = prog.solution
    if not sol.found:
        log.warning("autofj: the precision target %.3f cannot be reached on this data; the program joins nothing "
                    "(try a lower target or a larger join function space)", precision_target)
    far = None
    if sol.found and prog.candidates is not None:
        far = _far_share(prog.candidates, sol.configs)
    n_joined = sol.n_joins
    se = math.sqrt(sol.precision * (1 - sol.precision) / n_joined) if n_joined else None
    program = {
        "version": PROGRAM_VERSION, "on": list(on), "space": space, "precision_target": precision_target,
        "n_thresholds": n_thresholds, "patience": patience, "k": index.k, "blocking_budget": index.budget,
        "minhash_lsh": lsh.as_dict() if lsh else None, "negative_rules": negative_rules,
        "configs": [{"function": f, "theta": th} for f, th in sol.configs],
        "column_weights": {on[c]: w for c, w in prog.weights.items()} if sol.found else {},
        "rules": [list(p) for p in rules.pairs] if negative_rules else [],
        "column_selection": [{"weights": {on[c]: w for c, w in t["weights"].items()}, "reward": t["reward"],
                              "kept": t["kept"]} for t in prog.trace],
        "left": {"rows": n_l, "fingerprint": fingerprint(left_ids, left_cols)},
        "search": {"rows": n_r, "est_precision": sol.precision if sol.found else None, "est_precision_se": se,
                   "matched": n_joined, "est_true_matches": float(sol.est[sol.join_l >= 0].sum()) if sol.found else 0.0,
                   "far_beyond_theta_share": far, "iterations": sol.iterations,
                   "proposals": sol.n_proposals, "lsh_skipped_buckets": lsh_skipped},
    }
    # Apply needs the neighbour counts of every L row, for the selected functions only.
    t = time.perf_counter()
    selected = sorted({f for f, _ in sol.configs})
    ll_counts = np.zeros((n_l, len(sol.configs)), np.int32)
    for s in steps(len(ll_c), 4 * PAIR_CHUNK, "autofj L-L counts"):  # chunks: every L-L pair's distances at once is GBs at 1M L
        c, q = ll_c[s:s + 4 * PAIR_CHUNK], ll_q[s:s + 4 * PAIR_CHUNK]
        full = [views[col].distances(selected, c, q) for col in sorted(prog.weights)]
        ll_w = {f: sum(full[i][f] * prog.weights[col] for i, col in enumerate(sorted(prog.weights))) for f in selected}
        ll_counts += ll_neighbour_counts(sol.configs, q, ll_w, n_l)
    times["ll_counts_s"] = time.perf_counter() - t
    times["total_s"] = time.perf_counter() - t0
    join_l = sol.join_l if sol.found else np.full(n_r, -1, np.int64)
    est = sol.est if sol.found else np.zeros(n_r)
    return FitResult(program, join_l, est, ll_counts, times)


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


REASONS = ("matched", "no_candidate", "above_threshold", "vetoed", "no_program")


@dataclass
class Matches:
    """Per query row: chosen L row (-1), estimate, index of the configuration that fired, its distance,
    number of distinct proposals, reason code (index into REASONS) and the vetoing rule (or '')."""

    l: np.ndarray
    est: np.ndarray
    config: np.ndarray
    distance: np.ndarray
    n_proposals: np.ndarray
    reason: np.ndarray
    veto: list[str]


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
        self.ll_counts = self._ll_counts() if ll_counts is None else ll_counts

    def _rule_codes(self, pairs: list[list[str]]) -> np.ndarray:
        n = len(self.rules.vocab)
        if not pairs:
            return np.zeros(0, np.int64)
        ids = self.rules.vocab.index.get_indexer([w for p in pairs for w in p]).reshape(-1, 2)
        if (ids < 0).any():
            raise ValueError("autofj: a negative rule names a word that is not in L")
        return np.unique(ids[:, 0].astype(np.int64) * n + ids[:, 1])

    def _weighted(self, per_col: list[dict[str, np.ndarray]], n: int) -> dict[str, np.ndarray]:
        out = {}
        for f in self.functions:
            total = np.zeros(n)
            for c, w in self.weights.items():
                total = total + per_col[c][f] * w
            out[f] = total
        return out

    def _ll_counts(self) -> np.ndarray:
        """counts[l, j]: L-L candidates of l within 2θ_j under configuration j's function."""
        n_l = len(self.lrec)
        counts = np.zeros((n_l, len(self.configs)), np.int32)
        if not self.configs:
            return counts
        c, q = left_pairs(self.index, self.lrec)
        d = self._weighted([self.views[i].distances(self.functions, c, q) if i in self.weights else {}
                            for i in range(len(self.views))], len(c))
        return ll_neighbour_counts(self.configs, q, d, n_l)

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
        if self.configs:
            d = self._weighted([self.views[i].distances(self.functions, r_l, r_q, right_cols[i])
                                if i in self.weights else {} for i in range(len(self.views))], len(r_l))
            near = {f: nearest(r_l, r_q, d[f], n) for f in self.functions}
            proposals = np.full((len(self.configs), n), -1, np.int64)
            for j, (f, th) in enumerate(self.configs):
                nf = near[f]
                ok = (nf.l >= 0) & (nf.d <= th)
                p = np.where(ok, 1.0 / (1.0 + self.ll_counts[np.maximum(nf.l, 0), j]), 0.0)
                better = ok & (p > best_p)
                best_l[better], best_p[better], best_c[better], best_d[better] = nf.l[better], p[better], j, nf.d[better]
                proposals[j] = np.where(ok, nf.l, -1)
            srt = np.sort(proposals, axis=0)
            n_prop = ((srt >= 0) & np.vstack([np.ones((1, n), bool), srt[1:] != srt[:-1]])).sum(axis=0)
        reason = np.where(best_l >= 0, 0, np.where(~has_cand, 1, np.where(~left_after, 3, 2)))
        if not self.configs:
            reason = np.where(has_cand & left_after, 4, reason)
        veto = [self.rules.describe(int(c)) if (r == 3 and c >= 0) else "" for r, c in zip(reason, veto_rule)]
        return Matches(best_l, best_p, best_c, best_d, n_prop, reason, veto)
