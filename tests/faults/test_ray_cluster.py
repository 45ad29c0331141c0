"""Ray faults on a real multi-node cluster on this machine (ray.cluster_utils.Cluster: a head and two
worker nodes, each its own raylet): the same manifest as the local executor, a node removed mid-run
still finishes (identical, within a bounded time), and kill -9 of a Ray run resumes."""
from __future__ import annotations

import threading
import time

import pytest

import curate
from curate.engine.ray import RayExecutor
from testkit.faults import ROOT, dataset, kill_when, pipeline, reference, sidecars, sorted_manifest, start

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    yield c, workers
    c.shutdown()


def test_a_node_lost_mid_run_still_finishes_with_the_local_manifest(tmp_path, cluster, monkeypatch):
    c, workers = cluster
    monkeypatch.setenv("CURATE_TEST_SLEEP", "0")
    monkeypatch.setenv("CURATE_TEST_DECIDE_SLEEP", "0")
    data = dataset(tmp_path / "data", rows=360, shards=12)
    ref = reference(tmp_path, data)
    monkeypatch.setenv("CURATE_TEST_SLEEP", "0.6")
    out = tmp_path / "run"

    def remove_a_node_once_scoring_started() -> None:
        deadline = time.time() + 120
        while len(sidecars(out, "scores")) < 3 and time.time() < deadline:
            time.sleep(0.05)
        c.remove_node(workers[1], allow_graceful=False)

    killer = threading.Thread(target=remove_a_node_once_scoring_started)
    t0 = time.time()
    # A unit on the lost node either fails at once (Ray reports its actor dead) or is given up after the time
    # limit: 10 s, over 10x a unit's 0.6 s here (20 s made the slower path a 29-s test).
    with RayExecutor(address=c.address, min_unit_timeout=10) as ex:
        killer.start()
        summary = curate.run(pipeline(), data, out, executor=ex)
    killer.join()
    assert time.time() - t0 < 240
    assert summary["result"]["failed_shard_rows"] == 0
    assert sorted_manifest(out).equals(ref)


@pytest.mark.parametrize("seed", [0, 1])
def test_kill_9_of_a_ray_run_at_a_random_moment_resumes_to_the_same_manifest(tmp_path, monkeypatch, seed, request):
    """Killed once it has written a random number of files (ids, fit maps, artifact, scores, manifest); resumed
    on Ray (the suite's warm shared Ray: the killed run's own Ray is what it leaves behind, not this one)."""
    import random

    monkeypatch.setenv("CURATE_TEST_SLEEP", "0")
    monkeypatch.setenv("CURATE_TEST_DECIDE_SLEEP", "0")
    data = dataset(tmp_path / "data")
    ref = reference(tmp_path, data)
    out = tmp_path / "run"
    k = random.Random(seed).randint(1, 60)
    proc = start(data, out, executor="ray", sleep=0.2, decide_sleep=0.1)
    killed = kill_when(proc, lambda: out.exists() and sum(1 for p in out.rglob("*") if p.is_file()) >= k, timeout=180)
    assert killed or proc.returncode == 0
    request.getfixturevalue("shared_ray")  # (only now: the killed run started a Ray of its own)
    curate.run(pipeline(), data, out, executor="ray")
    assert sorted_manifest(out).equals(ref)


def test_a_stuck_unit_is_abandoned_after_its_time_limit_and_retried_elsewhere(tmp_path, monkeypatch):
    from testkit.helpers import caption_table, hangs_once, write_shards

    monkeypatch.setenv("CURATE_TEST_MARKER", str(tmp_path / "hung"))
    data = write_shards(tmp_path / "data", caption_table(60), 4)
    p = curate.Pipeline([hangs_once], id_column="id")
    t0 = time.time()
    with RayExecutor(unit_timeout=8) as ex:
        summary = curate.run(p, data, tmp_path / "run", executor=ex)
    assert (tmp_path / "hung").exists() and time.time() - t0 < 120
    assert summary["result"]["in"] == 60 and summary["result"]["failed_shard_rows"] == 0


def test_a_worker_killed_while_the_pool_starts_is_replaced_and_the_run_finishes(tmp_path, monkeypatch, caplog):
    import logging

    from testkit.helpers import caption_length, caption_table, write_shards

    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the workers import testkit.dies_on_start
    monkeypatch.setenv("CURATE_TEST_DIE_ON_START", str(tmp_path / "died"))
    data = write_shards(tmp_path / "data", caption_table(40), 4)
    p = curate.Pipeline([caption_length], [curate.Threshold("caption_length.len", min=10)], id_column="id")
    curate.run(p, data, tmp_path / "reference", executor="local")
    ex = RayExecutor(num_cpus=2)
    try:
        with caplog.at_level(logging.WARNING):
            ex.start(preload=("testkit.dies_on_start",))
        assert (tmp_path / "died").exists(), "a worker was killed while the pool started"
        assert "1 Ray worker(s) died while starting" in caplog.text
        assert len(ex._pools[(1.0, 0.0)]) == 2, "the dead worker was replaced"
        summary = curate.run(p, data, tmp_path / "run", executor=ex)
    finally:
        ex.close()
    assert summary["result"]["failed_shard_rows"] == 0
    assert sorted_manifest(tmp_path / "run").equals(sorted_manifest(tmp_path / "reference"))


def test_a_pool_where_no_worker_can_start_fails_clearly_and_stops_its_ray(monkeypatch):
    import ray

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("CURATE_TEST_DIE_ON_START", "always")
    with pytest.raises(curate.CurateError, match=r"no Ray worker could start: 2 died while starting \(the last: "):
        RayExecutor(num_cpus=1).start(preload=("testkit.dies_on_start",))
    assert not ray.is_initialized()


def test_ray_services_of_a_killed_run_are_stopped_by_the_next_run(tmp_path, monkeypatch):
    import json

    from curate.engine.leftovers import _same

    monkeypatch.setenv("CURATE_TEST_SLEEP", "0")
    monkeypatch.setenv("CURATE_TEST_DECIDE_SLEEP", "0")
    data = dataset(tmp_path / "data")
    out = tmp_path / "run"
    record = out / "state" / "processes.json"
    proc = start(data, out, executor="ray", sleep=0.3)
    agents = []

    def scoring_with_agents_up() -> bool:  # (the agents rename themselves: `ray::DashboardAgent`, ...)
        if not record.exists() or len(sidecars(out, "scores")) < 2:
            return False
        agents.extend(_agents([pid for pid, _ in json.loads(record.read_text())["processes"]]))
        return True

    assert kill_when(proc, scoring_with_agents_up, timeout=180)
    services = json.loads(record.read_text())["processes"]
    alive = [pid for pid, started in services if _same(pid, started)]
    assert alive, "the killed run's Ray services outlive it (the behaviour this guards against)"
    assert {"ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= {name for _, name in agents}
    assert {pid for pid, _ in agents} <= {pid for pid, _ in services}, "the raylet's agents are recorded too"
    summary = curate.run(pipeline(), data, out, executor="local")
    assert summary["phases"]["stopped_leftover_processes"]["count"] >= 1
    assert not [pid for pid, started in services if _same(pid, started)]
    assert not record.exists()


def _agents(pids: list[int]) -> list[tuple[int, str]]:
    """The Ray agents (pid, name) among the children of these processes."""
    import psutil

    found = []
    for pid in pids:
        try:
            for child in psutil.Process(pid).children(recursive=True):
                name = " ".join(child.cmdline()).strip()
                if name.startswith("ray::") and name.endswith("Agent"):
                    found.append((child.pid, name))
        except psutil.NoSuchProcess:
            continue
    return found
