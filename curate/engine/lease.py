"""One writer at a time on a run directory: a lease with an owner, a heartbeat and a takeover rule.

`lease.json` names the holder (owner token, host, pid and its start time, command, started-at) and is
rewritten every `ttl / 3` seconds with a fresh heartbeat. A second writer is refused while the holder
lives. A lease is stale, and is taken over with a warning, when its heartbeat is older than its `ttl`,
or when its holder ran on this host and that process is gone. The file is small and written whole
(a rename here, one PUT on an object store); after writing it, a writer reads it back to see that it
won. Readers (summary, export, report, load_manifest) never take the lease.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from typing import Any

import psutil

from curate.engine.files import write_json
from curate.errors import LeaseLost, RunLocked
from curate.layout import read_json
from curate.storage import AnyPath, ObjectPath, create_new, location

log = logging.getLogger(__name__)

DEFAULT_TTL = 60.0
SETTLE_LOCAL_S, SETTLE_OBJECT_STORE_S = 0.05, 1.0  # longer than two competing writes take to land


def _process_started(pid: int) -> float | None:
    """The start time of a live process on this host, or None when there is none with this pid."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:  # alive, but not ours to inspect
        return 0.0


def stale_reason(holder: dict[str, Any], now: float | None = None) -> str | None:
    """Why a lease no longer protects its holder (None while the holder lives)."""
    now = time.time() if now is None else now
    age = now - float(holder.get("heartbeat_at", 0))
    if age > float(holder.get("ttl", DEFAULT_TTL)):
        return f"its heartbeat is {age:.0f}s old (ttl {holder.get('ttl', DEFAULT_TTL):.0f}s)"
    if holder.get("host") == socket.gethostname():
        started = _process_started(int(holder.get("pid", -1)))
        if started is None:
            return f"process {holder.get('pid')} on this host is gone"
        recorded = holder.get("pid_started")
        if started and recorded and abs(started - float(recorded)) > 1.0:
            return f"process {holder.get('pid')} on this host is a different process now"
    return None


def describe(holder: dict[str, Any]) -> str:
    beat = time.time() - float(holder.get("heartbeat_at", 0))
    return (f"pid {holder.get('pid')} on host {holder.get('host')} (started {holder.get('started_at')}, "
            f"last heartbeat {beat:.0f}s ago, command: {holder.get('command')})")


def _how_lost(holder: dict[str, Any] | None) -> str:
    """How a writer lost its lease, completing "this run's lease ..."."""
    if not holder:
        return "file lease.json was removed while this run held it (by hand, or by a clean-up of the directory)"
    return f"was taken over by another run: {describe(holder)}"


class Lease:
    """The writer's lease on `root`; use as a context manager around everything a run writes."""

    def __init__(self, root: str | os.PathLike | AnyPath, ttl: float = DEFAULT_TTL):
        self.path = location(root) / "lease.json"
        self.ttl = ttl
        self.token = uuid.uuid4().hex
        self.lost: str | None = None
        self.took_over: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self, started_at: str) -> dict[str, Any]:
        return {"owner": self.token, "host": socket.gethostname(), "pid": os.getpid(),
                "pid_started": _process_started(os.getpid()), "started_at": started_at,
                "heartbeat_at": time.time(), "ttl": self.ttl, "command": " ".join(sys.argv)[:300]}

    def acquire(self) -> Lease:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        record = self._record(self._started_at)
        try:
            # the common case: nobody holds it; created atomically (locally), nobody else can hold it now
            settled = create_new(self.path, json.dumps(record).encode())
        except FileExistsError:
            settled = False
            holder = read_json(self.path)
            if holder is not None:
                reason = stale_reason(holder)
                if reason is None:
                    raise RunLocked(f"{self.path.parent} is being written by another run: {describe(holder)}; "
                                    f"wait for it to finish (readers such as `curate summary` need no lease), or "
                                    f"use another --out") from None
                log.warning("taking over the lease of %s: %s", self.path.parent, reason)
                self.took_over = {**holder, "reason": reason}
            write_json(self.path, record)
        # A writer that took over (or, on an object store, created) at the same moment wrote too: the last
        # write wins and the other sees it on reading back, once both writes have landed. An atomic create
        # has no such rival (a second writer's create fails, and it reads a whole, live lease), so it waits not.
        if not settled:
            time.sleep(SETTLE_OBJECT_STORE_S if isinstance(self.path, ObjectPath) else SETTLE_LOCAL_S)
        holder = read_json(self.path)
        if not holder or holder.get("owner") != self.token:
            raise RunLocked(f"{self.path.parent} was taken by another run at the same moment: "
                            f"{describe(holder or {})}")
        self._thread = threading.Thread(target=self._beat, name="curate-lease", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            holder = read_json(self.path)
            if not holder or holder.get("owner") != self.token:
                self.lost = _how_lost(holder)
                return
            try:
                write_json(self.path, self._record(self._started_at))
            except OSError as e:  # a full disk: the run will fail on its own writes; say why the lease aged
                log.warning("cannot renew the lease %s: %s", self.path, e)

    def check(self) -> None:
        """Raise LeaseLost if another writer has taken the run directory over."""
        holder = read_json(self.path)
        if self.lost or not holder or holder.get("owner") != self.token:
            raise LeaseLost(f"{self.path.parent}: this run's lease {self.lost or _how_lost(holder)}; stopping "
                            f"without publishing")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        holder = read_json(self.path)
        if holder and holder.get("owner") == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
