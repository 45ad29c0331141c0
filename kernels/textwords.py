"""Word tokens and sentences of UTF-8 text straight from Arrow's buffers, compiled (numba).

The tokenizer (`webtext-words/1`): split on white space (as `str.split()`), then, in each white-space-free
chunk, the span from its first to its last word character (a letter, digit or combining mark) is one token,
and every character before or after that core is a token of its own, except that a run of full stops is one
token (`...`). `"Hello, world..."` gives `"`, `Hello`, `,`, `world`, `...`, `"`. It splits punctuation off
words as spaCy's English tokenizer (datatrove's default for English) does on ordinary prose, with one rule
instead of spaCy's lists of exceptions.

Sentences (C4's sentence count): a sentence starts at the first token and at each token that is neither
punctuation nor terminal punctuation and follows a token of terminal punctuation (spaCy's sentencizer rule
on these tokens).

Character classes come from a flag table indexed by code point (`curate/methods/webtext/chars.py` builds it
from Python's Unicode tables); the bit values are repeated here so that kernels import nothing of curate.
"""
from __future__ import annotations

import numba
import numpy as np

SPACE, ALPHA, WORD, SYMBOL, TERMINAL, PUNCT, DIGIT, LINEBREAK = 1, 2, 4, 8, 16, 32, 64, 128


@numba.njit(cache=True, nogil=True, inline="always")
def decode(data, i):
    """(code point, index of the next character) of the UTF-8 character starting at byte i."""
    b = np.int64(data[i])
    if b < 0x80:
        return b, i + 1
    if b < 0xE0:
        return ((b & 0x1F) << 6) | (np.int64(data[i + 1]) & 0x3F), i + 2
    if b < 0xF0:
        return ((b & 0x0F) << 12) | ((np.int64(data[i + 1]) & 0x3F) << 6) | (np.int64(data[i + 2]) & 0x3F), i + 3
    return (((b & 0x07) << 18) | ((np.int64(data[i + 1]) & 0x3F) << 12) | ((np.int64(data[i + 2]) & 0x3F) << 6)
            | (np.int64(data[i + 3]) & 0x3F)), i + 4


@numba.njit(cache=True, nogil=True, inline="always")
def chars_in(data, s, e):
    """Characters (code points) in the bytes [s, e)."""
    n = 0
    for i in range(s, e):
        n += (data[i] & 0xC0) != 0x80
    return n


@numba.njit(cache=True, nogil=True)
def _punct_tokens(data, s, e, out, k, base):
    """Tokens of [s, e) where no character is a word character: one per character, a run of '.' as one."""
    i = s
    while i < e:
        if data[i] == 46:
            j = i
            while j < e and data[j] == 46:
                j += 1
        else:
            _, j = decode(data, i)
        if out is not None:
            out[2 * k] = i - base
            out[2 * k + 1] = j - base
        k += 1
        i = j
    return k


@numba.njit(cache=True, nogil=True)
def tokenize_span(data, s, e, flags, out, k, base):
    """Tokens of the bytes [s, e): written to `out` (start, end pairs relative to `base`) from pair k when
    `out` is given; returns k plus the number of tokens."""
    i = s
    while i < e:
        cp, j = decode(data, i)
        if flags[cp] & SPACE:
            i = j
            continue
        chunk, core_s, core_e = i, -1, -1
        while i < e:
            cp, j = decode(data, i)
            f = flags[cp]
            if f & SPACE:
                break
            if f & WORD:
                if core_s < 0:
                    core_s = i
                core_e = j
            i = j
        if core_s < 0:
            k = _punct_tokens(data, chunk, i, out, k, base)
        else:
            k = _punct_tokens(data, chunk, core_s, out, k, base)
            if out is not None:
                out[2 * k] = core_s - base
                out[2 * k + 1] = core_e - base
            k += 1
            k = _punct_tokens(data, core_e, i, out, k, base)
    return k


@numba.njit(cache=True, nogil=True)
def tokenize(data, offsets, valid, flags):
    """Every row's tokens: (spans int32, start/end byte pairs relative to the row's start; ptr int64, the
    offsets of each row's pairs in `spans`, in int32 units). Null rows have none."""
    rows = len(offsets) - 1
    ptr = np.zeros(rows + 1, np.int64)
    for r in range(rows):
        n = tokenize_span(data, offsets[r], offsets[r + 1], flags, None, 0, 0) if valid[r] else 0
        ptr[r + 1] = ptr[r] + 2 * n
    spans = np.empty(ptr[rows], np.int32)
    for r in range(rows):
        if valid[r]:
            tokenize_span(data, offsets[r], offsets[r + 1], flags, spans[ptr[r]:ptr[r + 1]], 0, offsets[r])
    return spans, ptr


@numba.njit(cache=True, nogil=True)
def _all_flag(data, s, e, flags, bit):
    i = s
    while i < e:
        cp, i = decode(data, i)
        if not flags[cp] & bit:
            return False
    return True


@numba.njit(cache=True, nogil=True, inline="always")
def _sentence_step(f, after_terminal, sentences):
    """The sentence rule for one token whose characters' flags AND to `f`."""
    if f & TERMINAL:
        return True, sentences
    if after_terminal and not f & PUNCT:
        return False, sentences + 1
    return after_terminal, sentences


@numba.njit(cache=True, nogil=True)
def sentences_in(data, s, e, flags):
    """`count_sentences` of the bytes [s, e) in one pass over its characters, without listing the tokens.

    Each character is decoded once, and the flags of a token's characters are ANDed as they are read: a
    character before a chunk's first word character is a token of its own; the core (first to last word
    character) is one token; the characters after the last word character are single tokens, decoded again
    at the chunk's end (only they: the run since the last word character). A run of full stops is one token
    in `tokenize_span` and several here, which the rule cannot tell apart (terminal after terminal)."""
    sentences, after_terminal, tokens = 0, False, 0
    i = s
    while i < e:
        cp, j = decode(data, i)
        if flags[cp] & SPACE:
            i = j
            continue
        core, core_and, pending_and, core_e = False, 0xFF, 0xFF, i
        while i < e:
            cp, j = decode(data, i)
            f = flags[cp]
            if f & SPACE:
                break
            if f & WORD:
                core_and = (core_and & pending_and & f) if core else f
                core, pending_and, core_e = True, 0xFF, j
            elif core:
                pending_and &= f
            else:  # a token before the core
                after_terminal, sentences = _sentence_step(f, after_terminal, sentences)
                tokens += 1
            i = j
        if core:
            after_terminal, sentences = _sentence_step(core_and, after_terminal, sentences)
            tokens += 1
            p = core_e
            while p < i:
                cp, p = decode(data, p)
                after_terminal, sentences = _sentence_step(flags[cp], after_terminal, sentences)
                tokens += 1
    return sentences + (tokens > 0)


@numba.njit(cache=True, nogil=True)
def count_sentences(data, s, e, flags, scratch):
    """Sentences in the bytes [s, e) (see the module docstring); `scratch` holds at least 2 * (e - s) int32."""
    n = tokenize_span(data, s, e, flags, scratch, 0, 0)
    if n == 0:
        return 0
    sentences, after_terminal = 1, False
    for t in range(n):
        a, b = scratch[2 * t], scratch[2 * t + 1]
        terminal = _all_flag(data, a, b, flags, TERMINAL)
        if after_terminal and not terminal and not _all_flag(data, a, b, flags, PUNCT):
            sentences += 1
            after_terminal = False
        elif terminal:
            after_terminal = True
    return sentences
