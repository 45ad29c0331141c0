"""Auto-FuzzyJoin benchmark: the 50 DBpedia tasks at τ = 0.9, ours beside the reference `autofj` 0.0.6.

    python -m bench.autofj [--ref-tasks T1,T2,...|all] [--skip-reference]

Ours (curate.join.autofj: fit on all of R, then the fitted program applied to R by `Matcher`, as the
stage does) runs on all 50 tasks; the reference runs in a bench-only venv (bench/.venv-autofj, created
here: python3.11 -m venv + pip install autofj==0.0.6 'pandas<3') on the default subset below, because all
50 tasks take it well over an hour on a 2-core machine (see bench/data/autofj/REFERENCE_RESULTS.md).
Both run in this one invocation on the same machine. Metric: bench/data/autofj/README.md. Writes
bench/results/autofj.json and bench/results/autofj.md.
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

from curate.join import autofj
from curate.join.blocking import BlockingIndex

HERE = Path(__file__).parent
DATA = HERE / "data" / "autofj"
RESULTS = HERE / "results"
VENV = HERE / ".venv-autofj"
# The reference's cheapest tasks plus the spec's anchors (Country, Amphibian, BasketballTeam) and the two
# tasks with unmatched R rows (Reptile, ShoppingMall): about 14 of its quiet minutes.
REF_TASKS = ["ShoppingMall", "Reptile", "Country", "Amphibian", "TennisTournament", "Galaxy", "BasketballTeam",
             "RugbyLeague", "NaturalEvent", "SoccerClubSeason", "ArtificialSatellite", "Legislature",
             "SoccerLeague", "FootballMatch", "Race", "Monarch", "GivenName", "Wrestler"]


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


def run_reference(names: list[str], out: Path) -> dict:
    py = ensure_venv()
    subprocess.run([str(py), str(HERE / "autofj_reference.py"), str(DATA), str(out), *names], check=True,
                   stderr=subprocess.DEVNULL)
    with open(out) as f:
        ref = json.load(f)
    results = {}
    for t in names:
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
    ap.add_argument("--ref-tasks", default=",".join(REF_TASKS), help="comma-separated tasks, or 'all'")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--ref-cache", default=str(HERE / ".venv-autofj" / "ref_results.json"),
                    help="reference outputs (re-used per task if present: delete it for a fresh run)")
    args = ap.parse_args()
    names = tasks()
    RESULTS.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    ours = {t: run_ours(t) for t in names}
    ours_total = time.perf_counter() - t0
    ref_names = names if args.ref_tasks == "all" else args.ref_tasks.split(",")
    ref = {} if args.skip_reference else run_reference(ref_names, Path(args.ref_cache))
    sub = [t for t in ref_names if t in ref]
    ref_pairs = {}
    if sub:
        with open(args.ref_cache) as f:
            ref_pairs = {t: r["pairs"] for t, r in json.load(f).items()}
    summary = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "precision_target": 0.9,
        "ours_all_50": {"tasks": len(names), "mean_precision": mean(list(ours.values()), "precision"),
                        "mean_recall": mean(list(ours.values()), "recall"), "mean_f1": mean(list(ours.values()), "f1"),
                        "total_seconds": ours_total},
        "subset": {"tasks": sub,
                   "ours": {k: mean([ours[t] for t in sub], k) for k in ("precision", "recall", "f1")}
                   | {"total_seconds": sum(ours[t]["seconds"] for t in sub)},
                   "reference": {k: mean([ref[t] for t in sub], k) for k in ("precision", "recall", "f1")}
                   | {"total_seconds": sum(ref[t]["seconds"] for t in sub)}},
        "blocking_recall_ge_reference": all(ours[t]["blocking_recall"] >= ref[t]["blocking_recall"] - 1e-12
                                            for t in sub),
        "pairs_equal_reference": {t: ours[t]["pairs"] == sorted(tuple(p) for p in ref_pairs[t]) for t in sub},
    }
    if sub:
        s = summary["subset"]
        summary["subset"]["time_ratio_ours_over_reference"] = s["ours"]["total_seconds"] / s["reference"]["total_seconds"]
    per_task = {t: {"ours": {k: v for k, v in ours[t].items() if k != "pairs"}, "reference": ref.get(t)} for t in names}
    with open(RESULTS / "autofj.json", "w") as f:
        json.dump({"summary": summary, "tasks": per_task}, f, indent=1)
    write_md(summary, per_task)


def write_md(summary: dict, per_task: dict) -> None:
    s, a = summary["subset"], summary["ours_all_50"]
    lines = ["# Auto-FuzzyJoin benchmark (50 DBpedia tasks, τ = 0.9)", "",
             f"Machine: {summary['machine']['cpus']} CPUs, Python {summary['machine']['python']}. Ours: "
             "`curate.join.autofj` fit on all of R, then the program applied by `Matcher`. Reference: `autofj` 0.0.6 "
             "defaults (2 processes) in bench/.venv-autofj, run in the same invocation on the subset listed.", "",
             f"**Ours, all {a['tasks']} tasks:** mean P {a['mean_precision']:.3f}, R {a['mean_recall']:.3f}, "
             f"F1 {a['mean_f1']:.3f}, total {a['total_seconds']:.1f} s.", ""]
    if s["tasks"]:
        lines += [f"**Subset of {len(s['tasks'])} tasks, side by side:** ours P {s['ours']['precision']:.3f} / "
                  f"R {s['ours']['recall']:.3f} / F1 {s['ours']['f1']:.3f} in {s['ours']['total_seconds']:.1f} s; "
                  f"reference P {s['reference']['precision']:.3f} / R {s['reference']['recall']:.3f} / "
                  f"F1 {s['reference']['f1']:.3f} in {s['reference']['total_seconds']:.1f} s; time ratio ours/reference "
                  f"{s['time_ratio_ours_over_reference']:.4f}. Blocking recall ≥ reference's on every subset task: "
                  f"{summary['blocking_recall_ge_reference']}. Identical (id_l, id_r) pairs: "
                  f"{sum(summary['pairs_equal_reference'].values())} of {len(s['tasks'])} tasks.", ""]
    lines += ["| task | L | R | gt | P | R | F1 | s | blocking recall | P̂ | far share | ref P | ref R | ref F1 | ref s | ref blocking recall |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t, row in per_task.items():
        o, r = row["ours"], row["reference"]
        est = "" if o["est_precision"] is None else f"{o['est_precision']:.3f}"
        far = "" if o["far_beyond_theta_share"] is None else f"{o['far_beyond_theta_share']:.3f}"
        ref_cells = (f"{r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['seconds']:.1f} | "
                     f"{r['blocking_recall']:.4f}") if r else " | | | | "
        lines.append(f"| {t} | {o['L']} | {o['R']} | {o['gt']} | {o['precision']:.3f} | {o['recall']:.3f} | "
                     f"{o['f1']:.3f} | {o['seconds']:.2f} | {o['blocking_recall']:.4f} | {est} | {far} | {ref_cells} |")
    (RESULTS / "autofj.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
