"""The openclipart demo dataset builder, on real files from the installed Debian packages."""

from __future__ import annotations

import html
import json
import re
import shutil
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.data import demo
from curate.errors import DataError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXPECTED_SCHEMA = [
    ("id", pa.string()),
    ("image", pa.binary()),
    ("caption", pa.string()),
    ("keywords", pa.list_(pa.string())),
    ("category", pa.string()),
    ("source", pa.string()),
    ("parse_error", pa.string()),
]


@pytest.fixture(scope="module")
def installed_svgs() -> list[Path]:
    """All SVG files of openclipart-svg, sorted (`make test` installs the packages)."""
    if demo._dpkg_list(demo.SVG_PACKAGE) is None or demo._dpkg_list(demo.PNG_PACKAGE) is None:
        pytest.fail("openclipart-svg / openclipart-png not installed: run `make test` (it installs them)")
    return demo.package_files(demo.SVG_PACKAGE, ".svg")


@pytest.fixture(scope="module")
def svg_root(installed_svgs) -> Path:
    return demo._root_named(installed_svgs, "svg")


@pytest.fixture(scope="module")
def subset(installed_svgs, svg_root) -> list[Path]:
    """The first 20 files (sorted) of each of the first three categories: 60 real files."""
    by_category: dict[str, list[Path]] = defaultdict(list)
    for f in installed_svgs:
        by_category[f.relative_to(svg_root).parts[0]].append(f)
    picked = [f for cat in sorted(by_category)[:3] for f in by_category[cat][:20]]
    assert len({f.relative_to(svg_root).parts[0] for f in picked}) >= 2
    return picked


_WORK = re.compile(r"<cc:Work\b.*?</cc:Work>", re.S)
_AGENT = re.compile(r"<cc:Agent\b.*?</cc:Agent>", re.S)  # creator/publisher names are dc:title too


def _regex_field(block: str, tag: str) -> str:
    m = re.search(rf"<dc:{tag}>([^<]*)</dc:{tag}>", block)
    return " ".join(html.unescape(m.group(1)).split()) if m else ""


def _expected_caption(svg: Path) -> str | None:
    """Independent of ElementTree: read the title/description from the file text with regexes."""
    text = svg.read_text(encoding="utf-8", errors="replace")
    m = _WORK.search(text)
    block = _AGENT.sub("", m.group(0)) if m else ""
    title, description = _regex_field(block, "title"), _regex_field(block, "description")
    if title and description and description != title:
        return f"{title}. {description}"
    return title or description or None


def test_build_real_subset(tmp_path, subset, svg_root):
    out = tmp_path / "demo"
    info = demo.build_demo(out, shards=3, svg_files=subset, progress=False)

    shards = sorted(out.glob("part-*.parquet"))
    assert [p.name for p in shards] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in shards]
    assert max(sizes) - min(sizes) <= 1

    table = pq.read_table(out)
    assert [(f.name, f.type) for f in table.schema] == EXPECTED_SCHEMA
    assert table.num_rows == len(subset)  # nothing dropped
    rows = table.to_pylist()
    ids = [r["id"] for r in rows]
    assert None not in ids and len(set(ids)) == len(ids)
    sources = [r["source"] for r in rows]
    assert sources == sorted(sources)
    assert set(sources) == {f.relative_to(svg_root).as_posix() for f in subset}

    png_root = svg_root.parent / "png"
    checked_description = 0
    for r in rows:
        svg = svg_root / r["source"]
        assert r["id"] == r["source"].removesuffix(".svg")
        assert r["category"] == r["source"].split("/")[0]
        assert r["parse_error"] is None
        assert isinstance(r["keywords"], list) and "" not in r["keywords"]
        if (png_root / r["source"]).with_suffix(".png").is_file():
            assert r["image"] is not None and r["image"].startswith(PNG_MAGIC)
            assert r["image"] == (png_root / r["source"]).with_suffix(".png").read_bytes()
        expected = _expected_caption(svg)
        assert r["caption"] == expected, r["source"]
        checked_description += expected is not None and ". " in expected
    assert any(r["caption"] for r in rows)
    assert checked_description >= 1  # the "title. description" form was exercised
    assert any(r["keywords"] for r in rows)

    complete = json.loads((out / ".complete").read_text())
    assert complete["rows"] == table.num_rows == info["rows"]
    assert complete["shards"] == 3
    assert complete == info


