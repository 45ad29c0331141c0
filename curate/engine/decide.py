"""Decide: fit the policies, then write the manifest (one row per input row, input order) and summary.json.

Manifest columns: `id`, `shard`, every stage column, `keep.<policy>` (null when the row errored for
that policy), `keep`, `drop_reason` (the first policy that dropped the row), `error` (the first stage
error as `<stage>: <message>`). A row is errored if any stage could not score it; errored rows are
never kept and never counted as dropped, so in = kept + dropped + errored holds for every policy and
for the whole run, and is checked before summary.json is written.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import platform
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.dataset import Shard
from curate.engine.files import write_json, write_parquet
from curate.engine.state import RunState
from curate.engine.store import KeptUnits, Store
from curate.errors import CurateError, InternalError
from curate.layout import Part, read_json
from curate.policy import Policy, Rows, scatter
from curate.presentation import class_path
from curate.storage import AnyPath, create_new, rmtree, seal, sealed
from kernels.hashing import mix64

log = logging.getLogger(__name__)

# Above this many valid rows, a policy's scan re-reads score files instead of holding them in memory.
SCAN_IN_MEMORY_ROWS = 20_000_000
QUANTILE_SAMPLE = 1_000_000
PART_WRITERS = 2               # manifest parts encoded and written at once
GENERATION_CLAIM = "writer.json"  # in manifest/g<N>/: the owner token of the writer that claimed N
VERSIONED = ("curate", "pyarrow", "polars", "numpy", "ray", "prefect", "ftfy", "regex")


def _valid(table: pa.Table, column: str, stage: str) -> np.ndarray:
    values = table.column(column)
    ok = pc.and_(pc.is_null(table.column(f"{stage}.error")), pc.is_valid(values))
    if pa.types.is_floating(values.type):
        ok = pc.and_(ok, pc.invert(pc.fill_null(pc.is_nan(values), True)))  # null and NaN are both invalid
    return ok.to_numpy(zero_copy_only=False)


def _held(cols: dict, stage: str, valid: np.ndarray) -> np.ndarray:
    """Rows a stage left unscored on purpose, without error: a null score and a `<stage>.status`
    (e.g. ZIP-FIT's prefilter). Every policy on that stage's columns drops them with the status as reason."""
    status = cols.get(f"{stage}.status")
    if status is None:
        return np.zeros(len(valid), dtype=bool)
    no_error = pc.is_null(cols[f"{stage}.error"]).to_numpy(zero_copy_only=False)
    return ~valid & no_error & pc.is_valid(status).to_numpy(zero_copy_only=False)


def _numeric(values: pa.ChunkedArray, mask: np.ndarray) -> np.ndarray:
    arr = values.combine_chunks()
    if pa.types.is_boolean(arr.type):
        arr = pc.cast(arr, pa.float64())
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)[mask]


def _column(values: pa.ChunkedArray | pa.Array, mask: np.ndarray) -> np.ndarray:
    """A policy input column's valid rows: numbers as float64, anything else as its numpy form."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_boolean(arr.type):
        return _numeric(values, mask)
    return arr.to_numpy(zero_copy_only=False)[mask]


def _rows(policy: Policy, table: pa.Table, id_hash: np.ndarray, fingerprint: str,
          mask: np.ndarray | None = None) -> Rows:
    """A shard's valid rows for `policy` (`mask`, when known), from a table holding its columns and its
    stage's error column."""
    mask = _valid(table, policy.column, policy.stage) if mask is None else mask
    cols = {c: _column(table.column(c), mask) for c in policy.columns}
    return Rows(cols[policy.column], id_hash[mask], cols, fingerprint)


class _Scan:
    """The valid rows of one policy's columns, shard by shard; cached when small."""

    def __init__(self, run: RunState, policy: Policy, units: KeptUnits):
        self.run, self.policy, self.units = run, policy, units
        self.cache: list[Rows] | None = None
        total = sum(run.rows[s.key] for s in run.ok_shards())
        self.cacheable = total <= SCAN_IN_MEMORY_ROWS

    def _read(self) -> Iterator[Rows]:
        # The next shard is read on a second thread while this one is handed out (Arrow reads release the GIL).
        shards = self.run.ok_shards()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="curate-scan") as pool:
            ahead = pool.submit(self._read_one, shards[0]) if shards else None
            for i in range(len(shards)):
                rows = ahead.result()
                ahead = pool.submit(self._read_one, shards[i + 1]) if i + 1 < len(shards) else None
                yield rows

    def _read_one(self, shard: Shard) -> Rows:
        stage = self.run.pipeline.stage(self.policy.stage)
        t = self.units.read(self.run.score_path(stage, shard), [*self.policy.columns, f"{stage.name}.error"])
        h = self.units.read(self.run.ids[shard.key], ["id_hash"]).column(0).to_numpy()
        return _rows(self.policy, t, h, self.run.fps[shard.key])

    def rows(self) -> Iterator[Rows]:
        if self.cache is not None:
            return iter(self.cache)
        if self.cacheable:
            self.cache = list(self._read())
            return iter(self.cache)
        return self._read()

    def __call__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return ((r.values, r.id_hash) for r in self.rows())


