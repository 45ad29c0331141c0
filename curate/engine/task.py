"""What executors run and return: a Task (set up once per worker, called once per unit), a unit's Failure, and
the facts an executor reports when it starts. Apart from engine/executor.py so that the executors it names
(local.py, ray.py) need not import the table that names them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from curate.errors import DamagedFileError
from curate.stage import Resources


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


@dataclass
class Started:
    """What an executor reports once started: its start-up time, and the helper processes it started
    (a local Ray's services), which the run records so that the next run can stop them if this one is killed."""

    seconds: float = 0.0
    service_pids: list[int] = field(default_factory=list)


class Task(Protocol):
    resources: Resources

    def setup(self) -> None: ...

    def __call__(self, unit: Any) -> dict: ...
