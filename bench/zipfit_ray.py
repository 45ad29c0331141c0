"""ZIP-FIT through the shared warm Ray on 2 workers against `zip-fit` 1.0.9 on 2 processes, alternating.

    python -m bench.zipfit_ray [--rounds 5]

The check of bench/zipfit.py (stdlib `email` experiment, 1,194 candidates x 50 targets = 59,700 pairs, 8 shards,
gzip level 1). A shared Ray (`curate ray start`, engine/rayhead.py) is started once in a cache folder of this
bench's own, then each round runs, alternating: our run in a fresh Python process (as a second `curate run` on
the machine is: importing curate and Ray included, not timed) through `curate.run` with the ray executor and 2
workers, and the reference on 2 processes (bench/.venv-zipfit, as bench/zipfit.py; its own timing of
`rank_sequences_by_alignment`). A first, untimed round warms what a second run finds warm (the pool workers'
imports of the stage module). Reported: min / median / max of `curate.run`'s wall time and of its parts (the
`phase` hook: start-up = `ray_startup`, ids, fit, score, decide, shut-down = after the last phase), and the
speed-up zip-fit's wall / ours per round (above 1: faster than zip-fit). Scores are checked against the
reference's (within 1e-12), every round. Writes bench/results/zipfit_ray.json and .md.

Bytecode: this machine's environment sets PYTHONDONTWRITEBYTECODE and the shared venv holds no compiled
bytecode, so every process would compile its imports from source (seconds; an installed package has its
.pyc files). The bench's processes (and the shared Ray it starts) keep theirs under PYTHONPYCACHEPREFIX
(~/.cache/curate-bench-pycache) instead, outside the venv.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
ROOT = HERE.parent
WORKERS = 2


def one(work: Path) -> dict:
    """One run in this (fresh) process: `curate.run`'s wall time and its parts, and the scores in candidate order."""
    import pyarrow as pa

    import curate
    from curate.data.stdlib_code import email_experiment
    from curate.methods.zipfit.stage import ZipFit
    from testkit.helpers import write_shards

    targets_c, cands_c = email_experiment(0)
    data = work / "data"
    if not data.exists():
        write_shards(data, pa.table({"id": [c.id for c, _ in cands_c], "text": [c.text for c, _ in cands_c]}), 8)
    p = curate.Pipeline([ZipFit(target=[c.text for c in targets_c])], [curate.KeepFraction("zipfit.score", 0.1)],
                        id_column="id")
    out = work / f"run-{time.time_ns()}"
    phases: dict[str, float] = {}
    last = [0.0]

    def clock(name: str, fn):
        t = time.perf_counter()
        try:
            return fn()
        finally:
            last[0] = time.perf_counter()
            key = name.split(":")[0]
            phases[key] = phases.get(key, 0.0) + last[0] - t

    t0 = time.perf_counter()
    s = curate.run(p, data, out, executor="ray", workers=WORKERS, progress=curate.Progress(enabled=False), phase=clock)
    t1 = time.perf_counter()
    startup = s["phases"].get("ray_startup", {}).get("seconds", 0.0)
    phases["plan"] -= startup  # the executor starts at the first units (the ids, inside `plan`)
    m = curate.load_manifest(out)
    by_id = dict(zip(m.column("id").to_pylist(), m.column("zipfit.score").to_pylist()))
    return {"run_s": t1 - t0, "startup_s": startup, "shutdown_s": t1 - last[0],
            "phases_s": {k: round(v, 4) for k, v in phases.items()},
            "scores": [by_id[c.id] for c, _ in cands_c]}


