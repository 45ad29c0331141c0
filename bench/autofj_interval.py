"""Auto-FuzzyJoin's precision interval (docs/autofj.md section 2, "The interval") on the 50 DBpedia tasks at
0, 30 and 60% of R's matched rows turned into new entities (their match removed from L, as
bench/autofj_new_entities.py does, same seeds), τ = 0.9, mode default (`new_entities=True`).

    python -m bench.autofj_interval [--tasks T1,T2,...] [--rates 0,0.3,0.6] [--render]

Per task and rate, two fits: `precision_target_on: point` (unchanged behaviour) and `lower`. For each: the
true precision P and recall R of the delivered join (one L row per R row, as `Matcher` gives), P̂, the
interval [lower, upper], each model's P̂ and standard error (the union model's with α_U, the share of the
null its configurations join; the union_r model's with α_R, the share of the joined rows it would still join
without their delivered L row), and the warnings. Reported per rate:
coverage (share of tasks that joined something whose P lies in the interval) and mean width; among tasks
with P < τ and P < 0.85, the share flagged `target_at_risk` or `target_not_met`; among tasks with P ≥ τ, the
share flagged anyway; for `lower` against `point`: mean P and mean R. A task that joins nothing has no P
and is left out of coverage and mean P (counted, R = 0). Coverage is also given on two halves of the
tasks (alphabetical even / odd positions), as a check that nothing was fitted to the whole set.
Writes bench/results/autofj_interval.json (rows written after each task) and .md.
"""
from __future__ import annotations

import argparse
import json
import re
import time

import numpy as np

from bench.autofj import RESULTS, metrics, tasks
from bench.autofj_new_entities import TARGET, modified
from curate.methods.autofj import program as autofj

STEM = "autofj_interval"
AT_RISK = ("target_at_risk", "target_not_met")


def run_one(task: str, rate: float, on: str) -> dict:
    lids, lt, rids, rt, truth = modified(task, rate)
    t0 = time.perf_counter()
    res = autofj.fit(lids, [lt], [rt], ["title"], precision_target=TARGET, new_entities=True,
                     precision_target_on=on)
    seconds = time.perf_counter() - t0
    pred = {(int(lids[l]), int(rids[i])) for i, l in enumerate(res.join_l) if l >= 0}
    s = res.program["search"]
    m = metrics(pred, truth)
    return {"task": task, "rate": rate, "on": on, **m, "joined": bool(pred), "est_precision": s["est_precision"],
            "interval": s.get("est_precision_interval"), "models": s.get("precision_models"),
            "search_target": s.get("search_target"),
            "warnings": [w.split(":")[0] for w in res.program.get("warnings", [])], "seconds": seconds}


def covered(r: dict) -> bool:
    lo, hi = r["interval"]
    return lo - 1e-9 <= r["precision"] <= hi + 1e-9


def flagged(r: dict) -> bool:
    return not r["joined"] or any(w in AT_RISK for w in r["warnings"])


def _mean(xs: list[float]) -> float | None:
    return float(np.mean(xs)) if xs else None


