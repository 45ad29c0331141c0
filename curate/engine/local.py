"""In-process executor: the reference for results, and what tests use."""
from __future__ import annotations

import traceback
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from curate.engine.store import writing_behind
from curate.engine.task import Failure, Started, Task


class LocalExecutor:
    """Runs units one after another in this process; one `setup` per map.

    A unit's output is written on a second thread while the next unit computes (Arrow's Parquet encoding
    and the writes release the GIL); a unit is yielded once its sidecar, the commit, is written."""

    name = "local"
    in_process = True

    def start(self, preload: tuple[str, ...] = ()) -> Started:
        return Started()

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def map(self, task: Task, units: Iterable[Any]) -> Iterator[tuple[Any, dict | Failure]]:
        try:
            task.setup()
        except Exception as e:  # a setup that fails fails every unit, each with the cause
            failure = Failure.of(e, traceback.format_exc(), "setup failed: ")
            for unit in units:
                yield unit, failure
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="curate-write") as writer:
            pending: tuple[Any, dict | Failure | Future] | None = None
            for unit in units:
                try:
                    with writing_behind(writer):
                        result = task(unit)
                except Exception as e:
                    result = Failure.of(e, traceback.format_exc())
                if pending is not None:
                    yield pending[0], _settled(pending[1])
                pending = unit, result
            if pending is not None:
                yield pending[0], _settled(pending[1])


def _settled(result: dict | Failure | Future) -> dict | Failure:
    """A unit's result once its writes are done (a failed write becomes the unit's Failure)."""
    if not isinstance(result, Future):
        return result
    try:
        return result.result()
    except Exception as e:
        return Failure.of(e, "".join(traceback.format_exception(e)))
