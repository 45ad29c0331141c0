"""The command line speaks to users: help for every command and argument, text output, one meaning for --out,
`join` as configurable as `run`, `summary` in pipeline order."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest

from curate import cli
from curate.cli import main
from testkit.helpers import caption_table, write_shards

ROOT = Path(__file__).resolve().parents[2]
TENNIS = ROOT / "bench" / "data" / "autofj" / "TennisTournament"
CONFIG = """name: order
id_column: id
stages:
  - type: wfpp
    min_count: 1
  - type: testkit.helpers:caption_length
policies:
  - type: threshold
    column: caption_length.len
    min: 5
  - type: keep_fraction
    column: wfpp.score
    fraction: 0.5
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    data = write_shards(tmp / "data", caption_table(60), 2)
    (tmp / "order.yaml").write_text(CONFIG)
    assert main(["run", str(tmp / "order.yaml"), "--data", str(data), "--out", str(tmp / "run"),
                 "--executor", "local"]) == 0
    return tmp / "run"


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_the_top_level_help_speaks_to_users_and_names_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "front door" not in text and "curate.api" not in text
    description = text.split("positional arguments")[0]
    for command in _subparsers(cli.parser()):
        assert f"`{command}`" in description or f"curate {command}" in description, command


def test_every_argument_of_every_command_has_help():
    missing = []
    for name, sub in _subparsers(cli.parser("join")).items():
        for action in sub._actions:
            if action.help is None and not isinstance(action, argparse._HelpAction):
                missing.append(f"{name} {action.dest}")
    assert missing == []


def test_run_help_says_data_takes_every_supported_format(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(fmt in text for fmt in ("Parquet", "JSONL", "CSV", "WebDataset"))
    assert "URI of Parquet shards" not in text


def test_summary_lists_stages_and_policies_in_pipeline_order(run_dir, capsys):
    assert main(["summary", str(run_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    named = [line.split(":")[0].strip() for line in lines if line.startswith(("  stage ", "  policy "))]
    assert named == ["stage wfpp", "stage caption_length", "policy caption_length (threshold)",
                     "policy wfpp (keep_fraction)"]


def test_export_prints_text_and_json_when_asked(run_dir, tmp_path, capsys):
    kept = tmp_path / "kept.txt"
    assert main(["export", str(run_dir), "--kept-ids", str(kept)]) == 0
    out = capsys.readouterr().out
    n = len(kept.read_text().split())
    assert out == f"kept ids:  {n:,} -> {kept}\n"
    assert main(["export", str(run_dir), "--kept-ids", str(kept), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"kept_ids": n}


def test_report_writes_the_file_given_as_output_and_the_old_out_still_works_with_a_warning(run_dir, tmp_path,
                                                                                            capsys, caplog):
    page = tmp_path / "page.html"
    assert main(["report", str(run_dir), "--output", str(page)]) == 0
    assert page.read_text().startswith("<!DOCTYPE html>") and str(page) in capsys.readouterr().out
    old = tmp_path / "old.html"
    with caplog.at_level(logging.WARNING, logger="curate"):
        assert main(["report", str(run_dir), "--out", str(old)]) == 0
    assert old.exists() and "--out is renamed --output" in caplog.text


def test_join_takes_set_and_verify_like_run_and_summary_shows_its_estimated_precision(tmp_path, capsys):
    out = tmp_path / "join"
    args = ["join", str(TENNIS / "left.csv"), str(TENNIS / "right.csv"), "--on", "title", "--out", str(out),
            "--executor", "local"]
    assert main([*args, "--set", "precision_target=0.8"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stages"]["autofj"]["artifact"]["program"]["precision_target"] == 0.8
    capsys.readouterr()
    scores = sorted((out / "scores" / "autofj").glob("*.parquet"))[0]
    raw = bytearray(scores.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # (same size: only a re-hash sees it)
    scores.write_bytes(bytes(raw))
    assert main([*args, "--set", "stages.autofj.precision_target=0.8", "--verify"]) == 0
    assert json.loads((out / "summary.json").read_text())["stages"]["autofj"]["units_computed"] == 1
    assert main(["summary", str(out)]) == 0
    assert "estimated precision" in capsys.readouterr().out
    assert main([*args, "--set", "precision_targt=0.8"]) == 1
    assert "autofj has no parameter 'precision_targt'" in capsys.readouterr().err
