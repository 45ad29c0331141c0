"""Repo-root conftest: puts the project root on sys.path (for `testkit`) and sets the test environment."""
import atexit
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# Before anything imports prefect or ray: a Prefect home of the test session's own (never the `make ui`
# database in .prefect), quiet Ray, one thread per process (2 shared cores: oversubscribed threads were
# 10-30x slower).
_PREFECT_HOME = tempfile.mkdtemp(prefix="curate-test-prefect-")
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # no telemetry from the test server
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # its exit-time INFO lines hit closed streams
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "token")  # as a local run: Ray's token authentication on
os.environ.pop("PREFECT_API_URL", None)  # ephemeral mode: never talk to a server someone left running
