"""Quality classifier: held-out AUROC of a fastText classifier trained the DCLM way on a real target corpus
against a real pool, and the rows/s/core of the `quality_classifier` stage's scoring against a plain Python loop
calling fastText's `predict` per row.

    python -m bench.quality_classifier [--runs 3] [--dim 100] [--bucket 200000] [--epoch 5]

Corpus: `data/web-text` (`curate data web-text`: real text installed here, in chunks of up to ~4,000
characters): the target is the Python documentation (`docs`, the reST sources); two pools:
- `docs-vs-docs-and-licences`: other documentation and licence texts (`manual`: man pages; `licence`:
  /usr/share/common-licenses and package copyright files), the issue's example;
- `docs-vs-pool`: everything else in web-text (man pages, licences, standard-library code, fortunes,
  translations), the DCLM setting (negatives drawn from the whole pool).
Held out by source file, not by chunk: the chunks of one file (`id` before `#`) are all in training or all held
out (20% of files, by a hash of the name), so no held-out chunk has a sibling in training. Training goes through
`curate.api.train_classifier` (balanced negatives, seed 0, one thread, word bigrams; its own 10% row-level
holdout is reported too); held-out texts are scored through the stage.

Speed, one process pinned to one core: the stage's `score` over every web-text row in Arrow batches of 8,192
rows, against the loop a script would write (`model.predict(text.replace("\\n", " "), k=-1)` per row, then the
label's probability), alternating, `--runs` rounds, min / median / max rows/s of CPU time (rows/s/core: the
process runs one thread) and of wall time; both must give the same scores.
The model for the speed runs is the `docs-vs-pool` one. The machine is shared with other jobs.
Writes bench/results/quality_classifier.json and .md.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import hashlib
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from curate import api
from curate.methods.quality_classifier import QualityClassifier
from curate.methods.quality_classifier import model as ft
from curate.methods.quality_classifier.train import metrics

RESULTS = Path(__file__).parent / "results"
DATA = Path(os.environ.get("CURATE_BENCH_DATA", "data/web-text"))
TARGET = "docs"
POOLS = {"docs-vs-docs-and-licences": ("manual", "licence"),
         "docs-vs-pool": ("manual", "licence", "code", "fortunes", "translations")}
BATCH = 8192


def load() -> list[dict]:
    rows = []
    for f in sorted(DATA.glob("*.jsonl")):
        rows += [json.loads(line) for line in f.open()]
    if not rows:
        raise SystemExit(f"no rows under {DATA}: run `curate data web-text` first")
    return rows


def held_out(row: dict) -> bool:
    """20% of source files, by a hash of the file's name (all chunks of a file on one side)."""
    name = row["id"].split("#")[0]
    return hashlib.sha256(name.encode()).digest()[0] < 256 * 0.2


def write_jsonl(path: Path, texts: list[str]) -> str:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return str(path)


def quality(rows: list[dict], pool: tuple[str, ...], folder: Path, params: dict) -> dict:
    """Train on the training files of the target and the pool, score the held-out files through the stage."""
    split = {(s, h): [r["text"] for r in rows if r["source"] in s and held_out(r) == h and r["text"].strip()]
             for s in ((TARGET,), pool) for h in (False, True)}
    model = folder / f"{'-'.join(pool)}.bin"
    t0 = time.perf_counter()
    record = api.train_classifier([write_jsonl(folder / "pos.jsonl", split[(TARGET,), False])],
                                  [write_jsonl(folder / "neg.jsonl", split[pool, False])], model, seed=0, **params)
    seconds = time.perf_counter() - t0
    stage = QualityClassifier(model=str(model))
    stage.setup(None)
    texts = split[(TARGET,), True] + split[pool, True]
    scores = np.asarray(stage.score(pa.table({"text": pa.array(texts, pa.large_string())})).column("score"))
    positive = np.arange(len(texts)) < len(split[(TARGET,), True])
    by_source = {}
    for source in pool:  # the mean score of each pool source's held-out texts: what the classifier confuses
        idx = [i for i, r in enumerate(r for r in rows if r["source"] in pool and held_out(r) and r["text"].strip())
               if r["source"] == source]
        by_source[source] = float(np.mean(scores[len(split[(TARGET,), True]) + np.array(idx, int)])) if idx else None
    return {"pool": list(pool), "train_seconds": round(seconds, 2), "model_mb": round(model.stat().st_size / 2**20, 1),
            "counts": record["counts"], "row_holdout": record["holdout_metrics"],
            "file_holdout": metrics(scores, positive), "mean_score_of_held_out_pool_by_source": by_source,
            "mean_score_of_held_out_target": float(scores[positive].mean())}


def loop_scores(model, texts: list[str], label: str) -> np.ndarray:
    out = np.zeros(len(texts))
    for i, text in enumerate(texts):
        labels, probs = model.predict(text.replace("\n", " "), k=-1)
        out[i] = min(1.0, float(dict(zip(labels, probs)).get(label, 0.0)))
    return out


