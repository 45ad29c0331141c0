"""Straightforward per-caption WFPP (docs/methods/wfpp.md): the test oracle and the benchmark baseline.

Deliberately plain Python, one caption at a time, following the spec step by step. The production
stage (`curate.methods.wfpp.stage`) must give the same tokens, counts, table and bit-identical scores.
"""
from __future__ import annotations

import collections
import html
import math
import re

import ftfy
import regex

PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+"
_TOKEN_RE = regex.compile(PATTERN)
_SPACE_RE = re.compile(r"\s+")  # stdlib `re`, as CLIP's whitespace_clean


def clean(text: str) -> str:
    """ftfy.fix_text; html.unescape twice; strip; collapse whitespace runs to one space; lowercase."""
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    text = text.strip()
    text = _SPACE_RE.sub(" ", text)
    return text.lower()


def tokenize(text: str) -> list[str]:
    """Clean, then split into word-level tokens with CLIP's pattern (no truncation)."""
    return _TOKEN_RE.findall(clean(text))


def count(captions, count_max_chars: int = 10_000) -> collections.Counter:
    """Token counts over raw captions; each caption is clipped to count_max_chars before cleaning."""
    counter: collections.Counter = collections.Counter()
    for caption in captions:
        if caption is None:
            continue
        for token in tokenize(caption[:count_max_chars]):
            counter[token] += 1
    return counter


def table(counter, t: float, min_count: int) -> tuple[dict[str, float], int]:
    """Spec steps 2-3: drop words with count < min_count; P(w) = 1 - sqrt(t / f(w)), f = count/total.

    Returns P for every word with count >= min_count (negative P included) and the total.
    """
    kept = {word: c for word, c in counter.items() if c >= min_count}
    total = 0
    for c in kept.values():
        total += c
    probs = {}
    for word, c in kept.items():
        f = c / total
        probs[word] = 1 - math.sqrt(t / f)
    return probs, total


def score(caption, probs: dict[str, float], max_tokens: int = 30) -> float | None:
    """Spec steps 4-6: (1 - product of factors over the first max_tokens tokens) / n, or None."""
    if not isinstance(caption, str):
        return None
    tokens = tokenize(caption)[:max_tokens]
    n = len(tokens)
    if n == 0:
        return None
    p = 1.0
    for token in tokens:
        pw = probs.get(token)
        if pw is not None and pw >= 0:
            p *= pw
        else:
            p *= 1.0
    return (1 - p) / n


def n_neutral(caption, probs: dict[str, float], max_tokens: int = 30) -> int | None:
    """Number of tokens among the first max_tokens whose factor is 1 (unknown or P < 0)."""
    if not isinstance(caption, str):
        return None
    tokens = tokenize(caption)[:max_tokens]
    if not tokens:
        return None
    return sum(1 for token in tokens if not (token in probs and probs[token] >= 0))
