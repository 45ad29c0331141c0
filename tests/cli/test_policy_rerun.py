"""A policy-only re-run needs no executor: every unit is done, so it reads the scores and decides in-process,
whatever the default executor (`ray`, whose start takes tens of seconds)."""
from __future__ import annotations

import sys

from curate.cli import main
from curate.engine.ray import RayExecutor
from testkit.helpers import caption_table, write_shards

CONFIG = """name: rerun
id_column: id
stages:
  - type: wfpp
    min_count: 1
policies:
  - type: keep_fraction
    column: wfpp.score
    fraction: 0.5
"""


def test_a_policy_only_rerun_with_the_ray_executor_does_not_start_ray(tmp_path, monkeypatch, capsys):
    data = write_shards(tmp_path / "data", caption_table(80), 2)
    config = tmp_path / "rerun.yaml"
    config.write_text(CONFIG)
    out = str(tmp_path / "run")
    assert main(["run", str(config), "--data", str(data), "--out", out, "--executor", "local"]) == 0
    assert "kept 40" in capsys.readouterr().out

    starts = []
    monkeypatch.setattr(RayExecutor, "start", lambda self, preload=(): starts.append(preload))
    # the default executor is ray; only the policy changes
    assert main(["run", str(config), "--data", str(data), "--out", out, "--set", "policies.wfpp.fraction=0.25"]) == 0
    printed = capsys.readouterr().out
    assert "rerun: 80 rows -> kept 20, dropped 60" in printed and "2 reused" in printed
    assert starts == [], "a policy-only re-run started the executor"
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