def _child(work: Path, env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.zipfit_ray", "--one", str(work)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise SystemExit(f"the ray run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mmm(xs: list[float]) -> dict:
    return {"min": round(min(xs), 3), "median": round(statistics.median(xs), 3), "max": round(max(xs), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--one", metavar="WORK", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(Path(args.one))), flush=True)
        os._exit(0)  # (a Ray thread can abort the interpreter's own exit after a run: not what is measured)
    from bench.zipfit import run_reference
    from curate.data.stdlib_code import email_experiment
    from curate.engine import rayhead

    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        os.environ.pop("PYTHONDONTWRITEBYTECODE")
        os.environ.setdefault("PYTHONPYCACHEPREFIX", str(Path.home() / ".cache" / "curate-bench-pycache"))
    targets_c, cands_c = email_experiment(0)
    cands, targets = [c.text for c, _ in cands_c], [c.text for c in targets_c]
    runs: list[dict] = []
    ref: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["CURATE_CACHE"] = str(work / "cache")  # a shared Ray of this bench's own
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CURATE_SHARED_RAY": "1"}
        os.environ["PYTHONPATH"] = str(ROOT)  # (the pool lends its workers to runs with its own PYTHONPATH)
        t0 = time.perf_counter()
        head = rayhead.start(num_cpus=WORKERS)
        head_s = time.perf_counter() - t0
        try:
            _child(work, env)  # warm-up, not timed: a second run finds the pool's stage imports done
            for _ in range(args.rounds):
                runs.append(_child(work, env))
                ref.append(run_reference(cands, targets, 1, work, 1))
        finally:
            rayhead.stop()
    max_diff = max(abs(a - b) for r, f in zip(runs, ref) for a, b in zip(r["scores"], f["scores"]))
    identical = max_diff < 1e-12  # (float sums in another order: zip-fit's mean vs numpy's)
    ref_s = [f["seconds"] for f in ref]
    result = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "shared": True,
                          "loadavg": [round(x, 1) for x in os.getloadavg()]},
              "rounds": args.rounds, "workers": WORKERS, "pairs": len(cands) * len(targets),
              "shared_ray_start_s": round(head_s, 3), "shared_ray_pid": head["pid"],
              "scores_identical_to_reference": identical, "max_abs_diff": max_diff,
              "reference": {"package": f"zip-fit {ref[0]['version']}", "processes": os.cpu_count(),
                            "seconds": _mmm(ref_s)},
              "ours": {"run_s": _mmm([r["run_s"] for r in runs]),
                       "startup_s": _mmm([r["startup_s"] for r in runs]),
                       "shutdown_s": _mmm([r["shutdown_s"] for r in runs]),
                       "phases_s": {k: _mmm([r["phases_s"].get(k, 0.0) for r in runs]) for k in runs[0]["phases_s"]},
                       "speedup_vs_zipfit": _mmm([f / r["run_s"] for f, r in zip(ref_s, runs)]),
                       "speedup_vs_zipfit_beyond_startup": _mmm([f / (r["run_s"] - r["startup_s"])
                                                                 for f, r in zip(ref_s, runs)])},
              "per_round": [{"ours_s": round(r["run_s"], 3), "zipfit_s": round(f, 3)} for r, f in zip(runs, ref_s)]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "zipfit_ray.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "zipfit_ray.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    def f(d: dict, fmt: str = "{:.2f}") -> str:
        return " / ".join(fmt.format(d[k]) for k in ("min", "median", "max"))

    o = r["ours"]
    lines = ["# ZIP-FIT on 2 workers of the shared warm Ray against `zip-fit` on 2 processes", "",
             f"`python -m bench.zipfit_ray --rounds {r['rounds']}`. Machine: {r['machine']['cpus']} CPUs, shared with "
             f"other sessions (load average at the end: {r['machine']['loadavg']}); Python {r['machine']['python']}. "
             f"{r['pairs']:,} pairs (bench/zipfit.py's check), 8 shards; min / median / max over {r['rounds']} "
             f"alternating rounds, ours in a fresh process each time. Scores equal to zip-fit's (within 1e-12) in every round: "
             f"**{r['scores_identical_to_reference']}** (max abs diff {r['max_abs_diff']:.2g}). Starting the shared Ray "
             f"(once, not counted): {r['shared_ray_start_s']:.1f} s.", "",
             "| run | wall s | speed-up vs zip-fit (its wall / ours) | beyond start-up |", "|---|---:|---:|---:|",
             f"| {r['reference']['package']}, gzip level 1, {r['reference']['processes']} processes | "
             f"{f(r['reference']['seconds'])} | 1 | |",
             f"| `curate.run`, ray executor, {r['workers']} warm workers of the shared Ray | {f(o['run_s'])} | "
             f"**{f(o['speedup_vs_zipfit'], '{:.2f}x')}** | {f(o['speedup_vs_zipfit_beyond_startup'], '{:.2f}x')} |",
             "", "Where our wall time goes (seconds, min / median / max):", "",
             "| part | seconds |", "|---|---:|", f"| start-up (connect, borrow the warm workers) | {f(o['startup_s'])} |"]
    names = {"plan": "plan and ids (beyond start-up)", "fit": "fit", "score": "score", "decide": "decide (manifest)"}
    for k, v in o["phases_s"].items():
        lines.append(f"| {names.get(k, k)} | {f(v)} |")
    lines += [f"| shut-down (the driver disconnects) | {f(o['shutdown_s'])} |", "",
              "Per round (ours / zip-fit, s): " + ", ".join(f"{x['ours_s']:.2f} / {x['zipfit_s']:.2f}"
                                                            for x in r["per_round"]) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
