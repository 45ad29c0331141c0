"""ZIP-FIT through the engine (a Ray per run, the shared warm Ray, the local executor) against `zip-fit` 1.0.9
on 2 processes and against the compression floor, alternating.

    python -m bench.ray_startup [--rounds 5] [--modes cold,warm,local] [--out DIR]

The check of bench/zipfit.py (stdlib `email` experiment, 1,194 candidates x 50 targets = 59,700 pairs, 8 shards,
gzip level 1). A shared Ray (`curate ray start`, engine/rayhead.py) is started once in a cache folder of this
bench's own, and a first, untimed run on it warms what a second run finds warm (the pool workers' imports of
the stage module). Then each round runs, alternating, each engine run in a fresh Python process (as a second
`curate run` on the machine is: importing curate and Ray included, timed apart as `process_s`):
- `cold`: the ray executor, 2 workers, a Ray of the run's own (CURATE_SHARED_RAY=0, as without `curate ray start`);
- `warm`: the ray executor, 2 workers borrowed from the shared Ray;
- `local`: the local executor, 1 process;
- the reference `zip-fit` on 2 processes (bench/.venv-zipfit, as bench/zipfit.py; its own timing of
  `rank_sequences_by_alignment`);
- the floor: the same 59,700 `zlib.compress(x + y, 1)` calls (what kernels/compress.py's `alignment` runs per
  pair) split by bytes over 2 worker processes started (and handed the texts) before the timing; no Ray, no
  engine. zip-fit's wall / the floor's wall is the best speed-up over zip-fit that any implementation giving
  the same scores could reach on these cores. The floor's sizes are turned into scores afterwards (not timed)
  and checked against zip-fit's like ours. Its processes raise glibc's heap trim threshold, as importing numpy
  does in every other process here: without it each call page-faults zlib's freed state back in (half the speed).

Reported: min / median / max of `curate.run`'s wall time and of its parts (the `phase` hook: start-up =
`ray_startup`, plan and ids, fit, score, decide, shut-down = after the last phase), and the speed-up zip-fit's
wall / ours per round (above 1: faster than zip-fit). Scores are checked against the reference's (within 1e-12),
every round. Writes ray_startup.json and .md (bench/results unless --out).

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
import ctypes
import json
import multiprocessing as mp
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
ROOT = HERE.parent
WORKERS = 2
LEVEL = 1
MODES = ("cold", "warm", "local")
M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter


def one(mode: str, work: Path) -> dict:
    """One run in this (fresh) process: `curate.run`'s wall time and its parts, and the scores in candidate order."""
    t00 = time.perf_counter()
    import pyarrow as pa

    import curate
    from curate.data.stdlib_code import email_experiment
    from curate.methods.zipfit.stage import ZipFit
    from testkit.helpers import write_shards

    targets_c, cands_c = email_experiment(0)
    data = work / "data"
    if not data.exists():
        write_shards(data, pa.table({"id": [c.id for c, _ in cands_c], "text": [c.text for c, _ in cands_c]}), 8)
    p = curate.Pipeline([ZipFit(target=[c.text for c in targets_c], level=LEVEL)],
                        [curate.KeepFraction("zipfit.score", 0.1)], id_column="id")
    out = work / f"run-{mode}-{time.time_ns()}"
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
    s = curate.run(p, data, out, executor="local" if mode == "local" else "ray",
                   workers=None if mode == "local" else WORKERS, progress=curate.Progress(enabled=False), phase=clock)
    t1 = time.perf_counter()
    startup = s["phases"].get("ray_startup", {}).get("seconds", 0.0)
    phases["plan"] = phases.get("plan", 0.0) - startup  # the executor starts at the first units (the ids, in `plan`)
    m = curate.load_manifest(out)
    by_id = dict(zip(m.column("id").to_pylist(), m.column("zipfit.score").to_pylist()))
    return {"run_s": t1 - t0, "process_s": t1 - t00, "startup_s": startup, "shutdown_s": t1 - last[0],
            "phases_s": {k: round(v, 4) for k, v in phases.items()},
            "scores": [by_id[c.id] for c, _ in cands_c]}


