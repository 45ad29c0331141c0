"""The Stage contract: what a scoring step declares and the three calls the engine makes.

A stage scores; it never drops rows. `score` returns the new columns for exactly the rows it was
given, in the same order. A row it cannot score gets nulls and a message in `<name>.error`.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from curate.params import Params
from curate.presentation import Presenter

# Columns the engine provides to any stage or fit map that lists them: the row's id (string), its
# 64-bit hash (the policies' tie-break input) and its position in the shard.
ROW_ID = "_curate.id"
ROW_HASH = "_curate.id_hash"
ROW_INDEX = "_curate.row"
ENGINE_COLUMNS = (ROW_ID, ROW_HASH, ROW_INDEX)


@dataclass(frozen=True)
class Shuffled:
    """What `FitContext.shuffle` returns: the reduce outputs (opaque names, in partition order) and
    the schema metadata each reduce attached to its table. Store `outputs` in the artifact and hand
    them to `ShardInfo.read_shuffled` at scoring time."""

    outputs: list[str]
    metadata: list[dict[bytes, bytes]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # the reduce units' keys: what a later shuffle of these depends on


@dataclass(frozen=True)
class ShardInfo:
    """The shard being scored, given to `Stage.begin_shard` (the engine provides `read_shuffled`)."""

    key: str
    rel: str
    fingerprint: str
    rows: int

    def read_shuffled(self, outputs: list[str], columns: list[str] | None = None) -> pa.Table:
        """This shard's rows from a shuffle's reduce outputs, in row order, checked complete."""
        raise NotImplementedError("read_shuffled needs the engine (run the stage through curate.run)")


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs; the executor decides where it runs."""

    cpus: float = 1.0
    gpus: float = 0.0
    # True: the GPUs are wanted where there are some (`device: auto`), and a machine without one is no
    # surprise to warn about; False (an explicit `gpus:` or `device: cuda`): the executor warns on CPU.
    gpus_optional: bool = False


class FitContext:
    """What `Stage.fit` may use: checkpointed maps over the shards, and a shuffle for grouped work.

    Implemented by the engine (each shard or partition is a resumable unit, run by the executor);
    `TablesFitContext` implements `map` in memory for plain tests.
    """

    def map(self, fn: Callable[[pa.Table], pa.Table], columns: list[str]) -> Iterator[pa.Table]:
        """Apply `fn` to each shard's `columns` (one table per shard) and yield the results."""
        raise NotImplementedError

    def shuffle(self, fn: Callable[[pa.Table], pa.Table], columns: list[str], partitions: int,
                reduce: Callable[[pa.Table], pa.Table], name: str = "shuffle",
                source: list[Shuffled] | None = None, key: Any = None) -> Shuffled:
        """Group rows across shards, then reduce each group where the executor runs it.

        `fn(shard table)` returns rows with an int column `part` in [0, partitions) and their `row` in
        the shard; the engine adds `shard` (the shard key, as `ShardInfo.key`). `reduce(rows of one part
        from every shard)` returns rows that keep `shard` and `row`. `ShardInfo.read_shuffled(outputs)` gives
        one shard's rows back at scoring time.

        With `source` (earlier shuffles of this fit), `fn` gets instead the rows those reduces labelled
        with the shard (their schemas unified; `columns` is then ignored): iterative work, such as
        connected components, runs as a chain of shuffles, each a resumable set of units. `key` replaces
        the stage's parameters in the units' keys: what this shuffle's output depends on, so that a
        parameter used only later (a threshold) does not redo it.
        """
        raise NotImplementedError


class TablesFitContext(FitContext):
    """A FitContext over in-memory shard tables: fit a stage in a plain test or script, without the engine."""

    def __init__(self, shards: list[pa.Table]):
        self.shards = shards

    def map(self, fn: Callable[[pa.Table], pa.Table], columns: list[str]) -> Iterator[pa.Table]:
        for shard in self.shards:
            yield fn(shard.select(columns))


