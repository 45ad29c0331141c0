"""What one encoded image is, read from its header: format, size, mode, frames, EXIF orientation.

A row's problem is an `ImageError` whose text is `<kind>: <detail>`; each kind is one way an image can be
bad, so the manifest tells them apart:
- `null_image`: the column is null; `empty_bytes`: zero bytes;
- `not_an_image`: no decoder recognises the bytes (Pillow's UnidentifiedImageError);
- `truncated_image`: the file ends early: a PNG with no IEND chunk or a JPEG with no EOI marker after its
  scan data (found without decoding), or any format whose pixels run out when `verify` decodes them;
- `corrupt_image`: a PNG, JPEG or GIF signature whose header does not read, or a header that reads but
  pixels that do not decode (found with `verify`);
- `image_too_large`: more pixels than `max_pixels` (a decompression bomb), refused before decoding;
- with `image_root`: `missing_file`, `path_outside_root`, `bad_path`.
"""
from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

from curate.methods.image_files import ImageError, open_lazily

# Pillow's own default: about 89.5 M pixels (a 0.25 GB RGBA bitmap); its error threshold is twice this.
DEFAULT_MAX_PIXELS = 89_478_485
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never a half-grey image
_ORIENTATION = 0x0112  # the EXIF tag
_TRANSPOSED = frozenset({5, 6, 7, 8})  # orientations that turn the image a quarter: width and height swap
# The marker each format ends with (PNG's IEND chunk, JPEG's EOI), searched for after the pixel data starts.
_END_MARKERS = {"PNG": b"IEND", "JPEG": b"\xff\xd9"}
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"))


@dataclass(frozen=True)
class Info:
    """One image as displayed: width and height after EXIF orientation (`orientation` 1 to 8, 1 when absent)."""

    format: str
    width: int
    height: int
    mode: str
    frames: int
    orientation: int
    bytes: int

    @property
    def aspect_ratio(self) -> float:
        """The long side over the short side (>= 1; DataComp's definition)."""
        return max(self.width, self.height) / min(self.width, self.height)


def probe(data: bytes | None, verify: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS) -> Info:
    """The image's `Info` from its header (and, with `verify`, a full decode of every frame)."""
    if data is None:
        raise ImageError("null_image: no value")
    if not data:
        raise ImageError("empty_bytes: no image data")
    try:
        img = open_lazily(data)
    except UnidentifiedImageError:
        known = next((fmt for magic, fmt in _SIGNATURES if data.startswith(magic)), None)
        if known:  # Pillow tried the format's reader and it failed: a damaged image, not a stranger
            raise ImageError(f"corrupt_image: starts like a {known} but its header does not read (cut short or "
                             f"damaged; {len(data)} bytes)") from None
        raise ImageError(f"not_an_image: no decoder recognises the {len(data)} bytes (starting {data[:8]!r})") from None
    except Image.DecompressionBombError as e:  # over twice Pillow's own limit: refused while reading the header
        raise ImageError(f"image_too_large: {e}") from None
    except Exception as e:  # a recognised header that breaks off or contradicts itself
        raise ImageError(_kind_of(e, "header")) from None
    with img:
        # where the header reading stopped: the first scan (JPEG) or IDAT chunk (PNG)
        pixels_at = img.fp.tell() if img.fp is not None else 0
        w, h = img.size
        if w * h > max_pixels:
            raise ImageError(f"image_too_large: {w}x{h} is over the {max_pixels:,}-pixel limit")
        if w < 1 or h < 1:
            raise ImageError(f"corrupt_image: the header gives a {w}x{h} image")
        try:
            frames = int(getattr(img, "n_frames", 1))
            _check_end(img, data, pixels_at)
            if verify:
                _decode_all(img, frames)
            orientation = _orientation(img)
        except ImageError:
            raise
        except Exception as e:
            raise ImageError(_kind_of(e, "pixels")) from None
        if orientation in _TRANSPOSED:
            w, h = h, w
        return Info(str(img.format), w, h, img.mode, frames, orientation, len(data))


def _orientation(img: Image.Image) -> int:
    if img.format == "PNG" and "exif" not in img.info:
        # Pillow's PNG getexif decodes the whole image to look for an eXIf chunk after the pixel data (which
        # PNG 3 no longer allows); without `verify` only one before it counts.
        return 1
    value = img.getexif().get(_ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1  # out-of-range tags are ignored, as viewers do


def _decode_all(img: Image.Image, frames: int) -> None:
    for frame in range(frames):
        img.seek(frame)
        img.load()


def _check_end(img: Image.Image, data: bytes, pixels_at: int) -> None:
    """A truncation test without decoding: the format's end marker lies after the start of the pixel data
    (a JPEG's EXIF thumbnail has its own end marker, before the main scan)."""
    marker = _END_MARKERS.get(img.format or "")
    if marker is not None and data.rfind(marker, pixels_at) < 0:
        raise ImageError(f"truncated_image: {img.format} data ends after {len(data)} bytes with no end marker")


def _kind_of(e: Exception, where: str) -> str:
    text = f"{type(e).__name__}: {e}"
    # Pillow says "image file is truncated" when the data runs out; zlib's "broken data stream" is corruption.
    if "truncated" in str(e).lower() or isinstance(e, EOFError):
        return f"truncated_image: {text}"
    return f"corrupt_image: bad {where}: {text}"
