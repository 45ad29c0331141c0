"""The engine's side of `FitContext`: a stage's fit maps and shuffles, run as checkpointed units."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from curate.dataset import Shard
from curate.engine.executor import Failure
from curate.engine.files import digest
from curate.engine.plan import Planner
from curate.engine.scheduler import Scheduler
from curate.engine.shuffle import coarse_width, grouped_schema
from curate.engine.store import read_unit
from curate.engine.units import FitMapTask, ReduceTask, SplitTask, Unit
from curate.errors import RunFailed
from curate.stage import FitContext, Shuffled, Stage
from curate.storage import is_local


class EngineFitContext(FitContext):
    """`require_scores(upstream)` scores the earlier stages a map reads (the run's one way of scoring)."""

    def __init__(self, stage: Stage, planner: Planner, scheduler: Scheduler,
                 require_scores: Callable[[dict[str, list[str]]], None]):
        self.stage, self.planner, self.scheduler, self.require_scores = stage, planner, scheduler, require_scores
        self._maps = 0
        self.reduced: list[str] = []  # the reduce outputs of this fit, relative to the run directory

    def _map_units(self, kind: str, fn: Callable, columns: list[str], group_by: str | None = None,
                   source: list[Shuffled] | None = None, key: Any = None, width: int | None = None,
                   **salt: Any) -> list[Unit]:
        stage, planner = self.stage, self.planner
        store = planner.state.store
        data, upstream = planner.split(stage, columns) if source is None else ([], {})
        self.require_scores(upstream)  # a fit may read an earlier stage's outputs
        what = stage.identity() if key is None else {"type": stage.type, "version": stage.version, "key": key}
        if width is not None:  # (the flat layout's keys stay as they were: its run directories are reused)
            salt["coarse_width"] = width
        key_salt = (what, columns, getattr(fn, "__qualname__", repr(fn)), planner.upstream_keys(upstream), salt,
                    [s.keys for s in source or []])
        units = [Unit(u.shard, u.key, store.unit(kind, f"{stage.name}{salt.get('name', '')}", u.shard.key),
                      u.fingerprint, u.upstream) for u in planner.units(kind, stage, key_salt, upstream)]
        sources = [store.root / p for s in source or [] for p in s.outputs]
        task = FitMapTask(stage, planner.state.dataset, store, fn, data, upstream, group_by=group_by,
                          sources=sources if source is not None else None, width=width)
        self._maps += 1
        phase = f"fit:{stage.name}:{salt['name'].lstrip('.')}:map" if "name" in salt else f"fit:{stage.name}:map{self._maps}"
        self._check(self.scheduler.execute(phase, task, units), "shard")
        return units

    def _check(self, results: dict, what: str) -> None:
        bad = {k: r for k, r in results.items() if isinstance(r, Failure)}
        if bad:
            listing = "\n  ".join(f"{k}: {r.message}" for k, r in bad.items())
            raise RunFailed(f"fit of stage {self.stage.name!r} failed on {len(bad)} {what}(s) (a fit needs all of "
                            f"them); fix the cause and re-run:\n  {listing}")

    def map(self, fn: Callable[[pa.Table], pa.Table], columns: list[str]) -> Iterator[pa.Table]:
        for u in self._map_units("fitmap", fn, columns):
            yield read_unit(u.path)

    def shuffle(self, fn: Callable[[pa.Table], pa.Table], columns: list[str], partitions: int,
                reduce: Callable[[pa.Table], pa.Table], name: str = "shuffle",
                source: list[Shuffled] | None = None, key: Any = None) -> Shuffled:
        stage, state = self.stage, self.planner.state
        store = state.store
        width = coarse_width(state.pipeline.shuffle, len(state.dataset.shards), partitions, not is_local(store.root))
        maps = self._map_units("shuffle", fn, columns, group_by="part", source=source, key=key, name=f".{name}",
                               partitions=partitions, width=width)
        inputs = maps if width is None else self._split(maps, name, partitions, width)
        what = stage.identity() if key is None else key
        salt = digest("reduce", what, getattr(reduce, "__qualname__", repr(reduce)), [u.key for u in inputs])
        units = []
        for p in range(partitions):
            pseudo = Shard(path="", rel=f"{stage.name}.{name}.partition-{p:05d}", size=0, mtime_ns=0)
            path = store.unit("reduce", f"{stage.name}.{name}", f"part-{p:05d}")
            units.append(Unit(pseudo, digest(salt, p), path, part=p))
        task = ReduceTask(stage, reduce, store, [u.path for u in inputs], width=width)
        self._check(self.scheduler.execute(f"fit:{stage.name}:{name}:reduce", task, units), "partition")
        outputs = [str(u.path.relative_to(store.root)) for u in units]
        self.reduced += outputs
        return Shuffled(outputs=outputs,
                        metadata=[dict(grouped_schema(u.path).metadata or {}) for u in units],
                        keys=[u.key for u in units])

    def _split(self, maps: list[Unit], name: str, partitions: int, width: int) -> list[Unit]:
        """The two-level shuffle's middle step (engine/shuffle.py): a unit per coarse group, splitting the group's
        rows from every map output by partition into one file, `shuffle/<stage>.<name>/groups/g-NNNNN.parquet`."""
        stage, store = self.stage, self.planner.state.store
        salt = digest("split", [u.key for u in maps], width)
        units = []
        for g in range(-(-partitions // width)):
            pseudo = Shard(path="", rel=f"{stage.name}.{name}.group-{g:05d}", size=0, mtime_ns=0)
            path = store.unit("shuffle", f"{stage.name}.{name}", f"groups/g-{g:05d}")
            units.append(Unit(pseudo, digest(salt, g), path, part=g))
        task = SplitTask(stage, store, [u.path for u in maps])
        self._check(self.scheduler.execute(f"fit:{stage.name}:{name}:split", task, units), "coarse group")
        return units
