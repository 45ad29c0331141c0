"""The shared local Ray (`curate ray start`): runs connect to it and leave it running, only what a run started is
ever stopped, a stale record falls back to a Ray of the run's own, and `stop` leaves nothing behind."""
from __future__ import annotations

import json
import logging
import os
import stat

import psutil
import pytest

import curate
from curate.engine import leftovers, rayhead
from curate.engine.store import Store
from testkit.helpers import caption_length, caption_table, write_shards

pytestmark = pytest.mark.slow
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def pipeline() -> curate.Pipeline:
    return curate.Pipeline([caption_length], [curate.KeepFraction("caption_length.len", 0.5)], id_column="id")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    saved = {k: os.environ.get(k) for k in ("CURATE_CACHE", rayhead.DISABLE_ENV)}
    os.environ.update({"CURATE_CACHE": str(cache), rayhead.DISABLE_ENV: "1"})
    st = curate.api.shared_ray("start", num_cpus=2)
    try:
        yield st
    finally:
        curate.api.shared_ray("stop")
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _services(st: dict) -> list[psutil.Process]:
    return [psutil.Process(pid) for pid, _ in st["services"] if psutil.pid_exists(pid)]


def test_the_shared_ray_is_private_loopback_only_and_token_protected(shared):
    assert shared["state"] == "running" and shared["started"]
    record = rayhead.record_path()
    assert stat.S_IMODE(record.stat().st_mode) == 0o600, "the record holds the token: this user only"
    assert len(json.loads(record.read_text())["token"]) == 64 and "token" not in rayhead.status()
    listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
                 and c.pid in {p.pid for p in _services(shared)} | {shared["pid"]}]
    assert listening and [c for c in listening if c.laddr.ip not in LOOPBACK] == []
    holder_env = psutil.Process(shared["pid"]).environ()
    assert holder_env["RAY_AUTH_MODE"] == "token" and holder_env["RAY_AUTH_TOKEN"] == json.loads(record.read_text())["token"]


def test_a_run_on_the_shared_ray_gives_the_local_manifest_and_leaves_it_running(shared, tmp_path, caplog):
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    data = write_shards(tmp_path / "data", caption_table(200), 5)
    with caplog.at_level(logging.INFO):
        ours = curate.run(pipeline(), data, tmp_path / "ray", executor="ray")
    assert f"connecting to the shared local Ray at {shared['address']}" in caplog.text
    assert "using 2 warm worker(s) of the shared Ray" in caplog.text, "the warm pool was lent to the run"
    assert is_token_auth_enabled()
    local = curate.run(pipeline(), data, tmp_path / "local", executor="local")
    assert ours["result"] == local["result"]
    assert curate.load_manifest(tmp_path / "ray").equals(curate.load_manifest(tmp_path / "local"))
    assert rayhead.status()["state"] == "running" and all(p.is_running() for p in _services(shared))
    # Nothing of the shared Ray is the run's to stop: not recorded, and a later run's leftovers sweep spares it.
    assert not (tmp_path / "ray" / "state" / "processes.json").exists()
    leftovers.record(Store(tmp_path / "ray"), [])
    assert leftovers.stop_left(Store(tmp_path / "ray")) == 0
    assert rayhead.status()["state"] == "running"


def test_a_stale_record_falls_back_to_a_ray_of_the_runs_own(shared, tmp_path, monkeypatch, caplog):
    stale = tmp_path / "cache"
    stale.mkdir()
    me = psutil.Process()
    (stale / "ray-head.json").write_text(json.dumps({"address": "127.0.0.1:1", "token": "x" * 64, "pid": me.pid,
                                                     "pid_started": me.create_time() - 100, "services": []}))
    monkeypatch.setenv("CURATE_CACHE", str(stale))
    assert rayhead.status()["state"] == "stale" and rayhead.live() is None
    data = write_shards(tmp_path / "data", caption_table(40), 2)
    with caplog.at_level(logging.INFO):
        summary = curate.run(pipeline(), data, tmp_path / "run", executor="ray")
    assert "is gone; this run starts a Ray of its own" in caplog.text
    assert "ray_startup" in summary["phases"] and summary["result"]["in"] == 40


def test_stop_leaves_nothing_and_a_second_start_is_a_no_op(tmp_path, monkeypatch, capsys):
    from curate import cli

    monkeypatch.setenv("CURATE_CACHE", str(tmp_path))
    assert cli.main(["ray", "start", "--num-cpus", "1"]) == 0
    st = rayhead.status()
    assert f"shared Ray started at {st['address']} (1 CPU" in capsys.readouterr().out
    again = rayhead.start(num_cpus=1)
    assert not again["started"] and again["pid"] == st["pid"]
    procs = [psutil.Process(st["pid"]), *_services(st)]
    assert cli.main(["ray", "stop"]) == 0 and "shared Ray stopped" in capsys.readouterr().out
    assert rayhead.status()["state"] == "stopped" and not rayhead.record_path().exists()
    _gone, alive = psutil.wait_procs(procs, timeout=30)
    assert alive == []
    assert rayhead.stop()["stopped"] is False


def test_the_warm_pool_takes_each_runs_settings_and_serves_one_run_at_a_time(shared, tmp_path, monkeypatch):
    import ray

    from curate.engine.ray import RayExecutor

    monkeypatch.setenv("CURATE_TEST_SETTING", "first")
    with RayExecutor(workers=2) as ex:
        pool = ex._pools[(1.0, 0.0)]
        assert {id(a) for a in pool} == ex._lent
        seen = ray.get([a.run.remote("t", [ray.put(_ReadSetting())], None) for a in pool])
        assert seen == ["first", "first"]
        assert rayhead.borrow(rayhead.live()) is None, "leased: a second run at once starts workers of its own"
    monkeypatch.delenv("CURATE_TEST_SETTING")
    with RayExecutor(workers=2) as ex:  # given back, not killed; the last run's setting is gone
        assert {id(a) for a in ex._pools[(1.0, 0.0)]} == ex._lent
        assert ray.get([a.run.remote("u", [ray.put(_ReadSetting())], None) for a in ex._pools[(1.0, 0.0)]]) == [None, None]


class _ReadSetting:
    def setup(self) -> None:
        pass

    def __call__(self, unit):
        return os.environ.get("CURATE_TEST_SETTING")
