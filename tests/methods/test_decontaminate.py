"""The `decontaminate` stage and policy: exact and near (case, white space, punctuation) overlaps at and just below
the n-gram length, short items found whole, null and empty texts as errors, bad benchmark files refused naming
the file, spans cut, the policy's reasons, and through the engine: the artifact reused for an unchanged benchmark
and rebuilt for a changed one, resume, export of the cleaned text, the report, local vs Ray."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import curate
from curate.errors import ConfigError, DataError
from curate.methods.decontaminate import Decontaminate, DecontaminatePolicy
from curate.methods.dedup.text import normalize
from curate.report import write_report
from curate.report.view import lines
from curate.stage import TablesFitContext
from kernels import ngramindex
from testkit.helpers import write_shards

# Real benchmark-like items: the first sentences of the Apache and GPL licences (installed in every Debian).
LONG = ("Licensed under the Apache License, Version 2.0 (the \"License\"); you may not use this file except in "
        "compliance with the License. You may obtain a copy of the License at")
SHORT = "Everyone is permitted to copy and distribute verbatim copies"   # 9 words: fewer than 13
TINY = "free as in freedom"                                               # 4 words: under min_words
LONG_WORDS = normalize(pa.array([LONG]), "nfkc_punct")[0].as_py().split()


def write_benchmark(folder: Path, items: list[str] | None = None, name: str = "lic.jsonl") -> Path:
    path = folder / name
    items = items or [LONG, SHORT, TINY]
    path.write_text("".join(json.dumps({"id": f"q{i}", "text": t}) + "\n" for i, t in enumerate(items)))
    return path


def scored(tmp_path: Path, texts: list[str | None], **kw) -> tuple[Decontaminate, pa.Table]:
    stage = Decontaminate(benchmarks=[str(write_benchmark(tmp_path))], **kw)
    stage.setup(stage.fit(TablesFitContext([])))
    return stage, stage.score(pa.table({"text": pa.array(texts, pa.string())}))


def words(k: int, start: int = 0) -> str:
    return " ".join(LONG_WORDS[start:start + k])


def test_an_excerpt_of_n_words_is_found_and_one_of_n_minus_1_is_not(tmp_path):
    texts = [f"before it {words(13)} after it", f"before it {words(12)} after it", f"x {words(14, 3)} y"]
    _, out = scored(tmp_path, texts)
    assert out.column("ngrams").to_pylist() == [1, 0, 2]
    assert out.column("longest").to_pylist() == [13, 0, 14]
    assert out.column("item").to_pylist() == ["q0", None, "q0"]
    assert out.column("benchmark").to_pylist() == ["lic", None, "lic"]


def test_case_white_space_and_punctuation_do_not_hide_an_overlap(tmp_path):
    exact = LONG
    variants = [exact.upper(), exact.replace(" ", "\n\t  "), exact.replace(" ", " -- ").replace(";", "!!"),
                "«" + exact.replace("\"", "”").lower() + "»"]
    _, out = scored(tmp_path, [exact, *variants])
    n = len(LONG_WORDS) - 13 + 1
    assert out.column("ngrams").to_pylist() == [n] * 5
    assert out.column("longest").to_pylist() == [len(LONG_WORDS)] * 5
    assert out.column("item_ngrams").to_pylist() == [n] * 5


def test_an_edit_inside_every_n_words_breaks_the_match(tmp_path):
    edited = LONG_WORDS.copy()
    for i in range(6, len(edited), 12):   # one changed word in every 12: no 13 consecutive words survive
        edited[i] = "CHANGED"
    _, out = scored(tmp_path, [" ".join(edited)])
    assert out.column("ngrams").to_pylist() == [0]


def test_a_short_item_is_found_whole_and_one_under_min_words_is_not_looked_for(tmp_path):
    texts = [f"Note: {SHORT.upper()}, but changing it is not allowed.", f"{SHORT.split(' ', 1)[1]} only",
             f"it is {TINY} and more"]
    stage, out = scored(tmp_path, texts)
    assert out.column("ngrams").to_pylist() == [1, 0, 0]
    assert out.column("longest").to_pylist() == [9, 0, 0]
    assert out.column("item").to_pylist() == ["q1", None, None]
    facts = stage.describe(stage.fit(TablesFitContext([])))["benchmarks"][0]
    assert facts["short_items"] == 1 and facts["too_short"] == 1 and facts["items"] == 3


def test_the_words_are_those_of_dedups_nfkc_punct_normalisation():
    texts = ["Ünïcode—dashes “quotes” and ½ fractions: Straße, İstanbul; ｆｕｌｌwidth ﬁ ligature", "tabs\tand\x08bs",
             "Ελληνικά ΚΕΙΜΕΝΑ, русский ТЕКСТ! 中文，标点。", "emoji 🙂 between, ok"]
    from curate.methods.decontaminate.benchmarks import nfkc
    arr = nfkc(pa.array(texts))
    h, pos, row_words = ngramindex.words(arr)
    data = ngramindex.arrow_buffers(arr.cast(pa.large_string()))[0].tobytes()
    for r, expected in enumerate(normalize(pa.array(texts), "nfkc_punct").to_pylist()):
        got = pa.compute.utf8_lower(pa.array([data[a:b].decode() for a, b in pos[row_words[r]:row_words[r + 1]]],
                                             pa.string())).to_pylist()
        assert got == expected.split()


def test_null_and_empty_texts_are_per_row_errors(tmp_path):
    _, out = scored(tmp_path, [None, "", " ,;! ", words(13)])
    assert out.column("error").to_pylist() == ["null_text: column 'text' is null", "empty_text: no words",
                                               "empty_text: no words", None]
    assert out.column("ngrams").to_pylist() == [None, None, None, 1]


def test_remove_span_cuts_only_the_overlap_and_keeps_the_rest(tmp_path):
    texts = [f"Kept start. {LONG} Kept end.", f"{words(13)}, then the rest.", f"The rest, then {words(13)}",
             "untouched", None]
    _, out = scored(tmp_path, texts, remove="span")
    assert out.column("text").to_pylist() == ["Kept start. Kept end.", "then the rest.", "The rest, then", "untouched",
                                              None]
    start, end = out.column("start").to_pylist()[0], out.column("end").to_pylist()[0]
    assert texts[0][start:end] == LONG[:-len(" at")] + " at"


def test_the_policy_drops_at_the_threshold_and_names_the_item_and_count(tmp_path):
    texts = [f"x {words(13)}", f"x {words(15)}", "clean text", None]
    data = write_shards(tmp_path / "data", pa.table({"id": ["a", "b", "c", "d"], "text": texts}), 1)
    bench = write_benchmark(tmp_path)
    curate.run(curate.Pipeline([Decontaminate([str(bench)])], [DecontaminatePolicy(min_ngrams=2)], id_column="id"),
               data, tmp_path / "run", executor="local")
    m = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    assert [m[i]["keep"] for i in "abcd"] == [True, False, True, False]
    assert m["b"]["drop_reason"] == "decontaminate: 3 n-grams, 3 of lic item q0"
    assert m["d"]["error"] == "decontaminate: null_text: column 'text' is null"
    with pytest.raises(ConfigError, match="min_ngrams"):
        DecontaminatePolicy(min_ngrams=0)


@pytest.mark.parametrize("problem, match", [
    ("missing", "benchmark file .*nope.jsonl: cannot be read"),
    ("column", r"benchmark file .*lic.jsonl: no column 'question' \(columns: id, text\)"),
    ("corrupt", "benchmark file .*bad.parquet: cannot be read as parquet"),
    ("format", "benchmark file .*lic.xml: unknown format"),
])
def test_a_bad_benchmark_file_is_refused_naming_it(tmp_path, problem, match):
    data = write_shards(tmp_path / "data", pa.table({"id": ["a"], "text": ["some text"]}), 1)
    entry: str | dict[str, str] = str(write_benchmark(tmp_path))
    if problem == "missing":
        entry = str(tmp_path / "nope.jsonl")
    elif problem == "column":
        entry = {"path": entry, "column": "question"}
    elif problem == "corrupt":
        (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
        entry = str(tmp_path / "bad.parquet")
    else:
        entry = str(tmp_path / "lic.xml")
    with pytest.raises((ConfigError, DataError), match=match):
        curate.run(curate.Pipeline([Decontaminate([entry])], id_column="id"), data, tmp_path / "run",
                   executor="local")


def test_benchmarks_over_the_memory_budget_are_refused_with_their_size(tmp_path):
    stage = Decontaminate([str(write_benchmark(tmp_path))], max_ngram_mb=1e-6)
    grams = len(LONG_WORDS) - 13 + 1 + 1  # the long item's 13-grams and the short item whole
    with pytest.raises(ConfigError, match=rf"hold {grams} n-grams, {grams * 16 / 2**20:.3g} MB .* over max_ngram_mb=1e-06"):
        stage.fit(TablesFitContext([]))


def test_csv_parquet_and_text_benchmarks_give_the_same_finds(tmp_path):
    import pyarrow.csv as pcsv
    items = pa.table({"id": ["q0", "q1"], "question": [LONG, SHORT]})
    pcsv.write_csv(items, tmp_path / "b.csv")
    pq.write_table(items, tmp_path / "b.parquet")
    (tmp_path / "b.txt").write_text(f"{LONG}\n\n{SHORT}\n")
    texts = pa.table({"text": [f"x {words(13)}", f"a {SHORT} b", "none"]})
    results = []
    for entry in ({"path": str(tmp_path / "b.csv"), "column": "question"},
                  {"path": str(tmp_path / "b.parquet"), "column": "question", "name": "pq"}, str(tmp_path / "b.txt")):
        stage = Decontaminate([entry])
        stage.setup(stage.fit(TablesFitContext([])))
        out = stage.score(texts)
        results.append((out.column("ngrams").to_pylist(), out.column("item").to_pylist()))
    assert results[0] == results[1] == ([1, 1, 0], ["q0", "q1", None])
    assert results[2] == ([1, 1, 0], ["line 1", "line 3", None])


def test_a_rerun_resumes_and_reuses_the_artifact_and_an_edited_benchmark_rebuilds_it(tmp_path):
    texts = [f"x {words(13)}", f"a {SHORT} b", "plain"]
    data = write_shards(tmp_path / "data", pa.table({"id": ["a", "b", "c"], "text": texts}), 2)
    bench = write_benchmark(tmp_path)

    def run():
        return curate.run(curate.Pipeline([Decontaminate([str(bench)])], id_column="id"), data, tmp_path / "run",
                          executor="local")

    first = run()
    manifest = _sorted_manifest(tmp_path / "run")
    (tmp_path / "run" / "scores" / "decontaminate" / "part-00001.json").unlink()  # as if it crashed before that sidecar
    again = run()
    assert first["phases"]["fit:decontaminate"]["reused"] is False
    assert again["phases"]["fit:decontaminate"]["reused"] is True
    assert again["stages"]["decontaminate"]["units_reused"] == 1 and again["stages"]["decontaminate"]["units_computed"] == 1
    assert _sorted_manifest(tmp_path / "run").equals(manifest)
    write_benchmark(tmp_path, [LONG])  # the short item is gone
    edited = run()
    assert edited["phases"]["fit:decontaminate"]["reused"] is False
    assert edited["stages"]["decontaminate"]["artifact"]["key"] != first["stages"]["decontaminate"]["artifact"]["key"]
    m = {r["id"]: r["decontaminate.ngrams"] for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    assert m == {"a": 1, "b": 0, "c": 0}


def test_span_mode_exports_the_cut_text_and_the_report_shows_the_span_escaped(tmp_path):
    texts = [f"<b>Kept</b> {LONG} end", "plain words here", f"a {SHORT} b"]
    data = write_shards(tmp_path / "data", pa.table({"id": ["a", "b", "c"], "text": texts}), 2)
    bench = write_benchmark(tmp_path)
    curate.run(curate.Pipeline([Decontaminate([str(bench)], remove="span")], id_column="id"), data, tmp_path / "run",
               executor="local")
    curate.export(tmp_path / "run", materialize=tmp_path / "curated")
    out = pa.concat_tables([pq.read_table(p) for p in sorted((tmp_path / "curated").glob("*.parquet"))])
    assert dict(zip(out.column("id").to_pylist(), out.column("text").to_pylist())) == {
        "a": "<b>Kept</b> end", "b": "plain words here", "c": "a b"}
    assert lines(tmp_path / "run") == ["decontaminate: lic 2 rows"]
    page = write_report(tmp_path / "run", tmp_path / "report.html").read_text()
    section = page.split("Benchmark contamination", 1)[1]
    assert "&lt;b&gt;Kept&lt;/b&gt; <b>Licensed under the Apache" in section and "<b>Kept</b>" not in section


def _sorted_manifest(out: Path) -> pa.Table:
    m = curate.load_manifest(out).drop_columns(["shard"])
    return m.take(pa.compute.sort_indices(m, [("id", "ascending")]))


@pytest.mark.slow
def test_local_and_ray_give_the_same_manifest_and_cut_text(tmp_path, shared_ray):
    rng = np.random.default_rng(0)
    texts = [f"{i} " + (words(13 + i % 5, i % 7) if rng.random() < 0.5 else "no overlap in this one") for i in range(40)]
    data = write_shards(tmp_path / "data", pa.table({"id": [f"r{i:02d}" for i in range(40)], "text": texts}), 4)
    bench = write_benchmark(tmp_path)
    for executor in ("local", "ray"):
        curate.run(curate.Pipeline([Decontaminate([str(bench)], remove="span")], [DecontaminatePolicy(min_ngrams=3)],
                                   id_column="id"), data, tmp_path / executor, executor=executor)
        curate.export(tmp_path / executor, materialize=tmp_path / f"{executor}-curated")
    assert _sorted_manifest(tmp_path / "local").equals(_sorted_manifest(tmp_path / "ray"))
    local, ray = ([pq.read_table(p).to_pylist() for p in sorted((tmp_path / f"{e}-curated").glob("*.parquet"))]
                  for e in ("local", "ray"))
    assert local == ray
