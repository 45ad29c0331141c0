"""The Stage contract: what a scoring step declares and the three calls the engine makes.

A stage scores; it never drops rows. `score` returns the new columns for exactly the rows it was
given, in the same order. A row it cannot score gets nulls and a message in `<name>.error`.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from curate.errors import ConfigError


# Columns the engine provides to any stage or fit map that lists them: the row's id (string) and its
# 64-bit hash (the policies' tie-break input).
ROW_ID = "_curate.id"
ROW_HASH = "_curate.id_hash"
ENGINE_COLUMNS = (ROW_ID, ROW_HASH)


@dataclass(frozen=True)
class ShardInfo:
    """The shard being scored, given to `Stage.begin_shard`; `root` is the run directory."""

    key: str
    rel: str
    fingerprint: str
    rows: int
    root: str


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs; the executor decides where it runs."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 0.0


class FitContext:
    """What `Stage.fit` may use: checkpointed maps over the shards, and a shuffle for grouped work.

    Implemented by the engine (each shard or partition is a resumable unit, run by the executor);
    `TablesFitContext` implements `map` in memory for plain tests.
    """

    root: Path  # the run directory (the shuffle's outputs are relative to it)

    def map(self, fn: Callable[[pa.Table], pa.Table], columns: list[str]) -> Iterator[pa.Table]:
        """Apply `fn` to each shard's `columns` (one table per shard) and yield the results."""
        raise NotImplementedError

    def shuffle(self, fn: Callable[[pa.Table], pa.Table], columns: list[str], partitions: int,
                reduce: Callable[[pa.Table], pa.Table], name: str = "shuffle") -> list[str]:
        """Group rows across shards, then reduce each group where the executor runs it.

        `fn(shard table)` returns rows with an int column `part` in [0, partitions) and their `row` in
        the shard; the engine adds `shard` (the shard key, as `ShardInfo.key`). `reduce(rows of one part
        from every shard)` returns rows that keep `shard` and `row`. Returns the reduced outputs' paths relative to
        the run directory; `read_shuffled` gives one shard's rows back from them.
        """
        raise NotImplementedError


class TablesFitContext(FitContext):
    """A FitContext over in-memory shard tables: fit a stage in a plain test or script, without the engine."""

    def __init__(self, shards: list[pa.Table]):
        self.shards = shards

    def map(self, fn: Callable[[pa.Table], pa.Table], columns: list[str]) -> Iterator[pa.Table]:
        for shard in self.shards:
            yield fn(shard.select(columns))


class Stage:
    """Base class of every scoring stage.

    Subclasses set `type` (the name used in configs), `version` (bump it when the scores change),
    declare `inputs`, `outputs` and `resources`, and take their parameters as keyword arguments,
    which `params()` reports and which key the stage's stored outputs.
    """

    type: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    resources: Resources = Resources()
    # Outputs that are data for later stages (embedding vectors), stored with the stage's
    # per-shard outputs but left out of the manifest.
    data_outputs: frozenset[str] = frozenset()

    def __init__(self, name: str | None = None):
        self.name = name or self.type

    # --- declarations -------------------------------------------------------------------------
    @property
    def inputs(self) -> tuple[str, ...]:
        """Columns read from the dataset or from earlier stages."""
        return ()

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        """New columns, without the `<name>.` prefix; `error` is added by the engine."""
        return {}

    def params(self) -> dict[str, Any]:
        """The parameters that determine the scores (part of every output's key)."""
        return {}

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        """Checked at plan time for each dataset column read: a problem ('is int64; needs a string') or None."""
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
        """What keys this stage's outputs: type, version and parameters."""
        return {"type": self.type, "name": self.name, "version": self.version, "params": self.params()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}(name={self.name!r}, {args})"


class FunctionStage(Stage):
    """A stage made from a plain batch function by `@curate.stage`."""

    type = "function"

    def __init__(self, fn: Callable[[pa.Table], Any], inputs: list[str] | Mapping[str, pa.DataType],
                 outputs: Mapping[str, pa.DataType], name: str | None = None, resources: Resources | None = None):
        super().__init__(name or fn.__name__)
        self.fn = fn
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


# --- registry of stage types usable from configs ------------------------------------------------
_REGISTRY: dict[str, type[Stage]] = {}


def register(cls: type[Stage]) -> type[Stage]:
    """Class decorator: make a Stage type available to configs under `cls.type`."""
    _REGISTRY[cls.type] = cls
    return cls


def stage_types() -> dict[str, type[Stage]]:
    import curate.stages  # noqa: F401  (registers the built-in stages)

    return dict(_REGISTRY)


def make_stage(type_name: str, **params: Any) -> Stage:
    """Build a registered stage by its config name, or a decorated function given as `module:attr`."""
    if ":" in type_name:
        import importlib

        module, _, attr = type_name.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"stage type {type_name!r}: cannot import {attr!r} from {module!r} ({e})") from e
        if isinstance(obj, Stage):
            obj = copy.copy(obj)  # the decorated function is shared; naming this use must not rename others
            if params.get("name"):
                obj.name = params.pop("name")
            if params:
                raise ConfigError(f"stage {type_name!r} is a decorated function and takes no parameters; "
                                  f"got {sorted(params)}")
            return obj
        if isinstance(obj, type) and issubclass(obj, Stage):
            return obj(**params)
        raise ConfigError(f"stage type {type_name!r} is neither a Stage class nor a @curate.stage function")
    types = stage_types()
    if type_name not in types:
        raise ConfigError(f"unknown stage type {type_name!r}; known types: {', '.join(sorted(types))}, "
                          f"or 'module:function' for a custom @curate.stage")
    return types[type_name](**params)
