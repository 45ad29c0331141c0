"""Word n-gram overlap against a hashed set, compiled (numba), straight from Arrow's UTF-8 buffers.

Words are what dedup's `nfkc_punct` normalisation makes of a text once NFKC has been applied (the caller does
that): letters lower-cased, runs of punctuation, symbols, separators, white space and control characters split
words. Unlike a regex pass over a copy, the kernel reads the original bytes and keeps every word's position, so
an overlap can be cut out of the text or shown in it.

A word's hash is FNV-1a over its lower-cased code points (on ASCII, byte for byte the hash kernels/shingles.py
gives), finished with splitmix64; an n-gram's hash mixes its size, then its words in order. The benchmark side
is a sorted uint64 array (`np.searchsorted` in the compiled loop: a few cache misses per n-gram, and 12 bytes an
n-gram with its item number, a quarter of a Python set's).
"""
from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kernels.mix import mix

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
TABLE_SIZE = 0x30000  # planes 0-2: every letter with a case, and the punctuation and symbols of real text


def _tables() -> tuple[np.ndarray, np.ndarray]:
    """(separator per code point, lower case per code point), asked of the same engines as dedup's normalisation:
    RE2's `[\\p{P}\\p{S}\\p{Z}\\p{Cc}\\s]` separates words; Arrow's utf8_lower gives the lower case (kept only
    where it is one code point: it is, for every letter of these planes)."""
    cps = np.arange(TABLE_SIZE)
    cps = cps[(cps < 0xD800) | (cps > 0xDFFF)]  # surrogates are not characters
    size = 1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000)  # UTF-8 bytes of each
    data = "".join(map(chr, cps)).encode()
    chars = pa.StringArray.from_buffers(len(cps), pa.py_buffer(np.concatenate([[0], np.cumsum(size)]).astype(np.int32)),
                                        pa.py_buffer(data))
    sep = np.zeros(TABLE_SIZE, np.bool_)
    sep[cps] = pc.match_substring_regex(chars, r"^[\p{P}\p{S}\p{Z}\p{Cc}\s]$").to_numpy(zero_copy_only=False)
    lowered = pc.utf8_lower(chars)
    single = (pc.utf8_length(lowered).to_numpy(zero_copy_only=False) == 1)
    lower = np.arange(TABLE_SIZE, dtype=np.int32)
    one = pc.filter(lowered, pa.array(single))
    text = "".join(one.to_pylist())
    lower[cps[single]] = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    return sep, lower


SEP, LOWER = _tables()
UNICODE_VERSION = f"arrow {pa.__version__}"  # RE2 and utf8proc come with Arrow: their tables shape the words


@numba.njit(cache=True, nogil=True)
def _words(data, offsets, valid, sep, lower, cap):
    """Every word of every row: its hash and [first byte, end byte); each row's offsets into them; and whether
    `cap` words were enough (else the caller asks again with more). Malformed UTF-8 cannot occur: Arrow
    validated the strings. (Arrays rebound inside the loop, to grow them, made it seven times slower.)"""
    rows = len(offsets) - 1
    hashes = np.empty(cap, np.uint64)
    pos = np.empty((cap, 2), np.int64)
    row_words = np.zeros(rows + 1, np.int64)
    w = 0
    top = len(sep)
    for r in range(rows):
        if valid[r]:
            i = offsets[r]
            end = offsets[r + 1]
            h = _FNV_OFFSET
            inword = False
            while i < end:
                c = np.int64(data[i])
                size = 1
                if c >= 0x80:  # decode the code point: lower case and separators are per code point
                    if c >= 0xF0:
                        c = ((c & 7) << 18) | ((np.int64(data[i + 1]) & 63) << 12) | \
                            ((np.int64(data[i + 2]) & 63) << 6) | (np.int64(data[i + 3]) & 63)
                        size = 4
                    elif c >= 0xE0:
                        c = ((c & 15) << 12) | ((np.int64(data[i + 1]) & 63) << 6) | (np.int64(data[i + 2]) & 63)
                        size = 3
                    else:
                        c = ((c & 31) << 6) | (np.int64(data[i + 1]) & 63)
                        size = 2
                if c < top and sep[c]:
                    if inword:
                        hashes[w] = mix(h)
                        pos[w, 1] = i
                        w += 1
                        h = _FNV_OFFSET
                        inword = False
                else:
                    if not inword:
                        if w == cap:
                            return hashes, pos, row_words, False
                        pos[w, 0] = i
                        inword = True
                    low = np.int64(lower[c]) if c < top else c
                    h = (h ^ np.uint64(low)) * _FNV_PRIME
                i += size
            if inword:
                hashes[w] = mix(h)
                pos[w, 1] = end
                w += 1
        row_words[r + 1] = w
    return hashes[:w].copy(), pos[:w].copy(), row_words, True


