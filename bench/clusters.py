"""SemDeDup at scale: curate's engine vs a plain faiss + numpy implementation of the same steps.

    python -m bench.clusters [--rows 1000000] [--dim 384]

Synthetic unit embeddings (float16, as the embed stage stores them) around 2,000 random centres with
varying spread, 2% of rows near-copies of another row. Each implementation runs in its own process at
rows/2 and rows so that peak memory (ru_maxrss) can be compared as the row count doubles. Steps timed:
k-means fit on the same sample size (256 per centroid, k = ceil(N / 10,000), 100 iterations), assignment
of every row, and the pairwise step (max cosine to earlier rows in each cluster, farthest first).
Writes bench/results/clusters.json and .md. Single-threaded (OMP_NUM_THREADS=1): rates are per core.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

RESULTS = Path(__file__).parent / "results"
SHARD_ROWS = 50_000
EPSILON = 0.01


def generate(folder: Path, n: int, d: int, seed: int = 0) -> None:
    """n rows in shards of 50,000; written shard by shard so memory stays small."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = rng.uniform(0.02, 0.08, 2000).astype(np.float32)
    for s, start in enumerate(range(0, n, SHARD_ROWS)):
        m = min(SHARD_ROWS, n - start)
        c = rng.integers(0, 2000, m)
        x = centres[c] + spread[c, None] * rng.standard_normal((m, d)).astype(np.float32)
        copies = rng.random(m) < 0.02
        src = rng.integers(0, m, copies.sum())
        x[copies] = x[src] + 1e-3 * rng.standard_normal((copies.sum(), d)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        flat = pa.array(x.astype(np.float16).reshape(-1), pa.float16())
        ids = pa.array([f"e{start + i:09d}" for i in range(m)])
        pq.write_table(pa.table({"id": ids, "emb": pa.FixedSizeListArray.from_arrays(flat, d)}),
                       folder / f"part-{s:05d}.parquet", compression="zstd", use_dictionary=["id"])  # as curate writes


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_curate(data: Path, out: Path) -> dict:
    import curate
    from curate.methods.semdedup import SemDeDup, SemDeDupPolicy

    t0 = time.perf_counter()
    summary = curate.run(curate.Pipeline(stages=[SemDeDup("emb")], policies=[SemDeDupPolicy(epsilon=EPSILON)], id_column="id"),
                         data, out, executor="local", progress=curate.Progress(enabled=False))
    total = time.perf_counter() - t0
    ph = summary["phases"]
    sample_s = sum(v.get("seconds", 0) for k, v in ph.items() if k.startswith("fit:semdedup:map"))
    assign_s, pairwise_s = ph["fit:semdedup:pairs:map"]["seconds"], ph["fit:semdedup:pairs:reduce"]["seconds"]
    # the fit's own time beyond its maps, shuffle and reduce: k-means (the artifact records no timings)
    kmeans_s = ph["fit:semdedup"]["seconds"] - sample_s - assign_s - pairwise_s
    return {"total_s": total, "sample_read_s": sample_s, "kmeans_s": round(kmeans_s, 3),
            "assign_shuffle_s": assign_s,
            "pairwise_s": pairwise_s, "score_s": ph["score:semdedup"]["seconds"],
            "ids_s": ph["ids"]["seconds"], "k": summary["stages"]["semdedup"]["artifact"]["k"], "removed": summary["result"]["dropped"], "peak_mb": peak_mb()}


def run_plain(data: Path) -> dict:
    """The same steps written directly: everything in memory, faiss k-means and search, one full
    similarity matrix per cluster."""
    import faiss

    t0 = time.perf_counter()
    t = pq.read_table(data, columns=["emb"])
    col = t.column("emb").combine_chunks()
    x = np.asarray(col.values.to_numpy(), np.float32).reshape(len(col), col.type.list_size)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    read_s = time.perf_counter() - t0
    n, d = x.shape
    k = math.ceil(n / 10_000)
    sample = x[np.random.default_rng(0).choice(n, min(n, 256 * k), replace=False)]
    t1 = time.perf_counter()
    km = faiss.Kmeans(d, k, niter=100, seed=1234, spherical=True, verbose=False)
    km.train(sample)
    kmeans_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    index = faiss.IndexFlatIP(d)
    index.add(km.centroids)
    sim, assign = index.search(x, 1)
    assign_s = time.perf_counter() - t2
    t3 = time.perf_counter()
    removed = 0
    order = np.argsort(assign[:, 0], kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(assign[order, 0]) != 0, True])
    for s, e in zip(bounds[:-1], bounds[1:]):
        members = order[s:e]
        members = members[np.argsort(sim[members, 0])]         # farthest from the centroid first
        e_c = x[members]
        m = e_c @ e_c.T
        m = np.triu(m, 1)                                        # the reference's triu(diagonal=1)
        removed += int((m.max(axis=0) > 1 - EPSILON).sum())
    pairwise_s = time.perf_counter() - t3
    return {"total_s": time.perf_counter() - t0, "read_s": read_s, "kmeans_s": kmeans_s, "assign_s": assign_s,
            "pairwise_s": pairwise_s, "k": k, "removed": removed, "peak_mb": peak_mb()}


