"""WFPP stage (docs/methods/wfpp.md, "Checks that must hold" 1-5 and 7) against the plain reference."""
from __future__ import annotations

import collections
import math
import random

import ftfy
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate import registry
from curate.errors import ConfigError
from curate.methods.wfpp import stage as W
from curate.methods.wfpp.stage import WFPP
from curate.stage import TablesFitContext
from kernels.words import TOKENIZER_VERSION
from testkit import wfpp_reference as R


def shards_of(captions, cuts=()):
    bounds = [0, *sorted(cuts), len(captions)]
    return [pa.table({"caption": pa.array(captions[a:b], pa.string())}) for a, b in zip(bounds, bounds[1:])]


def fitted(captions, cuts=(), **params) -> tuple[WFPP, pa.Table]:
    stage = WFPP(**params)
    artifact = stage.fit(TablesFitContext(shards_of(captions, cuts)))
    stage.setup(artifact)
    return stage, artifact


def counts_table(counts: dict[str, int]) -> pa.Table:
    return pa.table({"word": pa.array(list(counts), pa.string()), "count": pa.array(list(counts.values()), pa.int64())})


def score_rows(stage: WFPP, captions) -> dict[str, list]:
    return stage.score(pa.table({"caption": pa.array(captions, pa.string())})).to_pydict()


def words_p(artifact: pa.Table) -> dict[str, float]:
    return dict(zip(artifact["word"].to_pylist(), artifact["p"].to_pylist()))


# --- 1. the worked example ------------------------------------------------------------------------
WORKED = {"a": 50_000, "dog": 1_000, "beach": 100, "axolotl": 20, "rare": 4}
WORKED["filler"] = 1_000_000 - sum(c for c in WORKED.values() if c >= 5)


def test_worked_example_probabilities_and_scores():
    artifact = W.vocabulary_from_counts(counts_table(WORKED), t=1e-4, min_count=5)
    meta = WFPP().describe(artifact)
    assert meta["total"] == 1_000_000 and meta["vocab_size"] == 5 and meta["min_count"] == 5
    assert meta["t"] == 1e-4
    p = words_p(artifact)
    assert p["a"] == pytest.approx(0.955279, abs=1e-6)
    assert p["dog"] == pytest.approx(0.683772, abs=1e-6)
    assert p["beach"] == pytest.approx(0.0, abs=1e-12)
    assert "axolotl" not in p and "rare" not in p and "zzq" not in p  # P = -1.236 / count < 5 / unknown
    assert meta["n_p_nonneg"] == len(p) == 4
    stage = WFPP(t=1e-4)
    stage.setup(artifact)
    captions = ["a dog", "a a", "a beach", "axolotl zzq", "a dog axolotl"]
    out = score_rows(stage, captions)
    expected = [0.173403, 0.043721, 0.5, 0.0, 0.115602]
    assert out["score"] == pytest.approx(expected, abs=1e-6)
    assert out["n_tokens"] == [2, 2, 2, 2, 3]
    assert out["n_neutral"] == [0, 0, 0, 2, 1]
    assert out["error"] == [None] * 5
    # The reference agrees with the worked example and, bit for bit, with the stage.
    counter = collections.Counter(WORKED)
    probs, total = R.table(counter, 1e-4, 5)
    assert total == 1_000_000 and probs["axolotl"] == pytest.approx(-1.236, abs=1e-3)
    assert [R.score(c, probs) for c in captions] == out["score"]


# --- 2. the tokeniser: with its kernel, in tests/kernels/test_words.py -----------------------------


