"""The join functions' distances over candidate pairs, vectorised (docs/methods/autofj.md, "Join functions").

Set distances: every distance of one (pre-processing, tokenizer, weight) view comes from one pass over
the pairs: the weighted intersection W(A∩B), the distinct-token intersection count and the weighted
count product (cosine), against per-row W(A), |A| and ||w·c_A|| computed once. Character distances
use rapidfuzz's pairwise scorers. Each denominator gets + 1e-9 as in the reference.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from rapidfuzz import process
from rapidfuzz.distance import JaroWinkler, Levenshtein

SET_DISTANCES = ("jaccardDistance", "cosineDistance", "diceDistance", "maxincDistance", "intersectDistance",
                 "containJaccardDistance", "containCosineDistance", "containDiceDistance")
CHAR_DISTANCES = ("editDistance", "jaroDistance")
EPS = 1e-9


def idf_weights(counts_l: sp.csr_matrix, width: int) -> np.ndarray:
    """w(x) = ln(|L| / (df_L(x) + 1)) over L's rows; columns L never holds get ln|L|."""
    n = counts_l.shape[0]
    df = np.bincount(counts_l.indices, minlength=width)[:width].astype(np.float64)
    w = np.log(n / (df + 1.0))
    w[df == 0] = np.log(n)
    return w


@dataclass
class SideStats:
    """Per-row numbers of one side of a view: W(A), |A| (distinct tokens), ||w·c_A||."""

    binary: sp.csr_matrix
    counts: sp.csr_matrix
    w_sum: np.ndarray
    size: np.ndarray
    norm: np.ndarray


def side_stats(counts: sp.csr_matrix, w: np.ndarray) -> SideStats:
    binary = counts.copy()
    binary.data = np.ones_like(binary.data)
    weighted = counts.multiply(w[None, :]).tocsr() if counts.nnz else counts
    norm = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    return SideStats(binary, counts, binary @ w, np.diff(binary.indptr), norm)


def _rowwise(a: sp.csr_matrix, rows_a: np.ndarray, b: sp.csr_matrix, rows_b: np.ndarray) -> sp.csr_matrix:
    """Element-wise product of row rows_a[i] of a and row rows_b[i] of b, for every pair i."""
    return a[rows_a].multiply(b[rows_b]).tocsr()


def set_distances(left: SideStats, right: SideStats, w: np.ndarray, li: np.ndarray, ri: np.ndarray,
                  names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named set distances between rows li of `left` and ri of `right` (float64, one per pair)."""
    out: dict[str, np.ndarray] = {}
    if len(li) == 0:
        return {n: np.zeros(0) for n in names}
    inter = _rowwise(left.binary, li, right.binary, ri)
    wi = inter @ w
    ni = np.diff(inter.indptr)
    wa, wb = left.w_sum[li], right.w_sum[ri]
    wu = wa + wb - wi
    contained = ni == np.minimum(left.size[li], right.size[ri])
    cos = None
    if any("osine" in n for n in names):
        uv = _rowwise(left.counts, li, right.counts, ri) @ (w * w)
        cos = 1.0 - uv / (left.norm[li] * right.norm[ri] + EPS)
    for n in names:
        if n in ("jaccardDistance", "containJaccardDistance"):
            d = 1.0 - wi / (wu + EPS)
        elif n in ("cosineDistance", "containCosineDistance"):
            d = cos
        elif n in ("diceDistance", "containDiceDistance"):
            d = 1.0 - 2.0 * wi / (wi + wu + EPS)
        elif n == "maxincDistance":
            d = 1.0 - wi / (np.minimum(wa, wb) + EPS)
        elif n == "intersectDistance":
            d = 1.0 - wi / (wi + wu + EPS)
        else:
            raise ValueError(f"unknown set distance {n!r}; known: {', '.join(SET_DISTANCES)}")
        if n.startswith("contain"):
            d = np.where(contained, d, 1.0)
        out[n] = np.asarray(d, np.float64)
    return out


def char_distances(left: list[str], right: list[str], li: np.ndarray, ri: np.ndarray, name: str,
                   workers: int = 1) -> np.ndarray:
    """editDistance (raw Levenshtein count) or jaroDistance (1 - Jaro-Winkler) of pre-processed strings."""
    if len(li) == 0:
        return np.zeros(0)
    la, ra = np.asarray(left, dtype=object), np.asarray(right, dtype=object)
    a, b = la[li], ra[ri]
    if name == "editDistance":
        return process.cpdist(a, b, scorer=Levenshtein.distance, workers=workers, dtype=np.int64).astype(np.float64)
    if name == "jaroDistance":
        sim = process.cpdist(a, b, scorer=JaroWinkler.similarity, workers=workers, dtype=np.float64)
        # jellyfish (the reference) scores two empty strings 0, rapidfuzz 1.
        empty_l = np.fromiter((not x for x in left), bool, len(left))
        empty_r = np.fromiter((not x for x in right), bool, len(right))
        sim[empty_l[li] & empty_r[ri]] = 0.0
        return 1.0 - sim
    raise ValueError(f"unknown character distance {name!r}; known: {', '.join(CHAR_DISTANCES)}")
