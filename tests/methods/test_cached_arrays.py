"""The cache folder for arrays derived from installed files (curate/methods/models.py `cached_arrays`) and its
use by the web-text character tables: a second process reads what the first built, the same arrays."""
from __future__ import annotations

import numpy as np

from curate.methods import models
from curate.methods.webtext import chars


def test_arrays_are_built_once_then_read_back(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"a": np.arange(5, dtype=np.int32), "b": np.array(["x", "yz"])}

    folder = tmp_path / "c" / "one"
    first = models.cached_arrays(folder, ("a", "b"), build)
    second = models.cached_arrays(folder, ("a", "b"), build, mmap=True)
    assert len(calls) == 1 and sorted(p.name for p in folder.iterdir()) == ["a.npy", "b.npy"]
    assert isinstance(second["a"], np.memmap) and np.array_equal(first["a"], second["a"])
    assert second["b"].tolist() == ["x", "yz"]
    models.cached_arrays(folder, ("a", "missing"), build)  # an incomplete copy is built again
    assert len(calls) == 2


def test_a_cache_that_cannot_be_written_still_gives_the_arrays(tmp_path):
    (tmp_path / "file").write_text("")
    got = models.cached_arrays(tmp_path / "file" / "x", ("a",), lambda: {"a": np.ones(3)})
    assert got["a"].tolist() == [1.0, 1.0, 1.0]


def test_the_character_tables_from_the_cache_are_the_built_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_CACHE", str(tmp_path))
    chars.tables.cache_clear()
    try:
        built = chars.tables()
        assert any((tmp_path / "webtext").iterdir())
        chars.tables.cache_clear()
        read = chars.tables()
        fresh = chars._build()
        for got, want in zip(read, (fresh["flags"], fresh["fold"])):
            assert np.array_equal(got, want) and not got.flags.writeable
        assert all(np.array_equal(a, b) for a, b in zip(built, read))
        assert read[0][ord("A")] & chars.ALPHA and read[1][ord("A")] == ord("a")
    finally:
        chars.tables.cache_clear()
