"""The run directory as the engine writes it: content-keyed units, committed by a sealed sidecar.

A unit writes its output file(s) whole (engine/files.py), then its JSON sidecar: the unit's key, its
counts, and for every file its size and xxh3 hash, sealed with a hash of the sidecar's own content.
The sidecar is the commit record, a single small write, so the protocol needs no rename and no lock
from the storage (an object store PUTs each object once).

A unit is done iff its sidecar is sealed, holds the expected key, and every file it lists exists with
the recorded size. A reuse checks sizes (cheap); every read of a unit's file checks its hash
(`read_unit`, curate/layout.py: read once, hashed, decoded from the same bytes; a grouped file's groups
and footer are checked one by one, engine/shuffle.py), raising DamagedFileError, on which the engine
forgets the unit (`forget_damaged`), recomputes it and retries what read it. `curate verify`
(engine/verify.py, also run by `curate run --verify`) re-hashes every file, read or not.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from curate.engine.files import write_json, write_parquet
from curate.layout import RunLayout, read_json, read_unit, read_verified, unit_record
from curate.storage import AnyPath, content_hash, seal, sealed

__all__ = ["FIT_FOLDERS", "UNIT_FOLDERS", "KeptUnits", "Store", "read_unit", "writing_behind"]

log = logging.getLogger(__name__)

UNIT_FOLDERS = ("ids", "fitmap", "shuffle", "reduce", "artifacts", "scores")
KEPT_FOLDERS = ("ids", "scores")  # what `decide` reads: kept in memory by in-process runs (`Store.keep_written`)
FIT_FOLDERS = ("fitmap", "shuffle", "reduce")  # a fit's intermediates: its artifact was built from them
_behind = threading.local()  # .writer: where `Store.finish` sends its writes, inside `writing_behind`


@contextmanager
def writing_behind(writer: Executor) -> Iterator[None]:
    """`Store.finish` calls made in this block (this thread) return a Future of their sidecar, written on
    `writer`: the next unit computes while this one's files are encoded and written (engine/local.py)."""
    _behind.writer = writer
    try:
        yield
    finally:
        _behind.writer = None


