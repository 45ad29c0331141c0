"""Progress helpers: bars only on a terminal, the same steps either way."""
from __future__ import annotations

import io
import sys

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
