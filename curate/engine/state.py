"""What a run knows as it goes: plain data filled by planning, fitting and scoring, read by `decide`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from curate.dataset import Dataset, Shard
from curate.engine.lease import Lease
from curate.engine.store import Store
from curate.pipeline import Pipeline
from curate.storage import AnyPath


@dataclass
class RunState:
    """One pipeline over one dataset into one run directory: its inputs, the units done, what failed."""

    pipeline: Pipeline
    dataset: Dataset
    store: Store
    lease: Lease
    executor_name: str
    fps: dict[str, str] = field(default_factory=dict)                     # shard key -> content fingerprint
    rows: dict[str, int] = field(default_factory=dict)                    # shard key -> rows
    ids: dict[str, AnyPath] = field(default_factory=dict)                 # shard key -> its ids unit
    artifacts: dict[str, tuple[str | None, pa.Table | None]] = field(default_factory=dict)  # stage -> (fit key, artifact)
    artifact_hashes: dict[str, str | None] = field(default_factory=dict)  # stage -> content hash of its artifact file
    failed: dict[str, dict[str, str]] = field(default_factory=dict)       # shard key -> {stage, error, traceback}
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)       # phase name -> timing and reuse counts

    def ok_shards(self) -> list[Shard]:
        return [s for s in self.dataset.shards if s.key not in self.failed]

    def score_path(self, stage: Any, shard: Shard) -> AnyPath:
        return self.store.scores(stage.name, shard.key)
