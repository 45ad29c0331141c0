"""End to end at 1M, 3M, 10M rows on this machine: WFPP + SemDeDup + DBP over synthetic caption +
384-d float16 embedding rows with planted near-duplicates.

    python -m bench.scale [--rows 1000000 3000000 10000000] [--executor ray] [--keep]

Per size: wall time, peak RSS (the driver and every process under it, sampled), seconds per phase and per
million rows, and the run directory's bytes per row before and after `curate gc`. Data is generated shard by
shard (250,000 rows each) so that generating 10M rows needs no more memory than 1M. Results go to
bench/results/scale.{json,md} (each size's entry replaced, the others kept).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

import curate
from curate.api import gc
from curate.methods.dbp import DBP, ClusterQuota
from curate.methods.semdedup import SemDeDup, SemDeDupPolicy
from curate.methods.wfpp import WFPP

RESULTS = Path(__file__).parent / "results"
SHARD_ROWS, DIM, TOPICS, VOCAB = 250_000, 384, 1_000, 30_000
PLANTED = 0.02  # share of rows that are a near copy (cosine ~0.9999) of an earlier row of the shard


def make_shard(path: Path, index: int, rows: int) -> None:
    rng = np.random.default_rng(index)
    centres = np.random.default_rng(12345).standard_normal((TOPICS, DIM)).astype(np.float32)
    topic = rng.integers(0, TOPICS, rows)
    x = centres[topic] + 0.8 * rng.standard_normal((rows, DIM)).astype(np.float32)
    dup = rng.random(rows) < PLANTED
    src = (rng.random(rows) * np.arange(rows)).astype(np.int64)  # an earlier row of the shard
    x[dup] = x[src[dup]] + 1e-3 * rng.standard_normal((int(dup.sum()), DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    # captions: 4-12 Zipf-distributed words from a fixed vocabulary, the topic's word first
    words = np.array([f"w{i}" for i in range(VOCAB)])
    lengths = rng.integers(4, 13, rows)
    draws = np.minimum(rng.zipf(1.3, int(lengths.sum())), VOCAB) - 1
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    captions = [f"t{topic[i]} " + " ".join(words[draws[s:s + n]]) for i, (s, n) in enumerate(zip(starts, lengths))]
    flat = pa.array(x.astype(np.float16).reshape(-1), pa.float16())
    pq.write_table(pa.table({"id": [f"s{index}-{i}" for i in range(rows)], "caption": captions,
                             "emb": pa.FixedSizeListArray.from_arrays(flat, DIM)}), path)


def dataset(folder: Path, rows: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(0, -(-rows // SHARD_ROWS)):
        path = folder / f"part-{i:05d}.parquet"
        if not path.exists():
            make_shard(path, i, min(SHARD_ROWS, rows - i * SHARD_ROWS))
    return folder


def pipeline(rows: int) -> curate.Pipeline:
    k = max(10, rows // 20_000)  # clusters of ~20k rows, as the papers' k grows with the data
    return curate.Pipeline(
        [WFPP(text_column="caption", min_count=5), SemDeDup("emb", k=k, niter=20),
         DBP("emb", k=k, niter=20, dedup="semdedup", dedup_epsilon=0.001)],
        [SemDeDupPolicy(epsilon=0.001), ClusterQuota(fraction=0.8, tau=0.1),
         curate.KeepFraction("wfpp.score", 0.9)], id_column="id", name="scale")


class PeakRSS:
    """Peak of the summed RSS of this process and all its descendants (Ray workers included)."""

    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.5):
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def one(rows: int, work: Path, executor: str) -> dict:
    t0 = time.perf_counter()
    data = dataset(work / f"data-{rows}", rows)
    gen_s = time.perf_counter() - t0
    out = work / f"run-{rows}"
    shutil.rmtree(out, ignore_errors=True)
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        summary = curate.run(pipeline(rows), data, out, executor=executor, progress=curate.Progress(enabled=False))
        wall = time.perf_counter() - t0
    size = du(out)
    freed = gc(out)
    phases = {k: v.get("seconds") for k, v in summary["phases"].items() if isinstance(v, dict) and "seconds" in v}
    return {"rows": rows, "shards": len(list(data.glob("*.parquet"))), "executor": executor,
            "generate_s": round(gen_s, 1), "wall_s": round(wall, 1), "peak_rss_mb": round(rss.peak / 2**20),
            "s_per_million_rows": round(wall / rows * 1e6, 1),
            "phases_s": phases, "run_dir_bytes_per_row": round(size / rows),
            "after_gc_bytes_per_row": round(freed["kept_bytes"] / rows),
            "input_bytes_per_row": round(du(data) / rows), "result": summary["result"]}


def render(results: dict) -> str:
    lines = ["# Scale: WFPP + SemDeDup + DBP end to end (`python -m bench.scale`)", "",
             f"Synthetic rows: a caption (4-12 Zipf words) and a 384-d float16 embedding around {TOPICS} topics, "
             f"{PLANTED:.0%} planted near-copies; {SHARD_ROWS:,} rows per shard; k = rows / 20,000 clusters. "
             f"Machine: {os.cpu_count()} CPUs (shared), Python {platform.python_version()}. Peak RSS sums the "
             "driver and all its child processes (Ray workers).", "",
             "| rows | executor | wall s | s per 1M rows | peak RSS MB | run dir B/row | after gc B/row | kept |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(results.values(), key=lambda r: r["rows"]):
        lines.append(f"| {r['rows']:,} | {r['executor']} | {r['wall_s']} | {r['s_per_million_rows']} | "
                     f"{r['peak_rss_mb']:,} | {r['run_dir_bytes_per_row']:,} | {r['after_gc_bytes_per_row']:,} | "
                     f"{r['result']['kept']:,} |")
    lines += ["", "Seconds per phase (per 1M rows in brackets):", ""]
    for r in sorted(results.values(), key=lambda r: r["rows"]):
        top = sorted(r["phases_s"].items(), key=lambda kv: -(kv[1] or 0))[:8]
        lines.append(f"- {r['rows']:,}: " + ", ".join(f"{k} {v:.0f} ({v / r['rows'] * 1e6:.1f})" for k, v in top))
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    ap.add_argument("--executor", default="ray")
    ap.add_argument("--work", default=None, help="folder for data and runs (default: a temporary one)")
    args = ap.parse_args()
    path = RESULTS / "scale.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="curate-scale-"))
    try:
        for rows in args.rows:
            print(f"{rows:,} rows ...", flush=True)
            results[str(rows)] = one(rows, work, args.executor)
            print(json.dumps(results[str(rows)], indent=1), flush=True)
            path.write_text(json.dumps(results, indent=1))
            md = RESULTS / "scale.md"  # the generated table, then the written sections (from the first "## ") kept
            notes = md.read_text().partition("\n## ") if md.exists() else ("", "", "")
            md.write_text(render(results) + (f"\n## {notes[2]}" if notes[1] else ""))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
