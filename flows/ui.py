"""`make ui`: a local Prefect server on 127.0.0.1 plus a served, scheduled deployment of the demo flow.

Ctrl-C (or SIGTERM) stops the deployment and then the server this started.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HOST, PORT = "127.0.0.1", int(os.environ.get("CURATE_UI_PORT", "4200"))
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
API = f"http://{HOST}:{PORT}/api"


def wait_healthy(proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"prefect server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{API}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    sys.exit(f"prefect server did not answer on {API} within {timeout:.0f}s")


def main() -> None:
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # offline machine: no telemetry
    from flows.curate_flow import ALLOWED_CONFIGS

    os.environ.setdefault(ALLOWED_CONFIGS, str(CONFIGS))  # the deployment's `config` parameter is code: only ours
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(PORT)],
                              start_new_session=True)

    def stop(*_: object) -> None:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, lambda *a: (stop(), sys.exit(0)))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even if started with SIGINT ignored
    try:
        wait_healthy(server)
        os.environ["PREFECT_API_URL"] = API
        print(f"Prefect UI: http://{HOST}:{PORT}  (Ctrl-C stops the deployment and the server)", flush=True)
        from flows.curate_flow import curate_flow

        curate_flow.serve(name="demo", cron=os.environ.get("CURATE_CRON", "0 3 * * *"),
                          parameters={"config": "configs/demo.yaml", "executor": "ray"})
    except KeyboardInterrupt:
        pass
    finally:
        stop()


if __name__ == "__main__":
    main()