def summarise(rows: list[dict]) -> dict:
    joined = [r for r in rows if r["joined"] and r["interval"] is not None]
    below = [r for r in rows if r["joined"] and r["precision"] < TARGET]
    far_below = [r for r in below if r["precision"] < 0.85]
    above = [r for r in rows if r["joined"] and r["precision"] >= TARGET]
    halves = {h: [r for r in joined if (sorted({x["task"] for x in rows}).index(r["task"]) % 2) == i]
              for i, h in enumerate(("even", "odd"))}
    return {"tasks": len(rows), "joined": len(joined),
            "coverage": _mean([covered(r) for r in joined]),
            "coverage_halves": {h: _mean([covered(r) for r in rs]) for h, rs in halves.items()},
            "misses_low": sum(r["precision"] < r["interval"][0] for r in joined),
            "misses_high": sum(r["precision"] > r["interval"][1] for r in joined),
            "mean_width": _mean([r["interval"][1] - r["interval"][0] for r in joined]),
            "median_width": float(np.median([r["interval"][1] - r["interval"][0] for r in joined])) if joined else None,
            "below_target": len(below), "below_target_flagged": _mean([flagged(r) for r in below]),
            "below_085": len(far_below), "below_085_flagged": _mean([flagged(r) for r in far_below]),
            "above_target": len(above), "above_target_flagged": _mean([flagged(r) for r in above]),
            "mean_precision": _mean([r["precision"] for r in rows if r["joined"]]),
            "mean_recall": float(np.mean([r["recall"] for r in rows])),
            "mean_est_precision": _mean([r["est_precision"] for r in joined]),
            "seconds": float(sum(r["seconds"] for r in rows))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", help="comma-separated tasks (default: all 50)")
    ap.add_argument("--rates", default="0,0.3,0.6")
    ap.add_argument("--modes", default="point,lower", help="precision_target_on values to run")
    ap.add_argument("--render", action="store_true", help="rewrite the summary and Markdown from the JSON")
    ap.add_argument("--part", help="write the rows to bench/results/autofj_interval.<part>.json only (run the rates "
                                   "in parallel processes, then --merge them)")
    ap.add_argument("--merge", help="comma-separated parts to merge into autofj_interval.json")
    args = ap.parse_args()
    path = RESULTS / (f"{STEM}.{args.part}.json" if args.part else f"{STEM}.json")
    if args.merge:
        parts = [json.loads((RESULTS / f"{STEM}.{p}.json").read_text()) for p in args.merge.split(",")]
        # a part's --tasks list is one half of the tasks (alphabetical, alternate): named, not listed
        out = {"command": "; ".join(re.sub(r"--tasks (\S+)", lambda m: f"--tasks <{len(m[1].split(','))} tasks, from "
                                           f"{m[1].split(',')[0]}>", p["command"]) for p in parts)
               + f"; python -m bench.autofj_interval --merge "
               f"{args.merge}", "precision_target": TARGET, "rows": [r for p in parts for r in p["rows"]],
               "seconds": max(p.get("seconds", 0) for p in parts)}
    elif args.render:
        out = json.loads(path.read_text())
    else:
        names = args.tasks.split(",") if args.tasks else tasks()
        rates = [float(x) for x in args.rates.split(",")]
        out = {"command": "python -m bench.autofj_interval" + (f" --tasks {args.tasks}" if args.tasks else "")
               + (f" --rates {args.rates}" if args.rates != "0,0.3,0.6" else "")
               + (f" --modes {args.modes}" if args.modes != "point,lower" else "")
               + (f" --part {args.part}" if args.part else ""),
               "precision_target": TARGET, "rows": []}
        t0 = time.perf_counter()
        for rate in rates:
            for t in names:
                for on in args.modes.split(","):
                    r = run_one(t, rate, on)
                    out["rows"].append(r)
                    print(f"{t} {rate} {on}: P {r['precision']:.3f} R {r['recall']:.3f} P̂ {r['est_precision']} "
                          f"interval {r['interval']} {r['warnings']}", flush=True)
                path.write_text(json.dumps(out, indent=1))
        out["seconds"] = time.perf_counter() - t0
        if args.part:
            path.write_text(json.dumps(out, indent=1))
            return
    rates = sorted({r["rate"] for r in out["rows"]})
    out["summary"] = {str(rate): {on: summarise(rs) for on in ("point", "lower")
                                  if (rs := [r for r in out["rows"] if r["rate"] == rate and r["on"] == on])}
                      for rate in rates}
    for rate in rates:  # lower against point on the tasks both ran (a part may stop early)
        rs = [r for r in out["rows"] if r["rate"] == rate]
        lower = {r["task"] for r in rs if r["on"] == "lower"}
        if lower:
            same = {on: summarise([r for r in rs if r["on"] == on and r["task"] in lower]) for on in ("point", "lower")}
            out["summary"][str(rate)]["same_tasks"] = {
                "tasks": len(lower), **{f"{on}_{k}": same[on][k] for on in same for k in ("mean_precision", "mean_recall")}}
    path.write_text(json.dumps(out, indent=1))
    write_md(out, rates)


def _f(v, fmt: str = ".3f") -> str:
    return "–" if v is None else format(v, fmt)


def write_md(out: dict, rates: list[float]) -> None:
    lines = ["# Auto-FuzzyJoin precision interval (50 DBpedia tasks, τ = 0.9)", "",
             f"Command: `{out['command']}` ({out.get('seconds', 0):.0f} s on 2 CPUs shared with other jobs). "
             "Docstring of bench/autofj_interval.py for the set-up. Coverage: share of the tasks that joined "
             "something whose true precision of the delivered join lies in the interval (misses below / above "
             "it); halves: the same on alternate tasks. Flagged: `target_at_risk` or `target_not_met`, or "
             "nothing joined.", "",
             "| rate | target on | joined | coverage | halves (even / odd) | misses low / high | mean (median) width | "
             "P < τ: flagged | P < 0.85: flagged | P ≥ τ: flagged | mean P | mean R | mean P̂ |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for rate in rates:
        for on, s in out["summary"][str(rate)].items():
            if on == "same_tasks":
                continue
            h = s["coverage_halves"]
            lines.append(f"| {rate:g} | {on} | {s['joined']} | {_f(s['coverage'])} | {_f(h['even'])} / "
                         f"{_f(h['odd'])} | {s['misses_low']} / {s['misses_high']} | {_f(s['mean_width'])} ({_f(s.get('median_width'))}) | "
                         f"{_f(s['below_target_flagged'])} of {s['below_target']} | {_f(s['below_085_flagged'])} "
                         f"of {s['below_085']} | {_f(s['above_target_flagged'])} of {s['above_target']} | "
                         f"{_f(s['mean_precision'])} | {_f(s['mean_recall'])} | {_f(s['mean_est_precision'])} |")
    same = [(rate, s) for rate in rates if (s := out["summary"][str(rate)].get("same_tasks"))]
    if same:
        lines += ["", "Lower against point on the tasks both ran: "
                  + "; ".join(f"rate {rate:g}, {s['tasks']} tasks: mean P {_f(s['point_mean_precision'])} → "
                              f"{_f(s['lower_mean_precision'])}, mean R {_f(s['point_mean_recall'])} → "
                              f"{_f(s['lower_mean_recall'])}" for rate, s in same) + "."]
    for rate in rates:
        lines += ["", f"## Rate {rate:g}", "",
                  "| task | on | P | R | P̂ | interval | within reach P̂ ± se | new share P̂ ± se | union P̂ ± se (α_U) "
                  "| union_r P̂ ± se (α_R) | warnings |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in (x for x in out["rows"] if x["rate"] == rate):
            iv = r["interval"]
            ms = r["models"] or {}
            cells = [f"{_f(m['precision'])} ± {_f(m['se'])}" if (m := ms.get(k)) else "–"
                     for k in ("within_reach", "new_share", "union", "union_r")]
            for c, k in ((2, "union"), (3, "union_r")):
                if (u := ms.get(k)) is not None:
                    cells[c] += f" ({u['null_pass']:.3f})"
            lines.append(f"| {r['task']} | {r['on']} | {_f(r['precision'] if r['joined'] else None)} | "
                         f"{_f(r['recall'])} | {_f(r['est_precision'])} | "
                         + (f"[{iv[0]:.3f}, {iv[1]:.3f}]" if iv else "–")
                         + f" | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | {', '.join(r['warnings'])} |")
    (RESULTS / f"{STEM}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
