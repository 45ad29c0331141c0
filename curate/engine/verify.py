"""`curate verify`: re-hash every committed output of a run directory and mark damaged units not done.

Each unit's sealed sidecar records its files' sizes and xxh3 hashes (engine/store.py). A unit whose
sidecar was edited, or whose file is missing, truncated, replaced or flipped, is forgotten (its sidecar
removed), so the next run recomputes exactly those units. A damaged fit-map, shuffle or reduce unit also
forgets its stage's artifact, since the artifact (and scoring, for a shuffle) was built from it.
The published manifest generation is checked too; the next run's decide rewrites it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from curate.engine.files import content_hash, sealed
from curate.engine.lease import Lease
from curate.engine.store import Store
from curate.errors import CurateError
from curate.layout import read_json

UNIT_FOLDERS = ("ids", "fitmap", "shuffle", "reduce", "artifacts", "scores")
FIT_FOLDERS = ("fitmap", "shuffle", "reduce")


def _stage_of(rel: Path) -> str:
    """The stage a fit unit belongs to: `fitmap/<stage>/...`, `shuffle/<stage>.<name>/...`."""
    return rel.parts[1].split(".", 1)[0]


def verify(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Check every unit and the published manifest; forget the damaged units. Takes the run's lease."""
    store = Store(run_dir)
    if not store.root.is_dir():
        raise CurateError(f"{run_dir} is not a run directory")
    bad: list[dict[str, str]] = []
    checked = 0
    with Lease(store.root):
        refit: set[str] = set()
        for folder in UNIT_FOLDERS:
            for sidecar in sorted((store.root / folder).rglob("*.json")):
                path, rel = sidecar.with_suffix(".parquet"), sidecar.relative_to(store.root)
                meta = read_json(sidecar)
                problem = "its sidecar is unreadable" if meta is None else store.problem(path, meta, deep=True)
                checked += 1
                if problem:
                    bad.append({"unit": str(rel), "problem": problem})
                    store.forget(path)
                    if folder in FIT_FOLDERS:
                        refit.add(_stage_of(rel))
        for stage in sorted(refit):
            for sidecar in (store.root / "artifacts" / stage).rglob("artifact.json"):
                bad.append({"unit": str(sidecar.relative_to(store.root)), "problem": "built from a damaged unit"})
                sidecar.unlink()
        bad += _check_manifest(store)
    return {"run_dir": str(store.root), "units_checked": checked, "bad": bad}


def _check_manifest(store: Store) -> list[dict[str, str]]:
    summary = read_json(store.summary)
    if summary is None:
        return []
    problems = [] if sealed(summary) else [{"unit": "summary.json", "problem": "modified after it was published"}]
    for rel, part in summary.get("manifest", {}).get("parts", {}).items():
        path = store.root / part["file"]
        if not path.exists() or path.stat().st_size != part["size"] or content_hash(path.read_bytes()) != part["xxh3"]:
            problems.append({"unit": part["file"], "problem": f"the manifest part of {rel} is missing or damaged "
                                                             f"(the next run rewrites it)"})
    return problems
