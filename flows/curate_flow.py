"""The curate pipeline as a Prefect flow: one task per phase, Ray inside the tasks.

Units of work are content-keyed and idempotent, so Prefect's retries are safe: a retried task redoes
only what did not finish. Shards are not Prefect tasks; the engine fans them out over Ray.
Runs in Prefect's ephemeral mode with no server; `make ui` serves it with a schedule.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from curate import api
from curate.errors import CurateError
from curate.layout import load_summary
from curate.progress import Progress

ALLOWED_CONFIGS = "CURATE_ALLOWED_CONFIGS"  # set by `make ui`: the folders a served deployment may run configs from
RETRIED = ("fit:", "score:")  # units are idempotent, so a retried fit or score redoes only what did not finish


def _as_task(name: str, fn: Callable[[], Any]) -> Any:
    """One Prefect task per phase of `curate.run` (plan, fit:<stage>, score:<stage>, decide, export, report)."""
    retries = 1 if name.startswith(RETRIED) else 0
    return task(fn, name=name, cache_policy=NO_CACHE, retries=retries)()


def check_allowed(config: str) -> None:
    """A config is code (it names Python to import): a served deployment runs only configs that are, by
    resolved path, a file of CURATE_ALLOWED_CONFIGS (os.pathsep-separated) or under one of its folders, never
    any path typed into the UI."""
    allowed = [Path(p).resolve() for p in os.environ.get(ALLOWED_CONFIGS, "").split(os.pathsep) if p]
    if allowed and not any(Path(config).resolve().is_relative_to(folder) for folder in allowed):
        raise CurateError(f"config {config!r} is not under an allowed folder or file ({', '.join(map(str, allowed))}); "
                          f"a served deployment runs only the configs it was started with")


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
                executor: str = api.DEFAULT_EXECUTOR, ray_address: str | None = None) -> dict[str, Any]:
    """Run a curate config; returns the run's result counts (the full summary is in <out>/summary.json)."""
    check_allowed(config)
    summary = api.run(config, data, out, executor=executor, ray_address=ray_address, report=True, phase=_as_task,
                      progress=Progress(enabled=False, listener=_report_phase))
    page = Path(summary["report"])
    published = load_summary(page.parent)  # what readers see: summary.json, its seal checked
    create_markdown_artifact(_markdown(published) + f"\n\n[HTML report]({page.resolve().as_uri()})",
                             key="curate-summary", description=str(page.parent / "summary.json"))
    create_link_artifact(page.resolve().as_uri(), link_text=f"{published['pipeline']} report", key="curate-report",
                         description=str(page))
    create_table_artifact([{"stage": k, "scored": v["scored"], "errored": v["errored"], "rows_per_s": v["rows_per_s"]}
                           for k, v in published["stages"].items()], key="curate-stages")
    return published["result"]


if __name__ == "__main__":
    curate_flow()
