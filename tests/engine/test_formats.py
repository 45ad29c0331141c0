"""Shard formats: the same rows give the same manifest from Parquet, JSONL (plain, .gz, .zst), CSV and a
WebDataset tar; malformed records stop the plan naming file and line; exports keep the input's format."""
from __future__ import annotations

import gzip
import html
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import zstandard

import curate
from curate.methods.wfpp import WFPP
from testkit.helpers import caption_table, write_shards

ROWS, SHARDS = 90, 3
ROOT = Path(__file__).resolve().parents[2]


def pipeline(id_column: str = "id", fmt: str | None = None) -> curate.Pipeline:
    return curate.Pipeline([WFPP(text_column="caption", min_count=1)], [curate.KeepFraction("wfpp.score", 0.5)],
                           id_column=id_column, format=fmt)


def table() -> pa.Table:
    t = caption_table(ROWS)
    captions = t.column("caption").to_pylist()
    captions[7] = None  # a per-row error, the same in every format
    return t.set_column(1, "caption", pa.array(captions, pa.string()))


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def write_format(folder, fmt: str) -> str:
    folder.mkdir(parents=True)
    t = table()
    per = ROWS // SHARDS
    for i in range(SHARDS):
        part = t.slice(i * per, per)
        rows = part.to_pylist()
        if fmt == "jsonl":
            (folder / f"part-{i}.jsonl").write_bytes(jsonl(rows))
        elif fmt == "jsonl.gz":
            (folder / f"part-{i}.jsonl.gz").write_bytes(gzip.compress(jsonl(rows)))
        elif fmt == "jsonl.zst":
            (folder / f"part-{i}.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl(rows)))
        elif fmt == "csv":
            pcsv.write_csv(part, folder / f"part-{i}.csv")
        elif fmt == "tar":
            with tarfile.open(folder / f"part-{i}.tar", "w") as tar:
                for r in rows:
                    for ext, value in (("txt", r["caption"]), ("json", json.dumps({"id": r["id"]}))):
                        if value is None:
                            continue
                        blob = value.encode()
                        info = tarfile.TarInfo(f"{r['id']}.{ext}")
                        info.size = len(blob)
                        tar.addfile(info, io.BytesIO(blob))
    return str(folder)


def without_shard(run) -> pa.Table:
    m = curate.load_manifest(run)
    return m.drop_columns(["shard"]).sort_by("id")


@pytest.fixture(scope="module")
def parquet_manifest(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("parquet")
    data = write_shards(tmp / "data", table(), SHARDS)
    curate.run(pipeline(), data, tmp / "run", executor="local")
    return without_shard(tmp / "run")


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "jsonl.zst", "csv", "tar"])
def test_every_format_gives_the_parquet_manifest(tmp_path, fmt, parquet_manifest):
    data = write_format(tmp_path / "data", fmt)
    p = pipeline(id_column="key") if fmt == "tar" else pipeline()
    summary = curate.run(p, data, tmp_path / "run", executor="local")
    assert summary["inputs"]["shards"] == SHARDS and summary["result"]["in"] == ROWS
    assert summary["result"]["errored"] == 1, "the null caption is a per-row error, as in Parquet"
    assert without_shard(tmp_path / "run").equals(parquet_manifest)
    again = curate.run(p, data, tmp_path / "run", executor="local")
    assert again["stages"]["wfpp"]["units_computed"] == 0, "resume: units keyed by the file's content"


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "jsonl.gz", "csv", "tar"])
def test_every_reader_gives_the_same_schema_rows_columns_and_batches(tmp_path, fmt):
    from curate.dataset import Dataset

    if fmt == "parquet":
        (tmp_path / "data").mkdir()
        pq.write_table(table().slice(0, ROWS // SHARDS), tmp_path / "data" / "part-0.parquet", row_group_size=7)
    else:
        write_format(tmp_path / "data", fmt)
    ds = Dataset(tmp_path / "data")
    shard = ds.open(ds.shards[0])
    id_column = "key" if fmt == "tar" else "id"
    expected = table().slice(0, ROWS // SHARDS)
    assert shard.num_rows == ROWS // SHARDS and {id_column, "caption"} <= set(shard.schema.names)
    assert shard.read([id_column]).column(0).to_pylist() == expected.column("id").to_pylist()
    batches = list(shard.batches(["caption"], batch_rows=4))
    starts = [0, 4, 7, 11, 14, 18, 21, 25, 28] if fmt == "parquet" else list(range(0, ROWS // SHARDS, 4))
    assert [p for p, _ in batches] == starts  # (Parquet's batches end at its row groups of 7)
    assert pa.concat_tables(pa.Table.from_batches([b]) for _, b in batches).column(0).to_pylist() == \
        expected.column("caption").to_pylist()
    picked = list(shard.batches(["caption"], rows={9, 10}, batch_rows=4))
    assert all(p <= 9 < p + b.num_rows or p <= 10 < p + b.num_rows for p, b in picked)
    assert [b.column(0)[9 - p].as_py() for p, b in picked if p <= 9 < p + b.num_rows] == [expected["caption"][9].as_py()]
    with pytest.raises(curate.DataError, match=rf"shard {re.escape(ds.shards[0].rel)}: cannot read columns"):
        shard.read(["no_such_column"])


def test_a_webdataset_tar_has_key_caption_json_and_image_columns(tmp_path):
    from curate.dataset import Dataset

    folder = tmp_path / "wds"
    folder.mkdir()
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 20
    with tarfile.open(folder / "shard-0.tar", "w") as tar:
        for name, blob in (("sub/a.png", png), ("sub/a.txt", b"a cat"), ("sub/a.json", b'{"w": 1}'),
                           ("sub/b.txt", b"a dog")):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    ds = Dataset(folder)
    t = ds.open(ds.shards[0]).read()
    assert ds.format == "webdataset" and ds.shards[0].key == "shard-0"
    assert t.column("key").to_pylist() == ["sub/a", "sub/b"]
    assert t.column("caption").to_pylist() == ["a cat", "a dog"]
    assert t.column("json").to_pylist() == ['{"w": 1}', None]
    assert t.column("image").to_pylist() == [png, None] and t.schema.field("image").type == pa.binary()


@pytest.mark.parametrize("name, content, message", [
    ("bad.jsonl", b'{"id": "a", "caption": "x"}\n\n{"id": "b", "caption": "y"\n', r"bad\.jsonl: line 3 is not valid JSON"),
    ("list.jsonl", b'{"id": "a", "caption": "x"}\n[1, 2]\n', r"list\.jsonl: line 2 is a JSON list, not an object"),
    ("ragged.csv", b"id,caption\na,x\nb,y,z\nc,w\n", r"ragged\.csv: line 3 has 3 fields, the header has 2"),
    ("broken.tar", b"not a tar file at all" * 40, r"broken\.tar: not a readable tar file"),
])
def test_a_malformed_record_stops_the_plan_naming_file_and_line(tmp_path, name, content, message):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / name).write_bytes(content)
    with pytest.raises(curate.DataError, match=message):
        curate.run(pipeline(), tmp_path / "data", tmp_path / "run", executor="local")


@pytest.mark.parametrize("fmt", ["csv", "tar"])
def test_text_that_is_not_utf8_is_a_per_row_error_in_csv_and_tar_as_in_parquet(tmp_path, fmt):
    (tmp_path / "data").mkdir()
    captions = [b"a red car", b"bad \xff\xfe text", b"a blue boat"] * 4
    if fmt == "csv":
        lines = [b"id,caption"] + [b"r%d,%s" % (i, c) for i, c in enumerate(captions)]
        (tmp_path / "data" / "p.csv").write_bytes(b"\n".join(lines) + b"\n")
    else:
        with tarfile.open(tmp_path / "data" / "p.tar", "w") as tar:
            for i, c in enumerate(captions):
                info = tarfile.TarInfo(f"r{i}.txt")
                info.size = len(c)
                tar.addfile(info, io.BytesIO(c))
    p = pipeline(id_column="key" if fmt == "tar" else "id")
    summary = curate.run(p, tmp_path / "data", tmp_path / "run", executor="local")
    m = curate.load_manifest(tmp_path / "run").sort_by("id").to_pylist()
    assert summary["stages"]["wfpp"]["errors"] == {"invalid_utf8": 4}
    assert m[1]["error"] == "wfpp: invalid_utf8: column 'caption' holds bytes that are not UTF-8"
    assert m[0]["error"] is None and m[0]["wfpp.score"] is not None


def test_a_jsonl_line_that_is_not_utf8_stops_the_plan_naming_the_line(tmp_path):
    """JSON text must be UTF-8; pyarrow's reader would have put U+FFFD in place of the bytes without a word."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p.jsonl").write_bytes(b'{"id": "a", "caption": "x"}\n{"id": "b", "caption": "bad \xff"}\n')
    with pytest.raises(curate.DataError, match=r"p\.jsonl: line 2 is not UTF-8, as JSON text must be"):
        curate.run(pipeline(), tmp_path / "data", tmp_path / "run", executor="local")


def test_a_tar_sample_with_two_images_is_refused_by_name(tmp_path):
    (tmp_path / "data").mkdir()
    with tarfile.open(tmp_path / "data" / "s.tar", "w") as tar:
        for name in ("k.jpg", "k.png"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(curate.DataError, match=r"s\.tar: sample 'k' has two 'image' members"):
        curate.run(pipeline(id_column="key"), tmp_path / "data", tmp_path / "run", executor="local")


def test_mixed_formats_are_refused_unless_one_is_named_and_the_others_are_named_as_not_read(tmp_path, caplog):
    data = tmp_path / "data"
    write_format(data, "jsonl")
    pcsv.write_csv(table().slice(0, 10), data / "extra.csv")
    (data / "sub").mkdir()
    pcsv.write_csv(table().slice(10, 10), data / "sub" / "more.csv.gz")
    with pytest.raises(curate.DataError, match="mixes formats"):
        curate.run(pipeline(), data, tmp_path / "run", executor="local")
    with caplog.at_level("WARNING", logger="curate"):
        summary = curate.run(pipeline(fmt="jsonl"), data, tmp_path / "run", executor="local", report=True)
    assert summary["inputs"]["shards"] == SHARDS and summary["format"] == "jsonl"
    warned = [r.getMessage() for r in caplog.records if "not read" in r.getMessage()]
    assert len(warned) == 1, "named once, not again by the report or exports of the same process"
    assert "2 file(s) of other formats are not read (format: jsonl): extra.csv, sub/more.csv.gz" in warned[0]


@pytest.mark.parametrize("fmt, suffix", [("jsonl.gz", ".jsonl.gz"), ("csv", ".csv"), ("tar", ".tar")])
def test_materialize_writes_the_kept_rows_back_in_the_input_format(tmp_path, fmt, suffix):
    from curate.dataset import Dataset
    from curate.engine.export import export

    data = write_format(tmp_path / "data", fmt)
    id_column = "key" if fmt == "tar" else "id"
    summary = curate.run(pipeline(id_column=id_column), data, tmp_path / "run", executor="local")
    out = export(tmp_path / "run", materialize=tmp_path / "curated")
    files = sorted((tmp_path / "curated").rglob("*"))
    assert [f.name for f in files] == [f"part-{i}{suffix}" for i in range(SHARDS)]
    back = Dataset(tmp_path / "curated")
    ids = sorted(i for s in back.shards for i in back.open(s).read([id_column]).column(0).to_pylist())
    kept = curate.load_manifest(tmp_path / "run").filter(pa.compute.field("keep"))
    assert ids == sorted(kept.column("id").to_pylist()) and out["materialized_rows"] == summary["result"]["kept"]
    as_parquet = export(tmp_path / "run", materialize=tmp_path / "pq", as_parquet=True)
    assert as_parquet["materialized_rows"] == out["materialized_rows"]
    assert sorted(f.name for f in (tmp_path / "pq").rglob("*.parquet")) == [f"part-{i}.parquet" for i in range(SHARDS)]


# --- the whole front door, report included, in every format ------------------------------------------
CONFIG = """id_column: {id}
stages:
  - type: wfpp
    text_column: caption
    min_count: 1
policies:
  - type: keep_fraction
    column: wfpp.score
    fraction: 0.5
"""


def run_cli(tmp_path, data, id_column: str = "id") -> subprocess.CompletedProcess:
    """`python -m curate.cli run` in a fresh process, as a user runs it (the report is on by default)."""
    config = tmp_path / "wfpp.yaml"
    config.write_text(CONFIG.format(id=id_column))
    return subprocess.run([sys.executable, "-m", "curate.cli", "run", str(config), "--data", str(data),
                           "--out", str(tmp_path / "run"), "--executor", "local"],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=300)


def gallery_texts(page: str) -> dict[str, str]:
    """The text each gallery card shows, by the card's row id."""
    cards = re.findall(r'<div class="card">(.*?)<div class="id">(.*?) · ', page, re.DOTALL)
    return {html.unescape(i): html.unescape(m.group(1)) for body, i in cards
            if (m := re.search(r"<div>(.*?)</div>", body, re.DOTALL))}


@pytest.fixture(scope="module")
def parquet_cli_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("parquet-cli")
    proc = run_cli(tmp, write_shards(tmp / "data", table(), SHARDS))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "run"


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "jsonl.gz", "csv", "tar"])
def test_the_cli_runs_and_reports_every_format_with_the_parquet_manifest(tmp_path, fmt, parquet_cli_run):
    data = write_shards(tmp_path / "data", table(), SHARDS) if fmt == "parquet" else write_format(tmp_path / "data", fmt)
    proc = run_cli(tmp_path, data, "key" if fmt == "tar" else "id")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    page = (tmp_path / "run" / "report.html").read_text()
    caption = {r["id"]: r["caption"] or "(null)" for r in table().to_pylist()}
    shown = gallery_texts(page)
    assert len(shown) >= 3 and all(text == caption[i] for i, text in shown.items()), \
        "the gallery shows each row's own caption, read back from the input"
    assert without_shard(tmp_path / "run").equals(without_shard(parquet_cli_run))


def test_the_join_report_shows_the_right_rows_of_a_jsonl_dataset(tmp_path):
    """`curate join` with R as a JSONL folder: its report reads R's join values through the format's reader."""
    pytest.importorskip("sparse_dot_topn", reason="the join extra")
    task = ROOT / "bench" / "data" / "autofj" / "TennisTournament"
    right = pcsv.read_csv(task / "right.csv", convert_options=pcsv.ConvertOptions(column_types={"id": pa.string()}))
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "right.jsonl").write_bytes(jsonl(right.to_pylist()))
    curate.join(task / "left.csv", tmp_path / "r", on=["title"], out=tmp_path / "run", executor="local", report=True)
    page = (tmp_path / "run" / "report.html").read_text()
    rows = re.findall(r'<tr><td class="l">([^<]*)</td><td class="l">([^<]*)</td><td class="l">', page)  # R id, value
    title = dict(zip(right.column("id").to_pylist(), right.column("title").to_pylist()))
    assert rows and all(html.unescape(r) == title[i] for i, r in rows)
