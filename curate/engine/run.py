"""The engine: plan -> fit -> score -> decide, each unit keyed by content and done at most once.

Phases can be called one by one (the Prefect flow does: one task per phase) or all at once with
`Run.all()`. Units whose sidecar holds the expected key are reused, so a killed run resumes from the
last finished shard and a changed policy re-runs only `decide`.
"""
from __future__ import annotations

import contextvars
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa

from curate.dataset import Dataset, Shard
from curate.engine import leftovers
from curate.engine.decide import write_manifest
from curate.engine.executor import EXECUTORS, Executor, Failure, Task
from curate.engine.files import digest
from curate.engine.heal import heals
from curate.engine.lease import DEFAULT_TTL, Lease
from curate.engine.local import LocalExecutor
from curate.engine.shuffle import grouped_schema
from curate.engine.store import UNIT_FOLDERS, Store, read_unit
from curate.engine.units import IDS, FitMapTask, IdsTask, ReduceTask, ScoreTask, Unit, has_repeats
from curate.errors import ConfigError, CurateError, DamagedFileError, DataError, RunFailed
from curate.layout import read_json
from curate.pipeline import Pipeline
from curate.progress import Progress
from curate.stage import ENGINE_COLUMNS, FitContext, Shuffled, Stage
from curate.storage import TMP_PREFIX, TMP_SUFFIX, AnyPath, is_local

log = logging.getLogger(__name__)

ID_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer)
KEEP_READS_BYTES = 256 << 20  # local executor: input columns kept in memory between a stage's fit map and scores
MAX_REPAIRS = 2               # times one file is recomputed after being read back damaged (engine/heal.py)


def make_executor(kind: str, ray_address: str | None = None, workers: int | None = None,
                  preload: tuple[str, ...] = ()) -> Executor:
    """An executor by name: `local` or `ray` (a local Ray, or the cluster at `ray_address`/RAY_ADDRESS), whose
    workers import the `preload` modules as they start."""
    if kind == "local":
        return LocalExecutor()
    if kind == "ray":
        from curate.engine.ray import RayExecutor  # imports ray only when asked for

        return RayExecutor(address=ray_address, max_workers=workers, preload=preload)
    raise ConfigError(f"unknown executor {kind!r}; use one of {', '.join(EXECUTORS)} or pass an Executor object")


