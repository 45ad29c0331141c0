"""The Executor protocol: `curate.run` takes a name or any object with `map`, and results do not depend on it."""
from __future__ import annotations

import traceback

import pytest

import curate
from curate.engine.executor import Failure
from testkit.helpers import caption_length, caption_table, write_shards


class BackwardsExecutor:
    """A third executor: in-process, units in reverse order, and it counts what it ran."""

    name = "backwards"

    def __init__(self) -> None:
        self.units = 0

    def map(self, task, units):
        units = list(units)[::-1]
        task.setup()
        for unit in units:
            self.units += 1
            try:
                yield unit, task(unit)
            except Exception as e:  # the protocol: a failing unit is a Failure, never an exception out of map
                yield unit, Failure(repr(e), traceback.format_exc())


def pipeline() -> curate.Pipeline:
    return curate.Pipeline([caption_length], [curate.KeepFraction("caption_length.len", 0.5)], id_column="id")


def test_a_third_executor_gives_the_same_manifest_as_local(tmp_path):
    data = write_shards(tmp_path / "data", caption_table(200), 5)
    ex = BackwardsExecutor()
    theirs = curate.run(pipeline(), data, tmp_path / "theirs", executor=ex)
    ours = curate.run(pipeline(), data, tmp_path / "ours", executor="local")
    assert ex.units == 10  # 5 id units and 5 score units went through it
    assert theirs["executor"] == "backwards" and theirs["result"] == ours["result"]
    assert curate.load_manifest(tmp_path / "theirs").equals(curate.load_manifest(tmp_path / "ours"))


def test_an_unknown_executor_is_a_config_error(tmp_path):
    data = write_shards(tmp_path / "data", caption_table(10), 1)
    with pytest.raises(curate.ConfigError, match="unknown executor 'spark'"):
        curate.run(pipeline(), data, tmp_path / "run", executor="spark")
    with pytest.raises(TypeError, match="Executor"):
        curate.run(pipeline(), data, tmp_path / "run", executor=42)


def test_run_takes_a_config_path_and_the_phase_hook_sees_every_step(tmp_path):
    data = write_shards(tmp_path / "data", caption_table(30), 2)
    config = tmp_path / "c.yaml"
    config.write_text(f"name: hooked\ndata: {data}\nid_column: id\nstages:\n  - type: testkit.helpers:caption_length\n"
                      "policies:\n  - type: top_k\n    column: caption_length.len\n    k: 5\n")
    seen = []

    def phase(name, fn):
        seen.append(name)
        return fn()

    summary = curate.run(config, out=tmp_path / "run", executor="local", phase=phase, report=True)
    assert seen == ["plan", "fit:caption_length", "score:caption_length", "decide", "report"]
    assert summary["result"]["kept"] == 5 and (tmp_path / "run" / "report.html").exists()


def test_the_default_executor_is_the_same_for_every_front_door():
    import inspect

    from curate import api, cli
    from flows.curate_flow import curate_flow

    assert inspect.signature(api.run).parameters["executor"].default == api.DEFAULT_EXECUTOR
    assert inspect.signature(api.join).parameters["executor"].default == api.DEFAULT_EXECUTOR
    assert inspect.signature(curate_flow.fn).parameters["executor"].default == api.DEFAULT_EXECUTOR
    for command in ("run", "join"):
        args = cli.parser().parse_args([command, "x", "y", "--on", "a", "--out", "o"] if command == "join" else [command, "c.yaml"])
        assert args.executor == api.DEFAULT_EXECUTOR


def test_config_values_can_be_set_from_the_command_line(tmp_path):
    from curate.config import load_config

    config = tmp_path / "c.yaml"
    config.write_text("stages:\n  - type: wfpp\n    t: 1.0e-7\npolicies:\n  - type: keep_fraction\n    column: wfpp.score\n"
                      "    fraction: 0.9\n")
    p, _ = load_config(config, overrides=["stages.wfpp.t=0.001", "policies.wfpp.fraction=0.5", "batch_size=100"])
    assert p.stages[0].t == 0.001 and p.policies[0].fraction == 0.5 and p.batch_size == 100
    with pytest.raises(curate.ConfigError, match="no single stage named 'nope'"):
        load_config(config, overrides=["stages.nope.t=1"])
    with pytest.raises(curate.ConfigError, match="no single policy named 'x'"):
        load_config(config, overrides=["policies.x.k=1"])


