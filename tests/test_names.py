"""Renamed names keep working for one release, with a warning that names the new one (CHANGELOG.md)."""
from __future__ import annotations

import pytest

import curate
from testkit.helpers import caption_length, caption_table, write_shards


def test_pipeline_data_format_is_accepted_as_format_with_a_warning():
    with pytest.warns(FutureWarning, match="'data_format' is renamed 'format'"):
        p = curate.Pipeline([caption_length], data_format="jsonl")
    assert p.format == "jsonl"


def test_run_verify_outputs_is_accepted_as_verify_with_a_warning(tmp_path):
    data = write_shards(tmp_path / "data", caption_table(10), 1)
    p = curate.Pipeline([caption_length], id_column="id")
    curate.run(p, data, tmp_path / "run", executor="local")
    with pytest.warns(FutureWarning, match="'verify_outputs' is renamed 'verify'"):
        s = curate.run(p, data, tmp_path / "run", executor="local", verify_outputs=True)
    assert s["result"]["in"] == 10


def test_join_left_is_accepted_as_reference_with_a_warning(tmp_path):
    from curate import api

    with pytest.warns(FutureWarning, match="'left' is renamed 'reference'"), \
            pytest.raises(curate.ConfigError, match="needs reference, right, on and out"):
        api.join(left="l.csv")


def test_ray_executor_max_workers_is_accepted_as_workers_with_a_warning():
    pytest.importorskip("ray")
    from curate.engine.ray import RayExecutor

    with pytest.warns(FutureWarning, match="'max_workers' is renamed 'workers'"):
        ex = RayExecutor(max_workers=3)
    assert ex.workers == 3


def test_curate_join_id_flag_is_accepted_as_right_id_with_a_warning(monkeypatch, caplog):
    from curate import api, cli

    seen = {}
    monkeypatch.setattr(api, "join", lambda *a, **k: seen.update(k) or {"stages": {}})
    monkeypatch.setattr(cli, "_print_join", lambda *a: None)
    assert cli.main(["join", "l.csv", "r.csv", "--on", "name", "--out", "o", "--id", "key"]) == 0
    assert seen["right_id"] == "key" and "--id is renamed --right-id" in caplog.text
    assert cli.main(["join", "l.csv", "r.csv", "--on", "name", "--out", "o", "--right-id", "k2"]) == 0
    assert seen["right_id"] == "k2"


def test_an_option_the_executor_does_not_take_is_refused_by_name():
    from curate.engine.executor import build_executor

    with pytest.raises(curate.ConfigError, match="executor 'local' takes no workers"):
        build_executor("local", workers=4)
    with pytest.raises(curate.ConfigError, match="unknown executor 'spark'"):
        build_executor("spark")


def test_curate_stage_is_the_decorator_and_the_module_whatever_was_imported_first():
    """`import curate.stage` used to leave `curate.stage` the decorator, so `curate.stage.Stage` failed."""
    import subprocess
    import sys

    code = ("import pyarrow as pa, curate.stage, curate\n"
            "assert curate.stage.Stage is curate.Stage and curate.stage.FunctionStage\n"
            "f = curate.stage(inputs=['a'], outputs={'b': pa.int32()})(lambda batch: {'b': batch.column('a')})\n"
            "assert isinstance(f, curate.stage.FunctionStage)\n"
            "from curate.stage import stage\n"
            "assert isinstance(stage(inputs=['a'], outputs={'b': pa.int32()})(len), curate.Stage)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_curate_join_passes_ray_address_and_workers_to_the_executor(monkeypatch, tmp_path):
    """They were accepted and ignored."""
    pytest.importorskip("rapidfuzz")
    from curate import api, cli

    (tmp_path / "l.csv").write_text("id,name\nl1,alpha\nl2,beta\n")
    (tmp_path / "r.csv").write_text("id,name\nr1,alpha\nr2,betta\n")
    seen = {}
    monkeypatch.setattr(api, "run", lambda *a, **k: seen.update(k) or {"stages": {}})
    monkeypatch.setattr(cli, "_print_join", lambda *a: None)
    assert cli.main(["join", str(tmp_path / "l.csv"), str(tmp_path / "r.csv"), "--on", "name", "--out",
                     str(tmp_path / "o"), "--ray-address", "ray://h:1", "--workers", "3"]) == 0
    assert seen["ray_address"] == "ray://h:1" and seen["workers"] == 3


def test_the_help_speaks_to_users(capsys):
    from curate import cli

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert "front door" not in text and "curate.api" not in text and "score and prune" in text


def test_materialize_is_a_place_everywhere_true_meaning_the_run_directorys_curated(tmp_path):
    """`export(materialize=PATH)` and `curate export --materialize DIR` take a place; so does the config's
    `export.materialize` (true keeps meaning <out>/curated)."""
    data = write_shards(tmp_path / "data", caption_table(12), 2)
    for where, expect in ((True, tmp_path / "a" / "curated"), (str(tmp_path / "elsewhere"), tmp_path / "elsewhere")):
        out = tmp_path / ("a" if where is True else "b")
        p = curate.Pipeline([caption_length], id_column="id", materialize=where)
        s = curate.run(p, data, out, executor="local")
        assert s["exports"]["materialized_to"] == str(expect) and s["exports"]["materialized_rows"] == 12


def test_a_pipeline_setting_goes_to_the_executors_that_take_it_and_an_option_is_refused_elsewhere():
    from curate.engine import executor as ex

    got = {}
    table = {"slow": lambda unit_timeout=None: got.update(unit_timeout=unit_timeout) or ex.build_executor("local"),
             "plain": lambda: ex.build_executor("local")}
    for name, factory in table.items():
        ex.EXECUTORS[name] = factory
    try:
        ex.build_executor("slow", settings={"unit_timeout": 45})
        assert got == {"unit_timeout": 45}
        assert ex.build_executor("plain", settings={"unit_timeout": 45}).name == "local"  # no use for it: left out
        with pytest.raises(curate.ConfigError, match="executor 'plain' takes no unit_timeout"):
            ex.build_executor("plain", unit_timeout=45)  # asked for by name: refused
    finally:
        for name in table:
            del ex.EXECUTORS[name]
