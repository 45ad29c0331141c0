"""`curate join L R --on col ...`: a one-stage pipeline around the `autofj` stage."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from curate.join.stage import AutoFJ, read_table


def right_dataset(right: str | Path, out: Path, shards: int) -> Path:
    """R as Parquet shards: a CSV is split into `shards` files under `<out>/input`; Parquet is used as is."""
    right = Path(right)
    if right.suffix.lower() != ".csv":
        return right
    table = read_table(right)
    folder = out / "input"
    folder.mkdir(parents=True, exist_ok=True)
    per = max(1, -(-table.num_rows // max(shards, 1)))
    for i, start in enumerate(range(0, max(table.num_rows, 1), per)):
        pq.write_table(table.slice(start, per), folder / f"part-{i:05d}.parquet")
    return folder


def join(left: str | Path, right: str | Path, on: list[str], out: str | Path, precision: float = 0.9,
         left_id: str = "id", right_id: str = "id", executor: str = "local", shards: int = 4,
         **stage_params: Any) -> dict[str, Any]:
    """Fit and apply Auto-FuzzyJoin of R against L; the manifest and summary.json go to `out`."""
    import curate

    out = Path(out)
    data = right_dataset(right, out, shards)
    stage = AutoFJ(reference=str(left), on=on, reference_id=left_id, precision_target=precision, **stage_params)
    pipeline = curate.Pipeline([stage], [], id_column=right_id, name="autofj-join")
    return curate.run(pipeline, data, out, executor=executor)
