"""Executors run units of work: a Task is set up once per worker, then called once per unit.

`Executor` is the protocol the engine uses. The executors that have a name (for configs, the CLI and the
flow) are the one table `EXECUTORS` below: a name and a factory whose keyword arguments are the executor's
own options. Adding an executor is one entry there. Front doors build theirs with `build_executor`; any
object with `name` and `map` can be passed to `curate.run(executor=...)` instead (`as_executor`).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

from curate import extras
from curate.engine.task import Failure, Started, Task
from curate.errors import ConfigError

__all__ = ["DEFAULT_EXECUTOR", "EXECUTORS", "Executor", "Failure", "Started", "Task", "as_executor", "build_executor"]
log = logging.getLogger(__name__)

DEFAULT_EXECUTOR = "ray"   # the one default: library, CLI, flow and join alike


@runtime_checkable
class Executor(Protocol):
    """Runs `task` over `units`, yielding each unit with its result (the sidecar dict) or a Failure,
    in any order. A task raising must become a Failure, never an exception out of `map`.

    `start(preload)` is called once by the run, after it holds the run directory, before the first unit
    (`preload`: modules every worker should import as it starts); `close()` once at the end. `in_process`
    says whether units run in the caller's process (the run then keeps a fit's reads for its scores)."""

    name: str
    in_process: bool

    def start(self, preload: tuple[str, ...] = ()) -> Started: ...

    def map(self, task: Task, units: Iterable[Any]) -> Iterator[tuple[Any, dict | Failure]]: ...

    def close(self) -> None: ...


class _Borrowed:
    """A caller's executor object: used, never closed (it is not the run's to close), and given the
    protocol's optional parts when it lacks them (a minimal executor has only `name` and `map`)."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.name = inner.name
        self.in_process = bool(getattr(inner, "in_process", False))

    def start(self, preload: tuple[str, ...] = ()) -> Started:
        start = getattr(self.inner, "start", None)
        return start(preload) if start is not None else Started()

    def map(self, task: Task, units: Iterable[Any]) -> Iterator[tuple[Any, dict | Failure]]:
        return self.inner.map(task, units)

    def close(self) -> None:
        pass


def _local() -> Executor:
    from curate.engine.local import LocalExecutor

    return LocalExecutor()


def _ray(ray_address: str | None = None, workers: int | None = None, unit_timeout: float | None = None) -> Executor:
    """A local Ray of the run's own, or the cluster at `ray_address` / RAY_ADDRESS, with at most `workers`
    CPU workers, abandoning a unit after `unit_timeout` seconds. Without Ray installed: the local executor
    (same results when BLAS and OpenMP run one thread, as Ray's workers do) after a notice, unless a cluster was
    asked for."""
    address = ray_address or os.environ.get("RAY_ADDRESS") or None
    if not extras.installed("ray"):
        if address:
            extras.require("ray", f"the Ray cluster {address!r}")
        log.warning("Ray is not installed, so this run uses the local executor (in-process; Ray's results when "
                    "OMP_NUM_THREADS=1); "
                    "%s for the ray executor", extras.install_line("ray"))
        return _local()
    from curate.engine.ray import RayExecutor  # imports ray only when asked for

    return RayExecutor(address=address, workers=workers, unit_timeout=unit_timeout)


# name -> factory; the factory's keyword arguments are the executor's options (None: the executor's default)
EXECUTORS: dict[str, Callable[..., Executor]] = {"local": _local, "ray": _ray}


def build_executor(name: str, settings: dict[str, Any] | None = None, **options: Any) -> Executor:
    """The executor called `name`, with the options it takes. Options left None are not passed; an option this
    executor has no use for (a Ray address for `local`) is refused by name. `settings` are the pipeline's
    (its `unit_timeout`): each goes to the executors that take it, and the others do without it."""
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)} or pass an Executor object")
    factory = EXECUTORS[name]
    accepted = factory.__code__.co_varnames[:factory.__code__.co_argcount]
    given = {k: v for k, v in options.items() if v is not None}
    unused = sorted(set(given) - set(accepted))
    if unused:
        raise ConfigError(f"executor {name!r} takes no {', '.join(unused)} (it takes: {', '.join(accepted) or 'no options'})")
    given.update({k: v for k, v in (settings or {}).items() if v is not None and k in accepted and k not in given})
    return factory(**given)


def as_executor(executor: str | Any, settings: dict[str, Any] | None = None, **options: Any) -> Executor:
    """An executor from a name (built here, with `settings` and `options`: see `build_executor`) or a caller's
    object (borrowed: never closed)."""
    if isinstance(executor, str):
        return build_executor(executor, settings, **options)
    if not (hasattr(executor, "map") and hasattr(executor, "name")):
        raise TypeError(f"executor must be a name ({', '.join(EXECUTORS)}) or an Executor, got {executor!r}")
    return _Borrowed(executor)
