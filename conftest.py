"""Repo-root conftest: puts the project root on sys.path (for `tests.helpers`, `bench`) and sets test env."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# Before anything imports prefect or ray: a git-ignored Prefect home (migrations run once), quiet Ray,
# one thread per process (2 shared cores: oversubscribed threads were 10-30x slower).
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # its exit-time INFO lines hit closed streams
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.pop("PREFECT_API_URL", None)  # ephemeral mode: never talk to a server someone left running
