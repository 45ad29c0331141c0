"""Build the demo dataset from the Debian packages ``openclipart-svg`` and ``openclipart-png``.

Every SVG file listed by ``dpkg -L openclipart-svg`` becomes one row; its PNG render (same relative
path below the ``png`` tree, ``.png`` extension) supplies the image bytes, and the RDF metadata in
the SVG's ``cc:Work`` element supplies the caption and keywords. Rows are real data only: generic
titles, duplicate images (the packages ship some files twice, as symlinks) and other natural noise
are kept on purpose, because the pipeline is meant to find them. A file that cannot be parsed is
kept as a row with a ``parse_error`` string, never dropped.

Output: ``out/part-00000.parquet`` ... (contiguous shards sorted by ``source``), then
``out/.complete`` (JSON, written last), so an interrupted build is detected and rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from curate.errors import DataError

log = logging.getLogger(__name__)

SVG_PACKAGE = "openclipart-svg"
PNG_PACKAGE = "openclipart-png"
PACKAGES = (SVG_PACKAGE, PNG_PACKAGE)
INSTALL_HINT = (
    f"install them with `sudo apt-get install {SVG_PACKAGE} {PNG_PACKAGE}` "
    "or run `make curate DATASET=demo`, which installs them"
)

NS_DC = "http://purl.org/dc/elements/1.1/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_CC = "http://web.resource.org/cc/"
_WORK = f"{{{NS_CC}}}Work"
_TITLE = f"{{{NS_DC}}}title"
_DESCRIPTION = f"{{{NS_DC}}}description"
_KEYWORDS = f"{{{NS_DC}}}subject/{{{NS_RDF}}}Bag/{{{NS_RDF}}}li"

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("image", pa.binary()),
        pa.field("caption", pa.string()),
        pa.field("keywords", pa.list_(pa.string())),
        pa.field("category", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("parse_error", pa.string()),
    ]
)
ROW_GROUP_SIZE = 256
COMPLETE = ".complete"
_SHARD_RE = re.compile(r"^\.?part-\d{5}\.parquet(\.tmp)?$")


# --------------------------------------------------------------------------- dpkg lookups


def _dpkg_list(package: str) -> list[str] | None:
    """The paths ``dpkg -L package`` lists, or None when the package (or dpkg itself) is absent."""
    try:
        proc = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False)
    except FileNotFoundError:  # not a Debian-based system
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.splitlines()


def package_files(package: str, suffix: str, listed: list[str] | None = None) -> list[Path]:
    """Files of an installed package that end in ``suffix``; DataError with the install hint if absent."""
    if listed is None:
        listed = _dpkg_list(package)
    if listed is None:
        raise DataError([f"Debian package {package!r} is not installed (`dpkg -L {package}` failed); {INSTALL_HINT}"])
    files = sorted(Path(p) for p in listed if p.endswith(suffix) and os.path.isfile(p))
    if not files:
        raise DataError(
            [f"Debian package {package!r} lists no {suffix} files that exist on disk; reinstall it: {INSTALL_HINT}"]
        )
    return files


def installed_files() -> tuple[list[Path], list[Path]]:
    """(SVG files, PNG files) of the two packages; one DataError naming every package that is missing."""
    listed = {p: _dpkg_list(p) for p in PACKAGES}
    missing = [p for p, files in listed.items() if files is None]
    if missing:
        raise DataError(
            [f"Debian package {p!r} is not installed (`dpkg -L {p}` failed)" for p in missing] + [INSTALL_HINT]
        )
    return (
        package_files(SVG_PACKAGE, ".svg", listed[SVG_PACKAGE]),
        package_files(PNG_PACKAGE, ".png", listed[PNG_PACKAGE]),
    )


def package_version(package: str) -> str | None:
    """``dpkg-query -W -f='${Version}' package``, or None when it is not installed."""
    try:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def _root_named(files: Sequence[Path], name: str) -> Path:
    """The nearest ancestor folder called ``name`` of all ``files`` (e.g. ``.../openclipart/svg``)."""
    common = Path(os.path.commonpath([str(f.parent) for f in files]))
    for folder in (common, *common.parents):
        if folder.name == name:
            return folder
    raise DataError(
        [f"cannot tell the {name} root folder: the files' common folder {common} has no ancestor named {name!r}; "
         f"pass {name}_root= explicitly"]
    )


# --------------------------------------------------------------------------- parsing


def _collapse(text: str | None) -> str:
    return " ".join(text.split()) if text else ""


def make_caption(title: str | None, description: str | None) -> str | None:
    """Title (whitespace collapsed); ``"{title}. {description}"`` when a different description exists."""
    title, description = _collapse(title), _collapse(description)
    if title and description and description != title:
        return f"{title}. {description}"
    return title or description or None


def parse_svg_metadata(path: str | os.PathLike) -> tuple[str | None, list[str]]:
    """Caption and keywords from the first ``cc:Work`` element of an SVG file.

    Raises ``ET.ParseError`` / ``OSError`` for unreadable files. The whole document is parsed (not
    just the metadata at its top) so that a truncated or corrupt file is reported, not half-read.
    """
    root = ET.parse(path).getroot()
    work = next(root.iter(_WORK), None)
    if work is None:
        return None, []
    title = work.findtext(_TITLE)
    description = work.findtext(_DESCRIPTION)
    keywords = [kw for li in work.iterfind(_KEYWORDS) if (kw := _collapse(li.text))]
    return make_caption(title, description), keywords


def _row(svg: Path, rel: PurePosixPath, png_root: Path) -> dict:
    source = rel.as_posix()
    caption: str | None = None
    keywords: list[str] | None = None
    error: str | None = None
    try:
        caption, keywords = parse_svg_metadata(svg)
    except (ET.ParseError, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    png = png_root / rel.with_suffix(".png")
    image: bytes | None = None
    try:
        image = png.read_bytes()
    except FileNotFoundError:
        if error is None:
            error = f"missing_png: {png}"
    except OSError as exc:
        if error is None:
            error = f"unreadable_png: {png}: {exc}"
    return {
        "id": source[: -len(".svg")] if source.endswith(".svg") else source,
        "image": image,
        "caption": caption,
        "keywords": keywords,
        "category": rel.parts[0],
        "source": source,
        "parse_error": error,
    }


# --------------------------------------------------------------------------- build


def _shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges whose sizes differ by at most one."""
    base, extra = divmod(n, shards)
    bounds, start = [], 0
    for i in range(shards):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def _clear_previous(out: Path) -> None:
    """Drop the completion marker first, then shards and temp files of an earlier (maybe interrupted) build."""
    (out / COMPLETE).unlink(missing_ok=True)
    (out / f"{COMPLETE}.tmp").unlink(missing_ok=True)
    for entry in out.iterdir():
        if entry.is_file() and _SHARD_RE.match(entry.name):
            entry.unlink()