def write_manifest(run: RunState) -> dict[str, Any]:
    """Fit the policies, write one manifest part per shard and summary.json; return the summary."""
    pipeline = run.pipeline
    units = KeptUnits(run.store)
    for policy in pipeline.policies:
        policy.fit(_Scan(run, policy, units))
    acc = {p.name: {"in": 0, "kept": 0, "dropped": 0, "errored": 0} for p in pipeline.policies}
    total = {"in": 0, "kept": 0, "dropped": 0, "errored": 0}
    if summed := [s.column(c) for s in pipeline.stages for c in s.totals]:
        for a in (*acc.values(), total):
            a["totals"] = {c: {"in": 0, "kept": 0, "dropped": 0, "errored": 0} for c in summed}
    stage_acc = {s.name: {"rows_in": 0, "errored": 0, "errors": {}, "seconds": 0.0, "worker": {}}
                 for s in pipeline.stages}
    samples: dict[str, list[np.ndarray]] = {}
    run.lease.check()  # a writer that already lost its lease starts no generation
    gen = _claim_generation(run)
    try:
        parts = _write_parts(run, gen, acc, total, stage_acc, samples, units)
        for name, a in {**acc, "run": total}.items():
            if a["in"] != a["kept"] + a["dropped"] + a["errored"]:
                raise InternalError(f"internal accounting error in {name}: {a}; please report it")
        summary = _summary(run, acc, total, stage_acc, samples)
        summary["manifest"] = {"generation": gen, "parts": parts}
        run.lease.check()  # fencing: a writer whose lease was taken over must not publish
    except BaseException:  # (a lost lease, SIGTERM, a failed write) the generation is this writer's alone
        _remove_unpublished(run.store, gen)
        raise
    write_json(run.store.summary, seal(summary))  # the publish: one small write
    _collect_garbage(run.store, gen)
    return summary


