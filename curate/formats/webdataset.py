"""WebDataset shards (img2dataset's output): tar members `<key>.<ext>` grouped by key into one row.

Columns: `key` (the row id), `image` (bytes of jpg/jpeg/png/webp), `caption` (txt), `json` (the metadata's
text), and any other extension as a binary column of its name.
"""
from __future__ import annotations

import io
import tarfile
from collections import OrderedDict
from typing import Any, ClassVar

import pyarrow as pa

from curate.errors import DataError
from curate.formats.parsed import ParsedReader

IMAGE_EXTENSIONS = {"jpg", "jpeg", "png", "webp"}
COLUMNS = {"txt": "caption", "json": "json"}
TEXT_COLUMNS = ("caption", "json", "cls")
_MAGIC = ((b"\x89PNG", "png"), (b"\xff\xd8\xff", "jpg"), (b"RIFF", "webp"))


class WebDatasetReader(ParsedReader):
    format: ClassVar[str] = "webdataset"
    suffixes: ClassVar[tuple[str, ...]] = (".tar",)
    compressed: ClassVar[bool] = False

    @classmethod
    def parse(cls, data: bytes, rel: str) -> pa.Table:
        samples = _samples(data, rel)
        columns = sorted({c for s in samples.values() for c in s} - {"key"})
        # A member name that is not UTF-8 (tarfile keeps its bytes as surrogates) stays as those bytes: the
        # plan then refuses it as an id, naming the row.
        keys = [k.encode("utf-8", "surrogateescape") for k in samples]
        table = {"key": pa.array(keys, pa.binary()).view(pa.string())}
        for c in columns:
            values = [s.get(c) for s in samples.values()]
            if c in TEXT_COLUMNS:  # not checked here: the engine makes text that is not UTF-8 a per-row error
                table[c] = pa.array(values, pa.binary()).view(pa.string())
            else:
                table[c] = pa.array(values, pa.binary())
        return pa.table(table)

    @staticmethod
    def encode(table: pa.Table) -> bytes:
        sink = io.BytesIO()
        back = {v: k for k, v in COLUMNS.items()}
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


def _samples(data: bytes, rel: str) -> OrderedDict[str, dict[str, Any]]:
    """Each sample's members by column, in the order the tar holds them."""
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
                column = "image" if ext in IMAGE_EXTENSIONS else COLUMNS.get(ext, ext)
                sample = samples.setdefault(key, {"key": key})
                if column in sample:
                    raise DataError([f"shard {rel}: sample {key!r} has two {column!r} members ({member.name}); "
                                     f"keep one"])
                f = tar.extractfile(member)
                if f is None:
                    raise DataError([f"shard {rel}: member {member.name} cannot be read"])
                sample[column] = f.read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError([f"shard {rel}: not a readable tar file ({e})"]) from None
    return samples
