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
from prefect.artifacts import create_markdown_artifact, create_table_artifact
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
    get_run_logger().info(phase_line(stats))


def phase_line(stats: dict[str, Any]) -> str:
    """One log line per phase: its rate over the rows computed, or `reused` when nothing was."""
    rate = f"{stats['rows_per_s']:,.0f} rows/s" if stats.get("rows_per_s") else "reused" if stats["reused"] else "-"
    return (f"{stats['phase']}: {stats['rows']:,} rows, {stats['shards']} shards ({stats['reused']} reused, "
            f"{stats['failed']} failed) in {stats['seconds']:.1f}s, {rate}")


def report_markdown(summary: dict[str, Any], page: Path) -> str:
    """The run as the Prefect UI shows it (a markdown artifact): the counts, where the rows went, each stage;
    and where the HTML report lies. (A browser does not open a file:// link from an http page, so the
    artifact holds the facts rather than linking to them.)"""
    r = summary["result"]
    lines = [f"# {summary['pipeline']}: {r['kept']:,} of {r['in']:,} rows kept",
             f"dropped {r['dropped']:,}, errored {r['errored']:,}, in failed shards {r['failed_shard_rows']:,}", "",
             "## Where the rows went", "", "| policy | type | kept | dropped | errored |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {p['type']} | {p['kept']:,} | {p['dropped']:,} | {p['errored']:,} |"
              for name, p in summary["policies"].items()]
    lines += ["", "## Stages", "", "| stage | scored | errored | shards computed | reused | rows/s |",
              "|---|---|---|---|---|---|"]
    for name, st in summary["stages"].items():
        rate = f"{st['rows_per_s']:,.0f}" if st["units_computed"] and st.get("rows_per_s") else "reused"
        lines.append(f"| {name} | {st['scored']:,} | {st['errored']:,} | {st['units_computed']} | "
                     f"{st['units_reused']} | {rate} |")
    not_read = summary.get("inputs", {}).get("not_read") or []
    if not_read:
        lines += ["", f"Not read ({len(not_read)} file(s) of another format than `{summary['format']}`): "
                      + ", ".join(f"`{f}`" for f in not_read[:10])]
    lines += ["", f"The full HTML report (galleries, histograms, duplicates) is `{page}` on the machine that ran "
                  f"the flow: open it there, or `curate report {page.parent} --output FILE` to write it elsewhere."]
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
    create_markdown_artifact(report_markdown(published, page), key="curate-summary",
                             description=f"{published['pipeline']}: the run (report: {page})")
    create_table_artifact([{"policy": k, "type": v["type"], "kept": v["kept"], "dropped": v["dropped"],
                            "errored": v["errored"]} for k, v in published["policies"].items()], key="curate-policies")
    return published["result"]


if __name__ == "__main__":
    curate_flow()
