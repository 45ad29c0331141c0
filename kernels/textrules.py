"""Per-document counts of the web-text quality rules (Gopher quality and repetition, FineWeb), compiled (numba).

Each kernel makes one pass over a batch's UTF-8 bytes and its word tokens (`kernels/textwords.py`), and
returns integer counts per row; the stages turn them into ratios. Strings are compared by 64-bit hashes
(splitmix64 over a polynomial hash of the bytes, with the length): equal strings always match, and two
different ones match with probability ~2^-64 per pair.
The line and paragraph splits are those of the rules' Python definitions: `str.splitlines()` (Gopher
quality), `re.split("\\n+")` and `re.split("\\n{2,}", text.strip())` (Gopher repetition), `split("\\n")` (FineWeb).
"""
from __future__ import annotations

import numba
import numpy as np

from kernels.mix import mix
from kernels.textwords import ALPHA, LINEBREAK, SPACE, SYMBOL, TERMINAL, chars_in, decode

_BASE = np.uint64(0x100000001B3)


@numba.njit(cache=True, nogil=True)
def _poly(data, s, e):
    """(polynomial hash of the bytes [s, e), base ** (e - s)), both mod 2^64."""
    h, p = np.uint64(0), np.uint64(1)
    for i in range(s, e):
        h = h * _BASE + np.uint64(data[i]) + np.uint64(1)
        p = p * _BASE
    return h, p


@numba.njit(cache=True, nogil=True)
def _key(data, s, e):
    h, _ = _poly(data, s, e)
    return mix(h ^ mix(np.uint64(e - s)))


@numba.njit(cache=True, nogil=True)
def _table(m):
    size = 8
    while size < 2 * m:
        size *= 2
    return np.zeros(size, np.uint64), np.zeros(size, np.bool_), size - 1


@numba.njit(cache=True, nogil=True, inline="always")
def _slot(keys, used, mask, k):
    s = np.int64(k & np.uint64(mask))
    while used[s] and keys[s] != k:
        s = (s + 1) & mask
    return s


@numba.njit(cache=True, nogil=True)
def duplicates(keys, lens, m):
    """(elements equal to an earlier one, their summed lengths) among keys[:m]."""
    table, used, mask = _table(m)
    dup, chars = 0, 0
    for i in range(m):
        s = _slot(table, used, mask, keys[i])
        if used[s]:
            dup += 1
            chars += lens[i]
        else:
            used[s] = True
            table[s] = keys[i]
    return dup, chars


@numba.njit(cache=True, nogil=True)
def top_duplicate(keys, m):
    """(index of the first occurrence, count) of the most frequent of keys[:m]; among equally frequent ones,
    the one seen first (what `Counter.most_common(1)` returns)."""
    table, used, mask = _table(m)
    count = np.zeros(len(table), np.int64)
    first = np.zeros(len(table), np.int64)
    for i in range(m):
        s = _slot(table, used, mask, keys[i])
        if not used[s]:
            used[s] = True
            table[s] = keys[i]
            first[s] = i
        count[s] += 1
    best, best_count = -1, 0
    for s in range(len(table)):
        if used[s] and (count[s] > best_count or (count[s] == best_count and first[s] < best)):
            best, best_count = first[s], count[s]
    return best, best_count


# ---------------------------------------------------------------------------------------------------------
# Gopher quality
# ---------------------------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _word_facts(data, a, b, flags):
    """(characters, has a non-symbol character, has an alphabetic character) of the token [a, b)."""
    n, plain, alpha = 0, False, False
    i = a
    while i < b:
        cp, i = decode(data, i)
        n += 1
        f = flags[cp]
        plain |= not (f & SYMBOL)
        alpha |= (f & ALPHA) != 0
    return n, plain, alpha


@numba.njit(cache=True, nogil=True)
def _is_stop(data, a, b, stop_data, stop_off, k):
    if stop_off[k + 1] - stop_off[k] != b - a:
        return False
    for j in range(b - a):
        if data[a + j] != stop_data[stop_off[k] + j]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _gopher_lines(data, s, e, flags, out, r):
    """str.splitlines() lines of [s, e): out[r] = (lines, bullet lines, lines ending in an ellipsis)."""
    lines = bullets = ellipses = 0
    seen, bullet, ends, dots, pending = False, False, False, 0, False
    i = s
    while i < e:
        cp, j = decode(data, i)
        f = flags[cp]
        if f & LINEBREAK:
            lines += 1
            bullets += bullet
            ellipses += ends
            seen, bullet, ends, dots, pending = False, False, False, 0, False
            if cp == 13 and j < e and data[j] == 10:
                j += 1
        else:
            pending = True
            if f & SPACE:
                dots = 0
            else:
                if not seen:
                    seen, bullet = True, cp == 0x2022 or cp == 45
                dots = dots + 1 if cp == 46 else 0
                ends = cp == 0x2026 or dots >= 3
        i = j
    if pending:
        lines += 1
        bullets += bullet
        ellipses += ends
    out[r, 0], out[r, 1], out[r, 2] = lines, bullets, ellipses


