"""In-process executor: the reference for results, and what tests use."""
from __future__ import annotations

import traceback
from collections.abc import Iterable, Iterator
from typing import Any

from curate.engine.executor import Failure, Task


class LocalExecutor:
    """Runs units one after another in this process; one `setup` per map."""

    name = "local"

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def map(self, task: Task, units: Iterable[Any]) -> Iterator[tuple[Any, dict | Failure]]:
        try:
            task.setup()
        except Exception as e:  # a setup that fails fails every unit, each with the cause
            failure = Failure.of(e, traceback.format_exc(), "setup failed: ")
            for unit in units:
                yield unit, failure
            return
        for unit in units:
            try:
                yield unit, task(unit)
            except Exception as e:
                yield unit, Failure.of(e, traceback.format_exc())
