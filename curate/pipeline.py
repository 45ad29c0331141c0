"""A pipeline: stages in dependency order, then policies over their score columns."""
from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from typing import Any

import pyarrow as pa

from curate.errors import ConfigError, renamed
from curate.policy import Policy
from curate.stage import Stage


@dataclass
class Pipeline:
    stages: list[Stage]
    policies: list[Policy] = field(default_factory=list)
    id_column: str | None = None       # else ids are `<shard content id>:<row index>`
    batch_size: int = 65_536
    name: str = "pipeline"
    config: dict[str, Any] | None = None  # the config it was built from, recorded in summary.json
    materialize: bool | str = False      # write the kept rows after the run: True to <out>/curated, or to this path
    format: str | None = None            # the dataset's shard format (curate/formats.py); None: by file suffix
    data_format: InitVar[str | None] = None  # the old name of `format`
    # The ray executor's limit: seconds after which a unit with no result is presumed lost (a lost node, a stuck
    # worker) and retried; None: 10x the slowest finished unit of its map, at least 2 minutes (engine/ray.py).
    unit_timeout: float | None = None
    # The shuffles' layout (engine/shuffle.py): "flat" (a reduce reads its partition from every map output),
    # "two-level" (maps write coarse groups, split into partitions by a middle step), or "auto": two-level past
    # 10,000 flat reads (shards x partitions). Either gives the same results; only the reads differ.
    shuffle: str = "auto"

    def __post_init__(self, data_format: str | None) -> None:
        if data_format is not None:
            renamed("data_format", "format", "Pipeline")
            self.format = self.format or data_format
        names = [s.name for s in self.stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"stage names must be unique; repeated: {dupes} (give each a `name`)")
        if not self.stages:
            raise ConfigError("a pipeline needs at least one stage")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.shuffle not in ("auto", "flat", "two-level"):
            raise ConfigError(f"shuffle must be 'auto', 'flat' or 'two-level', got {self.shuffle!r}")
        if self.unit_timeout is not None and (isinstance(self.unit_timeout, bool) or not self.unit_timeout > 0):
            raise ConfigError(f"unit_timeout must be a number of seconds above 0, got {self.unit_timeout!r}")
        produced: dict[str, pa.DataType] = {}
        producer: dict[str, Stage] = {}
        for s in self.stages:
            problem = s.check_upstream({c: producer[c] for c in s.inputs if c in producer})
            if problem:
                raise ConfigError(f"stage {s.name!r}: {problem}")
            produced.update({f.name: f.type for f in s.output_schema()})
            producer.update({f.name: s for f in s.output_schema()})
        for s in self.stages:  # summed in summary.json (Stage.totals): numeric manifest columns
            for c in s.totals:
                t = produced.get(s.column(c)) if c not in s.data_outputs else None
                if t is None or not (pa.types.is_integer(t) or pa.types.is_floating(t)):
                    raise ConfigError(f"stage {s.name!r} sums {c!r} (totals), which is not one of its numeric outputs")
        pnames = [p.name for p in self.policies]
        if len(set(pnames)) != len(pnames):
            raise ConfigError(f"policy names must be unique; got {pnames} (give each a `name`)")
        for p in self.policies:
            if p.column not in produced:
                raise ConfigError(f"policy {p.name!r} reads {p.column!r}, which no stage writes; "
                                  f"stage columns: {', '.join(sorted(produced))}")
            missing = [c for c in p.columns if c not in produced]
            if missing:  # a policy's other columns (a rule per kind) must be written too
                raise ConfigError(f"policy {p.name!r} reads {', '.join(map(repr, missing))}, which no stage writes; "
                                  f"stage columns: {', '.join(sorted(produced))}")
            t = produced[p.column]
            if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
                raise ConfigError(f"policy {p.name!r} needs a numeric column; {p.column!r} is {t}")

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"no stage named {name!r}; stages: {[s.name for s in self.stages]}")
