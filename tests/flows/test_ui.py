"""`make ui` on a port other than 4200: the UI lists a deployment per config; `curate deploy` serves another
config on a schedule, whose runs triggered from the UI publish the run's summary (where the rows went, the report's path), and which runs no
config but its own.

One Prefect server for the module (`python -m flows.ui`, as `make ui` starts it); the API is read over plain
HTTP, so that this process's Prefect (ephemeral, for the other flow tests) is left alone.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from testkit.helpers import caption_table, write_shards

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
TINY = ("name: tiny\nid_column: id\nstages:\n  - type: wfpp\n    min_count: 1\n"
        "policies:\n  - type: keep_fraction\n    column: wfpp.score\n    fraction: 0.5\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(url: str, body: dict | None = None, tries: int = 6) -> dict | list:
    """One API call; a 503 (the server's SQLite busy on a loaded machine) is tried again, as the UI does."""
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers={"content-type": "application/json"}, method="GET" if body is None else "POST")
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code != 503 or attempt == tries - 1:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def _wait(what, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode}: {log.read_text()[-3000:] if log else ''}")
        try:
            found = what()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout}s" + (f": {log.read_text()[-3000:]}" if log else ""))


def _start(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # flows.ui stops its server; prefect's serve pauses its deployments
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect")
    port = _free_port()
    assert port != 4200
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "CURATE_ALLOWED_CONFIGS"}
    env.update(PREFECT_HOME=str(home), CURATE_UI_PORT=str(port), PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0")
    log = home / "ui.log"
    proc = _start([sys.executable, "-m", "flows.ui"], env, ROOT, log)
    api = f"http://127.0.0.1:{port}/api"
    try:
        _wait(lambda: len(_api(f"{api}/deployments/filter", {})) == len(CONFIGS), 300, proc, log)
        yield {"port": port, "api": api, "env": env, "log": log}
    finally:
        _stop(proc)


@pytest.mark.slow
def test_the_ui_on_another_port_lists_a_deployment_per_config_in_chromium(ui, tmp_path):
    from testkit.browser import find_browser, view_url

    if find_browser() is None:
        pytest.fail("chromium / chromium-driver not installed: run `make test` (it installs them)")
    settings = _api(f"http://127.0.0.1:{ui['port']}/ui-settings")
    assert settings["api_url"] == ui["api"]  # the UI calls the API on its own port, not 4200
    deployments = {d["name"]: d for d in _api(f"{ui['api']}/deployments/filter", {})}
    assert sorted(deployments) == CONFIGS
    assert [s["active"] for s in deployments["demo"]["schedules"]] == [True]
    assert all(not s["active"] for name, d in deployments.items() if name != "demo" for s in d["schedules"])

    page = view_url(f"http://127.0.0.1:{ui['port']}/deployments", wait_for=tuple(CONFIGS), timeout=120,
                    screenshot=tmp_path / "deployments.png")
    assert "Something went wrong" not in page.text
    missing = [name for name in CONFIGS if name not in page.text]
    assert missing == [], page.text[:2000]


@pytest.mark.slow
def test_curate_deploy_serves_a_scheduled_config_whose_runs_publish_artifacts_and_no_other_config(ui, tmp_path):
    data = write_shards(tmp_path / "data", caption_table(120), 2)
    (tmp_path / "tiny.yaml").write_text(TINY)
    (tmp_path / "other.yaml").write_text(TINY.replace("tiny", "other"))
    log = tmp_path / "deploy.log"
    env = {**ui["env"], "PREFECT_RUNNER_POLL_FREQUENCY": "1"}  # (picks a triggered run up within 1 s, not 10)
    proc = _start([sys.executable, "-m", "curate.cli", "deploy", "tiny.yaml", "--data", "data", "--out", "run",
                   "--cron", "0 4 * * *", "--executor", "local"], env, tmp_path, log)
    api = ui["api"]
    try:
        found = _wait(lambda: [d for d in _api(f"{api}/deployments/filter", {}) if d["name"] == "tiny"], 120, proc, log)
        dep = found[0]
        assert [s["schedule"]["cron"] for s in dep["schedules"]] == ["0 4 * * *"]
        assert dep["parameters"]["data"] == str(data) and dep["parameters"]["config"] == str(tmp_path / "tiny.yaml")

        def finished(run_id: str) -> dict | None:
            state = _api(f"{api}/flow_runs/{run_id}")["state"]
            return state if state["type"] in ("COMPLETED", "FAILED", "CRASHED") else None

        run = _api(f"{api}/deployments/{dep['id']}/create_flow_run", {})  # what the UI's "Quick run" sends
        assert _wait(lambda: finished(run["id"]), 180, proc, log)["type"] == "COMPLETED", log.read_text()[-3000:]
        artifacts = {a["key"]: a for a in _api(f"{api}/artifacts/filter", {"flow_runs": {"id": {"any_": [run["id"]]}}})}
        assert all("file://" not in str(a["data"]) for a in artifacts.values())  # (a browser will not open one)
        assert "tiny: 60 of 120 rows kept" in artifacts["curate-summary"]["data"]
        assert "## Where the rows went" in artifacts["curate-summary"]["data"]
        assert str(tmp_path / "run" / "report.html") in artifacts["curate-summary"]["data"]

        custom = _api(f"{api}/deployments/{dep['id']}/create_flow_run",
                      {"parameters": {"config": str(tmp_path / "other.yaml")}})  # a "Custom run" with another config
        state = _wait(lambda: finished(custom["id"]), 180, proc, log)
        assert state["type"] == "FAILED" and "not under an allowed folder or file" in state["message"]
    finally:
        _stop(proc)


def test_curate_deploy_without_a_server_says_how_to_start_one(tmp_path, monkeypatch, capsys):
    from curate.cli import main

    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{_free_port()}/api")  # nothing listens there
    (tmp_path / "tiny.yaml").write_text(TINY)
    assert main(["deploy", str(tmp_path / "tiny.yaml"), "--data", str(tmp_path), "--cron", "0 4 * * *"]) == 1
    err = capsys.readouterr().err
    assert "no Prefect server answers at" in err and "make ui" in err


def test_curate_deploy_needs_the_ui_extra(monkeypatch, capsys, tmp_path):
    from curate import extras
    from curate.cli import main

    monkeypatch.setitem(extras.EXTRAS, "ui", (*extras.EXTRAS["ui"], "curate_test_module_that_is_not_installed"))
    assert main(["deploy", str(tmp_path / "x.yaml"), "--cron", "0 4 * * *"]) == 1
    assert "pip install 'curate[ui]'" in capsys.readouterr().err