# --- 3. truncation ----------------------------------------------------------------------------------
def test_truncation_scores_first_max_tokens_but_counts_all():
    words = [f"w{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(40)]  # 40 distinct letter tokens
    caption = " ".join(words)
    corpus = [caption] * 5 + ["other words here"] * 5
    stage, artifact = fitted(corpus, t=1e-9, min_count=5)
    p = words_p(artifact)
    assert all(p.get(w) is not None for w in words)  # counting used all 40 tokens
    assert WFPP().describe(artifact)["total"] == 5 * 40 + 5 * 3
    out = score_rows(stage, [caption])
    assert out["n_tokens"] == [30]
    prod = 1.0
    for w in words[:30]:
        prod *= p[w]
    assert out["score"] == [(1 - prod) / 30]
    prod40 = prod
    for w in words[30:]:
        prod40 *= p[w]
    assert out["score"][0] != (1 - prod40) / 40
    short = WFPP(t=1e-9, max_tokens=40)
    short.setup(artifact)
    assert score_rows(short, [caption])["n_tokens"] == [40]


def test_count_max_chars_clips_before_cleaning():
    captions = ["abcdefghij klm", "ééééé ééééé", "short", "x" * 3 + "&amp;" + "y" * 10]
    table = W.count_tokens(pa.array(captions), count_max_chars=8)
    got = dict(zip(table["word"].to_pylist(), table["count"].to_pylist()))
    assert got == dict(R.count(captions, count_max_chars=8))
    assert table.schema.metadata[W.META_CLIPPED] == b"3"


# --- 4. the min_count boundary ---------------------------------------------------------------------
@pytest.mark.parametrize("n_rare,in_total", [(4, False), (5, True)])
def test_min_count_boundary(n_rare, in_total):
    corpus = ["common words"] * 10 + ["rare"] * n_rare
    stage, artifact = fitted(corpus, t=1e-7, min_count=5)
    meta = stage.describe(artifact)
    assert meta["total"] == 20 + (n_rare if in_total else 0)
    assert meta["vocab_size"] == 2 + in_total
    assert ("rare" in words_p(artifact)) == in_total
    out = score_rows(stage, ["rare common"])
    assert out["n_neutral"] == [0 if in_total else 1]
    assert out["n_tokens"] == [2]


# --- 5. counts merged over any sharding -------------------------------------------------------------
WORDS = st.sampled_from(["a", "the", "Dog", "dog", "don't", "A-10", "&amp;amp;", "café", "cafÃ©", "東京", "x2", "", " "])
CAPTIONS = st.lists(st.one_of(st.lists(WORDS, max_size=6).map(" ".join), st.none(), st.text(max_size=12)),
                    min_size=1, max_size=25)


def merge_counts(shards: list[pa.Table], partitions: int) -> pa.Table:
    """The reduce's merge as one table (`word`, `count`, sorted by word), one partition at a time."""
    df = pl.concat([W._merge(shards, p if partitions > 1 else None) for p in range(partitions)]).sort("word")
    return pa.table({"word": df["word"].to_arrow().cast(pa.string()), "count": df["count"].to_arrow()})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CAPTIONS, st.data())
def test_counts_merged_over_random_shard_cuts(captions, data):
    cuts = data.draw(st.lists(st.integers(0, len(captions)), max_size=5))
    partitions = data.draw(st.sampled_from([1, 3]))
    single = dict(R.count(captions))
    shards = [W.count_tokens(s.column("caption"), partitions=partitions) for s in shards_of(captions, cuts)]
    merged = merge_counts(shards, partitions)
    assert dict(zip(merged["word"].to_pylist(), merged["count"].to_pylist())) == single
    seen: dict[str, int] = {}  # a word falls in the same partition in every shard, as the merge needs
    for s in shards:
        for w, part in zip(s["word"].to_pylist(), s["part"].to_pylist()):
            assert 0 <= part < partitions and seen.setdefault(w, part) == part
    # the whole fit: same artifact however the rows are sharded and partitioned
    _, one = fitted(captions, t=1e-9, min_count=1)
    _, many = fitted(captions, cuts, t=1e-9, min_count=1, partitions=partitions)
    assert one.equals(many) and one.schema.metadata == many.schema.metadata
    probs, total = R.table(R.count(captions), 1e-9, 1)
    assert words_p(one) == {w: p for w, p in probs.items() if p >= 0}
    assert WFPP().describe(one)["total"] == total
    assert WFPP().describe(one)["rows_null"] == sum(c is None for c in captions)


