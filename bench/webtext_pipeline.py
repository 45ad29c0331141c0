"""The whole web-text pipeline (configs/web-text.yaml) against datatrove 0.10.1's equivalent pipeline, side by
side on the same documents and the same cores.

    python -m bench.webtext_pipeline [--runs 3] [--docs 4000] [--shards 4]

Corpus: `--docs` documents sampled (seeded) from `curate data web-text` (built in $TMPDIR/curate-bench-webtext-
pipeline if missing), in `--shards` JSONL shards. Ours: `curate.run` on configs/web-text.yaml (local executor,
one worker, a fresh run directory each time, no report: datatrove writes none). Theirs:
bench/webtext_pipeline_datatrove.py in the bench-only venv of bench/webtext.py (plus py3langid, the
identifier both sides use: datatrove's own LanguageFilter fetches fastText's model from a hub). Runs
alternate, ours first; wall seconds and peak RSS of each process tree, min / median / max. Each side's
rows and tokens kept are reported beside (they differ where the pipelines differ: datatrove filters in
sequence and dedups only the survivors, tokenises with spaCy, normalises MinHash text its own way).
Writes bench/results/webtext_pipeline.json and .md.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from bench.dedup import measured
from bench.webtext import datatrove_python

HERE = Path(__file__).parent
ROOT = HERE.parent
RESULTS = HERE / "results"
CACHE = Path(tempfile.gettempdir()) / "curate-bench-webtext-pipeline"
LANGID_PIN = "py3langid==0.4.0"  # as curate/methods/langid/detectors.py pins it

OURS = """
import sys, yaml, curate
from curate.config import pipeline_from_dict
pipeline, _ = pipeline_from_dict(yaml.safe_load(open("configs/web-text.yaml")))
s = curate.run(pipeline, sys.argv[1], sys.argv[2], executor="local", report=False)
print("RESULT", s["result"]["kept"], s["result"]["totals"]["tokens.count"]["kept"])
"""


def corpus(docs: int, shards: int, seed: int = 0) -> Path:
    """`docs` documents of the web-text corpus, sampled with `seed`, in `shards` JSONL shards."""
    from curate.data.web_text import build_web_text

    full = CACHE / "web-text"
    if not (full / ".complete").exists():
        build_web_text(full)
    lines = [line for p in sorted(full.glob("part-*.jsonl")) for line in p.read_text().splitlines()]
    pick = np.sort(np.random.default_rng(seed).choice(len(lines), min(docs, len(lines)), replace=False))
    folder = CACHE / f"sample-{docs}-{shards}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for k, part in enumerate(np.array_split(pick, shards)):
        (folder / f"part-{k:05d}.jsonl").write_text("".join(lines[i] + "\n" for i in part))
    return folder


def dt_python() -> Path:
    py = datatrove_python()
    if subprocess.run([str(py), "-c", "import py3langid"]).returncode:
        subprocess.run([str(py), "-m", "pip", "install", "-q", LANGID_PIN], check=True)
    return py


def run_ours(data: Path) -> dict:
    out = CACHE / "ours"
    shutil.rmtree(out, ignore_errors=True)
    log = CACHE / "ours.log"
    m = measured(["sh", "-c", f'"{sys.executable}" -c \'{OURS}\' "{data}" "{out}" > "{log}"'])
    kept, tokens = next(line.split()[1:] for line in log.read_text().splitlines() if line.startswith("RESULT"))
    summary = json.loads((out / "summary.json").read_text())
    phases = {k: v["seconds"] for k, v in summary["phases"].items() if k.count(":") <= 1}  # not the sub-phases
    return {**m, "kept": int(kept), "tokens_kept": int(tokens),
            "stage_seconds": {name: st["seconds"] for name, st in summary["stages"].items()},
            "fit_seconds": {k.split(":")[1]: v for k, v in phases.items() if k.startswith("fit:")},
            "ids_seconds": phases.get("ids", 0.0)}


def run_theirs(py: Path, data: Path, tokenizer: Path) -> dict:
    work = CACHE / "datatrove"
    shutil.rmtree(work, ignore_errors=True)
    out = CACHE / "datatrove.json"
    m = measured(["sh", "-c", f'"{py}" bench/webtext_pipeline_datatrove.py "{data}" "{work}" "{out}" '
                              f'--tokenizer "{tokenizer}" > "{CACHE / "datatrove.log"}" 2>&1'])
    r = json.loads(out.read_text())
    return {**m, "kept": r["kept"], "tokens_kept": r["tokens_kept"], "inner_seconds": r["seconds"]}


def spread(xs: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in (min(xs), float(np.median(xs)), max(xs)))


def _where(run: dict) -> str:
    """Where one of our runs spent its wall time, from its summary's phases."""
    scoring, fits = sum(run["stage_seconds"].values()), sum(run["fit_seconds"].values())
    rest = run["seconds"] - scoring - fits - run["ids_seconds"]
    return (f"{run['seconds']:.1f} s wall: stage scoring {scoring:.1f} s ("
            + ", ".join(f"{k} {v:.2f}" for k, v in sorted(run["stage_seconds"].items(), key=lambda kv: -kv[1]))
            + f"); the dedup stages' fits (their shuffles) {fits:.1f} s ("
            + ", ".join(f"{k} {v:.2f}" for k, v in run["fit_seconds"].items())
            + f"); reading the ids {run['ids_seconds']:.2f} s; the rest, {rest:.1f} s, is the process start and "
            "imports, loading the models, planning (every shard opened and checked), the decisions and the manifest")


