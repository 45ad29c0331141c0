"""langid.py's byte n-gram naive Bayes language identifier (Lui & Baldwin 2012) over a whole batch, compiled
(numba) where it was a Python loop per byte.

The model (py3langid's, read by `curate/methods/langid/naive_bayes.py` from the wheel that ships it) is an
Aho-Corasick automaton over UTF-8 bytes whose states emit n-gram features, a float16 table of per-class
feature weights, and per-class priors. A text's score per class is `log1p(count of each feature) @ weights +
priors`, scaled by 1/sqrt(bytes), turned into probabilities by a softmax, with classes that share a label
(two scripts of one language) summed into the first.

`visits` walks every row's bytes through the automaton in one compiled pass and lists, per row, each feature
once in the order it was first reached with its count: that order is the order of the reference's sparse
vector, so that `scores` computes the same float32 sums and so the same language and confidence, bit for bit.
"""
from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def visits(data, offsets, nextmove, rowbase, out_feat, n_features):
    """Per row i, (features, counts)[starts[i]:starts[i + 1]]: the features the automaton emits on the bytes
    data[offsets[i]:offsets[i + 1]], each once, in order of first emission, with how often it was emitted."""
    n = len(offsets) - 1
    starts = np.zeros(n + 1, np.int64)
    features = np.empty(len(data), np.int32)  # a row emits at most one feature per byte
    counts = np.zeros(len(data), np.int32)
    slot = np.full(n_features, -1, np.int64)  # where a feature sits in the current row's list, or -1
    k = 0
    for i in range(n):
        first = k
        state = 0
        for p in range(offsets[i], offsets[i + 1]):
            state = nextmove[rowbase[state] + data[p]]
            f = out_feat[state]
            if f >= 0:
                if slot[f] < first:
                    slot[f] = k
                    features[k] = f
                    k += 1
                counts[slot[f]] += 1
        starts[i + 1] = k
    return starts, features[:k], counts[:k]


def probabilities(starts: np.ndarray, features: np.ndarray, counts: np.ndarray, lengths: np.ndarray,
                  weights: np.ndarray, priors: np.ndarray, aliases: list[tuple[int, int]]) -> np.ndarray:
    """Probabilities per class of every row (from `visits`; `lengths`: each row's bytes), float32 (rows x
    classes), with alias columns folded into the first.

    py3langid 0.4.0 with norm_probs=True (its `_sparse_score` and `_decide`) does per text: `log1p(counts) @
    weights[features] + priors` (or zeros for a text without features), times 1/sqrt(bytes), exp(s - max),
    divided by the sum. The same float32 operations here, so the same results bit for bit: the products one
    matrix-vector product per row as there (BLAS sums in an order that depends on the row's length), the
    rest elementwise or along each row over the whole batch (NumPy sums a contiguous row as it sums a vector)."""
    n = len(starts) - 1
    s = np.zeros((n, len(priors)), np.float32)
    logc = np.log1p(counts.astype(np.float32))
    has = starts[1:] > starts[:-1]
    for i in np.flatnonzero(has).tolist():
        a, b = starts[i], starts[i + 1]
        s[i] = logc[a:b] @ weights[features[a:b]]
    s[has] += priors
    s *= (1.0 / np.sqrt(np.maximum(lengths, 1).astype(np.float64))).astype(np.float32)[:, None]
    s -= s.max(axis=1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=1, keepdims=True)
    for i, j in aliases:
        s[:, i] += s[:, j]
        s[:, j] = 0.0
    return s


def scores(features: np.ndarray, counts: np.ndarray, n_bytes: int, weights: np.ndarray, priors: np.ndarray,
           aliases: list[tuple[int, int]]) -> np.ndarray:
    """`probabilities` of one row, as py3langid computes them per text (the reference the batch is tested
    against)."""
    if len(features):
        s = np.log1p(counts.astype(np.float32)) @ weights[features] + priors
    else:
        s = np.zeros(len(priors), np.float32)
    s *= 1.0 / math.sqrt(n_bytes or 1)
    np.exp(s - s.max(), out=s)
    s /= s.sum()
    for i, j in aliases:
        s[i] += s[j]
        s[j] = 0.0
    return s
