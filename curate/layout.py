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

Every file is checked as it is read (`read_verified`): its bytes are read once, hashed (xxh3) and
compared with the record that committed them (a unit's sealed sidecar, or summary.json for the manifest
parts), then decoded from the same bytes. The engine recomputes a damaged unit; readers refuse damage
with `DamagedFileError`'s message naming the file and the command that repairs it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curate.dataset import Shard
from curate.errors import CurateError, DamagedFileError
from curate.storage import SEAL, AnyPath, content_hash, location, read_buffer, sealed


def read_json(path: AnyPath) -> Any:
    """A JSON file's content, or None when missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def verified_bytes(path: AnyPath, record: dict[str, Any]) -> pa.Buffer:
    """A file's bytes, read once and checked against its record (`size`, `xxh3`)."""
    try:
        data = read_buffer(path)
    except FileNotFoundError:
        raise DamagedFileError(path, "is missing") from None
    if data.size != record["size"]:
        raise DamagedFileError(path, f"has {data.size:,} bytes, {record['size']:,} were written (truncated or "
                                     f"replaced)")
    if content_hash(data) != record["xxh3"]:
        raise DamagedFileError(path, "its content changed after it was written (hash mismatch)")
    return data


def read_verified(path: AnyPath, record: dict[str, Any], columns: list[str] | None = None) -> pa.Table:
    """A Parquet file checked against its record, decoded from the bytes that were checked."""
    return decode_parquet(verified_bytes(path, record), columns)


def decode_parquet(data: pa.Buffer, columns: list[str] | None = None) -> pa.Table:
    """A Parquet file's table from its bytes, `columns` in the order asked. Through `ParquetFile`, not
    `pq.read_table`: the latter imports pyarrow.dataset, and with it pandas (~0.3 s of every run's driver)."""
    table = pq.ParquetFile(pa.BufferReader(data)).read(columns=columns)
    return table if columns is None or table.column_names == list(columns) else table.select(list(columns))


def sidecar_of(path: AnyPath) -> AnyPath:
    return path.with_suffix(".json")


def unit_record(path: AnyPath) -> dict[str, Any]:
    """The record (`size`, `xxh3`, ...) of a unit's file, from the unit's sealed sidecar."""
    meta = read_json(sidecar_of(path))
    if meta is None or not sealed(meta) or path.name not in meta.get("files", {}):
        state = "missing or unreadable" if meta is None else "modified" if not sealed(meta) else "without this file"
        raise DamagedFileError(path, f"its sidecar {sidecar_of(path).name} is {state}")
    return meta["files"][path.name]


def read_unit(path: AnyPath, columns: list[str] | None = None) -> pa.Table:
    """A unit's Parquet file, checked against its sidecar (the one way the run directory's units are read)."""
    return read_verified(path, unit_record(path), columns)


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
        return sidecar_of(path)

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


def repair_hint(run_dir: str | os.PathLike | AnyPath) -> str:
    return (f"re-publish it with a plain `curate run` of the run's config and `--out {run_dir}` (it recomputes "
            f"what is damaged)")


def load_summary(run_dir: str | os.PathLike | AnyPath) -> dict[str, Any]:
    """summary.json, refused when it was edited after it was published (its seal differs)."""
    path = RunLayout(run_dir).summary
    summary = read_json(path)
    if summary is None:
        if path.exists():
            raise CurateError(f"{path} is unreadable (damaged); {repair_hint(run_dir)}")
        raise CurateError(f"{run_dir}: no summary.json; is this a finished run directory (curate run --out)?")
    if not sealed(summary):
        why = "was modified after it was published (its seal does not match)" if SEAL in summary else \
            "has no seal (written by a curate before summaries were sealed, or edited)"
        raise CurateError(f"{path} {why}; {repair_hint(run_dir)}")
    return summary


def _shard_keys(summary: dict[str, Any]) -> dict[str, str]:
    """The run's shards, relative path -> shard key, in dataset order."""
    fmt = summary.get("format") or "parquet"
    return {rel: Shard(rel, rel, 0, 0, fmt).key for rel in summary["inputs"]["fingerprints"]}


@dataclass(frozen=True)
class Part:
    """A published manifest part, read checked against the size and hash summary.json records."""

    path: AnyPath
    record: dict[str, Any]
    run_dir: str

    def _bytes(self) -> pa.Buffer:
        try:
            return verified_bytes(self.path, self.record)
        except DamagedFileError as e:
            raise CurateError(f"the manifest part {e}; {repair_hint(self.run_dir)}") from None

    def read(self, columns: list[str] | None = None) -> pa.Table:
        return decode_parquet(self._bytes(), columns)

    def schema(self) -> pa.Schema:
        return pq.read_schema(pa.BufferReader(self._bytes()))

    def damage(self) -> str | None:
        """What is wrong with the part (None when intact)."""
        try:
            verified_bytes(self.path, self.record)
        except DamagedFileError as e:
            return str(e)
        return None


def manifest_parts(run_dir: str | os.PathLike | AnyPath) -> list[Part]:
    """The published manifest parts in dataset order; refuses an incomplete one rather than leave rows out
    (each part's content is checked as it is read: `Part.read`)."""
    layout, summary = RunLayout(run_dir), load_summary(run_dir)
    published = summary.get("manifest", {}).get("parts", {})
    parts, problems = [], []
    for rel in summary["inputs"]["fingerprints"]:
        part = published.get(rel)
        if part is None:
            problems.append(f"{rel}{' (failed)' if rel in {f['shard'] for f in summary.get('failed_shards', [])} else ''}")
            continue
        path = layout.root / part["file"]
        size = path.stat().st_size if path.exists() else None
        if size != part["size"]:
            problems.append(f"{rel} ({part['file']} is {'missing' if size is None else 'damaged'})")
        parts.append(Part(path, part, str(run_dir)))
    if problems:
        raise CurateError(f"{run_dir}: the manifest lacks {len(problems)} shard(s): {', '.join(problems[:10])}; "
                          f"re-run the pipeline to complete it")
    return parts


def load_manifest(run_dir: str | os.PathLike | AnyPath, columns: list[str] | None = None) -> pa.Table:
    """The whole manifest as one table, in input order (fine for inspection; stream parts at scale)."""
    parts = manifest_parts(run_dir)
    if not parts:
        raise CurateError(f"{run_dir}: no manifest parts")
    return pa.concat_tables([p.read(columns) for p in parts])


def load_vectors(run_dir: str | os.PathLike | AnyPath, stage: str) -> pa.Table:
    """`id` and `vector` of an embed stage's rows, in input order (null vectors for rows it could not embed)."""
    layout = RunLayout(run_dir)
    parts = []
    for rel, key in _shard_keys(load_summary(run_dir)).items():
        scores = layout.scores(stage, key)
        if not scores.exists():
            raise CurateError(f"{run_dir}: no outputs of stage {stage!r} for shard {rel}")
        try:
            vec = read_unit(scores, columns=[f"{stage}.vector"]).column(0)
            ids = read_unit(layout.ids(key), columns=["id"]).column(0)
        except DamagedFileError as e:
            raise CurateError(f"{e}; {repair_hint(run_dir)}") from None
        parts.append(pa.table({"id": ids, "vector": vec}))
    return pa.concat_tables(parts)
