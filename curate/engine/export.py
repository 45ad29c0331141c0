"""Exports from a finished run: kept/removed id lists and the curated dataset (kept rows, same schema)."""
from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any

import pyarrow as pa

from curate.dataset import Dataset
from curate.engine.files import write_bytes, write_parquet, writing_text
from curate.errors import CurateError, DamagedFileError
from curate.formats import encode, strip_suffix
from curate.layout import RunLayout, load_summary, manifest_parts, read_unit, repair_hint
from curate.storage import location


def export(run_dir: str | os.PathLike, kept_ids: str | os.PathLike | None = None,
           removed_ids: str | os.PathLike | None = None, materialize: str | os.PathLike | None = None,
           as_parquet: bool = False) -> dict[str, Any]:
    """Write kept/removed id lists (one id per line) and/or the curated dataset: the kept rows of each shard,
    same schema, in the input's own format (JSONL, CSV, WebDataset tar; `as_parquet` writes Parquet)."""
    summary = load_summary(run_dir)
    out: dict[str, Any] = {}
    parts = manifest_parts(run_dir)
    files = {k: v for k, v in {"kept": kept_ids, "removed": removed_ids}.items() if v}
    with ExitStack() as stack:
        handles = {k: stack.enter_context(writing_text(location(v))) for k, v in files.items()}
        for part in parts:
            m = part.read(["id", "keep"])
            keep = m.column("keep").to_numpy(zero_copy_only=False)
            for k, fh in handles.items():
                sel = keep if k == "kept" else ~keep
                ids = m.column("id").to_numpy(zero_copy_only=False)[sel]
                if len(ids):
                    fh.write("\n".join(map(str, ids)) + "\n")
                out[f"{k}_ids"] = out.get(f"{k}_ids", 0) + int(sel.sum())
    if materialize:
        dataset = Dataset(summary["data"], format=summary.get("format"))
        dest = location(materialize)
        rows = 0
        for rel, part in zip(summary["inputs"]["fingerprints"], parts):  # the run's shards, not today's listing
            try:
                shard = next(s for s in dataset.shards if s.rel == rel)
            except StopIteration:
                raise CurateError(f"shard {rel} of the run is no longer in {summary['data']}") from None
            if dataset.fingerprint(shard) != summary["inputs"]["fingerprints"][rel]["fingerprint"]:
                raise CurateError(f"shard {shard.rel} changed since the run (fingerprint differs); re-run first")
            keep = part.read(["keep"]).column(0)
            kept = _replaced(run_dir, summary, shard.key, dataset.open(shard).read().filter(keep), keep)
            if shard.format == "parquet" or as_parquet:
                rel = shard.rel if shard.format == "parquet" else f"{strip_suffix(shard.rel, shard.format)}.parquet"
                write_parquet(dest / rel, kept)
            else:
                write_bytes(dest / shard.rel, encode(kept, shard.format, shard.rel))
            rows += kept.num_rows
        out["materialized_rows"] = rows
        out["materialized_to"] = str(dest)
    return out


def _replaced(run_dir: str | os.PathLike, summary: dict[str, Any], shard_key: str, kept: pa.Table,
              keep: pa.ChunkedArray) -> pa.Table:
    """The kept rows with each column a stage replaces (`Stage.replaces`, in summary.json) taken from its scores."""
    for stage, facts in summary["stages"].items():
        for output, column in (facts.get("replaces") or {}).items():
            path = RunLayout(run_dir).scores(stage, shard_key)
            try:
                scores = read_unit(path, columns=[f"{stage}.{output}"])
            except DamagedFileError as e:
                raise CurateError(f"{e}; {repair_hint(run_dir)}") from None
            i = kept.schema.get_field_index(column)
            kept = kept.set_column(i, kept.schema.field(i), scores.column(0).filter(keep).cast(kept.schema.field(i).type))
    return kept