def test_unit_timeout_reaches_the_ray_executor_from_the_config_and_the_command_line(tmp_path, monkeypatch, capsys):
    import curate.engine.ray
    from curate.cli import main
    from curate.engine.local import LocalExecutor

    seen = []

    class RecordingRay(LocalExecutor):  # runs in-process; records what a RayExecutor would have been given
        name = "ray"

        def __init__(self, **options):
            seen.append(options.get("unit_timeout"))
            super().__init__()

    monkeypatch.setattr(curate.engine.ray, "RayExecutor", RecordingRay)
    data = write_shards(tmp_path / "data", caption_table(20), 2)
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {data}\nid_column: id\nstages:\n  - type: testkit.helpers:caption_length\n")
    assert main(["run", str(config), "--out", str(tmp_path / "a"), "--executor", "ray", "--unit-timeout", "7.5"]) == 0
    config.write_text(config.read_text() + "unit_timeout: 45\n")
    assert main(["run", str(config), "--out", str(tmp_path / "b"), "--executor", "ray"]) == 0
    assert main(["run", str(config), "--out", str(tmp_path / "c"), "--executor", "ray", "--unit-timeout", "30"]) == 0
    assert seen == [7.5, 45, 30]
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(tmp_path / "d"), "--unit-timeout", "0"]) == 1
    assert "unit_timeout: Input should be greater than 0" in capsys.readouterr().err
    with pytest.raises(curate.ConfigError, match="unit_timeout must be a number of seconds above 0"):
        curate.Pipeline([caption_length], unit_timeout=-1)


LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def _listening(pids: set[int]) -> list[tuple[str, int, str]]:
    import psutil

    found = []
    for c in psutil.net_connections(kind="inet"):
        if c.status == psutil.CONN_LISTEN and c.pid in pids:
            found.append((c.laddr.ip, c.laddr.port, psutil.Process(c.pid).name()))
    return found


def _tree(pids: list[int]) -> set[int]:
    import psutil

    out = set()
    for pid in pids:
        try:
            p = psutil.Process(pid)
            out |= {pid, *(c.pid for c in p.children(recursive=True))}
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.mark.slow
def _environ(pid: int) -> dict | None:
    import psutil

    try:
        return psutil.Process(pid).environ()
    except psutil.Error:  # (ended since)
        return None


def test_a_local_ray_listens_on_loopback_only_keeps_token_authentication_and_leaves_nothing(tmp_path, monkeypatch):
    """A local Ray started by curate: Ray's token on its gRPC services (it used to be switched off), every
    socket of the run (driver, GCS, raylet, workers, agents) bound to 127.0.0.1, no process left after it."""
    import os

    import psutil
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    from curate.engine.ray import RayExecutor

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_task_events_report_interval_ms", raising=False)
    data = write_shards(tmp_path / "data", caption_table(20), 2)
    with RayExecutor(workers=1) as ex:
        assert is_token_auth_enabled()
        summary = curate.run(pipeline(), data, tmp_path / "run", executor=ex)
        services = _tree(ex.service_pids)
        assert len(services) >= 3, "the GCS, the raylet and a worker at least"
        # task events off in its services (reported, they made a driver's disconnect wait ~0.25 s)
        envs = [e for e in map(_environ, services) if e]  # (some show no environment)
        assert envs and {e.get("RAY_task_events_report_interval_ms") for e in envs} == {"0"}
        sockets = _listening(services | {os.getpid()})
        assert sockets, "a running Ray listens somewhere"
        assert [s for s in sockets if s[0] not in LOOPBACK] == []
    assert summary["result"]["in"] == 20
    _gone, alive = psutil.wait_procs([psutil.Process(p) for p in services if psutil.pid_exists(p)], timeout=30)
    assert alive == []


@pytest.mark.slow
def test_the_cli_starts_a_local_ray_with_authentication_and_a_quiet_stderr(tmp_path):
    """The front door, as a user runs it: a fresh process with no Ray settings in its environment (the tests'
    own process has them set before Ray is imported, which once hid a CLI that could not start Ray)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    data = write_shards(tmp_path / "data", caption_table(300), 3)
    config = tmp_path / "wfpp.yaml"
    config.write_text("id_column: id\nstages:\n  - type: wfpp\n    text_column: caption\n    min_count: 1\n"
                      "policies:\n  - type: keep_fraction\n    column: wfpp.score\n    fraction: 0.5\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "curate.cli", "run", str(config), "--data", str(data),
                           "--out", str(tmp_path / "run"), "--executor", "ray"],
                          cwd=root, env={**env, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr == "", "nothing on stderr but our own warnings, and there are none here"
    assert "kept 150" in proc.stdout
