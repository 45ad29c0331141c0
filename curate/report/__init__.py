"""A run's HTML report: one self-contained page (no network at view time) from summary.json + the manifest.

Sections: summary, accounting (per policy and stage, drops by reason), scores (a histogram of every
float manifest column with the policies' cuts, and a threshold sweep), then the sections stages and
policies give themselves (curate/presentation.py: the join's, the duplicate groups'), galleries (sampled
kept, dropped-per-policy and errored rows, with thumbnails or text read from the input shards), timing,
config and versions. Built generically: any stage or policy that lands shows up without changes here.
"""
from __future__ import annotations

import os

from curate.report.sections import SECTIONS
from curate.storage import AnyPath, location, write_whole

__all__ = ["SECTIONS", "write_report"]


def write_report(run_dir: str | os.PathLike | AnyPath, out: str | os.PathLike | None = None, seed: int = 0,
                 per_gallery: int | None = None) -> AnyPath:
    """Write `<run_dir>/report.html` (or `out`) and return its path."""
    from curate.report.page import (
        render,  # matplotlib and polars load only when a report is written
    )

    run_dir = location(run_dir)
    page = render(run_dir, seed=seed, per_gallery=per_gallery)
    path = location(out) if out else run_dir / "report.html"
    write_whole(path, page.encode("utf-8"))  # a reader never sees half a page
    return path
