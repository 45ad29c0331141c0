"""Where the Prefect server is, and whether it answers. Imports no Prefect: Prefect reads its settings (the API
URL among them) once, when first imported, so PREFECT_API_URL must be set before that."""
from __future__ import annotations

import os
import urllib.request

from curate.errors import CurateError

HOST = "127.0.0.1"   # the UI listens on this machine only
DEFAULT_PORT = 4200


def port() -> int:
    return int(os.environ.get("CURATE_UI_PORT", str(DEFAULT_PORT)))


def api_url() -> str:
    """The Prefect API deployments are registered with: PREFECT_API_URL, else `make ui`'s server."""
    return os.environ.get("PREFECT_API_URL") or f"http://{HOST}:{port()}/api"


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def check(url: str) -> None:
    """Refuse, with what to do, when no Prefect server answers at `url` (a deployment needs one to live in)."""
    if not healthy(url):
        raise CurateError(f"no Prefect server answers at {url}: start one with `make ui` (CURATE_UI_PORT picks its "
                          f"port) or `prefect server start`, or point PREFECT_API_URL at yours")