@numba.njit(cache=True, nogil=True)
def gopher_quality(data, offsets, valid, spans, ptr, flags, stop_data, stop_off):
    """Per row: tokens, non-symbol words, their characters, words with a letter, distinct stop words, '#',
    '...' (non-overlapping) + '…', lines, bullet lines, lines ending in an ellipsis (int64 [rows, 10])."""
    rows = len(offsets) - 1
    out = np.zeros((rows, 10), np.int64)
    lines = np.zeros((rows, 3), np.int64)
    n_stop = len(stop_off) - 1
    found = np.zeros(max(n_stop, 1), np.bool_)
    for r in range(rows):
        if not valid[r]:
            continue
        s, e = offsets[r], offsets[r + 1]
        found[:] = False
        words = chars = alpha = 0
        n_tok = (ptr[r + 1] - ptr[r]) // 2
        for t in range(n_tok):
            a, b = s + spans[ptr[r] + 2 * t], s + spans[ptr[r] + 2 * t + 1]
            n, plain, has_alpha = _word_facts(data, a, b, flags)
            if plain:
                words += 1
                chars += n
            alpha += has_alpha
            for k in range(n_stop):
                if not found[k] and _is_stop(data, a, b, stop_data, stop_off, k):
                    found[k] = True
        hashes = ellipsis = run = 0
        i = s
        while i < e:
            c = data[i]
            if c == 46:
                run += 1
            else:
                ellipsis += run // 3
                run = 0
                hashes += c == 35
                ellipsis += c == 0xE2 and i + 2 < e and data[i + 1] == 0x80 and data[i + 2] == 0xA6
            i += 1
        ellipsis += run // 3
        _gopher_lines(data, s, e, flags, lines, r)
        out[r, 0], out[r, 1], out[r, 2], out[r, 3] = n_tok, words, chars, alpha
        out[r, 4], out[r, 5], out[r, 6] = found.sum() if n_stop else 0, hashes, ellipsis
        out[r, 7], out[r, 8], out[r, 9] = lines[r, 0], lines[r, 1], lines[r, 2]
    return out


# ---------------------------------------------------------------------------------------------------------
# Gopher repetition
# ---------------------------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _segments(data, s, e, min_run, keys, lens):
    """Split [s, e) on runs of at least `min_run` newlines (empty pieces included, as re.split does); write
    each piece's key and characters; return the number of pieces."""
    m, start, i = 0, s, s
    while i < e:
        if data[i] == 10:
            j = i
            while j < e and data[j] == 10:
                j += 1
            if j - i >= min_run:
                keys[m], lens[m] = _key(data, start, i), chars_in(data, start, i)
                m += 1
                start = j
            i = j
        else:
            i += 1
    keys[m], lens[m] = _key(data, start, e), chars_in(data, start, e)
    return m + 1


@numba.njit(cache=True, nogil=True)
def stripped(data, s, e, flags):
    """The bounds of [s, e) without leading and trailing white space (as str.strip())."""
    a = s
    while a < e:
        cp, j = decode(data, a)
        if not flags[cp] & SPACE:
            break
        a = j
    b = a
    i = a
    while i < e:
        cp, j = decode(data, i)
        if not flags[cp] & SPACE:
            b = j
        i = j
    return a, b


