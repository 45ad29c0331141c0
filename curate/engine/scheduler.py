"""Scheduling: the units of a phase that are not done yet, run on the executor, retried, counted.

A unit is done iff its sidecar holds its key (engine/store.py); done units are reused, the others go to
the executor. A failed unit is retried `retries` times; a fatal failure (the run directory cannot be
written) stops the run at once. Units that read the row ids wait for the ids check (`IdsCheck`). A unit
that read a damaged file of the run directory is not retried: the phase raises the DamagedFileError once
the others are done, and the run recomputes that file's unit (engine/heal.py) before running it again.
"""
from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from curate.engine.executor import Executor, Failure, Task
from curate.engine.state import RunState
from curate.engine.units import IDS, Unit
from curate.errors import CurateError
from curate.progress import Progress

log = logging.getLogger(__name__)


class IdsCheck:
    """The row ids, read and checked now, or on a second thread beside the first fit (in-process runs:
    Arrow's reads, hashing and writes release the GIL, so the check costs little wall time)."""

    def __init__(self) -> None:
        self._job: Future | None = None
        self._thread: ThreadPoolExecutor | None = None

    def start(self, check: Callable[[], None], beside: bool) -> None:
        if not beside:
            check()
            return
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="curate-ids")
        # (in this thread's context: a progress listener may need it, e.g. the Prefect flow's run logger)
        self._job = self._thread.submit(contextvars.copy_context().run, check)

    def wait(self) -> None:
        """Until the ids are checked; raises their error, on every call (a retried phase must not run past it)."""
        if self._job is not None:
            self._job.result()
            self._job = None
            self.close()

    def poll(self) -> None:
        """Raise the check's error now if it has finished and failed (bad ids stop a fit at its next unit)."""
        if self._job is not None and self._job.done():
            self.wait()

    def discard(self) -> None:
        """Wait for a check still running and forget it, error and all (the ids are checked again: `Run.repair`)."""
        if self._job is not None:
            self._job.exception()
            self._job = None
        self.close()

    def close(self) -> None:
        """Let the thread finish (a run stopped early still waits for it before the lease goes)."""
        if self._thread is not None:
            self._thread.shutdown()
            self._thread = None


class Scheduler:
    """Runs phases of units on one executor, for one run state."""

    def __init__(self, state: RunState, executor: Executor, progress: Progress, retries: int, ids: IdsCheck,
                 start: Callable[[], None] = lambda: None):
        self.state, self.executor, self.progress, self.retries, self.ids = state, executor, progress, retries, ids
        self.start = start  # starts the executor (once): called only when a phase has units to compute

    def execute(self, phase: str, task: Task, units: list[Unit]) -> dict[str, dict | Failure]:
        """Run the units not yet done (retrying failures), returning each shard's sidecar or Failure."""
        if phase != "ids" and any(IDS in u.upstream for u in units):
            self.ids.wait()  # these units read the row ids
        state = self.state
        results: dict[str, dict | Failure] = {}
        todo = []
        for u in units:
            meta = state.store.done(u.path, u.key)
            if meta is None:
                todo.append(u)
            else:
                results[u.shard.key] = meta
        with self.progress.bar(phase, sum(state.rows.get(u.shard.key, 0) for u in units), len(units)) as bar:
            for u in units:
                if u.shard.key in results:
                    bar.update(state.rows.get(u.shard.key, 0), reused=True)
            if todo:
                self.start()
            for attempt in range(self.retries + 1):
                if not todo:  # (an executor given no units must not start: Ray's `map` would)
                    break
                todo = self._attempt(phase, task, todo, attempt, results, bar)
            damaged = next((r.damaged for r in results.values() if isinstance(r, Failure) and r.damaged), None)
            if damaged is not None:
                raise damaged  # (engine/heal.py: the phase repairs it and runs again, reusing every finished unit)
            stats = bar.close()
        stats.update(computed=len(units) - stats["reused"] - stats["failed"])
        state.phases[phase] = stats
        return results

    def _attempt(self, phase: str, task: Task, todo: list[Unit], attempt: int, results: dict, bar) -> list[Unit]:
        """One pass over `todo`; returns the units to try again."""
        again = []
        for unit, result in self.executor.map(task, todo):
            if isinstance(result, Failure) and result.damaged is not None:  # a file it read was damaged: not
                results[unit.shard.key] = result                            # retried before that is recomputed
                continue
            if isinstance(result, Failure) and result.fatal:
                raise CurateError(f"{phase}: {result.message}")
            if isinstance(result, Failure) and attempt < self.retries:
                log.warning("%s: shard %s failed (attempt %d), retrying: %s", phase, unit.shard.rel,
                            attempt + 1, result.message)
                again.append(unit)
                continue
            results[unit.shard.key] = result
            bar.update(self.state.rows.get(unit.shard.key, 0), failed=isinstance(result, Failure))
            if phase != "ids":
                self.ids.poll()  # bad ids stop the run here, not after the whole fit
        return again
