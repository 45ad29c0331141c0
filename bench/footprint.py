"""Footprint of small runs: peak RSS and wall time of a whole `curate run` process, before and after.

    python -m bench.footprint [--base be4e7bc] [--repeats 3]

Two one-stage pipelines over the demo data (8,121 rows, 16 shards, local executor): WFPP alone and the ICC
lexicon alone, plus `curate stages`-free start-up (`import curate` and building both pipelines). `--base`
(default: the last commit before issue 21's lazy imports; 5a1437c is the one before the lazy registry) is checked out in a temporary git worktree; base and
current run alternately, each in a fresh process and run directory. Peak RSS is the child's ru_maxrss.
Writes bench/results/footprint.json and footprint.md.
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
from pathlib import Path

from bench.worktree import checkout

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEMO = ROOT / "data" / "demo"
CONFIGS = {  # parameter names both versions accept (the text column is `caption` by default in both)
    "wfpp": "stages:\n  - type: wfpp\npolicies:\n  - type: keep_fraction\n    column: wfpp.score\n    fraction: 0.9\n",
    "icc_lexicon": "stages:\n  - type: icc\npolicies:\n  - type: keep_fraction\n    column: icc.score\n    fraction: 0.9\n",
}
BASE = "be4e7bc"   # before issue 21: the CLI imported autofj, the report read whole row groups of images
BASE_WHAT = {"5a1437c": "before the lazy registry", "be4e7bc": "before issue 21's lazy imports"}
IMPORT = ("import time; t0 = time.perf_counter(); import curate; from curate.config import pipeline_from_dict; "
          "import yaml, sys; [pipeline_from_dict(yaml.safe_load(c)) for c in sys.argv[1:]]; "
          "print(time.perf_counter() - t0)")


def child(cmd: list[str], cwd: Path) -> dict:
    """Run `cmd` under a fresh Python that reports its own child's ru_maxrss (so maxima do not carry over)."""
    wrapper = ("import resource, subprocess, sys, time, json; t0 = time.perf_counter(); "
               "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(json.dumps({'rc': p.returncode, 'seconds': time.perf_counter() - t0, "
               "'peak_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "
               "'out': p.stdout[-2000:], 'err': p.stderr[-3000:]}))")
    env = {**os.environ, "PYTHONPATH": str(cwd), "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run([sys.executable, "-c", wrapper, *cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    if r["rc"] != 0:
        raise RuntimeError(f"{cmd} failed:\n{r['err']}")
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default=BASE)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--core-python", help="also run the current code under this interpreter: a virtualenv with "
                                          "only the core installed (`pip install .`), as a core user has it")
    args = ap.parse_args()
    if not (DEMO / ".complete").exists():
        raise SystemExit("build the demo data first: curate data demo")
    results: dict[str, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory(prefix="curate-footprint-") as tmp, checkout(args.base) as base:
        tmp = Path(tmp)
        for name, text in CONFIGS.items():
            (tmp / f"{name}.yaml").write_text(text)
        for i in range(args.repeats):
            versions = [("base", base, sys.executable), ("current", ROOT, sys.executable)]
            if args.core_python:
                versions.append(("current, core install", ROOT, args.core_python))
            for version, code, python in versions:
                r = child([python, "-c", IMPORT, *CONFIGS.values()], code)
                results.setdefault("import_and_build", {}).setdefault(version, []).append(r)
                for name in CONFIGS:
                    out = tmp / f"run-{version.replace(', ', '-').replace(' ', '-')}-{name}"
                    shutil.rmtree(out, ignore_errors=True)
                    r = child([python, "-m", "curate.cli", "run", str(tmp / f"{name}.yaml"), "--data",
                               str(DEMO), "--out", str(out), "--executor", "local"], code)
                    results.setdefault(name, {}).setdefault(version, []).append(r)
                print(f"repeat {i + 1} {version} done", flush=True)

    def stats(runs: list[dict], key: str) -> dict:
        v = [r[key] for r in runs]
        return {"min": round(min(v), 2), "median": round(statistics.median(v), 2), "max": round(max(v), 2)}

    summary = {name: {version: {"seconds": stats(runs, "seconds"), "peak_mb": stats(runs, "peak_mb")}
                      for version, runs in by.items()} for name, by in results.items()}
    out = {"base": args.base, "repeats": args.repeats, "rows": 8121, "results": summary}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "footprint.json").write_text(json.dumps(out, indent=1) + "\n")
    fmt = lambda s: f"{s['min']} / {s['median']} / {s['max']}"  # noqa: E731
    lines = ["| what | version | wall s (min / median / max) | peak RSS MB (min / median / max) |", "|---|---|---|---|"]
    for name, by in summary.items():
        for version, s in by.items():
            lines.append(f"| {name} | {version} | {fmt(s['seconds'])} | {fmt(s['peak_mb'])} |")
    (RESULTS / "footprint.md").write_text(
        "# Footprint of small runs\n\n"
        f"`python -m bench.footprint`: whole processes, base ({args.base}{': ' + BASE_WHAT[args.base] if args.base in BASE_WHAT else ''}) and current "
        f"alternating {args.repeats} times; `curate run` of a one-stage config over the demo (8,121 rows, 16 "
        "shards, local executor, report included); `import_and_build` is `import curate` plus building both "
        "pipelines from YAML. `base` and `current` run in the development environment (every extra installed); "
        "`current, core install` (with `--core-python`) runs the same code in a virtualenv holding only the core."
        "\n\n" + "\n".join(lines) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
