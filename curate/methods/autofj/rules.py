"""Negative rules (docs/methods/autofj.md step 2): word pairs that tell two L entities apart.

Learned from blocked L-L pairs whose stemmed word sets differ by exactly one word on each side, where
the candidate record has more than one word ("2008 summer olympics" / "2012 summer olympics" give
2008 <-> 2012). An L-R candidate is vetoed when some x in l \\ r and y in r \\ l form a rule.
Word sets use the blocker's normalisation (`text.blocking_key`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from curate.methods.autofj.functions import PAIR_CHUNK
from curate.methods.autofj.text import (
    Vocabulary,
    blocking_key,
    count_matrix,
    pad_columns,
)
from curate.progress import steps


def word_matrix(values: list[str], vocab: Vocabulary, width: int | None = None) -> sp.csr_matrix:
    m = count_matrix([k.split() for k in blocking_key(values)], vocab, width)
    m.data[:] = 1.0
    return m


def _single_diff(a: sp.csr_matrix, b: sp.csr_matrix) -> np.ndarray:
    """For row pairs whose set difference a \\ b holds exactly one word: that word's column."""
    d = (a - a.multiply(b)).tocsr()
    d.eliminate_zeros()
    return d.indices.astype(np.int64)


def _ragged_arange(counts: np.ndarray) -> np.ndarray:
    return np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)


@dataclass
class NegativeRules:
    """Rules as sorted int64 codes a * n_words + b over L's word vocabulary."""

    vocab: Vocabulary
    words_l: sp.csr_matrix
    codes: np.ndarray

    @property
    def pairs(self) -> list[tuple[str, str]]:
        n = len(self.vocab)
        words = self.vocab.index.to_numpy(dtype=object)
        return list(zip(words[self.codes // n].tolist(), words[self.codes % n].tolist()))

    @classmethod
    def learn(cls, left_values: list[str], cand: np.ndarray, query: np.ndarray) -> NegativeRules:
        """Rules from L-L blocked pairs (candidate row, query row), self pairs already removed."""
        keys = blocking_key(left_values)
        vocab = Vocabulary.from_tokens([w for k in keys for w in k.split()])
        words = word_matrix(left_values, vocab)
        size = np.diff(words.indptr)
        n = len(vocab)
        codes = [np.zeros(0, np.int64)]
        for s in steps(len(cand), PAIR_CHUNK, "autofj rules"):  # chunks bound the gathered rows' memory at large L
            c, q = cand[s:s + PAIR_CHUNK], query[s:s + PAIR_CHUNK]
            inter = np.diff(words[c].multiply(words[q]).tocsr().indptr)
            sel = (size[c] - inter == 1) & (size[q] - inter == 1) & (size[c] != 1)
            a = _single_diff(words[c[sel]], words[q[sel]])
            b = _single_diff(words[q[sel]], words[c[sel]])
            codes.append(np.unique(np.concatenate([a * n + b, b * n + a])))
        return cls(vocab, words, np.unique(np.concatenate(codes)))

    def veto(self, right_values: list[str], li: np.ndarray, ri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each L-R pair: vetoed?, and the code of the first rule that fired (-1 if none)."""
        n_pairs = len(li)
        fired = np.full(n_pairs, -1, np.int64)
        if n_pairs == 0 or len(self.codes) == 0:
            return np.zeros(n_pairs, bool), fired
        n = len(self.vocab)
        words_r = word_matrix(right_values, self.vocab)
        width = max(words_r.shape[1], n)
        wl, wr = pad_columns(self.words_l, width)[li], pad_columns(words_r, width)[ri]
        both = wl.multiply(wr)
        dl = (wl - both).tocsr()
        dr = (wr - both).tocsr()
        dl.eliminate_zeros()
        dr.eliminate_zeros()
        # Words of r outside L's vocabulary cannot be in a rule.
        dr = dr[:, :n].tocsr()
        ml, mr = np.diff(dl.indptr), np.diff(dr.indptr)
        # Cross product l \ r x r \ l of each pair.
        per_l = np.repeat(mr, ml)  # each l-word entry pairs with every r-word of its pair
        x = np.repeat(dl.indices.astype(np.int64), per_l)
        pair = np.repeat(np.repeat(np.arange(n_pairs), ml), per_l)
        start_r = np.repeat(np.repeat(dr.indptr[:-1], ml), per_l)
        y = dr.indices.astype(np.int64)[start_r + _ragged_arange(per_l)]
        code = x * n + y
        hit = np.isin(code, self.codes)
        vetoed = np.zeros(n_pairs, bool)
        vetoed[pair[hit]] = True
        # First firing rule of each vetoed pair (entries are in pair order).
        hp, first = np.unique(pair[hit], return_index=True)
        fired[hp] = code[hit][first]
        return vetoed, fired

    def describe(self, code: int) -> str:
        n = len(self.vocab)
        return f"{self.vocab.index[code // n]}↔{self.vocab.index[code % n]}"
