"""WFPP through the engine: determinism across sharding and executors, custom filters beside it,
per-row errors, and the method's intent on real captions (spec check 8)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

import curate
from curate.methods.wfpp.stage import WFPP
from curate.stage import TablesFitContext
from testkit import wfpp_reference as ref
from testkit.helpers import caption_length, caption_table, write_shards


def wfpp_pipeline(*extra, fraction=0.5):
    return curate.Pipeline([WFPP(t=1e-4, min_count=2), *extra], [curate.KeepFraction("wfpp.score", fraction)],
                           id_column="id")


def without_shard(table: pa.Table) -> pa.Table:
    return table.drop_columns(["shard"])


def test_one_shard_and_sixteen_shards_give_the_same_manifest(tmp_path):
    table = caption_table(2000)
    one = write_shards(tmp_path / "one", table, 1)
    sixteen = write_shards(tmp_path / "sixteen", table, 16)
    curate.run(wfpp_pipeline(), one, tmp_path / "r1", executor="local")
    curate.run(wfpp_pipeline(), sixteen, tmp_path / "r16", executor="local")
    a, b = curate.load_manifest(tmp_path / "r1"), curate.load_manifest(tmp_path / "r16")
    assert a.column("keep").to_pylist().count(True) == 1000
    assert without_shard(a).equals(without_shard(b))


def test_shuffled_shard_order_keeps_the_same_rows(tmp_path):
    table = caption_table(600)
    perm = np.random.default_rng(1).permutation(600)
    write_shards(tmp_path / "a", table, 3)
    write_shards(tmp_path / "b", table.take(pa.array(perm)), 5)
    curate.run(wfpp_pipeline(), tmp_path / "a", tmp_path / "ra", executor="local")
    curate.run(wfpp_pipeline(), tmp_path / "b", tmp_path / "rb", executor="local")
    kept = [{r["id"] for r in curate.load_manifest(tmp_path / x).to_pylist() if r["keep"]} for x in ("ra", "rb")]
    assert len(kept[0]) == 300 and kept[0] == kept[1]


@pytest.mark.slow
def test_local_and_ray_executors_give_the_same_manifest(tmp_path, shared_ray):
    data = write_shards(tmp_path / "data", caption_table(1500), 6)
    curate.run(wfpp_pipeline(caption_length), data, tmp_path / "local", executor="local")
    curate.run(wfpp_pipeline(caption_length), data, tmp_path / "ray", executor="ray")
    assert curate.load_manifest(tmp_path / "local").equals(curate.load_manifest(tmp_path / "ray"))


def test_custom_filter_runs_plain_and_beside_wfpp(tmp_path):
    batch = pa.table({"caption": ["a dog", None, "sunset"]})
    plain = caption_length(batch)  # a plain call: no engine, no Ray
    assert plain.column("len").to_pylist() == [5, None, 6] and plain.column("error").to_pylist()[1] == "bad_caption"

    data = write_shards(tmp_path / "data", caption_table(300), 3)
    p = curate.Pipeline([WFPP(t=1e-4, min_count=2), caption_length],
                        [curate.Threshold("caption_length.len", min=15), curate.KeepFraction("wfpp.score", 0.5)],
                        id_column="id")
    s = curate.run(p, data, tmp_path / "run", executor="local")
    m = curate.load_manifest(tmp_path / "run").to_pylist()
    assert {"wfpp.score", "caption_length.len", "keep.caption_length", "keep.wfpp"} <= set(m[0])
    for row in m:
        assert row["keep"] == (row["keep.caption_length"] and row["keep.wfpp"])
        if not row["keep.caption_length"]:
            assert row["drop_reason"].startswith("caption_length.len")  # the first policy that dropped it
    assert s["result"]["kept"] == sum(r["keep"] for r in m)


def test_bad_captions_become_per_row_errors_and_every_row_is_accounted(tmp_path):
    weird = [None, "", "   \t\n ", "&amp;amp;", "cafÃ© au lait", "\x00\x01\x02", "\ufffd\ufffd", "日本語 テキスト",
             "A-10 don't", "normal caption here"]
    table = pa.table({"id": [f"w{i}" for i in range(len(weird))], "caption": pa.array(weird, pa.string())})
    data = write_shards(tmp_path / "data", pa.concat_tables([table, caption_table(200)]), 2)
    s = curate.run(wfpp_pipeline(), data, tmp_path / "run", executor="local")
    rows = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    assert rows["w0"]["wfpp.error"].startswith("bad_caption")
    assert rows["w1"]["wfpp.error"].startswith("empty_caption") and rows["w2"]["wfpp.error"].startswith("empty_caption")
    for i in (3, 4, 7, 8, 9):
        assert rows[f"w{i}"]["wfpp.error"] is None and rows[f"w{i}"]["wfpp.score"] is not None
    r = s["result"]
    assert r["in"] == 210 and r["in"] == r["kept"] + r["dropped"] + r["errored"]
    errs = s["stages"]["wfpp"]["errors"]
    assert errs["bad_caption"] == 1 and errs["empty_caption"] >= 2 and r["errored"] == sum(errs.values())


@pytest.fixture(scope="module")
def demo_captions(demo_table):
    return demo_table.column("caption").to_pylist()


def test_wfpp_half_has_a_flatter_word_distribution_than_a_random_half(demo_captions):
    """Spec check 8 on ~8,000 real openclipart captions."""
    valid = [c for c in demo_captions if c and ref.tokenize(ref.clean(c))]
    assert len(valid) > 7000
    stage = WFPP()  # defaults: t = 1e-7, min_count = 5
    col = pa.table({"caption": pa.array(valid)})
    stage.setup(stage.fit(TablesFitContext([col])))
    scores = stage.score(col).column("score").to_numpy()
    k = len(valid) // 2

    def top20_share(idx) -> float:
        c = Counter(w for i in idx for w in ref.tokenize(ref.clean(valid[i])))
        return sum(n for _, n in c.most_common(20)) / sum(c.values())

    wfpp_share = top20_share(np.argsort(-scores, kind="stable")[:k])
    rng = np.random.default_rng(0)
    random_share = np.mean([top20_share(rng.choice(len(valid), k, replace=False)) for _ in range(5)])
    assert random_share - wfpp_share >= 0.05, (wfpp_share, random_share)
