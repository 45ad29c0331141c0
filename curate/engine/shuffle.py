"""Reading the shuffle's grouped Parquet files: one row group per group value, located by a footer index.

A shuffle map writes each shard's rows grouped by `part`; a reduce reads its part's row group from
every map output, and writes its results grouped by source `shard`, so that scoring a shard reads one
row group per reduce output and nothing else (files are written by engine/files.py).
"""
from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from curate.engine.files import GROUP_INDEX_KEY
from curate.storage import AnyPath, location, parquet_file


def read_group(paths: Iterable[AnyPath], value: object, columns: list[str] | None = None,
               unify: bool = False) -> pa.Table | None:
    """The rows of group `value` from each grouped file, concatenated (None when no file holds any);
    `unify` allows files of different schemas and always returns a table with the union of their
    columns (missing ones as nulls), empty when no file holds the group."""
    parts, schemas = [], []
    for path in paths:
        pf = parquet_file(path)
        schemas.append(pf.schema_arrow.remove_metadata())
        index = json.loads((pf.schema_arrow.metadata or {}).get(GROUP_INDEX_KEY, b"{}"))
        if str(value) in index:
            parts.append(pf.read_row_group(index[str(value)], columns=columns).replace_schema_metadata(None))
    if unify:
        parts.append(pa.unify_schemas(schemas, promote_options="permissive").empty_table())
        return pa.concat_tables(parts, promote_options="permissive")
    if not parts:
        return None
    return pa.concat_tables(parts)


def read_shuffled(root: str | AnyPath, paths: list[str], shard_key: str, rows: int,
                  columns: list[str] | None = None) -> pa.Table:
    """One shard's reduced rows from the outputs of `FitContext.shuffle`, in row order, checked complete."""
    table = read_group([location(root) / p for p in paths], shard_key, columns=None if columns is None else ["row", *columns])
    if table is None:
        raise ValueError(f"shard {shard_key}: no rows in the shuffle's outputs (expected {rows})")
    table = table.sort_by("row")
    got = table.column("row").to_numpy()
    if len(got) != rows or not np.array_equal(got, np.arange(rows)):
        raise ValueError(f"shard {shard_key}: the shuffle's outputs hold {len(got)} of its {rows} rows")
    return table.drop_columns(["row"] + (["shard"] if "shard" in table.column_names else []))
