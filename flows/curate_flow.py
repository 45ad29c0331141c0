"""The curate pipeline as a Prefect flow: one task per phase, Ray inside the tasks.

Units of work are content-keyed and idempotent, so Prefect's retries are safe: a retried task redoes
only what did not finish. Shards are not Prefect tasks; the engine fans them out over Ray.
Runs in Prefect's ephemeral mode with no server; `make ui` serves it with a schedule.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from curate.config import load_config
from curate.engine.progress import Progress
from curate.engine.run import Run
from curate.manifest import export
from curate.report import write_report


@task(name="plan", cache_policy=NO_CACHE)
def plan(run: Run) -> None:
    run.plan()


@task(name="fit", cache_policy=NO_CACHE, retries=1, task_run_name="fit-{stage}")
def fit(run: Run, stage: str) -> None:
    run.fit(stage)


@task(name="score", cache_policy=NO_CACHE, retries=1, task_run_name="score-{stage}")
def score(run: Run, stage: str) -> None:
    run.score(stage)


@task(name="policies", cache_policy=NO_CACHE)
def decide(run: Run) -> dict[str, Any]:
    return run.decide()


@task(name="export", cache_policy=NO_CACHE)
def materialize(out: Path) -> dict[str, Any]:
    return export(out, kept_ids=str(out / "kept_ids.txt"), removed_ids=str(out / "removed_ids.txt"),
                  materialize=out / "curated")


@task(name="report", cache_policy=NO_CACHE)
def report(out: Path) -> Path:
    return write_report(out)


def _report_phase(stats: dict[str, Any]) -> None:
    get_run_logger().info("%(phase)s: %(rows)s rows, %(shards)s shards (%(reused)s reused, %(failed)s failed) "
                          "in %(seconds)ss, %(rows_per_s)s rows/s", stats)


def _markdown(summary: dict[str, Any]) -> str:
    r = summary["result"]
    lines = [f"# {summary['pipeline']}: {r['kept']} of {r['in']} rows kept",
             f"dropped {r['dropped']}, errored {r['errored']}, in failed shards {r['failed_shard_rows']}", "",
             "| stage | scored | errored | shards computed | reused | rows/s |", "|---|---|---|---|---|---|"]
    for name, s in summary["stages"].items():
        lines.append(f"| {name} | {s['scored']} | {s['errored']} | {s['units_computed']} | {s['units_reused']} "
                     f"| {s['rows_per_s']} |")
    return "\n".join(lines)


@flow(name="curate", log_prints=True)
def curate_flow(config: str = "configs/demo.yaml", data: str | None = None, out: str | None = None,
                executor: str = "ray", ray_address: str | None = None) -> dict[str, Any]:
    """Run a curate config; returns the run's result counts (the full summary is in <out>/summary.json)."""
    pipeline, default_data = load_config(config)
    out_dir = Path(out or f"runs/{pipeline.name}")
    with Run(pipeline, data or default_data, out_dir, executor=executor, ray_address=ray_address,
             progress=Progress(enabled=False, listener=_report_phase)) as run:
        plan(run)
        for stage in pipeline.stages:
            fit(run, stage.name)
            score(run, stage.name)
        summary = decide(run)
    if pipeline.materialize:
        summary["exports"] = materialize(out_dir)
    page = report(out_dir)
    create_markdown_artifact(_markdown(summary) + f"\n\n[HTML report]({page.resolve().as_uri()})", key="curate-summary",
                             description=str(out_dir / "summary.json"))
    create_link_artifact(page.resolve().as_uri(), link_text=f"{summary['pipeline']} report", key="curate-report",
                         description=str(page))
    create_table_artifact([{"stage": k, "scored": v["scored"], "errored": v["errored"], "rows_per_s": v["rows_per_s"]}
                           for k, v in summary["stages"].items()], key="curate-stages")
    return summary["result"]


if __name__ == "__main__":
    curate_flow()