# --- 7. errors ----------------------------------------------------------------------------------------
def test_empty_whitespace_and_null_captions_are_errors():
    stage, _ = fitted(["a dog", "a cat"] * 5, min_count=1)
    captions = ["a dog", "", "   \t\n", None, "&nbsp;", "zzq", "\x00\x01"]
    out = score_rows(stage, captions)
    assert out["error"] == [None, W.ERR_EMPTY, W.ERR_EMPTY, W.ERR_NULL, W.ERR_EMPTY, None, W.ERR_EMPTY]
    assert out["score"][0] is not None and out["score"][5] == 0.0
    for i in (1, 2, 3, 4, 6):
        assert out["score"][i] is None and out["n_tokens"][i] is None and out["n_neutral"][i] is None
    # in = scored + errored: exactly one of score / error per row
    assert all((s is None) != (e is None) for s, e in zip(out["score"], out["error"]))
    assert [R.score(c, R.table(R.count(["a dog", "a cat"] * 5), 1e-7, 1)[0]) for c in captions] == out["score"]


@pytest.mark.parametrize("column", [pa.array([1, 2, None]), pa.array([b"a", b"b", None]), pa.nulls(3)])
def test_non_string_column_is_bad_caption(column):
    stage, _ = fitted(["a dog"] * 5, min_count=1)
    out = stage.score(pa.table({"caption": column})).to_pydict()
    assert out["score"] == [None] * 3 and out["n_tokens"] == [None] * 3
    assert all(e.startswith("bad_caption:") and str(column.type) in e for e in out["error"])
    counts = W.count_tokens(column)
    assert counts.num_rows == 0 and counts.schema.metadata[W.META_NULL] == b"3"


def test_other_string_types_and_chunking():
    stage, _ = fitted(["a dog", "a cat"] * 5, min_count=1)
    captions = ["a dog", None, "un café", "a cat"]
    expected = score_rows(stage, captions)
    for col in (pa.array(captions, pa.large_string()), pa.array(captions, pa.string_view()),
                pa.array(captions).dictionary_encode(),
                pa.chunked_array([pa.array(captions[:1]), pa.array(captions[1:3]), pa.array(captions[3:])]),
                pa.array(["x", *captions, "y"])[1:5]):
        assert stage.score(pa.table({"caption": col})).to_pydict() == expected
    assert stage.score(pa.table({"caption": pa.array([], pa.string())})).num_rows == 0


# --- bit-identical scores on varied captions --------------------------------------------------------
def varied_captions(n: int, seed: int) -> list[str | None]:
    rng = random.Random(seed)
    base = ["a", "the", "of", "dog", "on", "beach", "red", "car", "photo", "man", "woman", "with", "in"]
    rare = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(400)]
    odd = ["Don't", "it's", "A-10", "&amp;", "&amp;amp;", "&quot;hi&quot;", "café", "CAFÉ", "cafÃ©", "naïve",
           "東京", "Straße", "İstanbul", "x²", "2024", "3.5", "...", "!!", "\t", "\u00a0", "\u3000", "ﬁne",
           "‘quoted’", "Ｌ", "\x0b", "\x00", "a" * 25, "supercalifragilistic", "ΣΟΦΙΑ", "привет", "&#x41;"]
    out: list[str | None] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.01:
            out.append(None)
            continue
        if r < 0.02:
            out.append(rng.choice(["", "  ", "\n"]))
            continue
        k = rng.randint(1, 45)
        words = []
        for _ in range(k):
            u = rng.random()
            w = rng.choice(base) if u < 0.6 else rng.choice(rare) if u < 0.9 else rng.choice(odd)
            words.append(w.capitalize() if rng.random() < 0.1 else w)
        out.append(rng.choice([" ", "  ", ", "]).join(words))
    return out


def test_scores_bit_identical_to_reference():
    captions = varied_captions(3000, seed=7)
    t, min_count = 1e-3, 3
    stage, artifact = fitted(captions, cuts=(700, 701, 2000), t=t, min_count=min_count, partitions=2)
    counter = R.count(captions)
    probs, total = R.table(counter, t, min_count)
    meta = stage.describe(artifact)
    assert meta["total"] == total and meta["vocab_size"] == len(probs)
    assert words_p(artifact) == {w: p for w, p in probs.items() if p >= 0}
    assert 0 < meta["n_p_nonneg"] < len(probs)  # both kinds of counted word occur
    out = score_rows(stage, captions)
    assert out["score"] == [R.score(c, probs) for c in captions]
    assert out["n_neutral"] == [R.n_neutral(c, probs) for c in captions]
    assert out["n_tokens"] == [None if s is None else min(len(R.tokenize(c)), 30)
                               for c, s in zip(captions, out["score"])]
    assert sum(s is not None for s in out["score"]) > 2800