def _write_parts(run: RunState, gen: int, acc: dict, total: dict, stage_acc: dict,
                 samples: dict[str, list[np.ndarray]], units: KeptUnits) -> dict[str, dict[str, Any]]:
    """Decide every shard and write its part into generation `gen`; returns each part's size and hash."""
    n_rows = sum(run.rows[s.key] for s in run.ok_shards())
    sample_below = np.uint64(min(2**64 - 1, int(2**64 * min(1.0, QUANTILE_SAMPLE / max(n_rows, 1)))))
    parts: dict[str, dict[str, Any]] = {}
    shards = run.ok_shards()
    # Shard i+1 is read and assembled, and the parts of shards i-1 and i-2 written, while the policies decide
    # shard i (Arrow's reads, compute, zstd and writes release the GIL; encoding a part costs more than deciding
    # it); at most four shards are in memory. The policies run here, shard after shard, so their counts add up
    # in the same order on every run.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="curate-decide") as pool, \
            ThreadPoolExecutor(max_workers=PART_WRITERS, thread_name_prefix="curate-part") as writers:
        loading = pool.submit(_prepare, run, shards[0], sample_below, units) if shards else None
        writing: deque[Future] = deque()
        for i, shard in enumerate(shards):
            prep = loading.result()
            loading = pool.submit(_prepare, run, shards[i + 1], sample_below, units) if i + 1 < len(shards) else None
            _add_stage_facts(stage_acc, prep.stage_facts)
            for name, v in prep.samples.items():
                samples.setdefault(name, []).append(v)
            table, counts = _decide_shard(run, shard, prep, acc)
            for k, v in counts.items():
                total[k] += v
            if "totals" in total:
                kept = table.column("keep").to_numpy(zero_copy_only=False)
                errored = pc.is_valid(table.column("error")).to_numpy(zero_copy_only=False)
                _add_totals(total, table, {"in": np.ones(len(kept), bool), "kept": kept,
                                           "dropped": ~kept & ~errored, "errored": errored})
            if len(writing) == PART_WRITERS:
                parts.update(writing.popleft().result())
            writing.append(writers.submit(_write_part, run, shard, gen, table))
        while writing:
            parts.update(writing.popleft().result())
    return parts


def _claim_generation(run: RunState) -> int:
    """The number of a new manifest generation, one this writer alone writes into.

    Readers keep seeing the published generation until summary.json names this one. N is above every
    generation present (never the folder of a killed attempt), and is claimed by creating `g<N>/writer.json`
    exclusively with the lease's owner token: a writer whose lease was taken over, still writing, and the
    writer that took over never share a folder, so each may remove its own unpublished one. (On an object
    store the create is a check, then a PUT: the read-back settles all but a race within one round trip.)
    """
    store = run.store
    published = int(_published(store).get("manifest", {}).get("generation", 0))
    gen = 1 + max([published] + [int(p.name[1:]) for p in store.manifest.glob("g[0-9]*") if p.name[1:].isdigit()])
    while True:
        claim = store.generation(gen) / GENERATION_CLAIM
        try:
            create_new(claim, json.dumps({"owner": run.lease.token}).encode())
            if (read_json(claim) or {}).get("owner") == run.lease.token:
                return gen
        except FileExistsError:
            pass  # another writer's: try the next number
        gen += 1


def _remove_unpublished(store: Store, gen: int) -> None:
    """Remove this writer's generation after a failure before its publish (else the next publish would)."""
    try:
        rmtree(store.generation(gen))
    except OSError as e:
        log.warning("could not remove the unpublished manifest generation %s (the next publish will): %s",
                    store.generation(gen), e)


@dataclass
class _Prepared:
    """A shard read and assembled for the policies (built off the main thread)."""

    n: int
    id_hash: np.ndarray
    cols: dict[str, pa.ChunkedArray | pa.Array]   # id, shard and every stage column, in manifest order
    error: pa.Array                               # the first stage error of each row (or null)
    stage_facts: dict[str, dict[str, Any]]        # per stage: rows_in, errored, errors, seconds, worker
    samples: dict[str, np.ndarray]                # float columns' sampled finite values (summary quantiles)
    valid: dict[str, np.ndarray]                  # per policy: rows with a valid score for it
    held: dict[str, np.ndarray]                   # per policy: rows its stage left unscored on purpose


