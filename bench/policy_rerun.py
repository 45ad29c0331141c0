"""A policy-only re-run of the demo with the default executor (ray), before and after the run started its
executor lazily (issue 32): wall time of a whole `curate run` process, and whether it started Ray.

    python -m bench.policy_rerun --run runs/demo [--base fcfdba2] [--repeats 3]

`--run` is a finished demo run (`make curate DATASET=demo`); each version re-runs a copy of it with the WFPP
policy's fraction flipped between 0.8 and 0.9 (a new decision every time, no unit to compute), in a fresh
process, alternating base and current. `--base` (default: main before this change) is checked out in a
temporary git worktree. Writes bench/results/policy_rerun.json and policy_rerun.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.worktree import checkout

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BASE = "fcfdba2"  # main before the lazy executor start


def rerun(code: Path, run: Path, fraction: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    # (cwd is the version's own checkout: `python -m` puts the working directory first on sys.path)
    proc = subprocess.run([sys.executable, "-m", "curate.cli", "run", str(ROOT / "configs" / "demo.yaml"), "--out",
                           str(run), "--data", str(ROOT / "data" / "demo"), "--set",
                           f"policies.wfpp.fraction={fraction}"], cwd=code, env=env,
                          capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{code}: curate run failed:\n{proc.stderr[-3000:]}")
    summary = json.loads((run / "summary.json").read_text())
    return {"wall_s": round(wall, 2), "ray_started": "ray_startup" in summary["phases"],
            "computed": sum(s["units_computed"] for s in summary["stages"].values())}


def main() -> int:
    a = argparse.ArgumentParser()
    a.add_argument("--run", default="runs/demo")
    a.add_argument("--base", default=BASE)
    a.add_argument("--repeats", type=int, default=3)
    args = a.parse_args()
    with tempfile.TemporaryDirectory(prefix="policy-rerun-") as tmp, checkout(args.base) as base:
        runs = {name: Path(tmp) / name for name in ("base", "current")}
        for run in runs.values():
            shutil.copytree(args.run, run)
        results: dict[str, list[dict]] = {"base": [], "current": []}
        for i in range(args.repeats):
            order = ("base", "current") if i % 2 == 0 else ("current", "base")
            for name in order:
                code = base if name == "base" else ROOT
                results[name].append(rerun(code, runs[name], 0.8 if i % 2 == 0 else 0.9))
    walls = {k: sorted(r["wall_s"] for r in v) for k, v in results.items()}
    out = {"base": args.base, "repeats": args.repeats, "runs": results,
           "wall_s": {k: {"min": w[0], "median": statistics.median(w), "max": w[-1]} for k, w in walls.items()},
           "ratio_median": round(statistics.median(walls["base"]) / statistics.median(walls["current"]), 2),
           "note": "A shared 2-core machine (other sessions' load); wall times include imports, export and report"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "policy_rerun.json").write_text(json.dumps(out, indent=1) + "\n")
    md = ["# Policy-only re-run of the demo, default executor (ray)", "",
          f"`python -m bench.policy_rerun`; base {args.base} vs current, {args.repeats} alternating runs, each a fresh "
          f"`curate run` process on a copy of a finished demo run (WFPP fraction flipped; nothing to compute). "
          f"{out['note']}.", "", "| version | wall s min / median / max | Ray started |", "|---|---|---|"]
    for k, w in out["wall_s"].items():
        md.append(f"| {k} | {w['min']} / {w['median']} / {w['max']} | "
                  f"{', '.join(str(r['ray_started']) for r in results[k])} |")
    md += ["", f"Median ratio base / current: **{out['ratio_median']}x**."]
    (RESULTS / "policy_rerun.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
