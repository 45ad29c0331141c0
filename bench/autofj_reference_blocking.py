"""Blocking recall of the reference blocker (`autofj` 0.0.6's AutoFJBlocker) on every benchmark task.

Usage (inside bench/.venv-autofj): python bench/autofj_reference_blocking.py DATA_DIR OUT_JSON
Writes {task: {"recall": share of ground-truth pairs among the blocked L-R pairs, "pairs": count}}; the
output is the fixture tests/fixtures/autofj/reference_blocking.json (spec check 6).
"""
import json
import os
import sys

# This script's folder holds bench/autofj.py, which would shadow the reference package `autofj`.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import pandas as pd
from autofj.blocker.autofj_blocker import AutoFJBlocker


def main() -> None:
    data_dir, out = sys.argv[1:3]
    results = json.load(open(out)) if os.path.exists(out) else {}
    for task in sorted(os.listdir(data_dir)):
        if task in results or not os.path.exists(os.path.join(data_dir, task, "gt.csv")):
            continue
        left = pd.read_csv(os.path.join(data_dir, task, "left.csv"))
        right = pd.read_csv(os.path.join(data_dir, task, "right.csv"))
        gt = pd.read_csv(os.path.join(data_dir, task, "gt.csv"))
        blocked = AutoFJBlocker(n_jobs=1).block(left, right, "id")
        kept = set(zip(blocked["id_l"].astype(int), blocked["id_r"].astype(int)))
        truth = set(zip(gt["id_l"].astype(int), gt["id_r"].astype(int)))
        results[task] = {"recall": len(kept & truth) / len(truth), "pairs": len(kept)}
        with open(out + ".tmp", "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)
        os.replace(out + ".tmp", out)
        print(task, results[task], flush=True)


if __name__ == "__main__":
    main()