def _child(mode: str, work: Path, env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.ray_startup", "--one", mode, str(work)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise SystemExit(f"the {mode} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the compression floor ----------------------------------------------------------------------------------
def _floor_worker(conn, cands: list[bytes], targets: list[bytes]) -> None:
    """A pre-started process: on (lo, hi), compress x + y for candidates lo..hi-1 and every target; send the sizes
    and its own seconds (the split's balance)."""
    # glibc gives the heap's top back to the OS each time a call frees zlib's state, and page-faults it in again on
    # the next: in a bare process the 59,700 calls took 3.9 s, 1.9 s with the trim threshold raised, as fast as in
    # a process that has imported numpy (ours and zip-fit's have). The floor is not to pay what they do not.
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_TRIM_THRESHOLD, 64 << 20)
    except OSError:  # (not glibc)
        pass
    conn.send("ready")
    while (job := conn.recv()) is not None:
        lo, hi = job
        t0 = time.perf_counter()
        sizes = [len(zlib.compress(x + y, LEVEL)) for x in cands[lo:hi] for y in targets]
        conn.send((sizes, time.perf_counter() - t0))


class Floor:
    """WORKERS processes holding the texts, each given a contiguous half of the candidates (by bytes compressed)."""

    def __init__(self, cands: list[bytes], targets: list[bytes]):
        ctx = mp.get_context("spawn")
        self.conns, self.procs = [], []
        for _ in range(WORKERS):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_floor_worker, args=(child, cands, targets), daemon=True)
            p.start()
            self.conns.append(parent)
            self.procs.append(p)
        for c in self.conns:
            assert c.recv() == "ready"
        ty = sum(len(y) for y in targets)
        cost = [len(x) * len(targets) + ty for x in cands]  # bytes fed to DEFLATE per candidate
        total, acc, self.bounds = sum(cost), 0, [0]
        for i, c in enumerate(cost):
            acc += c
            if len(self.bounds) < WORKERS and acc >= total * len(self.bounds) / WORKERS:
                self.bounds.append(i + 1)
        self.bounds.append(len(cands))

    def run(self) -> tuple[float, list[int], list[float]]:
        t0 = time.perf_counter()
        for c, lo, hi in zip(self.conns, self.bounds, self.bounds[1:]):
            c.send((lo, hi))
        got = [c.recv() for c in self.conns]
        return time.perf_counter() - t0, [s for sizes, _ in got for s in sizes], [w for _, w in got]

    def close(self) -> None:
        for c in self.conns:
            c.send(None)
        for p in self.procs:
            p.join(timeout=10)


def floor_scores(cands: list[bytes], targets: list[bytes], sizes: list[int]) -> list[float]:
    """The ZIP-FIT scores from the floor's pair sizes, as kernels/compress.py's `alignment` forms them."""
    import numpy as np

    from kernels.compress import GZIP_FRAMING, gzip_sizes, ncd

    c_x, c_y = gzip_sizes(cands, LEVEL), gzip_sizes(targets, LEVEL)
    c_xy = np.asarray(sizes, dtype=np.float64).reshape(len(cands), len(targets)) + GZIP_FRAMING
    return [1.0 - ncd(c_x[i], c_y, c_xy[i]).mean() for i in range(len(cands))]


