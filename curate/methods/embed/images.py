"""Image loading for embedding: bytes or paths -> RGB PIL images, with a named error per bad row.

Errors (docs/methods/embed.md): `missing_file`, `path_outside_root`, `empty_bytes`, `undecodable_image`
(with Pillow's message), `image_too_large` (decompression-bomb pixel limit). 1x1, grayscale, palette,
CMYK and animated images are valid: converted to RGB (first frame of an animation).
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageFile

from curate.methods.image_files import ImageError, open_lazily, read_path

# Pillow's own default: about 89.5 M pixels (a 0.25 GB RGBA bitmap).
DEFAULT_MAX_PIXELS = 89_478_485
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never a half-grey image
# Pillow's messages may name the stream object with its memory address (`<_io.BytesIO object at 0x7f...>`):
# a row's error must not change from one run or worker to the next.
_ADDRESS = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


def decode(data: bytes | None, max_pixels: int = DEFAULT_MAX_PIXELS, background: str | None = None) -> Image.Image:
    """A fully loaded RGB image; transparent images are composited on `background` when given."""
    if not data:
        raise ImageError("empty_bytes: no image data")
    try:
        img = open_lazily(data)
        w, h = img.size
        if w * h > max_pixels:
            raise ImageError(f"image_too_large: {w}x{h} is over the {max_pixels:,}-pixel limit")
        img.seek(0)
        img.load()  # forces a full decode, so truncated files fail here
    except ImageError:
        raise
    except Image.DecompressionBombError as e:  # over twice Pillow's own limit: refused before decoding
        raise ImageError(f"image_too_large: {e}") from None
    except Exception as e:  # Pillow raises many types for bad data; each becomes this row's error
        raise ImageError(f"undecodable_image: {type(e).__name__}: {_ADDRESS.sub('the image', str(e))}") from None
    if background is not None and (img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, background)
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return img.convert("RGB")


def load_all(items: list, transform, workers: int, root: Path | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
             background: str | None = None) -> list[tuple[object | None, int | None, int | None, str | None]]:
    """(tensor, width, height, error) per item (bytes, or a path when `root` is given), decoded on threads."""

    def one(item):
        try:
            raw = read_path(item, root) if isinstance(item, str) else item
            img = decode(raw, max_pixels, background)
            return transform(img), img.width, img.height, None
        except ImageError as e:
            return None, None, None, str(e)

    if workers <= 1 or len(items) < 2:
        return [one(x) for x in items]
    with ThreadPoolExecutor(workers) as pool:  # Pillow releases the GIL while decoding
        return list(pool.map(one, items))
