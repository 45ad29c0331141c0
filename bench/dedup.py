"""MinHash dedup on real text: precision and recall against exact Jaccard, and datatrove side by side.

    python -m bench.dedup [--runs 3] [--skip-datatrove]

Corpus (built here, cached in $TMPDIR/curate-bench-dedup): the `copyright` file of every installed Debian
package (/usr/share/doc/*/copyright, cut at 50,000 characters: license texts repeated with small edits),
the ~44k stdlib/documentation chunks of `curate data stdlib-code` (data/stdlib-code), and 1,000 planted
near-duplicates: copies of random chunks with words replaced until their exact Jaccard (word 5-grams after
`nfkc_punct`) is near a target in 0.50 ... 0.95. Ground truth: exact Jaccard on all pairs of a sample (every
copyright file, 2,000 random chunks, every planted copy and its original); a pair is a duplicate at J >= 0.8;
a method predicts a pair when it puts both rows in one component.

1. Ours (`minhash_dedup`, word 5-grams, 112 hashes, banding chosen for threshold 0.8 at <= 5% misses) with
   and without `verify`: precision and recall of duplicate pairs in the sample, recall of planted pairs by J.
2. Side by side with datatrove 0.10.1 (bench-only venv bench/.venv-datatrove, created here on first use),
   both with 14 bands x 8 rows = 112 hashes and the same word 5-grams, `--runs` alternating runs each, one
   process each (our local executor; datatrove's local executor with 1 worker): agreement of the duplicate
   pairs and removed sets, recall of planted pairs, wall time and peak RSS (process tree), min-median-max;
   then both again on the corpus doubled (a word-shuffled copy of every text) for memory growth.
Writes bench/results/dedup.json and bench/results/dedup.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse
import glob
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

HERE = Path(__file__).parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DT_VENV = HERE / ".venv-datatrove"
DT_PINS = ["datatrove==0.10.1", "pyarrow", "orjson", "regex", "nltk", "xxhash<4", "tokenizers"]  # its dedup imports need these
CACHE = Path(tempfile.gettempdir()) / "curate-bench-dedup"
SHARDS = 16
N, NUM_PERM, THRESHOLD = 5, 112, 0.8
TARGETS = np.round(np.linspace(0.5, 0.95, 10), 2)


def datatrove_python() -> Path:
    """The bench-only venv's python, created on first use."""
    py = DT_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DT_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *DT_PINS], check=True)
    return py


# --- corpus ----------------------------------------------------------------------------------------------
def shingle_sets(texts: list[str]) -> list[np.ndarray]:
    from curate.methods.dedup.text import normalize, shingles

    h, off = shingles(normalize(pa.array(texts, pa.string()), "nfkc_punct"), "word", N)
    return [h[off[i]:off[i + 1]] for i in range(len(texts))]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / max(1, len(a) + len(b) - inter)


def plant(text: str, target: float, vocab: list[str], rng: np.random.Generator) -> tuple[str, float]:
    """A copy of `text` with random words replaced, the fewest replacements whose Jaccard is <= target."""
    words = text.split()
    order = rng.permutation(len(words))
    new = rng.choice(vocab, len(words))
    base = shingle_sets([text])[0]

    def edited(k: int) -> str:
        w = list(words)
        for i in order[:k]:
            w[i] = new[i]
        return " ".join(w)

    lo, hi = 0, len(words)
    while lo < hi:  # the smallest k with J(k) <= target
        mid = (lo + hi) // 2
        if jaccard(base, shingle_sets([edited(mid)])[0]) <= target:
            hi = mid
        else:
            lo = mid + 1
    copy = edited(lo)
    return copy, jaccard(base, shingle_sets([copy])[0])