def markdown(r: dict) -> str:
    ours, theirs, double = r["runs"]["ours"], r["runs"]["datatrove"], r["runs"].get("ours_2n", [])
    med = {k: float(np.median([x["seconds"] for x in v])) for k, v in r["runs"].items() if v}
    c = r["corpus"]
    fastest = min(ours, key=lambda x: x["seconds"])
    lines = [
        "# The web-text pipeline beside datatrove 0.10.1", "",
        f"{c['docs']:,} documents sampled from `curate data web-text` ({', '.join(f'{n} {s}' for s, n in c['sources'].items())}; "
        f"{c['chars']:,} characters) in {c['shards']} JSONL shards. One process each, one worker, on "
        f"{r['machine']['cpu']} ({r['machine'].get('conditions', '2 cores shared with other jobs')}; the ratio is "
        f"of medians over runs that alternate); {len(ours)} alternating runs, ours first, after an untimed first "
        "run of each side (both start from compiled bytecode: PYTHONPYCACHEPREFIX under $TMPDIR).", "",
        "Ours: configs/web-text.yaml through `curate.run` (langid, words, Gopher quality and repetition, C4, FineWeb, "
        "exact and MinHash dedup, tokens; every row scored by every stage, then the policies decide), a fresh run "
        "directory each time, no report. Datatrove: the same steps as its pipelines chain them (language ID with "
        "py3langid, the same identifier and model as ours, on the whole text on both sides; its four rule "
        "filters with spaCy's English tokenizer; exact dedup; MinHash dedup with 5-grams and 14 x 8 bands; "
        "TokensCounter with our tokenizer.json; JSONL out). Datatrove filters in sequence, so each step sees only "
        "the documents the earlier ones kept.", "",
        "| | wall s (min / median / max) | peak RSS MB (max) | rows kept | tokens kept |", "|---|---|---|---|---|",
        f"| ours | {spread([x['seconds'] for x in ours])} | {max(x['peak_rss_mb'] for x in ours):.0f} | "
        f"{ours[-1]['kept']:,} | {ours[-1]['tokens_kept']:,} |",
        f"| datatrove | {spread([x['seconds'] for x in theirs])} | {max(x['peak_rss_mb'] for x in theirs):.0f} | "
        f"{theirs[-1]['kept']:,} | {theirs[-1]['tokens_kept']:,} |"]
    if double:
        lines.append(f"| ours, rows doubled ({2 * c['docs']:,} documents, {2 * c['shards']} shards) | "
                     f"{spread([x['seconds'] for x in double])} | {max(x['peak_rss_mb'] for x in double):.0f} | "
                     f"{double[-1]['kept']:,} | {double[-1]['tokens_kept']:,} |")
    lines += ["", f"Ratio of medians: **{med['datatrove'] / med['ours']:.1f}x** (datatrove / ours).", ""]
    if double:
        lines += [f"Memory when the rows double (twice the shards of the same size, as a growing corpus has): peak "
                  f"RSS {max(x['peak_rss_mb'] for x in ours):.0f} MB at {c['docs']:,} documents and "
                  f"{max(x['peak_rss_mb'] for x in double):.0f} MB at {2 * c['docs']:,} (max over runs); wall "
                  f"{med['ours']:.1f} s and {med['ours_2n']:.1f} s (medians).", ""]
    lines += [
        f"Where our time goes (the fastest of our runs): {_where(fastest)}.", "",
        "What bounds the ratio (cProfile of single runs on this sample; the machine's load scales every number): "
        "language ID is still the largest stage, in our compiled scorer (py3langid's results bit for bit: "
        "bench/results/langid.md), bound by the automaton's random reads over its 39 MB transition table and the "
        "one float32 matrix-vector product per text that keeps the results identical (the rest of its arithmetic "
        "now runs over the whole batch); the fixed costs of one process are the imports (pyarrow, numba, pydantic, "
        "the stage modules: bench/results/startup.md), numba's first dispatch (its registries, then each cached "
        "kernel), the tokenizer's load, and the run's bookkeeping (planning opens and checks every shard, scores "
        "and shuffles are written as Parquet, the decisions and the manifest). The dedup fits are their node maps "
        "(shingling, MinHash signatures, hashing normalised text) and nine shuffle rounds' Parquet reads and "
        "writes. Cut for this run: two imports made only for optional checks (kernels/deferred_imports.py): "
        "scipy.linalg, which numba imported at its first dispatch to set a flag for np.correlate (0.12 s of CPU alone, measured under load), "
        "and pandas, which pyarrow imported at the first array built from Python or NumPy (0.23 s of CPU alone; pyarrow "
        "now learns of pandas when the process imports it); and language ID's per-text NumPy calls. Cut "
        "earlier: the per-byte Python loop of language ID, the LZMA decompression of its model and the Unicode "
        "tables of the rules (both kept in a cache folder), a scan of every installed distribution for the "
        "identifier's version, re-parsing JSONL shards once per stage, a lexsort per batch of MinHash shingles, "
        "scipy's import, C4's second pass over each kept line's tokens, polars' import, the lease's 50 ms settling "
        "wait, decide reading each unit file twice and a second UTF-8 check of kept reads.", "",
        "Rows kept differ: the rule filters tokenise differently (spaCy against our tokenizer: bench/results/webtext.md "
        "lists the classes), datatrove's MinHash normalises and tokenises its own way, and it dedups only the "
        "documents that passed the filters, where ours dedups every row and keeps a row only if every policy keeps it.",
        ""]
    return "\n".join(lines)


