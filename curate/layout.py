"""The run directory's layout, and reading a finished run (summary, manifest, vectors).

```
ids/<shard>.parquet                    row ids and id hashes (+ .json sidecar: the unit's key and counts)
fitmap/<stage>/<shard>.parquet         a fit's per-shard map outputs
shuffle/<stage>.<name>/<shard>.parquet  a shuffle's per-shard map outputs, grouped by partition
reduce/<stage>.<name>/part-NNNNN.parquet  a shuffle's reduce outputs, grouped by shard
artifacts/<stage>/<key>/artifact.parquet  a fitted artifact (+ .json done-marker)
scores/<stage>/<shard>.parquet         a stage's per-shard outputs
manifest/g<N>/part-<shard>.parquet     one row per input row: scores, keep decisions and why (generation N)
manifest/g<N>/writer.json              the owner token of the writer that claimed generation N
summary.json                           the published generation: counts, and each part's size and hash
lease.json                             the writer's lease (engine/lease.py)
report.html   kept_ids.txt   removed_ids.txt   curated/   state/
```
Readers need nothing but these files (no lease, no engine): they read the generation that summary.json
publishes, so a killed or concurrent `decide` never shows them a mix of two runs.
"""
from __future__ import annotations

import json
import os
from typing import Any

import pyarrow as pa

from curate.dataset import Shard
from curate.errors import CurateError
from curate.storage import AnyPath, location, read_table


def read_json(path: AnyPath) -> Any:
    """A JSON file's content, or None when missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class RunLayout:
    """Where each file of a run directory lies."""

    def __init__(self, root: str | os.PathLike | AnyPath):
        self.root = location(root)  # a local Path or an object store's ObjectPath (curate/storage.py)

    def unit(self, kind: str, stage: str, shard_key: str) -> AnyPath:
        """Output path of a per-shard unit: kind is `ids`, `scores`, `fitmap`, `shuffle` or `reduce`."""
        return self.root / kind / stage / f"{shard_key}.parquet" if stage else self.root / kind / f"{shard_key}.parquet"

    def ids(self, shard_key: str) -> AnyPath:
        return self.unit("ids", "", shard_key)

    def scores(self, stage: str, shard_key: str) -> AnyPath:
        return self.unit("scores", stage, shard_key)

    @staticmethod
    def sidecar(path: AnyPath) -> AnyPath:
        return path.with_suffix(".json")

    def artifact(self, stage: str, key: str) -> AnyPath:
        return self.root / "artifacts" / stage / key / "artifact.parquet"

    @property
    def manifest(self) -> AnyPath:
        return self.root / "manifest"

    def generation(self, gen: int) -> AnyPath:
        """The folder of one manifest generation; summary.json says which one is published."""
        return self.manifest / f"g{gen:06d}"

    def manifest_part(self, shard_key: str, gen: int) -> AnyPath:
        return self.generation(gen) / f"part-{shard_key}.parquet"

    @property
    def summary(self) -> AnyPath:
        return self.root / "summary.json"

    @property
    def report(self) -> AnyPath:
        return self.root / "report.html"

    @property
    def kept_ids(self) -> AnyPath:
        return self.root / "kept_ids.txt"

    @property
    def removed_ids(self) -> AnyPath:
        return self.root / "removed_ids.txt"

    @property
    def curated(self) -> AnyPath:
        return self.root / "curated"

    @property
    def fingerprint_cache(self) -> AnyPath:
        return self.root / "state" / "fingerprints.json"


def load_summary(run_dir: str | os.PathLike | AnyPath) -> dict[str, Any]:
    summary = read_json(RunLayout(run_dir).summary)
    if summary is None:
        raise CurateError(f"{run_dir}: no summary.json; is this a finished run directory (curate run --out)?")
    return summary


def _shard_keys(summary: dict[str, Any]) -> dict[str, str]:
    """The run's shards, relative path -> shard key, in dataset order."""
    fmt = summary.get("format") or "parquet"
    return {rel: Shard(rel, rel, 0, 0, fmt).key for rel in summary["inputs"]["fingerprints"]}


def manifest_parts(run_dir: str | os.PathLike | AnyPath) -> list[AnyPath]:
    """The published manifest parts in dataset order; refuses an incomplete or damaged one rather than
    leave rows out."""
    layout, summary = RunLayout(run_dir), load_summary(run_dir)
    published = summary.get("manifest", {}).get("parts", {})
    paths, problems = [], []
    for rel in summary["inputs"]["fingerprints"]:
        part = published.get(rel)
        if part is None:
            problems.append(f"{rel}{' (failed)' if rel in {f['shard'] for f in summary.get('failed_shards', [])} else ''}")
            continue
        path = layout.root / part["file"]
        size = path.stat().st_size if path.exists() else None
        if size != part["size"]:
            problems.append(f"{rel} ({part['file']} is {'missing' if size is None else 'damaged'})")
        paths.append(path)
    if problems:
        raise CurateError(f"{run_dir}: the manifest lacks {len(problems)} shard(s): {', '.join(problems[:10])}; "
                          f"re-run the pipeline to complete it")
    return paths


def load_manifest(run_dir: str | os.PathLike | AnyPath, columns: list[str] | None = None) -> pa.Table:
    """The whole manifest as one table, in input order (fine for inspection; stream parts at scale)."""
    parts = manifest_parts(run_dir)
    if not parts:
        raise CurateError(f"{run_dir}: no manifest parts")
    return pa.concat_tables([read_table(p, columns=columns) for p in parts])


def load_vectors(run_dir: str | os.PathLike | AnyPath, stage: str) -> pa.Table:
    """`id` and `vector` of an embed stage's rows, in input order (null vectors for rows it could not embed)."""
    layout = RunLayout(run_dir)
    parts = []
    for rel, key in _shard_keys(load_summary(run_dir)).items():
        scores = layout.scores(stage, key)
        if not scores.exists():
            raise CurateError(f"{run_dir}: no outputs of stage {stage!r} for shard {rel}")
        vec = read_table(scores, columns=[f"{stage}.vector"]).column(0)
        parts.append(pa.table({"id": read_table(layout.ids(key), columns=["id"]).column(0), "vector": vec}))
    return pa.concat_tables(parts)
