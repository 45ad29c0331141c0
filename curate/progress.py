"""Progress bars: one per phase (rows and shards, rows/s, ETA); silent when not on a terminal.

A `listener` (e.g. the Prefect flow) receives the same numbers when each bar closes.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

Listener = Callable[[dict[str, Any]], None]


class Progress:
    def __init__(self, enabled: bool | None = None, listener: Listener | None = None):
        # None: show bars only on a terminal, so logs and CI output stay clean.
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.listener = listener

    def bar(self, phase: str, rows: int, shards: int) -> Bar:
        return Bar(self, phase, rows, shards)


class Bar:
    def __init__(self, progress: Progress, phase: str, rows: int, shards: int):
        self.progress, self.phase, self.shards_total = progress, phase, shards
        self.shards_done = self.reused = self.failed = self.rows = self.rows_reused = 0
        self.t0 = time.perf_counter()
        self._stats: dict[str, Any] | None = None  # once closed: `close` again returns these, tells no one again
        self._bar = tqdm(total=rows, desc=phase, unit="rows", unit_scale=True, dynamic_ncols=True,
                         disable=not progress.enabled, file=sys.stderr,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} rows "
                                    "[{elapsed}<{remaining}, {rate_fmt}]{postfix}")

    def update(self, rows: int, reused: bool = False, failed: bool = False) -> None:
        self.shards_done += 1
        self.reused += reused
        self.failed += failed
        self.rows += rows
        self.rows_reused += rows if reused else 0
        self._bar.update(rows)
        self._bar.set_postfix_str(f"shards {self.shards_done}/{self.shards_total}"
                                  + (f", {self.reused} reused" if self.reused else "")
                                  + (f", {self.failed} FAILED" if self.failed else ""), refresh=False)

    def close(self) -> dict[str, Any]:
        """The phase's numbers, told to the listener once (a second close, e.g. the `with` after an explicit
        close, returns the same numbers). The rate counts the rows computed here: reused shards took no time."""
        if self._stats is not None:
            return self._stats
        self._bar.close()
        seconds = time.perf_counter() - self.t0
        computed = self.rows - self.rows_reused
        self._stats = stats = {
            "phase": self.phase, "rows": self.rows, "shards": self.shards_done, "reused": self.reused,
            "failed": self.failed, "seconds": round(seconds, 3),
            "rows_per_s": round(computed / seconds, 1) if seconds > 0 and computed else None}
        if self.progress.listener:
            self.progress.listener(stats)
        return stats

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def steps(total: int, step: int, desc: str):
    """range(0, total, step) with a bar on a terminal, for long work inside one process (a stage's fit).

    Short loops (at most 4 steps) and non-terminals (logs, CI, Ray workers) stay silent.
    """
    return tqdm(range(0, total, step), desc=desc, unit="step", leave=False, file=sys.stderr, dynamic_ncols=True,
                disable=not sys.stderr.isatty() or total <= 4 * step)
