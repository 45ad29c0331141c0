"""A finished run as presenters see it (`curate.presentation.RunView`), and the presenters of its stages and
policies, found from the classes summary.json records (so the report and the CLI know no method by name).
"""
from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from curate.errors import CurateError
from curate.layout import load_summary, manifest_parts
from curate.presentation import OUTCOME, ROW, Presenter
from curate.report.stats import outcome_expr, pipeline_order
from curate.storage import AnyPath, location

log = logging.getLogger(__name__)


class RunDirectory:
    """A run directory, read-only (`curate.presentation.RunView`)."""

    def __init__(self, run_dir: str | os.PathLike | AnyPath, summary: Mapping[str, Any] | None = None, seed: int = 0,
                 outcomes: Mapping[str, int] | None = None):
        self.root = location(run_dir)
        self.summary = summary if summary is not None else load_summary(self.root)
        self.seed = seed
        self._outcomes = outcomes
        self.parts = manifest_parts(self.root)
        self.schema = self.parts[0].schema() if self.parts else None
        self.policies, self.stages = pipeline_order(self.schema) if self.schema else ([], [])

    def manifest(self, columns: Sequence[str]) -> Iterator[pa.Table]:
        own = [c for c in columns if c not in (ROW, OUTCOME)]
        extra = ["error", "keep", *[f"keep.{p}" for p in self.policies]] if OUTCOME in columns else []
        for part in self.parts:
            t = part.read(list(dict.fromkeys([*own, *extra])))
            if ROW in columns:
                t = t.append_column(ROW, pa.array(np.arange(t.num_rows), pa.int64()))
            if OUTCOME in columns:
                import polars as pl

                outcome = pl.from_arrow(t.select(extra)).select(outcome_expr(self.policies))
                t = t.append_column(OUTCOME, outcome.to_series().to_arrow().cast(pa.string()))
            yield t.select(list(columns))

    def outcomes(self) -> Mapping[str, int]:
        if self._outcomes is None:
            counts: dict[str, int] = {}
            for t in self.manifest([OUTCOME]):
                for k, n in zip(*np.unique(t.column(OUTCOME).to_numpy(zero_copy_only=False), return_counts=True)):
                    counts[str(k)] = counts.get(str(k), 0) + int(n)
            self._outcomes = counts
        return self._outcomes

    def policies_reading(self, column: str) -> list[str]:
        entries = self.summary.get("policies", {})
        return [p for p in _ordered(entries, self.policies) if entries[p].get("column") == column]

    def input_schema(self) -> pa.Schema:
        from curate.dataset import Dataset

        dataset = Dataset(self.summary["data"], format=self.summary.get("format"))
        if not dataset.shards:
            raise CurateError(f"{self.summary['data']} holds no shards any more")
        return dataset.open(dataset.shards[0]).schema

    def stage_inputs(self, name: str) -> tuple[str, ...]:
        entry = self.summary.get("stages", {}).get(name)
        if entry and "inputs" in entry:
            return tuple(entry["inputs"])
        if not entry or not entry.get("class"):  # a run written before summary.json named the inputs
            return ()
        try:
            return tuple(_instance(entry["class"], entry.get("params", {}), name).inputs)
        except (ImportError, AttributeError, CurateError, TypeError, ValueError) as e:
            log.warning("stage %s cannot be rebuilt here (%s: %s)", name, type(e).__name__, e)
            return ()

    def input_rows(self, shard: str, rows: Sequence[int], columns: Sequence[str]) -> pa.Table:
        from curate.dataset import Dataset

        dataset = Dataset(self.summary["data"], format=self.summary.get("format"))
        match = [s for s in dataset.shards if s.rel == shard]
        if not match:
            raise CurateError(f"shard {shard} is no longer in {self.summary['data']}")
        reader = dataset.open(match[0])
        wanted = sorted(set(rows))
        pieces = [pa.Table.from_batches([batch]).take([r - pos for r in wanted if pos <= r < pos + batch.num_rows])
                  for pos, batch in reader.batches(columns, rows=wanted)]  # only the batches holding those rows
        found = pa.concat_tables(pieces) if pieces else pa.schema([reader.schema.field(c) for c in columns]).empty_table()
        if found.num_rows != len(wanted):
            raise CurateError(f"shard {shard} has {reader.num_rows} rows; the run names row {wanted[-1]}")
        at = {r: i for i, r in enumerate(wanted)}
        return found.take(pa.array([at[r] for r in rows], pa.int64()))


def _ordered(entries: Mapping[str, Any], order: list[str]) -> list[str]:
    """Names in pipeline order (summary.json sorts its keys), unknown ones last."""
    return sorted(entries, key=lambda k: (k not in order, order.index(k) if k in order else 0, k))


def presenters(view: RunDirectory) -> tuple[list[tuple[Presenter, list[Any]]], list[str]]:
    """([(presenter, its members in pipeline order)], problems): the run's stages and policies that name a
    presenter, rebuilt from summary.json; a problem says which could not be rebuilt here, and why."""
    groups: dict[int, tuple[Presenter, list[Any]]] = {}
    problems = []
    for kind, key, order in (("stage", "stages", view.stages), ("policy", "policies", view.policies)):
        entries = view.summary.get(key, {})
        for name in _ordered(entries, order):
            try:
                obj = _rebuild(kind, name, entries[name])
            except (ImportError, AttributeError, CurateError, TypeError, ValueError) as e:
                problems.append(f"{kind} {name}: its own section cannot be shown here ({type(e).__name__}: {e})")
                log.warning(problems[-1])
                continue
            if obj is not None:
                groups.setdefault(id(obj.presenter), (obj.presenter, []))[1].append(obj)
    return list(groups.values()), problems


def _rebuild(kind: str, name: str, entry: Mapping[str, Any]) -> Any:
    """The stage or policy of a summary entry, if its class names a presenter (else None)."""
    path = entry.get("class")
    if not path:
        return None  # a run written before presenters: the generic tables only
    if getattr(_class(path), "presenter", None) is None:
        return None
    return _instance(path, entry.get("params", {}) if kind == "stage" else entry, name)  # a policy's entry
    #                                                                                     holds its parameters


def _class(path: str) -> Any:
    module, _, qualname = path.partition(":")
    cls: Any = importlib.import_module(module)
    for attr in qualname.split("."):
        cls = getattr(cls, attr)
    return cls


def _instance(path: str, given: Mapping[str, Any], name: str) -> Any:
    """The stage or policy of class `path` (`module:Name`) rebuilt from its recorded parameters."""
    cls = _class(path)
    names = cls.param_names()
    params = {k: v for k, v in given.items() if k in names and k != "name"}
    return cls(**params, name=name) if "name" in names else cls(**params)


def lines(run_dir: str | os.PathLike | AnyPath, summary: Mapping[str, Any] | None = None) -> list[str]:
    """What the run's presenters print after a run (`curate run`, `curate join`, `curate summary`)."""
    view = RunDirectory(run_dir, summary)
    found, problems = presenters(view)
    return [line for presenter, members in found for line in presenter.lines(view, members)] + \
        [f"  note: {p}" for p in problems]
