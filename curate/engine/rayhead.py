"""A shared local Ray, started once per machine and left running (`curate ray start` / `stop` / `status`).

A run with the ray executor and no address connects to it (under a second) instead of starting a Ray of its
own (about 8 s) and shutting it down (about 1.1 s). It is a Ray like the per-run one: started by a small
holder process (`python -m curate.engine.rayhead`, in its own session) with the same loopback-only binding
and token authentication, but with a token of its own (random, never the default ~/.ray/auth_token). Its
address, token and holder pid are recorded in `ray-head.json` under the cache folder ($CURATE_CACHE, default
~/.cache/curate), readable by this user only. A run never stops it, and records none of its processes as
the run's own (engine/leftovers.py stops only what a killed run started); `curate ray stop` does.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from curate.errors import CurateError

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0
POOL_NAMESPACE = "curate-shared-pool"
POOL_PRELOAD = ("curate.engine.units", "curate.engine.task")  # (each run's own stage modules: on lending)
DISABLE_ENV = "CURATE_SHARED_RAY"  # "0": runs ignore a shared Ray (tests that need a Ray of their own)


def record_path() -> Path:
    return Path(os.environ.get("CURATE_CACHE") or Path.home() / ".cache" / "curate") / "ray-head.json"


def _read() -> dict | None:
    try:
        return json.loads(record_path().read_text())
    except (OSError, ValueError):
        return None


def _holder_alive(rec: dict) -> bool:
    try:
        p = psutil.Process(int(rec["pid"]))
        return abs(p.create_time() - float(rec["pid_started"])) < 1.0 and p.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def _port_open(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except (OSError, ValueError):
        return False


def status() -> dict[str, Any]:
    """{"state": "running" | "stopped" | "stale", "record": path, and the record's fields when there is one}.
    Stale: a record whose holder or GCS is gone (a reboot, a kill -9): runs then start a Ray of their own."""
    rec = _read()
    if rec is None:
        return {"state": "stopped", "record": str(record_path())}
    alive = _holder_alive(rec) and _port_open(rec.get("address", ""))
    shown = {k: v for k, v in rec.items() if k != "token"}  # (never printed: it lets anyone run code)
    return {"state": "running" if alive else "stale", "record": str(record_path()), **shown}


def live() -> dict | None:
    """The record of a running shared Ray (with its token) this process may use, else None."""
    if os.environ.get(DISABLE_ENV, "1") == "0":
        return None
    rec = _read()
    return rec if rec is not None and status()["state"] == "running" else None


def for_run() -> dict | None:
    """The shared local Ray's record when one runs (its token set for this process's Ray client), else None;
    a record whose Ray is gone is reported once, and the run starts a Ray of its own as without one."""
    rec = live()
    if rec is None:
        state = status()
        if state["state"] == "stale" and os.environ.get(DISABLE_ENV, "1") != "0":
            log.warning("the shared Ray recorded in %s (at %s) is gone; this run starts a Ray of its own "
                        "(`curate ray start` starts a shared one again)", state["record"], state.get("address"))
        return None
    os.environ["RAY_AUTH_MODE"], os.environ["RAY_AUTH_TOKEN"] = "token", rec["token"]
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    if "ray" in sys.modules:  # Ray read its auth settings at import: read them again, with this token
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    return rec


def start(num_cpus: int | None = None) -> dict[str, Any]:
    """Start the shared Ray (a no-op when one runs); returns its status. Waits until it takes connections."""
    now = status()
    if now["state"] == "running":
        return {**now, "started": False}
    if now["state"] == "stale":
        record_path().unlink(missing_ok=True)
    folder = record_path().parent
    folder.mkdir(parents=True, exist_ok=True)
    logfile = folder / "ray-head.log"
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    cmd = [sys.executable, "-m", "curate.engine.rayhead", str(num_cpus or os.cpu_count() or 1)]
    with open(logfile, "ab") as out:
        holder = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # (not stopped by the terminal's Ctrl-C)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if holder.poll() is not None:
            tail = logfile.read_text(errors="replace").strip().splitlines()[-5:]
            raise CurateError(f"the shared Ray did not start (exit {holder.returncode}); {logfile}: " + " | ".join(tail))
        if status()["state"] == "running":
            return {**status(), "started": True}
        time.sleep(0.1)
    holder.kill()
    raise CurateError(f"the shared Ray did not start within {START_TIMEOUT_S:.0f}s; see {logfile}")


def stop(timeout: float = 30.0) -> dict[str, Any]:
    """Stop the shared Ray: its holder shuts it down (SIGTERM); whatever of it is left after `timeout` is killed."""
    rec = _read()
    if rec is None:
        return {"state": "stopped", "stopped": False, "record": str(record_path())}
    stopped = False
    if _holder_alive(rec):
        holder = psutil.Process(int(rec["pid"]))
        holder.send_signal(signal.SIGTERM)
        try:
            holder.wait(timeout)
        except psutil.TimeoutExpired:
            holder.kill()
        stopped = True
    left = [p for p in _processes(rec.get("services", [])) if p.is_running()]
    for p in left:
        p.kill()
    psutil.wait_procs(left, timeout=10)
    record_path().unlink(missing_ok=True)
    return {"state": "stopped", "stopped": stopped or bool(left), "killed_left": len(left), "record": str(record_path())}


def _processes(services: list) -> list[psutil.Process]:
    found = []
    for pid, started in services:
        try:
            p = psutil.Process(pid)
            if abs(p.create_time() - started) < 1.0:
                found.append(p)
        except psutil.Error:
            continue
    return found


class _Lease:
    """The warm pool, held by one run at a time: an exclusive lock on a file, released by `close` or by the OS
    when the run's process ends (however it ends)."""

    def __init__(self, fd: int):
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def borrow(rec: dict) -> _Lease | None:
    """The lease on the shared Ray's warm pool, if it has one, this run's code path matches the workers' (they
    import curate from where the holder did) and no other run holds it; else None."""
    if not rec.get("pool") or rec.get("pythonpath", "") != os.environ.get("PYTHONPATH", ""):
        return None
    fd = os.open(record_path().with_name("ray-pool.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return _Lease(fd)


def pool_actors(ray: Any, n: int) -> list:
    """The first `n` workers of the warm pool (ValueError when one is missing: being replaced)."""
    return [ray.get_actor(f"worker-{i}", namespace=POOL_NAMESPACE) for i in range(n)]


def _keep_pool(ray: Any, n: int) -> None:
    """Start the warm pool's missing workers: detached (they outlive a run's job), named, holding no CPU (a run
    that uses them holds the lease; one that does not may start its own)."""
    from curate.engine.rayworker import _Worker

    for i in range(n):
        try:
            ray.get_actor(f"worker-{i}", namespace=POOL_NAMESPACE)
        except ValueError:
            ray.remote(_Worker).options(name=f"worker-{i}", namespace=POOL_NAMESPACE, lifetime="detached",
                                        num_cpus=0, max_restarts=0, max_task_retries=0).remote(POOL_PRELOAD)


def _write_record(rec: dict) -> None:
    """Written whole (a temporary file renamed) and readable by this user only: it holds the token."""
    path = record_path()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(rec, f)
    os.replace(tmp, path)


def _serve(num_cpus: int) -> None:
    """The holder: start a local Ray as a run does (loopback only, token auth), record it, wait for SIGTERM."""
    from curate.engine.rayworker import WORKER_ENV, _loopback_only, _session_pids, quiet_local_ray

    quiet_local_ray()
    import ray

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    with _loopback_only(ray):
        ctx = ray.init(address="local", num_cpus=num_cpus, _node_ip_address="127.0.0.1", include_dashboard=False,
                       log_to_driver=False, logging_level=logging.WARNING, runtime_env={"env_vars": WORKER_ENV})
    me = psutil.Process()
    services = []
    for pid in _session_pids(ray):  # (a process may end between listing and reading it)
        try:
            services.append([pid, psutil.Process(pid).create_time()])
        except psutil.Error:
            continue
    _keep_pool(ray, num_cpus)
    _write_record({"pool": num_cpus, "pythonpath": os.environ.get("PYTHONPATH", ""), "address": ctx.address_info["gcs_address"], "token": os.environ["RAY_AUTH_TOKEN"],
                   "pid": me.pid, "pid_started": me.create_time(), "num_cpus": num_cpus, "services": services,
                   "session_dir": ctx.address_info["session_dir"], "started_at": time.time()})
    while not stopping:
        time.sleep(0.5)
        _keep_pool(ray, num_cpus)  # (a worker lost in a run, or killed as stuck, is replaced)
    ray.shutdown()
    rec = _read()
    if rec is not None and rec.get("pid") == me.pid:
        record_path().unlink(missing_ok=True)


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
