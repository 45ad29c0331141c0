"""Auto-FuzzyJoin blocking alone on synthetic names: truth recall, pairs per query and queries per second of
the exact TF-IDF top k, the probe budget, and either with MinHash LSH added (curate.methods.autofj.minhash).

    python -m bench.autofj_blocking [--left 100000] [--queries 20000] [--budgets exact,20000] [--out STEM]

L is `curate.data.autofj_synth` names; the queries are corrupted copies of L rows (the rows with a true
match in R). Writes bench/results/<STEM>.json and .md (default autofj_blocking_<|L| in thousands>k).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from curate.data.autofj_synth import build
from curate.methods.autofj.blocking import BlockingIndex
from curate.methods.autofj.minhash import LSHParams

RESULTS = Path(__file__).parent / "results"
LSH_SETTINGS = {"off": None, "20x5": LSHParams(20, 5), "32x3": LSHParams(32, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--left", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=20_000)
    ap.add_argument("--budgets", default="exact,20000")
    ap.add_argument("--out", default=None, help="results file stem in bench/results/")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build(tmp, args.left, int(args.queries / 0.9) + 1, shards=1)
        left = pq.read_table(f"{tmp}/left.parquet")
        right = pq.read_table(f"{tmp}/right").to_pylist()
    lids = {v: i for i, v in enumerate(left.column("id").to_pylist())}
    lnames = left.column("name").to_pylist()
    right = [r for r in right if r["true_id"] is not None][:args.queries]
    queries = [r["name"] for r in right]
    truth = np.array([lids[r["true_id"]] for r in right])
    rows = []
    for budget in args.budgets.split(","):
        budget = int(budget) if budget.isdigit() else budget
        for name, lsh in LSH_SETTINGS.items():
            t0 = time.perf_counter()
            index = BlockingIndex.build(lnames, None, budget, lsh)
            t_build = time.perf_counter() - t0
            t0 = time.perf_counter()
            q, c = index.candidates(queries)
            t_query = time.perf_counter() - t0
            hit = np.zeros(len(queries), bool)
            hit[q[c == truth[q]]] = True
            rows.append({"budget": budget, "lsh": name, "build_s": t_build, "query_s": t_query,
                         "queries_per_s": len(queries) / t_query, "pairs_per_query": len(q) / len(queries),
                         "truth_recall": float(hit.mean()),
                         "skipped_buckets": index.lsh.skipped_buckets if index.lsh else 0})
            print(rows[-1], flush=True)
    out = {"left": args.left, "queries": len(queries), "cpus": os.cpu_count(), "k": index.k, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    stem = args.out or f"autofj_blocking_{args.left // 1000}k"
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=1))
    lines = [f"# Auto-FuzzyJoin blocking: |L| = {args.left:,}, {len(queries):,} corrupted queries, k = {index.k}", "",
             "Truth recall: share of queries whose true L row is among their candidates. LSH: bands x rows "
             "(max 100 L rows per bucket). Times on the machine's cores as they were (the product uses all).", "",
             "| budget | LSH | truth recall | pairs / query | queries / s | build s |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['budget']} | {r['lsh']} | {r['truth_recall']:.4f} | {r['pairs_per_query']:.1f} | "
                     f"{r['queries_per_s']:.0f} | {r['build_s']:.1f} |")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
