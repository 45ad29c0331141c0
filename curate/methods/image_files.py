"""What the image methods share (embed, image_info): a row's image problem, and reading an image by path.

A method package never imports another, so this lives beside them, like clustering.py and models.py.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from PIL import Image


class ImageError(Exception):
    """A per-row problem: `str(e)` is `<kind>: <detail>`."""


def read_path(path: str, root: Path | None) -> bytes:
    """The bytes of `path`, relative to `root`; refuses paths that leave the root."""
    if root is None:
        raise ImageError("path_outside_root: image paths need an image_root")
    if "\x00" in path:
        raise ImageError(f"bad_path: {path!r} contains a NUL byte")
    if os.path.isabs(path):
        raise ImageError(f"path_outside_root: {path!r} is absolute")
    full = (root / path).resolve()
    if not full.is_relative_to(root.resolve()):
        raise ImageError(f"path_outside_root: {path!r} resolves outside {root}")
    try:
        return full.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"missing_file: {path}") from None
    except OSError as e:
        raise ImageError(f"missing_file: {path} ({e.strerror})") from None


def open_lazily(data: bytes) -> Image.Image:
    """Pillow's lazy open (header only), without its DecompressionBombWarning: the caller checks the pixel
    limit and makes it the row's error, not a warning on stderr. Pillow's own errors pass through."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))


def difference_hash(data: bytes | None) -> tuple[int, tuple[int, int]] | None:
    """(64-bit difference hash, (width, height)) of image bytes, or None when they do not decode: the hash
    compares each pixel of a 9x8 grey thumbnail with its right neighbour, so two renderings of one picture are
    a few bits apart and different pictures about 32 (for the report: how far a group's images are apart)."""
    if not data:
        return None
    try:
        with open_lazily(data) as im:
            size = im.size
            im.draft("L", (64, 64))  # JPEG decodes at a reduced scale
            grey = im.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
            px = list(grey.getdata())
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    bits = 0
    for y in range(8):
        for x in range(8):
            bits = (bits << 1) | (px[y * 9 + x] > px[y * 9 + x + 1])
    return bits, size
