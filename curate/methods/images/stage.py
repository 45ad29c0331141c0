"""`image_info`: per row, whether the image is readable and what it is (format, displayed size, aspect ratio,
mode, frames, EXIF orientation, byte size), from its header; `verify: true` also decodes every frame.

Header reads are Pillow's lazy `Image.open`: the size, mode and format come from the first bytes, and the
pixels are never decoded, so a 50 MP JPEG costs what a thumbnail does. A bad image is that row's error,
named by kind (probe.py); the row's other columns are then null.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import PIL
import pyarrow as pa
from pydantic import Field

from curate.methods.hints import Cpus, StageName
from curate.methods.image_files import ImageError, read_path
from curate.methods.images.presentation import ImageInfoPresenter
from curate.methods.images.probe import DEFAULT_MAX_PIXELS, Info, probe
from curate.stage import Resources, Stage

_FIELDS: dict[str, pa.DataType] = {
    "format": pa.string(), "width": pa.int32(), "height": pa.int32(), "aspect_ratio": pa.float64(),
    "mode": pa.string(), "frames": pa.int32(), "animated": pa.bool_(), "orientation": pa.int8(),
    "bytes": pa.int64(),
}


class ImageInfo(Stage):
    """Whether each image decodes, and its format, displayed width and height, aspect ratio, mode and frames."""

    type = "image_info"
    version = "1"
    presenter = ImageInfoPresenter()
    unkeyed = frozenset({"image_root", "workers", "cpus"})

    def __init__(self,
                 image_column: Annotated[str, Field(min_length=1, description="the column of encoded image bytes (or "
                                                                             "of paths under image_root)")] = "image",
                 verify: Annotated[bool, Field(description="decode every frame (finds damage past the header; "
                                                           "much slower)")] = False,
                 max_pixels: Annotated[int, Field(ge=1, description="larger images are errors (image_too_large): "
                                                                    "decompression bombs")] = DEFAULT_MAX_PIXELS,
                 image_root: Annotated[str | None, Field(description="image paths in the column are read under this "
                                                                     "folder (default: the column holds bytes)")]
                 = None,
                 workers: Annotated[int | None, Field(ge=1, description="threads reading images (default: the "
                                                                        "worker's CPUs; Pillow decodes outside "
                                                                        "the GIL)")] = None,
                 cpus: Cpus = 1.0, name: StageName = None):
        super().__init__(name)
        self.image_column, self.verify, self.max_pixels = image_column, verify, max_pixels
        self.image_root, self.workers, self.cpus = image_root, workers, cpus
        self.resources = Resources(cpus=cpus)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.image_column,)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        return {**_FIELDS, "error": pa.string()}

    def depends_on(self) -> dict[str, Any]:
        return {"pillow": PIL.__version__}  # which formats decode, and how, is Pillow's

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        if pa.types.is_null(type):
            return None  # a column with no value in this shard: every row is `null_image`
        if self.image_root is None and not (pa.types.is_binary(type) or pa.types.is_large_binary(type)):
            return f"is {type}; needs encoded image bytes (binary), or give image_root for a column of paths"
        if self.image_root is not None and not (pa.types.is_string(type) or pa.types.is_large_string(type)):
            return f"is {type}; with image_root it needs paths (strings)"
        return None

    def score(self, batch: pa.Table) -> pa.Table:
        values = batch.column(self.image_column).to_pylist()
        workers = self.workers or max(1, int(self.cpus))
        if workers > 1 and len(values) > 1:
            with ThreadPoolExecutor(workers) as pool:
                results = list(pool.map(self._one, values))
        else:
            results = [self._one(v) for v in values]
        return _table(results)

    def _one(self, value: bytes | str | None) -> Info | str:
        try:
            if self.image_root is not None and value is not None:
                value = read_path(value, Path(self.image_root))
            return probe(value, self.verify, self.max_pixels)
        except ImageError as e:
            return str(e)


def _table(results: list[Info | str]) -> pa.Table:
    """The stage's columns: one row per result; nulls and the error text where the image was bad."""
    rows = [_row(r) if isinstance(r, Info) else dict.fromkeys(_FIELDS) for r in results]
    out = {k: pa.array([row[k] for row in rows], t) for k, t in _FIELDS.items()}
    out["error"] = pa.array([r if isinstance(r, str) else None for r in results], pa.string())
    return pa.table(out)


def _row(info: Info) -> dict[str, Any]:
    return {"format": info.format, "width": info.width, "height": info.height, "aspect_ratio": info.aspect_ratio,
            "mode": info.mode, "frames": info.frames, "animated": info.frames > 1, "orientation": info.orientation,
            "bytes": info.bytes}
