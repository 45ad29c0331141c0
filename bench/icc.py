"""ICC benchmark: human agreement on the 500-caption fixture and CPU throughput of every backend.

    make bench            (or: python -m bench.icc [--rows N])

Writes bench/results/icc.json and bench/results/icc.md. References in the same run: the authors' own
ICC scores stored in the fixture (agreement), and a straightforward per-caption Python implementation
of the lexicon score (speed and identical scores). Set CURATE_ICC_MODEL to a local folder with the
authors' student to add the faithful backend and the distilled probe; without it the student's cost is
timed on a randomly initialised model of the same shape (6 layers, hidden 768, 12 heads).
"""
from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import csv
import json
import platform
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from scipy.stats import kendalltau, pearsonr, spearmanr

from curate.methods.icc import norms as icc_norms
from curate.methods.icc.stage import ICC, distil_head
from testkit.icc_random_student import save_random_student

RESULTS = Path(__file__).parent / "results"
FIXTURE = Path(__file__).parents[1] / "tests" / "fixtures" / "icc" / "caption_concreteness_annotations.csv"


def load_fixture() -> tuple[list[str], np.ndarray, np.ndarray]:
    with FIXTURE.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return ([r["caption"] for r in rows], np.array([int(r["concreteness_annotation"]) for r in rows]),
            np.array([float(r["icc_score"]) for r in rows]))


def reference_lexicon(captions: list[str]) -> list[float | None]:
    """The lexicon score written plainly: a dict and a loop per caption (the speed reference)."""
    norms = icc_norms.load_norms("brysbaert").words
    rating = dict(zip(norms["word"].to_list(), norms["rating"].to_list()))
    stops = icc_norms.stop_words()
    token = re.compile(icc_norms.TOKEN_PATTERN)
    out = []
    for c in captions:
        rated = [rating[t] for t in token.findall(c.lower()) if t not in stops and t in rating]
        out.append((sum(rated) / len(rated) - 1) / 4 if rated else None)
    return out


def agreement(scores: np.ndarray, human: np.ndarray) -> dict:
    s = np.asarray(scores, np.float64)
    ok = np.isfinite(s)
    return {"scored": int(ok.sum()), "spearman": round(float(spearmanr(s[ok], human[ok]).statistic), 4),
            "kendall": round(float(kendalltau(s[ok], human[ok]).statistic), 4),
            "pearson": round(float(pearsonr(s[ok], human[ok]).statistic), 4)}


def run_stage(stage: ICC, captions: list[str]) -> tuple[np.ndarray, float, float]:
    """Scores, setup seconds and scoring seconds (one batch per 4,096 captions, like engine batches)."""
    t0 = time.perf_counter()
    stage.setup(None)
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    parts = [stage.score(pa.table({"caption": pa.array(captions[i:i + 4096], pa.string())}))
             for i in range(0, len(captions), 4096)]
    score_s = time.perf_counter() - t0
    scores = np.concatenate([p.column("score").to_numpy(zero_copy_only=False) for p in parts]).astype(np.float64)
    return scores, setup_s, score_s


def human_agreement(captions, human, icc, model: str | None) -> dict:
    out = {"authors_icc_score_in_fixture (reference)": agreement(icc, human)}
    for label, stage in (("lexicon (brysbaert)", ICC()), ("lexicon (open norms)", ICC(norms="open")),
                         ("lexicon (brysbaert, multiword)", ICC(multiword=True)), ("probe (words)", ICC(backend="probe"))):
        out[label] = agreement(run_stage(stage, captions)[0], human)
    if model:
        student = ICC(backend="icc-student", weights=model)
        s = run_stage(student, captions)[0]
        out["icc-student"] = agreement(s, human)
        out["icc-student"]["spearman_vs_fixture_icc_score"] = round(float(spearmanr(s, icc).statistic), 4)
        out["probe (target: student), 5-fold CV on the fixture"] = distilled_cv(captions, human, s)
    return out


def distilled_cv(captions: list[str], human: np.ndarray, teacher: np.ndarray, folds: int = 5) -> dict:
    """The distilled probe: MiniLM caption vectors -> ridge on the student's scores, held-out rows."""
    from sklearn.model_selection import KFold

    from curate.methods.icc.probe import encode, minilm

    x = encode(minilm()[0], captions)
    pred = np.zeros(len(captions))
    for tr, te in KFold(folds, shuffle=True, random_state=0).split(x):
        pred[te] = distil_head(x[tr], teacher[tr], 1.0, {}).predict(x[te])
    return {**agreement(pred, human), "spearman_vs_teacher": round(float(spearmanr(pred, teacher).statistic), 4)}


