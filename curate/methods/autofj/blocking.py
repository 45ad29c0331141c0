"""Blocking: top-k TF-IDF candidates of L for each query row, by sparse matrix products (docs/methods/autofj.md step 1).

A record is normalised by `text.blocking_key`; its tokens are the padded character 3-grams of that
string plus its words (one token space, as in the reference). With idf(x) = ln(|L| / (df(x) + 1)) and
tf_l(x) = count_l(x) / |tokens(l)|, the score is s(l, r) = sum over the distinct tokens x of r of
idf(x)·tf_l(x), i.e. one row of Q_binary @ (TF_L * idf)^T. Each query keeps its k best L rows plus
every row tied with the k-th score; k = min(floor(sqrt(|L|)), 50).

Exact scoring touches every L row that shares any token with the query, and common 3-grams are held by
a fixed share of L, so its cost grows like |L| per query (|L|·(|L| + |R|) in all). For a large L the
index probes a budget instead (ours, `budget`): each query probes its own tokens rarest first while the
summed posting lengths stay within the budget (at least its two rarest), keeps the `probe_keep` best L
rows by that partial score, re-scores them exactly with all of its tokens and keeps the top k with ties.
The work per query is then bounded by the budget whatever |L| is; the candidates can differ from the
exact ones (an L row that shares only common tokens with the query, or ranks low on its rare ones).
Optionally (`lsh`, off by default) MinHash LSH over the same tokens adds the pairs with a high token
overlap that the top k left out (curate.methods.autofj.minhash).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sparse_dot_topn import sp_matmul_topn

from curate.methods.autofj.minhash import LSHIndex, LSHParams
from curate.methods.autofj.text import (
    Tokens,
    Vocabulary,
    blocking_key,
    blocking_tokens,
    count_matrix,
    pad_columns,
)
from curate.progress import steps

EXACT_UP_TO = 50_000  # `budget="auto"`: exact scoring up to this many L rows, else DEFAULT_BUDGET
DEFAULT_BUDGET = 20_000


def default_k(n_left: int) -> int:
    return min(int(math.pow(n_left, 0.5)), 50)


def resolve_budget(budget: int | str | None, n_left: int) -> int | None:
    """The probe budget for an L of n_left rows: None (exact) or a positive number of postings."""
    if budget == "auto":
        return None if n_left <= EXACT_UP_TO else DEFAULT_BUDGET
    if budget is None or budget == "exact":
        return None
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"blocking budget must be 'auto', 'exact' or a positive integer, got {budget!r}")
    return budget


def _threads() -> int:
    """Threads for the product: the worker's share (Ray sets OMP_NUM_THREADS) or every core."""
    return int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1


def _tokens(keys: list[str]) -> Tokens:
    return blocking_tokens(keys)


