"""curate: score and prune large training sets; one manifest row per input row, every decision explained.

Public API (everything else may change):

    Pipeline, Stage, stage, Resources   build pipelines and custom filters
    TablesFitContext                    fit a stage on in-memory tables (tests, scripts)
    Threshold, KeepFraction, TopK       policies
    run, join, load_config              run a pipeline (or a config) over a dataset; Auto-FuzzyJoin two tables
    Executor                            the protocol `run(executor=...)` accepts beside "local" and "ray"
    load_manifest, load_summary, load_vectors, export   read and export results
    write_report                        the run's HTML report (report.html)
"""
from __future__ import annotations

from curate.api import DEFAULT_EXECUTOR, join, run
from curate.config import load_config
from curate.engine.executor import Executor
from curate.engine.export import export
from curate.errors import ConfigError, CurateError, DataError, RunFailed
from curate.layout import load_manifest, load_summary, load_vectors
from curate.pipeline import Pipeline
from curate.policy import KeepFraction, Policy, Threshold, TopK
from curate.progress import Progress
from curate.report import write_report
from curate.stage import Resources, Stage, TablesFitContext, stage

__version__ = "0.1.0"

__all__ = ["Pipeline", "Stage", "stage", "Resources", "TablesFitContext", "Policy", "Threshold", "KeepFraction", "TopK",
           "run", "join", "DEFAULT_EXECUTOR", "Executor", "load_config", "load_manifest", "load_summary", "load_vectors",
           "export", "write_report", "CurateError", "ConfigError", "DataError", "RunFailed", "Progress"]
