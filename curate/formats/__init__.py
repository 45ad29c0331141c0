"""Shard formats: one reader class per format behind `ShardReader`, and writing kept rows back.

Each file is one shard. `READERS` is the one table of formats: Parquet (`parquet.py`: column by column,
row group by row group), JSONL, CSV and WebDataset .tar (parsed whole into an Arrow table, `parsed.py`).
The engine, the report and exports read input only through `ShardReader` (schema, row count, columns,
batches of columns, fingerprint material), so nothing downstream asks which format a shard was. A
malformed record stops the plan with the file and line (or tar member) named: a skipped line would be a
row silently lost. Adding a format is one reader class and one entry in `READERS`.
"""
from __future__ import annotations

import pyarrow as pa

from curate.formats.base import BATCH_ROWS, ShardReader
from curate.formats.csv import CsvReader
from curate.formats.jsonl import JsonlReader
from curate.formats.parquet import ParquetReader
from curate.formats.webdataset import WebDatasetReader

READERS: dict[str, type[ShardReader]] = {r.format: r for r in (ParquetReader, JsonlReader, CsvReader,
                                                                 WebDatasetReader)}
SUFFIXES = {name: r.suffixes for name, r in READERS.items()}  # matched against the lower-cased file name
FORMATS = tuple(READERS)

__all__ = ["BATCH_ROWS", "FORMATS", "READERS", "SUFFIXES", "CsvReader", "JsonlReader", "ParquetReader",
           "ShardReader", "WebDatasetReader", "encode", "format_of", "reader", "strip_suffix"]


def reader(fmt: str) -> type[ShardReader]:
    """The reader class of format `fmt` (one of FORMATS)."""
    return READERS[fmt]


def format_of(name: str) -> str | None:
    """The format a file name's suffix says, or None."""
    low = name.lower()
    for fmt, suffixes in SUFFIXES.items():
        if low.endswith(suffixes):
            return fmt
    return None


def strip_suffix(name: str, fmt: str) -> str:
    low = name.lower()
    for suffix in sorted(SUFFIXES[fmt], key=len, reverse=True):
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


def encode(table: pa.Table, fmt: str, name: str) -> bytes:
    """`table` as a file of format `fmt` (not Parquet: exports write that through the run's own writer);
    `name`'s suffix picks the compression (.gz, .zst)."""
    data = READERS[fmt].encode(table)  # (the parsed formats have `encode`)
    low = name.lower()
    if low.endswith(".gz"):
        import gzip

        return gzip.compress(data)
    if low.endswith(".zst"):
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data
