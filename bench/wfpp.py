"""WFPP benchmark: scoring throughput vs a straightforward implementation, engine overhead, real-data effect.

    make bench            (or: python -m bench.wfpp [--rows N])

Writes bench/results/wfpp.json and bench/results/wfpp.md. Captions are real: the demo's openclipart
titles and descriptions, each extended with 0-3 keywords of another real row, to reach --rows distinct
rows. Everything runs single-threaded (POLARS_MAX_THREADS=1), so rates are per core.
"""
from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse
import contextlib
import json
import math
import platform
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import curate
from curate.methods.wfpp.stage import WFPP
from curate.stage import TablesFitContext
from testkit import wfpp_reference as ref

RESULTS = Path(__file__).parent / "results"
DEMO = Path("data/demo")


def real_captions() -> tuple[list[str | None], list[list[str]]]:
    if not (DEMO / ".complete").exists():
        from curate.data.demo import build_demo

        build_demo(DEMO, progress=False)
    t = pq.read_table(DEMO, columns=["caption", "keywords"])
    return t.column("caption").to_pylist(), [k or [] for k in t.column("keywords").to_pylist()]


def make_rows(n: int, captions: list[str | None], keywords: list[list[str]], seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    base = [c for c in captions if c]
    out = []
    for _ in range(n):
        c = rng.choice(base)
        kw = keywords[rng.randrange(len(keywords))]
        k = rng.randint(0, min(3, len(kw)))
        out.append(c if k == 0 else c + " " + " ".join(rng.sample(kw, k)))
    return out


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def throughput(rows: list[str], shards: int, t: float, min_count: int) -> dict:
    col = pa.array(rows, pa.string())
    per = math.ceil(len(rows) / shards)
    tables = [pa.table({"caption": col.slice(i * per, per)}) for i in range(shards)]

    counter, ref_count_s = timed(lambda: ref.count(rows))
    (p_table, _), _ = timed(lambda: ref.table(counter, t, min_count))
    ref_scores, ref_score_s = timed(lambda: [ref.score(c, p_table) for c in rows])

    stage = WFPP(t=t, min_count=min_count)
    artifact, fit_s = timed(lambda: stage.fit(TablesFitContext(tables)))
    _, setup_s = timed(lambda: stage.setup(artifact))
    outs, score_s = timed(lambda: [stage.score(tb) for tb in tables])
    ours = np.concatenate([o.column("score").to_numpy(zero_copy_only=False) for o in outs])
    theirs = np.array([np.nan if s is None else s for s in ref_scores])
    identical = bool(np.array_equal(ours, theirs, equal_nan=True))
    n = len(rows)
    return {
        "rows": n, "identical_scores": identical,
        "reference": {"count_rows_per_s": round(n / ref_count_s), "score_rows_per_s": round(n / ref_score_s)},
        "curate": {"fit_rows_per_s": round(n / fit_s), "setup_s": round(setup_s, 3),
                   "score_rows_per_s": round(n / score_s)},
        "speedup_score": round(ref_score_s / score_s, 1), "speedup_count": round(ref_count_s / fit_s, 1),
        "non_ascii_or_amp_rows": sum(1 for c in rows if not c.isascii() or "&" in c),
    }


def _write_shards(rows: list[str], shards: int, data: Path) -> list[Path]:
    data.mkdir(parents=True)
    per = math.ceil(len(rows) / shards)
    for i in range(shards):
        part = rows[i * per:(i + 1) * per]
        pq.write_table(pa.table({"id": [f"r{i}-{j}" for j in range(len(part))], "caption": part}),
                       data / f"part-{i:05d}.parquet")
    return sorted(data.glob("*.parquet"))


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3), "max": round(max(values), 3)}


class _PhaseClock:
    """curate.run's `phase` hook: seconds per step (plan = fingerprints + ids, fit, score, decide)."""

    NAMES = {"plan": "ids", "policies": "decide"}

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.last_end = 0.0  # when the last step ended: what follows is the executor's shut-down

    def __call__(self, name: str, fn):
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            key = self.NAMES.get(name, name.split(":", 1)[0].split("-", 1)[0])  # `fit:<stage>` -> fit
            self.last_end = time.perf_counter()
            self.seconds[key] = self.seconds.get(key, 0.0) + self.last_end - t0


