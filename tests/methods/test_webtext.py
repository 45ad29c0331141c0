"""Web-text rules on hand-made documents: every statistic equals its plain-Python definition
(testkit/webtext_reference.py), and each policy rule keeps a document at its threshold and drops one just past
it, naming the rule and the value."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.methods.webtext import (
    C4,
    C4Policy,
    FineWeb,
    FineWebPolicy,
    GopherQuality,
    GopherQualityPolicy,
    GopherRepetition,
    GopherRepetitionPolicy,
    Words,
)
from curate.methods.webtext.chars import LINEBREAK, SPACE, tables
from curate.policy import Rows
from testkit import webtext_reference as ref

RULE_STAGES = [(GopherQuality, ref.gopher_quality), (GopherRepetition, ref.gopher_repetition),
               (FineWeb, ref.fineweb)]


def scored(stage, texts: list[str | None]) -> pa.Table:
    col = pa.array(texts, pa.string())
    batch = pa.table({"text": col, "words.spans": Words().score(pa.table({"text": col})).column("spans")})
    return stage.score(batch)


def decide(policy, out: pa.Table) -> list[str | None]:
    """The policy's drop reason per row (None: kept)."""
    cols = {f"{policy.stage}.{k}": out.column(k).to_numpy(zero_copy_only=False) for k in out.column_names}
    n = out.num_rows
    keep, reason, _ = policy.decide_rows(Rows(cols[policy.column], np.zeros(n, np.uint64), cols, "s"))
    assert list(keep) == [r is None for r in reason.to_pylist()]
    return reason.to_pylist()


def same(a: dict, b: dict) -> bool:
    return all(a[k] == pytest.approx(v, abs=1e-12) if isinstance(v, float) else a[k] == v for k, v in b.items())


# --- statistics equal their definitions ------------------------------------------------------------------------
ALPHABET = st.sampled_from(list("ab the.…#-•{}[]1 \n\n\r\t\x0b\u2028\u00a0é日।?!\"'") + ["[1]", "[edit]", "..."])
TEXTS = st.lists(ALPHABET, max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(TEXTS, min_size=1, max_size=6))
def test_every_statistic_equals_its_python_definition_on_arbitrary_text(texts):
    for stage, reference in RULE_STAGES:
        for text, row in zip(texts, scored(stage(), texts).to_pylist()):
            assert same(row, reference(text)), (stage.type, text)
    for text, row in zip(texts, C4().score(pa.table({"text": pa.array(texts, pa.string())})).to_pylist()):
        assert same(row, ref.c4(text)), text


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=80), min_size=1, max_size=4))
def test_tokens_and_sentences_equal_their_definitions_on_any_unicode(texts):
    spans = Words().score(pa.table({"text": pa.array(texts, pa.string())})).column("spans").to_pylist()
    for text, got in zip(texts, spans):
        raw = text.encode()
        assert [raw[got[i]:got[i + 1]].decode() for i in range(0, len(got), 2)] == ref.words(text)
    for text, row in zip(texts, C4(filter_no_terminal_punct=False, min_words_per_line=-1).score(
            pa.table({"text": pa.array(texts, pa.string())})).to_pylist()):
        lines = [line.strip() for line in text.splitlines()]
        kept = [ln for ln in lines if "javascript" not in ln.lower() and not any(p in ln.lower() for p in ref.POLICY)]
        assert row["sentences"] == sum(len(ref.sentence_spans(ref.CITATION.sub("", ln))) for ln in kept)


def test_the_tokenizer_splits_punctuation_off_words():
    assert ref.words('"Hello, world..." (e.g. 3.14) don\'t #tag') == [
        '"', "Hello", ",", "world", "...", '"', "(", "e.g", ".", "3.14", ")", "don't", "#", "tag"]
    assert ref.words("  \u3000日本語。x 日本語。") == ["日本語。x", "日本語", "。"]  # inner punctuation stays


def test_char_table_matches_python_on_every_code_point():
    flags, _ = tables()
    space = np.array([chr(c).isspace() for c in range(0x110000)])
    alpha = np.array([chr(c).isalpha() for c in range(0x110000)])
    assert np.array_equal((flags & SPACE) > 0, space) and np.array_equal((flags & 2) > 0, alpha)
    assert {chr(c) for c in np.flatnonzero(flags & LINEBREAK)} == {
        c for c in map(chr, range(0x110000)) if len(("a" + c + "b").splitlines()) == 2}


