"""Shard formats besides Parquet: JSONL (plain, .gz, .zst), CSV and WebDataset .tar.

Each file is one shard. A non-Parquet shard is parsed whole into an Arrow table (pyarrow's JSON and CSV
readers, the standard library's tarfile) and served through `TableFile`, which has the ParquetFile methods
the engine and the report use; a small per-process cache keeps a worker from parsing a shard once per
stage. A malformed record stops the plan with the file and line (or tar member) named: a skipped line
would be a row silently lost.

WebDataset (img2dataset's output): members `<key>.<ext>` grouped by key into one row: `key` (the row id),
`image` (bytes of jpg/jpeg/png/webp), `caption` (txt), `json` (the metadata's text), and any other
extension as a binary column of its name.
"""
from __future__ import annotations

import io
import json
import tarfile
from collections import OrderedDict
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.fs as pafs
import pyarrow.json as pjson

from curate.errors import DataError

SUFFIXES = {  # longest first within a format; matched against the lower-cased file name
    "parquet": (".parquet",),
    "jsonl": (".jsonl", ".jsonl.gz", ".jsonl.zst", ".ndjson", ".ndjson.gz", ".ndjson.zst"),
    "csv": (".csv", ".csv.gz", ".csv.zst"),
    "webdataset": (".tar",),
}
FORMATS = tuple(SUFFIXES)
IMAGE_EXTENSIONS = {"jpg", "jpeg", "png", "webp"}
WEBDATASET_COLUMNS = {"txt": "caption", "json": "json"}
_CACHE_SHARDS = 2


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


class _Meta:
    def __init__(self, rows: int):
        self.num_rows, self.num_row_groups = rows, 1

    def row_group(self, i: int) -> _Meta:
        return self


class TableFile:
    """A parsed shard with the ParquetFile methods curate uses (one row group: the whole table)."""

    def __init__(self, table: pa.Table):
        self.table, self.schema_arrow, self.metadata = table, table.schema, _Meta(table.num_rows)

    def read(self, columns: list[str] | None = None) -> pa.Table:
        return self.table if columns is None else self.table.select(columns)

    def read_row_groups(self, groups: list[int], columns: list[str] | None = None) -> pa.Table:
        return self.read(columns)

    def read_row_group(self, i: int, columns: list[str] | None = None) -> pa.Table:
        return self.read(columns)


_cache: OrderedDict[tuple, TableFile] = OrderedDict()


def open_table(fs: pafs.FileSystem, path: str, rel: str, fmt: str, stamp: tuple) -> TableFile:
    """The parsed shard (cached by path, size and mtime); raises DataError naming file and line."""
    key = (path, fmt, *stamp)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    with fs.open_input_stream(path, compression="detect" if fmt != "webdataset" else None) as f:
        data = f.read()
    table = {"jsonl": _jsonl, "csv": _csv, "webdataset": _webdataset}[fmt](data, rel)
    _cache[key] = TableFile(table)
    while len(_cache) > _CACHE_SHARDS:
        _cache.popitem(last=False)
    return _cache[key]


def _jsonl(data: bytes, rel: str) -> pa.Table:
    try:
        return pjson.read_json(io.BytesIO(data))
    except pa.ArrowInvalid as e:
        raise DataError([f"shard {rel}: {_bad_json_line(data) or e}; fix or remove the record"]) from None


def _bad_json_line(data: bytes) -> str | None:
    """The first line that is not one JSON object, named (pyarrow counts rows per block, not lines)."""
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as e:
            return f"line {n} is not valid JSON ({e})"
        if not isinstance(value, dict):
            return f"line {n} is a JSON {type(value).__name__}, not an object"
    return None


