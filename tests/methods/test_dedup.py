"""exact_dedup and minhash_dedup on hand-built groups: normalisations, chains across shards, the verify
threshold, the keep rule, sharding and executor independence, resume, bad input."""
from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

import curate
from curate.errors import DataError
from curate.methods.dedup import Dedup, ExactDedup, MinHashDedup
from testkit.helpers import shuffled_shards, write_shards

VOCAB = [f"w{i}" for i in range(20_000)]


def words(rng: random.Random, k: int) -> list[str]:
    return rng.sample(VOCAB, k)


def pair_at(rng: random.Random, shared: int, size: int = 100) -> tuple[str, str]:
    """Two texts of `size` distinct words sharing `shared`: word-1-gram Jaccard shared / (2 size - shared)."""
    w = words(rng, 2 * size - shared)
    return " ".join(w[:size]), " ".join(w[:shared] + w[size:])


def run(stage, data, out, executor="local", **kw):
    pipe = curate.Pipeline(stages=[stage], policies=[Dedup(column=f"{stage.name}.component")], id_column="id")
    summary = curate.run(pipe, data, out, executor=executor, **kw)
    return summary, {r["id"]: r for r in curate.load_manifest(out).to_pylist()}


def table(texts, **extra) -> pa.Table:
    return pa.table({"id": [f"r{i:04d}" for i in range(len(texts))], "text": pa.array(texts, pa.string()), **extra})


# --- exact ----------------------------------------------------------------------------------------------
NORMAL = ["Hello World", "hello   world", "Hello, World!", "ｈｅｌｌｏ world", "HELLO\tWORLD", "goodbye"]


@pytest.mark.parametrize("how, groups", [
    ("none", [[0], [1], [2], [3], [4], [5]]),
    ("whitespace_case", [[0, 1, 4], [2], [3], [5]]),
    ("nfkc_punct", [[0, 1, 2, 3, 4], [5]]),
])
def test_exact_copies_group_under_each_normalisation(tmp_path, how, groups):
    data = write_shards(tmp_path / "data", table(NORMAL * 2), 3)  # each text twice, across shards
    summary, rows = run(ExactDedup(normalize=how, partitions=2), data, tmp_path / "run")
    for g in groups:
        members = [f"r{i:04d}" for i in g] + [f"r{i + len(NORMAL):04d}" for i in g]
        comps = {rows[m]["exact_dedup.component"] for m in members}
        assert len(comps) == 1 and all(rows[m]["exact_dedup.size"] == len(members) for m in members)
        kept = [m for m in members if rows[m]["keep"]]
        assert len(kept) == 1
        assert all(rows[m]["drop_reason"] == f"exact duplicate of {kept[0]}" for m in members if m != kept[0])
    assert len({r["exact_dedup.component"] for r in rows.values()}) == len(groups)
    assert summary["result"]["kept"] == len(groups)


def test_exact_keep_by_a_score_column_and_by_length(tmp_path):
    texts = ["same text", "Same  text", "SAME TEXT  ", "other"]
    data = write_shards(tmp_path / "data", table(texts, score=pa.array([0.1, 0.9, 0.5, 0.0])), 2)
    _, rows = run(ExactDedup(normalize="whitespace_case", keep_by="score", partitions=1), data, tmp_path / "a")
    assert [rows[f"r{i:04d}"]["keep"] for i in range(4)] == [False, True, False, True]
    assert rows["r0000"]["exact_dedup.dup_of"] == "r0001"
    _, rows = run(ExactDedup(normalize="whitespace_case", keep_by="score", keep_largest=False), data, tmp_path / "b")
    assert [rows[f"r{i:04d}"]["keep"] for i in range(4)] == [True, False, False, True]
    _, rows = run(ExactDedup(normalize="whitespace_case", keep_by="length"), data, tmp_path / "c")
    assert [rows[f"r{i:04d}"]["keep"] for i in range(4)] == [False, False, True, True]  # 11 characters


