"""`curate gc`: a finished run's fit intermediates are reclaimed; a policy-only re-run still needs nothing
more, and a re-score that needs the reclaimed shuffle outputs refits instead of failing."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import curate
from curate.api import gc
from curate.methods.semdedup.policy import SemDeDupPolicy
from curate.methods.semdedup.stage import SemDeDup
from testkit.faults import sidecars
from testkit.helpers import shuffled_shards, spherical_groups, vector_table

ROOT = Path(__file__).resolve().parents[2]


def pipeline(eps: float = 0.002) -> curate.Pipeline:
    return curate.Pipeline(stages=[SemDeDup("emb", k=4, niter=20)], policies=[SemDeDupPolicy(epsilon=eps)],
                           id_column="id")


@pytest.fixture
def run(tmp_path):
    ids, x, _, _ = spherical_groups(injected=100)
    data = shuffled_shards(tmp_path / "data", vector_table(ids, x), 4, seed=1)
    curate.run(pipeline(), data, tmp_path / "run", executor="local")
    return data, tmp_path / "run"


def test_gc_reclaims_intermediates_and_a_policy_rerun_needs_nothing_more(run):
    data, out = run
    before = curate.load_manifest(out)
    assert sidecars(out, "reduce") and sidecars(out, "shuffle"), "semdedup's fit shuffles"
    result = gc(out)
    assert result["freed_bytes"] > 0 and set(result["freed"]) >= {"shuffle", "reduce"}
    assert not any((out / name).exists() for name in ("fitmap", "shuffle", "reduce"))

    again = curate.run(pipeline(eps=0.01), data, out, executor="local")
    assert again["stages"]["semdedup"]["units_computed"] == 0 and again["phases"]["fit:semdedup"]["reused"]
    assert not (out / "reduce").exists(), "a policy-only re-run does not recreate the intermediates"
    assert again["policies"]["semdedup"]["dropped"] >= before.column("keep").to_pylist().count(False)


def test_a_rescore_after_gc_refits_and_gives_the_same_manifest(run):
    data, out = run
    before = curate.load_manifest(out)
    gc(out)
    for sidecar in sidecars(out, "scores")[:2]:  # two shards must be scored again (as after `curate verify`)
        sidecar.unlink()
    again = curate.run(pipeline(), data, out, executor="local")
    assert again["stages"]["semdedup"]["units_computed"] == 2
    assert again["phases"]["fit:semdedup"]["reused"] is False, "refitted to recreate the shuffle outputs"
    assert curate.load_manifest(out).equals(before)


def test_gc_refuses_an_unfinished_run_and_the_cli_reports_what_it_freed(tmp_path, run):
    with pytest.raises(curate.CurateError, match="gc reclaims only finished runs"):
        gc(tmp_path / "nothing-here")
    _, out = run
    proc = subprocess.run([sys.executable, "-m", "curate.cli", "gc", str(out)], cwd=ROOT, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "removed reduce/" in proc.stdout and "freed" in proc.stdout
