"""The run directory as the engine writes it: content-keyed units committed by their sidecar.

A unit's output is written (atomically, engine/files.py), and only then its JSON sidecar. A unit is
done iff its sidecar exists and holds the expected key, so a crash at any point leaves either a
finished unit or one that is simply redone.
"""
from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

from curate.engine.files import write_json, write_parquet
from curate.layout import RunLayout, read_json


class Store(RunLayout):
    """Paths (RunLayout) plus the done-markers of one run directory."""

    def done(self, path: Path, key: str) -> dict | None:
        """The sidecar of a finished unit with this key, else None."""
        meta = read_json(self.sidecar(path))
        if meta and meta.get("key") == key and path.exists():
            return meta
        return None

    def finish(self, path: Path, table: pa.Table, meta: dict, group_by: str | None = None) -> dict:
        """Write a unit's table, then its sidecar: the sidecar's presence is the commit."""
        t0 = time.perf_counter()
        write_parquet(path, table, group_by)
        meta = {**meta, "write_s": round(time.perf_counter() - t0, 4)}
        write_json(self.sidecar(path), meta)
        return meta