def _prepare(run: RunState, shard: Shard, sample_below: np.uint64, units: KeptUnits) -> _Prepared:
    """A shard's ids and score files, checked against their sidecars and joined into manifest columns."""
    ids = units.take(run.ids[shard.key])
    n = ids.num_rows
    id_hash = ids.column("id_hash").to_numpy()
    cols: dict[str, pa.ChunkedArray | pa.Array] = {"id": ids.column("id"), "shard": _repeat(shard.rel, n)}
    error = pa.nulls(n, pa.string())
    keep_sample = mix64(id_hash) <= sample_below
    facts: dict[str, dict[str, Any]] = {}
    samples: dict[str, np.ndarray] = {}
    for stage in run.pipeline.stages:
        path = run.score_path(stage, shard)
        meta, t = read_json(run.store.sidecar(path)) or {}, units.take(path)
        _cross_check(path, meta, t, stage.column("error"))
        facts[stage.name] = {"rows_in": n, "errored": meta.get("errored", 0), "seconds": meta.get("seconds", 0.0),
                             "errors": meta.get("errors", {}),
                             "worker": {**meta.get("worker", {}), "write_s": meta.get("write_s", 0.0)}}
        hidden = {stage.column(name) for name in stage.data_outputs}
        t = t.drop_columns([c for c in t.column_names if c in hidden])
        for name in t.column_names:
            cols[name] = t.column(name)
        stage_err = t.column(f"{stage.name}.error").combine_chunks()
        if stage_err.null_count < n:  # (the usual shard has no errors: nothing to join)
            error = pc.if_else(pc.and_(pc.is_null(error), pc.is_valid(stage_err)),
                               pc.binary_join_element_wise(f"{stage.name}", stage_err, ": "), error)
        for f in t.schema:
            if pa.types.is_floating(f.type):
                v = np.asarray(t.column(f.name).to_numpy(), dtype=np.float64)[keep_sample]
                samples[f.name] = v[np.isfinite(v)]
    valid_for, held_for = {}, {}
    for policy in run.pipeline.policies:
        stage = policy.stage
        t = pa.table({policy.column: cols[policy.column], f"{stage}.error": cols[f"{stage}.error"]})
        valid_for[policy.name] = valid = _valid(t, policy.column, stage)
        held_for[policy.name] = held = _held(cols, stage, valid)
        # A null or NaN score the stage gave no reason for is an error too, never a silent keep.
        unexplained = ~valid & ~held & pc.is_null(error).to_numpy(zero_copy_only=False)
        if unexplained.any():
            error = pc.if_else(pa.array(unexplained), f"{stage}: {policy.column} is null or NaN without an error",
                               error)
    return _Prepared(n, id_hash, cols, error, facts, samples, valid_for, held_for)


def _add_stage_facts(stage_acc: dict, facts: dict[str, dict[str, Any]]) -> None:
    for name, f in facts.items():
        sa = stage_acc[name]
        for k in ("rows_in", "errored", "seconds"):
            sa[k] += f[k]
        for kind, c in f["errors"].items():
            sa["errors"][kind] = sa["errors"].get(kind, 0) + c
        _merge_worker(sa["worker"], f["worker"])


def _write_part(run: RunState, shard: Shard, gen: int, table: pa.Table) -> dict[str, dict[str, Any]]:
    part = run.store.manifest_part(shard.key, gen)
    return {shard.rel: {"file": part.relative_to(run.store.root).as_posix(), "rows": table.num_rows,
                        **write_parquet(part, table)}}


