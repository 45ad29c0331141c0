"""Fault injection for the run-directory tests: a small pipeline that runs in a child process, slowly
enough to be killed at a chosen moment, and a reference manifest to compare against."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import curate
from curate.methods.wfpp import WFPP
from curate.storage import location
from testkit.helpers import caption_table, write_shards

ROOT = Path(__file__).resolve().parents[1]
ROWS, SHARDS = 240, 8


def dataset(folder: Path, rows: int = ROWS, shards: int = SHARDS) -> Path:
    return write_shards(folder, caption_table(rows), shards)


class SlowThreshold(curate.Threshold):
    """A threshold whose per-shard decision sleeps CURATE_TEST_DECIDE_SLEEP seconds: time to kill a decide."""

    def decide_rows(self, rows):
        time.sleep(float(os.environ.get("CURATE_TEST_DECIDE_SLEEP", "0")))
        return super().decide_rows(rows)


def pipeline(fraction: float = 0.5) -> curate.Pipeline:
    """WFPP (a fit with a map, then scores) and a slow custom filter; two policies."""
    from testkit.helpers import slow_length

    return curate.Pipeline([WFPP(text_column="caption", min_count=1), slow_length],
                           [curate.KeepFraction("wfpp.score", fraction), SlowThreshold("slow_length.len", min=10)],
                           id_column="id")


SCRIPT = """
import sys
import curate
from testkit.faults import pipeline
curate.run(pipeline({fraction}), {data!r}, {out!r}, executor={executor!r})
"""


def start(data: Path, out: Path, executor: str = "local", fraction: float = 0.5, sleep: float = 0.15,
          decide_sleep: float = 0.0) -> subprocess.Popen:
    """The pipeline's run in a child process (so that it can be killed with SIGKILL)."""
    env = {**os.environ, "CURATE_TEST_SLEEP": str(sleep), "CURATE_TEST_DECIDE_SLEEP": str(decide_sleep),
           "PYTHONPATH": str(ROOT)}
    script = SCRIPT.format(fraction=fraction, data=str(data), out=str(out), executor=executor)
    return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 120) -> bool:
    """SIGKILL the child once `ready()` holds; False if it finished first."""
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None:
            return False
        if time.time() > deadline:
            proc.kill()
            raise TimeoutError("the run never reached the moment to kill it")
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    return True


def sorted_manifest(run_dir: Path) -> pa.Table:
    t = curate.load_manifest(run_dir)
    return t.take(pc.sort_indices(t, [("id", "ascending")]))


def reference(tmp: Path, data: Path, fraction: float = 0.5) -> pa.Table:
    """The manifest of an uninterrupted run (set CURATE_TEST_SLEEP=0 first: it runs in this process)."""
    curate.run(pipeline(fraction), data, tmp / f"reference-{fraction}", executor="local")
    return sorted_manifest(tmp / f"reference-{fraction}")


def sidecars(run_dir: str | Path, folder: str) -> list:
    """The committed units under `folder` of a run directory (local or on an object store)."""
    units = location(run_dir) / folder
    return sorted(units.rglob("*.json")) if units.exists() else []