def child(kind: str, data: str, out: str) -> None:
    result = run_curate(Path(data), Path(out)) if kind == "curate" else run_plain(Path(data))
    print(json.dumps(result))


def measure(kind: str, data: Path, out: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.clusters", "--child", kind, str(data), str(out)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--child", nargs=3, metavar=("KIND", "DATA", "OUT"))
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    results = {"rows": args.rows, "dim": args.dim, "epsilon": EPSILON, "machine": platform.processor() or platform.machine(),
               "threads": os.environ["OMP_NUM_THREADS"], "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (args.rows // 2, args.rows):
            data = Path(tmp) / f"data-{n}"
            generate(data, n, args.dim)
            results["sizes"][n] = {"curate": measure("curate", data, Path(tmp) / f"run-{n}"),
                                   "plain": measure("plain", data, Path(tmp) / "unused")}
            print(n, json.dumps(results["sizes"][n]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "clusters.json").write_text(json.dumps(results, indent=1))
    (RESULTS / "clusters.md").write_text(report(results))
    print(report(results))


def report(r: dict) -> str:
    lines = [f"# SemDeDup at scale: curate vs plain faiss + numpy ({r['dim']}-d float16 embeddings, one thread)", "",
             "| rows | k | impl | k-means s | assign s | pairwise s | total s | peak MB | removed at eps 0.01 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n, v in r["sizes"].items():
        c, p = v["curate"], v["plain"]
        lines.append(f"| {int(n):,} | {c['k']} | curate | {c['kmeans_s']:.1f} | {c['assign_shuffle_s']:.1f} (+ shuffle write) | "
                     f"{c['pairwise_s']:.1f} | {c['total_s']:.1f} | {c['peak_mb']:.0f} | {c['removed']:,} |")
        lines.append(f"| {int(n):,} | {p['k']} | plain | {p['kmeans_s']:.1f} | {p['assign_s']:.1f} | {p['pairwise_s']:.1f} | "
                     f"{p['total_s']:.1f} | {p['peak_mb']:.0f} | {p['removed']:,} |")
    sizes = list(r["sizes"].values())
    last = sizes[-1]
    lines += ["", f"Ratio curate / plain at {int(list(r['sizes'])[-1]):,} rows: total "
              f"{last['curate']['total_s'] / last['plain']['total_s']:.2f}x, pairwise "
              f"{last['curate']['pairwise_s'] / last['plain']['pairwise_s']:.2f}x, k-means "
              f"{last['curate']['kmeans_s'] / last['plain']['kmeans_s']:.2f}x.",
              f"Peak memory when the rows double: curate {sizes[0]['curate']['peak_mb']:.0f} -> "
              f"{last['curate']['peak_mb']:.0f} MB, plain {sizes[0]['plain']['peak_mb']:.0f} -> {last['plain']['peak_mb']:.0f} MB.",
              "", "curate's total includes reading ids, two sampling passes, writing and reading the cluster shuffle, "
              "and scoring (reading each shard's rows back); plain holds every vector in memory at once."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
