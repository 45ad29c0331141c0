"""Word n-gram shingles straight from Arrow's UTF-8 buffers, compiled (numba): split on ASCII white space,
hash each word (FNV-1a, then the splitmix64 finaliser), hash each run of n consecutive words.

On rows marked `fold` the kernel also lower-cases ASCII letters, splits on ASCII control characters
(a backspace or escape is a separator, not part of a word) and, with `punct`, on ASCII punctuation and
symbols: on pure-ASCII text that is exactly what the regex normalisations do (NFKC is the identity there),
at a tenth of their cost.

The numpy form (split with Arrow, hash the words 8 bytes at a time, n masked passes for the n-grams) took
about 7x longer per shard, most of it in the split and the word hashes.
"""
from __future__ import annotations

import string

import numba
import numpy as np
import pyarrow as pa

from kernels.mix import mix

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


_PUNCT = np.zeros(256, np.bool_)
_PUNCT[list(string.punctuation.encode())] = True  # the ASCII characters of Unicode's P and S categories


@numba.njit(cache=True, nogil=True)
def _word_ngrams(data: np.ndarray, offsets: np.ndarray, valid: np.ndarray, n: int, fold: np.ndarray,
                 punct: bool, punct_table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = len(offsets) - 1
    out = np.empty(max(1, len(data)), np.uint64)  # at most one n-gram per byte
    row_offsets = np.zeros(rows + 1, np.int64)
    words = np.empty(max(1, len(data)), np.uint64)
    k = 0
    for r in range(rows):
        w = 0
        if valid[r]:
            h = _FNV_OFFSET
            inword = False
            folding = fold[r]
            for i in range(offsets[r], offsets[r + 1]):
                c = data[i]
                if folding:
                    if c >= 65 and c <= 90:
                        c += 32
                    elif c < 32 or c == 127:  # control characters (Unicode Cc) separate words
                        c = 32
                    elif punct and punct_table[c]:
                        c = 32
                if c == 32 or (c >= 9 and c <= 13):
                    if inword:
                        words[w] = mix(h)
                        w += 1
                        h = _FNV_OFFSET
                        inword = False
                else:
                    h = (h ^ np.uint64(c)) * _FNV_PRIME
                    inword = True
            if inword:
                words[w] = mix(h)
                w += 1
        if w > 0:
            size = min(w, n)
            for s in range(max(w - n + 1, 1)):
                g = mix(np.uint64(size))
                for j in range(size):
                    g = mix(g ^ words[s + j])
                out[k] = g
                k += 1
        row_offsets[r + 1] = k
    return out[:k].copy(), row_offsets


def word_ngrams(texts: pa.Array, n: int, fold: np.ndarray | None = None,
                punct: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, offsets): each text's word n-gram hashes in order (a text of fewer than n words: one hash
    of all its words; a null or blank text: none). On `fold` rows, ASCII letters are lower-cased, control
    characters separate words and, with `punct`, so do ASCII punctuation and symbols."""
    arr = texts.cast(pa.large_string())
    if len(arr) == 0:
        return np.zeros(0, np.uint64), np.zeros(1, np.int64)
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset:arr.offset + len(arr) + 1]
    raw = arr.buffers()[2]
    data = np.frombuffer(raw, np.uint8) if raw is not None else np.zeros(0, np.uint8)
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), bool)
    fold = np.zeros(len(arr), np.bool_) if fold is None else np.ascontiguousarray(fold, np.bool_)
    return _word_ngrams(data, np.ascontiguousarray(offsets), valid, n, fold, punct, _PUNCT)


@numba.njit(cache=True, nogil=True)
def unique_per_row(values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's values (rows given by int64 offsets) sorted and deduplicated: (values, offsets). One sort
    per row in place of one lexsort over every (row, value) pair of the batch."""
    rows = len(offsets) - 1
    out = np.empty(len(values), values.dtype)
    out_off = np.zeros(rows + 1, np.int64)
    k = 0
    for r in range(rows):
        seg = np.sort(values[offsets[r]:offsets[r + 1]])
        for i in range(len(seg)):
            if i == 0 or seg[i] != seg[i - 1]:
                out[k] = seg[i]
                k += 1
        out_off[r + 1] = k
    return out[:k].copy(), out_off