def _decide_shard(run: RunState, shard: Shard, prep: _Prepared, acc: dict) -> tuple[pa.Table, dict[str, int]]:
    """One shard's manifest part and its counts (in, kept, dropped, errored); adds to the policy counts."""
    pipeline = run.pipeline
    n, cols, error = prep.n, dict(prep.cols), prep.error
    stage_of = {p.name: p.stage for p in pipeline.policies}
    valid_for, held_for = prep.valid, prep.held
    errored = pc.is_valid(error).to_numpy(zero_copy_only=False)
    keep = ~errored
    reason = pa.nulls(n, pa.string())
    weight = None
    for policy in pipeline.policies:
        valid = valid_for[policy.name]
        table = pa.table({c: cols[c] for c in {*policy.columns, f"{policy.stage}.error"}})
        pk, preason, extras = policy.decide_rows(_rows(policy, table, prep.id_hash, run.fps[shard.key], valid))
        for name, dtype in policy.outputs().items():
            values = pa.array(extras[name], dtype)
            cols[f"{policy.name}.{name}"] = values if len(values) == n else scatter(values, np.flatnonzero(valid), n)
        if "weight" in extras:
            w = np.zeros(n)
            w[valid] = extras["weight"]
            weight = w if weight is None else weight * w
        held = held_for[policy.name]
        full_keep = np.zeros(n, dtype=bool)
        full_keep[valid] = pk
        cols[f"keep.{policy.name}"] = pa.array(full_keep, mask=~(valid | held), type=pa.bool_())
        full_reason = preason if len(preason) == n else scatter(preason, np.flatnonzero(valid), n)
        if held.any():
            status = pc.binary_join_element_wise(f"{stage_of[policy.name]}.status: ",
                                                 cols[f"{stage_of[policy.name]}.status"], "")
            full_reason = pc.if_else(pa.array(held), status, full_reason)
        a = acc[policy.name]
        a["in"] += n
        a["kept"] += int(pk.sum())
        a["dropped"] += int((~pk).sum()) + int(held.sum())
        a["errored"] += int((~valid & ~held).sum())
        if "totals" in a:
            _add_totals(a, cols, {"in": np.ones(n, bool), "kept": full_keep,
                                  "dropped": (valid & ~full_keep) | held, "errored": ~valid & ~held})
        newly = keep & (valid | held) & ~full_keep
        if (reason.null_count == n and full_reason.type == reason.type
                and np.array_equal(newly, pc.is_valid(full_reason).to_numpy(zero_copy_only=False))):
            reason = full_reason  # (the usual first policy: its reasons are exactly the new ones; no copy)
        else:
            reason = pc.if_else(pa.array(newly), full_reason, reason)
        keep &= ~((valid | held) & ~full_keep)
    cols["keep"] = pa.array(keep, pa.bool_())
    if weight is not None:  # a row's training weight: the product of the weighting policies' weights
        cols["weight"] = pa.array(np.where(keep, weight, 0.0), pa.float64())
    cols["drop_reason"] = reason
    cols["error"] = error
    counts = {"in": n, "kept": int(keep.sum()), "errored": int(errored.sum()),
              "dropped": int((~keep & ~errored).sum())}
    return pa.table(cols), counts


def _add_totals(a: dict, cols: Any, masks: dict[str, np.ndarray]) -> None:
    """Adds each summed column's total over the rows of each mask (in, kept, dropped, errored) to a["totals"];
    a null (a row its stage could not score) counts 0."""
    for column, sums in a["totals"].items():
        values = np.asarray(pc.fill_null(cols[column], 0))
        for k, mask in masks.items():
            sums[k] += values[mask].sum().item()


def _repeat(text: str, n: int) -> pa.Array:
    """`text` n times as a string array, built from its buffers (pa.repeat of a string scalar is 20x slower)."""
    data = text.encode()
    offsets = np.arange(n + 1, dtype=np.int64) * len(data)
    if offsets[-1] >= 2**31:  # past 32-bit offsets
        return pa.repeat(pa.scalar(text, pa.string()), n)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data * n)])


def _cross_check(path: AnyPath, meta: dict[str, Any], table: pa.Table, error_column: str) -> None:
    """A unit's sidecar counts against its file; a mismatch is an error, never a silent summary."""
    errored = table.num_rows - table.column(error_column).null_count
    if meta.get("rows") != table.num_rows or meta.get("errored", errored) != errored:
        raise CurateError(f"{path}: its sidecar says {meta.get('rows')} rows and {meta.get('errored')} errored, the "
                          f"file holds {table.num_rows} and {errored}; run `curate verify` on the run directory, then "
                          f"re-run to recompute it")


def _published(store: Store) -> dict[str, Any]:
    """The summary.json this run replaces; what of it (and of its manifest parts) was damaged is named in a
    warning, since readers refused it: this run publishes anew."""
    previous = read_json(store.summary)
    if previous is None or not sealed(previous):
        if store.summary.exists():
            log.warning("re-publishing %s: it was %s after it was published", store.summary,
                        "unreadable" if previous is None else "modified")
        return {}
    for record in previous.get("manifest", {}).get("parts", {}).values():
        damage = Part(store.root / record["file"], record, str(store.root)).damage()
        if damage:
            log.warning("re-publishing the manifest part %s", damage)
    return previous


