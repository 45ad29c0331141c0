"""What the ray executor (engine/ray.py) and the shared local Ray (engine/rayhead.py) both use: the worker
actor, its environment, and how a local Ray is kept on loopback and its processes found."""
from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from curate.engine.task import Failure, Task

# One thread per worker: on small shared machines oversubscribed BLAS/polars threads were 10-30x slower.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1", "MKL_NUM_THREADS": "1",
              "RAY_USAGE_STATS_ENABLED": "0"}
# Task events feed Ray's dashboard and state API, which the local Rays started here (a run's own, the shared
# one) run without. Reported, they made a driver's disconnect wait ~0.25 s on most runs. Set (unless the user
# set them) before a process imports Ray to start or join a local Ray; a cluster's own settings are left alone.
LOCAL_RAY_ENV = {"RAY_task_events_report_interval_ms": "0"}


def quiet_local_ray() -> None:
    for k, v in LOCAL_RAY_ENV.items():
        os.environ.setdefault(k, v)


class _Worker:
    """A long-lived worker: sets up each map's task once (by token), then runs its units."""

    def __init__(self, preload: tuple[str, ...] = ()) -> None:
        # Every task is a class of engine/units.py: import it (Arrow's Parquet and compute modules, the dataset
        # and store) while the pool starts, not inside the first unit of the first map, and so the modules of
        # the run's stages (`preload`: numba kernels, tokenizers, torch for the embedders). (curate's API,
        # config reader and report are not imported: curate/__init__ loads them lazily.)
        import curate.engine.units  # noqa: F401

        self.token: str | None = None
        self.task: Task | None = None
        self._import(preload)

    @staticmethod
    def _import(preload: tuple[str, ...]) -> None:
        import importlib

        for module in preload:
            try:
                importlib.import_module(module)
            except ImportError:  # (a node without an extra) the first unit needing it fails with this error,
                continue         # as a Failure naming the shard, instead of the pool failing to start

    def prepare(self, env: dict[str, str], path: list[str], preload: tuple[str, ...]) -> bool:
        """Lent to a run (a worker of the shared Ray's warm pool): take that run's CURATE_* settings (a worker
        is the raylet's child, not the driver's) and the driver's import path (as Ray gives a job's own
        workers), import its stages' modules, and forget the last run's task and path."""
        for key in [k for k in os.environ if k.startswith("CURATE_") and k not in env]:
            del os.environ[key]
        os.environ.update(env)
        for entry in getattr(self, "_added", []):
            if entry in sys.path:
                sys.path.remove(entry)
        self._added = [p for p in path if p not in sys.path]
        sys.path.extend(self._added)
        self.task, self.token = None, None
        self._import(preload)
        return True

    def run(self, token: str, box: list, unit: Any) -> dict | Failure:
        import ray

        try:
            if token != self.token:
                self.task, self.token = None, None
                task = ray.get(box[0])  # the task travels once per worker, not once per unit
                task.setup()
                self.task, self.token = task, token
            return self.task(unit)
        except Exception as e:  # returned, not raised: the engine decides about retries
            return Failure.of(e, traceback.format_exc())

    def ready(self) -> bool:
        return True


@contextmanager
def _loopback_only(ray: Any) -> Iterator[None]:
    """A local Ray binds its services (GCS, raylet, workers, agents) to 127.0.0.1 only.

    Ray turns a loopback `_node_ip_address` into the machine's routable address (so that other nodes could
    join), and its gRPC servers then listen on all interfaces, unless cluster mode is off: the switch Ray
    reads at import from RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER. It is turned off only while this local Ray
    starts (its processes get the address as an argument), so joining a cluster later in the same process
    is unaffected. tests/engine/test_executor.py checks every listening socket of a run.
    """
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def _session_pids(ray: Any) -> list[int]:
    """The processes of this Ray session: those whose command lines name its session folder (GCS, raylet,
    monitors), and their children. The raylet's dashboard and runtime-env agents (and its workers) rename
    themselves (`ray::DashboardAgent`), so only their parent finds them; they are up once a worker has started."""
    import psutil

    session = os.path.basename(ray._private.worker._global_node.get_session_dir_path())
    pids = set()
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.pid != os.getpid() and session in " ".join(p.info["cmdline"] or []):
                pids |= {p.pid, *(c.pid for c in p.children(recursive=True))}
        except psutil.NoSuchProcess:
            continue
    return sorted(pids)


