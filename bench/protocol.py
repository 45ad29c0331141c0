"""Cost of the run-directory commit protocol: the 1M-row WFPP run through the engine, before and after.

    python -m bench.protocol [--rows 1000000] [--shards 64] [--repeats 3] [--base b150182]

`--base` is the last commit before the protocol (issue 16: hashed outputs, sealed sidecars, the lease
and its heartbeat, manifest generations). It is checked out in a temporary git worktree and both
versions run the same pipeline (WFPP, keep_fraction 0.9, local executor) on the same data, each run in a
fresh process and a fresh run directory, alternating base / current `--repeats` times. Reported: the
wall time of `curate.run` inside the process (min, median, max) and the ratio of the medians. Writes
bench/results/protocol.json and protocol.md.
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
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bench.wfpp import make_rows, real_captions
from bench.worktree import checkout

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

PIPELINES = {
    "wfpp": """
from curate.methods.wfpp.stage import WFPP
p = curate.Pipeline([WFPP(t=1e-7, min_count=5)], [curate.KeepFraction("wfpp.score", 0.9)], id_column="id")
""",
    # bench/wfpp.py's trivial custom filter: the engine's own costs (ids, checks, manifest) dominate
    "filter": """
import pyarrow as pa, pyarrow.compute as pc
@curate.stage(inputs=["caption"], outputs={"chars": pa.int64()}, name="length")
def length(batch):
    return {"chars": pc.cast(pc.utf8_length(batch.column("caption")), pa.int64())}
p = curate.Pipeline([length], [curate.Threshold("length.chars", min=20)], id_column="id")
""",
}

CHILD = """
import json, time
import curate
{pipeline}
t0, c0 = time.perf_counter(), time.process_time()
s = curate.run(p, {data!r}, {out!r}, executor="local", progress=curate.Progress(enabled=False))
print(json.dumps({{"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                   "kept": s["result"]["kept"]}}))
"""


def write_data(folder: Path, rows: int, shards: int) -> None:
    captions, keywords = real_captions()
    col = pa.array(make_rows(rows, captions, keywords), pa.string())
    ids = pa.array([f"r{i:08d}" for i in range(rows)], pa.string())
    per = -(-rows // shards)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(shards):
        pq.write_table(pa.table({"id": ids.slice(i * per, per), "caption": col.slice(i * per, per)}),
                       folder / f"part-{i:05d}.parquet")


def run_once(code_root: Path, data: Path, out: Path, workload: str = "wfpp") -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(code_root), "POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1"}
    code = CHILD.format(pipeline=PIPELINES[workload], data=str(data), out=str(out))
    proc = subprocess.run([sys.executable, "-c", code], cwd=code_root,
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--shards", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--base", default="b150182")
    ap.add_argument("--workload", choices=sorted(PIPELINES), default="wfpp")
    ap.add_argument("--out", default="protocol", help="results name: bench/results/<out>.json and .md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="curate-protocol-") as tmp, checkout(args.base) as base:
        tmp = Path(tmp)
        write_data(tmp / "data", args.rows, args.shards)
        times: dict[str, list[float]] = {"base": [], "current": []}
        cpu: dict[str, list[float]] = {"base": [], "current": []}
        kept = set()
        for i in range(args.repeats):
            for name, code in (("base", base), ("current", ROOT)):
                r = run_once(code, tmp / "data", tmp / f"run-{name}", args.workload)
                times[name].append(r["seconds"])
                cpu[name].append(r["cpu_seconds"])
                kept.add(r["kept"])
                print(f"repeat {i + 1} {name}: {r['seconds']:.2f} s", flush=True)
    assert len(kept) == 1, f"the two versions kept different row counts: {kept}"

    def summarise(d: dict[str, list[float]]) -> dict:
        return {k: {"min": min(v), "median": statistics.median(v), "max": max(v), "runs": v} for k, v in d.items()}

    stats, cpu_stats = summarise(times), summarise(cpu)
    ratio = stats["current"]["median"] / stats["base"]["median"]
    cpu_ratio = cpu_stats["current"]["median"] / cpu_stats["base"]["median"]
    result = {"rows": args.rows, "shards": args.shards, "repeats": args.repeats, "base": args.base,
              "seconds": stats, "ratio_of_medians": ratio, "cpu_seconds": cpu_stats, "cpu_ratio_of_medians": cpu_ratio,
              "ratios_per_repeat": [c / b for b, c in zip(times["base"], times["current"])],
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    RESULTS.mkdir(exist_ok=True)
    result["workload"] = args.workload
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=1))
    fmt = lambda s: f"{s['min']:.2f} / {s['median']:.2f} / {s['max']:.2f}"  # noqa: E731
    what = "WFPP + keep_fraction" if args.workload == "wfpp" else "a trivial @curate.stage + threshold"
    protocol = args.out == "protocol"
    title = "Cost of the run-directory commit protocol" if protocol else f"Engine overhead: {args.base} and the current code"
    before = ", before the protocol" if protocol else ""
    (RESULTS / f"{args.out}.md").write_text(
        f"# {title}\n\n"
        f"`python -m bench.protocol --base {args.base} --shards {args.shards} --repeats {args.repeats} --workload "
        f"{args.workload} --out {args.out}`: {what} over {args.rows:,} real-caption rows in {args.shards} "
        f"shards, local executor, one fresh process and run directory per run, base ({args.base}{before}) and "
        f"current alternating, {args.repeats} times.\n\n"
        "| version | curate.run wall s (min / median / max) | CPU s (min / median / max) |\n|---|---|---|\n"
        f"| base ({args.base}) | {fmt(stats['base'])} | {fmt(cpu_stats['base'])} |\n"
        f"| current | {fmt(stats['current'])} | {fmt(cpu_stats['current'])} |\n\n"
        f"Ratio of medians current / base: wall **{ratio:.3f}** (per repeat: "
        f"{', '.join(f'{r:.3f}' for r in result['ratios_per_repeat'])}), CPU **{cpu_ratio:.3f}**.\n")
    print(json.dumps({"ratio_of_medians": ratio, **{k: v["median"] for k, v in stats.items()}}))


if __name__ == "__main__":
    main()
