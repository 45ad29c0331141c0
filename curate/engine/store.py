"""The run directory: content-keyed, atomically written outputs.

A unit's output is written to a temporary name, renamed into place, and only then is its JSON
sidecar written (also by rename). A unit is done iff its sidecar exists and holds the expected key,
so a crash at any point leaves either a finished unit or one that is simply redone.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def digest(*parts: Any) -> str:
    """A stable hex key of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


def write_parquet(path: Path, table: pa.Table, group_by: str | None = None) -> None:
    """Atomic write; with `group_by`, one row group per value of that column (see engine/shuffle.py)."""
    from curate.engine.shuffle import write_grouped

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    if group_by:
        write_grouped(tmp, table, group_by)
    else:
        pq.write_table(table, tmp, compression=codecs(table.schema), use_dictionary=dictionary_columns(table.schema))
    os.replace(tmp, path)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _floats(t: pa.DataType) -> bool:
    return _floats(t.value_type) if _is_list(t) else pa.types.is_floating(t)


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary-encoding: not floats or lists of them (embeddings decode 2-3x faster without)."""
    return [f.name for f in schema if not _floats(f.type)]


def codecs(schema: pa.Schema) -> dict[str, str]:
    """zstd, except for vectors: float bits barely compress (~10%) and zstd makes reading them ~4x slower."""
    return {f.name: "none" if _is_list(f.type) and _floats(f.type) else "zstd" for f in schema}


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class Store:
    """Paths and done-markers of one run directory."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def unit(self, kind: str, stage: str, shard_key: str) -> Path:
        """Output path of a per-shard unit: kind is `ids`, `scores`, `fitmap`, `shuffle` or `reduce`."""
        return self.root / kind / stage / f"{shard_key}.parquet" if stage else self.root / kind / f"{shard_key}.parquet"

    @staticmethod
    def sidecar(path: Path) -> Path:
        return path.with_suffix(".json")

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

    def artifact(self, stage: str, key: str) -> Path:
        return self.root / "artifacts" / stage / key / "artifact.parquet"

    def manifest_part(self, shard_key: str) -> Path:
        return self.root / "manifest" / f"part-{shard_key}.parquet"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"
