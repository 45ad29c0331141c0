"""The Python install `make curate DATASET=demo` does (the embed and ray extras), with pip and with uv
(tools/install.py), each into a fresh virtualenv with an empty package cache, alternating.

    python -m bench.install [--runs 3] [--extras embed,ray]

Both resolve through this machine's pip configuration (local mirrors, constraints); the bench checks that they
install the same versions. Writes bench/results/install.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def measured(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": sorted(values)[len(values) // 2], "max": max(values)}


def _freeze(venv: Path) -> set[str]:
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                         capture_output=True, text=True).stdout
    skip = {"pip", "setuptools", "uv", "curate"}
    return {line.lower().replace("_", "-") for line in out.split() if line.split("==")[0].lower() not in skip}


def install(tool: str, extras: str, work: Path) -> tuple[float, set[str]]:
    venv = work / f"venv-{tool}"
    shutil.rmtree(venv, ignore_errors=True)
    cache = work / f"cache-{tool}"
    shutil.rmtree(cache, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PIP_NO_CACHE_DIR": "1", "UV_CACHE_DIR": str(cache)}
    spec = f"{ROOT}[{extras}]"
    cmd = ([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", spec] if tool == "pip"
           else [sys.executable, str(ROOT / "tools" / "install.py"), str(venv), spec])
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    versions = _freeze(venv)
    shutil.rmtree(venv, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    return seconds, versions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--extras", default="embed,ray")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="curate-bench-install-"))
    seconds: dict[str, list[float]] = {"pip": [], "uv": []}
    versions: dict[str, set[str]] = {}
    for i in range(args.runs):
        for tool in ("pip", "uv"):
            s, v = install(tool, args.extras, work)
            seconds[tool].append(s)
            versions.setdefault(tool, v)
            print(f"run {i + 1} {tool}: {s:.1f} s, {len(v)} packages", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    same = versions["pip"] == versions["uv"]
    result = {"extras": args.extras, "runs": args.runs, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "seconds": {t: measured(v) for t, v in seconds.items()},
              "ratio_of_medians": round(measured(seconds["pip"])["median"] / measured(seconds["uv"])["median"], 2),
              "same_versions": same, "packages": len(versions["uv"]),
              "differences": sorted(versions["pip"] ^ versions["uv"])}
    RESULTS.joinpath("install.json").write_text(json.dumps(result, indent=1) + "\n")
    p, u = result["seconds"]["pip"], result["seconds"]["uv"]
    RESULTS.joinpath("install.md").write_text(
        f"# Installing the demo's extras: pip against uv\n\n`python -m bench.install --runs {args.runs}`: "
        f"`pip install '.[{args.extras}]'` and `tools/install.py` (uv with pip's mirrors and constraints) into a "
        f"fresh virtualenv each, empty caches, alternating, on {result['machine']} (shared with other jobs).\n\n"
        f"| installer | seconds (min / median / max) |\n|---|---|\n"
        f"| pip | {p['min']:.1f} / {p['median']:.1f} / {p['max']:.1f} |\n"
        f"| uv (tools/install.py) | {u['min']:.1f} / {u['median']:.1f} / {u['max']:.1f} |\n\n"
        f"Ratio of medians pip / uv: **{result['ratio_of_medians']}x**. Same versions of all "
        f"{result['packages']} packages: {'yes' if same else 'no: ' + ', '.join(result['differences'])}.\n")
    print(RESULTS / "install.md")


if __name__ == "__main__":
    main()
