"""Small datasets and stages that tests build (no downloads)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import curate

WORDS = ("a dog cat sits on the mat red blue car sunset over sea beach old man woman child plays with ball "
         "green tree house in snow mountain river boat bird flies sky city street night lights").split()


def captions(n: int, seed: int = 0) -> list[str]:
    """Deterministic short captions over a small vocabulary (a Zipf-ish mix of common and rare words)."""
    import random

    rng = random.Random(seed)
    weights = [1.0 / (i + 1) for i in range(len(WORDS))]
    return [" ".join(rng.choices(WORDS, weights, k=rng.randint(2, 12))) for _ in range(n)]


def write_shards(folder: Path, table: pa.Table, n_shards: int) -> Path:
    """Split `table` into n contiguous shards part-00000.parquet ..."""
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-table.num_rows // n_shards) if table.num_rows else 0
    for i in range(n_shards):
        pq.write_table(table.slice(i * per, per), folder / f"part-{i:05d}.parquet")
    return folder


def caption_table(n: int, seed: int = 0) -> pa.Table:
    return pa.table({"id": [f"row-{i:06d}" for i in range(n)], "caption": captions(n, seed)})


@curate.stage(inputs={"caption": pa.string()}, outputs={"len": pa.int32()})
def caption_length(batch: pa.Table) -> dict:
    """Characters in the caption; null captions are errors."""
    col = batch.column("caption")
    return {"len": pc.utf8_length(col),
            "error": pc.if_else(pc.is_null(col), pa.scalar("bad_caption"), pa.scalar(None, pa.string()))}


@curate.stage(inputs=["caption"], outputs={"len": pa.int32()}, name="slow_length")
def slow_length(batch: pa.Table) -> dict:
    """Like caption_length, but slow, so that a test can kill a run half way."""
    time.sleep(float(os.environ.get("CURATE_TEST_SLEEP", "0.3")))
    return {"len": pc.utf8_length(batch.column("caption"))}


@curate.stage(inputs=["caption"], outputs={"len": pa.int32()}, name="flaky")
def flaky(batch: pa.Table) -> dict:
    """Fails on captions containing 'boom' unless CURATE_TEST_FIXED is set."""
    if not os.environ.get("CURATE_TEST_FIXED") and any("boom" in (c or "") for c in batch.column("caption").to_pylist()):
        raise RuntimeError("boom in this shard")
    return {"len": pc.utf8_length(batch.column("caption"))}


def _first_call(what: str) -> bool:
    """True the first time in a test (the marker file CURATE_TEST_MARKER does not exist yet), which it creates."""
    marker = Path(os.environ["CURATE_TEST_MARKER"])
    if marker.exists():
        return False
    marker.write_text(what)
    return True


@curate.stage(inputs=["caption"], outputs={"len": pa.int32()}, name="dies_once")
def dies_once(batch: pa.Table) -> dict:
    """Kills its own worker process the first time it runs (marker file), like an OOM-killed worker."""
    if _first_call("died"):
        os._exit(1)
    return {"len": pc.utf8_length(batch.column("caption"))}


def spherical_groups(seed: int = 0, injected: int = 400, d: int = 16):
    """The synthetic set of docs/methods/semdedup.md: groups A and B tight (noise 0.03, 3,000 rows each, nearby
    centres), M medium (0.06, 2,000), C diffuse (0.30, 1,000), plus `injected` near-duplicate pairs (a copy
    of a row with 1e-3 noise). Returns (ids, vectors float32, group label per row, pairs as index tuples)."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def unit(v):
        return v / np.linalg.norm(v)

    a = unit(rng.standard_normal(d))
    centres = [a, unit(a + 0.35 * unit(rng.standard_normal(d))), unit(rng.standard_normal(d)), unit(rng.standard_normal(d))]
    spec = [("A", 0.03, 3000), ("B", 0.03, 3000), ("M", 0.06, 2000), ("C", 0.30, 1000)]
    xs, labels = [], []
    for (name, noise, n), c in zip(spec, centres):
        xs.append(c + noise * rng.standard_normal((n, d)))
        labels += [name] * n
    x = np.concatenate(xs)
    src = rng.choice(len(x), injected, replace=False)
    x = np.concatenate([x, x[src] + 1e-3 * rng.standard_normal((injected, d))]).astype(np.float32)
    labels += [labels[i] for i in src]
    pairs = [(int(s), len(x) - injected + i) for i, s in enumerate(src)]
    ids = [f"v{i:05d}" for i in range(len(x))]
    return ids, x, np.array(labels), pairs


def vector_table(ids, x, column: str = "emb") -> pa.Table:
    import numpy as np

    flat = pa.array(np.asarray(x, np.float32).reshape(-1), pa.float32())
    return pa.table({"id": pa.array(ids, pa.string()), column: pa.FixedSizeListArray.from_arrays(flat, x.shape[1])})


def shuffled_shards(folder: Path, table: pa.Table, n_shards: int, seed: int) -> Path:
    """The rows in a random order, cut into n shards: the same data, sharded another way."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(table.num_rows)
    return write_shards(folder, table.take(pa.array(order)), n_shards)


def nan_loss(batch: pa.Table):
    """A broken loss callable for the sensitivity stage: NaN for every representative."""
    import numpy as np

    return np.full(batch.num_rows, np.nan)


@curate.stage(inputs=["caption"], outputs={"len": pa.int32()}, name="hangs_once")
def hangs_once(batch: pa.Table) -> dict:
    """Hangs (10 minutes) the first time it runs (marker file), like a worker stuck on a dead mount."""
    if _first_call("hung"):
        time.sleep(600)
    return {"len": pc.utf8_length(batch.column("caption"))}


@curate.stage(inputs=["caption"], outputs={"node": pa.string()}, name="gpu_node", gpus=1)
def gpu_node(batch: pa.Table) -> dict:
    """The Ray node a GPU stage's worker runs on (to check where GPU work lands on a mixed cluster)."""
    import ray

    return {"node": pa.array([ray.get_runtime_context().get_node_id()] * batch.num_rows)}