def throughput(captions: list[str], rows: int, probe_rows: int, student_rows: int, model: str | None) -> dict:
    rng = np.random.default_rng(0)
    many = [captions[i] for i in rng.integers(0, len(captions), rows)]
    out: dict = {}
    ref_scores, ref_s = timed(lambda: reference_lexicon(many))
    ours, setup_s, score_s = run_stage(ICC(), many)
    ref = np.array([np.nan if v is None else v for v in ref_scores]).astype(np.float32).astype(np.float64)
    out["lexicon"] = {"rows": rows, "setup_s": round(setup_s, 3), "captions_per_s": round(rows / score_s),
                      "reference_captions_per_s": round(rows / ref_s), "speedup": round(ref_s / score_s, 1),
                      "same_scores_as_reference": bool(np.array_equal(ours, ref, equal_nan=True))}
    probe = ICC(backend="probe")
    sub = many[:probe_rows]
    _, setup_s, cold_s = run_stage(probe, sub)
    warm_s = timed(lambda: [probe.score(pa.table({"caption": sub[i:i + 4096]})) for i in range(0, len(sub), 4096)])[1]
    out["probe"] = {"rows": probe_rows, "setup_s": round(setup_s, 3), "captions_per_s_cold_cache": round(probe_rows / cold_s),
                    "captions_per_s_warm_cache": round(probe_rows / warm_s),
                    "note": "cold: every out-of-norms word is embedded with MiniLM once per worker; warm: all cached"}
    sub = many[:student_rows]
    with tempfile.TemporaryDirectory() as tmp:
        folder = model or str(save_random_student(Path(tmp) / "student", captions, layers=6, hidden=768, heads=12,
                                                  intermediate=3072, vocab_size=8000, max_positions=514))
        stage = ICC(backend="icc-student", weights=folder, device="cpu")
        _, setup_s, score_s = run_stage(stage, sub)
    out["icc-student"] = {"rows": student_rows, "setup_s": round(setup_s, 3), "captions_per_s": round(student_rows / score_s),
                          "weights": "real (CURATE_ICC_MODEL)" if model else
                          "random, real shape (6 layers, hidden 768, 12 heads, fp32); tokenizer: 8k BPE on the fixture"}
    return out


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000, help="captions for the lexicon throughput")
    ap.add_argument("--probe-rows", type=int, default=20_000)
    ap.add_argument("--student-rows", type=int, default=500)
    args = ap.parse_args()
    model = os.environ.get("CURATE_ICC_MODEL") or None
    captions, human, icc = load_fixture()
    import torch

    result = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "torch_threads": torch.get_num_threads(), "polars_threads": 1},
              "fixture": {"captions": len(captions), "human_rating_counts": np.bincount(human).tolist()},
              "student_weights": model}
    result["agreement"] = human_agreement(captions, human, icc, model)
    print(json.dumps(result["agreement"], indent=1), flush=True)
    result["throughput"] = throughput(captions, args.rows, args.probe_rows, args.student_rows, model)
    print(json.dumps(result["throughput"], indent=1), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "icc.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "icc.md").write_text(markdown(result))


def markdown(r: dict) -> str:
    ag, tp = r["agreement"], r["throughput"]
    lines = ["# ICC benchmark", "",
             f"Fixture: {r['fixture']['captions']} web alt-text captions with human concreteness ratings 0-3 "
             f"(counts {r['fixture']['human_rating_counts']}), from moranyanuka/icc_code (MIT). Correlations over "
             "the rows each backend scores (the lexicon gives `no_rated_word` to captions without a rated word).",
             "Reference: the authors' own ICC scores stored in the fixture.", "",
             "| scorer | scored | Spearman | Kendall | Pearson |", "|---|---|---|---|---|"]
    for name, a in ag.items():
        lines.append(f"| {name} | {a['scored']} | **{a['spearman']}** | {a['kendall']} | {a['pearson']} |")
    if not r["student_weights"]:
        lines += ["", "The faithful `icc-student` backend and the distilled probe need the authors' weights "
                  "(CURATE_ICC_MODEL); they were not available offline, so no agreement is reported for them."]
    lx, pr, st = tp["lexicon"], tp["probe"], tp["icc-student"]
    lines += ["", f"## Throughput on this CPU ({r['machine']['cpus']} cores, shared; torch threads "
              f"{r['machine']['torch_threads']}, polars threads 1)", "",
              "| backend | captions | captions/s | setup s | note |", "|---|---|---|---|---|",
              f"| lexicon | {lx['rows']:,} | **{lx['captions_per_s']:,}** | {lx['setup_s']} | reference (plain Python loop): "
              f"{lx['reference_captions_per_s']:,}/s, {lx['speedup']}x; identical float32 scores: {lx['same_scores_as_reference']} |",
              f"| probe (words), cold cache | {pr['rows']:,} | **{pr['captions_per_s_cold_cache']:,}** | {pr['setup_s']} | "
              "out-of-norms words embedded once per worker |",
              f"| probe (words), warm cache | {pr['rows']:,} | **{pr['captions_per_s_warm_cache']:,}** | | |",
              f"| icc-student | {st['rows']:,} | **{st['captions_per_s']:,}** | {st['setup_s']} | {st['weights']} |", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