def build_corpus(seed: int = 0) -> pa.Table:
    from curate.methods.dedup.text import normalize

    rng = np.random.default_rng(seed)
    ids, texts, sources = [], [], []
    for path in sorted(glob.glob("/usr/share/doc/*/copyright")):
        text = Path(path).read_text(errors="replace")[:50_000]
        if text.strip():
            ids.append(f"copyright:{Path(path).parent.name}")
            texts.append(text)
            sources.append("copyright")
    code = pq.read_table(ROOT / "data" / "stdlib-code", columns=["id", "text"])
    ids += code.column("id").to_pylist()
    texts += code.column("text").to_pylist()
    sources += ["stdlib-code"] * code.num_rows
    vocab = sorted({w for t in texts[-5000:] for w in t.split()})
    long_enough = [i for i, t in enumerate(texts) if sources[i] == "stdlib-code" and len(t.split()) >= 80]
    origin = rng.choice(long_enough, 1000, replace=False)
    planted_of, planted_j = [None] * len(ids), [None] * len(ids)
    for k, i in enumerate(origin):
        copy, j = plant(texts[i], float(TARGETS[k % len(TARGETS)]), vocab, rng)
        ids.append(f"planted:{k}")
        texts.append(copy)
        sources.append("planted")
        planted_of.append(ids[i])
        planted_j.append(j)
    t = pa.table({"id": ids, "text": texts, "source": sources, "planted_of": pa.array(planted_of, pa.string()),
                  "planted_j": pa.array(planted_j, pa.float64())})
    t = t.append_column("text_norm", normalize(t.column("text").combine_chunks(), "nfkc_punct"))
    return t.take(pa.array(rng.permutation(t.num_rows)))


def doubled(t: pa.Table, seed: int = 1) -> pa.Table:
    """The corpus plus a copy of every text with its words shuffled (new, distinct documents of the same sizes)."""
    from curate.methods.dedup.text import normalize

    rng = np.random.default_rng(seed)
    shuffled = [" ".join(rng.permutation(x.split())) if x.split() else x for x in t.column("text").to_pylist()]
    extra = pa.table({"id": [f"shuffled:{i}" for i in t.column("id").to_pylist()], "text": shuffled,
                      "source": ["shuffled"] * t.num_rows, "planted_of": pa.nulls(t.num_rows, pa.string()),
                      "planted_j": pa.nulls(t.num_rows, pa.float64())})
    extra = extra.append_column("text_norm", normalize(extra.column("text").combine_chunks(), "nfkc_punct"))
    return pa.concat_tables([t, extra])


