"""Datasets and run directories on an object store: a real S3 API on loopback (moto's server, testkit/s3.py).

The demo pipeline, an export, the report, `curate verify`, a kill -9 and resume, a second writer, and a
multi-node Ray cluster all run against `s3://` and give the manifest of a local-disk run.
"""
from __future__ import annotations

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

import curate
from curate.config import load_config
from curate.engine.lease import Lease
from curate.engine.verify import verify
from curate.errors import RunLocked
from curate.storage import ObjectPath, location
from testkit.faults import dataset, kill_when, pipeline, reference, sidecars, sorted_manifest, start
from testkit.helpers import gpu_node, write_shards
from testkit.s3 import s3_environment, s3_server, unique_prefix

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    with s3_server() as s3:
        yield s3


@pytest.fixture
def s3(server):
    with s3_environment(server):
        yield server


def upload(local, s3, prefix: str) -> str:
    fs = pafs.S3FileSystem(endpoint_override=s3.endpoint, scheme="http")
    pafs.copy_files(str(local), f"{s3.bucket}/{prefix}", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=fs)
    return s3.uri(prefix)


def test_the_demo_pipeline_on_s3_gives_the_local_manifest_exports_report_and_verifies(demo_table, tmp_path, s3):
    pipe, _ = load_config("configs/demo.yaml")
    local_data = write_shards(tmp_path / "data", demo_table.slice(0, 600), 4)
    data, out = upload(local_data, s3, unique_prefix("demo-data")), s3.uri(unique_prefix("demo-run"))

    on_s3 = curate.run(pipe, data, out, executor="local", report=True)
    on_disk = curate.run(pipe, local_data, tmp_path / "run", executor="local")
    assert on_s3["result"] == on_disk["result"] and on_s3["result"]["kept"] > 0
    assert sorted_manifest(out).equals(sorted_manifest(tmp_path / "run"))

    run = location(out)
    assert isinstance(run, ObjectPath)
    kept = (run / "kept_ids.txt").read_text().split()
    assert len(kept) == on_s3["result"]["kept"] == on_s3["exports"]["materialized_rows"]
    curated = [p for p in (run / "curated").rglob("*.parquet")]
    assert sum(pq.read_metadata(p.path, filesystem=p.fs).num_rows for p in curated) == len(kept)
    assert "<html" in (run / "report.html").read_text()[:500].lower()
    assert not (run / "lease.json").exists(), "the lease is released"
    assert not [p for p in run.rglob("*.tmp")], "an object store gets whole PUTs, never temporary names"

    checked = verify(out)
    assert checked["bad"] == [] and checked["units_checked"] > 10
    again = curate.run(pipe, data, out, executor="local")
    assert all(s["units_computed"] == 0 for s in again["stages"].values()), "everything is reused from S3"


def test_a_run_on_s3_killed_with_sigkill_resumes_to_the_same_manifest(tmp_path, s3, monkeypatch):
    monkeypatch.setenv("CURATE_TEST_SLEEP", "0")
    local_data = dataset(tmp_path / "data")
    ref = reference(tmp_path, local_data)
    data, out = upload(local_data, s3, unique_prefix("data")), s3.uri(unique_prefix("killed"))
    proc = start(data, out, sleep=0.3)
    assert kill_when(proc, lambda: len(sidecars(out, "scores")) >= 4, timeout=180), "killed half way"
    done = len(sidecars(out, "scores"))
    assert not (location(out) / "summary.json").exists()

    resumed = curate.run(pipeline(), data, out, executor="local")
    assert resumed["phases"]["lease_takeover"]["reason"].endswith("is gone")
    assert sum(s["units_reused"] for s in resumed["stages"].values()) >= done - 1
    assert sorted_manifest(out).equals(ref)


def test_a_second_writer_on_s3_is_refused_while_the_first_holds_the_lease(s3):
    out = s3.uri(unique_prefix("leased"))
    with Lease(out):
        with pytest.raises(RunLocked, match="being written by another run"):
            Lease(out).acquire()
    with Lease(out):  # released: the next writer gets it
        pass


def test_a_multi_node_ray_cluster_with_the_run_directory_on_s3_gives_the_local_manifest(tmp_path, s3, monkeypatch):
    """Three nodes (head + two workers, each its own raylet) on this machine; one of them declares a GPU
    (a logical resource to Ray; torch finds none and computes on CPU): a stage that asks for a GPU runs
    there and nowhere else."""
    from ray.cluster_utils import Cluster

    from curate.engine.ray import RayExecutor

    monkeypatch.setenv("CURATE_TEST_SLEEP", "0")
    local_data = dataset(tmp_path / "data", rows=240, shards=6)
    ref = reference(tmp_path, local_data)
    data, out = upload(local_data, s3, unique_prefix("data")), s3.uri(unique_prefix("cluster"))
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        c.add_node(num_cpus=1)
        gpu = c.add_node(num_cpus=1, num_gpus=1)
        c.wait_for_nodes()
        with RayExecutor(address=c.address) as ex:
            summary = curate.run(pipeline(), data, out, executor=ex)
            placed = curate.run(curate.Pipeline([gpu_node], id_column="id"), data, out + "-gpu", executor=ex)
    finally:
        c.shutdown()
    assert summary["result"]["failed_shard_rows"] == 0
    assert sorted_manifest(out).equals(ref)
    assert placed["stages"]["gpu_node"]["scored"] == 240
    assert set(curate.load_manifest(out + "-gpu").column("gpu_node.node").to_pylist()) == {gpu.node_id}
