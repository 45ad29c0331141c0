"""Engine contracts: resume after a kill, re-threshold without re-scoring, failures, accounting."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import curate
from curate.engine.executor import as_executor
from curate.engine.run import Run
from testkit.helpers import (
    caption_length,
    caption_table,
    flaky,
    slow_length,
    write_shards,
)

ROOT = Path(__file__).resolve().parents[2]


def sidecars(run_dir: Path, stage: str) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in (run_dir / "scores" / stage).glob("*.json")}


def test_rerun_reuses_every_unit_and_gives_the_same_manifest(tmp_path):
    data = write_shards(tmp_path / "data", caption_table(300), 6)
    p = curate.Pipeline([caption_length], [curate.KeepFraction("caption_length.len", 0.5)], id_column="id")
    first = curate.run(p, data, tmp_path / "run", executor="local")
    before = sidecars(tmp_path / "run", "caption_length")
    again = curate.run(p, data, tmp_path / "run", executor="local")
    assert first["stages"]["caption_length"]["units_computed"] == 6
    assert again["stages"]["caption_length"]["units_computed"] == 0
    assert again["stages"]["caption_length"]["units_reused"] == 6
    assert sidecars(tmp_path / "run", "caption_length") == before
    assert again["result"] == first["result"]


def test_changing_only_the_policy_reruns_only_the_policies(tmp_path):
    data = write_shards(tmp_path / "data", caption_table(400), 4)
    run_dir = tmp_path / "run"
    p = curate.Pipeline([caption_length], [curate.KeepFraction("caption_length.len", 0.9)], id_column="id")
    first = curate.run(p, data, run_dir, executor="local")
    scored = sidecars(run_dir, "caption_length")
    p2 = curate.Pipeline([caption_length], [curate.KeepFraction("caption_length.len", 0.5)], id_column="id")
    second = curate.run(p2, data, run_dir, executor="local")
    assert second["stages"]["caption_length"]["units_computed"] == 0
    assert second["phases"]["ids"]["computed"] == 0
    assert sidecars(run_dir, "caption_length") == scored
    assert first["result"]["kept"] == 360 and second["result"]["kept"] == 200
    manifest = curate.load_manifest(run_dir)
    assert manifest.column("keep").to_pylist().count(True) == 200


def test_killed_run_resumes_from_finished_shards_and_matches_an_uninterrupted_run(tmp_path):
    data = write_shards(tmp_path / "data", caption_table(160), 8)
    run_dir = tmp_path / "run"
    script = (
        "import curate, sys\n"
        "from testkit.helpers import slow_length\n"
        "p = curate.Pipeline([slow_length], [curate.KeepFraction('slow_length.len', 0.5)], id_column='id')\n"
        f"curate.run(p, {str(data)!r}, {str(run_dir)!r}, executor='local')\n")
    env = {**os.environ, "CURATE_TEST_SLEEP": "0.5", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env)
    deadline = time.time() + 120
    while len(sidecars(run_dir, "slow_length")) < 3 and time.time() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = sidecars(run_dir, "slow_length")
    assert 3 <= len(finished) < 8, "kill the run half way"
    assert not (run_dir / "summary.json").exists()

    os.environ["CURATE_TEST_SLEEP"] = "0"
    try:
        p = curate.Pipeline([slow_length], [curate.KeepFraction("slow_length.len", 0.5)], id_column="id")
        resumed = curate.run(p, data, run_dir, executor="local")
        fresh = curate.run(p, data, tmp_path / "fresh", executor="local")
    finally:
        del os.environ["CURATE_TEST_SLEEP"]
    stage = resumed["stages"]["slow_length"]
    assert stage["units_reused"] == len(finished) and stage["units_computed"] == 8 - len(finished)
    after = sidecars(run_dir, "slow_length")
    assert all(after[name] == mtime for name, mtime in finished.items()), "a finished shard was recomputed"
    assert curate.load_manifest(run_dir).equals(curate.load_manifest(tmp_path / "fresh"))
    assert resumed["result"] == fresh["result"]


def test_a_failing_shard_is_retried_then_reported_and_a_rerun_picks_it_up(tmp_path, monkeypatch):
    table = caption_table(90)
    captions = table.column("caption").to_pylist()
    captions[45] = "boom goes the shard"
    table = table.set_column(1, "caption", pa.array(captions))
    data = write_shards(tmp_path / "data", table, 3)
    p = curate.Pipeline([flaky], [curate.KeepFraction("flaky.len", 0.5)], id_column="id")
    with pytest.raises(curate.RunFailed, match=r"part-00001\.parquet: stage flaky: RuntimeError\('boom"):
        curate.run(p, data, tmp_path / "run", executor="local")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [f["shard"] for f in summary["failed_shards"]] == ["part-00001.parquet"]
    assert summary["result"]["failed_shard_rows"] == 30 and summary["result"]["in"] == 60
    assert "part-00001.parquet" not in summary["manifest"]["parts"] and len(summary["manifest"]["parts"]) == 2
    assert not list((tmp_path / "run" / "manifest").rglob("part-part-00001.parquet"))

    monkeypatch.setenv("CURATE_TEST_FIXED", "1")
    summary = curate.run(p, data, tmp_path / "run", executor="local")
    assert summary["stages"]["flaky"]["units_computed"] == 1 and summary["stages"]["flaky"]["units_reused"] == 2
    assert summary["result"]["in"] == 90 and summary["failed_shards"] == []


def test_summary_accounts_for_every_row_per_stage_and_policy(tmp_path):
    table = caption_table(100)
    captions = table.column("caption").to_pylist()
    for i in (3, 50, 99):
        captions[i] = None
    data = write_shards(tmp_path / "data", table.set_column(1, "caption", pa.array(captions)), 5)
    p = curate.Pipeline([caption_length], [curate.Threshold("caption_length.len", min=20)], id_column="id")
    s = curate.run(p, data, tmp_path / "run", executor="local")
    r, pol = s["result"], s["policies"]["caption_length"]
    assert r["in"] == 100 and r["errored"] == 3 and r["kept"] + r["dropped"] == 97
    assert pol["in"] == pol["kept"] + pol["dropped"] + pol["errored"] and pol["errored"] == 3
    assert s["stages"]["caption_length"]["errors"] == {"bad_caption": 3}
    m = curate.load_manifest(tmp_path / "run")
    assert m.column("id").to_pylist() == table.column("id").to_pylist()  # input order, nothing dropped
    errored = [row for row in m.to_pylist() if row["error"]]
    assert len(errored) == 3 and all(not row["keep"] and row["drop_reason"] is None for row in errored)
    dropped = [row for row in m.to_pylist() if not row["keep"] and not row["error"]]
    assert all("below min 20" in row["drop_reason"] for row in dropped)


def test_export_writes_id_lists_and_the_kept_rows_with_the_input_schema(tmp_path):
    table = caption_table(120).append_column("extra", pa.array(range(120), pa.int64()))
    data = write_shards(tmp_path / "data", table, 3)
    p = curate.Pipeline([caption_length], [curate.KeepFraction("caption_length.len", 0.25)], id_column="id",
                        materialize=True)
    s = curate.run(p, data, tmp_path / "run", executor="local")
    kept = (tmp_path / "run" / "kept_ids.txt").read_text().split()
    removed = (tmp_path / "run" / "removed_ids.txt").read_text().split()
    assert len(kept) == 30 and len(removed) == 90 and not set(kept) & set(removed)
    curated = pq.read_table(tmp_path / "run" / "curated")
    assert curated.schema.equals(table.schema) and sorted(curated.column("id").to_pylist()) == sorted(kept)
    assert s["exports"]["materialized_rows"] == 30


def test_zero_row_shard_is_recorded_not_an_error(tmp_path):
    data = write_shards(tmp_path / "data", caption_table(40), 2)
    pq.write_table(caption_table(0), data / "part-00009.parquet")
    s = curate.run(curate.Pipeline([caption_length], id_column="id"), data, tmp_path / "run", executor="local")
    assert s["inputs"]["empty_shards"] == ["part-00009.parquet"] and s["result"]["in"] == 40


def test_phases_can_run_one_by_one(tmp_path):
    data = write_shards(tmp_path / "data", caption_table(50), 2)
    p = curate.Pipeline([caption_length], [curate.TopK("caption_length.len", k=7)], id_column="id")
    with Run(p, data, tmp_path / "run", as_executor("local")) as r:
        r.plan()
        r.fit("caption_length")
        r.score("caption_length")
        summary = r.decide()
    assert summary["result"]["kept"] == 7


@pytest.mark.slow
def test_a_killed_ray_worker_is_restarted_and_its_shard_retried(tmp_path, monkeypatch):
    from testkit.helpers import dies_once

    monkeypatch.setenv("CURATE_TEST_MARKER", str(tmp_path / "died"))
    data = write_shards(tmp_path / "data", caption_table(60), 3)
    p = curate.Pipeline([dies_once], id_column="id")
    summary = curate.run(p, data, tmp_path / "run", executor="ray")
    assert (tmp_path / "died").exists(), "the worker was meant to die once"
    assert summary["failed_shards"] == [] and summary["result"]["in"] == 60
    assert summary["stages"]["dies_once"]["units_computed"] == 3


@pytest.mark.parametrize("b_first", [False, True])
def test_a_row_keeps_the_first_reason_that_dropped_it_and_an_errored_row_none(tmp_path, b_first):
    """The drop reason is the first policy's that dropped the row; a row another stage could not score is
    errored: never a reason, even from a policy it is valid for (engine/decide.py's `_decide_shard`)."""
    @curate.stage(inputs=["caption"], outputs={"score": pa.float64()}, name="zero")
    def zero(batch):
        return {"score": pa.array([0.0] * batch.num_rows)}

    table = caption_table(60)
    captions = table.column("caption").to_pylist()
    for i in (0, 7, 31):
        captions[i] = None
    data = write_shards(tmp_path / "data", table.set_column(1, "caption", pa.array(captions)), 3)
    short, nothing = curate.Threshold("caption_length.len", min=20), curate.Threshold("zero.score", min=1)
    p = curate.Pipeline([caption_length, zero], [nothing, short] if b_first else [short, nothing], id_column="id")
    curate.run(p, data, tmp_path / "run", executor="local")
    rows = curate.load_manifest(tmp_path / "run").to_pylist()
    errored = [r for r in rows if r["error"]]
    assert len(errored) == 3 and all(r["drop_reason"] is None and not r["keep"] for r in errored)
    rest = [r for r in rows if not r["error"]]
    assert not any(r["keep"] for r in rest)
    first = [r for r in rest if r["keep.caption_length"] is False]
    assert first and len(first) < len(rest)  # both policies drop some rows first
    for r in rest:
        if b_first or r["keep.caption_length"] is True:
            assert r["drop_reason"] == "zero.score 0 below min 1"
        else:
            assert r["drop_reason"].startswith("caption_length.len ") and "below min 20" in r["drop_reason"]


def test_a_nan_score_without_an_error_is_reported_as_an_error_not_kept(tmp_path):
    import numpy as np

    @curate.stage(inputs=["caption"], outputs={"score": pa.float64()}, name="nanny")
    def nanny(batch):
        return {"score": np.where(np.arange(batch.num_rows) % 2 == 0, np.nan, 1.0)}

    data = write_shards(tmp_path / "data", caption_table(10), 1)
    s = curate.run(curate.Pipeline([nanny], [curate.Threshold("nanny.score", min=0.5)], id_column="id"),
                   data, tmp_path / "run", executor="local")
    assert s["result"] == {**s["result"], "in": 10, "kept": 5, "errored": 5, "dropped": 0}
    rows = curate.load_manifest(tmp_path / "run").to_pylist()
    assert all(r["error"] == "nanny: nanny.score is null or NaN without an error" for r in rows[::2])


def test_data_outputs_feed_later_stages_but_stay_out_of_the_manifest(tmp_path):
    import numpy as np

    vec_type = pa.list_(pa.float32(), 2)

    @curate.stage(inputs=["caption"], outputs={"vector": vec_type}, name="vec")
    def vec(batch):
        n = pc.utf8_length(batch.column("caption")).to_numpy().astype(np.float32)
        return {"vector": pa.FixedSizeListArray.from_arrays(pa.array(np.repeat(n, 2)), 2)}

    vec.data_outputs = frozenset({"vector"})
    vec.file_metadata = lambda: {"model": "test"}

    @curate.stage(inputs=["vec.vector"], outputs={"norm": pa.float64()}, name="norm")
    def norm(batch):
        v = np.stack(batch.column("vec.vector").to_numpy(zero_copy_only=False))
        return {"norm": np.linalg.norm(v, axis=1)}

    data = write_shards(tmp_path / "data", caption_table(20), 2)
    curate.run(curate.Pipeline([vec, norm], id_column="id"), data, tmp_path / "run", executor="local")
    m = curate.load_manifest(tmp_path / "run")
    assert "vec.vector" not in m.column_names and "vec.error" in m.column_names
    lengths = np.array([len(c) for c in caption_table(20).column("caption").to_pylist()])
    assert np.allclose(m.column("norm.norm").to_numpy(), lengths * np.sqrt(2))
    stored = pq.read_table(tmp_path / "run" / "scores" / "vec" / "part-00000.parquet")
    assert stored.schema.field("vec.vector").type == vec_type and stored.schema.metadata[b"model"] == b"test"


def test_export_refuses_a_run_with_failed_shards_instead_of_leaving_rows_out(tmp_path):
    table = caption_table(60)
    captions = table.column("caption").to_pylist()
    captions[5] = "boom"
    data = write_shards(tmp_path / "data", table.set_column(1, "caption", pa.array(captions)), 2)
    with pytest.raises(curate.RunFailed):
        curate.run(curate.Pipeline([flaky], id_column="id"), data, tmp_path / "run", executor="local")
    for call in (lambda: curate.export(tmp_path / "run", kept_ids=str(tmp_path / "k.txt")),
                 lambda: curate.export(tmp_path / "run", materialize=tmp_path / "cur"),
                 lambda: curate.load_manifest(tmp_path / "run")):
        with pytest.raises(curate.CurateError, match=r"lacks 1 shard\(s\): part-00000\.parquet \(failed\)"):
            call()
