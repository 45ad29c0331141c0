"""ZIP-FIT benchmark: our `zipfit` stage vs the reference package `zip-fit` 1.0.9, same data, same run.

    make bench            (or: python -m bench.zipfit [--seed 0] [--skip-ray])

Data: the stdlib `email` experiment of docs/methods/zipfit.md (50 target chunks from half of the `email`
package; 1,194 candidates: 144 from its other half, 600 of other stdlib code, 450 of Python docs
prose). The reference runs in the bench-only environment bench/.venv-zipfit (created here on first
use: `python3.11 -m venv` + `pip install zip-fit==1.0.9 zstandard brotli`), with gzip level 1 passed
explicitly (its default level 0 does not compress), using its own multiprocessing ranking over
cpu_count() processes. Ours runs single-process (stage called directly), through the engine with the
local executor, and through Ray with as many workers as the reference has processes.

Reported per path: seconds, speed-up over the reference, top-10% overlap and Spearman rho with the
reference's scores, in-domain precision of the top 10%. The faithful path is exact gzip; the optional
fast paths (isal backend, target subsampling, dictionary prefilter) are listed separately.
Writes bench/results/zipfit.json and bench/results/zipfit.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from scipy.stats import spearmanr

import curate
from curate.data.stdlib_code import email_experiment
from curate.methods.zipfit.stage import ZipFit
from curate.stage import TablesFitContext
from testkit.helpers import write_shards

HERE = Path(__file__).parent
RESULTS = HERE / "results"
REF_VENV = HERE / ".venv-zipfit"
REF_PINS = ["zip-fit==1.0.9", "zstandard", "brotli"]  # the package imports both but does not declare them


def reference_python() -> Path:
    """The bench-only venv's python, created on first use."""
    py = REF_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run(["python3.11", "-m", "venv", str(REF_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *REF_PINS], check=True)
    return py


def run_reference(cands: list[str], targets: list[str], level: int, work: Path, repeat: int) -> dict:
    src, dst = work / "ref_in.json", work / "ref_out.json"
    src.write_text(json.dumps({"candidates": cands, "targets": targets, "level": level, "repeat": repeat}))
    subprocess.run([str(reference_python()), str(HERE / "zipfit_reference.py"), str(src), str(dst)], check=True)
    return json.loads(dst.read_text())


def compare(ours: np.ndarray, ref: np.ndarray, label: np.ndarray, frac: float = 0.1) -> dict:
    """Top-fraction overlap and Spearman vs the reference; NaN scores (prefiltered) rank last."""
    k = int(len(ref) * frac)
    ranked = np.where(np.isnan(ours), -np.inf, ours)
    top_ours = set(np.argsort(-ranked, kind="stable")[:k].tolist())
    top_ref = set(np.argsort(-ref, kind="stable")[:k].tolist())
    exact = ~np.isnan(ours)
    return {"top10_overlap": round(len(top_ours & top_ref) / k, 4),
            "spearman": round(float(spearmanr(ours[exact], ref[exact]).statistic), 5),
            "spearman_rows": int(exact.sum()),
            "max_abs_diff": float(np.max(np.abs(ours[exact] - ref[exact]))),
            "precision_top10": round(float(label[sorted(top_ours)].mean()), 4)}


def stage_direct(table: pa.Table, targets: list[str], repeat: int, **params) -> tuple[np.ndarray, float, dict]:
    """Fit + score in this process; best time of `repeat` (the machine is shared)."""
    times, cpus = [], []
    for _ in range(repeat):
        stage = ZipFit(target=targets, **params)
        t0, c0 = time.perf_counter(), time.process_time()
        stage.setup(stage.fit(TablesFitContext([table])))
        out = stage.score(table)
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        info = stage.worker_info()
    info["cpu_seconds"] = min(cpus)
    return out.column("score").to_numpy(zero_copy_only=False).astype(np.float64), min(times), info


def engine(table: pa.Table, targets: list[str], work: Path, executor: str, workers: int | None) -> tuple[np.ndarray, float, float]:
    data = work / "data"
    if not data.exists():
        write_shards(data, table, 8)
    p = curate.Pipeline([ZipFit(target=targets)], [curate.KeepFraction("zipfit.score", 0.1)], id_column="id")
    out = work / f"run-{executor}"
    t0 = time.perf_counter()
    s = curate.run(p, data, out, executor=executor, workers=workers)
    seconds = time.perf_counter() - t0
    m = curate.load_manifest(out)
    by_id = dict(zip(m.column("id").to_pylist(), m.column("zipfit.score").to_pylist()))
    startup = s["phases"].get("ray_startup", {}).get("seconds", 0.0)
    return np.array([by_id[i] for i in table.column("id").to_pylist()], dtype=np.float64), seconds, startup


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--level", type=int, default=1)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many timings (reference and stage)")
    args = ap.parse_args()

    targets_c, cands_c = email_experiment(args.seed)
    targets = [c.text for c in targets_c]
    cands = [c.text for c, _ in cands_c]
    label = np.array([inside for _, inside in cands_c])
    assert max(len(c.encode()) for c in cands + targets) <= 8192, "inputs must be under the cap to compare"
    table = pa.table({"id": [c.id for c, _ in cands_c], "text": cands})
    pairs = len(cands) * len(targets)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ref = run_reference(cands, targets, args.level, work, args.repeat)
        ref_scores, ref_s = np.array(ref["scores"]), ref["seconds"]
        rows: list[dict] = []

        def add(path: str, kind: str, scores: np.ndarray, seconds: float, **extra) -> None:
            rows.append({"path": path, "kind": kind, "seconds": round(seconds, 3),
                         "speedup": round(ref_s / seconds, 2), "us_per_pair": round(seconds / pairs * 1e6, 2),
                         **compare(scores, ref_scores, label), **extra})

        s, sec, info = stage_direct(table, targets, args.repeat, level=args.level)
        add("stage, 1 process (zlib, exact gzip sizes)", "faithful", s, sec, cpu_seconds=round(info["cpu_seconds"], 3),
            cpu_ratio=round(ref["cpu_seconds"] / info["cpu_seconds"], 2))
        s, sec, _ = engine(table, targets, work, "local", None)
        add("engine local executor, 8 shards, 1 process", "faithful", s, sec)
        if not args.skip_ray:
            workers = os.cpu_count() or 1
            s, sec, startup = engine(table, targets, work, "ray", workers)
            add(f"engine Ray executor, 8 shards, {workers} workers (incl. Ray start {startup:.1f} s)", "faithful", s, sec)
            add(f"engine Ray executor, 8 shards, {workers} workers, Ray start excluded", "faithful", s, sec - startup)
        for label_, params in (("isal level 1", {"backend": "isal", "level": 1}),
                               ("target_sample n'=20 of 50", {"target_sample": 20}),
                               ("target_sample n'=10 of 50", {"target_sample": 10}),
                               ("prefilter_keep 0.5", {"prefilter_keep": 0.5}),
                               ("prefilter_keep 0.3", {"prefilter_keep": 0.3}),
                               ("isal + n'=20 + prefilter 0.5", {"backend": "isal", "target_sample": 20,
                                                                  "prefilter_keep": 0.5})):
            s, sec, info = stage_direct(table, targets, args.repeat, **{"level": args.level, **params})
            add(f"stage, 1 process, {label_}", "optional fast path", s, sec, pairs_scored=info["pairs"],
                cpu_seconds=round(info["cpu_seconds"], 3), cpu_ratio=round(ref["cpu_seconds"] / info["cpu_seconds"], 2))

    result = {
        "data": {"experiment": "stdlib email (docs/methods/zipfit.md check 6)", "seed": args.seed, "candidates": len(cands),
                 "targets": len(targets), "pairs": pairs, "in_domain_base_rate": round(float(label.mean()), 4),
                 "candidate_bytes_median": int(np.median([len(c.encode()) for c in cands]))},
        "reference": {"package": f"zip-fit {ref['version']}", "call": "ZIPFIT.rank_sequences_by_alignment",
                      "compression": f"gzip level {args.level} (passed explicitly)",
                      "processes": os.cpu_count(), "seconds": round(ref_s, 3), "repeat": args.repeat,
                      "cpu_seconds": round(ref["cpu_seconds"], 3),
                      "us_per_pair": round(ref_s / pairs * 1e6, 2),
                      "precision_top10": compare(ref_scores, ref_scores, label)["precision_top10"]},
        "paths": rows,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "zipfit.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "zipfit.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    d, ref = r["data"], r["reference"]
    lines = [
        "# ZIP-FIT: `zipfit` stage vs `zip-fit` 1.0.9",
        "",
        f"Data: {d['experiment']}, seed {d['seed']}: {d['candidates']} candidates x {d['targets']} targets = "
        f"{d['pairs']:,} pairs, median candidate {d['candidate_bytes_median']} bytes, in-domain base rate "
        f"{d['in_domain_base_rate']}. Machine: {r['machine']['cpus']} CPUs (shared), Python {r['machine']['python']}.",
        "",
        f"Reference: {ref['package']}, `{ref['call']}`, {ref['compression']}, {ref['processes']} processes: "
        f"**{ref['seconds']} s** wall, {ref['cpu_seconds']} CPU-s (all processes), {ref['us_per_pair']} us/pair wall; "
        f"top-10% in-domain precision {ref['precision_top10']}. Times are the best of {ref['repeat']}.",
        "",
        "| path | kind | seconds | speed-up (wall) | CPU-s | speed-up (CPU) | us/pair | top-10% overlap | Spearman "
        "| max abs diff | top-10% precision |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in r["paths"]:
        cpu = f"{p['cpu_seconds']} | {p['cpu_ratio']}x" if "cpu_seconds" in p else "- | -"
        lines.append(f"| {p['path']} | {p['kind']} | {p['seconds']} | {p['speedup']}x | {cpu} | {p['us_per_pair']} | "
                     f"{p['top10_overlap']} | {p['spearman']} ({p['spearman_rows']} rows) | {p['max_abs_diff']:.2g} | "
                     f"{p['precision_top10']} |")
    lines += ["", "Overlap: share of the reference's top 10% in ours. Prefiltered rows have no exact score: they rank "
              "last, and Spearman is over the exactly scored rows. us/pair divides by all N x n pairs.", "",
              "The Ray rows above start a Ray per run. On the shared warm Ray (`curate ray start`), alternating with "
              "zip-fit and the compression floor over several rounds: bench/results/ray_startup.md "
              "(`python -m bench.ray_startup`).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
