"""A module a Ray worker imports as it starts (`RayExecutor(preload=("testkit.dies_on_start",))`) that kills
that worker with SIGKILL, as a kill -9 of a worker while the pool starts does.

CURATE_TEST_DIE_ON_START names a marker file: the first worker to import this module creates it and dies,
the others start normally. Set to `always`, every worker dies.
"""
from __future__ import annotations

import os
import signal


def _first(marker: str) -> bool:
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


_where = os.environ.get("CURATE_TEST_DIE_ON_START")
if _where == "always" or (_where and _first(_where)):
    os.kill(os.getpid(), signal.SIGKILL)
