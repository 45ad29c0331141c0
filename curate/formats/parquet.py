"""Parquet shards: read column by column and row group by row group, so memory follows what is asked for."""
from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import ClassVar

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from curate.errors import DataError
from curate.formats.base import BATCH_ROWS, holds_any, tail


class ParquetReader:
    """A Parquet shard (its footer read on open)."""

    format: ClassVar[str] = "parquet"
    suffixes: ClassVar[tuple[str, ...]] = (".parquet",)

    def __init__(self, file: pq.ParquetFile, rel: str):
        self._file, self.rel = file, rel
        self.schema: pa.Schema = file.schema_arrow
        self.num_rows: int = file.metadata.num_rows

    @classmethod
    def open(cls, fs: pafs.FileSystem, path: str, rel: str, stamp: tuple = ()) -> ParquetReader:
        try:
            # (pages written with a checksum, as curate's exports are, are checked against it; others cost nothing)
            return cls(pq.ParquetFile(fs.open_input_file(path), page_checksum_verification=True), rel)
        except (OSError, pa.ArrowException) as e:
            raise DataError([f"shard {rel}: not a readable Parquet file ({e}); replace or remove it"]) from e

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        self._check(columns)
        try:
            return self._file.read(columns=None if columns is None else list(columns))
        except (OSError, pa.ArrowException) as e:
            raise DataError([f"shard {self.rel}: cannot read columns {columns} ({e})"]) from e

    def batches(self, columns: Sequence[str], rows: Collection[int] | None = None,
                batch_rows: int = BATCH_ROWS) -> Iterator[tuple[int, pa.RecordBatch]]:
        self._check(columns)
        wanted = None if rows is None else sorted(rows)
        meta, start = self._file.metadata, 0
        try:
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                if wanted is None or holds_any(wanted, start, start + n):  # other row groups are not decoded
                    pos = start
                    for batch in self._file.iter_batches(batch_size=batch_rows, row_groups=[g], columns=list(columns),
                                                         use_threads=False):
                        if wanted is None or holds_any(wanted, pos, pos + batch.num_rows):
                            yield pos, batch
                        pos += batch.num_rows
                start += n
        except (OSError, pa.ArrowException) as e:
            raise DataError([f"shard {self.rel}: cannot read columns {list(columns)} ({e})"]) from e

    def _check(self, columns: Sequence[str] | None) -> None:
        """Refuse unknown columns as the other formats do (pyarrow would leave them out without a word)."""
        missing = [c for c in columns or () if c.split(".", 1)[0] not in self.schema.names]
        if missing:
            raise DataError([f"shard {self.rel}: cannot read columns {list(columns or ())} (no column {missing[0]!r})"])

    @staticmethod
    def fingerprint_material(f: pa.NativeFile) -> bytes:
        """The footer (or the last 64 KiB when the file has none: the plan then refuses it)."""
        size = f.size()
        end = f.read_at(min(8, size), max(0, size - 8))
        if end[4:] != b"PAR1":
            return tail(f)
        n = int.from_bytes(end[:4], "little")
        return f.read_at(min(n + 8, size), max(0, size - n - 8))
