"""Executors run units of work: a Task is set up once per worker, then called once per unit.

`Executor` is the protocol the engine uses; `local` (engine/local.py, in-process) and `ray`
(engine/ray.py, a local Ray or a cluster) are its two implementations, named by `Run`. Any object with `map` (and, optionally, the
context-manager methods) can be passed to `curate.run(executor=...)` instead of a name.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from curate.errors import DamagedFileError
from curate.stage import Resources

EXECUTORS = ("local", "ray")


@dataclass
class Failure:
    """A unit that raised: the message for users and the traceback for `-v`. `fatal` failures (the run
    directory cannot be written) stop the run at once instead of being retried; `damaged`: the unit read a
    damaged file of the run directory, which the engine recomputes before it retries the unit."""

    message: str
    traceback: str = ""
    fatal: bool = False
    damaged: DamagedFileError | None = None

    @classmethod
    def of(cls, e: BaseException, tb: str, prefix: str = "") -> Failure:
        fatal = bool(getattr(e, "fatal", False))
        damaged = e if isinstance(e, DamagedFileError) else None
        return cls(prefix + (str(e) if fatal else repr(e)), tb, fatal, damaged)


class Task(Protocol):
    resources: Resources

    def setup(self) -> None: ...

    def __call__(self, unit: Any) -> dict: ...


@runtime_checkable
class Executor(Protocol):
    """Runs `task` over `units`, yielding each unit with its result (the sidecar dict) or a Failure,
    in any order. A task raising must become a Failure, never an exception out of `map`."""

    name: str

    def map(self, task: Task, units: Iterable[Any]) -> Iterator[tuple[Any, dict | Failure]]: ...
