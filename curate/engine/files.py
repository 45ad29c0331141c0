"""Writing the run directory's files atomically: JSON, Parquet, and grouped Parquet for the shuffle.

Each file is written to a temporary name beside it and renamed into place, so a reader or a crashed
writer never sees half a file under the final name.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

GROUP_INDEX_KEY = b"curate.groups"


def digest(*parts: Any) -> str:
    """A stable hex key of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _tmp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def write_json(path: Path, obj: Any) -> None:
    tmp = _tmp(path)
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


def write_parquet(path: Path, table: pa.Table, group_by: str | None = None) -> None:
    """Atomic write; with `group_by`, one row group per value of that column (see `write_grouped`)."""
    tmp = _tmp(path)
    if group_by:
        write_grouped(tmp, table, group_by)
    else:
        pq.write_table(table, tmp, compression=codecs(table.schema), use_dictionary=dictionary_columns(table.schema))
    os.replace(tmp, path)


def write_grouped(path: Path, table: pa.Table, by: str) -> None:
    """Write `table` sorted by `by`, one row group per distinct value, with a value -> group index."""
    table = table.sort_by([(by, "ascending")] + ([("row", "ascending")] if "row" in table.column_names else []))
    values = table.column(by).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if len(values) else np.array([], int)
    ends = np.r_[starts[1:], len(values)]
    index = {str(values[s]): i for i, s in enumerate(starts)}
    schema = table.schema.with_metadata({**(table.schema.metadata or {}), GROUP_INDEX_KEY: json.dumps(index).encode()})
    with pq.ParquetWriter(path, schema, compression=codecs(schema), use_dictionary=dictionary_columns(schema)) as writer:
        for s, e in zip(starts, ends):
            writer.write_table(table.slice(s, e - s).replace_schema_metadata(schema.metadata), row_group_size=e - s)
        if not len(starts):
            writer.write_table(schema.empty_table())


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