def engine_overhead(rows: list[str], shards: int, t: float, min_count: int, work: Path, repeats: int = 3,
                    executors: tuple[str, ...] = ("local", "ray"), warm_up: bool = False) -> dict:
    """Plain loops over the shard files against the same work through the engine, alternating `repeats` times.

    Two workloads: WFPP (fit + score + keep_fraction 0.9) and a trivial custom filter (a @curate.stage that
    returns the caption's length, threshold >= 20) against a plain loop reading the captions and writing the
    lengths. Every engine run gets a fresh run directory (so fingerprints, ids and the manifest are paid each
    time). Ratios are taken within a repeat (engine / the plain loop run just before it); Ray's are beyond its
    start-up (`ray_startup`, the workers' processes included), which is reported separately."""
    files = _write_shards(rows, shards, work / "data")
    data = work / "data"

    def plain_wfpp(out: Path) -> None:
        stage = WFPP(t=t, min_count=min_count)
        tables = [pq.read_table(f, columns=["caption"]) for f in files]
        stage.setup(stage.fit(TablesFitContext(tables)))
        out.mkdir()
        for f, tb in zip(files, tables):
            pq.write_table(stage.score(tb), out / f.name)

    def plain_filter(out: Path) -> None:
        out.mkdir()
        for f in files:
            captions = pq.read_table(f, columns=["caption"]).column(0)
            pq.write_table(pa.table({"chars": pc.utf8_length(captions)}), out / f.name)

    @curate.stage(inputs=["caption"], outputs={"chars": pa.int64()}, name="length")
    def length(batch: pa.Table) -> dict:
        return {"chars": pc.cast(pc.utf8_length(batch.column("caption")), pa.int64())}

    workloads = {
        "wfpp": (plain_wfpp, curate.Pipeline([WFPP(t=t, min_count=min_count)],
                                             [curate.KeepFraction("wfpp.score", 0.9)], id_column="id")),
        "filter": (plain_filter, curate.Pipeline([length], [curate.Threshold("length.chars", min=20)],
                                                 id_column="id")),
    }
    quiet = curate.Progress(enabled=False)
    runs: dict[str, dict[str, list]] = {w: {"plain": [], **{e: [] for e in executors}} for w in workloads}
    if warm_up and "ray" in executors:  # untimed: the warm workers import the stages' modules once
        for _, pipeline in workloads.values():
            curate.run(pipeline, data, work / f"warm-up-{len(os.listdir(work))}", executor="ray", progress=quiet)
    n = 0
    for i in range(repeats):
        for name, (plain, pipeline) in workloads.items():
            n += 1
            c0 = time.process_time()
            _, plain_s = timed(plain, work / f"plain-{n}")
            plain_cpu = time.process_time() - c0
            runs[name]["plain"].append({"seconds": plain_s, "cpu": plain_cpu})
            for ex in executors:
                clock = _PhaseClock()
                out = work / f"{ex}-{n}"
                c0 = time.process_time()
                summary, s = timed(curate.run, pipeline, data, out, executor=ex, progress=quiet, phase=clock)
                shutdown = time.perf_counter() - clock.last_end  # closing the executor (Ray: ray.shutdown)
                cpu = time.process_time() - c0  # this process only: Ray's workers are not in it
                startup = summary["phases"].get("ray_startup", {}).get("seconds", 0.0)
                clock.seconds["ids"] -= startup  # the executor starts at the first unit (the ids)
                fixed = startup + shutdown if ex == "ray" else 0.0
                runs[name][ex].append({"seconds": s, "startup": startup, "shutdown": shutdown,
                                       "beyond_startup": s - startup, "ratio": (s - startup) / plain_s,
                                       "beyond_fixed": s - fixed, "ratio_fixed": (s - fixed) / plain_s,
                                       "cpu_ratio": cpu / plain_cpu,
                                       "phases": {k: round(v, 3) for k, v in clock.seconds.items()}, "out": out})
                print(f"repeat {i + 1} {name}: plain {plain_s:.2f} s, {ex} {s - startup:.2f} s"
                      + (f" (+ start-up {startup:.2f} s; shut-down {shutdown:.2f} s of it)" if startup else "")
                      + f" = {(s - startup) / plain_s:.2f}x (CPU {cpu / plain_cpu:.2f}x) {clock.seconds}", flush=True)
    result: dict = {"shards": shards, "rows": len(rows), "repeats": repeats}
    for name, r in runs.items():
        w = result[name] = {"plain_loop_s": _spread([x["seconds"] for x in r["plain"]])}
        for ex in executors:
            w[ex] = {"seconds_beyond_startup": _spread([x["beyond_startup"] for x in r[ex]]),
                     "ratio": _spread([x["ratio"] for x in r[ex]]),
                     "ratios": [round(x["ratio"], 3) for x in r[ex]],
                     **({"cpu_ratio": _spread([x["cpu_ratio"] for x in r[ex]])} if ex == "local" else {}),
                     "phases_s": {p: _spread([x["phases"].get(p, 0.0) for x in r[ex]]) for p in r[ex][0]["phases"]}}
            if ex == "ray":
                w[ex]["startup_s"] = _spread([x["startup"] for x in r[ex]])
                w[ex]["shutdown_s"] = _spread([x["shutdown"] for x in r[ex]])
                w[ex]["seconds_beyond_startup_and_shutdown"] = _spread([x["beyond_fixed"] for x in r[ex]])
                w[ex]["ratio_beyond_startup_and_shutdown"] = _spread([x["ratio_fixed"] for x in r[ex]])
                w[ex]["ratios_beyond_startup_and_shutdown"] = [round(x["ratio_fixed"], 3) for x in r[ex]]
        if len(executors) > 1:
            first = [curate.load_manifest(x["out"]).sort_by("id") for x in (r[e][0] for e in executors)]
            w["manifests_equal_across_executors"] = all(m.equals(first[0]) for m in first[1:])
    return result


