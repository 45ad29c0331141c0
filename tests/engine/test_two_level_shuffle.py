"""The two-level shuffle (engine/shuffle.py): chosen past a read count, the same manifest as the flat layout,
its middle step resumable after a kill, on the Ray executor too."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import curate
from curate.config import pipeline_from_dict
from curate.engine.shuffle import TWO_LEVEL_READS, TWO_LEVEL_READS_OBJECT_STORE, coarse_width
from curate.errors import ConfigError
from curate.methods.dbp.policy import ClusterQuota
from curate.methods.dbp.stage import DBP
from curate.methods.dedup import Dedup, ExactDedup
from curate.methods.semdedup.policy import SemDeDupPolicy
from curate.methods.semdedup.stage import SemDeDup
from curate.storage import location
from testkit.faults import kill_when
from testkit.helpers import captions, shuffled_shards, spherical_groups, vector_table
from testkit.s3 import s3_environment, s3_server, unique_prefix

ROOT = Path(__file__).resolve().parents[2]
ROWS, SHARDS, PARTS = 3000, 6, 7  # 7 partitions: coarse groups of 3 (3 + 3 + 1), the last one short


def table() -> pa.Table:
    ids, x, _, _ = spherical_groups()
    rows = np.random.default_rng(3).choice(len(ids), ROWS, replace=False)
    t = vector_table([ids[i] for i in rows], x[rows])
    text = captions(ROWS // 3, seed=5)  # exact duplicates: each caption three times
    return t.append_column("text", pa.array([text[i % len(text)] for i in range(ROWS)]))


def pipeline(shuffle: str) -> curate.Pipeline:
    return curate.Pipeline(
        stages=[SemDeDup("emb", k=8, niter=10, partitions=PARTS),
                DBP("emb", k=8, l=2, dedup_epsilon=0.002, niter=10),
                ExactDedup(hash_column="text", partitions=PARTS)],
        policies=[SemDeDupPolicy(epsilon=0.002), ClusterQuota(k=ROWS // 2, tau=0.1), Dedup(column="exact_dedup.component")],
        id_column="id", shuffle=shuffle)


def manifest_bytes(run: Path | str) -> list[bytes]:
    """The published manifest parts' bytes, in dataset order (a local or an `s3://` run directory)."""
    root = location(run)
    summary = json.loads((root / "summary.json").read_text())
    return [(root / p["file"]).read_bytes() for p in summary["manifest"]["parts"].values()]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("two-level")
    return shuffled_shards(root / "data", table(), SHARDS, seed=2)


