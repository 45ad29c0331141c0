"""C4's line filter (Raffel et al. 2020, section 2.2, as tensorflow_datasets' c4_utils and datatrove apply it),
compiled (numba): each `str.splitlines()` line is stripped and tested in this order, the first failed test
removing it: a white-space word longer than `max_word_length` characters; after removing citation marks
(`[12]`, `[edit]`, `[citation needed]`), no terminal punctuation (. ? ! " ') or an ellipsis at the end; fewer
than `min_words` white-space words; "javascript"; a policy phrase. "lorem ipsum" and "{" in a line that reached
their test mark the document (the policy drops it). The kept lines, joined by newlines and stripped, are the
cleaned text; their sentences are counted in the same pass (kernels/textwords.py `sentences_in`: each kept line's
characters are read once for its sentences, its tokens never listed).

Case-insensitive tests compare `fold[code point]`, the ASCII letter a character lower-cases to (0 for any
other): the same matches as `str.lower()` for ASCII phrases that do not end in "i" (U+0130 lower-cases to
"i" plus a combining dot, which no such phrase can match).
"""
from __future__ import annotations

import numba
import numpy as np

from kernels.textrules import stripped
from kernels.textwords import DIGIT, LINEBREAK, SPACE, decode, sentences_in

# stats columns
LINES, KEPT, LONG_WORD, NO_PUNCT, FEW_WORDS, JAVASCRIPT, POLICY, SENTENCES, LOREM, CURLY = range(10)


@numba.njit(cache=True, nogil=True)
def _words(data, a, b, flags):
    """(white-space words, characters of the longest) in [a, b)."""
    words = longest = run = 0
    i = a
    while i < b:
        cp, i = decode(data, i)
        if flags[cp] & SPACE:
            run = 0
        else:
            words += run == 0
            run += 1
            longest = max(longest, run)
    return words, longest


@numba.njit(cache=True, nogil=True)
def _literal(data, p, b, lit):
    if p + len(lit) > b:
        return -1
    for k in range(len(lit)):
        if data[p + k] != lit[k]:
            return -1
    return p + len(lit)


@numba.njit(cache=True, nogil=True)
def _citation_end(data, p, b, flags, edit, needed):
    """End of a citation mark starting with the '[' at p (`\\[\\d*]|\\[edit]|\\[citation needed]`), or -1."""
    q = p + 1
    while q < b:
        cp, nq = decode(data, q)
        if not flags[cp] & DIGIT:
            break
        q = nq
    if q < b and data[q] == 93:
        return q + 1
    end = _literal(data, p + 1, b, edit)
    return end if end >= 0 else _literal(data, p + 1, b, needed)


@numba.njit(cache=True, nogil=True)
def _clean_line(data, a, b, flags, remove_citations, out, edit, needed):
    """Copy [a, b) into out without citation marks; return the length."""
    n, p = 0, a
    while p < b:
        if remove_citations and data[p] == 91:
            end = _citation_end(data, p, b, flags, edit, needed)
            if end >= 0:
                p = end
                continue
        out[n] = data[p]
        n += 1
        p += 1
    return n


@numba.njit(cache=True, nogil=True)
def _contains(text, n, pat_data, s, e):
    m = e - s
    for i in range(n - m + 1):
        ok = True
        for k in range(m):
            if text[i + k] != pat_data[s + k]:
                ok = False
                break
        if ok:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _ends_sentence(line, n):
    if n == 0 or not (line[n - 1] == 46 or line[n - 1] == 63 or line[n - 1] == 33 or line[n - 1] == 34
                      or line[n - 1] == 39):
        return False
    return not (n >= 3 and line[n - 1] == 46 and line[n - 2] == 46 and line[n - 3] == 46)


@numba.njit(cache=True, nogil=True)
def c4_lines(data, offsets, valid, flags, fold, pat_data, pat_off, edit, needed, remove_citations, terminal_punct,
             min_words, max_word_length, javascript, policy):
    """(cleaned bytes, their int64 offsets, int64 stats [rows, 10]: lines, kept, removed for a long word, no
    terminal punctuation, few words, javascript, a policy phrase; sentences; lorem ipsum; curly bracket).
    Phrases: pat 0 "lorem ipsum", pat 1 "javascript", the others policy phrases."""
    rows = len(offsets) - 1
    out = np.empty(len(data) + 1, np.uint8)
    out_off = np.zeros(rows + 1, np.int64)
    st = np.zeros((rows, 10), np.int64)
    k = 0
    for r in range(rows):
        start = k
        s, e = offsets[r], offsets[r + 1]
        line = np.empty(e - s + 1, np.uint8)
        low = np.empty(e - s + 1, np.uint8)
        i = s
        while valid[r] and i < e:
            j = i
            while j < e:
                cp, nj = decode(data, j)
                if flags[cp] & LINEBREAK:
                    break
                j = nj
            nxt = e
            if j < e:
                cp, nxt = decode(data, j)
                if cp == 13 and nxt < e and data[nxt] == 10:
                    nxt += 1
            a, b = stripped(data, i, j, flags)
            i = nxt
            st[r, LINES] += 1
            words, longest = _words(data, a, b, flags)
            if max_word_length >= 0 and longest > max_word_length:
                st[r, LONG_WORD] += 1
                continue
            n = _clean_line(data, a, b, flags, remove_citations, line, edit, needed)
            if terminal_punct and not _ends_sentence(line, n):
                st[r, NO_PUNCT] += 1
                continue
            if words < min_words:
                st[r, FEW_WORDS] += 1
                continue
            nch, p = 0, 0
            while p < n:
                cp, p = decode(line, p)
                low[nch] = fold[cp]
                nch += 1
            if _contains(low, nch, pat_data, pat_off[0], pat_off[1]):
                st[r, LOREM] = 1
            if javascript and _contains(low, nch, pat_data, pat_off[1], pat_off[2]):
                st[r, JAVASCRIPT] += 1
                continue
            for p in range(n):
                if line[p] == 123:
                    st[r, CURLY] = 1
            hit = False
            for q in range(2, len(pat_off) - 1):
                if policy and not hit and _contains(low, nch, pat_data, pat_off[q], pat_off[q + 1]):
                    hit = True
            if hit:
                st[r, POLICY] += 1
                continue
            st[r, SENTENCES] += sentences_in(line, 0, n, flags)
            if st[r, KEPT]:
                out[k] = 10
                k += 1
            out[k:k + n] = line[:n]
            k += n
            st[r, KEPT] += 1
        a, b = stripped(out, start, k, flags)
        out[start:start + b - a] = out[a:b].copy()
        k = start + b - a
        out_off[r + 1] = k
    return out[:k].copy(), out_off, st
