"""curate: score and prune large training sets; one manifest row per input row, every decision explained.

Public API (everything else may change):

    Pipeline, Stage, stage, Resources   build pipelines and custom filters
    TablesFitContext                    fit a stage on in-memory tables (tests, scripts)
    Threshold, KeepFraction, TopK       policies
    run, join, load_config              run a pipeline (or a config) over a dataset; Auto-FuzzyJoin two tables
    train_classifier                    train a fastText quality classifier (`quality_classifier` stage's model)
    Executor                            the protocol `run(executor=...)` accepts beside "local" and "ray"
    load_manifest, load_summary, load_vectors, export   read and export results
    write_report                        the run's HTML report (report.html)
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from curate.api import DEFAULT_EXECUTOR, join, run, train_classifier
    from curate.config import load_config
    from curate.engine.executor import Executor
    from curate.engine.export import export
    from curate.layout import load_manifest, load_summary, load_vectors
    from curate.pipeline import Pipeline
    from curate.policy import KeepFraction, Policy, Threshold, TopK
    from curate.progress import Progress
    from curate.report import write_report

# Imported now: what every worker needs anyway. `curate.stage` is the module curate/stage.py, which is callable
# as the `stage` decorator, so `@curate.stage(...)` and `import curate.stage` agree.
from curate import stage
from curate.errors import (
    ConfigError,
    CurateError,
    DataError,
    InternalError,
    LeaseLost,
    RunFailed,
    RunLocked,
    StorageError,
)
from curate.stage import Resources, Stage, TablesFitContext
from kernels.deferred_imports import defer_pandas

defer_pandas()  # Arrow without pandas until the process imports it (~0.3 s a process): kernels/deferred_imports.py

__version__ = "0.1.0"

# Imported on first use (PEP 562): a worker process that unpickles a task imports `curate.engine.units` and what
# its stage needs, not the API, the config reader, Polars and the report (half a second per worker otherwise).
_PUBLIC = {
    "curate.api": ["DEFAULT_EXECUTOR", "join", "run", "train_classifier"],
    "curate.config": ["load_config"],
    "curate.engine.executor": ["Executor"],
    "curate.engine.export": ["export"],
    "curate.layout": ["load_manifest", "load_summary", "load_vectors"],
    "curate.pipeline": ["Pipeline"],
    "curate.policy": ["KeepFraction", "Policy", "Threshold", "TopK"],
    "curate.progress": ["Progress"],
    "curate.report": ["write_report"],
}
_HOME = {name: module for module, names in _PUBLIC.items() for name in names}

__all__ = ["Pipeline", "Stage", "stage", "Resources", "TablesFitContext", "Policy", "Threshold", "KeepFraction", "TopK",
           "run", "join", "train_classifier", "DEFAULT_EXECUTOR", "Executor", "load_config", "load_manifest", "load_summary", "load_vectors",
           "export", "write_report", "CurateError", "ConfigError", "DataError", "RunFailed", "StorageError", "RunLocked",
           "LeaseLost", "InternalError", "Progress"]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
    else:  # a submodule not imported yet (`curate.engine` after a bare `import curate`)
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'curate' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
