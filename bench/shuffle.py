"""The flat against the two-level shuffle (engine/shuffle.py) on an object store: a SemDeDup run at 200 shards.

    python -m bench.shuffle [--shards 200] [--rows-per-shard 200] [--dim 16] [--partitions 16] [--repeats 3]

The data (clustered unit vectors, `--dim` float32, written as `--shards` Parquet shards) goes to the project's
S3 test server (moto on loopback, testkit/s3.py) started counting the requests it answers (testkit/s3count.py).
Each run is a fresh process running SemDeDup (k = `--partitions`, `partitions` = `--partitions`) into a
fresh `s3://` run directory, local executor, alternating flat / two-level `--repeats` times. Reported per
layout: wall time of `curate.run` in the child (min, median, max), the requests by kind counted at the
server (GET, ranged GET, HEAD, PUT, POST, LIST, DELETE), the seconds of the shuffle's phases, and a hash of
the published manifest parts' bytes, which must be the same for every run. `shuffle: auto` picks two-level
here (200 x 16 = 3,200 flat reads > 2,000 on an object store); the flat runs ask for `shuffle: flat`, the
two-level runs for `shuffle: auto`.
Writes bench/results/shuffle.json and shuffle.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs

from testkit.helpers import vector_table, write_shards
from testkit.s3 import s3_server, unique_prefix

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LAYOUTS = ("flat", "two-level")

CHILD = """
import hashlib, json, time
import curate
from curate.methods.semdedup.policy import SemDeDupPolicy
from curate.methods.semdedup.stage import SemDeDup
from curate.storage import location
p = curate.Pipeline([SemDeDup("emb", k={parts}, niter=10, partitions={parts})], [SemDeDupPolicy(epsilon=0.002)],
                    id_column="id", shuffle={setting!r})
t0 = time.perf_counter()
s = curate.run(p, {data!r}, {out!r}, executor="local", progress=curate.Progress(enabled=False))
seconds = time.perf_counter() - t0
root = location({out!r})
h = hashlib.sha256()
for part in json.loads((root / "summary.json").read_text())["manifest"]["parts"].values():
    h.update((root / part["file"]).read_bytes())
print(json.dumps({{"seconds": seconds, "kept": s["result"]["kept"], "manifest_sha256": h.hexdigest(),
                   "phases": {{k: v.get("seconds") for k, v in s["phases"].items() if "semdedup" in k}}}}))