def _copy_tree(files: list[Path], svg_root: Path, dest: Path) -> list[Path]:
    copied = []
    for f in files:
        rel = f.relative_to(svg_root)
        for kind, src, suffix in (("svg", f, ".svg"), ("png", (svg_root.parent / "png" / rel), ".png")):
            target = (dest / kind / rel).with_suffix(suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src.with_suffix(suffix), target)
        copied.append(dest / "svg" / rel)
    return copied


def test_corrupt_svg_and_missing_png_keep_their_rows(tmp_path, subset, svg_root):
    real = _copy_tree(subset[:3] + subset[-1:], svg_root, tmp_path / "tree")
    cat = real[0].relative_to(tmp_path / "tree" / "svg").parts[0]

    broken = tmp_path / "tree" / "svg" / cat / "zz_truncated.svg"
    text = real[0].read_bytes()
    broken.write_bytes(text[: len(text) // 2])  # real content cut mid-file: not well-formed
    shutil.copyfile((tmp_path / "tree" / "png" / real[0].relative_to(tmp_path / "tree" / "svg")).with_suffix(".png"),
                    (tmp_path / "tree" / "png" / cat / "zz_truncated.png"))

    no_png = tmp_path / "tree" / "svg" / cat / "zz_no_png.svg"
    shutil.copyfile(real[1], no_png)

    files = real + [broken, no_png]
    info = demo.build_demo(tmp_path / "out", shards=2, svg_files=files, svg_root=tmp_path / "tree" / "svg",
                           png_root=tmp_path / "tree" / "png", progress=False)
    assert info["rows"] == len(files) and info["parse_errors"] == 2 and info["missing_png"] == 1

    rows = {r["source"]: r for r in pq.read_table(tmp_path / "out").to_pylist()}
    assert len(rows) == len(files)
    bad = rows[f"{cat}/zz_truncated.svg"]
    assert bad["parse_error"] and bad["parse_error"].startswith("ParseError")
    assert bad["caption"] is None and bad["keywords"] is None
    assert bad["image"].startswith(PNG_MAGIC)  # the PNG is still there

    missing = rows[f"{cat}/zz_no_png.svg"]
    assert missing["image"] is None and missing["parse_error"].startswith("missing_png: ")
    assert missing["caption"] == _expected_caption(real[1])

    for f in real:
        r = rows[f.relative_to(tmp_path / "tree" / "svg").as_posix()]
        assert r["parse_error"] is None and r["image"].startswith(PNG_MAGIC)
        assert r["caption"] == _expected_caption(f)


def test_rebuild_replaces_an_interrupted_build(tmp_path, subset):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "part-00007.parquet").write_bytes(b"stale shard of an interrupted build")
    (out / ".part-00000.parquet.tmp").write_bytes(b"half-written")
    (out / "notes.txt").write_text("not ours")
    demo.build_demo(out, shards=2, svg_files=subset[:4], progress=False)
    assert sorted(p.name for p in out.iterdir()) == [".complete", "notes.txt", "part-00000.parquet", "part-00001.parquet"]


def test_missing_packages_raise_data_error_with_install_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "_dpkg_list", lambda package: None)
    with pytest.raises(DataError) as err:
        demo.build_demo(tmp_path / "out", progress=False)
    message = str(err.value)
    assert "apt-get install openclipart-svg openclipart-png" in message
    assert "make curate DATASET=demo" in message
    assert "openclipart-svg" in err.value.problems[0] and "openclipart-png" in err.value.problems[1]
    assert not (tmp_path / "out").exists()


def test_dpkg_lookup_reports_absent_package():
    assert demo._dpkg_list("curate-test-no-such-package") is None


def test_make_caption_rules():
    assert demo.make_caption("  A  frog \n", None) == "A frog"
    assert demo.make_caption("Frog", "A  green\tfrog") == "Frog. A green frog"
    assert demo.make_caption("Frog", " Frog ") == "Frog"
    assert demo.make_caption(None, "only a description") == "only a description"
    assert demo.make_caption("  ", "") is None
