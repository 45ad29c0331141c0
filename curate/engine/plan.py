"""Planning: what each stage reads, the keys that mark its units done, and the checks made before compute.

The stage order and every stage's inputs (dataset columns, or columns of earlier stages) are computed once
when the planner is made. Keys are pure functions of the run state: `stage_key` needs the stage's artifact
hash, so a stage is fitted (engine/run.py) before its key is asked for; the planner never fits.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from curate.dataset import Shard
from curate.engine.executor import Failure
from curate.engine.files import digest
from curate.engine.state import RunState
from curate.engine.store import read_unit
from curate.engine.units import IDS, Unit, has_repeats
from curate.errors import DataError
from curate.stage import ENGINE_COLUMNS, Stage
from curate.storage import AnyPath

ID_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer)

Columns = tuple[list[str], dict[str, list[str]]]  # (dataset columns, {upstream stage or IDS: its columns})


class Planner:
    """Columns, keys and units of one pipeline over one dataset (`state` holds what is known so far)."""

    def __init__(self, state: RunState):
        self.state = state
        self._produced: dict[str, dict[str, str]] = {}  # stage -> {column: the stage (or IDS) producing it}
        available: dict[str, str] = dict.fromkeys(ENGINE_COLUMNS, IDS)
        for s in state.pipeline.stages:
            self._produced[s.name] = dict(available)
            available.update({f.name: s.name for f in s.output_schema()})
        self._inputs = {s.name: self.split(s, s.inputs) for s in state.pipeline.stages}

    # --- columns --------------------------------------------------------------------------------
    def inputs_of(self, stage: Stage) -> Columns:
        """A stage's inputs split into dataset columns and columns of earlier stages (or the row ids)."""
        return self._inputs[stage.name]

    def split(self, stage: Stage, columns: list[str] | tuple[str, ...]) -> Columns:
        produced = self._produced[stage.name]
        data: list[str] = []
        upstream: dict[str, list[str]] = {}
        for col in columns:
            if col in produced:
                upstream.setdefault(produced[col], []).append(col)
            else:
                data.append(col)
        return data, upstream

    # --- keys -----------------------------------------------------------------------------------
    def upstream_keys(self, upstream: dict[str, list[str]]) -> dict[str, Any]:
        """What upstream outputs a unit reads depend on: each stage's key, and the id column for row ids."""
        pipeline = self.state.pipeline
        return {name: pipeline.id_column if name == IDS else self.stage_key(pipeline.stage(name))
                for name in sorted(upstream)}

    def fit_key(self, stage: Stage) -> str:
        _, upstream = self.inputs_of(stage)
        return digest("fit", stage.identity(), sorted(self.state.fps.values()), self.upstream_keys(upstream))

    def stage_key(self, stage: Stage) -> str:
        """Everything a stage's scores depend on except the shard: identity, artifact content, upstream stages.

        A fit that returns no artifact adds nothing, so such a stage recomputes only the shards that changed."""
        if stage.name not in self.state.artifact_hashes:
            raise RuntimeError(f"internal: the key of stage {stage.name!r} was asked for before its fit")
        _, upstream = self.inputs_of(stage)
        return digest("stage", stage.identity(), self.state.artifact_hashes[stage.name], self.upstream_keys(upstream))

    # --- units ----------------------------------------------------------------------------------
    def units(self, kind: str, stage: Stage, salt: Any, upstream: dict[str, list[str]] | None = None) -> list[Unit]:
        """One unit per shard not failed so far, keyed by `salt` and the shard's content."""
        state = self.state
        upstream = self.inputs_of(stage)[1] if upstream is None else upstream
        return [Unit(s, digest(kind, salt, state.fps[s.key]), state.store.unit(kind, stage.name, s.key),
                     fingerprint=state.fps[s.key], upstream={name: self._upstream_path(name, s) for name in upstream})
                for s in state.dataset.shards if s.key not in state.failed]

    def score_units(self, stage: Stage) -> list[Unit]:
        return self.units("scores", stage, self.stage_key(stage))

    def ids_units(self) -> list[Unit]:
        state = self.state
        return [Unit(s, digest("ids", state.fps[s.key], state.pipeline.id_column), state.store.ids(s.key),
                     fingerprint=state.fps[s.key]) for s in state.dataset.shards]

    def _upstream_path(self, name: str, shard: Shard) -> AnyPath:
        store = self.state.store
        return store.ids(shard.key) if name == IDS else store.scores(name, shard.key)

    # --- checks before compute ------------------------------------------------------------------
    def check_shards(self) -> None:
        """Every shard readable, with every column each stage needs in a type it takes; then fingerprints."""
        state = self.state
        problems: list[str] = []
        schemas: dict[str, pa.Schema] = {}
        for shard in state.dataset.shards:
            try:
                reader = state.dataset.open(shard)
            except DataError as e:
                problems += e.problems
                continue
            schemas[shard.key], state.rows[shard.key] = reader.schema, reader.num_rows
        for shard in state.dataset.shards:
            if shard.key in schemas:
                problems += self._check_schema(shard, schemas[shard.key])
        if problems:
            raise DataError(problems)
        state.fps.update(state.dataset.fingerprints())

    def _check_schema(self, shard: Shard, schema: pa.Schema) -> list[str]:
        problems = []
        if self.state.rows[shard.key] == 0:  # writers often give empty shards null-typed columns
            schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema])
        id_col = self.state.pipeline.id_column
        if id_col is not None:
            if id_col not in schema.names:
                problems.append(f"shard {shard.rel}: missing id column {id_col!r} (set `id_column`, or remove it "
                                f"to use <shard>:<row> ids); columns present: {', '.join(schema.names)}")
            elif not any(ok(schema.field(id_col).type) for ok in ID_TYPES):
                problems.append(f"shard {shard.rel}: id column {id_col!r} is {schema.field(id_col).type}; "
                                f"ids must be strings or integers")
        for stage in self.state.pipeline.stages:
            for col in self.inputs_of(stage)[0]:
                if col not in schema.names:
                    problems.append(f"shard {shard.rel}: missing column {col!r} needed by stage {stage.name!r}; "
                                    f"columns present: {', '.join(schema.names)}")
                    continue
                problem = stage.check_input(col, schema.field(col).type)
                if problem:
                    problems.append(f"shard {shard.rel}: column {col!r} {problem} (stage {stage.name!r})")
        return problems

    def check_ids(self, units: list[Unit], results: dict[str, dict | Failure]) -> None:
        """Null ids, ids that are not UTF-8, ids repeated within a shard and across shards: a DataError naming
        shards and rows."""
        state = self.state
        problems: list[str] = []
        for u in units:
            r = results[u.shard.key]
            if isinstance(r, Failure):
                problems.append(f"shard {u.shard.rel}: cannot read ids ({r.message})")
                continue
            state.ids[u.shard.key] = u.path
            if "null_ids" in r:
                n = r["null_ids"]
                problems.append(f"shard {u.shard.rel}: {n['count']} null id(s) in column "
                                f"{state.pipeline.id_column!r} at rows {n['rows']}")
            if "invalid_utf8_ids" in r:
                n = r["invalid_utf8_ids"]
                problems.append(f"shard {u.shard.rel}: {n['count']} id(s) in column {state.pipeline.id_column!r} "
                                f"are not UTF-8, at rows {n['rows']}; ids must be text")
            if "duplicate_ids" in r:
                d = r["duplicate_ids"]
                problems.append(f"shard {u.shard.rel}: {d['count']} id(s) repeated within the shard, "
                                f"e.g. {d['examples'][:3]}")
        if not problems:
            problems += self._cross_shard_duplicates()
        if problems:
            raise DataError(problems)

    def _cross_shard_duplicates(self) -> list[str]:
        """Ids repeated across shards (hashes first, then the ids themselves to rule out collisions)."""
        shards, ids = self.state.dataset.shards, self.state.ids
        hashes = [read_unit(ids[s.key], columns=["id_hash"]).column(0).to_numpy() for s in shards]
        if sum(len(h) for h in hashes) < 2:
            return []
        allh = np.concatenate(hashes)
        if not has_repeats(allh):  # the usual case, found with a plain sort (4x faster than the argsort below)
            return []
        sizes = [len(h) for h in hashes]
        owner = np.repeat(np.arange(len(shards)), sizes)
        first_row = np.concatenate([[0], np.cumsum(sizes)])  # position of each shard's row 0 in allh
        order = np.argsort(allh, kind="stable")
        sh = allh[order]
        problems = []
        for i in np.flatnonzero(sh[1:] == sh[:-1])[:10]:
            (sa, ra), (sb, rb) = [(owner[j], j - first_row[owner[j]]) for j in (order[i], order[i + 1])]
            ida, idb = (read_unit(ids[shards[s].key], columns=["id"]).column(0)[int(r)].as_py()
                        for s, r in ((sa, ra), (sb, rb)))
            if ida == idb:
                problems.append(f"id {ida!r} appears in shard {shards[sa].rel} (row {ra}) and shard "
                                f"{shards[sb].rel} (row {rb}); ids must be unique across the dataset")
        return problems
