"""Per-process start-up of a web-text run, before and after: fresh processes, alternating base / current.

    python -m bench.startup [--base cc9f98d] [--repeats 5] [--docs 4000] [--shards 4]

Each run is a new Python process that imports curate, builds configs/web-text.yaml's pipeline and runs it
locally on `--docs` documents of the web-text corpus (bench/webtext_pipeline.py's sample; no report), as
bench/webtext_pipeline.py runs ours. Reported per version (min / median / max): the process's wall time, the
seconds to `import curate` and build the pipeline (imports, the registry, the stage modules), and `curate.run`
itself; plus the ratio of the medians. `--base` is checked out in a temporary git worktree (bench/worktree.py).
Writes bench/results/startup.json and startup.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.webtext_pipeline import corpus
from bench.worktree import checkout

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

CHILD = """
import time
t0 = time.perf_counter()
import json, sys, yaml, curate
from curate.config import pipeline_from_dict
pipeline, _ = pipeline_from_dict(yaml.safe_load(open("configs/web-text.yaml")))
t1 = time.perf_counter()
s = curate.run(pipeline, sys.argv[1], sys.argv[2], executor="local", report=False)
t2 = time.perf_counter()
print(json.dumps({"imports_and_config": t1 - t0, "run": t2 - t1, "kept": s["result"]["kept"],
                  "modules": len(sys.modules), "polars": "polars" in sys.modules}))
"""


def run_once(code_root: Path, data: Path, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(data), str(out)], cwd=code_root, env=env,
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    return {"process": wall, **json.loads(proc.stdout.strip().splitlines()[-1])}


def _spread(xs: list[float]) -> dict[str, float]:
    return {"min": round(min(xs), 3), "median": round(statistics.median(xs), 3), "max": round(max(xs), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="cc9f98d")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--docs", type=int, default=4000)
    ap.add_argument("--shards", type=int, default=4)
    args = ap.parse_args()
    data = corpus(args.docs, args.shards)
    runs: dict[str, list[dict]] = {"base": [], "current": []}
    with checkout(args.base) as base, tempfile.TemporaryDirectory() as work:
        for root in (base, ROOT):  # once each, unmeasured: numba compiles into its caches
            run_once(root, data, Path(work) / "warm")
        for i in range(args.repeats):
            for version, root in (("base", base), ("current", ROOT)):
                r = run_once(root, data, Path(work) / version)
                runs[version].append(r)
                print(f"repeat {i + 1} {version}: process {r['process']:.2f} s, imports + config "
                      f"{r['imports_and_config']:.2f} s, run {r['run']:.2f} s", flush=True)
    if {r["kept"] for r in runs["base"]} != {r["kept"] for r in runs["current"]}:
        raise SystemExit("the two versions kept different rows")
    result = {"base_commit": args.base, "docs": args.docs, "shards": args.shards, "repeats": args.repeats,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
              **{v: {k: _spread([r[k] for r in rs]) for k in ("process", "imports_and_config", "run")}
                 | {"modules": rs[0]["modules"], "polars_loaded": rs[0]["polars"]} for v, rs in runs.items()}}
    result["ratio_of_medians"] = {k: round(result["current"][k]["median"] / result["base"][k]["median"], 3)
                                  for k in ("process", "imports_and_config", "run")}
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "startup.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "startup.md").write_text(markdown(result))


def markdown(r: dict) -> str:
    def mmm(s: dict) -> str:
        return f"{s['min']:.2f} / {s['median']:.2f} / {s['max']:.2f}"

    rows = [f"| base ({r['base_commit']})", "| current"]
    lines = [f"# Start-up of a web-text run: {r['base_commit']} and the current code", "",
             f"`python -m bench.startup --base {r['base_commit']} --repeats {r['repeats']} --docs {r['docs']} --shards "
             f"{r['shards']}`: configs/web-text.yaml on {r['docs']:,} documents in {r['shards']} JSONL shards, local "
             "executor, no report; each run a fresh Python process, base and current alternating (after one "
             "unmeasured run of each). Seconds, min / median / max. Shared 2-core machine: other jobs ran beside.",
             "", "| version | process wall | import curate + build the pipeline | curate.run | modules loaded | polars loaded |",
             "|---|---|---|---|---|---|"]
    for head, v in zip(rows, ("base", "current")):
        x = r[v]
        lines.append(f"{head} | {mmm(x['process'])} | {mmm(x['imports_and_config'])} | {mmm(x['run'])} | "
                     f"{x['modules']} | {x['polars_loaded']} |")
    q = r["ratio_of_medians"]
    lines += ["", f"Ratio of medians current / base: process **{q['process']:.3f}**, imports + config "
                  f"**{q['imports_and_config']:.3f}**, run {q['run']:.3f}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
