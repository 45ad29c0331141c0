"""Auto-FuzzyJoin at scale: synthetic L of n names and R of n rows (curate.data.autofj_synth), fit + apply
through the engine (`autofj` stage, search on a 20k sample), time, blocking throughput and peak memory.

    python -m bench.autofj_scale [--sizes 10000,30000,100000]

Each size runs in a child process so that its peak RSS (ru_maxrss) is its own. Writes
bench/results/autofj_scale.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def child(n: int, budget: str, n_left: int | None = None, lsh: bool = False) -> dict:
    import curate
    from curate.data.autofj_synth import build
    from curate.methods.autofj.stage import AutoFJ

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        info = build(tmp, n_left or n, n, shards=max(4, n // 25_000))
        t_build = time.perf_counter() - t0
        stage = AutoFJ(reference=f"{tmp}/left.parquet", on="name", precision_target=0.9,
                       blocking_budget=int(budget) if budget.isdigit() else budget, minhash_lsh=lsh)
        t0 = time.perf_counter()
        summary = curate.run(curate.Pipeline([stage], id_column="id"), f"{tmp}/right", f"{tmp}/run", executor="local")
        total = time.perf_counter() - t0
        m = curate.load_manifest(f"{tmp}/run")
        import pyarrow.parquet as pq

        truth = pq.read_table(f"{tmp}/right", columns=["id", "true_id"])
        t = dict(zip(truth.column("id").to_pylist(), truth.column("true_id").to_pylist()))
        pred = [(r, l) for r, l in zip(m.column("id").to_pylist(), m.column("autofj.match_id").to_pylist()) if l]
        correct = sum(t[r] == l for r, l in pred)
        s = summary["stages"]["autofj"]
        art = s["artifact"]
        return {"n_left": info["left"], "n_right": info["right"], "shards": max(4, n // 25_000), "blocking_budget": art["program"]["blocking_budget"] if "program" in art else budget, "build_s": t_build, "run_s": total,
                "fit_timings": art["timings"], "apply_s": s["seconds"], "apply_rows_per_s": s["rows_per_s"],
                "est_precision": art["est_precision"], "precision": correct / max(len(pred), 1),
                "recall": correct / sum(v is not None for v in t.values()), "matched": len(pred),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,30000,100000")
    ap.add_argument("--budget", default="auto",
                    help="blocking probe budget: auto (exact up to 50k L rows), exact, or postings per query")
    ap.add_argument("--left", type=int, default=None, help="fixed |L| (default: |L| = |R| = n)")
    ap.add_argument("--minhash-lsh", action="store_true", help="add MinHash LSH candidates (20 x 5)")
    ap.add_argument("--out", default="autofj_scale", help="results file stem in bench/results/")
    ap.add_argument("--child", type=int)
    ap.add_argument("--render", action="store_true", help="only rewrite <out>.md from <out>.json")
    args = ap.parse_args()
    if args.render:
        render(args.out)
        return
    if args.child:
        print(json.dumps(child(args.child, args.budget, args.left, args.minhash_lsh)))
        return
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        cmd = [sys.executable, "-m", "bench.autofj_scale", "--child", str(n)]
        cmd += ["--budget", args.budget]
        if args.left:
            cmd += ["--left", str(args.left)]
        if args.minhash_lsh:
            cmd += ["--minhash-lsh"]
        p = subprocess.run(cmd, capture_output=True, text=True, check=False,
                           env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
        if p.returncode:
            rows.append({"n_left": n, "error": p.stderr[-2000:]})
            break
        rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"cpus": os.cpu_count(), "budget": args.budget, "left": args.left,
                                                          "minhash_lsh": args.minhash_lsh,
                                                          "rows": rows}, indent=1))
    render(args.out)


def render(out: str) -> None:
    """bench/results/<out>.md from <out>.json."""
    data = json.loads((RESULTS / f"{out}.json").read_text())
    rows, budget, left = data["rows"], data.get("budget", "auto"), data.get("left")
    if data.get("minhash_lsh"):
        budget += ", plus MinHash LSH candidates (20 bands x 5 rows)"
    shape = f"|L| = {left}, |R| = n" if left else "|L| = |R| = n"
    lines = [f"# Auto-FuzzyJoin at scale (synthetic names, {shape}, search sample 20k, local executor)", "",
             f"Blocking: budget = {budget} (auto: exact TF-IDF top-k up to 50k L rows, else each query "
             "probes 20,000 postings rarest token first and re-scores its 200 best exactly). Fit blocking q/s: "
             "L-L plus search-sample queries per second. Peak RSS is the child process's ru_maxrss.", "",
             "| L | R | shards | fit s (blocking / rules / distances / search / L-L counts) | fit blocking q/s "
             "| apply s | apply rows/s | total s | peak RSS MB | P̂ | P | R |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['n_left']} | | | failed: {r['error'][-200:]!r} | | | | | | | | |")
            continue
        ft = r["fit_timings"]
        qps = (r["n_left"] + min(r["n_right"], 20_000)) / ft["blocking_s"]
        lines.append(f"| {r['n_left']} | {r['n_right']} | {r['shards']} | {ft['total_s']:.1f} ({ft['blocking_s']:.1f} / "
                     f"{ft['rules_s']:.1f} / {ft['distances_s']:.1f} / {ft['search_s']:.1f} / "
                     f"{ft.get('ll_counts_s', 0):.1f}) | {qps:.0f} | {r['apply_s']:.1f} | {r['apply_rows_per_s']:.0f} | "
                     f"{r['run_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['est_precision']:.3f} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} |")
    if data.get("note"):
        lines += ["", data["note"]]
    (RESULTS / f"{out}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