@numba.njit(cache=True, nogil=True, inline="always")
def _gram(words, s, size):
    g = mix(np.uint64(size))
    for j in range(size):
        g = mix(g ^ words[s + j])
    return g


@numba.njit(cache=True, nogil=True)
def _item_grams(words, row_words, n, min_words):
    """Each item's n-gram hashes (an item of min_words to n - 1 words: one hash of all of them; a shorter one:
    none), with the item's number."""
    total = 0
    for r in range(len(row_words) - 1):
        w = row_words[r + 1] - row_words[r]
        total += w - n + 1 if w >= n else (1 if w >= min_words else 0)
    out = np.empty(total, np.uint64)
    item = np.empty(total, np.int32)
    k = 0
    for r in range(len(row_words) - 1):
        a, w = row_words[r], row_words[r + 1] - row_words[r]
        if w >= n:
            for s in range(w - n + 1):
                out[k], item[k] = _gram(words, a + s, n), r
                k += 1
        elif w >= min_words:
            out[k], item[k] = _gram(words, a, w), r
            k += 1
    return out, item


@numba.njit(cache=True, nogil=True)
def _lookup(table, bits, shift, g):
    b = g >> shift  # a bitmap of the set's top hash bits answers most misses without the binary search
    if not (bits[b >> np.uint64(3)] >> (b & np.uint64(7))) & 1:
        return -1
    i = np.searchsorted(table, g)
    return i if i < len(table) and table[i] == g else -1


@numba.njit(cache=True, nogil=True)
def _match(words, row_words, n, sizes, table, bits, shift, items, n_items):
    """Per row: n-grams found (a short item's whole-item match counts one), longest run of covered words, the
    item with most finds (lowest number on a tie; -1: none); and the covered word runs as (first, last + 1)."""
    rows = len(row_words) - 1
    found = np.zeros(rows, np.int64)
    longest = np.zeros(rows, np.int64)
    top = np.full(rows, -1, np.int64)
    top_hits = np.zeros(rows, np.int64)
    runs = np.empty((max(1, len(words)), 2), np.int64)
    row_runs = np.zeros(rows + 1, np.int64)
    hits = np.zeros(n_items, np.int64)
    seen = np.empty(max(1, n_items), np.int64)
    k = 0
    for r in range(rows):
        a, w = row_words[r], row_words[r + 1] - row_words[r]
        cover = np.zeros(w + 1, np.int64)  # +1 at a match's first word, -1 after its last
        m = 0
        for size in sizes:
            for s in range(w - size + 1):
                j = _lookup(table, bits, shift, _gram(words, a + s, size))
                if j >= 0:
                    it = items[j]
                    if hits[it] == 0:
                        seen[m] = it
                        m += 1
                    hits[it] += 1
                    found[r] += 1
                    cover[s] += 1
                    cover[s + size] -= 1
        for q in range(m):
            it = seen[q]
            if hits[it] > top_hits[r] or (hits[it] == top_hits[r] and it < top[r]):
                top[r], top_hits[r] = it, hits[it]
            hits[it] = 0
        depth, start = 0, -1
        for s in range(w):
            depth += cover[s]
            if depth > 0 and start < 0:
                start = s
            elif depth == 0 and start >= 0:
                runs[k, 0], runs[k, 1] = start, s
                longest[r] = max(longest[r], s - start)
                k += 1
                start = -1
        if start >= 0:
            runs[k, 0], runs[k, 1] = start, w
            longest[r] = max(longest[r], w - start)
            k += 1
        row_runs[r + 1] = k
    return found, longest, top, top_hits, runs[:k].copy(), row_runs


