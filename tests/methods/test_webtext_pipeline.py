"""The web-text rules through the engine: null rows as per-row errors, the same manifest for any sharding and on
Ray, resume (a new threshold re-runs only the policies; a stage parameter only that stage), and C4's cleaned
text in place of the original in `export --materialize`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import curate
from curate.methods.webtext import (
    C4,
    C4Policy,
    FineWeb,
    FineWebPolicy,
    GopherQuality,
    GopherQualityPolicy,
    GopherRepetition,
    GopherRepetitionPolicy,
    Words,
)
from testkit import webtext_reference as ref
from testkit.helpers import write_shards

LICENSES = sorted(Path("/usr/share/common-licenses").glob("*"))


def corpus(n: int = 80, seed: int = 0) -> pa.Table:
    """Licence texts cut into pieces of varied length, some lines repeated, some with C4's bad lines, and a few
    null and empty rows."""
    rng = np.random.default_rng(seed)
    lines = [ln for p in LICENSES if p.is_file() for ln in p.read_text(errors="replace").splitlines()][:4000]
    if len(lines) < 200:  # no licences installed: sentences of random words
        lines = [" ".join(rng.choice(["the", "data", "of", "and", "curate", "text", "rule"], 9)) + "." for _ in range(2000)]
    texts: list[str | None] = []
    for i in range(n):
        start, size = int(rng.integers(0, len(lines) - 60)), int(rng.integers(1, 60))
        doc = lines[start:start + size]
        if i % 7 == 3:
            doc += doc[:5]
        if i % 11 == 5:
            doc.insert(1, "Please enable JavaScript to continue. Terms of use apply.")
        texts.append("\n".join(doc))
    texts[4], texts[17], texts[30] = None, "", None
    return pa.table({"id": [f"doc-{i:04d}" for i in range(n)], "text": pa.array(texts, pa.string())})


def pipeline(short_line_length: int = 30, min_doc_words: float = 50) -> curate.Pipeline:
    return curate.Pipeline(
        [Words(), GopherQuality(), GopherRepetition(), C4(), FineWeb(short_line_length=short_line_length)],
        [GopherQualityPolicy(min_doc_words=min_doc_words), GopherRepetitionPolicy(), C4Policy(), FineWebPolicy()],
        id_column="id")


def manifest(out: Path) -> pa.Table:
    m = curate.load_manifest(out).drop_columns(["shard"])
    return m.take(pa.compute.sort_indices(m, [("id", "ascending")]))


def test_null_rows_are_errors_and_every_row_is_accounted(tmp_path):
    data = write_shards(tmp_path / "data", corpus(), 3)
    summary = curate.run(pipeline(), data, tmp_path / "run", executor="local")
    rows = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    assert rows["doc-0004"]["error"] == "words: null_text: column 'text' is null" and not rows["doc-0004"]["keep"]
    assert rows["doc-0017"]["error"] is None and rows["doc-0017"]["drop_reason"] == "gopher_quality: words 0 < 50"
    r = summary["result"]
    assert r["errored"] == 2 and r["in"] == r["kept"] + r["dropped"] + r["errored"] == 80
    assert 0 < r["kept"] < 70
    for row in rows.values():  # the manifest's columns are the reference's statistics
        text = corpus().column("text")[int(row["id"][4:])].as_py()
        if text is not None:
            assert row["gopher_quality.words"] == ref.gopher_quality(text)["words"]
            assert row["c4.sentences"] == ref.c4(text)["sentences"]
    assert "c4.text" not in rows["doc-0000"] and "words.spans" not in rows["doc-0000"]


def test_one_shard_and_seven_shuffled_shards_give_the_same_manifest(tmp_path):
    table = corpus()
    write_shards(tmp_path / "one", table, 1)
    write_shards(tmp_path / "seven", table.take(pa.array(np.random.default_rng(3).permutation(table.num_rows))), 7)
    curate.run(pipeline(), tmp_path / "one", tmp_path / "r1", executor="local")
    curate.run(pipeline(), tmp_path / "seven", tmp_path / "r7", executor="local")
    assert manifest(tmp_path / "r1").equals(manifest(tmp_path / "r7"))


@pytest.mark.slow
def test_local_and_ray_give_the_same_manifest(tmp_path, shared_ray):
    data = write_shards(tmp_path / "data", corpus(), 4)
    curate.run(pipeline(), data, tmp_path / "local", executor="local")
    curate.run(pipeline(), data, tmp_path / "ray", executor="ray")
    assert manifest(tmp_path / "local").equals(manifest(tmp_path / "ray"))


def test_a_new_threshold_reruns_only_the_policy_and_a_stage_parameter_only_that_stage(tmp_path):
    data = write_shards(tmp_path / "data", corpus(), 3)
    first = curate.run(pipeline(), data, tmp_path / "run", executor="local")
    again = curate.run(pipeline(min_doc_words=10), data, tmp_path / "run", executor="local")
    assert all(again["phases"][f"score:{s}"]["computed"] == 0 for s in ("words", "gopher_quality", "c4", "fineweb"))
    assert again["policies"]["gopher_quality"]["kept"] > first["policies"]["gopher_quality"]["kept"]
    third = curate.run(pipeline(short_line_length=10, min_doc_words=10), data, tmp_path / "run", executor="local")
    assert third["phases"]["score:fineweb"]["computed"] == 3
    assert all(third["phases"][f"score:{s}"]["computed"] == 0 for s in ("words", "gopher_quality", "gopher_repetition"))


def test_export_writes_c4s_cleaned_text_in_place_of_the_original(tmp_path):
    data = write_shards(tmp_path / "data", corpus(), 2)
    curate.run(curate.Pipeline([C4()], [C4Policy(min_num_sentences=1)], id_column="id"), data, tmp_path / "run",
               executor="local")
    curate.export(tmp_path / "run", materialize=tmp_path / "curated")
    out = pa.concat_tables([pq.read_table(p) for p in sorted((tmp_path / "curated").glob("*.parquet"))])
    assert out.schema == pq.read_schema(data / "part-00000.parquet") and out.num_rows > 20
    original = {r["id"]: r["text"] for r in corpus().to_pylist()}
    for row in out.to_pylist():
        assert row["text"] == ref.c4(original[row["id"]])["text"]
    assert any(row["text"] != original[row["id"]] for row in out.to_pylist())
