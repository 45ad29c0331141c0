"""A custom filter named in YAML (`type: mypackage.filters:fn`) imports from the folder the user runs in, and
from the config's folder, with no PYTHONPATH: the `curate` script's sys.path holds neither."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from curate.cli import main
from testkit.helpers import caption_table, write_shards

FILTER = '''import pyarrow as pa, pyarrow.compute as pc
import curate

@curate.stage(inputs={"caption": pa.string()}, outputs={"chars": pa.int32()})
def caption_chars(batch):
    return {"chars": pc.utf8_length(batch.column("caption"))}
'''


def _package(folder: Path, name: str) -> None:
    (folder / name).mkdir(parents=True)
    (folder / name / "__init__.py").write_text("")
    (folder / name / "filters.py").write_text(FILTER)


def _config(path: Path, package: str, data: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"name: mine\ndata: {data}\nid_column: id\nstages:\n  - type: {package}.filters:caption_chars\n"
                    f"policies:\n  - type: threshold\n    column: caption_chars.chars\n    min: 10\n")
    return path


@pytest.fixture
def bare_sys_path(monkeypatch):
    """sys.path as the installed `curate` script has it: no entry that means the current directory (`python -m
    pytest` puts '' first, which would find the test's project after its chdir)."""
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])


@pytest.mark.parametrize("where", ["cwd", "config_folder"])
def test_a_custom_filter_imports_from_the_current_or_the_config_folder(tmp_path, monkeypatch, bare_sys_path,
                                                                        capsys, where):
    data = write_shards(tmp_path / "data", caption_table(40), 2)
    package = f"mypackage_{where}"  # (a module imported once stays in sys.modules: one name per case)
    project = tmp_path / "project"
    if where == "cwd":
        _package(project, package)
        config = _config(project / "configs" / "my.yaml", package, data)
    else:
        _package(tmp_path / "elsewhere", package)
        config = _config(tmp_path / "elsewhere" / "my.yaml", package, data)
        project.mkdir()
    monkeypatch.chdir(project)
    try:
        assert main(["run", str(config), "--out", str(tmp_path / "run"), "--executor", "local"]) == 0
    finally:
        sys.modules.pop(f"{package}.filters", None)
        sys.modules.pop(package, None)
    assert "mine: 40 rows" in capsys.readouterr().out


def test_curate_deploy_loads_a_custom_filter_from_the_current_folder(tmp_path, monkeypatch, bare_sys_path):
    """`curate deploy` loads the config when it builds the deployment (flows/deploy.py): the same imports."""
    pytest.importorskip("prefect")
    from flows.deploy import deployment

    _package(tmp_path, "mypackage_deploy")
    config = _config(tmp_path / "configs" / "my.yaml", "mypackage_deploy", tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    try:
        d = deployment(config, cron="0 3 * * *")
    finally:
        sys.modules.pop("mypackage_deploy.filters", None)
        sys.modules.pop("mypackage_deploy", None)
    assert d.name == "my" and d.parameters["config"] == str(config)
