"""SemDeDup's shuffle carrying its unit vectors packed (fixed-size binary) against a fixed-size list of float32.

    python -m bench.semdedup_carry [--repeats 3] [--partitions 200]

One shard of bench/scale.py's data (250,000 rows, 384-d float16 embeddings), 500 random unit centroids. Per
carry, process CPU seconds of: the map (the stage's `_assign_packed` and the grouped Parquet file of the engine,
engine/files.parquet_bytes) and the reduce side's part of it (reading every row group back and making the
float32 matrix the pairwise kernel gets). "list" rebuilds the map's vector column as it was before packing
(a fixed-size list of float32, written by the same engine code); the matrices are checked bit-identical.
Alternated, one BLAS thread. Results: bench/results/semdedup_carry.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.scale import make_shard
from curate.engine.files import parquet_bytes
from curate.methods.semdedup import SemDeDup
from curate.stage import ROW_HASH, ROW_ID
from kernels.vectors import unpacked_rows

RESULTS = Path(__file__).parent / "results"


def as_list(table: pa.Table) -> pa.Table:
    x = unpacked_rows(table.column("vector"))
    lists = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), pa.float32()), x.shape[1])
    return table.set_column(table.schema.get_field_index("vector"), "vector", lists)


def read_back(data: pa.Buffer, carry: str) -> np.ndarray:
    f = pq.ParquetFile(pa.BufferReader(data))
    col = pa.concat_tables([f.read_row_group(g) for g in range(f.num_row_groups)]).column("vector")
    if carry == "packed":
        return unpacked_rows(col)
    col = col.combine_chunks()  # (the reduce's code before packing)
    return np.asarray(col.values.to_numpy(), np.float32).reshape(len(col), col.type.list_size)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_shard(Path(tmp) / "s.parquet", 0, 250_000)
        table = pq.read_table(Path(tmp) / "s.parquet")
    n = table.num_rows
    table = table.append_column(ROW_ID, table.column("id")).append_column(
        ROW_HASH, pa.array(np.random.default_rng(0).integers(0, 2**63, n).astype(np.uint64)))
    stage = SemDeDup("emb", k=500)
    c = np.random.default_rng(1).standard_normal((500, 384)).astype(np.float32)
    stage._centroids, stage._parts = c / np.linalg.norm(c, axis=1, keepdims=True), args.partitions
    times = {k: {"map": [], "reduce": []} for k in ("list", "packed")}
    out = {}
    for _ in range(args.repeats):
        for carry in ("list", "packed"):
            t0 = time.process_time()
            rows = stage._assign_packed(table)
            data = parquet_bytes(rows if carry == "packed" else as_list(rows), "part")
            t1 = time.process_time()
            out[carry] = read_back(data, carry)
            t2 = time.process_time()
            times[carry]["map"].append(t1 - t0)
            times[carry]["reduce"].append(t2 - t1)
            out[carry + "_bytes"] = data.size
    same = out["list"].view(np.uint32).tobytes() == out["packed"].view(np.uint32).tobytes()
    med = {k: {p: statistics.median(v) for p, v in d.items()} for k, d in times.items()}
    res = {"rows": n, "partitions": args.partitions, "cpu_s": times, "identical": same,
           "file_bytes": {"list": out["list_bytes"], "packed": out["packed_bytes"]},
           "ratio_median": {p: round(med["packed"][p] / med["list"][p], 3) for p in ("map", "reduce")},
           "omp_threads": os.environ.get("OMP_NUM_THREADS"), "load_avg": os.getloadavg()}
    (RESULTS / "semdedup_carry.json").write_text(json.dumps(res, indent=1))
    fmt = lambda v: " / ".join(f"{x:.2f}" for x in sorted(v))  # noqa: E731
    (RESULTS / "semdedup_carry.md").write_text(
        "# SemDeDup's shuffle: unit vectors packed against a list of float32 (`python -m bench.semdedup_carry`)\n\n"
        f"One shard of bench/scale.py's data ({n:,} rows, 384-d), {args.partitions} partitions; process CPU seconds "
        f"(min / median / max of {args.repeats}, alternated), OMP_NUM_THREADS={res['omp_threads']}, on a shared "
        f"2-core machine (load average at the end {res['load_avg'][0]:.1f}).\n\n"
        "| carry | map: assign + grouped file | reduce side: read + matrix | file MB |\n|---|---|---|---|\n"
        + "".join(f"| {k} | {fmt(times[k]['map'])} | {fmt(times[k]['reduce'])} | {out[k + '_bytes'] / 2**20:.0f} |\n"
                  for k in ("list", "packed"))
        + f"\nMedian ratio packed / list: map {res['ratio_median']['map']}, reduce side "
        f"{res['ratio_median']['reduce']}; float32 matrices bit-identical: {same}.\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