class Run:
    """One pipeline over one dataset into one run directory."""

    def __init__(self, pipeline: Pipeline, data: str | os.PathLike, out: str | os.PathLike,
                 executor: str | Executor = "local", ray_address: str | None = None, workers: int | None = None,
                 retries: int = 2, progress: Progress | None = None, verify: bool = False,
                 lease_ttl: float = DEFAULT_TTL):
        self.pipeline = pipeline
        self.store = Store(out)
        # verify: re-hash every input shard instead of trusting the fingerprint cache (api.run also verifies outputs)
        self.dataset = Dataset(data, fingerprint_cache=None if verify else self.store.fingerprint_cache,
                               format=pipeline.data_format)
        self.lease = Lease(out, ttl=lease_ttl)
        if executor == "local" or isinstance(executor, LocalExecutor):  # units run in this process: a fit map's
            self.dataset.keep_reads(KEEP_READS_BYTES)                     # input is kept for the scores to reuse
        self._leased = False
        if not isinstance(executor, str) and not isinstance(executor, Executor):
            raise TypeError(f"executor must be a name ('local', 'ray') or an Executor, got {executor!r}")
        self._given = None if isinstance(executor, str) else executor  # the caller's: not ours to close
        self.executor_kind = executor if isinstance(executor, str) else executor.name
        self.ray_address, self.workers = ray_address, workers
        self.retries = retries
        self.progress = progress or Progress()
        self._executor: Any = None
        self.fps: dict[str, str] = {}
        self.rows: dict[str, int] = {}
        self.ids: dict[str, AnyPath] = {}
        self.artifacts: dict[str, tuple[str | None, pa.Table | None]] = {}
        self.artifact_hashes: dict[str, str | None] = {}  # stage -> content hash of its artifact file
        self.failed: dict[str, dict[str, str]] = {}   # shard key -> {stage, error}
        self.phases: dict[str, dict[str, Any]] = {}   # phase name -> timing and reuse counts
        self._ids_job: Future | None = None            # the ids being read and checked beside the fit (`plan`)
        self._ids_thread: ThreadPoolExecutor | None = None
        self._repairs: dict[str, int] = {}             # damaged file -> times recomputed (`repair`)

    # --- executor lifetime --------------------------------------------------------------------
    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._ids_thread is not None:  # a run stopped early: let the ids thread finish before the lease goes
            self._ids_thread.shutdown()
        try:
            if self._executor is not None:
                self._executor.__exit__(*exc)
                self._executor = None
        finally:
            if self._leased:
                leftovers.forget(self.store)  # the executor shut its processes down
                self.lease.release()
                self._leased = False

    def _take_lease(self) -> None:
        """Become the run directory's one writer, then clear what dead writers left half-written."""
        if self._leased:
            return
        self.lease.acquire()
        self._leased = True
        if self.lease.took_over:
            self.phases["lease_takeover"] = {k: self.lease.took_over.get(k) for k in ("host", "pid", "reason")}
        stopped = leftovers.stop_left(self.store)
        if stopped:
            self.phases["stopped_leftover_processes"] = {"count": stopped}
        # (an object store gets whole PUTs, never temporary names: nothing to clear there)
        left = [p for p in self.store.root.rglob(f"{TMP_PREFIX}*{TMP_SUFFIX}") if p.is_file()] if is_local(
            self.store.root) else []
        for p in left:
            p.unlink(missing_ok=True)
        if left:
            log.info("removed %d temporary file(s) left by an interrupted run", len(left))

    @property
    def executor(self) -> Executor:
        if self._given is not None:
            return self._given
        if self._executor is None:
            self._executor = make_executor(self.executor_kind, self.ray_address, self.workers, self._modules())
            if self._leased and getattr(self._executor, "service_pids", None):
                leftovers.record(self.store, self._executor.service_pids)
            if getattr(self._executor, "startup_seconds", 0):
                self.phases["ray_startup"] = {"seconds": round(self._executor.startup_seconds, 3)}
        return self._executor

    def _modules(self) -> tuple[str, ...]:
        """The modules of the pipeline's stages that ship with curate (user code travels by value)."""
        names = {(getattr(s, "fn", None) or type(s)).__module__ for s in self.pipeline.stages}
        return tuple(sorted(n for n in names if n.startswith(("curate.", "kernels"))))

    # --- running units ------------------------------------------------------------------------
    def _execute(self, phase: str, task: Task, units: list[Unit]) -> dict[str, dict | Failure]:
        """Run the units not yet done (retrying failures), returning each shard's sidecar or Failure."""
        if phase != "ids" and any(IDS in u.upstream for u in units):
            self.ids_checked()  # these units read the row ids
        results: dict[str, dict | Failure] = {}
        damaged: DamagedFileError | None = None  # a file a unit read was damaged: repaired, then the unit retried
        todo = []
        for u in units:
            meta = self.store.done(u.path, u.key)
            if meta is None:
                todo.append(u)
            else:
                results[u.shard.key] = meta
        rows = sum(self.rows.get(u.shard.key, 0) for u in units)
        with self.progress.bar(phase, rows, len(units)) as bar:
            for u in units:
                if u.shard.key in results:
                    bar.update(self.rows.get(u.shard.key, 0), reused=True)
            for attempt in range(self.retries + 1):
                again = []
                for unit, result in self.executor.map(task, todo):
                    if isinstance(result, Failure) and result.damaged is not None:
                        damaged = damaged or result.damaged
                        continue
                    if isinstance(result, Failure) and result.fatal:
                        raise CurateError(f"{phase}: {result.message}")
                    if isinstance(result, Failure) and attempt < self.retries:
                        log.warning("%s: shard %s failed (attempt %d), retrying: %s", phase, unit.shard.rel,
                                    attempt + 1, result.message)
                        again.append(unit)
                        continue
                    results[unit.shard.key] = result
                    bar.update(self.rows.get(unit.shard.key, 0), failed=isinstance(result, Failure))
                    if phase != "ids" and self._ids_job is not None and self._ids_job.done():
                        self.ids_checked()  # bad ids stop the run here, not after the whole fit
                if not again:
                    break
                todo = again
            if damaged is not None:
                raise damaged  # (`heals`: the phase repairs it and runs again, reusing every finished unit)
            stats = bar.close()
        stats.update(computed=len(units) - stats["reused"] - stats["failed"])
        self.phases[phase] = stats
        return results

    # --- plan -----------------------------------------------------------------------------------
    def inputs_of(self, stage: Stage) -> tuple[list[str], dict[str, list[str]]]:
        """A stage's inputs split into dataset columns and columns of earlier stages (or the row ids)."""
        return self.split_columns(stage, stage.inputs)

    def split_columns(self, stage: Stage, columns) -> tuple[list[str], dict[str, list[str]]]:
        produced: dict[str, str] = {c: IDS for c in ENGINE_COLUMNS}
        for s in self.pipeline.stages:
            if s is stage:
                break
            produced.update({f.name: s.name for f in s.output_schema()})
        data, upstream = [], {}
        for col in columns:
            if col in produced:
                upstream.setdefault(produced[col], []).append(col)
            else:
                data.append(col)
        return data, upstream

    def upstream_keys(self, upstream: dict[str, list[str]]) -> dict[str, Any]:
        """What upstream outputs a unit reads depend on: each stage's key, and the id column for row ids."""
        return {name: self.pipeline.id_column if name == IDS else self.stage_key(self.pipeline.stage(name))
                for name in sorted(upstream)}

    @heals
    def plan(self) -> None:
        """Validate every shard against every stage before any compute, then read and check row ids.

        In-process (the local executor) the ids are read and checked on a second thread while the first stage
        fits: Arrow's reads, hashing and writes release the GIL, so the checks cost little wall time.
        `ids_checked` waits for them: before any unit that reads the ids, before any scoring and before the
        manifest; a check that failed stops the fit at the next unit, with the same error."""
        if self.fps:
            return
        self._take_lease()
        problems: list[str] = []
        schemas: dict[str, pa.Schema] = {}
        for shard in self.dataset.shards:
            try:
                pf = self.dataset.open(shard)
            except DataError as e:
                problems += e.problems
                continue
            schemas[shard.key], self.rows[shard.key] = pf.schema_arrow, pf.metadata.num_rows
        for shard in self.dataset.shards:
            if shard.key in schemas:
                problems += self._check_schema(shard, schemas[shard.key])
        if problems:
            raise DataError(problems)
        self.fps = self.dataset.fingerprints()
        units = [Unit(s, digest("ids", self.fps[s.key], self.pipeline.id_column),
                      self.store.ids(s.key), fingerprint=self.fps[s.key]) for s in self.dataset.shards]
        if self.executor_kind == "local":
            self._ids_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="curate-ids")
            # (in this thread's context: a progress listener may need it, e.g. the Prefect flow's run logger)
            self._ids_job = self._ids_thread.submit(contextvars.copy_context().run, self._read_ids, units)
        else:
            self._read_ids(units)

    def ids_checked(self) -> None:
        """Wait for the row ids to be read and checked (see `plan`); raises their error, on every call."""
        if self._ids_job is not None:
            self._ids_job.result()
            self._ids_job = None
            self._ids_thread.shutdown()

    def _read_ids(self, units: list[Unit]) -> None:
        problems: list[str] = []
        results = self._execute("ids", IdsTask(self.dataset, self.store, self.pipeline.id_column), units)
        for u in units:
            r = results[u.shard.key]
            if isinstance(r, Failure):
                problems.append(f"shard {u.shard.rel}: cannot read ids ({r.message})")
                continue
            self.ids[u.shard.key] = u.path
            if "null_ids" in r:
                n = r["null_ids"]
                problems.append(f"shard {u.shard.rel}: {n['count']} null id(s) in column "
                                f"{self.pipeline.id_column!r} at rows {n['rows']}")
            if "duplicate_ids" in r:
                d = r["duplicate_ids"]
                problems.append(f"shard {u.shard.rel}: {d['count']} id(s) repeated within the shard, "
                                f"e.g. {d['examples'][:3]}")
        if not problems:
            problems += self._cross_shard_duplicates()
        if problems:
            raise DataError(problems)

    def _check_schema(self, shard: Shard, schema: pa.Schema) -> list[str]:
        problems = []
        if self.rows[shard.key] == 0:  # writers often give empty shards null-typed columns
            schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema])
        id_col = self.pipeline.id_column
        if id_col is not None:
            if id_col not in schema.names:
                problems.append(f"shard {shard.rel}: missing id column {id_col!r} (set `id_column`, or remove it "
                                f"to use <shard>:<row> ids); columns present: {', '.join(schema.names)}")
            elif not any(ok(schema.field(id_col).type) for ok in ID_TYPES):
                problems.append(f"shard {shard.rel}: id column {id_col!r} is {schema.field(id_col).type}; "
                                f"ids must be strings or integers")
        for stage in self.pipeline.stages:
            data, _ = self.inputs_of(stage)
            for col in data:
                if col not in schema.names:
                    problems.append(f"shard {shard.rel}: missing column {col!r} needed by stage {stage.name!r}; "
                                    f"columns present: {', '.join(schema.names)}")
                    continue
                problem = stage.check_input(col, schema.field(col).type)
                if problem:
                    problems.append(f"shard {shard.rel}: column {col!r} {problem} (stage {stage.name!r})")
        return problems

    def _cross_shard_duplicates(self) -> list[str]:
        """Ids repeated across shards (hashes first, then the ids themselves to rule out collisions)."""
        keys = [s.key for s in self.dataset.shards]
        hashes = [read_unit(self.ids[k], columns=["id_hash"]).column(0).to_numpy() for k in keys]
        if sum(len(h) for h in hashes) < 2:
            return []
        allh = np.concatenate(hashes)
        if not has_repeats(allh):  # the usual case, found with a plain sort (4x faster than the argsort below)
            return []
        sizes = [len(h) for h in hashes]
        owner = np.repeat(np.arange(len(keys)), sizes)
        first_row = np.concatenate([[0], np.cumsum(sizes)])  # position of each shard's row 0 in allh
        order = np.argsort(allh, kind="stable")
        sh = allh[order]
        rep = np.flatnonzero(sh[1:] == sh[:-1])
        if not len(rep):
            return []
        problems = []
        for i in rep[:10]:
            a, b = order[i], order[i + 1]
            sa, sb = owner[a], owner[b]
            ra, rb = a - first_row[sa], b - first_row[sb]
            ida = read_unit(self.ids[keys[sa]], columns=["id"]).column(0)[int(ra)].as_py()
            idb = read_unit(self.ids[keys[sb]], columns=["id"]).column(0)[int(rb)].as_py()
            if ida == idb:
                problems.append(f"id {ida!r} appears in shard {self.dataset.shards[sa].rel} (row {ra}) and shard "
                                f"{self.dataset.shards[sb].rel} (row {rb}); ids must be unique across the dataset")
        return problems

    # --- keys -------------------------------------------------------------------------------------
    def stage_key(self, stage: Stage) -> str:
        """Everything a stage's scores depend on except the shard: identity, artifact content, upstream stages.

        A fit that returns no artifact adds nothing, so such a stage recomputes only the shards that changed."""
        _, upstream = self.inputs_of(stage)
        self.fit(stage)
        return digest("stage", stage.identity(), self.artifact_hashes[stage.name], self.upstream_keys(upstream))

    def fit_key(self, stage: Stage) -> str:
        _, upstream = self.inputs_of(stage)
        return digest("fit", stage.identity(), sorted(self.fps.values()), self.upstream_keys(upstream))

    def _units(self, kind: str, stage: Stage, salt: Any) -> list[Unit]:
        _, upstream = self.inputs_of(stage)
        return [Unit(s, digest(kind, salt, self.fps[s.key]), self.store.unit(kind, stage.name, s.key),
                     fingerprint=self.fps[s.key], upstream={name: self._upstream_path(name, s) for name in upstream})
                for s in self.dataset.shards if s.key not in self.failed]

    def _upstream_path(self, name: str, shard: Shard) -> AnyPath:
        return self.store.ids(shard.key) if name == IDS else self.store.scores(name, shard.key)

    # --- fit --------------------------------------------------------------------------------------
    @heals
    def fit(self, stage: Stage | str) -> pa.Table | None:
        """The stage's artifact: loaded if stored under its key, else fitted (map units checkpointed)."""
        stage = self.pipeline.stage(stage) if isinstance(stage, str) else stage
        self.plan()
        if stage.name in self.artifacts:
            return self.artifacts[stage.name][1]
        if not stage.has_fit:
            self.artifacts[stage.name] = (None, None)
            self.artifact_hashes[stage.name] = None
            return None
        key = self.fit_key(stage)
        path = self.store.artifact(stage.name, key)
        meta = self.store.done(path, key)
        if meta is not None:
            artifact = read_unit(path) if meta["files"] else None
            self.phases[f"fit:{stage.name}"] = {"reused": True, "seconds": 0.0}
        else:
            t0 = time.perf_counter()
            ctx = _EngineFitContext(self, stage)
            artifact = stage.fit(ctx)
            # `reads`: the shuffle outputs its scoring may read back (kept until `curate gc` reclaims them)
            meta = self.store.finish(path, artifact, {"key": key, "stage": stage.name, "reads": ctx.reduced,
                                                      "seconds": round(time.perf_counter() - t0, 3)})
            self.phases[f"fit:{stage.name}"] = {"reused": False, "seconds": round(time.perf_counter() - t0, 3)}
        # Scores depend on the artifact's content: a refit that differs recomputes them and what follows.
        self.artifact_hashes[stage.name] = meta["files"][path.name]["xxh3"] if meta["files"] else None
        self.artifacts[stage.name] = (key, artifact)
        return artifact

    # --- score ------------------------------------------------------------------------------------
    @heals
    def score(self, stage: Stage | str) -> None:
        """Score every shard not yet scored under the current key; failed shards are recorded."""
        stage = self.pipeline.stage(stage) if isinstance(stage, str) else stage
        artifact = self.fit(stage)
        for name in self.inputs_of(stage)[1]:
            if name != IDS and not self._scored(self.pipeline.stage(name)):
                self.score(name)  # upstream outputs must exist first
        data, upstream = self.inputs_of(stage)
        units = self._units("scores", stage, self.stage_key(stage))
        if self._reclaimed(stage) and any(self.store.done(u.path, u.key) is None for u in units):
            log.info("stage %s: refitting to recreate the shuffle outputs that `curate gc` reclaimed", stage.name)
            self.store.forget(self.store.artifact(stage.name, self.fit_key(stage)))
            del self.artifacts[stage.name]
            artifact = self.fit(stage)
            units = self._units("scores", stage, self.stage_key(stage))
        self.ids_checked()  # nothing is scored before the ids pass
        task = ScoreTask(stage, artifact, self.dataset, self.store, data, upstream, self.pipeline.batch_size)
        for shard_key, r in self._execute(f"score:{stage.name}", task, units).items():
            if isinstance(r, Failure):
                self.failed[shard_key] = {"stage": stage.name, "error": r.message, "traceback": r.traceback}
                log.error("stage %s failed on shard %s after %d attempts: %s", stage.name,
                          self.dataset.shard(shard_key).rel, self.retries + 1, r.message)

    # --- decide -------------------------------------------------------------------------------------
    @heals
    def decide(self) -> dict[str, Any]:
        """Policies, manifest parts and summary.json; raises RunFailed (after writing) if shards failed."""
        self.plan()
        for stage in self.pipeline.stages:
            if not self._scored(stage):
                self.score(stage)
        self.dataset.keep_reads(0)  # (scoring is over)
        self.ids_checked()
        summary = write_manifest(self)
        if self.failed:
            listing = "\n  ".join(f"{self.dataset.shard(k).rel}: stage {v['stage']}: {v['error']}"
                                  for k, v in self.failed.items())
            raise RunFailed(f"{len(self.failed)} shard(s) failed; the rest is saved in {self.store.root} and "
                            f"a re-run retries only these:\n  {listing}")
        return summary

    def repair(self, damaged: DamagedFileError) -> None:
        """Forget a damaged unit, and what was built from it, so that the phase run again recomputes it
        (engine/heal.py); raises when the same file keeps coming back damaged."""
        path = damaged.path
        n = self._repairs[str(path)] = self._repairs.get(str(path), 0) + 1
        try:
            folder = path.relative_to(self.store.root).parts[0]
        except ValueError:
            folder = None
        if folder not in UNIT_FOLDERS:
            raise CurateError(f"{damaged}; re-run to recompute it") from None
        if n > MAX_REPAIRS:
            raise CurateError(f"{damaged}, again after recomputing it {MAX_REPAIRS} times: the storage of "
                              f"{self.store.root} does not keep what is written to it; check the disk") from None
        log.warning("recomputing %s: %s", path, damaged.problem)
        for artifact in self.store.forget_damaged(path):
            log.warning("refitting %s: it was built from %s", artifact, path)
        self.artifacts.clear()  # (reloaded, checked, or refitted by `fit`)
        self.artifact_hashes.clear()
        if folder == "ids":  # the ids are planned again (`plan`), once a check still running has stopped
            if self._ids_job is not None:
                self._ids_job.exception()
                self._ids_job = None
                self._ids_thread.shutdown()
            self.fps = {}

    def _reclaimed(self, stage: Stage) -> bool:
        """Whether shuffle outputs the stage's scoring reads are gone (`curate gc`), so a re-score must refit."""
        key = self.artifacts.get(stage.name, (None, None))[0]
        meta = read_json(self.store.sidecar(self.store.artifact(stage.name, key))) if key else None
        return any(not (self.store.root / rel).exists() for rel in (meta or {}).get("reads", []))

    def _scored(self, stage: Stage) -> bool:
        key = self.stage_key(stage)
        return all(self.store.done(u.path, u.key) for u in self._units("scores", stage, key))

    def all(self) -> dict[str, Any]:
        """The whole run."""
        self.plan()
        for stage in self.pipeline.stages:
            self.fit(stage)
            self.score(stage)
        return self.decide()

    # --- helpers for the manifest ------------------------------------------------------------------
    def ok_shards(self) -> list[Shard]:
        return [s for s in self.dataset.shards if s.key not in self.failed]

    def score_path(self, stage: Stage, shard: Shard) -> AnyPath:
        return self.store.scores(stage.name, shard.key)


