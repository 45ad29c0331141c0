"""`make ui`: a local Prefect server on 127.0.0.1 plus one served deployment per config in configs/.

Every deployment has the cron schedule CURATE_CRON (03:00 daily by default); only the demo's is on, the
others' are off until switched on in the UI (or run them from the UI at any time). The server listens on
CURATE_UI_PORT (4200), and the UI it serves talks to the API on that same port. Ctrl-C (or SIGTERM) stops
the deployments and then the server this started.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flows import server

HOST, PORT = server.HOST, server.port()
ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
API = f"http://{HOST}:{PORT}/api"
SCHEDULED = ("demo",)   # the configs whose schedule is on when served


def server_env() -> dict[str, str]:
    """The server's settings: its host and port, and the API URL its UI calls. Prefect derives the UI's API URL
    from PREFECT_SERVER_API_PORT (4200) or PREFECT_API_URL, not from `--port`: without this, any other port
    gives a UI that calls port 4200 ("Oops. Something went wrong")."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # a profile's URL must not leak in
    env.update(PREFECT_SERVER_API_HOST=HOST, PREFECT_SERVER_API_PORT=str(PORT), PREFECT_UI_API_URL=API,
               PREFECT_SERVER_ANALYTICS_ENABLED="false")  # offline machine: no telemetry
    return env


def wait_healthy(proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"prefect server exited with code {proc.returncode}")
        if server.healthy(API):
            return
        time.sleep(1)
    sys.exit(f"prefect server did not answer on {API} within {timeout:.0f}s")


def deployments(cron: str) -> list:
    """One deployment per config in configs/ (relative paths: runs start in the project folder)."""
    from curate.errors import CurateError
    from flows.deploy import deployment

    out = []
    for path in sorted(CONFIGS.glob("*.yaml")):
        config = path.relative_to(ROOT)
        try:
            out.append(deployment(config, cron=cron, active=path.stem in SCHEDULED))
        except CurateError as e:  # one broken config must not take the others' deployments down
            print(f"not served: {config}: {e}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.chdir(ROOT)  # the deployments name configs and data relative to the project
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(PORT)],
                            env=server_env(), start_new_session=True)

    def stop(*_: object) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, lambda *a: (stop(), sys.exit(0)))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even if started with SIGINT ignored
    try:
        wait_healthy(proc)
        os.environ["PREFECT_API_URL"] = API  # before Prefect is first imported (flows.deploy imports it)
        from flows import deploy

        if not os.environ.get("CURATE_ALLOWED_CONFIGS"):  # the deployments' `config` parameter is code: only ours
            deploy.allow(CONFIGS)
        served = deployments(os.environ.get("CURATE_CRON", "0 3 * * *"))
        print(f"Prefect UI: http://{HOST}:{PORT}/deployments  ({len(served)} deployments; Ctrl-C stops them and the "
              f"server)", flush=True)
        deploy.serve(*served)
    except KeyboardInterrupt:
        pass
    finally:
        stop()


if __name__ == "__main__":
    main()