@dataclass
class BlockingIndex:
    """L's TF-IDF matrix (rows and transposed for the product), its vocabulary and the probe budget."""

    vocab: Vocabulary
    weights_t: sp.csr_matrix  # (vocabulary x |L|): idf(x) * tf_l(x)
    k: int
    n_left: int
    budget: int | None = None  # postings probed per query; None = exact
    probe_keep: int = 0  # L rows re-scored per query under a budget (default 4k)
    lsh: LSHIndex | None = None

    @classmethod
    def build(cls, left_values: list[str], k: int | None = None, budget: int | str | None = "auto",
              lsh: LSHParams | None = None) -> BlockingIndex:
        """L's index; `budget` as in `resolve_budget` (the module docstring says what it changes); `lsh`
        adds MinHash LSH candidates."""
        keys = blocking_key(left_values)
        toks = _tokens(keys)
        # The reference skips empty L records when indexing (they still count in |L|).
        empty = np.fromiter((not k for k in keys), bool, len(keys))
        if empty.any():
            keep = np.repeat(~empty, toks.lengths)
            toks = Tokens(toks.flat[keep], np.where(empty, 0, toks.lengths))
        vocab = Vocabulary.from_tokens(toks.flat)
        counts = count_matrix(toks, vocab)
        n = counts.shape[0]
        df = np.bincount(counts.indices, minlength=len(vocab)).astype(np.float64)
        idf = np.log(n / (df + 1.0))
        lengths = toks.lengths.astype(np.float64)
        tf = sp.diags(1.0 / np.maximum(lengths, 1.0)) @ counts
        weights = (tf @ sp.diags(idf)).tocsr()
        k = default_k(n) if k is None else k
        lsh_index = LSHIndex.build(counts, lsh) if lsh is not None else None
        return cls(vocab, weights.T.tocsr(), k, n, resolve_budget(budget, n), 4 * k, lsh_index)

    @property
    def weights(self) -> sp.csr_matrix:
        """(|L| x vocabulary) rows, for exact re-scoring of candidate pairs."""
        if getattr(self, "_weights", None) is None:
            self._weights = self.weights_t.T.tocsr()
        return self._weights

    def query_matrix(self, values: list[str]) -> sp.csr_matrix:
        """Binary (distinct-token) rows of query records over L's vocabulary; unseen tokens dropped."""
        return self._restrict(count_matrix(_tokens(blocking_key(values)), self.vocab))

    def _restrict(self, m: sp.csr_matrix) -> sp.csr_matrix:
        m = m[:, :len(self.vocab)] if m.shape[1] > len(self.vocab) else pad_columns(m, len(self.vocab))
        m.data[:] = 1.0
        return m.tocsr()

    def candidates(self, values: list[str], dense_cells: int = 8_000_000) -> tuple[np.ndarray, np.ndarray]:
        """(query row, L row) pairs that survive blocking, sorted by query then L row.

        Queries go in chunks; a chunk's scores are made dense (at most `dense_cells` cells) when at least
        64 queries fit, where a partial sort per row beats sorting the sparse entries.
        """
        counts = count_matrix(_tokens(blocking_key(values)), self.vocab)
        q, l = self._top_k(self._restrict(counts), dense_cells)
        if self.lsh is None:
            return q, l
        # Unseen tokens stay in the signatures (their ids are past L's vocabulary): they lower the overlap.
        lq, ll = self.lsh.candidates(counts)
        u = np.unique(np.concatenate([q * self.n_left + l, lq * self.n_left + ll]))
        return u // self.n_left, u % self.n_left

    def _top_k(self, q: sp.csr_matrix, dense_cells: int) -> tuple[np.ndarray, np.ndarray]:
        if self.budget is not None:
            return self._budget_candidates(q)
        rows_dense = dense_cells // max(self.n_left, 1)
        dense = rows_dense >= 64
        chunk = min(rows_dense, 4096) if dense else 1024
        qs, ls = [], []
        for start in steps(q.shape[0], chunk, "autofj blocking"):
            scores = (q[start:start + chunk] @ self.weights_t).tocsr()
            r, c = top_k_dense(scores, self.k) if dense else top_k_with_ties(scores, self.k)
            qs.append(r + start)
            ls.append(c)
        if not qs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(qs), np.concatenate(ls)


    def _budget_candidates(self, q: sp.csr_matrix, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """Candidates under the probe budget (module docstring), chunk by chunk of queries."""
        df = np.diff(self.weights_t.indptr)
        qs, ls = [], []
        for start in steps(q.shape[0], chunk, "autofj blocking"):
            qc = q[start:start + chunk]
            probe = sp_matmul_topn(probe_tokens(qc, df, self.budget), self.weights_t, top_n=self.probe_keep,
                                   n_threads=_threads()).tocoo()
            qi, lj = probe.row.astype(np.int64), probe.col.astype(np.int64)
            exact = np.asarray(qc[qi].multiply(self.weights[lj]).sum(axis=1)).ravel()
            keep = top_k_pairs(qi, exact, qc.shape[0], self.k)
            order = np.lexsort((lj[keep], qi[keep]))
            qs.append(qi[keep][order] + start)
            ls.append(lj[keep][order])
        if not qs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(qs), np.concatenate(ls)


def probe_tokens(q: sp.csr_matrix, df: np.ndarray, budget: int) -> sp.csr_matrix:
    """Per query row, its tokens rarest first while the summed document frequencies stay <= budget
    (always at least the two rarest); a binary matrix of the same shape."""
    counts = np.diff(q.indptr)
    rows = np.repeat(np.arange(q.shape[0]), counts)
    f = df[q.indices]
    order = np.lexsort((q.indices, f, rows))
    r, c, f = rows[order], q.indices[order], f[order]
    before = np.repeat(np.concatenate([[0], np.cumsum(np.bincount(r, f, q.shape[0]))[:-1]]), counts)
    rank = np.arange(len(r)) - np.repeat(q.indptr[:-1], counts)
    keep = (np.cumsum(f) - before <= budget) | (rank < 2)
    return sp.csr_matrix((np.ones(int(keep.sum())), (r[keep], c[keep])), shape=q.shape)


def top_k_pairs(rows: np.ndarray, scores: np.ndarray, n_rows: int, k: int) -> np.ndarray:
    """Mask of the pairs whose score is >= their row's k-th largest (all of a row's pairs if <= k)."""
    order = np.lexsort((-scores, rows))
    counts = np.bincount(rows, minlength=n_rows)
    rank = np.empty(len(rows), np.int64)
    rank[order] = np.arange(len(rows)) - np.repeat(np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    kth = np.full(n_rows, -np.inf)
    at = rank == k - 1
    kth[rows[at]] = scores[at]
    return scores >= kth[rows]


def top_k_dense(scores: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """`top_k_with_ties` through a dense block and a partial sort per row (same result)."""
    counts = np.diff(scores.indptr)
    d = np.full(scores.shape, -np.inf)
    rows = np.repeat(np.arange(scores.shape[0]), counts)
    d[rows, scores.indices] = scores.data
    kth = np.full(scores.shape[0], -np.inf)
    big = counts > k
    if big.any() and scores.shape[1] >= k:
        kth[big] = -np.partition(-d[big], k - 1, axis=1)[:, k - 1]
    r, c = np.nonzero((d >= kth[:, None]) & (d > -np.inf))
    return r.astype(np.int64), c.astype(np.int64)


def top_k_with_ties(scores: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the columns whose score is >= the row's k-th largest (all of them if <= k); sorted pairs.

    Entries are the structurally non-zero products, i.e. the L rows sharing a token with the query.
    """
    scores.sort_indices()
    counts = np.diff(scores.indptr)
    rows = np.repeat(np.arange(scores.shape[0]), counts)
    cols, vals = scores.indices.astype(np.int64), scores.data
    keep = np.ones(len(vals), bool)
    big = counts > k
    if big.any():
        order = np.lexsort((-vals, rows))  # by row, then score descending
        rank = np.arange(len(vals)) - np.repeat(scores.indptr[:-1], counts)
        kth = np.full(scores.shape[0], -np.inf)
        at_k = order[rank == k - 1]
        kth[rows[at_k]] = vals[at_k]
        kth[~big] = -np.inf
        keep = vals >= kth[rows]
    return rows[keep], cols[keep]
