"""The decide step reads each unit file once: the policies' scans keep what they read for the manifest."""
from __future__ import annotations

import pyarrow as pa
import pytest

from curate import layout
from curate.engine import store as store_mod
from curate.engine.store import KeptUnits, Store
from curate.errors import DamagedFileError


def _unit(tmp_path, name: str, n: int) -> Store:
    store = Store(tmp_path)
    path = store.unit("scores", "s", name)
    path.parent.mkdir(parents=True, exist_ok=True)
    store.finish(path, pa.table({"s.score": [float(i) for i in range(n)], "s.error": pa.nulls(n, pa.string())}),
                 {"rows": n})
    return store


def test_a_unit_read_by_a_scan_is_read_and_hashed_once_then_handed_whole_to_the_manifest(tmp_path, monkeypatch):
    store = _unit(tmp_path, "a", 50)
    path = store.unit("scores", "s", "a")
    reads = []
    real = layout.read_buffer
    monkeypatch.setattr(layout, "read_buffer", lambda p: reads.append(p) or real(p))
    units = KeptUnits(store)
    scanned = units.read(path, ["s.score"])
    assert scanned.column_names == ["s.score"] and scanned.column(0).to_pylist() == [float(i) for i in range(50)]
    whole = units.take(path)
    assert whole.column_names == ["s.score", "s.error"] and whole.num_rows == 50
    assert len(reads) == 1 and units.kept == {} and units.room == store_mod.KEEP_UNITS_BYTES
    units.take(path)  # no longer kept: read (and checked) again
    assert len(reads) == 2


def test_a_damaged_unit_is_still_refused_and_a_unit_over_the_budget_is_read_without_being_kept(tmp_path):
    store = _unit(tmp_path, "a", 50)
    path = store.unit("scores", "s", "a")
    small = KeptUnits(store, budget=16)
    assert small.read(path, ["s.score"]).num_rows == 50 and small.kept == {}
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedFileError):
        KeptUnits(store).read(path, ["s.score"])


def test_columns_read_twice_are_checked_once_and_a_shard_with_bad_text_is_checked_every_time(tmp_path):
    import pyarrow.parquet as pq

    from curate.dataset import Dataset
    from curate.engine.units import _utf8_problems

    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"t": ["a", "b"]}), data / "clean.parquet")
    bad = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(b"\0\0\0\0\1\0\0\0\2\0\0\0"), pa.py_buffer(b"a\xff")])
    pq.write_table(pa.table({"t": bad}), data / "bad.parquet")
    ds = Dataset(data)
    ds.keep_reads(1 << 20)
    calls = []

    def check(table):
        calls.append(1)
        return _utf8_problems(table)

    clean, dirty = (next(s for s in ds.shards if s.rel.startswith(n)) for n in ("clean", "bad"))
    first, second = ds.read_checked(clean, ["t"], check), ds.read_checked(clean, ["t"], check)
    assert first is second and first[1] is None and len(calls) == 1
    for _ in range(2):
        table, mask, _errors = ds.read_checked(dirty, ["t"], check)
        assert mask.tolist() == [False, True] and table.column("t").to_pylist() == ["a", None]
    assert len(calls) == 3  # (a shard with rows to fix is fixed afresh each time: its mask goes to the errors)


def test_an_in_process_run_hands_what_it_committed_to_decide_without_reading_it_back(tmp_path, monkeypatch):
    reads = []
    real = layout.read_buffer
    monkeypatch.setattr(layout, "read_buffer", lambda p: reads.append(p) or real(p))
    store = Store(tmp_path)
    store.keep_written(1 << 20)
    path = store.unit("scores", "s", "a")
    path.parent.mkdir(parents=True)
    table = pa.table({"s.score": [1.0, 2.0], "s.error": pa.nulls(2, pa.string())})
    store.finish(path, table, {"rows": 2})
    fitmap = store.unit("fitmap", "s", "a")  # (only what decide reads is kept: ids and scores)
    fitmap.parent.mkdir(parents=True)
    store.finish(fitmap, table, {"rows": 2})
    assert store.written(fitmap) is None
    units = KeptUnits(store)
    assert units.read(path, ["s.score"]).column(0).to_pylist() == [1.0, 2.0]
    assert units.take(path) is table and reads == []
    assert units.take(path).equals(table) and reads == [path]  # handed over once: then read and checked


def test_kept_tables_respect_the_budget_are_replaced_when_recomputed_and_stay_out_of_pickles(tmp_path):
    import pickle

    store = Store(tmp_path)
    path = store.unit("scores", "s", "a")
    path.parent.mkdir(parents=True)
    small, big = pa.table({"x": [1.0]}), pa.table({"x": [float(i) for i in range(1000)]})
    store.finish(path, small, {"rows": 1})
    assert store.written(path) is None  # not asked to keep
    store.keep_written(small.nbytes)
    store.finish(path, big, {"rows": 1000})
    assert store.written(path) is None  # over the budget
    store.finish(path, small, {"rows": 1})
    store.finish(path, small.slice(0, 0), {"rows": 0})  # recomputed: the new content replaces the old
    copy = pickle.loads(pickle.dumps(store))
    assert copy.written(path) is None and copy.root == store.root
    assert store.written(path).num_rows == 0
    store.finish(path, small, {"rows": 1})
    store.keep_written(0)
    assert store.written(path) is None
