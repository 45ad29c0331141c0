"""JSONL shards (plain, .gz, .zst): one JSON object per line, one column per key (pyarrow's JSON reader)."""
from __future__ import annotations

import io
import json
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.json as pjson

from curate.errors import DataError
from curate.formats.parsed import ParsedReader


class JsonlReader(ParsedReader):
    format: ClassVar[str] = "jsonl"
    suffixes: ClassVar[tuple[str, ...]] = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".ndjson", ".ndjson.gz", ".ndjson.zst")

    @classmethod
    def parse(cls, data: bytes, rel: str) -> pa.Table:
        try:
            if not _is_utf8(data):  # (pyarrow's reader would put U+FFFD in its place without a word)
                raise pa.ArrowInvalid("not UTF-8")
            return pjson.read_json(io.BytesIO(data))
        except pa.ArrowInvalid as e:
            raise DataError([f"shard {rel}: {_bad_line(data) or e}; fix or remove the record"]) from None

    @staticmethod
    def encode(table: pa.Table) -> bytes:
        return "".join(json.dumps(row, ensure_ascii=False, default=_jsonable) + "\n"
                       for row in table.to_pylist()).encode("utf-8")


def _bad_line(data: bytes) -> str | None:
    """The first line that is not one JSON object, named (pyarrow counts rows per block, not lines)."""
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except UnicodeDecodeError as e:
            return f"line {n} is not UTF-8, as JSON text must be ({e})"
        except ValueError as e:
            return f"line {n} is not valid JSON ({e})"
        if not isinstance(value, dict):
            return f"line {n} is a JSON {type(value).__name__}, not an object"
    return None


def _is_utf8(data: bytes) -> bool:
    """Whether `data` is valid UTF-8, checked in Arrow's C++ (no Python string is built). The offsets buffer
    comes from NumPy: `pa.array` on a list asks whether pandas is installed and imports it (~0.3 s a process)."""
    offsets = pa.py_buffer(np.array([0, len(data)], np.int64))
    try:
        pa.LargeStringArray.from_buffers(1, offsets, pa.py_buffer(data)).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode("ascii")
    return str(value)