def word_distribution(captions: list[str | None], t: float, min_count: int, keep: float = 0.5, draws: int = 5) -> dict:
    """Spec check 8: WFPP's kept half has a flatter word distribution than a random half."""
    valid = [c for c in captions if c and ref.tokenize(ref.clean(c))]
    stage = WFPP(t=t, min_count=min_count)
    col = pa.table({"caption": pa.array(valid, pa.string())})
    stage.setup(stage.fit(TablesFitContext([col])))
    scores = stage.score(col).column("score").to_numpy()
    k = int(len(valid) * keep)
    top = np.argsort(-scores, kind="stable")[:k]

    def stats(idx) -> tuple[float, float]:
        c = Counter(w for i in idx for w in ref.tokenize(ref.clean(valid[i])))
        total = sum(c.values())
        p = np.array(list(c.values()), dtype=np.float64) / total
        share = sum(n for _, n in c.most_common(20)) / total
        return share, float(-(p * np.log(p)).sum() / math.log(len(p)))

    rng = np.random.default_rng(0)
    rand = [stats(rng.choice(len(valid), k, replace=False)) for _ in range(draws)]
    wf = stats(top)
    return {"captions": len(valid), "keep": keep,
            "top20_share_wfpp": round(wf[0], 4), "top20_share_random_mean": round(float(np.mean([r[0] for r in rand])), 4),
            "entropy_wfpp": round(wf[1], 4), "entropy_random_mean": round(float(np.mean([r[1] for r in rand])), 4),
            "entropy_all": round(stats(range(len(valid)))[1], 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--shards", type=int, default=16)
    ap.add_argument("--t", type=float, default=1e-7)
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="engine overhead: alternating repeats")
    ap.add_argument("--overhead-only", action="store_true",
                    help="only the engine overhead (replaces that part of the stored results)")
    ap.add_argument("--executors", default="local,ray", help="engine overhead: executors to compare, comma-separated")
    ap.add_argument("--shared-ray", action="store_true",
                    help="engine overhead: the ray executor on a shared warm Ray (`curate ray start`) this bench starts "
                         "(in a cache folder of its own) and stops, after one untimed warm-up run")
    ap.add_argument("--as-baseline", metavar="LABEL",
                    help="store the engine overhead as the baseline the table compares with (e.g. 'main e3d0b96')")
    args = ap.parse_args()
    captions, keywords = real_captions()
    rows = make_rows(args.rows, captions, keywords)
    stored = RESULTS / "wfpp.json"
    result = json.loads(stored.read_text()) if args.overhead_only and stored.exists() else {}
    result["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "polars_threads": 1}
    result["params"] = {"t": args.t, "min_count": args.min_count, "max_tokens": 30}
    if not args.overhead_only:
        print(f"throughput on {len(rows):,} captions ...", flush=True)
        result["throughput"] = throughput(rows, args.shards, args.t, args.min_count)
        print(json.dumps(result["throughput"], indent=1), flush=True)
    with tempfile.TemporaryDirectory() as work:
        print("engine overhead ...", flush=True)
        with _shared_ray(Path(work), args.shared_ray):
            engine = engine_overhead(rows, args.shards, args.t, args.min_count, Path(work), args.repeats,
                                     tuple(args.executors.split(",")), warm_up=args.shared_ray)
        engine["ray_mode"] = "shared" if args.shared_ray else "per-run"
    print(json.dumps(engine, indent=1), flush=True)
    if args.as_baseline:
        result["engine_baseline"] = {"label": args.as_baseline, **engine}
    else:
        result["engine"] = engine
    if not args.overhead_only:
        result["real_captions"] = word_distribution(captions, args.t, args.min_count)
        print(json.dumps(result["real_captions"], indent=1), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stored.write_text(json.dumps(result, indent=1) + "\n")
    if {"throughput", "real_captions"} <= result.keys() and "wfpp" in result.get("engine", {}):
        (RESULTS / "wfpp.md").write_text(markdown(result))


@contextlib.contextmanager
def _shared_ray(work: Path, on: bool):
    """A shared local Ray for the ray runs (engine/rayhead.py), in a cache folder of this bench's own."""
    if not on:
        yield
        return
    from curate.engine import rayhead

    if os.environ.get("PYTHONDONTWRITEBYTECODE"):  # (as bench/ray_startup.py: the pool's workers keep their bytecode)
        os.environ.pop("PYTHONDONTWRITEBYTECODE")
        os.environ.setdefault("PYTHONPYCACHEPREFIX", str(Path.home() / ".cache" / "curate-bench-pycache"))
    os.environ["CURATE_CACHE"] = str(work / "cache")
    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)  # (the pool serves runs of its own path)
    rayhead.start(num_cpus=os.cpu_count())
    try:
        yield
    finally:
        rayhead.stop()


def _mmm(s: dict) -> str:
    return f"{s['min']:.2f} / {s['median']:.2f} / {s['max']:.2f}"


def engine_section(en: dict, base: dict | None) -> str:
    """The engine-overhead tables: ratio to the plain loop (min / median / max over repeats), per-phase seconds."""
    if base and base.get("ray_mode", "per-run") != en.get("ray_mode", "per-run"):
        base = None  # (a baseline taken with a Ray per run says nothing about runs on the shared Ray)
    lines = [f"{en['rows']:,} rows, {en['shards']} shards, {en['repeats']} alternating repeats (plain loop, engine "
             f"local, engine Ray{' on a shared warm Ray (`curate ray start`, `--shared-ray`)' if en.get('ray_mode') == 'shared' else ''}; "
             f"a fresh run directory each time). Ratio = engine seconds / the plain loop's seconds "
             f"in the same repeat; Ray's beyond its start-up. Min / median / max over the repeats"
             + (f"; baseline: {base['label']}." if base else "."), "",
             "| workload | run | seconds | ratio to plain loop" + (" | baseline ratio |" if base else " |"),
             "|---|---|---|---|" + ("---|" if base else "")]
    for w, title in (("wfpp", "WFPP fit + score, keep_fraction 0.9"),
                     ("filter", "trivial @curate.stage (caption length), threshold")):
        if w not in en:
            continue
        lines.append(f"| {title} | plain loop | {_mmm(en[w]['plain_loop_s'])} | 1 |" + (" 1 |" if base else ""))
        for ex in ("local", "ray"):
            if ex not in en[w]:
                continue
            e = en[w][ex]
            b = base and base.get(w, {}).get(ex)
            lines.append(f"| | engine, {ex}{' beyond start-up' if ex == 'ray' else ''} | "
                         f"{_mmm(e['seconds_beyond_startup'])} | **{_mmm(e['ratio'])}** |"
                         + (f" {_mmm(b['ratio']) if b else ''} |" if base else ""))
            if "ratio_beyond_startup_and_shutdown" in e:
                lines.append(f"| | engine, ray beyond start-up and shut-down | "
                             f"{_mmm(e['seconds_beyond_startup_and_shutdown'])} | "
                             f"**{_mmm(e['ratio_beyond_startup_and_shutdown'])}** |" + (" |" if base else ""))
            if "cpu_ratio" in e:
                lines.append("| | engine, local: CPU seconds of the process (threads included) | | "
                             f"{_mmm(e['cpu_ratio'])} |" + (f" {_mmm(b['cpu_ratio']) if b and 'cpu_ratio' in b else ''} |"
                                                            if base else ""))
    lines += ["", "Per phase, median seconds (ids = schema checks, fingerprints, reading and checking ids; locally the "
              "ids are read and checked on a second thread during the fit, so the column holds the rest; decide = "
              "policies and the manifest):", "",
              "| workload | run | ids | fit | score | decide |" + (" baseline ids / fit / score / decide |" if base else ""),
              "|---|---|---|---|---|---|" + ("---|" if base else "")]
    for w in ("wfpp", "filter"):
        for ex in ("local", "ray"):
            if ex not in en.get(w, {}):
                continue
            ph = en[w][ex]["phases_s"]
            row = f"| {w} | {ex} | " + " | ".join(f"{ph.get(p, {}).get('median', 0):.2f}"
                                                   for p in ("ids", "fit", "score", "decide")) + " |"
            b = base and base.get(w, {}).get(ex)
            if base:
                row += (" " + " / ".join(f"{b['phases_s'].get(p, {}).get('median', 0):.2f}"
                                         for p in ("ids", "fit", "score", "decide")) if b else "") + " |"
            lines.append(row)
    if "ray" in en.get("wfpp", {}):
        ray = en["wfpp"]["ray"]
        lines += ["", f"Ray start-up (worker processes and the stages' modules imported in them), seconds: "
                  f"{_mmm(ray['startup_s'])}" + (f"; shut-down (`ray.shutdown()` after the summary is written): "
                                                  f"{_mmm(ray['shutdown_s'])}" if "shutdown_s" in ray else "") + "."
                  f" Local and Ray manifests identical: **{en['wfpp'].get('manifests_equal_across_executors')}**."]
    shut = en.get("wfpp", {}).get("ray", {}).get("shutdown_s", {}).get("median")
    lines += ["", "Start-up and shut-down are fixed costs of a run (they do not grow with the rows): the issue's target "
              "for Ray (1.2x) is set beyond start-up, and the row beyond both shows what is left once `ray.shutdown()` "
              + (f"({shut:.2f} s here) " if shut is not None else "") + "is set apart too. The trivial filter's plain loop (0.2 s for 1M rows) is less than "
              "the engine's own per-row work (hashing and checking 1M ids, a manifest row and a drop reason per row), "
              "so no engine can come near 1.25x on it; it shows that per-row cost.",
              "", "What the engine does that the plain loop does not: check every shard's schema, fingerprint it, "
              "read, hash and check every row id (non-null, unique within and across shards), checkpoint the fit "
              "map per shard, read the text again to score it (the plain loop keeps it in memory), check UTF-8, "
              "hash and seal every output, and write the manifest (every row, a reason for every dropped one). "
              "The ratios are taken on a shared 2-core machine and move with its load (the plain loop's own "
              "time varies as much); `python -m bench.protocol --base <commit> --workload wfpp|filter --out "
              "overhead-<workload>` compares two versions of the engine alone, alternating fresh processes, which "
              "is steadier (bench/results/overhead-*.md)."]
    return "\n".join(lines)


def markdown(r: dict) -> str:
    tp, en, rc = r["throughput"], r["engine"], r["real_captions"]
    return f"""# WFPP benchmark

{tp['rows']:,} real-derived captions (openclipart titles/descriptions + keywords; {tp['non_ascii_or_amp_rows']:,}
rows non-ASCII or with `&`), one thread (POLARS_MAX_THREADS=1), {r['machine']['cpus']}-core machine.
Reference: `testkit/wfpp_reference.py`, a straightforward per-caption Python implementation of the same formula.

| pass | reference rows/s | curate rows/s | ratio |
|---|---|---|---|
| score | {tp['reference']['score_rows_per_s']:,} | {tp['curate']['score_rows_per_s']:,} | **{tp['speedup_score']}x** |
| count (fit) | {tp['reference']['count_rows_per_s']:,} | {tp['curate']['fit_rows_per_s']:,} | {tp['speedup_count']}x |

Scores identical to the reference (bit for bit, all rows): **{tp['identical_scores']}**.

## Engine overhead

{engine_section(en, r.get("engine_baseline"))}

## Real captions (spec check 8): {rc['captions']:,} demo captions, keep {rc['keep']:.0%}

| subset | top-20 words' share of tokens | normalised unigram entropy |
|---|---|---|
| WFPP top half | {rc['top20_share_wfpp']} | {rc['entropy_wfpp']} |
| random half (mean of 5) | {rc['top20_share_random_mean']} | {rc['entropy_random_mean']} |
| all captions | | {rc['entropy_all']} |
"""


if __name__ == "__main__":
    main()
