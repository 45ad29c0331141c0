"""Writing the run directory's files: whole, once, with their size and content hash.

A file is built in memory, hashed (xxh3-64: readers check the same hash, curate/layout.py), then written
whole (curate/storage.py: a temporary name renamed into place locally, one PUT on an object store), so no
reader ever sees half a file under its final name. The returned record (`size`, `xxh3`) goes into the unit's sealed sidecar, which is
the commit: engine/store.py. A failed write (a full disk) raises StorageError saying what, where and how
many bytes were needed; nothing half-written is left under a final name.
"""
from __future__ import annotations

import errno
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import StorageError
from curate.storage import AnyPath, content_hash, local_scratch, upload, write_whole


def file_record(data: bytes | memoryview | pa.Buffer) -> dict[str, Any]:
    return {"size": len(memoryview(data)), "xxh3": content_hash(data)}


GROUP_INDEX_KEY = b"curate.groups"


def digest(*parts: Any) -> str:
    """A stable hex key of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)


def write_bytes(path: AnyPath, data: bytes | pa.Buffer) -> dict[str, Any]:
    """Write `data` whole under `path`; returns its size and hash."""
    record = file_record(data)
    try:
        write_whole(path, data)
    except OSError as e:
        if e.errno in FULL:
            raise StorageError(f"cannot write {path}: {e.strerror} (needed {record['size']:,} bytes); free space "
                               f"and re-run: finished units are kept and only the rest is redone") from e
        raise StorageError(f"cannot write {path}: {e}") from e
    return record


@contextmanager
def writing_text(path: AnyPath) -> Iterator[IO[str]]:
    """A text file written in pieces (large id lists) that appears under `path` only once complete."""
    tmp = local_scratch(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            yield f
        upload(tmp, path)
    except OSError as e:
        raise StorageError(f"cannot write {path}: {e.strerror or e}; free space and re-run the export") from e
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: AnyPath, obj: Any) -> dict[str, Any]:
    return write_bytes(path, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())


def parquet_bytes(table: pa.Table, group_by: str | None = None, keep_order: bool = False) -> pa.Buffer:
    """The Parquet file of `table`; with `group_by`, one row group per value of that column (`write_grouped`)."""
    sink = pa.BufferOutputStream()
    if group_by:
        write_grouped(sink, table, group_by, keep_order)
    else:
        pq.write_table(table, sink, compression=codecs(table.schema), use_dictionary=dictionary_columns(table.schema),
                       write_statistics=statistics_columns(table.schema), write_page_checksum=True)
    return sink.getvalue()


def write_parquet(path: AnyPath, table: pa.Table, group_by: str | None = None,
                  keep_order: bool = False) -> dict[str, Any]:
    """Write `table` whole as Parquet; returns the file's size and hash (and, grouped, each group's: `groups`)."""
    data = parquet_bytes(table, group_by, keep_order)
    record = write_bytes(path, data)
    return {**record, **group_records(data)} if group_by else record


def group_records(data: pa.Buffer) -> dict[str, Any]:
    """The byte range and hash of each row group of a Parquet file, and of its footer (what follows the last
    group), so that a reader of one group checks only what it reads (engine/shuffle.py)."""
    meta = pq.ParquetFile(pa.BufferReader(data)).metadata
    groups, end = [], 0  # (the first group's range holds the leading magic bytes: every byte is in one range)
    for i in range(meta.num_row_groups):
        chunks = [meta.row_group(i).column(c) for c in range(meta.num_columns)]
        start = end
        end = max([min(c.data_page_offset, c.dictionary_page_offset or c.data_page_offset) + c.total_compressed_size
                   for c in chunks], default=start)
        groups.append([start, end, content_hash(memoryview(data)[start:end])])
    return {"groups": groups, "footer": [end, content_hash(memoryview(data)[end:])]}


def write_grouped(path: Any, table: pa.Table, by: str, keep_order: bool = False) -> None:
    """Write `table` sorted by `by`, one row group per distinct value, with a value -> group index. Within a
    group rows are sorted by `row`, or with `keep_order` left in the table's order (a stable sort)."""
    if keep_order:  # (numpy's stable sort: equal values keep their order, guaranteed)
        table = table.take(np.argsort(table.column(by).to_numpy(zero_copy_only=False), kind="stable"))
    else:
        table = table.sort_by([(by, "ascending")] + ([("row", "ascending")] if "row" in table.column_names else []))
    values = table.column(by).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if len(values) else np.array([], int)
    ends = np.r_[starts[1:], len(values)]
    index = {str(values[s]): i for i, s in enumerate(starts)}
    schema = table.schema.with_metadata({**(table.schema.metadata or {}), GROUP_INDEX_KEY: json.dumps(index).encode()})
    with pq.ParquetWriter(path, schema, compression=codecs(schema), use_dictionary=dictionary_columns(schema),
                          write_statistics=statistics_columns(schema), write_page_checksum=True) as writer:
        for s, e in zip(starts, ends):
            writer.write_table(table.slice(s, e - s).replace_schema_metadata(schema.metadata), row_group_size=e - s)
        if not len(starts):
            writer.write_table(schema.empty_table())


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _floats(t: pa.DataType) -> bool:
    return _floats(t.value_type) if _is_list(t) else pa.types.is_floating(t)


# The engine's row-id columns (ids units, manifest parts): distinct by contract, so a dictionary never pays; trying
# one made writing an ids unit 6x slower (and its file 40% larger) than writing the values plainly.
DISTINCT_COLUMNS = frozenset({"id", "id_hash"})


def _raw(t: pa.DataType) -> bool:
    """Vectors: lists of floats, or fixed-size binary (float rows packed as bytes, kernels/vectors.packed_rows)."""
    return (_is_list(t) and _floats(t)) or pa.types.is_fixed_size_binary(t)


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary-encoding: not floats, lists of them or packed vectors (embeddings decode 2-3x
    faster without), nor the row ids."""
    return [f.name for f in schema if not _floats(f.type) and not _raw(f.type) and f.name not in DISTINCT_COLUMNS]


def statistics_columns(schema: pa.Schema) -> list[str]:
    """Columns with min/max statistics: not packed vectors, whose min and max would be two whole rows in the
    footer per row group (a grouped file's footer is read by every reduce)."""
    return [f.name for f in schema if not pa.types.is_fixed_size_binary(f.type)]


def codecs(schema: pa.Schema) -> dict[str, str]:
    """zstd, except for vectors: float bits barely compress (~10%) and zstd makes reading them ~4x slower."""
    return {f.name: "none" if _raw(f.type) else "zstd" for f in schema}