@numba.njit(cache=True, nogil=True)
def _ngram_chars(data, s, spans, p, n_tok, top_ns, dup_ns, out, r):
    """Top n-gram characters x count (n in top_ns) and repeated n-gram characters (n in dup_ns), into out[r]."""
    wkey = np.empty(n_tok, np.uint64)
    wpoly = np.empty(n_tok, np.uint64)
    wpow = np.empty(n_tok, np.uint64)
    wlen = np.empty(n_tok, np.int64)
    wbytes = np.empty(n_tok, np.int64)
    for t in range(n_tok):
        a, b = s + spans[p + 2 * t], s + spans[p + 2 * t + 1]
        wpoly[t], wpow[t] = _poly(data, a, b)
        wkey[t] = mix(wpoly[t] ^ mix(np.uint64(b - a)))
        wlen[t] = chars_in(data, a, b)
        wbytes[t] = b - a
    keys = np.empty(max(n_tok, 1), np.uint64)
    for q in range(len(top_ns)):
        n = top_ns[q]
        m = n_tok - n + 1
        if m <= 0:
            continue
        for i in range(m):  # the words in order: " ".join(words) is the same string iff the words are
            h = mix(np.uint64(n))
            for k in range(n):
                h = mix(h ^ wkey[i + k])
            keys[i] = h
        i, count = top_duplicate(keys, m)
        out[r, 7 + q] = (wlen[i:i + n].sum() + n - 1) * count
    for q in range(len(dup_ns)):
        n = dup_ns[q]
        m = n_tok - n + 1
        if m <= 0:
            continue
        for i in range(m):  # "".join(words): the concatenated bytes, whatever the word boundaries
            h = np.uint64(0)
            for k in range(n):
                h = h * wpow[i + k] + wpoly[i + k]
            keys[i] = mix(h ^ mix(np.uint64(wbytes[i:i + n].sum())))
        table, used, mask = _table(m)
        repeated, i = 0, 0
        while i < m:
            slot = _slot(table, used, mask, keys[i])
            if used[slot]:
                repeated += wlen[i:i + n].sum()
                i += n
            else:
                used[slot] = True
                table[slot] = keys[i]
                i += 1
        out[r, 7 + len(top_ns) + q] = repeated


@numba.njit(cache=True, nogil=True)
def gopher_repetition(data, offsets, valid, spans, ptr, flags, top_ns, dup_ns):
    """Per row: characters, paragraphs, repeated paragraphs and their characters, lines, repeated lines and
    their characters, then the top n-gram characters per n of top_ns and the repeated n-gram characters per n
    of dup_ns (int64 [rows, 7 + len(top_ns) + len(dup_ns)])."""
    rows = len(offsets) - 1
    out = np.zeros((rows, 7 + len(top_ns) + len(dup_ns)), np.int64)
    for r in range(rows):
        if not valid[r]:
            continue
        s, e = offsets[r], offsets[r + 1]
        keys = np.empty(e - s + 1, np.uint64)
        lens = np.empty(e - s + 1, np.int64)
        a, b = stripped(data, s, e, flags)
        m = _segments(data, a, b, 2, keys, lens)
        dup, chars = duplicates(keys, lens, m)
        out[r, 0], out[r, 1], out[r, 2], out[r, 3] = chars_in(data, s, e), m, dup, chars
        m = _segments(data, s, e, 1, keys, lens)
        dup, chars = duplicates(keys, lens, m)
        out[r, 4], out[r, 5], out[r, 6] = m, dup, chars
        _ngram_chars(data, s, spans, ptr[r], (ptr[r + 1] - ptr[r]) // 2, top_ns, dup_ns, out, r)
    return out


# ---------------------------------------------------------------------------------------------------------
# FineWeb
# ---------------------------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _last_char(data, s, e):
    i = e - 1
    while i > s and (data[i] & 0xC0) == 0x80:
        i -= 1
    cp, _ = decode(data, i)
    return cp


@numba.njit(cache=True, nogil=True)
def fineweb(data, offsets, valid, ptr, flags, short_line_length):
    """Per row, over the non-blank lines of split("\\n"): lines, lines ending in terminal punctuation, lines of
    at most `short_line_length` characters, characters of lines repeating an earlier one; then characters
    other than newlines, newlines, and word tokens (int64 [rows, 7])."""
    rows = len(offsets) - 1
    out = np.zeros((rows, 7), np.int64)
    for r in range(rows):
        if not valid[r]:
            continue
        s, e = offsets[r], offsets[r + 1]
        keys = np.empty(e - s + 1, np.uint64)
        lens = np.empty(e - s + 1, np.int64)
        m = punct = short = newlines = 0
        start = s
        for i in range(s, e + 1):
            if i < e and data[i] != 10:
                continue
            newlines += i < e
            a, b = stripped(data, start, i, flags)
            if b > a:
                n = chars_in(data, start, i)
                punct += (flags[_last_char(data, start, i)] & TERMINAL) != 0
                short += n <= short_line_length
                keys[m], lens[m] = _key(data, start, i), n
                m += 1
            start = i + 1
        _, chars = duplicates(keys, lens, m)
        out[r, 0], out[r, 1], out[r, 2], out[r, 3] = m, punct, short, chars
        out[r, 4], out[r, 5], out[r, 6] = chars_in(data, s, e) - newlines, newlines, (ptr[r + 1] - ptr[r]) // 2
    return out