def write(result: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "webtext_pipeline.json").write_text(json.dumps(result, indent=1))
    (RESULTS / "webtext_pipeline.md").write_text(markdown(result))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--docs", type=int, default=4000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--conditions", default="2 cores shared with other jobs",
                    help="the machine's load while measuring, as the results should state it")
    a = ap.parse_args()
    from curate.methods.tokens.stage import tokenizer_file

    # Both sides start from compiled bytecode, as after an ordinary install and a first run: pip compiles the
    # datatrove venv's, uv does not compile ours, and with PYTHONDONTWRITEBYTECODE set every one of our
    # processes would compile its imports again (~2 s of our ~3). Both sides' .pyc files go to one folder,
    # written by an untimed first run of each (which also fills numba's cache for a new checkout).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.setdefault("PYTHONPYCACHEPREFIX", str(CACHE / "pycache"))
    py = dt_python()
    data = corpus(a.docs, a.shards)
    tokenizer = tokenizer_file(None)
    runs: dict[str, list] = {"ours": [], "datatrove": []}
    double = corpus(2 * a.docs, 2 * a.shards)  # rows doubled as a corpus grows: twice the shards, same size
    run_ours(data), run_theirs(py, data, tokenizer)  # untimed first runs
    runs["ours_2n"] = []
    for i in range(a.runs):
        runs["ours"].append(run_ours(data))
        runs["datatrove"].append(run_theirs(py, data, tokenizer))
        runs["ours_2n"].append(run_ours(double))
        print(f"run {i + 1}: ours {runs['ours'][-1]['seconds']:.1f} s, datatrove {runs['datatrove'][-1]['seconds']:.1f} s, "
              f"ours at 2N {runs['ours_2n'][-1]['seconds']:.1f} s", flush=True)
    rows = [json.loads(line) for p in sorted(data.glob("*.jsonl")) for line in p.read_text().splitlines()]
    result = {"machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                          "cores": os.cpu_count(), "workers": 1, "conditions": a.conditions},
              "corpus": {"docs": len(rows), "shards": a.shards, "sources": dict(Counter(r["source"] for r in rows)),
                         "chars": sum(len(r["text"]) for r in rows)},
              "runs": runs}
    write(result)
    print(markdown(result))


if __name__ == "__main__":
    main()