class Stage(Params):
    """Base class of every scoring stage.

    Subclasses set `type` (the name used in configs), `version` (bump it when the scores change),
    declare `inputs`, `outputs` and `resources`, and take their parameters as typed keyword arguments
    stored under their own names (`curate.params`): they key the stage's stored outputs.
    """

    kind: ClassVar[str] = "stage"
    type: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    resources: Resources = Resources()
    # Outputs that are data for later stages (embedding vectors), stored with the stage's
    # per-shard outputs but left out of the manifest.
    data_outputs: frozenset[str] = frozenset()
    # The inputs `score` reads, when not all of them (None: all): the others are read by the fit only, and a
    # scoring pass does not read them again (SemDeDup's scores come from its shuffle: it needs the row index).
    score_inputs: ClassVar[frozenset[str] | None] = None
    # Float outputs that are not scores to keep rows by (a similarity to another row): the report shows their
    # histogram but no "rows kept by score >= t" sweep. Recorded in summary.json (`not_scores`, prefixed).
    not_scores: frozenset[str] = frozenset()
    # What the report and the CLI show of this stage beyond the generic tables (curate/presentation.py).
    presenter: ClassVar[Presenter | None] = None
    # Additive numeric outputs (token counts): summary.json sums each over the rows in, kept, dropped and
    # errored, per policy and for the run, beside the row counts (a null counts 0).
    totals: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str | None = None):
        self.name = name or self.type

    def implied_name(self) -> str | None:
        return self.type

    # --- declarations -------------------------------------------------------------------------
    @property
    def inputs(self) -> tuple[str, ...]:
        """Columns read from the dataset or from earlier stages."""
        return ()

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        """New columns, without the `<name>.` prefix; `error` is added by the engine."""
        return {}

    @property
    def replaces(self) -> dict[str, str]:
        """Outputs that stand in for an input column in the curated dataset (`curate export --materialize`):
        output -> the dataset column it replaces (C4's cleaned text). Recorded in summary.json."""
        return {}

    def depends_on(self) -> dict[str, Any]:
        """What the scores depend on beyond the parameters (part of every output's key): content hashes
        of files the parameters name, versions of libraries that shape the scores."""
        return {}

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        """Checked at plan time for each dataset column read: a problem ('is int64; needs a string') or None."""
        return None

    def check_upstream(self, producers: Mapping[str, Stage]) -> str | None:
        """Checked when the pipeline is built: `producers` maps each input column that an earlier stage writes to
        that stage (read its parameters or `file_metadata`). A problem, saying how to fix it, or None."""
        return None

    # --- the three calls ----------------------------------------------------------------------
    def fit(self, ctx: FitContext) -> pa.Table | None:
        """Optional global pass; returns a small table (the artifact) or None."""
        return None

    def setup(self, artifact: pa.Table | None) -> None:
        """Once per worker, before any `score`: load models, compile patterns, read the artifact."""

    def begin_shard(self, shard: ShardInfo) -> None:
        """Called before a shard's batches, which then come to `score` in row order (optional)."""

    def score(self, batch: pa.Table) -> pa.Table:
        """New columns (unprefixed names, `error` included when rows fail) for the batch's rows."""
        raise NotImplementedError

    def describe(self, artifact: pa.Table | None) -> dict[str, Any]:
        """Numbers about the fitted artifact for summary.json."""
        return {}

    def worker_info(self) -> dict[str, Any]:
        """Facts from the worker after scoring a shard (device used, seconds per step), reset after each
        call; numbers are summed over shards in summary.json, other values listed."""
        return {}

    def file_metadata(self) -> dict[str, str]:
        """Key-value metadata written into each per-shard output file (e.g. model and weights hash)."""
        return {}

    # --- derived ------------------------------------------------------------------------------
    @property
    def has_fit(self) -> bool:
        return type(self).fit is not Stage.fit

    def column(self, output: str) -> str:
        return f"{self.name}.{output}"

    def output_schema(self) -> pa.Schema:
        """The prefixed columns this stage writes, `error` last."""
        fields = [pa.field(self.column(k), t) for k, t in self.outputs.items() if k != "error"]
        return pa.schema(fields + [pa.field(self.column("error"), pa.string())])

    def identity(self) -> dict[str, Any]:
        """What keys this stage's outputs: type, version, parameters and what else they depend on."""
        return {"type": self.type, "name": self.name, "version": self.version, "params": self.keyed_params(),
                **self.depends_on()}


