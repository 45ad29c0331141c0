"""Plain-Python definitions of the web-text tokenizer, sentence split and rule statistics, one document at a
time: the reference the compiled kernels are tested against, and the word tokenizer the parity bench hands
to datatrove (`DatatroveWords`), so that both sides count the same words.

It runs in the bench's datatrove venv too, which lacks curate's dependencies: `chars.py` is then loaded by path.
"""
from __future__ import annotations

import importlib.util
import re
import unicodedata
from collections import Counter
from pathlib import Path

try:
    from curate.methods.webtext import chars
except ImportError:  # the bench's datatrove venv
    _spec = importlib.util.spec_from_file_location(
        "webtext_chars", Path(__file__).resolve().parents[1] / "curate" / "methods" / "webtext" / "chars.py")
    chars = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(chars)

TERMINAL = frozenset(chars.terminal_chars())
_CHUNK = re.compile(r"\S+")  # `re`'s \s on str is str.isspace()
SYMBOLS = frozenset(chars.symbol_chars())


def _is_word(c: str) -> bool:
    return c.isalnum() or unicodedata.category(c)[0] == "M"


def _punct_spans(text: str, i: int, j: int) -> list[tuple[int, int]]:
    out = []
    while i < j:
        k = i + 1
        if text[i] == ".":
            while k < j and text[k] == ".":
                k += 1
        out.append((i, k))
        i = k
    return out


def token_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character positions of the word tokens (kernels/textwords.py's definition)."""
    spans = []
    for m in _CHUNK.finditer(text):
        i, j = m.span()
        if m.group().isalnum():  # (most chunks: one token)
            spans.append((i, j))
            continue
        core = [k for k in range(i, j) if _is_word(text[k])]
        if not core:
            spans += _punct_spans(text, i, j)
        else:
            a, b = core[0], core[-1] + 1
            spans += _punct_spans(text, i, a) + [(a, b)] + _punct_spans(text, b, j)
    return spans


def words(text: str) -> list[str]:
    return [text[a:b] for a, b in token_spans(text)]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentences: one starts at the first token and at each token that is neither punctuation nor terminal
    punctuation after a token of terminal punctuation."""
    toks = token_spans(text)
    starts, after = [0] if toks else [], False
    for k, (a, b) in enumerate(toks):
        tok = text[a:b]
        terminal = all(c in TERMINAL for c in tok)
        if after and not terminal and not all(unicodedata.category(c)[0] == "P" for c in tok):
            starts.append(k)
            after = False
        elif terminal:
            after = True
    bounds = starts + [len(toks)]
    return [(toks[bounds[i]][0], toks[bounds[i + 1] - 1][1]) for i in range(len(starts))]


class DatatroveWords:
    """datatrove's WordTokenizer interface over these definitions (the bench subclasses it in datatrove's venv)."""

    def word_tokenize(self, text: str) -> list[str]:
        return words(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return [text[a:b] for a, b in sentence_spans(text)]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return sentence_spans(text)


# --- statistics, as the stages define them ------------------------------------------------------------------
def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def gopher_quality(text: str, stop_words=("the", "be", "to", "of", "and", "that", "have", "with")) -> dict:
    toks = words(text)
    plain = [w for w in toks if any(c not in SYMBOLS for c in w)]
    lines = text.splitlines()
    return {
        "words": len(plain), "tokens": len(toks),
        "mean_word_length": _ratio(sum(map(len, plain)), len(plain)),
        "hash_ratio": _ratio(text.count("#"), len(toks)),
        "ellipsis_ratio": _ratio(text.count("...") + text.count("…"), len(toks)),
        "bullet_lines_ratio": _ratio(sum(s.lstrip().startswith(("•", "-")) for s in lines), len(lines)),
        "ellipsis_lines_ratio": _ratio(sum(s.rstrip().endswith(("...", "…")) for s in lines), len(lines)),
        "alpha_words_ratio": _ratio(sum(any(c.isalpha() for c in w) for w in toks), len(toks)),
        "stop_words": len(set(stop_words) & set(toks)),
    }


def _duplicates(items: list[str]) -> tuple[int, int]:
    seen, dup, chars_ = set(), 0, 0
    for x in items:
        if x in seen:
            dup, chars_ = dup + 1, chars_ + len(x)
        else:
            seen.add(x)
    return dup, chars_


def _top(toks: list[str], n: int) -> int:
    grams = [" ".join(toks[i:i + n]) for i in range(len(toks) - n + 1)]
    if not grams:
        return 0
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count


def _repeated(toks: list[str], n: int) -> int:
    seen, out, i = set(), 0, 0
    while i < len(toks) - n + 1:
        g = "".join(toks[i:i + n])
        if g in seen:
            out += len(g)
            i += n
        else:
            seen.add(g)
            i += 1
    return out


def gopher_repetition(text: str, top=(2, 3, 4), dup=(5, 6, 7, 8, 9, 10)) -> dict:
    paras = re.split(r"\n{2,}", text.strip())
    lines = re.split("\n+", text)
    toks = words(text)
    pd, pc_ = _duplicates(paras)
    ld, lc = _duplicates(lines)
    out = {"chars": len(text), "dup_para_frac": _ratio(pd, len(paras)), "dup_para_char_frac": _ratio(pc_, len(text)),
           "dup_line_frac": _ratio(ld, len(lines)), "dup_line_char_frac": _ratio(lc, len(text))}
    out.update({f"top_{n}gram_char_frac": _ratio(_top(toks, n), len(text)) for n in top})
    out.update({f"dup_{n}gram_char_frac": _ratio(_repeated(toks, n), len(text)) for n in dup})
    return out


def fineweb(text: str, short_line_length: int = 30) -> dict:
    lines = [s for s in text.split("\n") if s.strip()]
    return {"lines": len(lines),
            "line_punct_ratio": _ratio(sum(s.endswith(tuple(TERMINAL)) for s in lines), len(lines)),
            "short_line_ratio": _ratio(sum(len(s) <= short_line_length for s in lines), len(lines)),
            "char_dup_ratio": _ratio(_duplicates(lines)[1], len(text.replace("\n", ""))),
            "list_ratio": _ratio(text.count("\n"), len(words(text)))}


CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


def c4(text: str) -> dict:
    """C4 with the default parameters, every line tested (the document flags do not stop the scan)."""
    kept, st = [], Counter()
    for line in text.splitlines():
        st["lines"] += 1
        line = line.strip()
        ws = line.split()
        if any(len(w) > 1000 for w in ws):
            st["lines_removed_long_word"] += 1
            continue
        line = CITATION.sub("", line)
        if not line.endswith((".", "?", "!", '"', "'")) or line.endswith("..."):
            st["lines_removed_no_punct"] += 1
            continue
        if len(ws) < 3:
            st["lines_removed_few_words"] += 1
            continue
        low = line.lower()
        st["lorem_ipsum"] |= "lorem ipsum" in low
        if "javascript" in low:
            st["lines_removed_javascript"] += 1
            continue
        st["curly_bracket"] |= "{" in line
        if any(p in low for p in POLICY):
            st["lines_removed_policy"] += 1
            continue
        st["sentences"] += len(sentence_spans(line))
        kept.append(line)
    out = {k: st[k] for k in ("sentences", "lines", "lines_removed_long_word", "lines_removed_no_punct",
                              "lines_removed_few_words", "lines_removed_javascript", "lines_removed_policy")}
    out.update(text="\n".join(kept).strip(), lorem_ipsum=bool(st["lorem_ipsum"]),
               curly_bracket=bool(st["curly_bracket"]), lines_removed=st["lines"] - len(kept))
    return out
