"""The stdlib-code corpus builder: chunking rule, sources, and the email experiment's construction."""
from __future__ import annotations

import json
from pathlib import PurePosixPath

import pyarrow.parquet as pq

from curate.data.stdlib_code import (
    build_stdlib_code,
    chunk_lines,
    email_experiment,
    fortune_files,
)


def test_chunks_are_whole_lines_of_at_least_1000_bytes_and_a_short_tail_is_dropped():
    lines = [f"line {i} " + "x" * (i % 70) + "\n" for i in range(400)]
    text = "".join(lines)
    pieces = chunk_lines(text)
    assert all(len(p.encode()) >= 1000 and p.endswith("\n") for p in pieces[:-1])
    assert text.startswith("".join(pieces)) and len(pieces[-1].encode()) >= 200
    assert chunk_lines("a" * 150 + "\n") == [] and chunk_lines("é" * 120 + "\n") == ["é" * 120 + "\n"]  # bytes, not chars


def test_fortunes_are_regular_topic_files_only():
    files = fortune_files()
    assert files and all(not p.name.endswith((".dat", ".u8")) and not p.is_symlink() for _, p in files)


def test_builder_writes_code_docs_fortunes_and_the_email_targets(tmp_path):
    info = build_stdlib_code(tmp_path / "d", shards=4)
    t = pq.read_table(tmp_path / "d")
    assert t.num_rows == info["rows"] == sum(info["chunks"].values())
    assert set(t.column("source").to_pylist()) == {"stdlib", "docs", "fortunes"}
    assert len(t.column("id").unique()) == t.num_rows
    assert not any("site-packages" in p for p in t.column("path").to_pylist())
    targets = [json.loads(line) for line in (tmp_path / "d" / "_targets" / "email.jsonl").read_text().splitlines()]
    assert len(targets) == 50 and all(r["id"].startswith("stdlib:email/") and r["text"] for r in targets)


def test_email_experiment_halves_do_not_overlap_and_sizes_match_the_spec():
    targets, candidates = email_experiment(seed=1)
    target_files = {PurePosixPath(c.path) for c in targets}
    inside = [c for c, yes in candidates if yes]
    assert len(targets) == 50 and len(inside) == 144 and len(candidates) == 1194
    assert not target_files & {PurePosixPath(c.path) for c in inside}
    others = [c for c, yes in candidates if not yes]
    assert all(c.package not in ("email", "test", "idlelib", "lib2to3") and "tests" not in c.path.split("/")
               for c in others if c.source == "stdlib")
    assert sum(c.source == "docs" for c in others) == 450 and not any("email" in c.path for c in others)
