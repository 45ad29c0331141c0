"""What each code point is to the web-text rules: one flag byte per code point, read by the compiled kernels.

The rules are defined on Python strings (datatrove's filters are), so the classes come from Python's own
Unicode tables (`str.isspace`, `str.isalpha`, `str.isalnum`, `unicodedata.category`), computed once per
process. Two character lists are data of the rules, kept as the published implementation has them so that
decisions match: the Gopher "symbol" characters (a word made only of these is not a word for the word count
and the mean word length) and the terminal punctuation (FineWeb's line-ending check).
"""
from __future__ import annotations

import functools
import hashlib
import string
import sys
import unicodedata
from pathlib import Path

import numpy as np

from curate.methods import models

SPACE = 1        # str.isspace: what str.split() and str.strip() treat as white space
ALPHA = 2        # str.isalpha: Gopher's "word with an alphabetic character"
WORD = 4         # str.isalnum or a combining mark: the core of a word token
SYMBOL = 8       # Gopher's punctuation set (below)
TERMINAL = 16    # terminal punctuation (below): FineWeb's stop characters, and sentence ends
PUNCT = 32       # Unicode category P*: a token of these only never starts a sentence
DIGIT = 64       # Unicode category Nd: what `\d` matches in C4's citation pattern
LINEBREAK = 128  # where str.splitlines() breaks a line (\r\n counts once; the kernels handle the pair)

# Terminal punctuation: Unicode 15.0's Sentence_Terminal plus three Khmer signs (U+17D6, U+17D9, U+17DA), as
# datatrove 0.10.1's TERMINAL_PUNCTUATION lists them (ranges inclusive).
_TERMINAL_RANGES = (
    0x21, 0x2E, 0x3F, 0x589, (0x61D, 0x61F), 0x6D4, (0x700, 0x702), 0x7F9, 0x837, 0x839, (0x83D, 0x83E),
    (0x964, 0x965), (0x104A, 0x104B), 0x1362, (0x1367, 0x1368), 0x166E, (0x1735, 0x1736), (0x17D4, 0x17D6),
    (0x17D9, 0x17DA), 0x1803, 0x1809, (0x1944, 0x1945), (0x1AA8, 0x1AAB), (0x1B5A, 0x1B5B), (0x1B5E, 0x1B5F),
    (0x1B7D, 0x1B7E), (0x1C3B, 0x1C3C), (0x1C7E, 0x1C7F), (0x203C, 0x203D), (0x2047, 0x2049), 0x2E2E, 0x2E3C,
    (0x2E53, 0x2E54), 0x3002, 0xA4FF, (0xA60E, 0xA60F), 0xA6F3, 0xA6F7, (0xA876, 0xA877), (0xA8CE, 0xA8CF),
    0xA92F, (0xA9C8, 0xA9C9), (0xAA5D, 0xAA5F), (0xAAF0, 0xAAF1), 0xABEB, 0xFE52, (0xFE56, 0xFE57), 0xFF01,
    0xFF0E, 0xFF1F, 0xFF61, (0x10A56, 0x10A57), (0x10F55, 0x10F59), (0x10F86, 0x10F89), (0x11047, 0x11048),
    (0x110BE, 0x110C1), (0x11141, 0x11143), (0x111C5, 0x111C6), 0x111CD, (0x111DE, 0x111DF), (0x11238, 0x11239),
    (0x1123B, 0x1123C), 0x112A9, (0x1144B, 0x1144C), (0x115C2, 0x115C3), (0x115C9, 0x115D7), (0x11641, 0x11642),
    (0x1173C, 0x1173E), 0x11944, 0x11946, (0x11A42, 0x11A43), (0x11A9B, 0x11A9C), (0x11C41, 0x11C42),
    (0x11EF7, 0x11EF8), (0x11F43, 0x11F44), (0x16A6E, 0x16A6F), 0x16AF5, (0x16B37, 0x16B38), 0x16B44, 0x16E98,
    0x1BC9F, 0x1DA88,
)
# Gopher's symbols: ASCII punctuation, the C0/C1 control characters other than tab and newline, these
# typographic marks, and the terminal punctuation (as datatrove 0.10.1's PUNCTUATION_SET).
_SYMBOL_EXTRA = "—”％１〈、━【「」，】；“《„’∶´．（–？！：～«〉》）。…►»"
_CONTROLS = [*range(0, 9), 11, 12, *range(13, 32), *range(127, 160)]

# Python's Unicode tables assign nothing outside these ranges but private-use characters (no class), so the
# table is computed there only (a fifth of the code points: ~0.2 s instead of ~1 s).
_ASSIGNED = ((0, 0x32400), (0xE0000, 0xE0200))
TABLE_VERSION = f"webtext-chars/1 unicode={unicodedata.unidata_version}"


def terminal_chars() -> list[str]:
    """The terminal punctuation characters."""
    out = []
    for r in _TERMINAL_RANGES:
        lo, hi = r if isinstance(r, tuple) else (r, r)
        out += [chr(c) for c in range(lo, hi + 1)]
    return out


def symbol_chars() -> set[str]:
    """Gopher's symbol characters."""
    return set(string.punctuation) | set(_SYMBOL_EXTRA) | {chr(c) for c in _CONTROLS} | set(terminal_chars())


@functools.cache
def tables() -> tuple[np.ndarray, np.ndarray]:
    """(flags uint8, fold uint8) for every code point: the class bits above, and the ASCII byte a code point
    lower-cases to (`str.lower`), 0 when it lower-cases to anything else. Built once and kept in the cache
    folder (named by this module's source and Python's version, which fixes its Unicode tables)."""
    key = hashlib.sha256(f"{TABLE_VERSION} {sys.version} ".encode() + Path(__file__).read_bytes()).hexdigest()[:16]
    arrays = models.cached_arrays(models.cache_folder("webtext", f"chars-{key}"), ("flags", "fold"), _build)
    flags, fold = arrays["flags"], arrays["fold"]
    flags.setflags(write=False)
    fold.setflags(write=False)
    return flags, fold


def _build() -> dict[str, np.ndarray]:
    flags = np.zeros(0x110000, np.uint8)
    fold = np.zeros(0x110000, np.uint8)
    for lo, hi in _ASSIGNED:
        for cp in range(lo, hi):
            ch = chr(cp)
            cat = unicodedata.category(ch)
            f = SPACE if ch.isspace() else 0
            if ch.isalpha():
                f |= ALPHA
            if ch.isalnum() or cat[0] == "M":
                f |= WORD
            if cat[0] == "P":
                f |= PUNCT
            if cat == "Nd":
                f |= DIGIT
            flags[cp] = f
            low = ch.lower()
            if len(low) == 1 and ord(low) < 128:
                fold[cp] = ord(low)
    for ch in symbol_chars():
        flags[ord(ch)] |= SYMBOL
    for ch in terminal_chars():
        flags[ord(ch)] |= TERMINAL
    for ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029":
        flags[ord(ch)] |= LINEBREAK
    return {"flags": flags, "fold": fold}
