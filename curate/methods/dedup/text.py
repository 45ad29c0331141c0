"""Text for deduplication: the declared normalisations, and word or character n-gram shingles as
64-bit hashes (vectorised over a whole batch: one numpy pass per n-gram position)."""
from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kernels.hashing import mix64
from kernels.shingles import unique_per_row as _unique_per_row
from kernels.shingles import word_ngrams

Normalize = Literal["none", "whitespace_case", "nfkc_punct"]
NORMALIZE_HELP = ("`none`, `whitespace_case` (lower case, runs of white space and control characters as one "
                  "space), `nfkc_punct` (NFKC, punctuation and symbols as spaces, then whitespace_case)")


def normalize(texts: pa.Array, how: Normalize) -> pa.Array:
    """`none` as is; `whitespace_case`: lower case, runs of white space and control characters (Unicode Cc:
    a backspace or escape inside a word must not make it another word) as one space, trimmed;
    `nfkc_punct`: NFKC first, then runs of punctuation, symbols, white space and control characters as one
    space, as above. (One regex pass each: the white space and punctuation passes apart cost three times as
    much.)"""
    if how == "none":
        return texts
    if how == "nfkc_punct":
        texts = pc.replace_substring_regex(pc.utf8_normalize(texts, form="NFKC"), r"[\p{P}\p{S}\p{Z}\p{Cc}\s]+", " ")
    else:
        texts = pc.replace_substring_regex(texts, r"[\p{Z}\p{Cc}\s]+", " ")
    return pc.utf8_trim_whitespace(pc.utf8_lower(texts))


def _grams(units: np.ndarray, counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every run of n consecutive units within each row (a row shorter than n: one hash of
    all its units), and each row's offsets into them."""
    starts = np.concatenate([[0], np.cumsum(counts)])[:-1]
    per_row = np.where(counts > 0, np.maximum(counts - n + 1, 1), 0)
    offsets = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int64)
    row = np.repeat(np.arange(len(counts)), per_row)
    first = starts[row] + (np.arange(offsets[-1]) - offsets[row])  # each gram's first unit
    size = np.minimum(counts[row], n)
    h = mix64(size.astype(np.uint64))
    padded = np.concatenate([units, np.zeros(n, np.uint64)])
    for k in range(n):
        h = np.where(k < size, mix64(h ^ padded[first + k]), h)
    return h, offsets


def shingles(texts: pa.Array, unit: Literal["word", "char"], n: int,
             distinct: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, offsets): the n-gram hashes of each text (word n-grams split on ASCII white space:
    kernels/shingles.py; or n-grams of code points), each once when `distinct` (min-hashes do not need it);
    a text of fewer than n units is one shingle of them all; a null or empty text has none."""
    texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    if unit == "word":
        h, offsets = word_ngrams(texts, n)
        return unique_per_row(h, offsets) if distinct else (h, offsets)
    raw = [t.encode("utf-32-le") for t in pc.fill_null(texts, "").to_pylist()]  # code points as uint32
    counts = np.array([len(r) // 4 for r in raw], np.int64)
    units = np.frombuffer(b"".join(raw), np.uint32).astype(np.uint64)
    h, offsets = _grams(units, counts, n)
    return unique_per_row(h, offsets) if distinct else (h, offsets)


def text_shingles(texts: pa.Array, how: Normalize, unit: Literal["word", "char"], n: int,
                  distinct: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """`shingles(normalize(texts, how), ...)`, with pure-ASCII rows of word shingles normalised inside the
    compiled kernel (the same words: kernels/shingles.py) and only the other rows through the regexes."""
    texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    if unit != "word" or how == "none":
        return shingles(normalize(texts, how), unit, n, distinct)
    ascii_rows = pc.fill_null(pc.string_is_ascii(texts), True).to_numpy(zero_copy_only=False)
    if not ascii_rows.all():
        other = pa.array(~ascii_rows)
        texts = pc.replace_with_mask(texts, other, normalize(pc.filter(texts, other), how))
    h, offsets = word_ngrams(texts, n, fold=ascii_rows, punct=how == "nfkc_punct")
    return unique_per_row(h, offsets) if distinct else (h, offsets)


def unique_per_row(values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's values sorted and deduplicated (rows given by offsets; kernels/shingles.py)."""
    return _unique_per_row(np.ascontiguousarray(values), np.asarray(offsets, np.int64))
