"""Processes a killed run leaves behind: the services of a local Ray (GCS, raylet, dashboard and runtime-env
agents) can outlive a driver killed with SIGKILL. A run records them in `state/processes.json`; the next
run on the directory, once it holds the lease, stops those still alive (same pid and start time)."""
from __future__ import annotations

import logging
import os
import socket

import psutil

from curate.engine.files import write_json
from curate.engine.store import Store
from curate.layout import read_json

log = logging.getLogger(__name__)


def _path(store: Store):
    return store.root / "state" / "processes.json"


def record(store: Store, pids: list[int]) -> None:
    """Remember this run's helper processes (and this driver), to be stopped if the driver dies."""
    alive = []
    for pid in pids:
        try:
            alive.append([pid, psutil.Process(pid).create_time()])
        except psutil.NoSuchProcess:
            continue
    me = psutil.Process()
    write_json(_path(store), {"host": socket.gethostname(), "driver": [me.pid, me.create_time()], "processes": alive})


def forget(store: Store) -> None:
    _path(store).unlink(missing_ok=True)


def _same(pid: int, started: float) -> psutil.Process | None:
    try:
        p = psutil.Process(pid)
        return p if abs(p.create_time() - started) < 1.0 else None
    except psutil.NoSuchProcess:
        return None


def stop_left(store: Store) -> int:
    """Stop the recorded helpers of a driver that is gone; returns how many were still running."""
    rec = read_json(_path(store))
    if not rec or rec.get("host", socket.gethostname()) != socket.gethostname():
        return 0  # none, or another host's (a run directory on shared storage): its pids mean nothing here
    driver = rec.get("driver") or [0, 0.0]
    if driver[0] != os.getpid() and _same(*driver) is not None:
        return 0  # its driver still lives (it must have lost the lease): not ours to stop
    stopped = []
    for pid, started in rec.get("processes", []):
        p = _same(pid, started)
        if p is not None:
            p.kill()
            stopped.append(p)
    psutil.wait_procs(stopped, timeout=10)
    forget(store)
    if stopped:
        log.warning("stopped %d Ray process(es) left running by a killed run (pid %s)", len(stopped), driver[0])
    return len(stopped)
