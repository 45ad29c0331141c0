"""`curate gc RUN_DIR`: reclaim a finished run's intermediates, keeping all a policy-only re-run needs.

Removed: fit maps, shuffle map outputs and reduce outputs (`fitmap/`, `shuffle/`, `reduce/`): scaffolding
of the fits, usually the bulk of a run directory. Kept: ids, artifacts, scores, the published manifest,
summary and exports, so that changing a policy re-runs in seconds. A later run that must re-score a stage
whose scoring reads shuffle outputs refits it first (engine/run.py: `_reclaimed`), so nothing is lost but
time. Takes the run's lease: never while a writer is at work.
"""
from __future__ import annotations

import os
from typing import Any

from curate.engine.lease import Lease
from curate.engine.store import Store
from curate.errors import CurateError
from curate.storage import AnyPath, rmtree

INTERMEDIATES = ("fitmap", "shuffle", "reduce")


def _size(folder: AnyPath) -> tuple[int, int]:
    """(files, bytes) under a folder."""
    files = size = 0
    for p in folder.rglob("*"):
        if p.is_file():
            files, size = files + 1, size + p.stat().st_size
    return files, size


def collect(run_dir: str | os.PathLike | AnyPath) -> dict[str, Any]:
    """Remove the intermediates of a finished run; returns what was freed, per folder and in all."""
    store = Store(run_dir)
    if not store.summary.exists():
        raise CurateError(f"{run_dir}: no summary.json; gc reclaims only finished runs (re-run to finish it first)")
    freed: dict[str, dict[str, int]] = {}
    with Lease(store.root):
        for name in INTERMEDIATES:
            folder = store.root / name
            if folder.exists():
                files, size = _size(folder)
                rmtree(folder)
                freed[name] = {"files": files, "bytes": size}
    kept_files, kept_bytes = _size(store.root)
    return {"run_dir": str(store.root), "freed": freed,
            "freed_bytes": sum(f["bytes"] for f in freed.values()), "kept_files": kept_files,
            "kept_bytes": kept_bytes}