# --- each rule at and past its threshold ---------------------------------------------------------------------
def words(n: int, seed: int = 0, length: int = 5) -> list[str]:
    """n distinct lower-case words of `length` letters."""
    rng = np.random.default_rng(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        out["".join(rng.choice(list("bcdfghjklmnpqrstvwxz"), length))] = None
    return list(out)


def prose(n: int, seed: int = 0) -> str:
    """n words, two of them stop words, on one line ending in a full stop."""
    return " ".join(["the", "and", *words(n - 2, seed)]) + "."


Q = "gopher_quality"
QUALITY_CASES = [  # (kept document, dropped document, reason)
    (prose(50), prose(49), f"{Q}: words 49 < 50"),
    (prose(100_000), prose(100_001), f"{Q}: words 100001 > 100000"),
    (" ".join(["the", "and", *words(48, length=3)]) + ".", " ".join(["the", "and", *words(48, length=2)]) + ".",
     f"{Q}: mean word length 2.04 < 3"),
    (" ".join(["the", "and", *words(47, length=10), "x" * 24]) + ".",
     " ".join(["the", "and", *words(47, length=10), "x" * 25]) + ".", f"{Q}: mean word length 10.02 > 10"),
    (prose(52) + " #" * 6 + " end", prose(52) + " #" * 7 + " end", f"{Q}: '#' per word 0.1148 > 0.1"),
    (prose(52) + " ..." * 6 + " end", prose(52) + " ..." * 7 + " end", f"{Q}: ellipses per word 0.1148 > 0.1"),
    ("\n".join([f"- {w}" for w in words(9)] + [prose(50)]), "\n".join(f"- {w} the and" for w in words(50)),
     f"{Q}: bullet lines 1 > 0.9"),
    ("\n".join([prose(50)] + [f"{w} …" for w in words(3)] + words(6, 1)),
     "\n".join([prose(50)] + [f"{w} …" for w in words(4)] + words(5, 1)), f"{Q}: lines ending in an ellipsis 0.4 > 0.3"),
    (" ".join(["the", "and", *words(38), *map(str, range(10, 20))]),
     " ".join(["the", "and", *words(37), *map(str, range(10, 21))]), f"{Q}: words with a letter 0.78 < 0.8"),
    (prose(60), " ".join(["the", *words(59)]) + ".", f"{Q}: stop words 1 < 2"),
]


@pytest.mark.parametrize("kept, dropped, reason", QUALITY_CASES, ids=[c[2].split(": ")[1][:24] for c in QUALITY_CASES])
def test_gopher_quality_keeps_at_the_threshold_and_drops_past_it_with_the_reason(kept, dropped, reason):
    assert decide(GopherQualityPolicy(), scored(GopherQuality(), [kept, dropped])) == [None, reason]


def test_gopher_quality_thresholds_at_exactly_the_bound_are_kept():
    out = scored(GopherQuality(), [QUALITY_CASES[4][0], QUALITY_CASES[6][0], QUALITY_CASES[7][0],
                                   QUALITY_CASES[8][0], QUALITY_CASES[2][0], QUALITY_CASES[3][0]]).to_pylist()
    assert out[0]["hash_ratio"] == 0.1  # 52 words, a full stop, six '#', 'end': 60 tokens
    assert out[1]["bullet_lines_ratio"] == 0.9 and out[2]["ellipsis_lines_ratio"] == 0.3
    assert out[3]["alpha_words_ratio"] == 0.8
    assert out[4]["mean_word_length"] == 3 and out[5]["mean_word_length"] == 10


R = "gopher_repetition"


def paragraphs(unique: int, repeated: str, times: int, sep: str = "\n\n") -> str:
    parts = [" ".join(words(12, seed=i)) for i in range(unique)]
    for k in range(times):
        parts.insert(2 * k + 1, repeated)
    return sep.join(parts)


REPETITION_CASES = [
    ("x", "", f"{R}: empty text 0 < 1"),
    (paragraphs(6, "Yes.", 4), paragraphs(5, "Yes.", 5), f"{R}: repeated paragraphs 0.4 > 0.3"),
    (paragraphs(3, " ".join(words(40, 9)), 1), paragraphs(3, " ".join(words(40, 9)), 2),
     f"{R}: characters in repeated paragraphs"),
    (paragraphs(6, "Yes.", 4, "\n"), paragraphs(5, "Yes.", 5, "\n"), f"{R}: repeated lines 0.4 > 0.3"),
    (paragraphs(4, " ".join(words(20, 9)), 1, "\n"), paragraphs(3, " ".join(words(20, 9)), 2, "\n"),
     f"{R}: characters in repeated lines"),
    (" ".join(words(30)), " ".join(words(20) + ["ab cd"] * 8), f"{R}: characters in the top 2-gram"),
    (" ".join(words(60)), " ".join(words(40) + ["ab cd ef"] * 8), f"{R}: characters in the top 3-gram"),
    (" ".join(words(60)), " ".join(words(40) + ["ab cd ef gh"] * 5), f"{R}: characters in the top 4-gram"),
    (" ".join(words(200)), " ".join(words(100) + words(40, 5) * 2), f"{R}: characters in repeated 5-grams"),
]


@pytest.mark.parametrize("kept, dropped, reason", REPETITION_CASES, ids=[c[2].split(": ")[1][:24] for c in REPETITION_CASES])
def test_gopher_repetition_drops_each_kind_of_repetition_with_its_reason(kept, dropped, reason):
    got = decide(GopherRepetitionPolicy(), scored(GopherRepetition(), [kept, dropped]))
    assert got[0] is None and got[1].startswith(reason), got


def test_gopher_repetition_uses_the_first_of_equally_frequent_ngrams_and_the_joined_string():
    # Counter.most_common(1) gives the first-seen of tied n-grams: here the long one (16 chars) over "a b" (3).
    text = "abcdefg hijklmnop a b"
    row = scored(GopherRepetition(), [text]).to_pylist()[0]
    assert row["top_2gram_char_frac"] == pytest.approx(len("abcdefg hijklmnop") / len(text))
    # "".join: ["ab","c",...] and ["a","bc",...] are the same 5-gram string
    text = "ab c d e f a bc d e f"
    assert scored(GopherRepetition(), [text]).to_pylist()[0]["dup_5gram_char_frac"] == pytest.approx(6 / len(text))


F = "fineweb"
FINEWEB_CASES = [
    (prose(10), " \n\t\n", f"{F}: non-blank lines 0 < 1"),
    ("\n".join(["word " * 8 + "end."] * 0 + [f"{w} {w} {w} {w} {w} {w} {w} done." for w in words(3)] + [
        f"{w} {w} {w} {w} {w} {w} {w} done" for w in words(22, 1)]),
     "\n".join([f"{w} {w} {w} {w} {w} {w} {w} done." for w in words(2)] + [
         f"{w} {w} {w} {w} {w} {w} {w} done" for w in words(23, 1)]), f"{F}: lines ending in punctuation 0.08 < 0.12"),
    ("\n".join(words(2) + [" ".join(words(9, 1)) + "."]),
     "\n".join(words(3) + [" ".join(words(9, 1)) + "."]), f"{F}: short lines 0.75 > 0.67"),
    (" ".join(words(100)) + ".\n" + " ".join(words(100, 1)) + ".",
     " ".join(words(100)) + ".\n" + " ".join(words(100, 1)) + ".\n" + "\n".join([" ".join(words(7, 2)) + "."] * 2),
     f"{F}: characters in repeated lines 0.0327 > 0.01"),
    (" ".join(words(10)) + ".\n" + " ".join(words(10, 1)) + ".", "a.\nb.\nc d e f g h i j k l.",
     f"{F}: short lines"),
]


@pytest.mark.parametrize("kept, dropped, reason", FINEWEB_CASES, ids=[c[2].split(": ")[1][:24] for c in FINEWEB_CASES])
def test_fineweb_drops_each_rule_with_its_reason(kept, dropped, reason):
    got = decide(FineWebPolicy(), scored(FineWeb(), [kept, dropped]))
    assert got[0] is None and got[1].startswith(reason), got


def test_fineweb_list_ratio_and_its_threshold():
    listy = "\n".join(" ".join(words(6, i)) + "." for i in range(20))  # 7 tokens a line
    row = scored(FineWeb(), [listy]).to_pylist()[0]
    assert row["list_ratio"] == pytest.approx(19 / 140)
    assert decide(FineWebPolicy(), scored(FineWeb(), [listy])) == [None]
    assert decide(FineWebPolicy(new_line_ratio=0.13), scored(FineWeb(), [listy])) == [
        "fineweb: newlines per word 0.1357 > 0.13"]
    assert decide(FineWebPolicy(line_punct_thr=0.5, line_punct_exclude_zero=True),
                  scored(FineWeb(), ["\n".join(" ".join(words(9, i)) for i in range(3))])) == [None]


# --- C4 --------------------------------------------------------------------------------------------------------
def c4(texts: list[str | None], **kw) -> list[dict]:
    return C4(**kw).score(pa.table({"text": pa.array(texts, pa.string())})).to_pylist()


def test_c4_removes_lines_by_each_rule_and_keeps_the_cleaned_text():
    text = "\n".join([
        "Menu",                                             # no terminal punctuation
        "  The first kept line is here. It has two sentences!  ",
        "Too short.",                                       # fewer than 3 words
        "Please enable JavaScript to view this page.",      # javascript
        "By using this site you accept the Terms of Use.",  # policy phrase
        "A citation that ends the line, as Wikipedia does.[12]",
        "Ends with an ellipsis like this...",               # ellipsis
        f"A {'w' * 1001} word is too long.",                 # a word over 1000 characters
        "Last line: three sentences. Two. Three.",
    ])
    row = c4([text])[0]
    assert row["text"] == ("The first kept line is here. It has two sentences!\n"
                           "A citation that ends the line, as Wikipedia does.\n"
                           "Last line: three sentences. Two. Three.")
    assert (row["lines"], row["lines_removed"], row["sentences"]) == (9, 6, 6)
    assert (row["lines_removed_no_punct"], row["lines_removed_few_words"], row["lines_removed_javascript"],
            row["lines_removed_policy"], row["lines_removed_long_word"]) == (2, 1, 1, 1, 1)
    assert decide(C4Policy(), C4().score(pa.table({"text": [text]}))) == [None]
    assert decide(C4Policy(min_num_sentences=7), C4().score(pa.table({"text": [text]}))) == ["c4: sentences 6 < 7"]


def test_c4_document_flags_need_the_line_to_reach_their_test():
    ok = "One sentence here. Two here. Three here. Four here. Five here."
    texts = [ok + "\nLorem ipsum dolor sit amet.", ok + "\nfunction f() { return 1; }.",
             ok + "\nfunction f() { javascript }.", ok + "\nlorem ipsum", ok]
    out = C4().score(pa.table({"text": texts}))
    assert decide(C4Policy(), out) == ["c4: contains 'lorem ipsum'", "c4: contains a curly bracket", None, None, None]
    assert decide(C4Policy(filter_curly_bracket=False, filter_lorem_ipsum=False), out) == [None] * 5
    assert decide(C4Policy(), C4().score(pa.table({"text": ["Only one sentence here."]}))) == ["c4: sentences 1 < 5"]


def test_c4_lower_cases_as_python_does():
    # KELVIN SIGN lower-cases to "k", so this line mentions javascript; a dotted capital I does not match.
    rows = c4(["Turn on JAVASCRIPT please.", "Turn on java\u212aript please.", "Turn on JAVASCR\u0130PT please."])
    assert [r["lines_removed_javascript"] for r in rows] == [1, 0, 0]
    assert "java\u212aript".lower() == "javakript" and [r["text"] == "" for r in rows] == [True, False, False]


# --- unicode, empty and null documents -------------------------------------------------------------------------
def test_unicode_empty_and_null_documents():
    texts = ["", None, "日本語のテキスト。これは二つ目の文です。", "Ünïcödé wörds — “quoted” … done.", "\x00\x01 \ufffd"]
    for stage, reference in RULE_STAGES:
        out = scored(stage(), texts)
        rows = out.to_pylist()
        assert rows[1]["error"] == "null_text: column 'text' is null" and out.column("error").null_count == 4
        for text, row in zip(texts, rows):
            if text is not None:
                assert same(row, reference(text))
    assert decide(GopherQualityPolicy(), scored(GopherQuality(), [""])) == ["gopher_quality: words 0 < 50"]
    assert decide(GopherRepetitionPolicy(), scored(GopherRepetition(), [""])) == ["gopher_repetition: empty text 0 < 1"]
    rows = c4(texts)
    assert rows[1]["error"] and rows[1]["text"] is None and rows[0]["text"] == "" and rows[0]["lines"] == 0