def build_demo(
    out: str | Path,
    shards: int = 16,
    svg_files: list[Path] | None = None,
    svg_root: Path | None = None,
    png_root: Path | None = None,
    progress: bool = True,
) -> dict:
    """Write the openclipart demo dataset as ``shards`` Parquet files under ``out``; return the ``.complete`` info.

    ``svg_files`` None means every SVG of the installed ``openclipart-svg`` package (``dpkg -L``);
    ``svg_root`` defaults to the files' nearest ancestor folder named ``svg``, ``png_root`` to the
    ``png`` folder of ``openclipart-png`` (or the ``png`` sibling of ``svg_root`` when files are given).
    """
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    started = time.monotonic()
    out = Path(out)
    svg_files, svg_root, png_root = _sources(svg_files, svg_root, png_root)
    items = _by_source(svg_files, svg_root)
    n = len(items)
    if shards > n:
        log.warning("only %d rows: writing %d shards instead of %d", n, n, shards)
        shards = n

    out.mkdir(parents=True, exist_ok=True)
    _clear_previous(out)
    log.info("building demo dataset: %d SVG files from %s (PNGs from %s) -> %s, %d shards",
             n, svg_root, png_root, out, shards)
    names, noise = _write_shards(out, items, shards, png_root, progress)
    info = {
        "dataset": "demo",
        "rows": n,
        "shards": shards,
        "files": names,
        **noise,
        "packages": {p: package_version(p) for p in PACKAGES},
        "svg_root": str(svg_root),
        "png_root": str(png_root),
        "seconds": round(time.monotonic() - started, 2),
    }
    _write_complete(out, info)
    log.info("demo dataset done: %d rows in %d shards (%d null captions, %d parse errors, %d missing PNGs) in %.1fs",
             n, shards, noise["null_captions"], noise["parse_errors"], noise["missing_png"], info["seconds"])
    return info


