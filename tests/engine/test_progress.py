"""Progress helpers: bars only on a terminal, the same steps either way."""
from __future__ import annotations

import io
import sys
import time

from curate.progress import Progress, steps


def test_steps_walk_the_range_and_stay_silent_off_a_terminal(monkeypatch):
    err = io.StringIO()  # not a tty
    monkeypatch.setattr(sys, "stderr", err)
    assert list(steps(10, 3, "work")) == [0, 3, 6, 9]
    assert list(steps(0, 3, "work")) == []
    assert err.getvalue() == ""


def test_a_bar_reports_its_phase_to_the_listener():
    seen = []
    with Progress(enabled=False, listener=seen.append).bar("score", rows=10, shards=2) as bar:
        bar.update(6)
        bar.update(4, reused=True)
    assert [(s["phase"], s["rows"], s["shards"], s["reused"]) for s in seen] == [("score", 10, 2, 1)]


def test_a_phase_is_told_once_and_reused_shards_have_no_rate():
    """The scheduler closes a bar inside its `with`: the listener (the Prefect flow's log) hears it once; a phase
    of reused shards has no rows/s (not millions: nothing was computed), a mixed one counts computed rows only."""
    seen = []
    progress = Progress(enabled=False, listener=seen.append)
    with progress.bar("score:a", rows=1_000_000, shards=2) as bar:
        bar.update(500_000, reused=True)
        bar.update(500_000, reused=True)
        first = bar.close()
    assert len(seen) == 1 and bar.close() == first
    assert first["rows_per_s"] is None and first["reused"] == 2
    with progress.bar("score:b", rows=20, shards=2) as bar:
        bar.update(10, reused=True)
        time.sleep(0.1)
        bar.update(10)
        mixed = bar.close()
    assert len(seen) == 2 and 0 < mixed["rows_per_s"] <= 10 / 0.1  # (20 rows would be ~200/s)
