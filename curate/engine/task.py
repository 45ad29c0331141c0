"""What executors run: a Task is set up once per worker and then called once per unit of work."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from curate.stage import Resources


@dataclass
class Failure:
    """A unit that raised: the message for users and the traceback for `-v`."""

    message: str
    traceback: str = ""


class Task(Protocol):
    resources: Resources

    def setup(self) -> None: ...

    def __call__(self, unit: Any) -> dict: ...