def write(t: pa.Table, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    step = -(-t.num_rows // SHARDS)
    for s in range(SHARDS):
        pq.write_table(t.slice(s * step, step), folder / f"part-{s:05d}.parquet")
    return folder


def corpora() -> tuple[Path, Path]:
    one, two = CACHE / "x1", CACHE / "x2"
    if not (one / "part-00000.parquet").exists():
        shutil.rmtree(CACHE, ignore_errors=True)
        t = build_corpus()
        write(t, one)
        write(doubled(t), two)
    return one, two


# --- running each side, measured ---------------------------------------------------------------------------
def measured(cmd: list[str]) -> dict:
    """Run a command; wall seconds and the peak RSS of its process tree (polled every 50 ms)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    peak = 0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [ps, *ps.children(recursive=True)]))
        except psutil.Error:
            pass
        time.sleep(0.05)
    if proc.returncode:
        raise RuntimeError(f"{cmd} exited {proc.returncode}")
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": peak / 2**20}


def run_ours(data: Path, out: Path, **stage) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    m = measured([sys.executable, "-m", "bench.dedup", "--ours", str(data), str(out), json.dumps(stage)])
    manifest = pq.read_table(out / "manifest.parquet")
    docs = {i: {"cluster": c if s and s > 1 else None, "removed": not k}
            for i, c, s, k in zip(*(manifest.column(x).to_pylist() for x in
                                    ("id", "minhash_dedup.component", "minhash_dedup.size", "keep")))}
    return {**m, "docs": docs, "stage": json.loads((out / "stage.json").read_text())}


def ours_main(data: str, out: str, stage: str) -> None:
    """The measured process: one curate run (local executor), then the manifest copied for the parent."""
    import curate
    from curate.methods.dedup import Dedup, MinHashDedup

    st = MinHashDedup(text_column="text", **json.loads(stage))
    pipe = curate.Pipeline(stages=[st], policies=[Dedup()], id_column="id")
    summary = curate.run(pipe, data, Path(out) / "run", executor="local")
    m = curate.load_manifest(Path(out) / "run", columns=["id", "minhash_dedup.component", "minhash_dedup.size", "keep"])
    pq.write_table(m, Path(out) / "manifest.parquet")
    (Path(out) / "stage.json").write_text(json.dumps(summary["stages"]["minhash_dedup"].get("artifact", {})))


def run_datatrove(data: Path, work: Path, bands: int, rows: int) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out = work / "out.json"
    m = measured([str(datatrove_python()), str(HERE / "dedup_datatrove.py"), str(data), str(work / "w"), str(out),
                  "--n", str(N), "--bands", str(bands), "--rows", str(rows), "--workers", "1"])
    return {**m, "docs": json.loads(out.read_text())["docs"]}


# --- scoring ----------------------------------------------------------------------------------------------
def ground_truth(data: Path, seed: int = 0) -> dict:
    t = pq.read_table(data, columns=["id", "text", "source", "planted_of", "planted_j"])
    rows = t.to_pylist()
    rng = np.random.default_rng(seed)
    planted = [r for r in rows if r["source"] == "planted"]
    origins = {r["planted_of"] for r in planted}
    code = [r["id"] for r in rows if r["source"] == "stdlib-code" and r["id"] not in origins]
    pick = set(rng.choice(code, 2000, replace=False).tolist()) | origins
    sample = [r for r in rows if r["source"] in ("copyright", "planted") or r["id"] in pick]
    sets = shingle_sets([r["text"] for r in sample])
    values, inv = np.unique(np.concatenate(sets), return_inverse=True)
    lens = np.array([len(s) for s in sets])
    m = sp.csr_matrix((np.ones(len(inv), np.float32), inv, np.r_[0, np.cumsum(lens)]), shape=(len(sets), len(values)))
    inter = sp.triu(m @ m.T, k=1).tocoo()
    j = inter.data / (lens[inter.row] + lens[inter.col] - inter.data)
    dup = j >= THRESHOLD
    ids = [r["id"] for r in sample]
    true = {(ids[a], ids[b]) for a, b in zip(inter.row[dup], inter.col[dup])}
    return {"ids": ids, "true": true, "planted": [(r["planted_of"], r["id"], r["planted_j"]) for r in planted],
            "sample_rows": len(ids), "true_pairs": len(true)}


def predicted_pairs(docs: dict, ids: list[str]) -> set[tuple[str, str]]:
    by: dict = {}
    for i in ids:
        c = docs.get(i, {}).get("cluster")
        if c is not None:
            by.setdefault(c, []).append(i)
    pos = {i: k for k, i in enumerate(ids)}
    out = set()
    for members in by.values():
        members.sort(key=pos.get)
        out |= {(a, b) for k, a in enumerate(members) for b in members[k + 1:]}
    return out


def quality(docs: dict, truth: dict) -> dict:
    pred = predicted_pairs(docs, truth["ids"])
    hit = len(pred & truth["true"])
    by_j = {}
    for lo in TARGETS:
        sel = [(a, b) for a, b, j in truth["planted"] if lo - 0.05 < j <= lo]  # planted just below a target
        found = sum(docs[a]["cluster"] is not None and docs[a]["cluster"] == docs[b]["cluster"] for a, b in sel)
        by_j[f"{lo:.2f}"] = {"pairs": len(sel), "found": int(found)}
    planted_dup = [(a, b) for a, b, j in truth["planted"] if j >= THRESHOLD]
    found = sum(docs[a]["cluster"] is not None and docs[a]["cluster"] == docs[b]["cluster"] for a, b in planted_dup)
    return {"predicted_pairs": len(pred), "precision": hit / max(1, len(pred)), "recall": hit / max(1, len(truth["true"])),
            "planted_recall_at_0.8": found / max(1, len(planted_dup)), "planted_by_j": by_j,
            "removed": sum(d["removed"] for d in docs.values())}


def agreement(a: dict, b: dict) -> dict:
    ra = {i for i, d in a.items() if d["removed"]}
    rb = {i for i, d in b.items() if d["removed"]}
    ca = {i for i, d in a.items() if d["cluster"] is not None}
    cb = {i for i, d in b.items() if d["cluster"] is not None}
    return {"removed_ours": len(ra), "removed_datatrove": len(rb), "removed_jaccard": len(ra & rb) / max(1, len(ra | rb)),
            "in_a_cluster_jaccard": len(ca & cb) / max(1, len(ca | cb)),
            "removed_per_cluster_equal": _removed_per_cluster(a) == _removed_per_cluster(b)}


def _removed_per_cluster(docs: dict) -> set:
    """The partition into clusters as a set of frozensets (representatives differ between the two)."""
    by: dict = {}
    for i, d in docs.items():
        if d["cluster"] is not None:
            by.setdefault(d["cluster"], set()).add(i)
    return {frozenset(v) for v in by.values()}


def spread(values: list[float]) -> str:
    v = sorted(values)
    return f"{v[0]:.1f} / {v[len(v) // 2]:.1f} / {v[-1]:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-datatrove", action="store_true")
    ap.add_argument("--ours", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.ours:
        return ours_main(*a.ours)
    one, two = corpora()
    work = CACHE / "runs"
    truth = ground_truth(one)
    result: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                    "corpus": {"rows": sum(pq.read_metadata(p).num_rows for p in one.glob("*.parquet")),
                               "sample_rows": truth["sample_rows"], "true_pairs_at_0.8": truth["true_pairs"]}}
    # 1. precision / recall at 0.8, with and without verify
    result["quality"] = {}
    for verify in (False, True):
        r = run_ours(one, work / f"q{int(verify)}", n=N, num_perm=NUM_PERM, threshold=THRESHOLD, verify=verify)
        result["quality"][f"verify={verify}"] = {**quality(r["docs"], truth), "seconds": r["seconds"],
                                                 "peak_rss_mb": r["peak_rss_mb"], "banding": r["stage"]}
        print(json.dumps(result["quality"][f"verify={verify}"], default=str)[:400], flush=True)
    # 2. side by side with datatrove, same banding
    if not a.skip_datatrove:
        same = {"n": N, "num_perm": NUM_PERM, "bands": 14, "rows": 8}
        runs: dict = {"ours": [], "datatrove": []}
        last = {}
        for k in range(a.runs):
            for side in ("ours", "datatrove") if k % 2 == 0 else ("datatrove", "ours"):
                r = run_ours(one, work / "cmp", **same) if side == "ours" else run_datatrove(one, work / "dt", 14, 8)
                runs[side].append({"seconds": r["seconds"], "peak_rss_mb": r["peak_rss_mb"]})
                last[side] = r
                print(side, k, runs[side][-1], flush=True)
        result["versus"] = {
            "config": same, "runs": runs,
            "quality": {s: quality(last[s]["docs"], truth) for s in runs},
            "agreement": agreement(last["ours"]["docs"], last["datatrove"]["docs"])}
        doubled_runs = {"ours": run_ours(two, work / "cmp2", **same), "datatrove": run_datatrove(two, work / "dt2", 14, 8)}
        result["doubled"] = {s: {"seconds": r["seconds"], "peak_rss_mb": r["peak_rss_mb"]} for s, r in doubled_runs.items()}
        result["doubled"]["rows"] = sum(pq.read_metadata(p).num_rows for p in two.glob("*.parquet"))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dedup.json").write_text(json.dumps(result, indent=1, default=str))
    (RESULTS / "dedup.md").write_text(markdown(result))
    print((RESULTS / "dedup.md").read_text())


def markdown(r: dict) -> str:
    c = r["corpus"]
    out = ["# MinHash dedup on real text (`python -m bench.dedup`)", "",
           f"Corpus: {c['rows']:,} documents (Debian copyright files, stdlib/doc chunks, 1,000 planted "
           f"near-duplicates). Ground truth: exact Jaccard of word 5-grams (`nfkc_punct`) on all pairs of a "
           f"{c['sample_rows']:,}-document sample: {c['true_pairs_at_0.8']:,} pairs at J >= 0.8. A method predicts "
           f"a pair when both rows land in one component. Machine: {r['machine']['cpus']} CPUs (shared).", "",
           "## Precision and recall at threshold 0.8 (ours, 112 hashes, banding chosen for <= 5% misses at 0.8)", "",
           "| verify | bands x rows | predicted pairs | precision | recall | planted recall (J >= 0.8) | removed | s |",
           "|---|---|---|---|---|---|---|---|"]
    for k, q in r["quality"].items():
        b = q["banding"]
        out.append(f"| {k.split('=')[1]} | {b.get('bands')} x {b.get('rows')} | {q['predicted_pairs']:,} | "
                   f"{q['precision']:.4f} | {q['recall']:.4f} | {q['planted_recall_at_0.8']:.4f} | {q['removed']:,} | "
                   f"{q['seconds']:.1f} |")
    first = next(iter(r["quality"].values()))
    out += ["", "S-curve of that banding (P(candidate | J)): " + ", ".join(
        f"{k}: {v}" for k, v in first["banding"].get("s_curve", {}).items()), "",
            "Planted pairs found, by their exact J in (t - 0.05, t] (t: found / pairs): " + ", ".join(
        f"{k}: " + " / ".join(f"{q['planted_by_j'][k]['found']}/{q['planted_by_j'][k]['pairs']}"
                              for q in r["quality"].values()) for k in first["planted_by_j"]) +
            " (without verify / with verify)", ""]
    if "versus" in r:
        v = r["versus"]
        out += ["## Side by side with datatrove 0.10.1 (14 bands x 8 rows, word 5-grams, one process each)", "",
                "| | wall s (min / median / max) | peak RSS MB (min / median / max) | precision | recall | "
                "planted recall (J >= 0.8) | removed |", "|---|---|---|---|---|---|---|"]
        for s in ("ours", "datatrove"):
            q = v["quality"][s]
            out.append(f"| {s} | {spread([x['seconds'] for x in v['runs'][s]])} | "
                       f"{spread([x['peak_rss_mb'] for x in v['runs'][s]])} | {q['precision']:.4f} | {q['recall']:.4f} | "
                       f"{q['planted_recall_at_0.8']:.4f} | {q['removed']:,} |")
        g = v["agreement"]
        med = {s: sorted(x["seconds"] for x in v["runs"][s])[len(v["runs"][s]) // 2] for s in v["runs"]}
        out += ["", f"Runs alternate ({len(v['runs']['ours'])} each). Median speed-up: "
                    f"{med['datatrove'] / med['ours']:.2f}x. Agreement: rows in a duplicate cluster, Jaccard "
                    f"{g['in_a_cluster_jaccard']:.4f}; removed sets, Jaccard {g['removed_jaccard']:.4f} (the two keep "
                    f"different representatives of a cluster); identical partition into clusters: "
                    f"{g['removed_per_cluster_equal']}. Without verification the two differ where LSH is a coin "
                    f"toss for both (pairs at J 0.5-0.75, caught with probability 0.05-0.77 by this banding, "
                    f"by different hash functions); on the pairs at J >= 0.8 both find the recall above.", ""]
        d = r["doubled"]
        out += [f"Doubled corpus ({d['rows']:,} rows, a word-shuffled copy of every text added): ours "
                f"{d['ours']['seconds']:.1f} s, {d['ours']['peak_rss_mb']:.0f} MB; datatrove "
                f"{d['datatrove']['seconds']:.1f} s, {d['datatrove']['peak_rss_mb']:.0f} MB.", ""]
    return "\n".join(out)


if __name__ == "__main__":
    main()
