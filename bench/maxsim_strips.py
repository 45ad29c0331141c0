"""SemDeDup's pairwise kernel: diagonal tiles in strips (kernels/maxsim.py) against whole diagonal tiles.

    python -m bench.maxsim_strips [--rows 20000] [--repeats 3]

One cluster of unit 384-d float32 rows (20 topics, 2% planted near-copies), the default tile (4096). "whole"
sets the strip to the tile, which is the kernel before strips (each diagonal tile computed whole, half of it
masked). Process CPU time, one BLAS thread, the two alternated; M and argmax are checked identical. Results:
bench/results/maxsim_strips.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from kernels import maxsim

RESULTS = Path(__file__).parent / "results"


def cluster(rows: int, d: int = 384) -> np.ndarray:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, d)).astype(np.float32)[rng.integers(0, 20, rows)]
    x += 0.8 * rng.standard_normal((rows, d)).astype(np.float32)
    dup = rng.random(rows) < 0.02
    src = (rng.random(rows) * np.arange(rows)).astype(np.int64)
    x[dup] = x[src[dup]] + 1e-3 * rng.standard_normal((int(dup.sum()), d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    e, strip = cluster(args.rows), maxsim._STRIP
    times, out = {"whole": [], "strips": []}, {}
    for _ in range(args.repeats):
        for name, s in (("whole", 4096), ("strips", strip)):
            maxsim._STRIP = s
            t0 = time.process_time()
            out[name] = maxsim.max_sim_prev(e)
            times[name].append(time.process_time() - t0)
    maxsim._STRIP = strip
    same = all(np.array_equal(a, b) for a, b in zip(out["whole"], out["strips"]))
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {"rows": args.rows, "dim": e.shape[1], "tile": 4096, "strip": strip, "cpu_s": times,
           "ratio_median": round(med["strips"] / med["whole"], 3), "identical": same,
           "omp_threads": os.environ.get("OMP_NUM_THREADS")}
    (RESULTS / "maxsim_strips.json").write_text(json.dumps(res, indent=1))
    fmt = lambda v: " / ".join(f"{x:.2f}" for x in sorted(v))  # noqa: E731
    (RESULTS / "maxsim_strips.md").write_text(
        "# SemDeDup pairwise kernel: diagonal tiles in strips (`python -m bench.maxsim_strips`)\n\n"
        f"One cluster of {args.rows:,} x {e.shape[1]} unit float32 rows, tile 4096, strip {strip}; process CPU "
        f"seconds (min / median / max of {args.repeats}, alternated), OMP_NUM_THREADS="
        f"{res['omp_threads']}, on a shared 2-core machine.\n\n"
        f"| diagonal tiles | CPU s |\n|---|---|\n| whole (before) | {fmt(times['whole'])} |\n"
        f"| strips | {fmt(times['strips'])} |\n\n"
        f"Median ratio strips / whole: {res['ratio_median']}; M and argmax identical: {same}.\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