class _EngineFitContext(FitContext):
    def __init__(self, run: Run, stage: Stage):
        self.run, self.stage = run, stage
        self._maps = 0
        self.reduced: list[str] = []  # the reduce outputs of this fit, relative to the run directory

    def _map_units(self, kind: str, fn: Callable, columns: list[str], group_by: str | None = None,
                   source: list[Shuffled] | None = None, key: Any = None, **salt: Any) -> list[Unit]:
        run, stage = self.run, self.stage
        data, upstream = run.split_columns(stage, columns) if source is None else ([], {})
        for name in upstream:
            if name != IDS and not run._scored(run.pipeline.stage(name)):
                run.score(name)  # a fit may read an earlier stage's outputs
        what = stage.identity() if key is None else {"type": stage.type, "version": stage.version, "key": key}
        key_salt = (what, columns, getattr(fn, "__qualname__", repr(fn)), run.upstream_keys(upstream), salt,
                    [s.keys for s in source or []])
        units = [Unit(u.shard, u.key, run.store.unit(kind, f"{stage.name}{salt.get('name', '')}", u.shard.key),
                      u.fingerprint, u.upstream) for u in run._units(kind, stage, key_salt)]
        sources = [run.store.root / p for s in source or [] for p in s.outputs]
        task = FitMapTask(stage, run.dataset, run.store, fn, data, upstream, group_by=group_by,
                          sources=sources if source is not None else None)
        self._maps += 1
        phase = f"fit:{stage.name}:{salt['name'].lstrip('.')}:map" if "name" in salt else f"fit:{stage.name}:map{self._maps}"
        self._check(run._execute(phase, task, units), "shard")
        return units

    def _check(self, results: dict, what: str) -> None:
        bad = {k: r for k, r in results.items() if isinstance(r, Failure)}
        if bad:
            listing = "\n  ".join(f"{k}: {r.message}" for k, r in bad.items())
            raise RunFailed(f"fit of stage {self.stage.name!r} failed on {len(bad)} {what}(s) (a fit needs all of "
                            f"them); fix the cause and re-run:\n  {listing}")

    def map(self, fn: Callable[[pa.Table], pa.Table], columns: list[str]) -> Iterator[pa.Table]:
        for u in self._map_units("fitmap", fn, columns):
            yield read_unit(u.path)

    def shuffle(self, fn: Callable[[pa.Table], pa.Table], columns: list[str], partitions: int,
                reduce: Callable[[pa.Table], pa.Table], name: str = "shuffle",
                source: list[Shuffled] | None = None, key: Any = None) -> Shuffled:
        run, stage = self.run, self.stage
        maps = self._map_units("shuffle", fn, columns, group_by="part", source=source, key=key, name=f".{name}",
                               partitions=partitions)
        what = stage.identity() if key is None else key
        salt = digest("reduce", what, getattr(reduce, "__qualname__", repr(reduce)), [u.key for u in maps])
        units = []
        for p in range(partitions):
            pseudo = Shard(path="", rel=f"{stage.name}.{name}.partition-{p:05d}", size=0, mtime_ns=0)
            path = run.store.unit("reduce", f"{stage.name}.{name}", f"part-{p:05d}")
            units.append(Unit(pseudo, digest(salt, p), path, part=p))
        self._check(run._execute(f"fit:{stage.name}:{name}:reduce", ReduceTask(stage, reduce, run.store, [u.path for u in maps]),
                                 units), "partition")
        outputs = [str(u.path.relative_to(run.store.root)) for u in units]
        self.reduced += outputs
        return Shuffled(outputs=outputs,
                        metadata=[dict(grouped_schema(u.path).metadata or {}) for u in units],
                        keys=[u.key for u in units])