def _csv(data: bytes, rel: str) -> pa.Table:
    ragged: list[str] = []

    def note(row: Any) -> str:
        ragged.append(f"line {row.number} has {row.actual_columns} fields, the header has {row.expected_columns}")
        return "skip"

    try:
        table = pcsv.read_csv(io.BytesIO(data), read_options=pcsv.ReadOptions(use_threads=False),
                              parse_options=pcsv.ParseOptions(invalid_row_handler=note, newlines_in_values=True),
                              convert_options=pcsv.ConvertOptions(strings_can_be_null=True))  # an empty cell: missing
    except pa.ArrowInvalid as e:
        raise DataError([f"shard {rel}: not readable as CSV ({e})"]) from None
    if ragged:
        raise DataError([f"shard {rel}: {r}; fix or remove the row" for r in ragged[:10]]
                        + ([f"shard {rel}: ... and {len(ragged) - 10} more ragged row(s)"] if len(ragged) > 10 else []))
    return table


def _webdataset(data: bytes, rel: str) -> pa.Table:
    samples: OrderedDict[str, dict[str, Any]] = OrderedDict()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                folder, _, name = member.name.rpartition("/")
                stem, _, ext = name.partition(".")
                if not stem or not ext:
                    continue  # no extension, or a hidden file: not a sample member (WebDataset skips these too)
                key, ext = (f"{folder}/{stem}" if folder else stem), ext.lower()
                column = "image" if ext in IMAGE_EXTENSIONS else WEBDATASET_COLUMNS.get(ext, ext)
                sample = samples.setdefault(key, {"key": key})
                if column in sample:
                    raise DataError([f"shard {rel}: sample {key!r} has two {column!r} members "
                                     f"({member.name}); keep one"])
                f = tar.extractfile(member)
                if f is None:
                    raise DataError([f"shard {rel}: member {member.name} cannot be read"])
                sample[column] = f.read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError([f"shard {rel}: not a readable tar file ({e})"]) from None
    columns = sorted({c for s in samples.values() for c in s} - {"key"})
    table = {"key": pa.array(list(samples), pa.string())}
    for c in columns:
        values = [s.get(c) for s in samples.values()]
        if c in ("caption", "json", "cls"):
            table[c] = pa.array([_text(v, rel, k, c) for v, k in zip(values, samples)], pa.string())
        else:
            table[c] = pa.array(values, pa.binary())
    return pa.table(table)


def _text(value: bytes | None, rel: str, key: str, column: str) -> str | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError([f"shard {rel}: sample {key!r}: its {column} member is not UTF-8 ({e})"]) from None


# --- writing the input's own format back (curate export --materialize) ---------------------------
def encode(table: pa.Table, fmt: str, name: str) -> bytes:
    """`table` as a file of format `fmt`; `name`'s suffix picks the compression (.gz, .zst)."""
    if fmt == "csv":
        sink = pa.BufferOutputStream()
        pcsv.write_csv(table, sink)
        data = sink.getvalue().to_pybytes()
    elif fmt == "jsonl":
        data = "".join(json.dumps(row, ensure_ascii=False, default=_jsonable) + "\n"
                       for row in table.to_pylist()).encode("utf-8")
    else:
        data = _tar(table)
    low = name.lower()
    if low.endswith(".gz"):
        import gzip

        return gzip.compress(data)
    if low.endswith(".zst"):
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode("ascii")
    return str(value)


_MAGIC = ((b"\x89PNG", "png"), (b"\xff\xd8\xff", "jpg"), (b"RIFF", "webp"))


def _tar(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    back = {v: k for k, v in WEBDATASET_COLUMNS.items()}
    with tarfile.open(fileobj=sink, mode="w") as tar:
        for row in table.to_pylist():
            for column, value in row.items():
                if column == "key" or value is None:
                    continue
                if column == "image":
                    ext = next((e for magic, e in _MAGIC if value.startswith(magic)), "img")
                else:
                    ext = back.get(column, column)
                blob = value.encode("utf-8") if isinstance(value, str) else value
                info = tarfile.TarInfo(f"{row['key']}.{ext}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    return sink.getvalue()