@pytest.fixture(scope="module")
def flat(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("flat") / "run"
    curate.run(pipeline("flat"), data, run, executor="local")
    assert not list(run.glob("shuffle/*/groups")), "the flat layout has no middle step"
    return run


def test_auto_is_two_level_past_the_read_count_and_a_bad_name_is_refused():
    assert coarse_width("auto", 100, TWO_LEVEL_READS // 100) is None
    assert coarse_width("auto", 100, TWO_LEVEL_READS_OBJECT_STORE // 100 + 1, object_store=True) == 5
    assert coarse_width("auto", 100, TWO_LEVEL_READS // 100 + 1) == 11  # ceil(sqrt(101))
    assert coarse_width("auto", 200, 200) == 15 and coarse_width("flat", 200, 200) is None
    assert coarse_width("auto", 200, 16) is None and coarse_width("auto", 200, 16, object_store=True) == 4
    assert coarse_width("auto", 10, 200, object_store=True) is None  # 2,000 reads: flat, even there
    assert coarse_width("two-level", 2, 7) == 3 and coarse_width("two-level", 2, 1) is None
    assert coarse_width("two-level", 2, 16) == 4 and coarse_width("two-level", 2, 17) == 5
    with pytest.raises(ConfigError, match="'auto', 'flat' or 'two-level'"):
        pipeline("two_level")
    config = {"stages": [{"type": "semdedup", "embedding": "emb"}]}
    assert pipeline_from_dict(config)[0].shuffle == "auto"
    assert pipeline_from_dict({**config, "shuffle": "two-level"})[0].shuffle == "two-level"
    with pytest.raises(ConfigError, match="shuffle: Input should be 'auto', 'flat' or 'two-level'"):
        pipeline_from_dict({**config, "shuffle": "two_level"})


def test_two_level_gives_the_flat_manifest_byte_for_byte(data, flat, tmp_path):
    summary = curate.run(pipeline("two-level"), data, tmp_path / "run", executor="local")
    splits = {k: v for k, v in summary["phases"].items() if k.endswith(":split")}
    assert splits["fit:semdedup:pairs:split"]["computed"] == 3  # 7 partitions in groups of 3
    assert len(splits) >= 3, "every shuffle of the three stages took the two-level layout"
    groups = sorted((tmp_path / "run" / "shuffle" / "semdedup.pairs" / "groups").glob("*.parquet"))
    assert [g.name for g in groups] == ["g-00000.parquet", "g-00001.parquet", "g-00002.parquet"]
    m = curate.load_manifest(tmp_path / "run")
    assert 0 < m.column("keep").to_pylist().count(True) < ROWS  # something was removed, not all
    assert manifest_bytes(tmp_path / "run") == manifest_bytes(flat)
    # the layout is not part of a fit's key (the results are the same): another layout reuses the artifacts
    again = curate.run(pipeline("flat"), data, tmp_path / "run", executor="local")
    assert again["phases"]["fit:semdedup"]["reused"] and "fit:semdedup:pairs:map" not in again["phases"]
    assert manifest_bytes(tmp_path / "run") == manifest_bytes(flat)


SCRIPT = """
import os, time
import curate.engine.units as units
from tests.engine.test_two_level_shuffle import pipeline
split = units.SplitTask.__call__
def slow(self, unit):
    time.sleep(float(os.environ["SPLIT_SLEEP"]))
    return split(self, unit)
units.SplitTask.__call__ = slow
import curate
curate.run(pipeline("two-level"), {data!r}, {out!r}, executor="local")
"""


def test_a_kill_in_the_middle_step_resumes_to_the_same_manifest(data, flat, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPLIT_SLEEP": "1.0"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(data=str(data), out=str(out))], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    groups = out / "shuffle" / "semdedup.pairs" / "groups"
    assert kill_when(proc, lambda: len(list(groups.glob("*.json"))) >= 1, timeout=180), "killed in the split"
    done = len(list(groups.glob("*.json")))
    assert 1 <= done < 3 and not (out / "reduce").exists()
    resumed = curate.run(pipeline("two-level"), data, out, executor="local")
    split = resumed["phases"]["fit:semdedup:pairs:split"]
    assert split["reused"] == done and split["computed"] == 3 - done
    assert resumed["phases"]["fit:semdedup:pairs:map"]["computed"] == 0
    assert manifest_bytes(out) == manifest_bytes(flat)


@pytest.mark.slow
def test_two_level_on_ray_gives_the_flat_manifest(data, flat, tmp_path, shared_ray):
    """(On the suite's warm shared Ray: what the run computes is the point, not how Ray starts.)"""
    curate.run(pipeline("two-level"), data, tmp_path / "run", executor="ray", workers=2)
    assert manifest_bytes(tmp_path / "run") == manifest_bytes(flat)


@pytest.mark.slow
def test_two_level_on_an_object_store_gives_the_flat_manifest_in_fewer_requests(data, flat, tmp_path):
    import pyarrow.fs as pafs

    with s3_server(counting=True) as s3, s3_environment(s3):
        fs = pafs.S3FileSystem(endpoint_override=s3.endpoint, scheme="http")
        pafs.copy_files(str(data), f"{s3.bucket}/data", source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
        pipe = curate.Pipeline(stages=[SemDeDup("emb", k=8, niter=10, partitions=PARTS)],
                               policies=[SemDeDupPolicy(epsilon=0.002)], id_column="id", shuffle="flat")
        requests = {}
        for layout in ("flat", "two-level"):
            pipe.shuffle = layout
            s3.requests(reset=True)
            curate.run(pipe, s3.uri("data"), s3.uri(unique_prefix(layout)), executor="local")
            requests[layout] = s3.requests()
            assert requests[layout]["GET-range"] > 0
        runs = [k for k in s3.keys("") if k.endswith("summary.json")]
        assert len(runs) == 2 and manifest_bytes(s3.uri(runs[0].rsplit("/", 1)[0])) == \
            manifest_bytes(s3.uri(runs[1].rsplit("/", 1)[0]))
        # S x P = 42 footer + group reads by the flat reduces; S x G + P = 18 + 7 by the two-level ones
        assert requests["two-level"]["GET-range"] < requests["flat"]["GET-range"]


def test_a_damaged_split_file_is_found_by_verify_and_recomputed(data, flat, tmp_path):
    from curate.engine.verify import verify

    out = tmp_path / "run"
    curate.run(pipeline("two-level"), data, out, executor="local")
    split = out / "shuffle" / "semdedup.pairs" / "groups" / "g-00001.parquet"
    raw = bytearray(split.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    split.write_bytes(bytes(raw))
    bad = {b["unit"] for b in verify(out)["bad"]}
    assert "shuffle/semdedup.pairs/groups/g-00001.json" in bad
    assert any(u.startswith("artifacts/semdedup/") for u in bad), "the artifact built from it is forgotten"
    again = curate.run(pipeline("two-level"), data, out, executor="local")
    assert again["phases"]["fit:semdedup:pairs:split"] == {**again["phases"]["fit:semdedup:pairs:split"],
                                                           "computed": 1, "reused": 2}
    assert manifest_bytes(out) == manifest_bytes(flat)