class ScoresFromShuffle:
    """Mixin for a stage whose fit ends in a shuffle that writes every row's outputs: the artifact's schema
    metadata names the reduce outputs (a JSON list) under `outputs_key`, and a shard's scores are its rows
    from them, by row index (so `ROW_INDEX` must be among the stage's inputs)."""

    outputs_key: ClassVar[bytes]

    def setup(self, artifact: pa.Table | None) -> None:
        self._shuffled = json.loads(artifact.schema.metadata[self.outputs_key])

    def begin_shard(self, shard: ShardInfo) -> None:
        self._rows = shard.read_shuffled(self._shuffled)

    def score(self, batch: pa.Table) -> pa.Table:
        return self._rows.take(batch.column(ROW_INDEX))


class FunctionStage(Stage):
    """A stage made from a plain batch function by `@curate.stage`."""

    type = "function"
    unkeyed = frozenset({"fn", "resources"})  # the function is keyed by its source (version) and name

    def __init__(self, fn: Callable[[pa.Table], Any], inputs: list[str] | Mapping[str, pa.DataType],
                 outputs: Mapping[str, pa.DataType], name: str | None = None, resources: Resources | None = None):
        super().__init__(name or fn.__name__)
        self.fn = fn
        self._input_spec = inputs
        self._inputs = tuple(inputs)
        self._input_types = dict(inputs) if isinstance(inputs, Mapping) else {}
        self._outputs = dict(outputs)
        if resources is not None:
            self.resources = resources
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):
            source = f"{fn.__module__}.{fn.__qualname__}"
        # Editing the function's code re-scores; nothing else about it is known to the engine.
        self.version = hashlib.sha256(source.encode()).hexdigest()[:16]

    @property
    def inputs(self) -> tuple[str, ...]:
        return self._inputs

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        return self._outputs

    def get_params(self) -> dict[str, Any]:
        # `inputs` and `outputs` are the declarations as given (the properties are the engine's view).
        return {"fn": self.fn, "inputs": self._input_spec, "outputs": self._outputs, "name": self.name,
                "resources": self.resources}

    @classmethod
    def check_arguments(cls, *args: Any, **kwargs: Any) -> None:
        pass  # the decorator's arguments are checked where they are used (engine plan, conform)

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "function": f"{self.fn.__module__}.{self.fn.__qualname__}"}

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        want = self._input_types.get(column)
        if want is None or type == want or {type, want} <= {pa.string(), pa.large_string()}:
            return None
        return f"is {type}; needs {want}"

    def score(self, batch: pa.Table) -> pa.Table:
        out = self.fn(batch)
        table = out if isinstance(out, pa.Table) else pa.table(dict(out))
        if table.num_rows != batch.num_rows:
            raise ValueError(f"stage {self.name!r} returned {table.num_rows} rows for a batch of "
                             f"{batch.num_rows}: a stage must return one row per input row")
        return table

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Call the function directly, as in a plain test."""
        return self.score(batch)


def stage(inputs: list[str] | Mapping[str, pa.DataType], outputs: Mapping[str, pa.DataType],
          name: str | None = None, cpus: float = 1.0, gpus: float = 0.0) -> Callable[[Callable], FunctionStage]:
    """Decorator: turn a function of a batch (pa.Table) into a Stage.

    `inputs` lists the columns read; give a mapping of column to Arrow type to have the types
    checked on every shard before any compute.
    The function returns a pa.Table or a mapping of column name to array, one value per row,
    using the names declared in `outputs`; the engine prefixes them with the stage name.
    """

    def wrap(fn: Callable) -> FunctionStage:
        return FunctionStage(fn, inputs, outputs, name=name, resources=Resources(cpus=cpus, gpus=gpus))

    return wrap


def needs_string(type: pa.DataType) -> str | None:
    """`check_input`'s answer for a text column: None for a string (or a null-typed column, an empty or all-null
    shard, whose rows the stage records as errors), else what is wrong."""
    if pa.types.is_string(type) or pa.types.is_large_string(type) or pa.types.is_null(type):
        return None
    return f"is {type}; needs a string"


class _CallableModule(types.ModuleType):
    """This module, callable as the `stage` decorator: `curate.stage` is both the decorator users write
    (`@curate.stage(...)`) and this module, so `import curate.stage` cannot shadow one with the other."""

    def __call__(self, *args: Any, **kwargs: Any) -> Callable[[Callable], FunctionStage]:
        return stage(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
