"""Shared test fixtures."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """(pytest-xdist's controller) Tells its workers whether they get whole modules (see below)."""
    node.workerinput["curate_module_order"] = node.config.getoption("dist") in ("loadfile", "loadscope")


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, the costliest modules first (tests/module_seconds.json, made by tools/test_order.py):
    in pytest's order, a 75-s test came among the last handed out and ran on alone while the other worker
    idled. With `--dist loadfile` (make test) each idle worker takes the next module in this order. A module's
    tests stay together, in their order; the sort is stable and every worker makes the same order, as xdist
    requires."""
    # (only where whole modules are handed out: xdist's default `load` gives each worker a first chunk of
    # consecutive tests, and this order would give all the costly ones to the first worker)
    if not getattr(config, "workerinput", {}).get("curate_module_order"):
        return
    seconds = json.loads((Path(__file__).parent / "module_seconds.json").read_text())
    items.sort(key=lambda item: -seconds.get(item.nodeid.split("::")[0], 0.0))


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

_RAY_AUTH = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


@pytest.fixture(scope="session")
def _suite_ray(tmp_path_factory):
    """The record of a shared local Ray (engine/rayhead.py) of this test process's own (one per xdist worker,
    in a cache folder of its own: never a developer's), started on first use and stopped at the end."""
    from curate.engine import rayhead

    folder = tmp_path_factory.mktemp("suite-ray")
    saved = os.environ.get("CURATE_CACHE")
    os.environ["CURATE_CACHE"] = str(folder)  # (the holder writes its record there)
    try:
        rayhead.start(num_cpus=2)
        record = rayhead.record_path()
    finally:
        os.environ.pop("CURATE_CACHE") if saved is None else os.environ.__setitem__("CURATE_CACHE", saved)
    yield record
    os.environ["CURATE_CACHE"] = str(folder)
    try:
        rayhead.stop()
    finally:
        os.environ.pop("CURATE_CACHE") if saved is None else os.environ.__setitem__("CURATE_CACHE", saved)


@pytest.fixture
def shared_ray(_suite_ray, monkeypatch):
    """Ray runs in this test connect to the suite's warm shared Ray (as after `curate ray start`) instead of
    starting a Ray of their own (~6 s each): for tests whose point is what a Ray run computes (the same
    manifest as a local run), not how Ray starts or stops. Ray's auth settings are put back afterwards."""
    from curate.engine import rayhead

    monkeypatch.setattr(rayhead, "record_path", lambda: _suite_ray)
    monkeypatch.setenv(rayhead.DISABLE_ENV, "1")
    saved = {k: os.environ.get(k) for k in _RAY_AUTH}
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        if "ray" in sys.modules:  # (the shared Ray's token was loaded for the run: forget it, as rayhead.for_run)
            from ray._raylet import AuthenticationTokenLoader, Config

            Config.initialize("")
            AuthenticationTokenLoader.instance().reset_cache()
