"""The CLIP word tokeniser and word keys (kernels/words.py) against the plain reference."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import words as K
from testkit import wfpp_reference as R

TOKEN_CASES = {
    "Don't": ["don", "'t"],
    "A-10": ["a", "-", "1", "0"],
    "&amp;amp;": ["&"],
    "&amp;lt;b&amp;gt;": ["<", "b", ">"],
    "DOG Dog dOg": ["dog", "dog", "dog"],
    "2024": ["2", "0", "2", "4"],
    "THEY'RE it'S we'll I'd": ["they", "'re", "it", "'s", "we", "'ll", "i", "'d"],
    "''s x'''s 'sam": ["''", "s", "x", "'''", "s", "'s", "am"],
    "ÉCOLE café": ["école", "café"],
    "cafÃ©": ["café"],
    "  tabs\tand\r\nnew  lines  ": ["tabs", "and", "new", "lines"],
    "...!?": ["...!?"],
    "東京タワー": ["東京タワー"],
    "x²": ["x", "²"],
}


@pytest.mark.parametrize("caption,expected", list(TOKEN_CASES.items()))
def test_tokeniser_cases(caption, expected):
    assert R.tokenize(caption) == expected
    # alone (fast or Python path) and next to rows that take the other path
    assert K.tokens_per_row(pa.array([caption])) == [expected]
    batch = ["plain ascii row", caption, "row with é", caption + " é"]
    got = K.tokens_per_row(pa.array(batch))
    assert got == [R.tokenize(c) for c in batch]
    assert got[1] == expected and got[3] == expected + ["é"]


ASCII = st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=60)
PRINTABLE = st.lists(st.sampled_from([chr(c) for c in range(32, 127) if c != 38] + ["\t", "\n", "\r", "'s", "'ll"]),
                     max_size=40).map("".join)
FRAGMENTS = st.sampled_from([
    "a", "Dog", "x", "'s", "'T", "'re", "'ll", "'", "''", "-", "10", " ", "  ", "\t", "\n", "\r", "\x0b",
    "\x1c", "\x00", "\x7f", "&amp;", "&amp;amp;", "&lt;", "&#39;", "&#0;", "&nbsp;", "&", "<", "cafÃ©",
    "Ã¼ber", "â€™", "é", "É", "ß", "İ", "ǅ", "東京", "²", "½", "٣", "\u00a0", "\u2028", "\u3000", "ﬁ", "Ｌ",
    "\u0301", "\U0001F600", "\x85", "\x9d", "Σ", "ΣΑΣ",
])
MIXED = st.lists(FRAGMENTS, max_size=12).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(PRINTABLE, ASCII, MIXED, st.text(max_size=30)), min_size=1, max_size=8),
       st.integers(1, 12))
def test_tokens_match_reference_on_arbitrary_text(captions, clip):
    """Rows of PRINTABLE take the numpy path; the other strategies mostly the Python path."""
    got = K.tokens_per_row(pa.array(captions, pa.string()))
    assert got == [R.tokenize(c) for c in captions]
    assert K.tokens_per_row(pa.array(captions), clip=clip) == [R.tokenize(c[:clip]) for c in captions]
    truncated = K.tokens_per_row(pa.array(captions), max_tokens=3)
    assert truncated == [R.tokenize(c)[:3] for c in captions]


@pytest.mark.parametrize("caption", ["we'll", "they're", "it's", "x'd", "a'b", "''ll"])
def test_clip_inside_a_contraction(caption):
    for clip in range(1, len(caption) + 1):
        assert K.tokens_per_row(pa.array([caption, "ok"]), clip=clip) == [R.tokenize(caption[:clip]), R.tokenize("ok"[:clip])]


def test_fast_path_is_taken_only_for_plain_ascii():
    rows = pa.array(["plain, ASCII text: 1-2 don't", "tab\tCR\r", "amp &", "bell\x07", "é", "del\x7f", None])
    data, offsets, valid = K._arrow_parts(K._string_array(rows)[0])
    assert K._needs_python(data, offsets).tolist() == [False, False, True, True, True, True, False]




def test_load_u64_matches_bytes():
    buf = np.zeros(64 + K._PAD, np.uint8)
    buf[:64] = np.arange(1, 65)
    pos = np.arange(64)
    got = K._load_u64(buf, pos)
    want = [int.from_bytes(bytes(buf[p:p + 8]), "little") for p in range(64)]
    assert got.tolist() == want


def test_count_words_matches_reference_counts_and_tallies():
    captions = ["a dog, a DOG", None, "", "café &amp; crème", "x" * 20, "supercalifragilisticexpialidocious y",
                "abcdefghijklmnop abcdefghijklmnopq", "\x00\x01 nul"]
    c = K.count_words(pa.array(captions), clip=18)
    assert dict(zip(c.words.to_pylist(), c.counts.tolist())) == dict(R.count(captions, count_max_chars=18))
    assert len(set(c.words.to_pylist())) == len(c.words) and c.counts.dtype == np.int64
    assert (c.rows_null, c.rows_no_tokens, c.rows_clipped) == (1, 1, 3)


def test_vocab_index_finds_exactly_its_words():
    vocab = ["a", "dog", "abcdefgh", "abcdefghi", "abcdefghijklmnop", "abcdefghijklmnopq", "café", "東京タワー"]
    index = K.VocabIndex(pa.array(vocab), np.arange(1, len(vocab) + 1) / 10)
    queries = vocab + ["b", "abcdefg", "abcdefghij", "abcdefghijklmno", "abcdefghijklmnopqr", "cafe"]
    tokens = K.split_column(pa.array([" ".join(queries)])).python  # non-ASCII row: the Python path
    factor, found = index.lookup(tokens)
    assert found.tolist() == [True] * len(vocab) + [False] * 6
    assert factor.tolist() == [(i + 1) / 10 for i in range(len(vocab))] + [1.0] * 6


def test_split_column_refuses_non_string_columns():
    assert K.is_string_type(pa.dictionary(pa.int8(), pa.large_string())) and not K.is_string_type(pa.null())
    with pytest.raises(TypeError, match="int64"):
        K.split_column(pa.array([1, 2]))