"""


def make_data(folder: Path, shards: int, rows_per_shard: int, dim: int, seed: int = 0) -> Path:
    """Unit vectors around 40 centres (noise 0.05), with 2% near-copies: duplicates for SemDeDup to find."""
    rng = np.random.default_rng(seed)
    n = shards * rows_per_shard
    centres = rng.standard_normal((40, dim))
    x = centres[rng.integers(0, 40, n)] + 0.05 * rng.standard_normal((n, dim))
    copies = rng.choice(n, n // 50, replace=False)
    x[copies[1::2]] = x[copies[::2]] + 1e-4 * rng.standard_normal((len(copies[1::2]), dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return write_shards(folder, vector_table([f"r{i:07d}" for i in range(n)], x), shards)


def stats(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shards", type=int, default=200)
    ap.add_argument("--rows-per-shard", type=int, default=200)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {layout: [] for layout in LAYOUTS}
    with tempfile.TemporaryDirectory() as tmp, s3_server(counting=True) as s3:
        local = make_data(Path(tmp) / "data", args.shards, args.rows_per_shard, args.dim)
        fs = pafs.S3FileSystem(endpoint_override=s3.endpoint, scheme="http", access_key="testing",
                               secret_key="testing", region="us-east-1")
        pafs.copy_files(str(local), f"{s3.bucket}/data", source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
        env = {**os.environ, **s3.env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        for i in range(args.repeats):
            for layout in LAYOUTS:
                s3.requests(reset=True)
                script = CHILD.format(parts=args.partitions, setting="flat" if layout == "flat" else "auto",
                                      data=s3.uri("data"),
                                      out=s3.uri(unique_prefix(f"run-{layout}")))
                done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"{layout} run {i} failed:\n{done.stderr[-4000:]}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                if any(k.endswith(":split") for k in result["phases"]) != (layout == "two-level"):
                    raise SystemExit(f"{layout} run {i} took the other layout: phases {sorted(result['phases'])}")
                result["requests"] = s3.requests()
                result["requests"]["all"] = sum(result["requests"].values())
                runs[layout].append(result)
                print(layout, i, f"{result['seconds']:.1f} s", result["requests"], flush=True)
    hashes = {r["manifest_sha256"] for rs in runs.values() for r in rs}
    if len(hashes) != 1:
        raise SystemExit(f"the manifests differ: {hashes}")
    summary = {layout: {"seconds": stats([r["seconds"] for r in rs]),
                        "requests": {k: stats([r["requests"].get(k, 0) for r in rs])
                                     for k in sorted({k for r in rs for k in r["requests"]})}}
               for layout, rs in runs.items()}
    med = summary
    out = {"command": "python -m bench.shuffle " + " ".join(sys.argv[1:]), "args": vars(args),
           "rows": args.shards * args.rows_per_shard, "manifest_sha256": hashes.pop(),
           "kept": runs["flat"][0]["kept"], "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
           "summary": summary, "runs": runs,
           "ratios_flat_over_two_level": {
               "seconds_median": med["flat"]["seconds"]["median"] / med["two-level"]["seconds"]["median"],
               "requests_median": med["flat"]["requests"]["all"]["median"] / med["two-level"]["requests"]["all"]["median"],
               "ranged_gets_median": med["flat"]["requests"].get("GET-range", {"median": 0})["median"]
               / max(1, med["two-level"]["requests"].get("GET-range", {"median": 1})["median"])}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "shuffle.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "shuffle.md").write_text(report(out))
    print(report(out))


def report(out: dict) -> str:
    a = out["args"]
    lines = [f"# Flat against two-level shuffle: SemDeDup at {a['shards']} shards on the S3 test server", "",
             f"`{out['command']}` ({out['rows']:,} rows of {a['dim']}-d float32 vectors, {a['shards']} shards, "
             f"k = partitions = {a['partitions']}; moto's S3 server on loopback counting requests; local executor; "
             f"{a['repeats']} runs per layout, alternating; {out['machine']}, other work running beside it).", "",
             "| layout | wall s (min / median / max) | requests, median | ranged GET | GET | HEAD | PUT | POST | LIST |",
             "|---|---|---|---|---|---|---|---|---|"]
    for layout, s in out["summary"].items():
        r = s["requests"]
        m = {k: f"{r[k]['median']:,.0f}" if k in r else "0" for k in ("all", "GET-range", "GET", "HEAD", "PUT", "POST", "LIST")}
        sec = s["seconds"]
        lines.append(f"| {layout} | {sec['min']:.1f} / {sec['median']:.1f} / {sec['max']:.1f} | {m['all']} | "
                     f"{m['GET-range']} | {m['GET']} | {m['HEAD']} | {m['PUT']} | {m['POST']} | {m['LIST']} |")
    q = out["ratios_flat_over_two_level"]
    lines += ["", f"Flat / two-level, medians: wall time {q['seconds_median']:.2f}x, requests {q['requests_median']:.2f}x, "
              f"ranged GETs {q['ranged_gets_median']:.2f}x.", "",
              f"Every run published the same manifest (sha256 of its parts' bytes: `{out['manifest_sha256'][:16]}`; "
              f"{out['kept']:,} rows kept). pyarrow's S3 client sends every GET with a Range header (whole-file "
              "reads too), so every GET counts as ranged; a read of a file is a HEAD and a GET.", "",
              "Phase seconds of one run each (the first):", ""]
    for layout in LAYOUTS:
        phases = out["runs"][layout][0]["phases"]
        lines.append(f"- {layout}: " + ", ".join(f"`{k}` {v}" for k, v in phases.items() if v is not None))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
