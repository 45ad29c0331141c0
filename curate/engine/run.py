"""The engine: plan -> fit -> score -> decide, each unit keyed by content and done at most once.

`Run` ties the parts together: a `RunState` (engine/state.py: what is known so far, handed to decide), a
`Planner` (engine/plan.py: columns, keys, checks), a `Scheduler` (engine/scheduler.py: units on the
executor, retries) and the `Executor` the front door built. Phases can be called one by one (the Prefect
flow does: one task per phase); units whose sidecar holds the expected key are reused, so a killed run
resumes from the last finished shard and a changed policy re-runs only `decide`.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import pyarrow as pa

from curate.dataset import Dataset
from curate.engine import leftovers
from curate.engine.decide import write_manifest
from curate.engine.executor import Executor, Failure
from curate.engine.fit import EngineFitContext
from curate.engine.heal import heals
from curate.engine.lease import DEFAULT_TTL, Lease
from curate.engine.plan import Planner
from curate.engine.scheduler import IdsCheck, Scheduler
from curate.engine.state import RunState
from curate.engine.store import UNIT_FOLDERS, Store, read_unit
from curate.engine.units import IDS, IdsTask, ScoreTask
from curate.errors import CurateError, DamagedFileError, RunFailed
from curate.layout import read_json
from curate.pipeline import Pipeline
from curate.progress import Progress
from curate.stage import Stage
from curate.storage import TMP_PREFIX, TMP_SUFFIX, is_local

log = logging.getLogger(__name__)

KEEP_READS_BYTES = 256 << 20  # in-process: input columns kept in memory between a stage's fit map and scores
MAX_REPAIRS = 2               # times one file is recomputed after being read back damaged (engine/heal.py)


class Run:
    """One pipeline over one dataset into one run directory, on an executor the caller built.

    Used as a context manager: on exit the executor is closed (a caller's own executor object is wrapped by
    `as_executor` so that closing it does nothing) and the run directory's lease released."""

    def __init__(self, pipeline: Pipeline, data: str | os.PathLike, out: str | os.PathLike, executor: Executor,
                 retries: int = 2, progress: Progress | None = None, verify: bool = False,
                 lease_ttl: float = DEFAULT_TTL):
        if not isinstance(executor, Executor):
            raise TypeError(f"executor must be an Executor (see curate.engine.executor.as_executor), got {executor!r}")
        store = Store(out)
        # verify: re-hash every input shard instead of trusting the fingerprint cache (api.run also verifies outputs)
        dataset = Dataset(data, fingerprint_cache=None if verify else store.fingerprint_cache,
                          format=pipeline.format)
        if executor.in_process:  # units run in this process: a fit map's input is kept for the scores to reuse,
            dataset.keep_reads(KEEP_READS_BYTES)  # and the ids and scores written for `decide`
            store.keep_written(KEEP_READS_BYTES)
        self.state = RunState(pipeline, dataset, store, Lease(out, ttl=lease_ttl), executor.name)
        self.executor = executor
        self.planner = Planner(self.state)
        self.ids = IdsCheck()
        self.scheduler = Scheduler(self.state, executor, progress or Progress(), retries, self.ids,
                                   start=self._start_executor)
        self._leased = self._started = self._planned = False
        self._starting = threading.Lock()
        self._scored: set[str] = set()
        self._repairs: dict[str, int] = {}  # damaged file -> times recomputed (`repair`)
        self._recheck_ids = False           # an ids unit was damaged: planned again by the next phase

    # --- lifetime -------------------------------------------------------------------------------
    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.ids.close()  # a run stopped early: let the ids thread finish before the lease goes
        try:
            if self._started:
                self.executor.close()
                self._started = False
        finally:
            if self._leased:
                leftovers.forget(self.state.store)  # the executor shut its processes down
                self.state.lease.release()
                self._leased = False

    def _take_lease(self) -> None:
        """Become the run directory's one writer and clear what dead writers left half-written."""
        state = self.state
        state.lease.acquire()
        self._leased = True
        if state.lease.took_over:
            state.phases["lease_takeover"] = {k: state.lease.took_over.get(k) for k in ("host", "pid", "reason")}
        stopped = leftovers.stop_left(state.store)
        if stopped:
            state.phases["stopped_leftover_processes"] = {"count": stopped}
        root = state.store.root  # (an object store gets whole PUTs, never temporary names: nothing to clear there)
        left = [p for p in root.rglob(f"{TMP_PREFIX}*{TMP_SUFFIX}") if p.is_file()] if is_local(root) else []
        for p in left:
            p.unlink(missing_ok=True)
        if left:
            log.info("removed %d temporary file(s) left by an interrupted run", len(left))

    def _start_executor(self) -> None:
        """Start the executor when the first unit needs computing (the scheduler calls this): a run with every
        unit done, such as a policy-only re-run, reads its scores and decides in this process without it."""
        with self._starting:  # (in-process, the ids check runs its units on a second thread)
            if self._started:
                return
            state = self.state
            started = self.executor.start(self._modules())
            self._started = True
            if started.service_pids:
                leftovers.record(state.store, started.service_pids)
            if started.seconds:
                state.phases["ray_startup"] = {"seconds": round(started.seconds, 3)}

    def _modules(self) -> tuple[str, ...]:
        """The modules of the pipeline's stages that ship with curate (user code travels by value)."""
        names = {(getattr(s, "fn", None) or type(s)).__module__ for s in self.state.pipeline.stages}
        return tuple(sorted(n for n in names if n.startswith(("curate.", "kernels"))))

    # --- plan -----------------------------------------------------------------------------------
    @heals
    def plan(self) -> None:
        """Validate every shard against every stage before any compute, then read and check row ids.

        In-process the ids are checked on a second thread while the first stage fits (`IdsCheck`); nothing
        is scored and no manifest is written before they pass, and a failed check stops the fit at its next
        unit with the same error."""
        if self._planned:
            if self._recheck_ids:
                self._recheck_ids = False
                self._check_ids()
            return
        self._take_lease()
        self.planner.check_shards()
        self._planned = True
        self._check_ids()

    def _check_ids(self) -> None:
        units = self.planner.ids_units()
        task = IdsTask(self.state.dataset, self.state.store, self.state.pipeline.id_column)
        self.ids.start(lambda: self.planner.check_ids(units, self.scheduler.execute("ids", task, units)),
                       beside=self.executor.in_process)

    # --- fit --------------------------------------------------------------------------------------
    @heals
    def fit(self, stage: Stage | str) -> pa.Table | None:
        """The stage's artifact: loaded if stored under its key, else fitted (map units checkpointed)."""
        stage = self._stage(stage)
        self.plan()
        state = self.state
        if stage.name in state.artifacts:
            return state.artifacts[stage.name][1]
        if not stage.has_fit:
            state.artifacts[stage.name], state.artifact_hashes[stage.name] = (None, None), None
            return None
        for name in self.planner.inputs_of(stage)[1]:  # its key holds the upstream stages' keys
            if name != IDS:
                self.fit(name)
        key = self.planner.fit_key(stage)
        path = state.store.artifact(stage.name, key)
        meta = state.store.done(path, key)
        t0 = time.perf_counter()
        reused = meta is not None
        if reused:
            artifact = read_unit(path) if meta["files"] else None
        else:
            ctx = EngineFitContext(stage, self.planner, self.scheduler, self.require_scores)
            artifact = stage.fit(ctx)
            # `reads`: the shuffle outputs its scoring may read back (kept until `curate gc` reclaims them)
            meta = state.store.finish(path, artifact, {"key": key, "stage": stage.name, "reads": ctx.reduced,
                                                       "seconds": round(time.perf_counter() - t0, 3)})
        state.phases[f"fit:{stage.name}"] = {"reused": reused,
                                             "seconds": 0.0 if reused else round(time.perf_counter() - t0, 3)}
        # Scores depend on the artifact's content: a refit that differs recomputes them and what follows.
        state.artifact_hashes[stage.name] = meta["files"][path.name]["xxh3"] if meta["files"] else None
        state.artifacts[stage.name] = (key, artifact)
        return artifact

    # --- score ------------------------------------------------------------------------------------
    @heals
    def score(self, stage: Stage | str) -> None:
        """Score every shard not yet scored under the current key; failed shards are recorded.

        The one place scoring happens: upstream stages (`require_scores`), a fit that reads an earlier
        stage's outputs and `decide` all come here, and a stage is scored at most once per Run."""
        stage = self._stage(stage)
        if stage.name in self._scored:
            return
        artifact = self.fit(stage)
        data, upstream = self.planner.inputs_of(stage)
        self.require_scores(upstream)  # upstream outputs must exist first
        state = self.state
        units = self.planner.score_units(stage)
        if self._reclaimed(stage) and any(state.store.done(u.path, u.key) is None for u in units):
            log.info("stage %s: refitting to recreate the shuffle outputs that `curate gc` reclaimed", stage.name)
            state.store.forget(state.store.artifact(stage.name, self.planner.fit_key(stage)))
            del state.artifacts[stage.name]
            artifact = self.fit(stage)
            units = self.planner.score_units(stage)
        self.ids.wait()  # nothing is scored before the ids pass
        if stage.score_inputs is not None:  # (the fit's inputs stay in the keys; only the read is narrowed)
            data = [c for c in data if c in stage.score_inputs]
            upstream = {k: v for k, cols in upstream.items() if (v := [c for c in cols if c in stage.score_inputs])}
        task = ScoreTask(stage, artifact, state.dataset, state.store, data, upstream, state.pipeline.batch_size)
        for shard_key, r in self.scheduler.execute(f"score:{stage.name}", task, units).items():
            if isinstance(r, Failure):
                state.failed[shard_key] = {"stage": stage.name, "error": r.message, "traceback": r.traceback}
                log.error("stage %s failed on shard %s after %d attempts: %s", stage.name,
                          state.dataset.shard(shard_key).rel, self.scheduler.retries + 1, r.message)
        self._scored.add(stage.name)

    def require_scores(self, upstream: dict[str, list[str]]) -> None:
        """Score the upstream stages whose outputs are about to be read (the row ids need no scoring)."""
        for name in upstream:
            if name != IDS:
                self.score(name)

    def repair(self, damaged: DamagedFileError) -> None:
        """Forget a damaged unit, and what was built from it, so that the phase run again recomputes it
        (engine/heal.py); raises when the same file keeps coming back damaged."""
        path, store = damaged.path, self.state.store
        n = self._repairs[str(path)] = self._repairs.get(str(path), 0) + 1
        try:
            folder = path.relative_to(store.root).parts[0]
        except ValueError:
            folder = None
        if folder not in UNIT_FOLDERS:
            raise CurateError(f"{damaged}; re-run to recompute it") from None
        if n > MAX_REPAIRS:
            raise CurateError(f"{damaged}, again after recomputing it {MAX_REPAIRS} times: the storage of "
                              f"{store.root} does not keep what is written to it; check the disk") from None
        log.warning("recomputing %s: %s", path, damaged.problem)
        for artifact in store.forget_damaged(path):
            log.warning("refitting %s: it was built from %s", artifact, path)
        self.state.artifacts.clear()  # (reloaded, checked, or refitted by `fit`)
        self.state.artifact_hashes.clear()
        self._scored.clear()          # (`score` reuses what is done and recomputes what was forgotten)
        if folder == "ids":  # every phase plans first: the next one checks the ids again
            self.ids.discard()
            self._recheck_ids = True

    def _reclaimed(self, stage: Stage) -> bool:
        """Whether shuffle outputs the stage's scoring reads are gone (`curate gc`), so a re-score must refit."""
        store = self.state.store
        key = self.state.artifacts.get(stage.name, (None, None))[0]
        meta = read_json(store.sidecar(store.artifact(stage.name, key))) if key else None
        return any(not (store.root / rel).exists() for rel in (meta or {}).get("reads", []))

    def _stage(self, stage: Stage | str) -> Stage:
        return self.state.pipeline.stage(stage) if isinstance(stage, str) else stage

    # --- decide -------------------------------------------------------------------------------------
    @heals
    def decide(self) -> dict[str, Any]:
        """Policies, manifest parts and summary.json; raises RunFailed (after writing) if shards failed."""
        self.plan()
        state = self.state
        for stage in state.pipeline.stages:
            self.score(stage)
        state.dataset.keep_reads(0)  # (scoring is over)
        self.ids.wait()
        try:
            summary = write_manifest(state)
        finally:
            state.store.keep_written(0)
        if state.failed:
            listing = "\n  ".join(f"{state.dataset.shard(k).rel}: stage {v['stage']}: {v['error']}"
                                  for k, v in state.failed.items())
            raise RunFailed(f"{len(state.failed)} shard(s) failed; the rest is saved in {state.store.root} and "
                            f"a re-run retries only these:\n  {listing}")
        return summary
