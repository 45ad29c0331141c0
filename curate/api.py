"""The front door every caller uses: `run` a pipeline (or a config) over a dataset, or `join` two tables.

The CLI, the Prefect flow and library users all come through here, so a run is assembled one way:
plan, fit and score each stage, decide, then the exports and the report when asked for.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

from curate import registry
from curate.config import load_config
from curate.dataset import lists
from curate.engine.executor import DEFAULT_EXECUTOR, Executor, as_executor
from curate.engine.export import export
from curate.engine.gc import collect as gc
from curate.engine.run import Run
from curate.engine.verify import verify
from curate.errors import ConfigError, renamed
from curate.layout import RunLayout
from curate.pipeline import Pipeline
from curate.progress import Progress
from curate.report import write_report
from curate.storage import AnyPath, location

__all__ = ["DEFAULT_EXECUTOR", "gc", "join", "resolve", "run", "shared_ray", "train_classifier", "verify"]
verify_run = verify  # (`run` has a parameter of that name)

log = logging.getLogger(__name__)

T = TypeVar("T")
Phase = Callable[[str, Callable[[], T]], T]


def _call(name: str, fn: Callable[[], T]) -> T:
    return fn()


def resolve(pipeline: Pipeline | str | os.PathLike, data: str | os.PathLike | None,
            out: str | os.PathLike | None) -> tuple[Pipeline, str | os.PathLike, AnyPath]:
    """The pipeline (a config path is loaded), the dataset (else the config's `data`) and the run directory
    (else `runs/<pipeline name>`). A run directory inside the data folder is refused: its own files would
    be listed as shards of the next run."""
    default_data = None
    if not isinstance(pipeline, Pipeline):
        pipeline, default_data = load_config(pipeline)
    data = data or default_data
    if not data:
        raise ConfigError(f"pipeline {pipeline.name!r} names no dataset: pass `data` (CLI: --data PATH)")
    _check_path("data", data, "--data PATH, or `data:` in the config")
    _check_path("out", out or f"runs/{pipeline.name}", "--out DIR" if out else "the default runs/<name>: `name:`")
    out = location(out or f"runs/{pipeline.name}")
    if lists(data, out):
        raise ConfigError(f"the run directory {out} lies inside the data folder {data}, where its files would be "
                          f"read as shards; put it outside (--out), or in a folder whose name starts with `_`, "
                          f"which dataset listings skip")
    return pipeline, data, out


def _check_path(key: str, value: str | os.PathLike, where: str) -> None:
    """Refuse a path the OS cannot take (a NUL byte) by its key, before anything opens it."""
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else str(value)  # (an ObjectPath: its URI)
    if "\x00" in text:
        raise ConfigError(f"`{key}` ({where}) is not a usable path: it contains a NUL byte (\\x00): {text!r}")


def run(pipeline: Pipeline | str | os.PathLike, data: str | os.PathLike | None = None,
        out: str | os.PathLike | None = None, executor: str | Executor = DEFAULT_EXECUTOR,
        ray_address: str | None = None, workers: int | None = None, progress: Progress | None = None,
        report: bool = False, phase: Phase | None = None, verify: bool = False,
        verify_outputs: bool | None = None) -> dict[str, Any]:
    """Run the whole pipeline; returns the summary (also in `<out>/summary.json`).

    `pipeline` is a Pipeline or the path of a YAML config. `executor` is `"ray"` (a local Ray, or the
    cluster at `ray_address`/RAY_ADDRESS), `"local"` (in this process) or an Executor object. Finished
    units under `out` are reused, so re-running after a crash or a policy change is cheap. With
    `pipeline.materialize` the kept rows go to `<out>/curated` (and id lists beside it); with `report`,
    `<out>/report.html`. `phase(name, fn)` wraps each step (the Prefect flow makes each one a task).
    `verify` re-hashes every stored output and input first (`curate verify`), so that damaged units are
    recomputed instead of reused (`verify_outputs` is its old name). Phases are named as in the summary:
    `plan`, `fit:<stage>`, `score:<stage>`, `decide`, `export`, `report`.
    """
    if verify_outputs is not None:
        renamed("verify_outputs", "verify", "curate.run")
        verify = verify or verify_outputs
    pipeline, data, out = resolve(pipeline, data, out)
    for kind, items in (("stage", pipeline.stages), ("policy", pipeline.policies)):  # built in Python, not YAML:
        for item in items:  # a missing extra is refused here too, before any compute
            registry.check_installed(kind, item.type, item.get_params())
    executor = _executor(executor, ray_address, workers, pipeline.unit_timeout)
    call = phase or _call
    if verify and out.is_dir():
        call("verify", lambda: verify_run(out))
    with Run(pipeline, data, out, executor, progress=progress, verify=verify) as r:
        call("plan", r.plan)
        for stage in pipeline.stages:
            call(f"fit:{stage.name}", lambda stage=stage: r.fit(stage))
            call(f"score:{stage.name}", lambda stage=stage: r.score(stage))
        summary = call("decide", r.decide)
    layout = RunLayout(out)
    if pipeline.materialize:  # True: <out>/curated; a path: there (as `export(materialize=PATH)`)
        dest = layout.curated if pipeline.materialize is True else location(pipeline.materialize)
        summary["exports"] = call("export", lambda: export(out, kept_ids=layout.kept_ids, removed_ids=layout.removed_ids,
                                                           materialize=dest))
    if report:
        summary["report"] = str(call("report", lambda: write_report(out)))
    return summary


def _executor(executor: str | Executor, ray_address: str | None, workers: int | None,
              unit_timeout: float | None) -> Executor:
    """The executor named (built with its options: `ray_address`, `workers` and the pipeline's `unit_timeout`
    are the ray executor's), or the caller's own object, which takes its options in its constructor."""
    if not isinstance(executor, str) and (ray_address or workers):
        raise ConfigError("ray_address and workers configure a named executor; an Executor object takes its "
                          "options in its own constructor")
    # (the pipeline's unit_timeout goes to the executors that abandon units: ray; local runs them in this process)
    return as_executor(executor, settings={"unit_timeout": unit_timeout}, ray_address=ray_address, workers=workers)


def join(reference: str | os.PathLike | None = None, right: str | os.PathLike | None = None,
         on: list[str] | None = None, out: str | os.PathLike | None = None, right_id: str = "id",
         executor: str | Executor = DEFAULT_EXECUTOR, ray_address: str | None = None, workers: int | None = None,
         shards: int = 4, report: bool = False, left: str | os.PathLike | None = None, verify: bool = False,
         **stage_params: Any) -> dict[str, Any]:
    """Auto-FuzzyJoin R against the reference table L (`reference`): fit and apply; the manifest goes to `out`.

    `stage_params` are the `autofj` stage's parameters (`precision_target`, `reference_id`, ...). A CSV R is
    split into `shards` Parquet files under `<out>/input` first. A `matched` policy keeps the matched rows.
    `verify` re-hashes the stored outputs first, as `run(verify=True)`.
    """
    if left is not None:
        renamed("left", "reference", "curate.join")
        reference = reference or left
    if reference is None or right is None or not on or out is None:
        raise ConfigError("curate.join needs reference, right, on and out")
    registry.check_installed("stage", "autofj")  # the join extra, else its install line
    from curate.methods.autofj import AutoFJ
    from curate.methods.autofj.stage import csv_as_shards
    from curate.policy import Threshold

    out = location(out)
    data = csv_as_shards(right, out / "input", shards)
    unknown = sorted(set(stage_params) - set(AutoFJ.param_names()))
    if unknown:
        raise ConfigError(f"autofj has no parameter {', '.join(map(repr, unknown))}; its parameters: "
                          f"{', '.join(AutoFJ.param_names())} (`curate stages`)")
    stage = AutoFJ(reference=str(reference), on=list(on), **stage_params)
    # kept = matched, so the summary's kept/dropped/errored are the join's matched/unmatched/errored rows
    matched = Threshold(column=stage.column("matched"), min=1, name="matched")
    pipeline = Pipeline([stage], [matched], id_column=right_id, name="autofj-join")
    return run(pipeline, data, out, executor=executor, ray_address=ray_address, workers=workers, report=report,
               verify=verify)


def train_classifier(positive: list[str | os.PathLike], negative: list[str | os.PathLike], out: str | os.PathLike,
                     text_column: str = "text", label: str = "hq", negative_label: str = "lq", holdout: float = 0.1,
                     balance: bool = True, max_negatives: int | None = None, **params: Any) -> dict[str, Any]:
    """Train a fastText quality classifier (the DCLM recipe): `positive` files hold the target corpus, `negative`
    files the pool, sampled down to as many texts as the positives (`balance`) and at most `max_negatives`.
    Files are JSONL, Parquet or CSV (column `text_column`) or plain .txt (one document each). Writes the model
    at `out` and `<out>.json` (training files' sha256, counts, parameters, held-out metrics), which it returns;
    `params` are fastText's (`epoch`, `ngrams`, `dim`, `lr`, `bucket`, `min_count`, `threads`, `seed`).
    The model is what the `quality_classifier` stage's `model` names."""
    registry.check_installed("stage", "quality_classifier")  # the text extra, else its install line
    from curate.methods.quality_classifier.train import TrainParams, train

    unknown = sorted(set(params) - set(TrainParams.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"train_classifier: unknown parameter(s) {', '.join(unknown)}; known: "
                          f"{', '.join(TrainParams.__dataclass_fields__)}")
    return train([os.fspath(p) for p in positive], [os.fspath(p) for p in negative], out, text_column=text_column,
                 label=label, negative_label=negative_label, holdout=holdout, balance=balance,
                 max_negatives=max_negatives, params=TrainParams(**params))


def shared_ray(action: str, num_cpus: int | None = None) -> dict[str, Any]:
    """`start`, `stop` or `status` of the shared local Ray (engine/rayhead.py), which runs with the ray executor
    and no address connect to while it runs; returns its status (`state`: running, stopped or stale)."""
    from curate.engine import rayhead

    actions = {"start": lambda: rayhead.start(num_cpus), "stop": rayhead.stop, "status": rayhead.status}
    if action not in actions:
        raise ConfigError(f"unknown action {action!r} for the shared Ray; use start, stop or status")
    return actions[action]()
