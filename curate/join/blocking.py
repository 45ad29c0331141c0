"""Blocking: top-k TF-IDF candidates of L for each query row, by sparse matrix products (specs/autofj.md step 1).

A record is normalised by `text.blocking_key`; its tokens are the padded character 3-grams of that
string plus its words (one token space, as in the reference). With idf(x) = ln(|L| / (df(x) + 1)) and
tf_l(x) = count_l(x) / |tokens(l)|, the score is s(l, r) = sum over the distinct tokens x of r of
idf(x)·tf_l(x), i.e. one row of Q_binary @ (TF_L * idf)^T. Each query keeps its k best L rows plus
every row tied with the k-th score; k = min(floor(sqrt(|L|)), 50).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from curate.join.text import Tokens, Vocabulary, blocking_key, blocking_tokens, count_matrix, pad_columns


def default_k(n_left: int) -> int:
    return min(int(math.pow(n_left, 0.5)), 50)


def _tokens(keys: list[str]) -> Tokens:
    return blocking_tokens(keys)


@dataclass
class BlockingIndex:
    """L's TF-IDF matrix (transposed for the product) and its vocabulary."""

    vocab: Vocabulary
    weights_t: sp.csc_matrix  # (vocabulary x |L|): idf(x) * tf_l(x)
    k: int
    n_left: int
    max_postings: int | None = None

    @classmethod
    def build(cls, left_values: list[str], k: int | None = None, max_postings: int | None = None) -> BlockingIndex:
        """L's index. `max_postings` (ours, off by default): tokens held by more L rows than this are left
        out of the scores, which bounds the work per query (scale mode; it changes the candidates)."""
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
        if max_postings is not None:
            weights = (weights @ sp.diags((df <= max_postings).astype(np.float64))).tocsr()
            weights.eliminate_zeros()
        return cls(vocab, weights.T.tocsr(), default_k(n) if k is None else k, n, max_postings)

    def query_matrix(self, values: list[str]) -> sp.csr_matrix:
        """Binary (distinct-token) rows of query records over L's vocabulary; unseen tokens dropped."""
        m = count_matrix(_tokens(blocking_key(values)), self.vocab)
        m = m[:, :len(self.vocab)] if m.shape[1] > len(self.vocab) else pad_columns(m, len(self.vocab))
        m.data[:] = 1.0
        return m.tocsr()

    def candidates(self, values: list[str], dense_cells: int = 8_000_000) -> tuple[np.ndarray, np.ndarray]:
        """(query row, L row) pairs that survive blocking, sorted by query then L row.

        Queries go in chunks; a chunk's scores are made dense (at most `dense_cells` cells) when at least
        64 queries fit, where a partial sort per row beats sorting the sparse entries.
        """
        q = self.query_matrix(values)
        rows_dense = dense_cells // max(self.n_left, 1)
        dense = rows_dense >= 64
        chunk = min(rows_dense, 4096) if dense else 1024
        qs, ls = [], []
        for start in range(0, q.shape[0], chunk):
            scores = (q[start:start + chunk] @ self.weights_t).tocsr()
            r, c = top_k_dense(scores, self.k) if dense else top_k_with_ties(scores, self.k)
            qs.append(r + start)
            ls.append(c)
        if not qs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(qs), np.concatenate(ls)


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