def _collect_garbage(store: Store, gen: int) -> None:
    """Remove the manifest generations that are not published (and parts of the old flat layout)."""
    if not store.manifest.exists():
        return
    for p in store.manifest.iterdir():
        if p.is_dir() and p.name.startswith("g") and p != store.generation(gen):
            rmtree(p)
        elif p.is_file() and p.name.startswith("part-"):
            p.unlink(missing_ok=True)


def _merge_worker(acc: dict[str, Any], info: dict[str, Any]) -> None:
    """Sum numeric worker facts over shards; collect the distinct values of the others."""
    for k, v in info.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            acc[k] = acc.get(k, 0.0) + v
        else:
            acc.setdefault(k, set()).add(str(v))


def _summary(run: RunState, acc: dict, total: dict, stage_acc: dict, samples: dict) -> dict[str, Any]:
    pipeline = run.pipeline
    failed_rows = sum(run.rows[k] for k in run.failed)
    all_rows = sum(run.rows.values())
    if all_rows != total["in"] + failed_rows:
        raise InternalError(f"internal accounting error: {all_rows} input rows but {total['in']} in the manifest "
                          f"and {failed_rows} in failed shards; please report it")
    stages = {}
    for stage in pipeline.stages:
        sa = stage_acc[stage.name]
        key, artifact = run.artifacts.get(stage.name, (None, None))
        quantiles = {}
        for col in (f.name for f in stage.output_schema()):
            if col in samples:
                v = np.concatenate(samples[col]) if samples[col] else np.array([])
                if len(v):
                    qs = np.quantile(v, [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0])
                    quantiles[col] = dict(zip(["min", "p01", "p10", "p25", "p50", "p75", "p90", "p99", "max"],
                                              [round(float(q), 8) for q in qs]))
        phase = run.phases.get(f"score:{stage.name}", {})
        stages[stage.name] = {
            **stage.identity(), "class": class_path(stage), "inputs": list(stage.inputs),  # the report shows them
            "rows_in": sa["rows_in"], "scored": sa["rows_in"] - sa["errored"],
            "errored": sa["errored"], "errors": sa["errors"],
            "seconds": round(sa["seconds"], 3),
            "rows_per_s": round(sa["rows_in"] / sa["seconds"], 1) if sa["seconds"] else None,
            "units_computed": phase.get("computed", 0), "units_reused": phase.get("reused", 0),
            "worker": {k: round(v, 3) if isinstance(v, float) else sorted(v) for k, v in sa["worker"].items()},
            "artifact": {"key": key, **stage.describe(artifact)} if key else None,
            "quantiles": quantiles,
            **({"replaces": stage.replaces} if stage.replaces else {}),
            **({"not_scores": sorted(stage.column(c) for c in stage.not_scores)} if stage.not_scores else {}),
        }
    config = pipeline.config or {}
    empty = [s.rel for s in run.dataset.shards if run.rows.get(s.key) == 0]
    return {
        "pipeline": pipeline.name,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data": run.dataset.uri,
        "format": run.dataset.format,
        "id_column": pipeline.id_column,
        "executor": run.executor_name,
        "config": config,
        "config_hash": hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16],
        "versions": {"python": platform.python_version(), **{p: _version(p) for p in VERSIONED}},
        "inputs": {"shards": len(run.dataset.shards), "rows": all_rows, "empty_shards": empty,
                   "not_read": getattr(run.dataset, "not_read", []),  # files of another format than `format:`
                   "fingerprints": {s.rel: {"fingerprint": run.fps.get(s.key), "rows": run.rows.get(s.key)}
                                    for s in run.dataset.shards}},
        "stages": stages,
        "policies": {p.name: {**p.describe(), "class": class_path(p), **acc[p.name]} for p in pipeline.policies},
        "result": {**total, "failed_shard_rows": failed_rows,
                   "check": "in = kept + dropped + errored: ok"},
        "failed_shards": [{"shard": run.dataset.shard(k).rel, **{a: b for a, b in v.items() if a != "traceback"}}
                          for k, v in run.failed.items()],
        "phases": run.phases,
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
