"""FitContext.shuffle reading earlier shuffles (`source=`) and keyed by what it depends on (`key=`)."""
from __future__ import annotations

from typing import Annotated

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

import curate
from curate.stage import ROW_INDEX, Stage
from testkit.helpers import write_shards


class Chain(Stage):
    """Counts each value's rows across shards in two chained shuffles; `label` only names the output."""

    type = "chain"

    def __init__(self, label: Annotated[str, Field(description="a parameter the first shuffle does not use")] = "a",
                 name: str | None = None):
        super().__init__(name)
        self.label = label

    @property
    def inputs(self):
        return ("v", ROW_INDEX)

    @property
    def outputs(self):
        return {"count": pa.int64(), "label": pa.string()}

    def fit(self, ctx):
        first = ctx.shuffle(self._by_value, ["v", ROW_INDEX], 3, self._count, name="first", key={"what": "counts"})
        # the second reads the first's rows (and, through a second source, nothing: schemas are unified)
        second = ctx.shuffle(self._back, [], 2, self._label, name="second", source=[first])
        self._outputs = second.outputs
        return pa.table({"o": second.outputs})

    def _by_value(self, t):
        v = t.column("v").to_numpy()
        return pa.table({"part": pa.array((v % 3).astype(np.int32)), "row": t.column(ROW_INDEX), "v": t.column("v")})

    def _count(self, rows):
        counts = pc.value_counts(rows.column("v"))
        n = dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()))
        return rows.select(["shard", "row", "v"]).append_column("count", pa.array([n[x] for x in rows.column("v").to_pylist()]))

    def _back(self, rows):
        return pa.table({"part": pa.array((rows.column("row").to_numpy() % 2).astype(np.int32)),
                         "row": rows.column("row"), "count": rows.column("count")})

    def _label(self, rows):
        return rows.select(["shard", "row", "count"]).append_column("label", pa.array([self.label] * rows.num_rows))

    def setup(self, artifact):
        self._outputs = artifact.column("o").to_pylist()

    def begin_shard(self, shard):
        self._rows = shard.read_shuffled(self._outputs)

    def score(self, batch):
        return self._rows.take(batch.column(ROW_INDEX))


def test_chained_shuffles_give_every_row_back_and_key_keeps_the_first(tmp_path):
    v = np.array([1, 2, 2, 3, 3, 3, 4, 4, 4, 4] * 3)
    data = write_shards(tmp_path / "data", pa.table({"id": [f"r{i}" for i in range(len(v))], "v": v}), 4)
    pipe = curate.Pipeline(stages=[Chain()], policies=[curate.Threshold("chain.count", min=0)], id_column="id")
    curate.run(pipe, data, tmp_path / "run", executor="local")
    m = curate.load_manifest(tmp_path / "run")
    assert m.column("chain.count").to_pylist() == [3 * x for x in v.tolist()]
    pipe = curate.Pipeline(stages=[Chain(label="b")], policies=[curate.Threshold("chain.count", min=0)], id_column="id")
    summary = curate.run(pipe, data, tmp_path / "run", executor="local")
    assert summary["phases"]["fit:chain:first:map"]["computed"] == 0  # keyed by `key`, not by `label`
    assert summary["phases"]["fit:chain:second:map"]["computed"] == 4
    assert set(curate.load_manifest(tmp_path / "run").column("chain.label").to_pylist()) == {"b"}
