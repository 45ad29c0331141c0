"""`curate verify`: re-hash every committed output of a run directory and mark damaged units not done.

Each unit's sealed sidecar records its files' sizes and xxh3 hashes (engine/store.py). A unit whose
sidecar was edited, or whose file is missing, truncated, replaced or flipped, is forgotten (its sidecar
removed), so the next run recomputes exactly those units. A damaged fit-map, shuffle or reduce unit also
forgets its stage's artifact, since the artifact (and scoring, for a shuffle) was built from it.
The published manifest generation is checked too; the next run's decide rewrites it.
"""
from __future__ import annotations

import os
from typing import Any

from curate.engine.lease import Lease
from curate.engine.store import UNIT_FOLDERS, Store
from curate.errors import CurateError
from curate.layout import Part, read_json
from curate.storage import sealed


def verify(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Check every unit and the published manifest; forget the damaged units. Takes the run's lease."""
    store = Store(run_dir)
    if not store.root.is_dir():
        raise CurateError(f"{run_dir} is not a run directory")
    bad: list[dict[str, str]] = []
    checked = 0
    with Lease(store.root):
        for folder in UNIT_FOLDERS:
            for sidecar in sorted((store.root / folder).rglob("*.json")):
                path, rel = sidecar.with_suffix(".parquet"), sidecar.relative_to(store.root)
                meta = read_json(sidecar)
                problem = "its sidecar is unreadable" if meta is None else store.problem(path, meta, deep=True)
                checked += 1
                if problem:
                    bad.append({"unit": str(rel), "problem": problem})
                    bad += [{"unit": str(store.sidecar(a).relative_to(store.root)), "problem": "built from a damaged unit"}
                            for a in store.forget_damaged(path, problem)]
            reported = {b["unit"] for b in bad}
            for path, problem in store.marked_damaged(folder):  # forgotten by an earlier verify, not yet recomputed
                rel = str(store.sidecar(path).relative_to(store.root))
                if rel not in reported:
                    checked += 1
                    bad.append({"unit": rel, "problem": f"{problem} (found by an earlier verify)"})
        bad += _check_manifest(store)
    return {"run_dir": str(store.root), "units_checked": checked, "bad": bad}


def _check_manifest(store: Store) -> list[dict[str, str]]:
    summary = read_json(store.summary)
    if summary is None:
        return [{"unit": "summary.json", "problem": "unreadable"}] if store.summary.exists() else []
    problems = [] if sealed(summary) else [{"unit": "summary.json", "problem": "modified after it was published"}]
    for rel, record in summary.get("manifest", {}).get("parts", {}).items():
        if Part(store.root / record["file"], record, str(store.root)).damage():
            problems.append({"unit": record["file"],
                             "problem": f"the manifest part of {rel} is missing or damaged (the next run rewrites it)"})
    return problems
