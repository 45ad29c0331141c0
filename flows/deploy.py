"""Scheduled Prefect deployments of curate configs, served by this process (`curate deploy`, `make ui`).

A served deployment runs in the process that serves it (Prefect's `serve`: no work pool, no worker), so
the runs see this machine's data and weights. The config is code (it names Python to import), so the
serving process allows only the configs it was given: CURATE_ALLOWED_CONFIGS, checked by the flow itself,
whatever `config` is typed into the UI for a custom run.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from curate import api
from curate.config import load_config
from curate.errors import ConfigError, CurateError
from flows.curate_flow import ALLOWED_CONFIGS, curate_flow  # imports Prefect: set PREFECT_API_URL first (flows.server)


def deployment(config: str | os.PathLike, data: str | None = None, out: str | None = None, cron: str | None = None,
               name: str | None = None, active: bool = True, executor: str = api.DEFAULT_EXECUTOR) -> Any:
    """A deployment of the flow for one config. The config is loaded now, so that a broken config, a missing
    dataset setting or a missing extra is refused here rather than at the first scheduled run."""
    from prefect.schedules import Cron

    pipeline, default_data = load_config(config)
    if not (data or default_data):
        raise ConfigError(f"{config}: names no dataset; pass --data")
    schedules = None
    if cron:
        try:
            schedules = [Cron(cron, active=active)]
        except ValueError as e:
            raise ConfigError(f"--cron {cron!r} is not a cron schedule ({e}); e.g. '0 3 * * *' (03:00 daily)") from e
    return curate_flow.to_deployment(
        name=name or Path(config).stem, schedules=schedules, tags=["curate"],
        parameters={"config": str(config), "data": _absolute(data), "out": _absolute(out), "executor": executor},
        description=f"curate pipeline {pipeline.name!r} from {config} over {data or default_data}")


def _absolute(path: str | None) -> str | None:
    """A local path as an absolute one (runs must not depend on the serving process's folder); URIs as given."""
    return path if path is None or "://" in path else str(Path(path).resolve())


def allow(*configs: str | os.PathLike) -> None:
    """Let served runs use these configs (files or folders) besides those CURATE_ALLOWED_CONFIGS already names."""
    current = [p for p in os.environ.get(ALLOWED_CONFIGS, "").split(os.pathsep) if p]
    os.environ[ALLOWED_CONFIGS] = os.pathsep.join(dict.fromkeys([*current, *(str(Path(c).resolve()) for c in configs)]))


def serve(*deployments: Any) -> None:
    """Register the deployments and run their scheduled and UI-triggered runs until interrupted."""
    from prefect import serve as prefect_serve

    if not os.environ.get(ALLOWED_CONFIGS):
        raise CurateError(f"refusing to serve with no {ALLOWED_CONFIGS}: a served deployment must not run any config")
    prefect_serve(*deployments, print_starting_message=False)
