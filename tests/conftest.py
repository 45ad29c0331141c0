"""Shared test fixtures."""
from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest


@pytest.fixture(scope="session")
def demo_table(tmp_path_factory):
    """The real openclipart demo rows (built once per session from the Debian packages)."""
    from curate.data.demo import build_demo

    out = tmp_path_factory.mktemp("demo")
    build_demo(out, shards=4, progress=False)
    return pq.read_table(out, columns=["id", "caption", "category"])


# A shared local Ray a developer left running (`curate ray start`) is not used by the suite: its tests start
# Rays of their own, as without one (tests/engine/test_shared_ray.py turns it on for its own Ray).
os.environ.setdefault("CURATE_SHARED_RAY", "0")
