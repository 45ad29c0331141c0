"""Run the reference package `autofj` 0.0.6 on benchmark tasks (bench-only venv, never a project dependency).

Usage (inside bench/.venv-autofj): python bench/autofj_reference.py DATA_DIR OUT_JSON TASK [TASK ...]
Each task runs in its own temporary working directory (the package writes ./autofj_temp). Writes, per
task: predicted (id_l, id_r) pairs, the selected configurations and the wall time.
"""
import json
import os
import sys
import tempfile
import time

# This script's folder holds bench/autofj.py, which would shadow the reference package `autofj`.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import pandas as pd
from autofj import AutoFJ
from autofj.blocker.autofj_blocker import AutoFJBlocker


def run_task(data_dir: str, task: str) -> dict:
    left = pd.read_csv(os.path.join(data_dir, task, "left.csv"))
    right = pd.read_csv(os.path.join(data_dir, task, "right.csv"))
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            t0 = time.perf_counter()
            fj = AutoFJ(precision_target=0.9, verbose=False)
            result = fj.join(left, right, id_column="id")
            seconds = time.perf_counter() - t0
        finally:
            os.chdir(cwd)
    pairs = sorted((int(a), int(b)) for a, b in zip(result["id_l"], result["id_r"]))
    # The reference blocker alone (timed apart from the join): share of ground-truth pairs it keeps.
    gt = pd.read_csv(os.path.join(data_dir, task, "gt.csv"))
    t0 = time.perf_counter()
    blocked = AutoFJBlocker().block(left.rename(columns={"id": "bid"}), right.rename(columns={"id": "bid"}), "bid")
    block_seconds = time.perf_counter() - t0
    kept = set(zip(blocked["bid_l"].astype(int), blocked["bid_r"].astype(int)))
    gt_pairs = set(zip(gt["id_l"].astype(int), gt["id_r"].astype(int)))
    block_recall = len(kept & gt_pairs) / len(gt_pairs)
    configs = [[f, float(t)] for f, t in (fj.selected_join_configs or [])]
    return {"task": task, "seconds": seconds, "pairs": pairs, "configs": configs,
            "blocking_recall": block_recall, "blocking_seconds": block_seconds, "blocked_pairs": len(kept),
            "column_weights": {k: float(v) for k, v in (fj.selected_column_weights or {}).items()}}


def main() -> None:
    data_dir, out, *tasks = sys.argv[1:]
    results = {}
    if os.path.exists(out):
        with open(out) as f:
            results = json.load(f)
    for task in tasks:
        if task in results:
            continue
        results[task] = run_task(data_dir, task)
        with open(out + ".tmp", "w") as f:
            json.dump(results, f)
        os.replace(out + ".tmp", out)
        print(f"{task}: {len(results[task]['pairs'])} pairs in {results[task]['seconds']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
