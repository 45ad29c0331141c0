"""The Prefect flow runs the same pipeline in ephemeral mode (no server), with Ray inside its tasks."""
from __future__ import annotations

from pathlib import Path

import pytest

import curate
from testkit.helpers import caption_table, write_shards


@pytest.mark.slow
def test_flow_runs_in_ephemeral_mode_and_matches_the_engine(tmp_path):
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
def test_flow_writes_the_report_and_publishes_summary_and_link_artifacts(tmp_path):
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
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["curate-report", "curate-summary"])))
    ours = {a.key: a for a in found if page.resolve().as_uri() in a.data}  # earlier runs keep their versions
    assert ours["curate-report"].data == f"[flowreport report]({page.resolve().as_uri()})"  # a link artifact
    assert ours["curate-summary"].type == "markdown" and "flowreport" in ours["curate-summary"].data


def test_a_served_deployment_runs_only_configs_under_the_allowed_folders(tmp_path, monkeypatch):
    from curate.errors import CurateError
    from flows.curate_flow import ALLOWED_CONFIGS, check_allowed

    project = Path(__file__).resolve().parents[2] / "configs"
    monkeypatch.setenv(ALLOWED_CONFIGS, str(project))
    check_allowed(str(project / "demo.yaml"))
    for elsewhere in (str(tmp_path / "evil.yaml"), str(project / ".." / "evil.yaml")):
        with pytest.raises(CurateError, match="not under an allowed folder"):
            check_allowed(elsewhere)
