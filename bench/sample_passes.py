"""The clustering fit's sample passes on one shard: two passes (keys, then the sampled rows) against one pass
that also returns the rows of the smallest 1/25 of keys (methods/clustering.py, `AHEAD`).

    python -m bench.sample_passes [--repeats 3] [--share 0.0128]

One shard of bench/scale.py's data (250,000 rows, 384-d float16 embeddings, Parquet as the bench writes it).
Each pass reads the shard's embedding and id-hash columns from the file (the engine's Parquet reader) and
writes its output as the engine does (engine/files.parquet_bytes); the sample is the `--share` of the rows
with the smallest keys (bench/scale.py at 10M: 256 x 500 / 10M = 1.28% for SemDeDup and DBP alike). "two
passes" is the code before (its first pass: the sorted keys only); "one pass" also reads the rows back
from its output. Process CPU seconds, alternated, one BLAS thread; the sampled rows are checked
bit-identical. Results: bench/results/sample_passes.{md,json}.
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
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from bench.scale import make_shard
from curate.engine.files import parquet_bytes
from curate.formats.parquet import ParquetReader
from curate.methods import clustering
from curate.methods.semdedup import SemDeDup
from curate.policy import tie_keys
from curate.stage import ROW_HASH
from kernels.vectors import valid_vectors

RESULTS = Path(__file__).parent / "results"


def old_keys(stage: SemDeDup, table: pa.Table) -> pa.Table:  # the first pass before this change
    ok = valid_vectors(table.column(stage.embedding)) & stage.in_pool(table)
    ties = tie_keys(table.column(ROW_HASH).to_numpy(), stage.seed)[ok]
    return pa.table({"tie": pa.array(np.sort(ties), pa.uint64())})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--share", type=float, default=256 * 500 / 10_000_000)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    path = Path(tmp) / "s.parquet"
    make_shard(path, 0, 250_000)
    ids = pq.read_table(path, columns=["id"]).column("id")
    hashes = np.frombuffer(np.array(ids.to_pylist(), "S16").tobytes(), np.uint64)[::2][: len(ids)]
    pq.write_table(pq.read_table(path).append_column("id_hash", pa.array(hashes, pa.uint64())), path)
    stage, bound = SemDeDup("emb", k=500), int(args.share * 2.0**64)
    assert bound <= clustering.AHEAD

    def read() -> pa.Table:
        t = ParquetReader.open(pafs.LocalFileSystem(), str(path), "s.parquet").read(["emb", "id_hash"])
        return t.rename_columns(["emb", ROW_HASH])

    times, rows = {"two passes": [], "one pass": []}, {}
    for _ in range(args.repeats):
        t0 = time.process_time()
        parquet_bytes(old_keys(stage, read()))
        sample = pq.read_table(pa.BufferReader(parquet_bytes(stage._sample_rows(bound, read())))).sort_by("tie")
        times["two passes"].append(time.process_time() - t0)
        rows["two passes"] = sample
        t0 = time.process_time()
        keys = pq.read_table(pa.BufferReader(parquet_bytes(stage._sample_keys_and_rows(read()))))
        sample = clustering._rows_at_or_below(keys, bound).sort_by("tie")
        times["one pass"].append(time.process_time() - t0)
        rows["one pass"] = sample
    a, b = (np.asarray(rows[k].column("vector").combine_chunks().values) for k in ("two passes", "one pass"))
    same = rows["two passes"].column("tie").equals(rows["one pass"].column("tie")) and \
        a.view(np.uint32).tobytes() == b.view(np.uint32).tobytes()
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {"rows": 250_000, "share": args.share, "sampled": rows["one pass"].num_rows, "cpu_s": times,
           "ratio_median": round(med["one pass"] / med["two passes"], 3), "identical": same,
           "omp_threads": os.environ.get("OMP_NUM_THREADS"), "load_avg": os.getloadavg()}
    (RESULTS / "sample_passes.json").write_text(json.dumps(res, indent=1))
    fmt = lambda v: " / ".join(f"{x:.2f}" for x in sorted(v))  # noqa: E731
    (RESULTS / "sample_passes.md").write_text(
        "# The clustering fit's sample passes on one shard (`python -m bench.sample_passes`)\n\n"
        f"250,000 rows of bench/scale.py's data, sample share {args.share:.4f} ({res['sampled']:,} rows); process "
        f"CPU seconds (min / median / max of {args.repeats}, alternated), OMP_NUM_THREADS={res['omp_threads']}, "
        f"on a shared 2-core machine (load average at the end {res['load_avg'][0]:.1f}).\n\n"
        f"| sample passes | CPU s |\n|---|---|\n| two (before) | {fmt(times['two passes'])} |\n"
        f"| one | {fmt(times['one pass'])} |\n\n"
        f"Median ratio one / two: {res['ratio_median']}; sampled rows identical (keys, order, bits): {same}.\n")
    print(json.dumps(res, indent=1))
    for p in Path(tmp).iterdir():
        p.unlink()
    os.rmdir(tmp)


if __name__ == "__main__":
    main()
