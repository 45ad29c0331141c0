"""Ray executor: a pool of actors per map (one `setup` each), bounded in-flight work.

Ray is started here only when the caller has not started it (local Ray with no dashboard, or the
cluster named by `address` / RAY_ADDRESS), and only what was started here is shut down.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from curate.engine import rayhead
from curate.engine.rayworker import WORKER_ENV, _loopback_only, _session_pids, _Worker, quiet_local_ray
from curate.engine.task import Failure, Started, Task
from curate.errors import CurateError, renamed

log = logging.getLogger(__name__)

IN_FLIGHT_PER_WORKER = 2
POLL_S = 1.0            # how often in-flight units are checked against their time limit
TIMEOUT_FACTOR = 10.0   # a unit is lost after 10x the slowest finished unit of its map (at least min_unit_timeout)


class RayExecutor:
    name = "ray"
    in_process = False

    def __init__(self, address: str | None = None, num_cpus: int | None = None, workers: int | None = None,
                 unit_timeout: float | None = None, min_unit_timeout: float = 120.0, max_workers: int | None = None):
        # Options only: Ray starts in `start`, once the run holds its directory (scikit-learn's rule: a
        # constructor does no work).
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        if max_workers is not None:
            renamed("max_workers", "workers", "RayExecutor")
        self.num_cpus, self.workers = num_cpus, workers or max_workers
        # A unit running longer than this is presumed lost (its node died, its worker hangs): its actor is
        # replaced and the unit fails, to be retried elsewhere by the engine. None: derived per map from
        # the units already finished (TIMEOUT_FACTOR x their slowest), at least `min_unit_timeout`.
        self.unit_timeout, self.min_unit_timeout = unit_timeout, min_unit_timeout
        self.preload: tuple[str, ...] = ()  # modules every worker imports when it starts (see _Worker)
        self._pools: dict[tuple[float, float], list] = {}
        self._warned_no_gpu = False
        self._owns = False
        self._started: Started | None = None
        self.service_pids: list[int] = []
        self._lease: Any = None         # the shared Ray's warm pool, while this run holds it (engine/rayhead.py)
        self._lent: set[int] = set()    # its workers: given back at the end, never killed (unless lost)

    def start(self, preload: tuple[str, ...] = ()) -> Started:
        """Start Ray (unless the caller has) and the CPU workers, which import `preload` as they start."""
        if self._started is not None:
            return self._started
        t0 = time.perf_counter()  # start-up: importing Ray (0.3-0.5 s) and, below, starting it and its workers
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        joined = "ray" in sys.modules and sys.modules["ray"].is_initialized()  # (the caller started Ray)
        shared = None if self.address or joined else rayhead.for_run()
        if not self.address:  # (a cluster's own settings apply when joining)
            quiet_local_ray()  # Ray's task events off (engine/rayworker.py)
            # A local Ray keeps token authentication on. Ray reads the mode once, at import: set after that, its
            # services would want a token its driver does not send.
            if "ray" not in sys.modules:
                os.environ.setdefault("RAY_AUTH_MODE", "token")
        import ray

        self.ray = ray
        self.preload = tuple(preload)
        if not ray.is_initialized():
            with _keeping_sigterm():
                self._init(ray, shared)
            self._owns = True
            try:  # Start the CPU workers now, so that start-up is paid (and reported) once, not per phase.
                shape = (1.0, 0.0)
                n = max(1, int(ray.cluster_resources().get("CPU", 1)))
                lent = self._borrow(shared, min(n, self.workers or n)) if shared else None
                self._pools[shape] = lent or self._start_ready(shape, min(n, self.workers or n))
            except BaseException:  # (no worker could start, SIGTERM) nothing of this Ray is left to close
                self._pools.clear()
                ray.shutdown()
                self._owns = False
                raise
            if not self.address and shared is None:  # the services of the local Ray this started (recorded by the
                self.service_pids = _session_pids(ray)  # run: engine/leftovers.py); never those of the shared one
            where = self.address or (f"the shared local Ray at {shared['address']}" if shared else "local")
            log.info("started Ray in %.1fs (%s)", time.perf_counter() - t0, where)
        self._started = Started(seconds=time.perf_counter() - t0 if self._owns else 0.0,
                                service_pids=list(self.service_pids))
        return self._started

    def _init(self, ray: Any, shared: dict | None) -> None:
        """`ray.init`: the cluster at `address`, the shared local Ray (`curate ray start`), else a local Ray of
        this run's own (never one that merely happens to run on this machine: ray.init's default)."""
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                                      runtime_env={"env_vars": WORKER_ENV})
        if self.address:
            ray.init(address=self.address, **kwargs)
            return
        if shared is not None:
            # Its workers are the raylet's children, not this driver's: the run's own settings travel with it.
            env = {k: v for k, v in os.environ.items() if k.startswith("CURATE_") or k == "PYTHONPATH"}
            kwargs["runtime_env"] = {"env_vars": {**env, **WORKER_ENV}}
            log.info("connecting to the shared local Ray at %s (curate ray start; `curate ray stop` stops it)",
                     shared["address"])
            with _loopback_only(ray):
                ray.init(address=shared["address"], _node_ip_address="127.0.0.1", **kwargs)
            return
        with _loopback_only(ray):
            ray.init(address="local", num_cpus=self.num_cpus or os.cpu_count(), _node_ip_address="127.0.0.1",
                     **kwargs)

    def _borrow(self, shared: dict, n: int) -> list | None:
        """The shared Ray's warm workers (started with it, their imports done), prepared for this run; None when
        another run holds them or they do not suit this run (the run then starts workers of its own)."""
        self._lease = rayhead.borrow(shared)
        if self._lease is None:
            return None
        try:
            actors = rayhead.pool_actors(self.ray, n)
            env = {k: v for k, v in os.environ.items() if k.startswith("CURATE_")}
            self.ray.get([a.prepare.remote(env, list(sys.path), self.preload) for a in actors], timeout=60)
        except Exception as e:  # (a worker lost since, a pool still starting) not worth failing the run for
            log.info("the shared Ray's warm workers are not usable (%s); starting this run's own", e)
            self._lease.close()
            self._lease = None
            return None
        self._lent = {id(a) for a in actors}
        log.info("using %d warm worker(s) of the shared Ray", len(actors))
        return actors

    def _kill(self, actor: Any) -> None:
        """Kill a worker of this run; one lent by the shared Ray's pool is only given back (unless lost)."""
        if id(actor) not in self._lent:
            self.ray.kill(actor, no_restart=True)

    def close(self) -> None:
        """Kill this executor's workers, and shut Ray down if it was started here (from a shared or joined
        cluster, `ray.shutdown` only disconnects this driver)."""
        if self._started is None:
            return
        for pool in self._pools.values():
            for actor in pool:
                self._kill(actor)
        self._pools.clear()
        if self._lease is not None:  # the warm pool is free for the next run
            self._lease.close()
            self._lease, self._lent = None, set()
        if self._owns:
            self.ray.shutdown()
            self._owns = False
        self._started = None

    def __enter__(self) -> RayExecutor:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _pool_size(self, task: Task, n_units: int) -> int:
        cpus = self.ray.cluster_resources().get("CPU", 1.0)
        per = max(task.resources.cpus, 0.01)
        n = max(1, int(cpus // per))
        if self._shape(task)[1]:
            n = min(n, max(1, int(self.ray.cluster_resources().get("GPU", 0) // task.resources.gpus)))
        if self.workers:
            n = min(n, self.workers)
        return max(1, min(n, n_units))

    def _shape(self, task: Task) -> tuple[float, float]:
        """(cpus, gpus) per worker; GPU requests become CPU workers on a cluster without GPUs."""
        gpus = task.resources.gpus
        if gpus and not self.ray.cluster_resources().get("GPU"):
            if not self._warned_no_gpu:  # (a stage with `device: auto` asked for none: no warning)
                optional = getattr(task.resources, "gpus_optional", False)
                (log.info if optional else log.warning)("no GPU in the Ray cluster: GPU stages run their workers "
                                                        "on CPU")
                self._warned_no_gpu = not optional
            gpus = 0.0
        return task.resources.cpus, gpus

    def _pool(self, task: Task, n_units: int) -> list:
        """The run's workers for this resource shape, grown to the size this map can use."""
        shape = self._shape(task)
        # Idle workers of another shape still hold their resources: on a GPU node the CPU pool takes every
        # CPU, and a GPU worker (which needs a CPU too) would wait for one forever. Maps run one at a time,
        # so the other pools are stopped; a later map of their shape starts them again.
        for other in [s for s in self._pools if s != shape]:
            for actor in self._pools.pop(other):
                self._kill(actor)
        pool = self._pools.setdefault(shape, [])
        size = self._pool_size(task, n_units)  # (asks the GCS for the cluster's resources: once per map)
        while len(pool) < size:
            pool.append(self._start(shape))
        return pool[:size]

    def _start(self, shape: tuple[float, float]) -> Any:
        """A new worker of this shape (importing the executor's preload as it starts)."""
        # No restarts by Ray: a restarted actor can wait forever for the resources of a lost node. The engine
        # retries the unit instead, on the workers that are left (and the next map tops the pool up).
        return self.ray.remote(_Worker).options(num_cpus=shape[0], num_gpus=shape[1] or None, max_restarts=0,
                                                max_task_retries=0).remote(self.preload)

    def _start_ready(self, shape: tuple[float, float], n: int) -> list:
        """`n` started workers of this shape. One that dies while starting (killed, out of memory, its node
        lost) is replaced, n times at most; the run goes on with the workers that started, and fails with
        Ray's reason only when none could."""
        ready, died = [], []
        starting = [self._start(shape) for _ in range(n)]
        while starting:
            waits = [(actor, actor.ready.remote()) for actor in starting]
            starting = []
            for actor, ref in waits:
                try:
                    self.ray.get(ref)
                    ready.append(actor)
                except self.ray.exceptions.RayError as e:
                    self.ray.kill(actor, no_restart=True)
                    died.append(str(e).strip().splitlines()[0] if str(e).strip() else repr(e))
                    if len(died) <= n:
                        starting.append(self._start(shape))
        if not ready:
            raise CurateError(f"no Ray worker could start: {len(died)} died while starting (the last: {died[-1]}); "
                              f"Ray's logs are under its session folder (/tmp/ray/session_latest/logs for a local Ray)")
        if died:
            log.warning("%d Ray worker(s) died while starting (the last: %s); running on %d", len(died), died[-1],
                        len(ready))
        return ready

    def _limit(self, seconds: list[float]) -> float:
        if self.unit_timeout is not None:
            return self.unit_timeout
        if len(seconds) < 3:  # nothing to compare with yet: only a unit that hangs for an hour is lost
            return max(3600.0, self.min_unit_timeout)
        return max(self.min_unit_timeout, TIMEOUT_FACTOR * max(seconds))

    def _drop(self, shape: tuple[float, float], actor: Any) -> None:
        """Kill a dead or stuck actor for good and take it out of the pool; the next map tops the pool up
        to what the cluster holds then (a lost node's share is not waited for)."""
        self.ray.kill(actor, no_restart=True)
        pool = self._pools.get(shape, [])
        if actor in pool:
            pool.remove(actor)

    def map(self, task: Task, units: Iterable[Any]) -> Iterator[tuple[Any, dict | Failure]]:
        self.start()  # (a no-op once started)
        units = list(units)
        if not units:
            return
        _ship_custom_code(task)
        flight = _Flight(self, task, units)
        flight.fill()
        try:
            while flight.pending:
                ready, _ = self.ray.wait(list(flight.pending), num_returns=1, timeout=POLL_S)
                if not ready:
                    yield from flight.overdue()
                    continue
                yield flight.settle(ready[0])
                flight.submit()
        finally:
            flight.abandon()


class _Flight:
    """One map's units in flight on the pool's actors: at most IN_FLIGHT_PER_WORKER per actor, each timed."""

    def __init__(self, executor: RayExecutor, task: Task, units: list[Any]):
        self.ex, self.ray = executor, executor.ray
        self.shape = executor._shape(task)
        self.token, self.box = uuid.uuid4().hex, [self.ray.put(task)]  # the task travels once per worker
        self.live = {id(a): a for a in executor._pool(task, len(units))}
        self.load = dict.fromkeys(self.live, 0)                  # units in flight per live actor
        self.todo, self.left = units, len(units)                 # units not yet submitted: the last `left`
        self.pending: dict[Any, tuple[Any, Any, float]] = {}   # ref -> (unit, actor, submitted at)
        self.seconds: list[float] = []                          # how long finished units took

    def fill(self) -> None:
        for _ in range(len(self.live) * IN_FLIGHT_PER_WORKER):
            self.submit()

    def submit(self) -> None:
        """The next unit to the least loaded actor, if it has room."""
        if not self.live:  # every worker of this map was lost: start one more where the cluster has room
            fresh = self.ex._start(self.shape)
            self.ex._pools.setdefault(self.shape, []).append(fresh)
            self.live[id(fresh)], self.load[id(fresh)] = fresh, 0
        key = min(self.load, key=self.load.get)
        # A second unit waits on a busy worker (so that it never idles between units) only while there are more
        # units left than workers: at the tail, a unit queued behind another would wait there while a worker
        # that has finished its own idles (a straggler of up to one unit's time); it goes to the first free one.
        room = IN_FLIGHT_PER_WORKER if self.left > len(self.live) else 1
        if self.load[key] >= room or not self.left:
            return
        unit = self.todo[len(self.todo) - self.left]
        self.left -= 1
        self.pending[self.live[key].run.remote(self.token, self.box, unit)] = (unit, self.live[key], time.monotonic())
        self.load[key] += 1

    def lose(self, actor: Any) -> None:
        if self.live.pop(id(actor), None) is not None:
            del self.load[id(actor)]
            self.ex._drop(self.shape, actor)

    def overdue(self) -> Iterator[tuple[Any, Failure]]:
        """Units past the time limit fail (their actors are presumed lost and dropped); others take their place."""
        now, limit = time.monotonic(), self.ex._limit(self.seconds)
        for ref in [r for r, (_, _, t0) in self.pending.items() if now - t0 > limit]:
            unit, actor, t0 = self.pending.pop(ref)
            self.lose(actor)
            log.warning("shard %s: no result after %.0fs (limit %.0fs): its worker is presumed lost",
                        unit.shard.rel, now - t0, limit)
            yield unit, Failure(f"no result after {now - t0:.0f}s (limit {limit:.0f}s): a lost node or a stuck worker")
            self.submit()

    def settle(self, ref: Any) -> tuple[Any, dict | Failure]:
        """A finished unit's result, or a Failure when its worker died (killed, out of memory, node gone)."""
        unit, actor, t0 = self.pending.pop(ref)
        try:
            result = self.ray.get(ref)
            self.seconds.append(time.monotonic() - t0)
            if id(actor) in self.load:
                self.load[id(actor)] -= 1
        except self.ray.exceptions.RayError as e:
            result = Failure(f"worker failed: {e!r}", traceback.format_exc())
            self.lose(actor)
        return unit, result

    def abandon(self) -> None:
        """Work still in flight (an error, or the caller stopped early) belongs to actors of this run: kill them
        rather than cancel actor tasks (Ray refuses a forced cancel of those)."""
        for actor in {id(a): a for _, a, _ in self.pending.values()}.values():
            self.lose(actor)


@contextmanager
def _keeping_sigterm() -> Iterator[None]:
    """Keep the caller's SIGTERM handler through `ray.init`, which replaces it with its own (exit 15) and then
    with a native one that prints a crash dump: the CLI's handler unwinds the run instead (stopping the
    workers and this Ray, releasing the lease) and exits 143. A caller without a handler of its own gets
    Ray's Python handler, without the dump."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        keep = before if callable(before) else signal.getsignal(signal.SIGTERM)
        if main and keep is not None:
            signal.signal(signal.SIGTERM, keep)


def _ship_custom_code(task: Task) -> None:
    """Pickle user code by value so workers need not import the user's module from disk."""
    from ray import cloudpickle

    stage = getattr(task, "stage", None)
    if stage is None:
        return
    module = (getattr(stage, "fn", None) or type(stage)).__module__  # a @curate.stage function, or a Stage class
    if not module.startswith(("curate", "flows", "kernels")) and module in sys.modules:
        try:
            cloudpickle.register_pickle_by_value(sys.modules[module])
        except ValueError:
            pass  # builtins and the like cannot be registered; they import fine
