"""Pre-processing and tokenising of join keys, as the reference code does it (docs/methods/autofj.md).

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
import pyarrow as pa
import scipy.sparse as sp
from nltk.stem.porter import PorterStemmer

from kernels.hashing import hash_strings

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
    def from_tokens(cls, tokens: list[str] | np.ndarray) -> Vocabulary:
        arr = tokens if isinstance(tokens, np.ndarray) else np.asarray(tokens, dtype=object)
        return cls(pd.Index(pd.unique(arr)))

    def __len__(self) -> int:
        return len(self.index)

    def encode(self, tokens: list[str]) -> tuple[np.ndarray, int]:
        """Column ids of tokens, and how many distinct unseen tokens got ids >= len(self)."""
        arr = tokens if isinstance(tokens, np.ndarray) else np.asarray(tokens, dtype=object)
        ids = self.index.get_indexer(arr) if len(arr) else np.zeros(0, np.int64)
        unseen = ids < 0
        n_new = 0
        if unseen.any():
            codes, uniq = pd.factorize(arr[unseen])
            ids[unseen] = len(self) + codes
            n_new = len(uniq)
        return ids.astype(np.int64), n_new


@dataclass
class Tokens:
    """Tokens of many strings, flat: `flat[starts[i]:starts[i] + lengths[i]]` are string i's tokens."""

    flat: np.ndarray  # object (words) or uint64 (3-gram codes)
    lengths: np.ndarray


_WORD_BIT = np.uint64(1) << np.uint64(63)


def gram_codes(values: list[str]) -> Tokens:
    """Padded 3-grams of each string as uint64 codes (21 bits per code point), vectorised.

    Same grams as `three_grams`: the string is padded with '$$' on both sides; a code packs the three
    code points, so equal codes are equal 3-grams.
    """
    padded = ["$$" + v + "$$" for v in values]
    lengths = np.fromiter((len(p) for p in padded), np.int64, len(padded))
    if not len(padded):
        return Tokens(np.zeros(0, np.uint64), np.zeros(0, np.int64))
    cps = np.frombuffer("".join(padded).encode("utf-32-le"), np.uint32).astype(np.uint64)
    ends = np.cumsum(lengths)
    valid = np.ones(len(cps), bool)
    valid[ends - 1] = False
    valid[ends - 2] = False
    i = np.flatnonzero(valid)
    codes = (cps[i] << np.uint64(42)) | (cps[i + 1] << np.uint64(21)) | cps[i + 2]
    return Tokens(codes, lengths - 2)


def word_tokens(values: list[str]) -> Tokens:
    lists = [v.split() for v in values]
    lengths = np.fromiter((len(t) for t in lists), np.int64, len(lists))
    return Tokens(np.array([w for t in lists for w in t], dtype=object), lengths)


def blocking_tokens(keys: list[str]) -> Tokens:
    """The blocker's tokens: padded 3-grams plus words, in one space (a 3-letter word is that 3-gram)."""
    grams, words = gram_codes(keys), word_tokens(keys)
    w = words.flat
    wcodes = np.zeros(len(w), np.uint64)
    if len(w):
        wlen = np.fromiter((len(x) for x in w), np.int64, len(w))
        three = wlen == 3
        if three.any():
            wcodes[three] = gram_codes(list(w[three])).flat.reshape(-1, 5)[:, 2]  # "$$xyz$$" -> "xyz"
        other = ~three
        if other.any():
            # Any other word: its 63-bit xxh3 hash, top bit set so that it never equals a 3-gram code.
            wcodes[other] = hash_strings(pa.array(w[other].tolist(), pa.string())) | _WORD_BIT
    return concat_rows(grams, Tokens(wcodes, words.lengths))


def concat_rows(a: Tokens, b: Tokens) -> Tokens:
    """Row i holds a's tokens of row i, then b's."""
    rows = np.concatenate([np.repeat(np.arange(len(a.lengths)), a.lengths),
                           np.repeat(np.arange(len(b.lengths)), b.lengths)])
    flat = np.concatenate([a.flat, b.flat])
    order = np.argsort(rows, kind="stable")
    return Tokens(flat[order], a.lengths + b.lengths)


def view_tokens(values: list[str], method: str) -> Tokens:
    """Tokens of pre-processed strings for a join function's tokenizer (repeats kept)."""
    if method == "splitBySpace":
        return word_tokens(values)
    if method == "threeGram":
        return gram_codes([" ".join(v.split()) for v in values])
    raise ValueError(f"unknown tokenizer {method!r}; known: {', '.join(TOKENIZERS)}")


def token_lists(values: list[str], method: str) -> list[list[str]]:
    return [tokenize(v, method) for v in values]


def count_matrix(lists: list[list[str]] | Tokens, vocab: Vocabulary, width: int | None = None) -> sp.csr_matrix:
    """Rows = strings, columns = vocabulary ids, values = token counts (repeats summed)."""
    if isinstance(lists, Tokens):
        lengths, flat = lists.lengths, lists.flat
    else:
        lengths = np.fromiter((len(t) for t in lists), np.int64, len(lists))
        flat = [tok for t in lists for tok in t]
    ids, n_new = vocab.encode(flat)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    ncol = max(width or 0, len(vocab) + n_new)
    m = sp.csr_matrix((np.ones(len(ids), np.float64), (rows, ids)), shape=(len(lengths), ncol))
    m.sum_duplicates()
    return m


def pad_columns(m: sp.csr_matrix, width: int) -> sp.csr_matrix:
    """The same matrix with `width` columns (extra columns are empty)."""
    if m.shape[1] == width:
        return m
    return sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], width))
