"""The `image_size` policy: keep images whose shorter side and aspect ratio are within bounds, in the formats
listed. Defaults are DataComp's "basic filtering" (Gadre et al. 2023; mlfoundations/datacomp
baselines/apply_filter.py, `load_uids_with_basic_filter_helper`): shorter side >= 200 pixels and long side over
short side <= 3. A row is dropped by the first check it fails, named with its value:
`image_size: min side 32 < 200`, `image_size: aspect ratio 4.5 > 3`, `image_size: format GIF not in [JPEG, PNG]`.
"""
from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pyarrow as pa
from PIL import Image
from pydantic import Field

from curate.errors import ConfigError
from curate.methods.hints import PolicyName
from curate.policy import Policy, Rows, scatter

_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}


def _known_formats() -> set[str]:
    Image.init()  # registers every plugin, so the list is complete
    return set(Image.registered_extensions().values())


class ImageSize(Policy):
    """Keep images whose shorter side is >= `min_side`, aspect ratio <= `max_aspect_ratio`, format in `formats`.

    Each check is off when None; the defaults are DataComp's basic filter."""

    type = "image_size"

    def __init__(self,
                 min_side: Annotated[int | None, Field(ge=1, description="smallest allowed shorter side, in "
                                                                         "displayed pixels (None: off)")] = 200,
                 max_aspect_ratio: Annotated[float | None, Field(ge=1, description="largest allowed long side over "
                                                                                   "short side (None: off)")] = 3.0,
                 formats: Annotated[list[str] | None, Field(min_length=1, description="formats kept, as Pillow "
                                                                                      "names them (JPEG, PNG, "
                                                                                      "WEBP, GIF; None: any)")]
                 = None,
                 column: Annotated[str, Field(description="the image_info stage's `width` column (its height, "
                                                          "aspect_ratio and format are read beside it)")]
                 = "image_info.width",
                 name: PolicyName = None):
        super().__init__(column, name)
        if not column.endswith(".width"):
            raise ConfigError(f"policy image_size: column {column!r} must be an image_info stage's width column, "
                              "like 'image_info.width'")
        self.min_side, self.max_aspect_ratio, self.formats = min_side, max_aspect_ratio, formats
        self._formats = None if formats is None else sorted({_ALIASES.get(f.upper(), f.upper()) for f in formats})
        unknown = sorted(set(self._formats or ()) - _known_formats())
        if unknown:
            raise ConfigError(f"policy image_size: formats {unknown} are not formats Pillow reads; known: "
                              f"{', '.join(sorted(_known_formats()))}")

    def col(self, output: str) -> str:
        return f"{self.stage}.{output}"

    @property
    def columns(self) -> list[str]:
        return [self.column, self.col("height"), self.col("aspect_ratio"), self.col("format")]

    def decide_rows(self, rows: Rows) -> tuple[np.ndarray, pa.Array, dict[str, np.ndarray]]:
        side = np.minimum(rows.values, rows.cols[self.col("height")])
        ratio = np.asarray(rows.cols[self.col("aspect_ratio")], np.float64)
        fmt = np.asarray(rows.cols[self.col("format")], dtype=object).astype(str)
        checks = []  # (fails, reason of one failing row), in the order they name a row
        if self.min_side is not None:
            checks.append((side < self.min_side, lambda i: f"min side {side[i]:g} < {self.min_side}"))
        if self.max_aspect_ratio is not None:
            checks.append((ratio > self.max_aspect_ratio,
                           lambda i: f"aspect ratio {ratio[i]:.4g} > {self.max_aspect_ratio:g}"))
        if self._formats is not None:
            checks.append((~np.isin(fmt, self._formats),
                           lambda i: f"format {fmt[i]} not in [{', '.join(self._formats)}]"))
        keep = np.ones(len(side), bool)
        for fails, _ in checks:
            keep &= ~fails
        gone = np.flatnonzero(~keep)
        if not len(gone):
            return keep, pa.nulls(len(keep), pa.string()), {}
        text = [f"{self.type}: " + next(why(i) for fails, why in checks if fails[i]) for i in gone]
        return keep, scatter(pa.array(text, pa.string()), gone, len(keep)), {}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "formats": self._formats}
