"""The zipfit stage: exact sizes, brute-force top-K, sharding/executor independence, errors, targets,
the optional fast paths (docs/methods/zipfit.md checks 1, 3, 4, 5)."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import curate
from curate.config import pipeline_from_dict
from curate.data.stdlib_code import chunk_lines, stdlib_files
from curate.errors import ConfigError, DataError
from curate.methods.zipfit.stage import ZipFit, set_hash
from curate.policy import tie_keys
from curate.stage import TablesFitContext
from kernels.hashing import hash_strings
from testkit.helpers import write_shards


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], pa.Table]:
    """Real stdlib chunks: 8 targets from `json`, 60 candidates from json/email/asyncio, plus an exact
    duplicate pair (a tie the policy must break by id)."""
    files = stdlib_files()

    def chunks(pkg: str, k: int) -> list[str]:
        out = [c for rel, p in files if rel.startswith(pkg + "/") for c in chunk_lines(p.read_text())]
        return out[:k]

    json_chunks = chunks("json", 28)
    targets = json_chunks[:8]
    texts = json_chunks[8:] + chunks("email", 20) + chunks("asyncio", 20)
    texts.append(texts[3])  # exact duplicate of a json chunk: tied score
    ids = [f"c{i:03d}" for i in range(len(texts))]
    return targets, pa.table({"id": ids, "text": texts})


def brute_force_scores(texts: list[str], targets: list[str], level: int = 1) -> np.ndarray:
    out = []
    for x in texts:
        xb = x.encode()
        d = []
        for y in targets:
            yb = y.encode()
            cx, cy, cxy = len(gzip.compress(xb, level)), len(gzip.compress(yb, level)), len(gzip.compress(xb + yb, level))
            d.append((cxy - min(cx, cy)) / max(cx, cy))
        out.append(1 - np.mean(d))
    return np.array(out)


def fitted(stage: ZipFit, table: pa.Table) -> ZipFit:
    stage.setup(stage.fit(TablesFitContext([table.select([stage.text_column])])))
    return stage


def kept_ids(run_dir) -> set[str]:
    return {r["id"] for r in curate.load_manifest(run_dir).to_pylist() if r["keep"]}


def test_target_sizes_in_the_artifact_are_gzip_sizes_byte_for_byte(corpus):
    targets, table = corpus
    for level in (1, 9):
        art = ZipFit(target=targets, level=level).fit(TablesFitContext([table]))
        assert art.column("size").to_pylist() == [len(gzip.compress(t.encode(), level)) for t in targets]


def test_scores_equal_a_brute_force_double_loop(corpus):
    targets, table = corpus
    got = fitted(ZipFit(target=targets), table).score(table).column("score").to_numpy()
    np.testing.assert_allclose(got, brute_force_scores(table.column("text").to_pylist(), targets), atol=1e-12)


def test_top_k_equals_brute_force_with_ties_broken_by_id(tmp_path, corpus):
    targets, table = corpus
    write_shards(tmp_path / "data", table, 3)
    scores = brute_force_scores(table.column("text").to_pylist(), targets)
    ties = tie_keys(hash_strings(table.column("id")), seed=0)
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], int(ties[i])))
    ids = table.column("id").to_pylist()
    assert scores[3] == scores[-1]  # the duplicated chunk: an exact tie
    first = min(order.index(3), order.index(len(ids) - 1))
    for k in (15, first + 1):  # the second cut falls between the tied pair: only the tie_key winner stays
        p = curate.Pipeline([ZipFit(target=targets)], [curate.TopK("zipfit.score", k=k)], id_column="id")
        curate.run(p, tmp_path / "data", tmp_path / f"run{k}", executor="local")
        assert kept_ids(tmp_path / f"run{k}") == {ids[i] for i in order[:k]}
    kept = kept_ids(tmp_path / f"run{first + 1}")
    winner, loser = sorted([3, len(ids) - 1], key=lambda i: int(ties[i]))
    assert ids[winner] in kept and ids[loser] not in kept


def test_short_candidates_warn_that_scores_are_noisy(caplog):
    t = pa.table({"text": ["a dog", "a cat", "the sea", "x" * 200]})
    with caplog.at_level("WARNING"):
        ZipFit(target=["a dog on the beach"]).fit(TablesFitContext([t]))
    assert any("under 64 bytes" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING"):
        ZipFit(target=["a dog on the beach"]).fit(TablesFitContext([pa.table({"text": ["y" * 300] * 3})]))
    assert not any("under 64 bytes" in r.message for r in caplog.records)


def test_same_kept_rows_and_scores_across_shard_orders(tmp_path, corpus):
    targets, table = corpus
    perm = np.random.default_rng(3).permutation(table.num_rows)
    write_shards(tmp_path / "one", table, 1)
    write_shards(tmp_path / "five", table.take(pa.array(perm)), 5)
    for name, data in (("r1", "one"), ("r5", "five")):
        p = curate.Pipeline([ZipFit(target=targets)], [curate.KeepFraction("zipfit.score", 0.25)], id_column="id")
        curate.run(p, tmp_path / data, tmp_path / name, executor="local")
    a, b = (sorted(curate.load_manifest(tmp_path / r).to_pylist(), key=lambda r: r["id"]) for r in ("r1", "r5"))
    assert [(r["id"], r["zipfit.score"], r["keep"]) for r in a] == [(r["id"], r["zipfit.score"], r["keep"]) for r in b]
    assert sum(r["keep"] for r in a) == round(0.25 * table.num_rows)


@pytest.mark.slow
def test_local_and_ray_with_one_or_two_workers_give_the_same_manifest(tmp_path, corpus, shared_ray):
    targets, table = corpus
    write_shards(tmp_path / "data", table, 4)
    p = curate.Pipeline([ZipFit(target=targets)], [curate.TopK("zipfit.score", k=10)], id_column="id")
    curate.run(p, tmp_path / "data", tmp_path / "local", executor="local")
    for workers in (1, 2):
        curate.run(p, tmp_path / "data", tmp_path / f"ray{workers}", executor="ray", workers=workers)
        assert curate.load_manifest(tmp_path / "local").equals(curate.load_manifest(tmp_path / f"ray{workers}"))


def test_null_and_empty_texts_are_counted_errors_and_every_row_is_accounted(tmp_path, corpus):
    targets, table = corpus
    bad = pa.table({"id": ["n0", "e0", "e1", "u0"], "text": pa.array([None, "", "", "ünïcødé ✓ text"], pa.string())})
    write_shards(tmp_path / "data", pa.concat_tables([table, bad]), 2)
    p = curate.Pipeline([ZipFit(target=targets)], [curate.Threshold("zipfit.score", min=0.1)], id_column="id")
    s = curate.run(p, tmp_path / "data", tmp_path / "run", executor="local")
    rows = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    assert rows["n0"]["zipfit.error"].startswith("bad_text") and rows["n0"]["zipfit.score"] is None
    assert rows["e0"]["zipfit.error"].startswith("empty_text") and rows["e0"]["zipfit.score"] is None
    assert rows["u0"]["zipfit.error"] is None and rows["u0"]["zipfit.bytes"] == len("ünïcødé ✓ text".encode())
    assert s["stages"]["zipfit"]["errors"] == {"bad_text": 1, "empty_text": 2}
    r = s["result"]
    assert r["in"] == table.num_rows + 4 == r["kept"] + r["dropped"] + r["errored"] and r["errored"] == 3


def test_summary_records_codec_level_framing_and_target_hash(tmp_path, corpus):
    targets, table = corpus
    write_shards(tmp_path / "data", table, 2)
    p = curate.Pipeline([ZipFit(target=targets)], [curate.TopK("zipfit.score", k=5)], id_column="id")
    s = curate.run(p, tmp_path / "data", tmp_path / "run", executor="local")
    art = s["stages"]["zipfit"]["artifact"]
    assert art["target_sha256"] == set_hash([t.encode() for t in targets])
    assert (art["codec"], art["level"], art["backend"], art["exact_gzip"]) == ("gzip", 1, "zlib", True)
    assert art["framing"] == "zlib size + 12" and art["max_bytes"] == 8192 and art["n_targets"] == art["n_used"] == 8
    assert s["stages"]["zipfit"]["worker"]["pairs"] == table.num_rows * 8
    meta = pq.read_schema(next((tmp_path / "run" / "scores" / "zipfit").glob("*.parquet"))).metadata
    assert meta[b"zipfit.target_sha256"].decode() == art["target_sha256"]


def test_targets_from_jsonl_parquet_and_a_dataset_folder_agree(tmp_path, corpus):
    targets, table = corpus
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"body": t}) + "\n" for t in targets))
    pq.write_table(pa.table({"body": targets}), tmp_path / "t.parquet")
    write_shards(tmp_path / "tdir", pa.table({"body": targets}), 3)
    small = table.slice(0, 6)
    want = fitted(ZipFit(target=targets), small).score(small).column("score")
    for src in ("t.jsonl", "t.parquet", "tdir"):
        stage = ZipFit(target=str(tmp_path / src), target_column="body")
        assert stage.depends_on()["target_sha256"] == set_hash([t.encode() for t in targets])
        assert fitted(stage, small).score(small).column("score").equals(want)


def test_bad_targets_fail_the_fit_naming_the_row(tmp_path, corpus):
    _, table = corpus
    with pytest.raises(DataError, match="row 1"):
        ZipFit(target=["fine text", ""]).fit(TablesFitContext([table]))
    (tmp_path / "t.jsonl").write_text('{"text": "ok"}\n{"text": null}\n')
    with pytest.raises(DataError, match=r"row 1 \('text'\) is null"):
        ZipFit(target=str(tmp_path / "t.jsonl")).fit(TablesFitContext([table]))
    with pytest.raises(DataError, match="empty"):
        ZipFit(target=[]).fit(TablesFitContext([table]))
    with pytest.raises(DataError, match="no column 'body'"):
        ZipFit(target=str(tmp_path / "t.jsonl"), target_column="body").identity()


def test_level_0_is_refused_when_the_config_is_read():
    with pytest.raises(ConfigError, match="stored"):
        pipeline_from_dict({"stages": [{"type": "zipfit", "target": ["x"], "level": 0}]})
    with pytest.raises(ConfigError, match="codec"):
        ZipFit(target=["x"], codec="zstd")


def test_a_binary_text_column_is_refused_at_plan_time(tmp_path):
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"id": ["a"], "text": pa.array([b"bytes"], pa.binary())}), tmp_path / "data" / "part-0.parquet")
    p = curate.Pipeline([ZipFit(target=["some target"])], [], id_column="id")
    with pytest.raises(DataError, match="needs a string"):
        curate.run(p, tmp_path / "data", tmp_path / "run", executor="local")


def test_long_texts_are_cut_at_max_bytes_and_flagged(corpus):
    targets, _ = corpus
    long = "".join(targets) * 3
    t = pa.table({"text": [long, long[:500]]})
    out = fitted(ZipFit(target=targets, max_bytes=500), t).score(t)
    assert out.column("truncated").to_pylist() == [True, False] and out.column("bytes").to_pylist() == [500, 500]
    assert out.column("score")[0] == out.column("score")[1]


def test_target_sample_uses_a_seeded_subset_of_n_prime_targets(corpus):
    targets, table = corpus
    stage = ZipFit(target=targets, target_sample=3, seed=7)
    art = stage.fit(TablesFitContext([table]))
    rows = art.column("row").to_pylist()
    assert len(rows) == 3 and rows == sorted(rows) and stage.describe(art)["n_used"] == 3
    assert ZipFit(target=targets, target_sample=3, seed=7).fit(TablesFitContext([table])).column("row").to_pylist() == rows
    small = table.slice(0, 5)
    stage.setup(art)
    want = brute_force_scores(small.column("text").to_pylist(), [targets[i] for i in rows])
    np.testing.assert_allclose(stage.score(small).column("score").to_numpy(), want, atol=1e-12)


def test_prefiltered_rows_are_dropped_with_their_status_not_errored(tmp_path, corpus):
    pytest.importorskip("zstandard")
    targets, table = corpus
    write_shards(tmp_path / "data", table, 3)
    p = curate.Pipeline([ZipFit(target=targets, prefilter_keep=0.5)], [curate.TopK("zipfit.score", k=8)],
                        id_column="id")
    s = curate.run(p, tmp_path / "data", tmp_path / "run", executor="local")
    rows = curate.load_manifest(tmp_path / "run").to_pylist()
    pre = [r for r in rows if r["zipfit.status"] == "prefiltered"]
    exact = [r for r in rows if r["zipfit.status"] == "scored"]
    assert len(exact) >= table.num_rows // 2 and len(pre) == table.num_rows - len(exact) > 0
    assert all(r["zipfit.score"] is None and r["zipfit.gain"] is not None and r["error"] is None
               and r["keep"] is False and r["drop_reason"] == "zipfit.status: prefiltered" for r in pre)
    assert min(r["zipfit.gain"] for r in exact) >= max(r["zipfit.gain"] for r in pre)
    assert sum(r["keep"] for r in rows) == 8
    pol = s["policies"]["zipfit"]
    assert pol["errored"] == 0 and pol["dropped"] == table.num_rows - 8 and s["result"]["errored"] == 0
    assert s["stages"]["zipfit"]["artifact"]["prefilter_passed"] == len(exact)