def _sources(
    svg_files: list[Path] | None, svg_root: Path | None, png_root: Path | None
) -> tuple[list[Path], Path, Path]:
    """The SVG files, SVG root and PNG root, with `build_demo`'s defaults filled in."""
    if svg_files is None:
        svg_files, png_files = installed_files()
        if png_root is None:
            png_root = _root_named(png_files, "png")
    svg_files = [Path(f) for f in svg_files]
    if not svg_files:
        raise DataError(["no SVG files to build the demo dataset from"])
    if svg_root is None:
        svg_root = _root_named(svg_files, "svg")
    svg_root = Path(svg_root)
    if png_root is None:
        png_root = svg_root.parent / "png"
    png_root = Path(png_root)
    if not png_root.is_dir():
        log.warning("PNG folder %s does not exist: every row will have image=null (missing_png)", png_root)
    return svg_files, svg_root, png_root


def _by_source(svg_files: list[Path], svg_root: Path) -> list[tuple[Path, PurePosixPath]]:
    """(file, path below ``svg_root``), one per relative path, sorted by it for deterministic shards.

    DataError naming every file that is not below a category folder of ``svg_root``."""
    by_source: dict[str, tuple[Path, PurePosixPath]] = {}
    outside = []
    for f in svg_files:
        try:
            rel = PurePosixPath(f.relative_to(svg_root).as_posix())
        except ValueError:
            outside.append(str(f))
            continue
        if len(rel.parts) < 2:
            outside.append(f"{f} (directly in {svg_root}, no category folder)")
            continue
        by_source.setdefault(rel.as_posix(), (f, rel))
    if outside:
        raise DataError([f"SVG file not below a category folder of {svg_root}: {p}" for p in outside])
    return [by_source[k] for k in sorted(by_source)]


def _write_shards(
    out: Path, items: list[tuple[Path, PurePosixPath]], shards: int, png_root: Path, progress: bool
) -> tuple[list[str], dict[str, int]]:
    """Write ``items`` as ``shards`` contiguous shards; their file names and the rows' noise counts."""
    names: list[str] = []
    noise = {"null_captions": 0, "parse_errors": 0, "missing_png": 0}
    with tqdm(total=len(items), unit="file", desc="demo data", disable=None if progress else True) as bar:
        for i, (start, stop) in enumerate(_shard_bounds(len(items), shards)):
            rows = []
            for svg, rel in items[start:stop]:
                rows.append(_row(svg, rel, png_root))
                bar.update(1)
            noise["null_captions"] += sum(r["caption"] is None for r in rows)
            noise["parse_errors"] += sum(r["parse_error"] is not None for r in rows)
            noise["missing_png"] += sum(r["image"] is None for r in rows)
            table = pa.Table.from_pylist(rows, schema=SCHEMA)
            del rows  # the Python rows are the bulk of a shard's memory: free them before writing
            names.append(_write_shard(out, i, table))
            del table
    return names, noise


def _write_shard(out: Path, i: int, table: pa.Table) -> str:
    """Shard ``i`` written to a temp file, then renamed into place; its file name."""
    name = f"part-{i:05d}.parquet"
    tmp = out / f".{name}.tmp"
    pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_SIZE)
    os.replace(tmp, out / name)
    return name


def _write_complete(out: Path, info: dict) -> None:
    """The completion marker, written last (temp file, then rename)."""
    tmp = out / f"{COMPLETE}.tmp"
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, out / COMPLETE)
