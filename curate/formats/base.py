"""What every shard reader offers: `ShardReader`, the one interface the engine, the report and exports read
input through (schema, row count, whole columns, batches of columns, fingerprint material)."""
from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import ClassVar, Protocol

import pyarrow as pa
import pyarrow.fs as pafs

BATCH_ROWS = 1024   # rows per batch from `ShardReader.batches` unless asked otherwise
TAIL_BYTES = 65_544  # fingerprint material of a file with no footer to hash: its last 64 KiB (+8)


class ShardReader(Protocol):
    """One open shard of one format. `open` raises DataError naming the shard (and line or member) when
    the file is not readable as its format; reads after that raise DataError naming the shard too."""

    format: ClassVar[str]               # the name configs use (`format: jsonl`)
    suffixes: ClassVar[tuple[str, ...]]  # lower-case file name endings, longest first
    rel: str                            # the shard's path as users see it (in messages)
    schema: pa.Schema
    num_rows: int

    @classmethod
    def open(cls, fs: pafs.FileSystem, path: str, rel: str, stamp: tuple) -> ShardReader:
        """The shard at `path` (`stamp`: what identifies this version of the file, e.g. size and mtime)."""
        ...

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The given columns (all when None) of every row, in row order."""
        ...

    def batches(self, columns: Sequence[str], rows: Collection[int] | None = None,
                batch_rows: int = BATCH_ROWS) -> Iterator[tuple[int, pa.RecordBatch]]:
        """(position of the batch's first row, batch) in row order; with `rows`, only batches holding one of
        those row positions, read without decoding the rest where the format allows it."""
        ...

    @staticmethod
    def fingerprint_material(f: pa.NativeFile) -> bytes:
        """A few bytes that any rewrite of the file changes (a Parquet footer), read cheaply: with size and
        times they decide whether a cached content fingerprint is still trusted."""
        ...


def tail(f: pa.NativeFile, n: int = TAIL_BYTES) -> bytes:
    """The last `n` bytes of an open file (all of it when shorter)."""
    size = f.size()
    return f.read_at(min(n, size), max(0, size - n))


def holds_any(rows: list[int], start: int, stop: int) -> bool:
    """Whether sorted `rows` has a value in [start, stop)."""
    import bisect

    i = bisect.bisect_left(rows, start)
    return i < len(rows) and rows[i] < stop
