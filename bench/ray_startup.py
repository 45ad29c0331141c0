"""Ray's fixed cost: a run that starts its own Ray against a run on the shared local Ray (`curate ray start`).

    python -m bench.ray_startup [--rounds 3]

Each run is a fresh Python process (as a second `curate run` on the machine is: importing Ray and curate
included), running the ZIP-FIT check of bench/zipfit.py (1,194 candidates x 50 targets, 8 shards) through the
engine with the ray executor and 2 workers. Per round, alternating: `cold` (CURATE_SHARED_RAY=0: the run starts
and shuts down a Ray of its own, as without `curate ray start`), `warm` (the shared Ray, started once before
the first round and stopped after the last), `local` (the local executor) and the reference `zip-fit` 1.0.9 on
2 processes (bench/.venv-zipfit, as bench/zipfit.py). Reported: min/median/max of the run's wall time, its
`ray_startup` phase (connecting or starting Ray, plus starting the workers), and the speed-up over zip-fit
(its wall time / ours: above 1 is faster). Writes bench/results/ray_startup.json and .md.
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


def one(mode: str, work: Path) -> dict:
    """One run in this (fresh) process: wall time of `curate.run`, and its start-up phase."""
    t0 = time.perf_counter()
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
    out = work / f"run-{mode}-{time.time_ns()}"
    t1 = time.perf_counter()
    s = curate.run(p, data, out, executor="local" if mode == "local" else "ray",
                   workers=None if mode == "local" else 2)
    t2 = time.perf_counter()
    kept = curate.load_manifest(out).column("zipfit.score").to_pylist()
    phases = {k: v["seconds"] for k, v in s["phases"].items() if k in ("ids", "fit:zipfit", "score:zipfit")}
    return {"run_s": t2 - t1, "process_s": t2 - t0, "startup_s": s["phases"].get("ray_startup", {}).get("seconds", 0.0),
            "phases_s": phases, "score_sum": round(sum(kept), 9)}


def _child(mode: str, work: Path, env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.ray_startup", "--one", mode, str(work)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise SystemExit(f"{mode} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _reference(work: Path) -> float:
    from bench.zipfit import run_reference
    from curate.data.stdlib_code import email_experiment

    targets_c, cands_c = email_experiment(0)
    ref = run_reference([c.text for c, _ in cands_c], [c.text for c in targets_c], 1, work, 1)
    return ref["seconds"]


def _mmm(xs: list[float]) -> dict:
    return {"min": round(min(xs), 3), "median": round(statistics.median(xs), 3), "max": round(max(xs), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--one", nargs=2, metavar=("MODE", "WORK"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], Path(args.one[1]))), flush=True)
        os._exit(0)  # (a Ray thread can abort the interpreter's own exit after a run: not what is measured)
    from curate.engine import rayhead

    runs: dict[str, list[dict]] = {"cold": [], "warm": [], "local": []}
    ref: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CURATE_CACHE": str(work / "cache")}
        os.environ["CURATE_CACHE"] = env["CURATE_CACHE"]
        t0 = time.perf_counter()
        head = rayhead.start(num_cpus=os.cpu_count())
        head_s = time.perf_counter() - t0
        try:
            for _ in range(args.rounds):
                runs["cold"].append(_child("cold", work, {**env, "CURATE_SHARED_RAY": "0"}))
                runs["warm"].append(_child("warm", work, {**env, "CURATE_SHARED_RAY": "1"}))
                runs["local"].append(_child("local", work, env))
                ref.append(_reference(work))
        finally:
            rayhead.stop()
    sums = {r["score_sum"] for rs in runs.values() for r in rs}
    result = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "shared": True,
                          "loadavg": [round(x, 1) for x in os.getloadavg()]},
              "rounds": args.rounds, "shared_ray_start_s": round(head_s, 3), "shared_ray_pid": head["pid"],
              "identical_scores": len(sums) == 1, "reference_s": _mmm(ref), "runs": runs, "summary": {}}
    for mode, rs in runs.items():
        result["summary"][mode] = {
            "run_s": _mmm([r["run_s"] for r in rs]), "process_s": _mmm([r["process_s"] for r in rs]),
            "startup_s": _mmm([r["startup_s"] for r in rs]),
            "score_phase_s": _mmm([r["phases_s"].get("score:zipfit", 0.0) for r in rs]),
            "speedup_vs_zipfit": _mmm([f / r["run_s"] for f, r in zip(ref, rs)]),
            "speedup_vs_zipfit_beyond_startup": _mmm([f / (r["run_s"] - r["startup_s"]) for f, r in zip(ref, rs)])}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ray_startup.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "ray_startup.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    def f(d: dict, fmt: str = "{:.2f}") -> str:
        return " / ".join(fmt.format(d[k]) for k in ("min", "median", "max"))

    s = r["summary"]
    lines = ["# Ray's fixed cost: a Ray per run against the shared local Ray (`curate ray start`)", "",
             f"`python -m bench.ray_startup --rounds {r['rounds']}`. Machine: {r['machine']['cpus']} CPUs, shared with "
             f"other work; Python {r['machine']['python']}. Each run is a fresh process running the ZIP-FIT check "
             f"(bench/zipfit.py: 59,700 pairs, 8 shards) through `curate.run`; min / median / max over "
             f"{r['rounds']} alternating rounds of cold, warm, local and the reference. Scores identical across "
             f"every run: {r['identical_scores']}. Starting the shared Ray itself (once): {r['shared_ray_start_s']:.2f} s.",
             "", f"Reference: `zip-fit` 1.0.9, gzip level 1, 2 processes: {f(r['reference_s'])} s.", "",
             "| run | `curate.run` wall (s) | start-up phase (s) | score phase (s) | speed-up vs zip-fit (wall) | "
             "speed-up vs zip-fit beyond start-up |", "|---|---:|---:|---:|---:|---:|"]
    names = {"cold": "ray, 2 workers, its own Ray (default)", "warm": "ray, 2 workers, shared Ray (`curate ray start`)",
             "local": "local executor, 1 process"}
    for mode, name in names.items():
        m = s[mode]
        lines.append(f"| {name} | {f(m['run_s'])} | {f(m['startup_s'])} | {f(m['score_phase_s'])} | {f(m['speedup_vs_zipfit'], '{:.2f}x')} | "
                     f"{f(m['speedup_vs_zipfit_beyond_startup'], '{:.2f}x')} |")
    lines += ["", "Start-up phase: `ray_startup` in the summary (importing Ray, starting or connecting to it, starting "
              "the workers, who import the run's stage modules). The wall time includes it and the shut-down "
              "(`ray.shutdown()`: a Ray of the run's own stops; from the shared one the driver only disconnects). "
              "Speed-up: zip-fit's wall time over ours, same round (above 1: faster than zip-fit). "
              f"Load average at the end: {r['machine'].get('loadavg', '?')} (other sessions shared the 2 cores).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
