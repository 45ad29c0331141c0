"""Reading the shuffle's grouped Parquet files: one row group per group value, located by a footer index.

A shuffle map writes each shard's rows grouped by `part`; a reduce reads its part's row group from
every map output, and writes its results grouped by source `shard`, so that scoring a shard reads one
row group per reduce output and nothing else (files are written by engine/files.py).

Each read checks what it reads against the unit's sidecar, which records the hash of every row group
and of the footer (`group_records`): the footer and the one group are read, checked, and decoded from
the checked bytes (a file's other groups are not read, so they are not checked here; `curate verify` is).

Two-level layout (docs/scale.md, section 3): with S map outputs and P partitions, a flat reduce reads one
small range of every map output, S x P reads in all. Past `TWO_LEVEL_READS` (`TWO_LEVEL_READS_OBJECT_STORE`
for a run directory on an object store), or when the pipeline says `shuffle: two-level`, maps group their rows by coarse group (`part // width`, width = ceil(sqrt(P)), so
G = ceil(P / width) groups), a split unit per coarse group reads that group from every map output and
writes it grouped by partition, and a reduce reads its partition from its group's one split file: about
S x G + P reads. A partition's rows reach its reduce in the same order either way (map outputs in order,
each one's rows by `row`), so the results are the same, byte for byte.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.engine.files import GROUP_INDEX_KEY
from curate.errors import DamagedFileError
from curate.layout import unit_record, verified_bytes
from curate.storage import AnyPath, content_hash, location, read_range

# Above this many flat reduce reads (map outputs x partitions), `shuffle: auto` uses the two-level layout:
# 100 map outputs x 100 partitions on a local disk, where a small read costs little; on an object store,
# where each read is requests (a HEAD and a ranged GET, tens of ms each on a real one), 2,000 (the
# 10M-row run of docs/scale.md makes exactly that many, and stays flat). Below it the split step would
# only rewrite every row once more.
TWO_LEVEL_READS = 10_000
TWO_LEVEL_READS_OBJECT_STORE = 2_000
SHUFFLE_LAYOUTS = ("auto", "flat", "two-level")
COARSE = "_coarse"  # the map outputs' coarse-group column in the two-level layout (dropped by the split)


def coarse_width(setting: str, maps: int, partitions: int, object_store: bool = False) -> int | None:
    """Partitions per coarse group for a shuffle of `maps` map outputs into `partitions` (None: flat)."""
    if setting not in SHUFFLE_LAYOUTS:
        raise ValueError(f"shuffle layout must be one of {SHUFFLE_LAYOUTS}, got {setting!r}")
    limit = TWO_LEVEL_READS_OBJECT_STORE if object_store else TWO_LEVEL_READS
    two_level = setting == "two-level" or (setting == "auto" and maps * partitions > limit)
    if not two_level or partitions < 2:
        return None
    return math.isqrt(partitions - 1) + 1  # ceil(sqrt(P))


class _GroupedFile:
    """A grouped Parquet file of the run directory, its footer read and checked; `read(value)` reads and
    checks one group. The file is laid out in a zero-filled buffer of its size (pages of it that are never
    written are never allocated), so that Parquet reads the checked bytes at their offsets."""

    def __init__(self, path: AnyPath):
        self.path, record = path, unit_record(path)
        self.groups = record.get("groups")
        if self.groups is None:  # (a sidecar written before groups were recorded: the whole file, checked)
            self.file = pq.ParquetFile(pa.BufferReader(verified_bytes(path, record)))
        else:
            self.buffer = np.zeros(record["size"], np.uint8)
            self._fill(record["footer"][0], record["size"], record["footer"][1], "footer")
            self.file = pq.ParquetFile(pa.BufferReader(pa.py_buffer(self.buffer)))
        self.schema = self.file.schema_arrow
        self.index = json.loads((self.schema.metadata or {}).get(GROUP_INDEX_KEY, b"{}"))

    def _fill(self, start: int, end: int, xxh3: str, what: str) -> None:
        data = read_range(self.path, start, end)
        if len(data) != end - start or content_hash(data) != xxh3:
            raise DamagedFileError(self.path, f"its content changed after it was written ({what}: hash mismatch)")
        self.buffer[start:end] = np.frombuffer(data, np.uint8)

    def read(self, value: object, columns: list[str] | None = None) -> pa.Table | None:
        group = self.index.get(str(value))
        if group is None:
            return None
        if self.groups is not None:
            start, end, xxh3 = self.groups[group]
            self._fill(start, end, xxh3, f"row group {group}")
        return self.file.read_row_group(group, columns=columns)


def grouped_schema(path: AnyPath) -> pa.Schema:
    """A grouped file's schema (and metadata), from its checked footer."""
    return _GroupedFile(path).schema


def read_group(paths: Iterable[AnyPath], value: object, columns: list[str] | None = None,
               unify: bool = False) -> pa.Table | None:
    """The rows of group `value` from each grouped file, concatenated (None when no file holds any);
    `unify` allows files of different schemas and always returns a table with the union of their
    columns (missing ones as nulls), empty when no file holds the group."""
    parts, schemas = [], []
    for path in paths:
        grouped = _GroupedFile(path)
        schemas.append(grouped.schema.remove_metadata())
        rows = grouped.read(value, columns)
        if rows is not None:
            parts.append(rows.replace_schema_metadata(None))
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
