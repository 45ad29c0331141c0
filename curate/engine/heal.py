"""Healing a run that reads a damaged file of its run directory: recompute the file's unit, then go on.

Every read of a unit's file is checked against the unit's sidecar (curate/layout.py `read_unit`,
engine/shuffle.py), wherever it happens: in this process (the fit reading its maps, decide reading
scores) or in a worker, in the middle of a later unit that reads an upstream file (that unit returns a
Failure carrying the DamagedFileError; engine/run.py raises it once the map is over). A phase of the run
(`plan`, `fit`, `score`, `decide`) wrapped in `heals` then has the run forget the damaged unit, and what
was built from it (`Run.repair`), and runs again: every intact unit is reused, the forgotten one is
recomputed, and the unit that read it is retried. A file found damaged again after being recomputed
twice means the storage does not keep what is written to it: the run stops with that message.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from curate.errors import DamagedFileError

F = TypeVar("F", bound=Callable[..., Any])


def heals(phase: F) -> F:
    """A phase of Run that, when it reads a damaged file, repairs it (`self.repair`) and runs again."""

    @functools.wraps(phase)
    def healing(self: Any, *args: Any, **kwargs: Any) -> Any:
        while True:
            try:
                return phase(self, *args, **kwargs)
            except DamagedFileError as damaged:
                self.repair(damaged)  # raises once the same file came back damaged too often

    return healing  # type: ignore[return-value]
