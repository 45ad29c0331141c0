"""The Prefect flow runs the same pipeline in ephemeral mode (no server), with Ray inside its tasks."""
from __future__ import annotations

from pathlib import Path

import pytest

import curate
from testkit.helpers import caption_table, write_shards


@pytest.mark.slow
def test_flow_runs_in_ephemeral_mode_and_matches_the_engine(tmp_path, shared_ray):
    from flows.curate_flow import curate_flow

    data = write_shards(tmp_path / "data", caption_table(200), 4)
    config = tmp_path / "flow.yaml"
    config.write_text("name: flowtest\nid_column: id\nstages:\n  - type: testkit.helpers:caption_length\n"
                      "policies:\n  - type: keep_fraction\n    column: caption_length.len\n    fraction: 0.5\n"
                      "export:\n  materialize: true\n")
    result = curate_flow(config=str(config), data=str(data), out=str(tmp_path / "flow"), executor="ray")
    assert result["in"] == 200 and result["kept"] == 100

    pipeline, _ = curate.load_config(config)
    curate.run(pipeline, data, tmp_path / "engine", executor="local")
    assert curate.load_manifest(tmp_path / "flow").equals(curate.load_manifest(tmp_path / "engine"))
    assert (tmp_path / "flow" / "curated").exists()


@pytest.mark.slow
def test_flow_writes_the_report_and_publishes_the_run_as_artifacts_the_ui_shows(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.curate_flow import curate_flow

    data = write_shards(tmp_path / "data", caption_table(120), 2)
    config = tmp_path / "flow.yaml"
    config.write_text("name: flowreport\nid_column: id\nstages:\n  - type: wfpp\n    t: 1.0e-4\n    min_count: 2\n"
                      "policies:\n  - type: keep_fraction\n    column: wfpp.score\n    fraction: 0.5\n")
    curate_flow(config=str(config), data=str(data), out=str(tmp_path / "flow"), executor="local")
    page = tmp_path / "flow" / "report.html"
    assert 'id="galleries"' in page.read_text()
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["curate-summary", "curate-policies"])))
    ours = [a for a in found if a.key == "curate-summary" and str(page) in a.data]  # earlier runs keep theirs
    assert len(ours) == 1 and ours[0].type == "markdown"
    assert "flowreport: 60 of 120 rows kept" in ours[0].data and "| wfpp | keep_fraction | 60 | 60 | 0 |" in ours[0].data
    assert all("file://" not in str(a.data) for a in found)  # a browser will not open a file:// link from the UI


def test_the_flow_logs_each_phase_once_and_says_reused_not_a_rate(tmp_path, monkeypatch):
    """Progress lines reach the flow's log once per phase; a re-run's reused phases say `reused`."""
    from curate.progress import Progress
    from flows import curate_flow as module

    lines = []
    monkeypatch.setattr(module, "_report_phase", lambda stats: lines.append(module.phase_line(stats)))
    data = write_shards(tmp_path / "data", caption_table(60), 2)
    config = tmp_path / "flow.yaml"
    config.write_text("name: twice\nid_column: id\nstages:\n  - type: wfpp\n    min_count: 1\npolicies: []\n")
    runs = []
    for _ in range(2):
        curate.run(str(config), data, tmp_path / "run", executor="local",
                   progress=Progress(enabled=False, listener=lambda s: module._report_phase(s)))
        runs.append(len(lines))
    first, second = lines[:runs[0]], lines[runs[0]:]
    phases = [line.split(": ")[0] for line in first]
    assert len(phases) == len(set(phases)) and any(p.startswith("score:wfpp") for p in phases), lines
    assert all(line.endswith("reused") for line in second), second
    assert not any(line.endswith("reused") for line in first), first


def test_a_served_deployment_runs_only_configs_under_the_allowed_folders(tmp_path, monkeypatch):
    from curate.errors import CurateError
    from flows.curate_flow import ALLOWED_CONFIGS, check_allowed

    project = Path(__file__).resolve().parents[2] / "configs"
    monkeypatch.setenv(ALLOWED_CONFIGS, str(project))
    check_allowed(str(project / "demo.yaml"))
    for elsewhere in (str(tmp_path / "evil.yaml"), str(project / ".." / "evil.yaml")):
        with pytest.raises(CurateError, match="not under an allowed folder"):
            check_allowed(elsewhere)
