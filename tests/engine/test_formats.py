"""Shard formats: the same rows give the same manifest from Parquet, JSONL (plain, .gz, .zst), CSV and a
WebDataset tar; malformed records stop the plan naming file and line; exports keep the input's format."""
from __future__ import annotations

import gzip
import io
import json
import tarfile

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
import zstandard

import curate
from curate.methods.wfpp import WFPP
from testkit.helpers import caption_table, write_shards

ROWS, SHARDS = 90, 3


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


def test_a_tar_sample_with_two_images_is_refused_by_name(tmp_path):
    (tmp_path / "data").mkdir()
    with tarfile.open(tmp_path / "data" / "s.tar", "w") as tar:
        for name in ("k.jpg", "k.png"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(curate.DataError, match=r"s\.tar: sample 'k' has two 'image' members"):
        curate.run(pipeline(id_column="key"), tmp_path / "data", tmp_path / "run", executor="local")


def test_mixed_formats_are_refused_unless_one_is_named(tmp_path):
    data = tmp_path / "data"
    write_format(data, "jsonl")
    pcsv.write_csv(table().slice(0, 10), data / "extra.csv")
    with pytest.raises(curate.DataError, match="mixes formats"):
        curate.run(pipeline(), data, tmp_path / "run", executor="local")
    summary = curate.run(pipeline(fmt="jsonl"), data, tmp_path / "run", executor="local")
    assert summary["inputs"]["shards"] == SHARDS and summary["format"] == "jsonl"


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
