"""The three kinds of per-shard work: row ids, a stage's fit map, a stage's scores.

Each task is picklable (it travels to Ray workers), is set up once per worker, and writes one
content-keyed output per shard through the Store, returning the output's sidecar.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.dataset import Dataset, Shard
from curate.engine.shuffle import COARSE, read_group, read_shuffled
from curate.engine.store import Store, read_unit
from curate.stage import ROW_HASH, ROW_ID, ROW_INDEX, Resources, ShardInfo, Stage
from curate.storage import AnyPath
from kernels.hashing import hash_strings

IDS = "_ids"  # the upstream name under which engine columns (row ids) are read from the ids unit


@dataclass(frozen=True)
class EngineShardInfo(ShardInfo):
    """ShardInfo with the run directory at hand, so a stage can read its shuffle's rows back."""

    root: Any = ""  # the run directory (a Path or an ObjectPath: it travels to workers with its filesystem)

    def read_shuffled(self, outputs: list[str], columns: list[str] | None = None) -> pa.Table:
        return read_shuffled(self.root, outputs, self.key, self.rows, columns)


@dataclass
class Unit:
    """One (phase, shard) piece of work: where its output goes and the key that marks it done."""

    shard: Shard
    key: str
    path: AnyPath
    fingerprint: str = ""
    upstream: dict[str, AnyPath] = field(default_factory=dict)  # stage name -> its score file for this shard
    part: int = -1                                            # the partition of a reduce unit


def error_kinds(errors: pa.Array) -> dict[str, int]:
    """Count per-row errors by kind (the text before the first ':')."""
    counts: Counter[str] = Counter()
    for d in pc.value_counts(errors.drop_null()).to_pylist():
        counts[d["values"].split(":", 1)[0]] += d["counts"]
    return dict(counts)


def has_repeats(hashes: np.ndarray) -> bool:
    """Whether any 64-bit hash occurs twice: equal ids have equal hashes, so False rules out repeated ids
    (True may be a collision: the caller compares the ids themselves)."""
    return bool(len(hashes) > 1 and (np.diff(np.sort(hashes)) == 0).any())


class IdsTask:
    """Reads and checks a shard's row ids; writes `id` (string) and `id_hash` (uint64)."""

    resources = Resources(cpus=1)

    def __init__(self, dataset: Dataset, store: Store, id_column: str | None):
        self.dataset, self.store, self.id_column = dataset, store, id_column

    def setup(self) -> None:
        pass

    def __call__(self, unit: Unit) -> dict:
        t0 = time.perf_counter()
        shard = unit.shard
        meta: dict = {"key": unit.key, "shard": shard.rel}
        if self.id_column is None:
            n = self.dataset.open(shard).num_rows
            rows = pc.cast(pa.array(np.arange(n, dtype=np.int64)), pa.string())
            ids = pc.binary_join_element_wise(f"{unit.fingerprint[:16]}:", rows, "")  # `<fingerprint>:<row>`
            hashes = hash_strings(ids)
        else:
            ids, hashes = checked_ids(self.dataset.read(shard, [self.id_column], keep=False).column(0), meta)
        table = pa.table({"id": ids, "id_hash": pa.array(hashes, pa.uint64())})
        meta.update(rows=table.num_rows, seconds=round(time.perf_counter() - t0, 4))
        return self.store.finish(unit.path, table, meta)


def checked_ids(column: pa.ChunkedArray, meta: dict) -> tuple[pa.Array, np.ndarray]:
    """An id column as text and its hashes; null, non-UTF-8 and repeated ids are noted in `meta` (the plan
    refuses them, naming the rows)."""
    ids = pc.cast(column.combine_chunks(), pa.string())
    nulls = pc.indices_nonzero(ids.is_null()).to_numpy() if ids.null_count else np.empty(0, np.int64)
    if len(nulls):
        meta["null_ids"] = {"count": int(len(nulls)), "rows": nulls[:10].tolist()}
    bad = not_utf8(ids)  # an id goes to the manifest and to id lists as text
    if bad is not None:
        rows = np.flatnonzero(bad)
        meta["invalid_utf8_ids"] = {"count": int(len(rows)), "rows": rows[:10].tolist()}
    hashes = hash_strings(ids)  # (a null hashes like "", the value it is stored as)
    if bad is None and has_repeats(np.delete(hashes, nulls) if len(nulls) else hashes):  # else no repeats: cheap
        counts = pc.value_counts(ids.drop_null())
        dup = pc.filter(counts, pc.greater(counts.field("counts"), 1)).field("values").to_pylist()
        if dup:
            meta["duplicate_ids"] = {"count": len(dup), "examples": dup[:10]}
    if ids.null_count:  # (fill_null copies every string even when there is nothing to fill)
        ids = pc.fill_null(ids, "")
    return ids, hashes