def test_long_tokens_and_large_vocabulary_lookup():
    rng = random.Random(3)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz'-") for _ in range(rng.randint(1, 30)))
             for _ in range(3000)]
    words += ["é" * rng.randint(1, 12) for _ in range(20)]
    counts = {w: rng.randint(1, 50) for w in words}
    artifact = W.vocabulary_from_counts(counts_table(counts), t=1e-4, min_count=2)
    stage = WFPP(t=1e-4, min_count=2)
    stage.setup(artifact)
    probs, _ = R.table(collections.Counter(counts), 1e-4, 2)
    queries = [" ".join(rng.choice(words) + rng.choice(["", "", "x"]) for _ in range(rng.randint(1, 8)))
               for _ in range(500)]
    assert score_rows(stage, queries)["score"] == [R.score(q, probs) for q in queries]


# --- the stage object -----------------------------------------------------------------------------
def test_registration_params_and_outputs():
    assert registry.lookup("stage", "wfpp") is WFPP
    stage = WFPP()
    params = stage.get_params()
    assert params["t"] == 1e-7 and params["min_count"] == 5 and params["max_tokens"] == 30
    assert params["count_max_chars"] == 10_000 and params["text_column"] == "caption"
    identity = stage.identity()
    assert identity["ftfy"] == ftfy.__version__ and identity["tokenizer"] == TOKENIZER_VERSION
    assert "partitions" not in identity["params"]  # the merge is exact: partitions never change scores
    assert identity == WFPP(partitions=4).identity() != WFPP(t=1e-6).identity()
    assert stage.inputs == ("caption",) and WFPP(text_column="text").inputs == ("text",)
    assert stage.outputs == {"score": pa.float64(), "n_tokens": pa.int16(), "n_neutral": pa.int16(),
                             "error": pa.string()}
    assert stage.has_fit and stage.name == "wfpp"


@pytest.mark.parametrize("kwargs", [
    {"t": 0}, {"t": 1}, {"t": -1e-7}, {"t": math.nan}, {"t": "1e-7"}, {"t": True},
    {"min_count": 0}, {"min_count": 2.5}, {"min_count": True}, {"max_tokens": 0}, {"max_tokens": 40_000},
    {"count_max_chars": 0}, {"partitions": 0}, {"text_column": ""},
])
def test_bad_params_raise_config_error(kwargs):
    with pytest.raises(ConfigError, match="wfpp"):
        WFPP(**kwargs)


def test_count_shard_metadata_and_describe():
    captions = ["a b", None, "", "   ", "x" * 20]
    table = W.count_tokens(pa.array(captions), count_max_chars=10)
    md = table.schema.metadata
    assert (md[W.META_ROWS], md[W.META_NULL], md[W.META_EMPTY], md[W.META_CLIPPED]) == (b"5", b"1", b"2", b"1")
    stage, artifact = fitted(captions, cuts=(2,), min_count=1, count_max_chars=10)
    d = stage.describe(artifact)
    assert (d["rows"], d["rows_null"], d["rows_no_tokens"], d["rows_clipped"]) == (5, 1, 2, 1)
    assert d["total"] == 3 and d["vocab_size"] == 3 and d["ftfy"] == ftfy.__version__


@pytest.mark.parametrize("typ,ok", [
    (pa.string(), True), (pa.large_string(), True), (pa.string_view(), True),
    (pa.dictionary(pa.int32(), pa.string()), True), (pa.null(), True),
    (pa.int64(), False), (pa.binary(), False), (pa.large_binary(), False), (pa.list_(pa.string()), False),
    (pa.dictionary(pa.int32(), pa.int64()), False),
])
def test_check_input_accepts_string_and_null_types_only(typ, ok):
    """Plan time: the column types `score` reads, plus null (an all-null shard; its rows get bad_caption)."""
    problem = WFPP().check_input("caption", typ)
    assert problem is None if ok else problem == f"is {typ}; needs a string"