def speed(rows: list[dict], model_path: Path, runs: int) -> dict:
    texts = [r["text"] for r in rows if r["text"] and r["text"].strip()]
    table = pa.table({"text": pa.array(texts, pa.large_string())})
    stage = QualityClassifier(model=str(model_path))
    stage.setup(None)
    model = ft.require().load_model(str(model_path))
    nbytes = sum(len(t.encode()) for t in texts)
    timings: dict[str, dict[str, list[float]]] = {k: {"cpu": [], "wall": []} for k in ("stage", "python_loop")}
    scores = {}
    for _ in range(runs):
        for name, fn in (("stage", lambda: np.concatenate([np.asarray(stage.score(pa.Table.from_batches([b]))
                                                                      .column("score")) for b in table.to_batches(BATCH)])),
                         ("python_loop", lambda: loop_scores(model, texts, "__label__hq"))):
            c0, w0 = time.process_time(), time.perf_counter()
            scores[name] = fn()
            timings[name]["cpu"].append(time.process_time() - c0)
            timings[name]["wall"].append(time.perf_counter() - w0)
    stats = {k: {clock: {"min": len(texts) / max(v), "median": len(texts) / statistics.median(v),
                         "max": len(texts) / min(v)} for clock, v in t.items()} for k, t in timings.items()}
    return {"rows": len(texts), "mb": round(nbytes / 2**20, 1), "runs": runs, "rows_per_s": stats,
            "ratio_median": {clock: stats["stage"][clock]["median"] / stats["python_loop"][clock]["median"]
                             for clock in ("cpu", "wall")},
            "max_abs_difference": float(np.abs(scores["stage"] - scores["python_loop"]).max())}


def markdown(result: dict) -> str:
    out = ["# Quality classifier (fastText, DCLM recipe)", "", result["note"], "",
           "## Held-out quality (target: Python documentation)", "",
           "| pool | train pos / neg | held-out files: pos / neg rows | AUROC | precision | recall | F1 @0.5 | "
           "row-holdout AUROC | train s | model MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, q in result["quality"].items():
        m, c = q["file_holdout"], q["counts"]
        out.append(f"| {name} | {c['train_positive']} / {c['train_negative']} | {m['positive']} / "
                   f"{m['rows'] - m['positive']} | {m['auroc']:.4f} | {m['precision']:.3f} | {m['recall']:.3f} | "
                   f"{m['f1']:.3f} | {q['row_holdout']['auroc']:.4f} | {q['train_seconds']} | {q['model_mb']} |")
    out += ["", "Mean P(hq) of held-out texts by source (target first):", ""]
    for name, q in result["quality"].items():
        shown = ", ".join(f"{k} {v:.3f}" for k, v in q["mean_score_of_held_out_pool_by_source"].items())
        out.append(f"- {name}: docs {q['mean_score_of_held_out_target']:.3f}; {shown}")
    s = result["speed"]
    out += ["", f"## Scoring speed, one core ({s['rows']:,} rows, {s['mb']} MB, {s['runs']} alternating runs)", "",
            "Rows per second of the process's CPU time (one thread: rows/s/core) and of wall time (the machine was "
            "loaded, so wall time includes waiting for the core).", "",
            "| scorer | clock | rows/s min | median | max |", "|---|---|---|---|---|"]
    for k in ("stage", "python_loop"):
        for clock in ("cpu", "wall"):
            r = s["rows_per_s"][k][clock]
            out.append(f"| {k} | {clock} | {r['min']:,.0f} | {r['median']:,.0f} | {r['max']:,.0f} |")
    out += ["", f"Stage / loop (medians): {s['ratio_median']['cpu']:.2f}x on CPU time, {s['ratio_median']['wall']:.2f}x "
                f"on wall time; largest score difference {s['max_abs_difference']:.2e}.", ""]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--bucket", type=int, default=200_000)
    p.add_argument("--epoch", type=int, default=5)
    args = p.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    rows = load()
    params = {"dim": args.dim, "bucket": args.bucket, "epoch": args.epoch}
    with tempfile.TemporaryDirectory(prefix="qc-bench-") as tmp:
        quality_ = {name: quality(rows, pool, Path(tmp), params) for name, pool in POOLS.items()}
        speed_ = speed(rows, Path(tmp) / f"{'-'.join(POOLS['docs-vs-pool'])}.bin", args.runs)
    result = {"note": (f"Data: {DATA} (web-text). fastText {ft.library_version()}, dim {args.dim}, bucket "
                       f"{args.bucket:,}, epoch {args.epoch}, word bigrams, lr 0.1, one thread, seed 0. One process "
                       "pinned to one core; the machine (2 cores) was shared with other jobs."),
              "params": params, "quality": quality_, "speed": speed_,
              "machine": {"python": platform.python_version(), "pyarrow": pa.__version__,
                          "cpu": platform.processor() or platform.machine(), "cores_used": 1}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quality_classifier.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "quality_classifier.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