def test_exact_dedup_of_binary_values(tmp_path):
    blobs = [b"\x89PNG-a", b"\x89PNG-b", b"\x89PNG-a", b"", None]
    t = pa.table({"id": ["a", "b", "c", "d", "e"], "image": pa.array(blobs, pa.binary())})
    _, rows = run(ExactDedup(hash_column="image"), write_shards(tmp_path / "data", t, 2), tmp_path / "run")
    assert rows["a"]["exact_dedup.component"] == rows["c"]["exact_dedup.component"] != rows["b"]["exact_dedup.component"]
    assert rows["a"]["keep"] != rows["c"]["keep"] and rows["b"]["keep"]
    assert rows["d"]["error"].startswith("exact_dedup: empty_bytes") and rows["e"]["error"].startswith("exact_dedup: null")


def test_bad_input_fails_the_plan_naming_shard_and_column(tmp_path):
    t = pa.table({"id": ["a", "b"], "text": [1, 2], "score": ["x", "y"]})
    data = write_shards(tmp_path / "data", t, 1)
    with pytest.raises(DataError, match="part-00000.*column 'text' is int64; needs a string"):
        run(MinHashDedup(), data, tmp_path / "a")
    t = pa.table({"id": ["a", "b"], "text": ["x y", "y z"], "score": ["x", "y"]})
    with pytest.raises(DataError, match="column 'score' is string; keep_by needs a number"):
        run(ExactDedup(keep_by="score"), write_shards(tmp_path / "d2", t, 1), tmp_path / "b")
    with pytest.raises(DataError, match="normalize 'nfkc_punct' needs text"):
        run(ExactDedup(hash_column="b", normalize="nfkc_punct"),
            write_shards(tmp_path / "d3", pa.table({"id": ["a"], "b": pa.array([b"x"])}), 1), tmp_path / "c")


# --- minhash ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus():
    """Random texts plus: a chain a~b~c (J(a,b), J(b,c) about 0.82, J(a,c) about 0.67), a pair at 0.818 and a
    pair at 0.786 (threshold 0.8), exact copies, and bad rows."""
    rng = random.Random(7)
    w = words(rng, 120)
    a, b, c = w[:100], w[10:110], w[20:120]  # |a ∩ b| = 90 of 110: 0.818; |a ∩ c| = 80 of 120: 0.667
    above, below = pair_at(rng, 90), pair_at(rng, 88)
    texts = [" ".join(a), " ".join(b), " ".join(c), *above, *below, " ".join(a).upper()]
    texts += [" ".join(words(rng, 100)) for _ in range(300)] + [None, "  "]
    return texts


def minhash(**kw):
    return MinHashDedup(**{"shingle": "word", "n": 1, "num_perm": 128, "threshold": 0.8, "partitions": 3, **kw})