def not_utf8(column: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """A mask of the text values that are not UTF-8 (Parquet writers let them through), None if all are."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return None
    try:
        column.validate(full=True)  # checks UTF-8 in C++: the common, clean case costs one pass
        return None
    except pa.ArrowInvalid:
        pass
    raw = column.cast(pa.large_binary()).to_pylist()
    bad = np.zeros(len(raw), dtype=bool)
    for r, v in enumerate(raw):
        if v is not None:
            try:
                v.decode("utf-8")
            except UnicodeDecodeError:
                bad[r] = True
    return bad


def _utf8_problems(table: pa.Table) -> tuple[pa.Table, np.ndarray | None, pa.Array | None]:
    """Text values that are not UTF-8 become nulls; returns the table, a mask of the rows that had one, and
    each such row's error (`invalid_utf8: column 'x'`)."""
    mask, message = None, None
    for i, col_field in enumerate(table.schema):
        column = table.column(i)
        bad = not_utf8(column)
        if bad is None:
            continue
        table = table.set_column(i, col_field, pc.if_else(pa.array(bad), pa.scalar(None, col_field.type), column))
        text = pa.scalar(f"invalid_utf8: column {col_field.name!r} holds bytes that are not UTF-8")
        message = pc.if_else(pa.array(bad), text, message if message is not None else pa.nulls(len(bad), pa.string()))
        mask = bad if mask is None else mask | bad
    return table, mask, message


def read_columns(dataset: Dataset, unit: Unit, data_columns: list[str], upstream_columns: dict[str, list[str]],
                 problems: list | None = None) -> pa.Table:
    """A shard's data columns beside the upstream stages' columns, rows aligned. Text that is not UTF-8
    is read as null; with `problems`, the (mask, errors) of such rows is appended to it."""
    table = None
    if data_columns:
        table, mask, errors = dataset.read_checked(unit.shard, data_columns, _utf8_problems)
        if mask is not None and problems is not None:
            problems.append((mask, errors))
    for stage_name, cols in upstream_columns.items():
        if stage_name == IDS:
            ids = read_unit(unit.upstream[IDS]).rename_columns([ROW_ID, ROW_HASH])
            index = pa.array(np.arange(ids.num_rows), pa.int64())  # a row's position in its shard
            up = ids.append_column(ROW_INDEX, index).select(cols)
        else:
            up = read_unit(unit.upstream[stage_name], columns=cols)
        if table is None:
            table = up
        else:
            for name in cols:
                table = table.append_column(name, up.column(name))
    return table


class FitMapTask:
    """Applies a stage's fit-map function to one shard's input columns (grouped by `part` for a shuffle)."""

    def __init__(self, stage: Stage, dataset: Dataset, store: Store, fn: Callable[[pa.Table], pa.Table],
                 data_columns: list[str], upstream_columns: dict[str, list[str]], group_by: str | None = None,
                 sources: list[AnyPath] | None = None, width: int | None = None):
        self.stage, self.dataset, self.store, self.fn = stage, dataset, store, fn
        self.data_columns, self.upstream_columns = data_columns, upstream_columns
        self.group_by = group_by
        self.width = width  # two-level shuffle: partitions per coarse group (engine/shuffle.py)
        self.sources = sources  # earlier shuffles' reduce outputs: read the rows labelled with this shard
        self.resources = stage.resources

    def setup(self) -> None:
        pass

    def __call__(self, unit: Unit) -> dict:
        t0 = time.perf_counter()
        if self.sources is not None:
            table = read_group(self.sources, unit.shard.key, unify=True)
        else:
            table = read_columns(self.dataset, unit, self.data_columns, self.upstream_columns)
        out = self.fn(table)
        if self.group_by:
            if not {self.group_by, "row"} <= set(out.column_names):
                raise ValueError(f"stage {self.stage.name!r}: the shuffle map must return {self.group_by!r} and 'row'")
            out = out.append_column("shard", pa.array([unit.shard.key] * out.num_rows, pa.string()))
        group_by = self.group_by
        if self.width is not None:  # grouped by coarse group: `part // width`
            if COARSE in out.column_names:
                raise ValueError(f"stage {self.stage.name!r}: the shuffle map returned {COARSE!r}, a name the "
                                 f"engine keeps for the two-level shuffle")
            part = out.column(self.group_by).to_numpy(zero_copy_only=False).astype(np.int64)
            out, group_by = out.append_column(COARSE, pa.array(part // self.width, pa.int64())), COARSE
        meta = {"key": unit.key, "shard": unit.shard.rel, "rows": table.num_rows,
                "seconds": round(time.perf_counter() - t0, 4)}
        return self.store.finish(unit.path, out, meta, group_by=group_by)


class SplitTask:
    """The middle step of a two-level shuffle: one coarse group's rows from every map output, written grouped
    by partition, each partition's rows in map-output order and, within one, by row (as a flat reduce reads
    them), so that a reduce reads one contiguous range."""

    def __init__(self, stage: Stage, store: Store, inputs: list[AnyPath]):
        self.stage, self.store, self.inputs = stage, store, inputs
        self.resources = Resources(cpus=1)

    def setup(self) -> None:
        pass

    def __call__(self, unit: Unit) -> dict:
        t0 = time.perf_counter()
        rows = read_group(self.inputs, unit.part)
        if rows is None:  # no map output holds this group: an empty file (its partitions' reduces read None)
            rows = pa.table({"part": pa.array([], pa.int64())})
        else:
            rows = rows.drop_columns([COARSE])
        meta = {"key": unit.key, "group": unit.part, "rows": rows.num_rows,
                "seconds": round(time.perf_counter() - t0, 4)}
        return self.store.finish(unit.path, rows, meta, group_by="part", keep_order=True)


class ReduceTask:
    """Reduces one partition of a shuffle: its rows from every map output, grouped by source shard."""

    def __init__(self, stage: Stage, fn: Callable[[pa.Table], pa.Table], store: Store, inputs: list[AnyPath],
                 width: int | None = None):
        self.stage, self.fn, self.store, self.inputs = stage, fn, store, inputs
        self.width = width  # two-level: `inputs` are the split outputs, one per coarse group of `width` partitions
        self.resources = stage.resources

    def setup(self) -> None:
        pass

    def __call__(self, unit: Unit) -> dict:
        t0 = time.perf_counter()
        inputs = self.inputs if self.width is None else [self.inputs[unit.part // self.width]]
        rows = read_group(inputs, unit.part)
        out = self.fn(rows) if rows is not None else None
        if out is None:
            out = pa.table({"shard": pa.array([], pa.string()), "row": pa.array([], pa.int64())})
        missing = {"shard", "row"} - set(out.column_names)
        if missing:
            raise ValueError(f"stage {self.stage.name!r}: the shuffle's reduce returned no {sorted(missing)} column")
        meta = {"key": unit.key, "partition": unit.part, "rows": 0 if rows is None else rows.num_rows,
                "seconds": round(time.perf_counter() - t0, 4)}
        return self.store.finish(unit.path, out, meta, group_by="shard")


class ScoreTask:
    """Sets up a stage once per worker, then scores shards batch by batch."""

    def __init__(self, stage: Stage, artifact: pa.Table | None, dataset: Dataset, store: Store,
                 data_columns: list[str], upstream_columns: dict[str, list[str]], batch_size: int):
        self.stage, self.artifact, self.dataset, self.store = stage, artifact, dataset, store
        self.data_columns, self.upstream_columns, self.batch_size = data_columns, upstream_columns, batch_size
        self.resources = stage.resources

    def setup(self) -> None:
        self.stage.setup(self.artifact)

    def __call__(self, unit: Unit) -> dict:
        t0 = time.perf_counter()
        bad_text: list = []
        table = read_columns(self.dataset, unit, self.data_columns, self.upstream_columns, bad_text)
        read_s = time.perf_counter() - t0
        if table is None:
            table = pa.table({"_": pa.nulls(self.dataset.open(unit.shard).num_rows)})
        schema = self.stage.output_schema()
        self.stage.begin_shard(EngineShardInfo(unit.shard.key, unit.shard.rel, unit.fingerprint, table.num_rows,
                                               self.store.root))
        parts = []
        for offset in range(0, table.num_rows, self.batch_size):
            batch = table.slice(offset, self.batch_size)
            parts.append(conform(self.stage, self.stage.score(batch), batch.num_rows, schema, unit.shard.rel))
        out = pa.concat_tables(parts) if parts else schema.empty_table()
        if self.stage.file_metadata():
            out = out.replace_schema_metadata(self.stage.file_metadata())
        for mask, message in bad_text:  # the engine's per-row errors come first: the stage saw a null
            column = self.stage.column("error")
            out = out.set_column(out.schema.get_field_index(column), column,
                                 pc.if_else(pa.array(mask), message, out.column(column)))
        errors = out.column(self.stage.column("error")).combine_chunks()
        meta = {"key": unit.key, "shard": unit.shard.rel, "rows": out.num_rows,
                "errored": int(len(errors) - errors.null_count), "errors": error_kinds(errors),
                "seconds": round(time.perf_counter() - t0, 4),
                "worker": {"read_s": round(read_s, 4), **self.stage.worker_info()}}
        return self.store.finish(unit.path, out, meta)


def conform(stage: Stage, out: pa.Table, rows: int, schema: pa.Schema, shard: str) -> pa.Table:
    """Check a stage's output against its declaration and return it prefixed and typed."""
    where = f"stage {stage.name!r} on shard {shard}"
    if not isinstance(out, pa.Table):
        raise TypeError(f"{where}: score() returned {type(out).__name__}, expected a pyarrow Table")
    if out.num_rows != rows:
        raise ValueError(f"{where}: score() returned {out.num_rows} rows for {rows} input rows")
    columns = []
    for f in schema:
        short = f.name[len(stage.name) + 1:]
        if short in out.column_names:
            col = out.column(short)
            try:
                columns.append(col.cast(f.type) if col.type != f.type else col)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise TypeError(f"{where}: column {short!r} is {col.type}, declared {f.type} ({e})") from e
        elif short == "error":
            columns.append(pa.nulls(rows, pa.string()))
        else:
            raise ValueError(f"{where}: score() did not return declared column {short!r} "
                             f"(returned {out.column_names})")
    extra = set(out.column_names) - {f.name[len(stage.name) + 1:] for f in schema}
    if extra:
        raise ValueError(f"{where}: score() returned undeclared columns {sorted(extra)}")
    return pa.table(columns, schema=schema)