class Store(RunLayout):
    """Paths (RunLayout) plus the commit records of one run directory."""

    def __init__(self, root: Any):
        super().__init__(root)
        self._written: dict[str, pa.Table] = {}  # keep_written: ids and score tables committed by this process
        self._room = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # (sent to workers: what this process keeps stays here)
        return {k: v for k, v in self.__dict__.items() if k not in ("_written", "_room", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _written={}, _room=0, _lock=threading.Lock())

    def keep_written(self, budget: int) -> None:
        """Keep the ids and score tables this process commits, up to `budget` bytes, for `decide` (in-process
        runs: a table this process just wrote and sealed is the file's content, so it need not be read back and
        checked); 0 drops them."""
        with self._lock:
            self._room = budget - sum(t.nbytes for t in self._written.values())
            if not budget:
                self._written.clear()

    def written(self, path: AnyPath) -> pa.Table | None:
        """The table this process committed to `path` (see `keep_written`), handed over once; else None."""
        with self._lock:
            table = self._written.pop(str(path), None)
            if table is not None:
                self._room += table.nbytes
            return table

    def done(self, path: AnyPath, key: str) -> dict | None:
        """The sidecar of a finished, intact unit with this key, else None (warning when it was damaged)."""
        sidecar = self.sidecar(path)
        meta = read_json(sidecar)
        if meta is None:
            if sidecar.exists():
                log.warning("recomputing %s: its sidecar %s is unreadable", path, sidecar)
            return None
        if meta.get("key") != key:
            return None  # stale: the inputs or the parameters changed
        problem = self.problem(path, meta)
        if problem:
            log.warning("recomputing %s: %s", path, problem)
            return None
        return meta

    def problem(self, path: AnyPath, meta: dict[str, Any], deep: bool = False) -> str | None:
        """What is wrong with a committed unit (None when intact)."""
        if not sealed(meta):
            return f"its sidecar {self.sidecar(path).name} was modified after it was written"
        for name, record in meta.get("files", {}).items():
            f = path.parent / name
            try:
                size = f.stat().st_size
            except FileNotFoundError:
                return f"{f} is missing"
            if size != record["size"]:
                return f"{f} has {size:,} bytes, {record['size']:,} were written (truncated or replaced)"
            if deep and content_hash(f.read_bytes()) != record["xxh3"]:
                return f"{f}'s content changed after it was written (hash mismatch)"
        return None

    def finish(self, path: AnyPath, table: pa.Table | None, meta: dict,
               group_by: str | None = None, keep_order: bool = False) -> dict | Future:
        """Write a unit's table (if any), then its sealed sidecar: the sidecar is the commit. Returns the
        sidecar, or its Future inside `writing_behind`."""
        writer = getattr(_behind, "writer", None)
        if writer is not None:
            return writer.submit(self._finish, path, table, meta, group_by, keep_order)
        return self._finish(path, table, meta, group_by, keep_order)

    def _finish(self, path: AnyPath, table: pa.Table | None, meta: dict, group_by: str | None,
                keep_order: bool = False) -> dict:
        t0 = time.perf_counter()
        files = {path.name: write_parquet(path, table, group_by, keep_order)} if table is not None else {}
        meta = seal({**meta, "files": files, "write_s": round(time.perf_counter() - t0, 4)})
        write_json(self.sidecar(path), meta)
        self.damage_mark(path).unlink(missing_ok=True)  # recomputed: `curate verify` no longer reports it
        if table is not None and group_by is None and path.relative_to(self.root).parts[0] in KEPT_FOLDERS:
            with self._lock:
                old = self._written.pop(str(path), None)  # (a unit recomputed: its new content replaces it)
                self._room += old.nbytes if old is not None else 0
                if table.nbytes <= self._room:
                    self._written[str(path)], self._room = table, self._room - table.nbytes
        return meta

    def forget(self, path: AnyPath) -> None:
        """Mark a unit not done (its outputs are rewritten by the next run)."""
        self.sidecar(path).unlink(missing_ok=True)

    def forget_damaged(self, path: AnyPath, problem: str | None = None) -> list[AnyPath]:
        """Forget a damaged unit, and for a fit's intermediate (fit map, shuffle, reduce) its stage's artifacts,
        which were built from it; returns the artifacts forgotten. With `problem` (`curate verify`), each
        forgotten unit keeps a damage mark saying why, until the run that recomputes it (`finish`) removes it:
        a second verify before that run still reports the damage."""
        self._forget_marked(path, problem)
        rel = path.relative_to(self.root)
        if rel.parts[0] not in FIT_FOLDERS:
            return []
        stage = rel.parts[1].split(".", 1)[0]  # `fitmap/<stage>/...`, `shuffle/<stage>.<name>/...`
        artifacts = [a.with_suffix(".parquet") for a in sorted((self.root / "artifacts" / stage).rglob("artifact.json"))]
        for artifact in artifacts:
            self._forget_marked(artifact, problem and f"built from a damaged unit ({rel})")
        return artifacts

    def _forget_marked(self, path: AnyPath, problem: str | None) -> None:
        if problem:
            write_json(self.damage_mark(path), {"problem": problem})
        self.forget(path)

    @staticmethod
    def damage_mark(path: AnyPath) -> AnyPath:
        """Beside a unit that `curate verify` forgot: what was wrong with it (`<unit>.damaged`)."""
        return path.with_suffix(".damaged")

    def marked_damaged(self, folder: str) -> Iterator[tuple[AnyPath, str]]:
        """(unit, problem) of every damage mark under `folder` (units forgotten by a verify, not yet recomputed)."""
        for mark in sorted((self.root / folder).rglob("*.damaged")):
            record = read_json(mark) or {}
            yield mark.with_suffix(".parquet"), str(record.get("problem", "damaged"))


# decide: the unit files the policies' scans read are kept decoded, up to this many bytes, for the manifest.
KEEP_UNITS_BYTES = 256 << 20


class KeptUnits:
    """Unit files read (each checked against its sidecar) by the policies' scans, kept for the manifest
    (engine/decide.py): each is then read, hashed against its sidecar and decoded once per decide, not twice;
    a table `store` kept as this process wrote it (`Store.keep_written`) is not read at all."""

    def __init__(self, store: Store, budget: int = KEEP_UNITS_BYTES):
        self.store = store
        self.kept: dict[str, pa.Table] = {}
        self.room = budget

    def read(self, path: AnyPath, columns: list[str]) -> pa.Table:
        table = self.kept.get(str(path))
        if table is not None:
            return table.select(columns)
        table = self.store.written(path)
        if table is not None:  # (kept whatever its size: it is in memory already)
            self.kept[str(path)], self.room = table, self.room - table.nbytes
            return table.select(columns)
        record = unit_record(path)
        if record["size"] * 4 > self.room:  # (decoded, it would not fit: decode only what is asked for)
            return read_verified(path, record, columns)
        table = read_verified(path, record)
        if table.nbytes <= self.room:
            self.kept[str(path)], self.room = table, self.room - table.nbytes
        return table.select(columns)

    def take(self, path: AnyPath) -> pa.Table:
        """The whole file, for its last reader (the manifest): no longer kept."""
        table = self.kept.pop(str(path), None)
        if table is None:
            table = self.store.written(path)
            return read_unit(path) if table is None else table
        self.room += table.nbytes
        return table
