"""curate: score and prune large training sets; one manifest row per input row, every decision explained.

Public API (everything else may change):

    Pipeline, Stage, stage, Resources   build pipelines and custom filters
    TablesFitContext                    fit a stage on in-memory tables (tests, scripts)
    Threshold, KeepFraction, TopK       policies
    run, load_config                    run a pipeline over a dataset of Parquet shards
    load_manifest, load_summary, load_vectors, export   read and export results
    write_report                        the run's HTML report (report.html)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from curate.config import load_config
from curate.engine.progress import Progress
from curate.errors import ConfigError, CurateError, DataError, RunFailed
from curate.manifest import export, load_manifest, load_summary, load_vectors
from curate.pipeline import Pipeline
from curate.policy import KeepFraction, Policy, Threshold, TopK
from curate.report import write_report
from curate.stage import Resources, Stage, TablesFitContext, stage

__version__ = "0.1.0"

__all__ = ["Pipeline", "Stage", "stage", "Resources", "TablesFitContext", "Policy", "Threshold", "KeepFraction", "TopK", "run",
           "load_config", "load_manifest", "load_summary", "load_vectors", "export", "write_report", "CurateError", "ConfigError", "DataError",
           "RunFailed", "Progress"]


def run(pipeline: Pipeline, data: str | os.PathLike, out: str | os.PathLike, executor: str = "local",
        ray_address: str | None = None, workers: int | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Run the whole pipeline; returns the summary (also in `<out>/summary.json`).

    Finished units under `out` are reused, so re-running after a crash or a policy change is cheap.
    With `pipeline.materialize`, the kept rows are written to `<out>/curated` with the input schema.
    """
    from curate.engine.run import Run

    with Run(pipeline, data, out, executor=executor, ray_address=ray_address, workers=workers,
             progress=progress) as r:
        summary = r.all()
    if pipeline.materialize:
        out = Path(out)
        summary["exports"] = export(out, kept_ids=str(out / "kept_ids.txt"), removed_ids=str(out / "removed_ids.txt"),
                                    materialize=out / "curated")
    return summary
