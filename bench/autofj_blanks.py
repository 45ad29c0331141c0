"""Auto-FuzzyJoin on several columns with blanks in both tables and new entities in R.

    python -m bench.autofj_blanks [--left 3000] [--right 2000] [--new-share 0.3]

Data from the project's corruption generator (`curate.data.autofj_synth.build_multi`): columns name,
place, year, kind; 10/25/40/30% blanks per column in L and R; a share of R rows are new entities.
Runs the `autofj` stage through `curate.run` (local executor) in both modes and scores the manifest
against the generator's truth: true precision P and recall R, the program's P̂ and its new-entity share,
and how every R row was accounted for (matched, unmatched by reason, errored).
Writes bench/results/autofj_blanks.json and .md.
"""
from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

import curate
from bench.autofj import RESULTS
from curate.data.autofj_synth import build_multi
from curate.methods.autofj import AutoFJ

COLUMNS = ["name", "place", "year", "kind"]


def run_mode(data: Path, mode: str, work: Path) -> dict:
    stage = AutoFJ(reference=str(data / "left.parquet"), on=COLUMNS, mode=mode)
    t0 = time.perf_counter()
    s = curate.run(curate.Pipeline([stage], id_column="id"), data / "right", work / mode, executor="local")
    seconds = time.perf_counter() - t0
    m = curate.load_manifest(work / mode).to_pydict()
    truth = dict(zip(*[pq.read_table(data / "right").column(c).to_pylist() for c in ("id", "true_id")]))
    pred = {r: l for r, l in zip(m["id"], m["autofj.match_id"]) if l}
    correct = sum(truth[r] == l for r, l in pred.items())
    has_match = sum(v is not None for v in truth.values())
    art = s["stages"]["autofj"]["artifact"]
    outcome = collections.Counter("matched" if ok else (f"error {e.split(':')[0]}" if e else f"unmatched {why}")
                                  for ok, why, e in zip(m["autofj.matched"], m["autofj.reason"], m["autofj.error"]))
    p = correct / len(pred) if pred else None
    return {"mode": mode, "precision": p, "recall": correct / has_match, "est_precision": art["est_precision"],
            "abs_error": abs(art["est_precision"] - p) if p is not None and art["est_precision"] is not None else None,
            "est_new_share": art.get("new_entity_share"),
            "true_new_share": 1 - has_match / len(truth), "matched": len(pred),
            "expected_matches": art["expected_matches"], "column_weights": art["program"]["column_weights"],
            "outcomes": dict(outcome), "warnings": art.get("warnings", []), "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--left", type=int, default=3000)
    ap.add_argument("--right", type=int, default=2000)
    ap.add_argument("--new-share", type=float, default=0.3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        info = build_multi(data, args.left, args.right, args.new_share)
        rows = [run_mode(data, mode, Path(tmp)) for mode in ("default", "reference")]
    out = {"command": f"python -m bench.autofj_blanks --left {args.left} --right {args.right} "
                      f"--new-share {args.new_share}", "data": info, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "autofj_blanks.json").write_text(json.dumps(out, indent=1))
    f = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["# Auto-FuzzyJoin: several columns, blanks in both tables, new entities (τ = 0.9)", "",
             f"Command: `{out['command']}`. Data: `curate.data.autofj_synth.build_multi` (L {info['left']} rows, "
             f"R {info['right']} rows of which {info['new_entities']} new entities; blank share per column in L and "
             f"R: {info['blanks']}). The `autofj` stage through `curate.run` (local executor); truth from the "
             "generator. Default mode: the new-entity estimate; reference mode: the reference package's.", "",
             "| mode | P | R | P̂ | abs(P̂ − P) | est. new share | true new share | matched | expected matches | "
             "column weights | rows by outcome | warnings | s |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        weights = ", ".join(f"{c} {w:.2f}" for c, w in r["column_weights"].items())
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
        warns = "; ".join(w.split(":")[0] for w in r["warnings"]) or "–"
        lines.append(f"| {r['mode']} | {f(r['precision'])} | {f(r['recall'])} | {f(r['est_precision'])} | "
                     f"{f(r['abs_error'])} | {f(r['est_new_share'])} | {r['true_new_share']:.3f} | {r['matched']} | "
                     f"{r['expected_matches']:.0f} | {weights} | {outcomes} | {warns} | {r['seconds']:.1f} |")
    (RESULTS / "autofj_blanks.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
