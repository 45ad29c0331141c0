"""Auto-FuzzyJoin benchmark: the 50 DBpedia tasks at τ = 0.9, ours beside the reference `autofj` 0.0.6.

    python -m bench.autofj [--ref-tasks cached|all|T1,T2,...] [--skip-reference]

Ours (curate.methods.autofj.program: fit on all of R, then the fitted program applied to R by `Matcher`, as the
stage does) runs on all 50 tasks. The reference runs in a bench-only venv (bench/.venv-autofj, created
here: python3.11 -m venv + pip install autofj==0.0.6 'pandas<3'). All 50 tasks take it several hours on a
2-core machine, so its per-task outputs are kept in bench/results/autofj_reference_runs.json (written
after each task by bench/autofj_reference.py): `--ref-tasks all` (or a list) runs the tasks missing there,
the default `cached` only reads it. Metric: bench/data/autofj/README.md. Writes bench/results/autofj.json
and bench/results/autofj.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from curate.methods.autofj import program as autofj
from curate.methods.autofj.blocking import BlockingIndex

HERE = Path(__file__).parent
DATA = HERE / "data" / "autofj"
RESULTS = HERE / "results"
VENV = HERE / ".venv-autofj"
REF_RUNS = RESULTS / "autofj_reference_runs.json"


def tasks() -> list[str]:
    return sorted(p.name for p in DATA.iterdir() if (p / "gt.csv").exists())


def read(task: str, name: str) -> list[list[str]]:
    with open(DATA / task / name, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))[1:]


def metrics(pred: set, gt: set) -> dict:
    tp = len(pred & gt)
    p = tp / len(pred) if pred else 0.0
    r = tp / len(gt) if gt else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "pred": len(pred)}


def run_ours(task: str) -> dict:
    left, right, gt = read(task, "left.csv"), read(task, "right.csv"), read(task, "gt.csv")
    lids, lt = [x[0] for x in left], [x[1] for x in left]
    rids, rt = [x[0] for x in right], [x[1] for x in right]
    t0 = time.perf_counter()
    res = autofj.fit(lids, [lt], [rt], ["title"], precision_target=0.9)
    t_fit = time.perf_counter() - t0
    m = autofj.Matcher(res.program, lids, [lt], res.ll_counts).match([rt])
    seconds = time.perf_counter() - t0
    pred = {(int(lids[l]), int(rids[i])) for i, l in enumerate(m.l) if l >= 0}
    gt_pairs = {(int(g[0]), int(g[2])) for g in gt}
    # Blocking recall of our blocker (the same candidates the fit sees, before negative rules).
    index = BlockingIndex.build(lt)
    q, c = index.candidates(rt)
    blocked = {(int(lids[a]), int(rids[b])) for a, b in zip(c, q)}
    s = res.program["search"]
    return {"task": task, "L": len(left), "R": len(right), "gt": len(gt), **metrics(pred, gt_pairs),
            "seconds": seconds, "fit_seconds": t_fit, "configs": len(res.program["configs"]),
            "est_precision": s["est_precision"], "far_beyond_theta_share": s["far_beyond_theta_share"],
            "blocking_recall": len(blocked & gt_pairs) / len(gt_pairs), "blocked_pairs": len(blocked),
            "pairs": sorted(pred), "fit_equals_apply": bool(np.array_equal(res.join_l, m.l))}


def ensure_venv() -> Path:
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable if sys.version_info[:2] == (3, 11) else "python3.11", "-m", "venv", str(VENV)],
                       check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "autofj==0.0.6", "pandas<3"], check=True)
    return py


def run_reference(names: list[str], out: Path) -> list[str]:
    """Runs the reference on the tasks in `names` that `out` does not hold yet; returns those tasks."""
    done = json.loads(out.read_text()) if out.exists() else {}
    todo = [t for t in names if t not in done]
    if todo:
        subprocess.run([str(ensure_venv()), str(HERE / "autofj_reference.py"), str(DATA), str(out), *todo],
                       check=True, stderr=subprocess.DEVNULL)
    return todo


def read_reference(out: Path) -> dict:
    ref = json.loads(out.read_text()) if out.exists() else {}
    results = {}
    for t in sorted(ref):
        gt = {(int(g[0]), int(g[2])) for g in read(t, "gt.csv")}
        r = ref[t]
        results[t] = {**metrics({tuple(p) for p in r["pairs"]}, gt), "seconds": r["seconds"],
                      "configs": len(r["configs"]), "blocking_recall": r["blocking_recall"],
                      "blocked_pairs": r["blocked_pairs"]}
    return results


def mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref-tasks", default="cached",
                    help="'cached' (read the recorded reference runs only), 'all', or comma-separated tasks to run "
                         "where not recorded yet")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--ref-cache", default=str(REF_RUNS),
                    help="reference outputs per task (re-used if present: delete it for a fresh run)")
    ap.add_argument("--render", action="store_true",
                    help="do not run ours: re-read it from autofj.json and rewrite the report with the reference "
                         "runs recorded now")
    args = ap.parse_args()
    names = tasks()
    RESULTS.mkdir(exist_ok=True)
    if args.render:
        old = json.loads((RESULTS / "autofj.json").read_text())
        ours = {t: row["ours"] for t, row in old["tasks"].items()}
        ours_total = old["summary"]["ours_all_50"]["total_seconds"]
        fresh = old["summary"]["subset"].get("reference_run_in_this_invocation", [])
    else:
        t0 = time.perf_counter()
        ours = {t: run_ours(t) for t in names}
        ours_total = time.perf_counter() - t0
        fresh = []
    cache = Path(args.ref_cache)
    if not args.render and not args.skip_reference and args.ref_tasks != "cached":
        fresh = run_reference(names if args.ref_tasks == "all" else args.ref_tasks.split(","), cache)
    ref = {} if args.skip_reference else read_reference(cache)
    sub = [t for t in names if t in ref]
    ref_pairs = {t: r["pairs"] for t, r in json.loads(cache.read_text()).items()} if sub else {}
    summary = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "precision_target": 0.9,
        "ours_all_50": {"tasks": len(names), "mean_precision": mean(list(ours.values()), "precision"),
                        "mean_recall": mean(list(ours.values()), "recall"), "mean_f1": mean(list(ours.values()), "f1"),
                        "total_seconds": ours_total},
        "subset": {"tasks": sub, "reference_run_in_this_invocation": fresh,
                   "ours": {k: mean([ours[t] for t in sub], k) for k in ("precision", "recall", "f1")}
                   | {"total_seconds": sum(ours[t]["seconds"] for t in sub)},
                   "reference": {k: mean([ref[t] for t in sub], k) for k in ("precision", "recall", "f1")}
                   | {"total_seconds": sum(ref[t]["seconds"] for t in sub)}},
        "blocking_recall_ge_reference": all(ours[t]["blocking_recall"] >= ref[t]["blocking_recall"] - 1e-12
                                            for t in sub),
        "pairs_equal_reference": {t: _pairs(ours[t]["pairs"]) == _pairs(ref_pairs[t]) for t in sub},
    }
    if sub:
        s = summary["subset"]
        summary["subset"]["time_ratio_ours_over_reference"] = s["ours"]["total_seconds"] / s["reference"]["total_seconds"]
    per_task = {t: {"ours": ours[t], "reference": ref.get(t)} for t in names}
    with open(RESULTS / "autofj.json", "w") as f:
        json.dump({"summary": summary, "tasks": per_task}, f, indent=1)
    write_md(summary, per_task)


def _pairs(pairs: list) -> list[tuple[int, int]]:
    return sorted((int(a), int(b)) for a, b in pairs)


def write_md(summary: dict, per_task: dict) -> None:
    s, a = summary["subset"], summary["ours_all_50"]
    lines = ["# Auto-FuzzyJoin benchmark (50 DBpedia tasks, τ = 0.9)", "",
             f"Machine: {summary['machine']['cpus']} CPUs, Python {summary['machine']['python']}. Ours: "
             "`curate.methods.autofj.program` fit on all of R, then the program applied by `Matcher`. Reference: `autofj` 0.0.6 "
             "defaults (2 processes) in bench/.venv-autofj, read from bench/results/autofj_reference_runs.json, "
             "which bench/autofj_reference.py fills one task at a time on this kind of machine "
             f"({len(s['reference_run_in_this_invocation'])} of its {len(s['tasks'])} tasks in the same invocation "
             "as ours). Times are wall seconds and noisy: reference runs may have shared the 2 cores with other work "
             "(its earlier quiet times per task: bench/data/autofj/REFERENCE_RESULTS.md).", "",
             f"**Ours, all {a['tasks']} tasks:** mean P {a['mean_precision']:.3f}, R {a['mean_recall']:.3f}, "
             f"F1 {a['mean_f1']:.3f}, total {a['total_seconds']:.1f} s.", ""]
    if s["tasks"]:
        lines += [f"**Tasks with a reference run ({len(s['tasks'])} of {a['tasks']}), side by side:** ours P {s['ours']['precision']:.3f} / "
                  f"R {s['ours']['recall']:.3f} / F1 {s['ours']['f1']:.3f} in {s['ours']['total_seconds']:.1f} s; "
                  f"reference P {s['reference']['precision']:.3f} / R {s['reference']['recall']:.3f} / "
                  f"F1 {s['reference']['f1']:.3f} in {s['reference']['total_seconds']:.1f} s; time ratio ours/reference "
                  f"{s['time_ratio_ours_over_reference']:.4f}. Blocking recall ≥ reference's on every one of them: "
                  f"{summary['blocking_recall_ge_reference']}. Identical (id_l, id_r) pairs: "
                  f"{sum(summary['pairs_equal_reference'].values())} of {len(s['tasks'])} tasks.", ""]
    lines += ["| task | L | R | gt | P | R | F1 | s | blocking recall | P̂ | far share | ref P | ref R | ref F1 | ref s | "
              "ref blocking recall | same pairs |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    same = summary["pairs_equal_reference"]
    for t, row in per_task.items():
        o, r = row["ours"], row["reference"]
        est = "" if o["est_precision"] is None else f"{o['est_precision']:.3f}"
        far = "" if o["far_beyond_theta_share"] is None else f"{o['far_beyond_theta_share']:.3f}"
        ref_cells = (f"{r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['seconds']:.1f} | "
                     f"{r['blocking_recall']:.4f} | {'yes' if same[t] else 'no'}") if r else " | | | | | "
        lines.append(f"| {t} | {o['L']} | {o['R']} | {o['gt']} | {o['precision']:.3f} | {o['recall']:.3f} | "
                     f"{o['f1']:.3f} | {o['seconds']:.2f} | {o['blocking_recall']:.4f} | {est} | {far} | {ref_cells} |")
    (RESULTS / "autofj.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
