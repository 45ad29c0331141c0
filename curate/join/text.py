"""Pre-processing and tokenising of join keys, as the reference code does it (specs/autofj.md).

Pre-processing and stemming run over the distinct strings only (Porter stems are cached per distinct
word), and tokens become integer columns of a sparse matrix (`TokenMatrix`), so that every distance
of a view is a sparse product over candidate pairs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.sparse as sp
from nltk.stem.porter import PorterStemmer

PREPROCESS = ("lower", "lowerStem", "lowerRemovePunctuation", "lowerRemovePunctuationStem")
TOKENIZERS = ("threeGram", "splitBySpace")

_PUNCT = re.compile(r"[^\w\s]")
_STEMMER = PorterStemmer()


@lru_cache(maxsize=1 << 20)
def stem(word: str) -> str:
    """NLTK Porter stem (the reference's stemmer), cached: names repeat words a lot."""
    return _STEMMER.stem(word)


def _stem_words(s: str) -> str:
    return " ".join([stem(w) for w in s.split()])


def preprocess(values: list[str], method: str) -> list[str]:
    """One of the reference's four pre-processings, applied to each (distinct) string."""
    if method not in PREPROCESS:
        raise ValueError(f"unknown pre-processing {method!r}; known: {', '.join(PREPROCESS)}")
    uniq = pd.unique(np.asarray(values, dtype=object))
    out = [u.lower() for u in uniq]
    if "RemovePunctuation" in method:
        out = [_PUNCT.sub("", u) for u in out]
    if method.endswith("Stem"):
        out = [_stem_words(u) for u in out]
    if len(uniq) == len(values):
        return out
    lookup = dict(zip(uniq, out))
    return [lookup[v] for v in values]


@lru_cache(maxsize=1 << 20)
def _blocking_key(s: str) -> str:
    return _stem_words(_PUNCT.sub(" ", s.lower()))


def blocking_key(values: list[str]) -> list[str]:
    """The blocker's and negative rules' normalisation: lowercase, punctuation to a space, stem words.

    Cached per string: blocking, L-L blocking and the rules all normalise the same records.
    """
    return [_blocking_key(v) for v in values]


def three_grams(s: str) -> list[str]:
    """Character 3-grams of s padded with two '$' on each side (the `ngram` package's split).

    The empty string gives ['$$$', '$$$'], as in the reference.
    """
    p = "$$" + s + "$$"
    return [p[i:i + 3] for i in range(len(p) - 2)]


def tokenize(s: str, method: str) -> list[str]:
    """Tokens of a pre-processed string, repeats kept: words, or 3-grams of the whitespace-collapsed string."""
    if method == "splitBySpace":
        return s.split()
    if method == "threeGram":
        return three_grams(" ".join(s.split()))
    raise ValueError(f"unknown tokenizer {method!r}; known: {', '.join(TOKENIZERS)}")


@dataclass
class Vocabulary:
    """Token -> column, fixed by the reference table L; unseen tokens get columns after it per call."""

    index: pd.Index

    @classmethod
    def from_tokens(cls, tokens: list[str]) -> Vocabulary:
        return cls(pd.Index(pd.unique(np.asarray(tokens, dtype=object))))

    def __len__(self) -> int:
        return len(self.index)

    def encode(self, tokens: list[str]) -> tuple[np.ndarray, int]:
        """Column ids of tokens, and how many distinct unseen tokens got ids >= len(self)."""
        arr = np.asarray(tokens, dtype=object)
        ids = self.index.get_indexer(arr) if len(arr) else np.zeros(0, np.int64)
        unseen = ids < 0
        n_new = 0
        if unseen.any():
            codes, uniq = pd.factorize(arr[unseen])
            ids[unseen] = len(self) + codes
            n_new = len(uniq)
        return ids.astype(np.int64), n_new


def token_lists(values: list[str], method: str) -> list[list[str]]:
    return [tokenize(v, method) for v in values]


def count_matrix(lists: list[list[str]], vocab: Vocabulary, width: int | None = None) -> sp.csr_matrix:
    """Rows = strings, columns = vocabulary ids, values = token counts (repeats summed)."""
    lengths = np.fromiter((len(t) for t in lists), np.int64, len(lists))
    flat = [tok for t in lists for tok in t]
    ids, n_new = vocab.encode(flat)
    rows = np.repeat(np.arange(len(lists)), lengths)
    ncol = max(width or 0, len(vocab) + n_new)
    m = sp.csr_matrix((np.ones(len(ids), np.float64), (rows, ids)), shape=(len(lists), ncol))
    m.sum_duplicates()
    return m


def pad_columns(m: sp.csr_matrix, width: int) -> sp.csr_matrix:
    """The same matrix with `width` columns (extra columns are empty)."""
    if m.shape[1] == width:
        return m
    return sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], width))
