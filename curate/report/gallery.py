"""Sample rows' content for the galleries: thumbnails and captions read from the input shards.

Only the batches holding sampled rows are read (a Parquet shard decodes only their row groups), and only
the image and text columns, through the shard format's reader. Text that is not UTF-8 is shown with
replacement characters. A shard that
is gone or changed since the run (its fingerprint differs) is not read: its rows say why instead, so
the report never shows another row's image under a row's id.
"""
from __future__ import annotations

import base64
import io
import logging
from typing import Any

import polars as pl
import pyarrow as pa

from curate.errors import CurateError
from curate.formats import ShardReader
from curate.storage import AnyPath

log = logging.getLogger(__name__)

THUMB_PX = 112           # longest side of a thumbnail
SNIPPET_CHARS = 280
IMAGE_COLUMNS = ("image",)
TEXT_COLUMNS = ("caption", "text")
BATCH_ROWS = 16          # rows decoded at a time when reading sampled rows' content


def content_columns(schema: pa.Schema, id_column: str | None,
                    prefer: str | None = None) -> tuple[str | None, str | None]:
    """(image column, text column) to show: `prefer` where it is a binary (image) or string column, else
    `image` bytes, `caption`/`text`, else the first string column."""
    binary = (pa.types.is_binary, pa.types.is_large_binary)
    string = (pa.types.is_string, pa.types.is_large_string)
    preferred = schema.field(prefer).type if prefer in schema.names else None
    images = (prefer,) if preferred is not None and any(ok(preferred) for ok in binary) else IMAGE_COLUMNS
    texts = (prefer,) if preferred is not None and any(ok(preferred) for ok in string) else TEXT_COLUMNS
    image = next((c for c in images if c in schema.names and any(ok(schema.field(c).type) for ok in binary)),
                 None)
    text = next((c for c in texts if c in schema.names), None)
    if text is None:
        text = next((f.name for f in schema if f.name != id_column
                     and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))), None)
    return image, text


def thumbnail(data: bytes | None) -> tuple[str | None, str | None]:
    """(data URI of a small WebP, problem) for image bytes; alpha kept, longest side THUMB_PX."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        return None, "no image"
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (THUMB_PX * 2, THUMB_PX * 2))  # JPEG decodes at a reduced scale
            im = im.convert("RGBA")
            im.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            im.save(buf, "WEBP", quality=70, method=4)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        return None, f"image cannot be decoded ({type(e).__name__})"
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode(), None


def fetch(samples: pl.DataFrame, summary: dict[str, Any], run_dir: AnyPath,
          prefer: str | None = None) -> list[dict[str, Any]]:
    """Each sampled row with `thumb` (data URI), `text` (snippet) and `note` (why content is missing);
    `prefer`: the column to show (e.g. the one a dedup stage compared) where it holds images or text."""
    from curate.dataset import Dataset

    rows = samples.to_dicts()
    for r in rows:
        r.update(thumb=None, text=None, note=None)
    if not rows:
        return rows
    try:
        dataset = Dataset(summary["data"], fingerprint_cache=run_dir / "state" / "fingerprints.json",
                          format=summary.get("format"))
    except CurateError as e:
        for r in rows:
            r["note"] = f"input data not readable here: {e}"
        return rows
    shards = {s.rel: s for s in dataset.shards}
    expected = summary.get("inputs", {}).get("fingerprints", {})
    by_shard: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_shard.setdefault(r["shard"], []).append(r)
    for rel, group in by_shard.items():
        shard = shards.get(rel)
        if shard is None:
            note = f"shard {rel} is no longer in {summary['data']}"
        elif expected.get(rel, {}).get("fingerprint") not in (None, dataset.fingerprint(shard)):
            note = f"shard {rel} changed since the run"
        else:
            try:
                note = None
                _fill(dataset.open(shard), group, summary.get("id_column"), prefer)
            except CurateError as e:  # a shard unreadable now: its rows say so, the rest of the report stands
                note = f"shard {rel} not readable here: {e}"
        if note:
            for r in group:
                r["note"] = note
    return rows


def _fill(shard: ShardReader, rows: list[dict[str, Any]], id_column: str | None, prefer: str | None) -> None:
    image_col, text_col = content_columns(shard.schema, id_column, prefer)
    cols = [c for c in (image_col, text_col) if c]
    if not cols:
        for r in rows:
            r["note"] = "no image or text column to show"
        return
    wanted: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        wanted.setdefault(int(r["row"]), []).append(r)
    # Small batches: a row group of large images is never decoded whole for the few rows shown
    # (the report's peak memory on image data came from here).
    for pos, batch in shard.batches(cols, rows=wanted, batch_rows=BATCH_ROWS):
        for w in (w for w in wanted if pos <= w < pos + batch.num_rows):
            for r in wanted[w]:
                _content(r, batch, w - pos, image_col, text_col)


def _content(r: dict[str, Any], batch: pa.RecordBatch, i: int, image_col: str | None, text_col: str | None) -> None:
    if image_col:
        r["thumb"], r["note"] = thumbnail(batch.column(image_col)[i].as_py())
    if text_col:
        text = shown_text(batch.column(text_col), i)
        r["text"] = text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "…"


def shown_text(column: pa.Array, i: int, null: str = "(null)") -> str:
    """Row `i` of a column as text to show: bytes that are not UTF-8 as replacement characters (such text
    is a per-row error in the manifest, and the report must still show the row), a null as `null`."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = column.view(pa.large_binary() if pa.types.is_large_string(column.type) else pa.binary())
    value = column[i].as_py()
    if value is None:
        return null
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