@numba.njit(cache=True, nogil=True)
def _cut(data, offsets, pos, row_words, runs, row_runs):
    """The texts with each run of covered words removed, from its first word's first byte to the next word's
    first byte (the separators after it go with it; a run at the end takes the separators before it instead)."""
    rows = len(offsets) - 1
    out = np.empty(len(data), np.uint8)
    new_offsets = np.zeros(rows + 1, np.int64)
    k = 0
    for r in range(rows):
        i = offsets[r]
        a, w = row_words[r], row_words[r + 1] - row_words[r]
        for q in range(row_runs[r], row_runs[r + 1]):
            first, last = runs[q, 0], runs[q, 1]
            stop = pos[a + first, 0]
            if last >= w and first > 0:
                stop = pos[a + first - 1, 1]  # keep the text up to the end of the word before
            for b in range(i, stop):
                out[k] = data[b]
                k += 1
            i = pos[a + last, 0] if last < w else offsets[r + 1]
        for b in range(i, offsets[r + 1]):
            out[k] = data[b]
            k += 1
        new_offsets[r + 1] = k
    return out[:k].copy(), new_offsets


def arrow_buffers(texts: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes, offsets, valid) of a string array, without a copy of the bytes."""
    arr = texts.cast(pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset:arr.offset + len(arr) + 1] \
        if len(arr) else np.zeros(1, np.int64)
    raw = arr.buffers()[2] if len(arr) else None
    data = np.frombuffer(raw, np.uint8) if raw is not None else np.zeros(0, np.uint8)
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), bool)
    return data, np.ascontiguousarray(offsets), valid


def words(texts: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(word hashes, word positions [first byte, end byte), each row's word offsets)."""
    data, offsets, valid = arrow_buffers(texts)
    h, pos, row_words, complete = _words(data, offsets, valid, SEP, LOWER, max(16, len(data) // 5))
    if not complete:  # a word takes a byte and its separator another: at most half the bytes, plus one a row
        h, pos, row_words, complete = _words(data, offsets, valid, SEP, LOWER, len(data) // 2 + len(offsets))
    return h, pos, row_words


def item_grams(texts: pa.Array, n: int, min_words: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n-gram hashes, item number of each, words per item) of benchmark items."""
    h, _, row_words = words(texts)
    grams, item = _item_grams(h, row_words, n, min_words)
    return grams, item, np.diff(row_words)


def prefilter(table: np.ndarray) -> tuple[np.ndarray, np.uint64]:
    """A bitmap over the top bits of the sorted hashes (about 16 bits an n-gram: most misses find a 0) and the
    shift that takes a hash to its bit."""
    log2 = int(min(33, max(16, np.ceil(np.log2(max(1, len(table)) * 16)))))
    shift = np.uint64(64 - log2)
    bits = np.zeros(1 << (log2 - 3), np.uint8)
    top = table >> shift
    np.bitwise_or.at(bits, (top >> np.uint64(3)).astype(np.int64), (np.uint8(1) << (top & np.uint64(7)).astype(np.uint8)))
    return bits, shift


def match(texts: pa.Array, n: int, short_sizes: np.ndarray, table: np.ndarray, items: np.ndarray,
          n_items: int, bits: tuple[np.ndarray, np.uint64] | None = None) -> dict[str, np.ndarray]:
    """Per row of `texts`: `found`, `longest`, `top`, `top_hits`; the covered word runs as `runs` (word index
    within the row) and `row_runs`; `pos` and `row_words` (word positions) for spans and cuts. `bits`: the
    table's `prefilter`, made once (else here)."""
    h, pos, row_words = words(texts)
    sizes = np.concatenate([[n], np.asarray(short_sizes, np.int64)]).astype(np.int64)
    bitmap, shift = bits if bits is not None else prefilter(table)
    found, longest, top, top_hits, runs, row_runs = _match(h, row_words, n, sizes, table, bitmap, shift, items,
                                                           n_items)
    return {"found": found, "longest": longest, "top": top, "top_hits": top_hits, "runs": runs,
            "row_runs": row_runs, "pos": pos, "row_words": row_words}


def cut(texts: pa.Array, m: dict[str, np.ndarray]) -> pa.Array:
    """`texts` with the runs `match` found removed (nulls stay null)."""
    arr = texts.cast(pa.large_string())
    data, offsets, valid = arrow_buffers(arr)
    out, new_offsets = _cut(data, offsets, m["pos"], m["row_words"], m["runs"], m["row_runs"])
    mask = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.LargeStringArray.from_buffers(len(arr), pa.py_buffer(new_offsets), pa.py_buffer(out), mask,
                                            int((~valid).sum()))
