"""Shards parsed whole into an Arrow table on open (JSONL, CSV, WebDataset): the base of their readers.

These formats have no column or row index to seek to, so a shard is decoded once and then served from
memory; a small per-process cache keeps a worker from parsing a shard once per stage.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Iterator, Sequence
from typing import ClassVar

import pyarrow as pa
import pyarrow.fs as pafs

from curate.errors import DataError
from curate.formats.base import BATCH_ROWS, holds_any, tail

# Parsed shards kept per process: at least the last CACHE_SHARDS, and more while they total CACHE_BYTES or less
# (small shards are then parsed once per run, not once per stage; large ones cost two shards of memory).
CACHE_SHARDS = 2
CACHE_BYTES = 64 << 20
_cache: OrderedDict[tuple, pa.Table] = OrderedDict()


class ParsedReader:
    """A shard held as one Arrow table. Subclasses name the format and implement `parse(data, rel)`."""

    format: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]
    compressed: ClassVar[bool] = True  # `.gz` / `.zst` endings are decompressed before parsing

    def __init__(self, table: pa.Table, rel: str):
        self._table, self.rel = table, rel
        self.schema: pa.Schema = table.schema
        self.num_rows: int = table.num_rows

    @classmethod
    def parse(cls, data: bytes, rel: str) -> pa.Table:
        """The file's rows; raises DataError naming the shard and the bad line or member."""
        raise NotImplementedError

    @classmethod
    def open(cls, fs: pafs.FileSystem, path: str, rel: str, stamp: tuple = ()) -> ParsedReader:
        key = (path, cls.format, *stamp)
        if key in _cache:
            _cache.move_to_end(key)
            return cls(_cache[key], rel)
        try:
            with fs.open_input_stream(path, compression="detect" if cls.compressed else None) as f:
                data = f.read()
        except OSError as e:
            raise DataError([f"shard {rel}: cannot read ({e})"]) from e
        _cache[key] = cls.parse(data, rel)
        while len(_cache) > CACHE_SHARDS and sum(t.nbytes for t in _cache.values()) > CACHE_BYTES:
            _cache.popitem(last=False)
        return cls(_cache[key], rel)

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        try:
            return self._table if columns is None else self._table.select(list(columns))
        except KeyError as e:
            raise DataError([f"shard {self.rel}: cannot read columns {columns} ({e})"]) from e

    def batches(self, columns: Sequence[str], rows: Collection[int] | None = None,
                batch_rows: int = BATCH_ROWS) -> Iterator[tuple[int, pa.RecordBatch]]:
        wanted = None if rows is None else sorted(rows)
        pos = 0
        for batch in self.read(columns).to_batches(max_chunksize=batch_rows):  # (slices: no copy)
            if wanted is None or holds_any(wanted, pos, pos + batch.num_rows):
                yield pos, batch
            pos += batch.num_rows

    @staticmethod
    def fingerprint_material(f: pa.NativeFile) -> bytes:
        return tail(f)