def _mmm(xs: list[float]) -> dict:
    return {"min": round(min(xs), 3), "median": round(statistics.median(xs), 3), "max": round(max(xs), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--modes", default=",".join(MODES), help="engine runs per round, of cold,warm,local")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for ray_startup.json and .md")
    ap.add_argument("--one", nargs=2, metavar=("MODE", "WORK"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], Path(args.one[1]))), flush=True)
        os._exit(0)  # (a Ray thread can abort the interpreter's own exit after a run: not what is measured)
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - set(MODES):
        ap.error(f"--modes: a comma-separated subset of {','.join(MODES)}")
    from bench.zipfit import run_reference
    from curate.data.stdlib_code import email_experiment
    from curate.engine import rayhead

    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        os.environ.pop("PYTHONDONTWRITEBYTECODE")
        os.environ.setdefault("PYTHONPYCACHEPREFIX", str(Path.home() / ".cache" / "curate-bench-pycache"))
    targets_c, cands_c = email_experiment(0)
    cands, targets = [c.text for c, _ in cands_c], [c.text for c in targets_c]
    cap = 8192  # ZipFit's max_bytes (none of these texts is longer: checked below)
    cand_b, targ_b = [t.encode() for t in cands], [t.encode() for t in targets]
    if max(map(len, cand_b + targ_b)) > cap:
        raise SystemExit("a text is longer than ZipFit's max_bytes: the floor would compress other bytes")
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    ref: list[dict] = []
    floor: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["CURATE_CACHE"] = str(work / "cache")  # a shared Ray of this bench's own
        os.environ["PYTHONPATH"] = str(ROOT)  # (the pool lends its workers to runs with its own PYTHONPATH)
        env = {**os.environ}
        head_s, head_pid = None, None
        if "warm" in modes:
            t0 = time.perf_counter()
            head = rayhead.start(num_cpus=WORKERS)
            head_s, head_pid = time.perf_counter() - t0, head["pid"]
        pool = Floor(cand_b, targ_b)
        try:
            if "warm" in modes:
                _child("warm", work, {**env, "CURATE_SHARED_RAY": "1"})  # not timed: a second run finds the pool warm
            for _ in range(args.rounds):
                for m in modes:
                    runs[m].append(_child(m, work, {**env, "CURATE_SHARED_RAY": "0" if m == "cold" else "1"}))
                ref.append(run_reference(cands, targets, LEVEL, work, 1))
                seconds, sizes, each = pool.run()
                floor.append({"run_s": seconds, "worker_s": each, "scores": floor_scores(cand_b, targ_b, sizes)})
        finally:
            pool.close()
            if "warm" in modes:
                rayhead.stop()
    diffs = {m: max(abs(a - b) for r, f in zip(rs, ref) for a, b in zip(r["scores"], f["scores"]))
             for m, rs in {**runs, "floor": floor}.items()}
    ref_s = [f["seconds"] for f in ref]
    result = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "shared": True,
                          "loadavg": [round(x, 1) for x in os.getloadavg()]},
              "rounds": args.rounds, "modes": modes, "workers": WORKERS, "pairs": len(cands) * len(targets),
              "shared_ray_start_s": None if head_s is None else round(head_s, 3), "shared_ray_pid": head_pid,
              # (float sums in another order: zip-fit's mean vs numpy's)
              "scores_identical_to_reference": all(d < 1e-12 for d in diffs.values()),
              "max_abs_diff": {m: d for m, d in diffs.items()},
              "reference": {"package": f"zip-fit {ref[0]['version']}", "processes": os.cpu_count(),
                            "seconds": _mmm(ref_s)},
              "floor": {"processes": WORKERS, "run_s": _mmm([f["run_s"] for f in floor]),
                        "worker_s": [[round(w, 3) for w in f["worker_s"]] for f in floor],
                        "speedup_vs_zipfit": _mmm([z / f["run_s"] for z, f in zip(ref_s, floor)])},
              "summary": {}, "per_round": []}
    for m, rs in runs.items():
        result["summary"][m] = {
            "run_s": _mmm([r["run_s"] for r in rs]), "process_s": _mmm([r["process_s"] for r in rs]),
            "startup_s": _mmm([r["startup_s"] for r in rs]), "shutdown_s": _mmm([r["shutdown_s"] for r in rs]),
            "phases_s": {k: _mmm([r["phases_s"].get(k, 0.0) for r in rs]) for k in rs[0]["phases_s"]},
            "speedup_vs_zipfit": _mmm([z / r["run_s"] for z, r in zip(ref_s, rs)]),
            "speedup_vs_zipfit_beyond_startup": _mmm([z / (r["run_s"] - r["startup_s"]) for z, r in zip(ref_s, rs)]),
            "share_of_floor_speed": _mmm([f["run_s"] / r["run_s"] for f, r in zip(floor, rs)])}
    for i, z in enumerate(ref_s):
        result["per_round"].append({"zipfit_s": round(z, 3), "floor_s": round(floor[i]["run_s"], 3),
                                    **{f"{m}_s": round(runs[m][i]["run_s"], 3) for m in modes}})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray_startup.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "ray_startup.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    def f(d: dict, fmt: str = "{:.2f}") -> str:
        return " / ".join(fmt.format(d[k]) for k in ("min", "median", "max"))

    s, x = r["summary"], "{:.2f}x"
    cmd = f"python -m bench.ray_startup --rounds {r['rounds']}" + (
        "" if tuple(r["modes"]) == MODES else f" --modes {','.join(r['modes'])}")
    started = ("" if r["shared_ray_start_s"] is None else
               f" Starting the shared Ray (once, not counted): {r['shared_ray_start_s']:.1f} s.")
    lines = ["# ZIP-FIT through the engine (a Ray per run, the shared Ray, local) against `zip-fit` and the "
             "compression floor, 2 processes", "",
             f"`{cmd}`. Machine: {r['machine']['cpus']} CPUs, shared with other sessions (load average at the "
             f"end: {r['machine']['loadavg']}); Python {r['machine']['python']}. {r['pairs']:,} pairs "
             f"(bench/zipfit.py's check), 8 shards; min / median / max over {r['rounds']} alternating rounds, each "
             f"engine run in a fresh process. Scores equal to zip-fit's (within 1e-12) in every round and run: "
             f"**{r['scores_identical_to_reference']}** (max abs diff "
             f"{max(r['max_abs_diff'].values()):.2g}).{started}", "",
             "| run | wall s | speed-up vs zip-fit (its wall / ours) | beyond start-up | share of the floor's speed |",
             "|---|---:|---:|---:|---:|",
             f"| {r['reference']['package']}, gzip level 1, {r['reference']['processes']} processes | "
             f"{f(r['reference']['seconds'])} | 1 | | |",
             f"| floor: {r['pairs']:,} `zlib.compress(x + y, 1)` on {r['floor']['processes']} pre-started processes "
             f"(no Ray, no engine) | {f(r['floor']['run_s'])} | **{f(r['floor']['speedup_vs_zipfit'], x)}** | | 1 |"]
    names = {"cold": f"`curate.run`, ray executor, {r['workers']} workers, a Ray of its own (default)",
             "warm": f"`curate.run`, ray executor, {r['workers']} warm workers of the shared Ray (`curate ray start`)",
             "local": "`curate.run`, local executor, 1 process"}
    for m in r["modes"]:
        o = s[m]
        lines.append(f"| {names[m]} | {f(o['run_s'])} | **{f(o['speedup_vs_zipfit'], x)}** | "
                     f"{f(o['speedup_vs_zipfit_beyond_startup'], x)} | {f(o['share_of_floor_speed'])} |")
    parts = {"plan": "plan and ids (beyond start-up)", "fit": "fit", "score": "score", "decide": "decide (manifest)"}
    lines += ["", "Where our wall time goes (seconds, min / median / max; the process column adds importing "
              "curate and Ray in the fresh process):", "",
              "| part | " + " | ".join(m for m in r["modes"]) + " |", "|---|" + "---:|" * len(r["modes"]),
              "| process (imports + run) | " + " | ".join(f(s[m]["process_s"]) for m in r["modes"]) + " |",
              "| start-up (start or connect to Ray, start or borrow the workers) | "
              + " | ".join(f(s[m]["startup_s"]) for m in r["modes"]) + " |"]
    for k in s[r["modes"][0]]["phases_s"]:
        lines.append(f"| {parts.get(k, k)} | " + " | ".join(f(s[m]["phases_s"][k]) if k in s[m]["phases_s"] else ""
                                                           for m in r["modes"]) + " |")
    lines += ["| shut-down (a Ray of the run's own stops; from the shared one the driver disconnects) | "
              + " | ".join(f(s[m]["shutdown_s"]) for m in r["modes"]) + " |", "",
              "Speed-up: zip-fit's wall time over ours, same round (above 1: faster than zip-fit); the floor's row is "
              "the most any implementation giving the same scores could reach on these cores. Share of the floor's "
              "speed: the floor's wall over ours, same round (1 would be no overhead beyond DEFLATE itself). The "
              "floor's two processes take contiguous halves of the candidates by bytes compressed; their own "
              "seconds per round (the split's balance): " + "; ".join(" / ".join(f"{w:.2f}" for w in ws)
                                                                for ws in r["floor"]["worker_s"]) + ".", "",
              "Per round (s): " + "; ".join(", ".join(f"{k[:-2]} {v:.2f}" for k, v in p.items())
                                           for p in r["per_round"]) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