@pytest.fixture(scope="module")
def verified(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("minhash")
    data = shuffled_shards(root / "data", table(corpus), 4, seed=1)
    summary, rows = run(minhash(verify=True), data, root / "run")
    return root, summary, rows


def comp(rows, i):
    return rows[f"r{i:04d}"]["minhash_dedup.component"]


def test_chain_forms_one_component_across_shards(verified):
    _, _, rows = verified
    assert comp(rows, 0) == comp(rows, 1) == comp(rows, 2) == comp(rows, 7)
    members = [rows[f"r{i:04d}"] for i in (0, 1, 2, 7)]
    assert len({m["shard"] for m in members}) > 1  # the chain spans shards
    assert sum(m["keep"] for m in members) == 1 and all(m["minhash_dedup.size"] == 4 for m in members)
    kept = next(m["id"] for m in members if m["keep"])
    assert all(m["minhash_dedup.dup_of"] == kept and m["drop_reason"] == f"near duplicate of {kept}"
               for m in members if not m["keep"])


def test_verify_keeps_the_pair_below_the_threshold_and_merges_the_one_above(verified):
    _, summary, rows = verified
    assert comp(rows, 3) == comp(rows, 4) and rows["r0003"]["keep"] != rows["r0004"]["keep"]
    assert abs(rows["r0003"]["minhash_dedup.jaccard"] - 90 / 110) < 1e-6
    assert comp(rows, 5) != comp(rows, 6) and rows["r0005"]["keep"] and rows["r0006"]["keep"]
    art = summary["stages"]["minhash_dedup"]["artifact"]
    assert art["accepted_pairs"] < art["candidate_pairs"]  # 0.786 was a candidate, refused by verify
    assert art["s_curve"]["0.8"] >= 0.95


def test_without_verify_every_candidate_is_a_duplicate(corpus, verified, tmp_path):
    root, _, _ = verified
    _, rows = run(minhash(), root / "data", tmp_path / "run")
    assert comp(rows, 5) == comp(rows, 6)  # the LSH candidate at 0.786 is merged without verify
    est = rows["r0006"]["minhash_dedup.jaccard"]
    assert 0.6 < est < 0.95  # the signature estimate


def test_bad_rows_are_errors_not_drops(verified):
    _, summary, rows = verified
    n = len(rows)
    assert rows[f"r{n - 2:04d}"]["error"] == "minhash_dedup: null_text: column 'text' is null"
    assert rows[f"r{n - 1:04d}"]["error"] == "minhash_dedup: empty_text: no shingles after normalisation"
    r = summary["result"]
    assert r["errored"] == 2 and r["in"] == r["kept"] + r["dropped"] + r["errored"] == n


def test_results_do_not_depend_on_sharding_partitions_or_executor(corpus, verified, tmp_path, shared_ray):
    _, _, rows = verified
    data = shuffled_shards(tmp_path / "data", table(corpus), 7, seed=5)
    _, other = run(minhash(verify=True, partitions=2), data, tmp_path / "run", executor="ray", workers=2)
    cols = ["minhash_dedup.component", "minhash_dedup.size", "minhash_dedup.dup_of", "minhash_dedup.jaccard", "keep"]
    assert all(rows[i][c] == other[i][c] for i in rows for c in cols)


class Fails(MinHashDedup):
    """Fails in the second round of components until `broken` is switched off (a crash mid-fit)."""

    broken = True

    def _small_reduce(self, rows):
        if Fails.broken and self._round_name == "cc1s":
            raise RuntimeError("crash")
        return super()._small_reduce(rows)

    def components(self, ctx, pairs):
        return super().components(_Named(ctx, self), pairs)


class _Named:
    def __init__(self, ctx, stage):
        self.ctx, self.stage = ctx, stage

    def shuffle(self, *args, **kw):
        self.stage._round_name = kw.get("name")
        return self.ctx.shuffle(*args, **kw)


def test_resume_after_a_failed_fit_redoes_only_unfinished_units(corpus, verified, tmp_path):
    _, _, rows = verified
    data = shuffled_shards(tmp_path / "data", table(corpus), 4, seed=1)
    stage = Fails(shingle="word", n=1, num_perm=128, threshold=0.8, verify=True, partitions=3, name="minhash_dedup")
    with pytest.raises(curate.errors.RunFailed, match="cc1s"):
        run(stage, data, tmp_path / "run")
    Fails.broken = False
    summary, again = run(stage, data, tmp_path / "run")
    phases = summary["phases"]
    assert phases["fit:minhash_dedup:nodes:map"]["computed"] == 0
    assert phases["fit:minhash_dedup:join_b:reduce"]["computed"] == 0
    assert phases["fit:minhash_dedup:cc1l:reduce"]["computed"] == 0
    assert phases["fit:minhash_dedup:cc1s:reduce"]["computed"] >= 1  # the partitions that failed
    assert all(again[i]["minhash_dedup.component"] == rows[i]["minhash_dedup.component"] for i in rows)


def test_a_new_threshold_reuses_the_signatures(verified):
    root, _, _ = verified
    summary, rows = run(minhash(verify=True, threshold=0.7), root / "data", root / "run")
    phases = summary["phases"]
    assert phases["fit:minhash_dedup:nodes:map"]["computed"] == 0 and phases["fit:minhash_dedup:nodes:map"]["reused"] == 4
    assert phases["fit:minhash_dedup:buckets:map"]["computed"] == 4
    assert comp(rows, 5) == comp(rows, 6)  # 0.786 >= 0.7


def test_with_a_fixed_banding_a_new_threshold_rechecks_only_the_candidates(verified, tmp_path):
    root, _, _ = verified
    data = root / "data"
    run(minhash(verify=True, bands=16, rows=8), data, tmp_path / "run")
    summary, rows = run(minhash(verify=True, bands=16, rows=8, threshold=0.78), data, tmp_path / "run")
    phases = summary["phases"]
    assert all(phases[f"fit:minhash_dedup:{s}:map"]["computed"] == 0 for s in ("nodes", "buckets", "join_a"))
    assert phases["fit:minhash_dedup:join_b:map"]["computed"] == 4
    assert comp(rows, 5) == comp(rows, 6)  # 0.786 >= 0.78


def test_keep_rule_picks_the_best_score_in_a_component(corpus, tmp_path):
    score = np.zeros(len(corpus))
    score[2] = 5.0  # c, at one end of the chain
    data = write_shards(tmp_path / "data", table(corpus, score=pa.array(score)), 3)
    _, rows = run(minhash(verify=True, keep_by="score"), data, tmp_path / "run")
    assert rows["r0002"]["keep"] and all(rows[f"r{i:04d}"]["minhash_dedup.dup_of"] == "r0002" for i in (0, 1, 7))


# --- control characters ----------------------------------------------------------------------------------
def _with_controls(text: str, every: int = 7) -> str:
    """Every `every`-th word with a control character stuck to it (a backspace, a bell, an escape, DEL), as
    terminal-formatted text (fortunes, man pages) carries them."""
    controls = ["\b", "\a", "\x1b", "\x7f"]
    words = text.split(" ")
    return " ".join(w + controls[i % 4] if i % every == 0 else w for i, w in enumerate(words))


@pytest.mark.parametrize("how", ["whitespace_case", "nfkc_punct"])
@pytest.mark.parametrize("tail", ["", " café"])  # pure ASCII (the compiled kernel) and not (the regexes)
def test_control_characters_separate_words_like_white_space(how, tail):
    from curate.methods.dedup.text import text_shingles

    rng = random.Random(3)
    plain = " ".join(words(rng, 40)) + tail
    texts = pa.array([plain, _with_controls(plain), "w1\bw2 w3"])
    h, off = text_shingles(texts, how, "word", 5)
    assert set(h[off[0]:off[1]]) == set(h[off[1]:off[2]])
    h2, off2 = text_shingles(pa.array(["w1 w2 w3"]), how, "word", 5)
    assert list(h[off[2]:off[3]]) == list(h2)  # inside a word, a control character splits it


def test_a_pair_with_a_backspace_is_still_a_near_duplicate(tmp_path):
    rng = random.Random(5)
    a, b = pair_at(rng, 95)  # word Jaccard 95 / 105 = 0.905
    texts = [a, _with_controls(b, every=5)] + [" ".join(words(rng, 100)) for _ in range(20)]
    _, rows = run(minhash(verify=True), write_shards(tmp_path / "data", table(texts), 2), tmp_path / "run")
    assert comp(rows, 0) == comp(rows, 1) and rows["r0000"]["keep"] != rows["r0001"]["keep"]
    assert rows["r0001"]["minhash_dedup.jaccard"] == pytest.approx(95 / 105, abs=1e-6)
    _, rows = run(ExactDedup(normalize="whitespace_case"), write_shards(tmp_path / "d2", table([a, _with_controls(a)]), 1),
                  tmp_path / "exact")
    assert rows["r0000"]["exact_dedup.component"] == rows["r0001"]["exact_dedup.component"]
