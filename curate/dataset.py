"""A dataset is a folder or URI (any pyarrow filesystem) of shards: Parquet, JSONL, CSV or WebDataset tar
files (curate/formats/), one format per dataset, chosen by file suffix or given (`format:`).

Shards are listed recursively (names starting with `.` or `_` are skipped, as Spark and Arrow write
them), sorted by relative path, and identified by a content fingerprint so that outputs are keyed by
what a shard holds, not by where it lies. Each shard is read through its format's `ShardReader`.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import xxhash

from curate.errors import DataError
from curate.formats import FORMATS, SUFFIXES, ShardReader, format_of, reader, strip_suffix
from curate.storage import SEAL, AnyPath, ObjectPath, location, seal, sealed, write_whole

log = logging.getLogger(__name__)
_CHUNK = 8 << 20
_warned: set[tuple[str, str | None]] = set()  # (dataset, format) whose unread files were named in this process


@dataclass(frozen=True)
class Shard:
    """One file of the dataset."""

    path: str      # path inside the dataset's filesystem
    rel: str       # path relative to the dataset root, as shown to users
    size: int
    mtime_ns: int
    format: str = "parquet"

    @functools.cached_property  # asked for per unit and per phase: computed once (a frozen dataclass allows it)
    def key(self) -> str:
        """A file-name-safe name, unique within the dataset: `sub/part-1.parquet` -> `sub__part-1`."""
        stem = strip_suffix(self.rel, self.format)
        return re.sub(r"[^A-Za-z0-9._-]", "_", stem.replace("/", "__"))


def _local_files(root: Path, uri: str) -> list[pafs.FileInfo]:
    """Files under a local folder, following symlinks once: a link back into a folder already walked (a
    loop, `loop -> .`) is refused by name, and a file reached through several links is listed once,
    under its first path in sorted order."""
    files, seen_dirs, seen_files, loops = [], {}, set(), []
    for folder, dirs, names in os.walk(root, followlinks=True):
        st = os.stat(folder)
        here = Path(folder).relative_to(root).as_posix()
        if (st.st_dev, st.st_ino) in seen_dirs:
            loops.append(f"{here} (the same folder as {seen_dirs[(st.st_dev, st.st_ino)] or '.'})")
            dirs[:] = []
            continue
        seen_dirs[(st.st_dev, st.st_ino)] = "" if here == "." else here
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            try:
                fst = path.stat()
            except OSError:
                continue  # a dangling link is not a shard
            if (fst.st_dev, fst.st_ino) in seen_files:
                continue
            seen_files.add((fst.st_dev, fst.st_ino))
            files.append(pafs.FileInfo(str(path), pafs.FileType.File, size=fst.st_size, mtime_ns=fst.st_mtime_ns))
    if loops:
        raise DataError([f"dataset {uri!r}: symlink loop at {loop}; remove the link" for loop in loops])
    return files


class Dataset:
    """The shards under `uri`; reading is column-selective and goes through pyarrow's filesystem."""

    def __init__(self, uri: str | os.PathLike | AnyPath, fingerprint_cache: str | os.PathLike | AnyPath | None = None,
                 format: str | None = None):
        if format is not None and format not in FORMATS:
            raise DataError([f"format {format!r} is not one of {', '.join(FORMATS)}"])
        self.uri = str(uri)
        try:
            where = location(uri)
            if isinstance(where, ObjectPath):  # its filesystem keeps the URI's options (endpoint, ...)
                self.fs, self.root, self.uri = where.fs, where.path, str(where)  # (no secrets in the text)
            else:
                self.fs, self.root = pafs.LocalFileSystem(), str(where.resolve())
            info = self.fs.get_file_info(self.root)
        except (OSError, pa.ArrowInvalid) as e:
            raise DataError([f"dataset {self.uri!r}: cannot open ({e})"]) from e
        if info.type == pafs.FileType.NotFound:
            raise DataError([f"dataset {self.uri!r} does not exist (for the demo: `curate data demo`)"])
        single = info.type == pafs.FileType.File
        if single:
            infos = [info]
            self.root = str(Path(self.root).parent) if "://" not in self.uri else self.root.rsplit("/", 1)[0]
        elif isinstance(self.fs, pafs.LocalFileSystem):
            infos = _local_files(Path(self.root), self.uri)
        else:
            infos = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=True))
        shards = self._shards(infos, format, single)
        if not shards:
            wanted = ", ".join(f"*{s}" for s in (SUFFIXES[format] if format else [x for f in FORMATS
                                                                                   for x in SUFFIXES[f]]))
            raise DataError([f"dataset {self.uri!r}: no shards ({wanted}) found"])
        found = sorted({s.format for s in shards})
        if len(found) > 1:
            raise DataError([f"dataset {self.uri!r} mixes formats ({', '.join(found)}); give `format:` (one of "
                             f"them) or keep one format per folder"])
        self.format = found[0]
        self.shards: list[Shard] = sorted(shards, key=lambda s: s.rel)
        keys = [s.key for s in self.shards]
        if len(set(keys)) != len(keys):
            raise DataError([f"dataset {self.uri!r}: two shard paths map to the same name; rename one"])
        self._cache_path = location(fingerprint_cache) if fingerprint_cache else None
        self._fingerprints: dict[str, str] = {}
        self._kept: dict[tuple[str, tuple[str, ...] | None], Any] | None = None  # keep_reads (and read_checked)
        self._kept_room = 0

    def _shards(self, infos: list[pafs.FileInfo], format: str | None, single: bool) -> list[Shard]:
        """The listed files that are shards: of a known format (`format` when given), with no path part
        starting with `.` or `_`. Files of another format than the one given are named in a warning."""
        shards, other = [], []
        for fi in infos:
            rel = fi.path[len(self.root):].lstrip("/")
            fmt = format if single and format else format_of(rel)
            if fi.type != pafs.FileType.File or fmt is None or any(p.startswith((".", "_")) for p in rel.split("/")):
                continue
            if format and fmt != format:
                other.append(rel)
                continue
            shards.append(Shard(fi.path, rel, fi.size, fi.mtime_ns or 0, fmt))
        self.not_read = sorted(other)  # (summary.json's inputs.not_read: every run's result names them)
        if other and (self.uri, format) not in _warned:  # (once per process: the report lists the folder again)
            _warned.add((self.uri, format))
            shown = ", ".join(sorted(other)[:10]) + (f" and {len(other) - 10} more" if len(other) > 10 else "")
            log.warning("dataset %r: %d file(s) of other formats are not read (format: %s): %s", self.uri,
                        len(other), format, shown)
        return shards

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_kept": None}  # what this process read stays here (workers read their own)

    def __len__(self) -> int:
        return len(self.shards)

    def __repr__(self) -> str:
        return f"Dataset({self.uri!r}, shards={len(self.shards)})"

    # --- content ids --------------------------------------------------------------------------
    def fingerprint(self, shard: Shard) -> str:
        """A 128-bit hash of the shard's bytes (xxh3-128), cached by what a rewrite cannot keep.

        The cache key is (path, size, mtime, hash of the format's fingerprint material: a Parquet footer,
        the last 64 KiB of other formats), plus on a local disk the inode
        change time and inode number: `touch -r` restores an mtime, but any write or rename sets the change
        time, which no user call can set back. On an object store the mtime is the upload time, set by the
        store. Trusted without re-hashing: a file for which all of these are unchanged. `curate run
        --verify` re-hashes every shard."""
        if not self._fingerprints:
            self._load_cache()
        stamp = f"{shard.path}|{shard.size}|{shard.mtime_ns}|{self._local_stamp(shard)}|{self._material_hash(shard)}"
        if stamp not in self._fingerprints:
            h = xxhash.xxh3_128()
            with self.fs.open_input_stream(shard.path) as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
            self._fingerprints[stamp] = h.hexdigest()
        return self._fingerprints[stamp]

    def _local_stamp(self, shard: Shard) -> str:
        if not isinstance(self.fs, pafs.LocalFileSystem):
            return ""
        try:
            st = os.stat(shard.path)
        except OSError:
            return "unreadable"
        return f"{st.st_ctime_ns}:{st.st_ino}"

    def _material_hash(self, shard: Shard) -> str:
        """xxh3 of the bytes the shard's format names as fingerprint material (a Parquet footer)."""
        try:
            with self.fs.open_input_file(shard.path) as f:
                return xxhash.xxh3_64_hexdigest(reader(shard.format).fingerprint_material(f))
        except OSError:
            return "unreadable"

    def fingerprints(self) -> dict[str, str]:
        """Fingerprint of every shard, by shard key; saves the cache."""
        out = {s.key: self.fingerprint(s) for s in self.shards}
        self._save_cache()
        return out

    def _load_cache(self) -> None:
        if self._cache_path and self._cache_path.exists():
            try:
                cache = json.loads(self._cache_path.read_text())
            except (OSError, ValueError):
                cache = None
            # a broken or edited cache only costs re-hashing (a wrong fingerprint would change keys and ids)
            self._fingerprints = {k: v for k, v in cache.items() if k != SEAL} if sealed(cache) else {}

    def _save_cache(self) -> None:
        if self._cache_path:
            write_whole(self._cache_path, json.dumps(seal(self._fingerprints)).encode())

    # --- reading ------------------------------------------------------------------------------
    def open(self, shard: Shard) -> ShardReader:
        """The shard's reader (a Parquet footer read, another format parsed); raises DataError naming the
        shard (and line) if unreadable."""
        return reader(shard.format).open(self.fs, shard.path, shard.rel, (shard.size, shard.mtime_ns))

    def read(self, shard: Shard, columns: list[str] | None = None, keep: bool = True) -> pa.Table:
        """The given columns (None: all) of a whole shard (see `keep_reads`; `keep=False`: a column read once)."""
        key = (shard.path, tuple(columns) if columns is not None else None)
        if self._kept is not None and key in self._kept:
            return self._kept[key]
        table = self.open(shard).read(columns)
        if keep and self._kept is not None and table.nbytes <= self._kept_room:
            self._kept[key] = table
            self._kept_room -= table.nbytes
        return table

    def read_checked(self, shard: Shard, columns: list[str], check: Callable[[pa.Table], tuple]) -> tuple:
        """`check(read(shard, columns))`; a clean result (whose second item is None: nothing to fix) is kept
        with the read, so that columns read twice (a fit map, then scores) are checked once."""
        key = (shard.path, (*columns, "\0checked"))
        if self._kept is not None and key in self._kept:
            return self._kept[key]
        out = check(self.read(shard, columns))
        if self._kept is not None and (shard.path, tuple(columns)) in self._kept and out[1] is None:
            self._kept[key] = out
        return out

    def keep_reads(self, budget: int) -> None:
        """Keep what `read` returns, up to `budget` bytes (the first reads), so that reading the same columns
        again in this process (a stage's fit map, then its scores) costs nothing; 0 forgets them."""
        self._kept, self._kept_room = ({}, budget) if budget > 0 else (None, 0)

    def shard(self, key: str) -> Shard:
        for s in self.shards:
            if s.key == key:
                return s
        raise KeyError(key)


def lists(data: str | os.PathLike | AnyPath, path: str | os.PathLike | AnyPath) -> bool:
    """Whether the dataset at `data` would list files under `path` as its shards: `path` is the data folder
    or lies inside it, on no relative path part starting with `.` or `_` (those are skipped)."""
    root, target = _absolute(location(data)), _absolute(location(path))
    if root is None or target is None or not (target == root or target.startswith(root.rstrip("/") + "/")):
        return False
    return not any(part.startswith((".", "_")) for part in target[len(root):].split("/") if part)


def _absolute(where: AnyPath) -> str | None:
    """A folder's absolute name to compare prefixes on (a URI for an object store); None for a file."""
    if isinstance(where, ObjectPath):
        return f"{where.scheme}://{where.path}"
    return None if where.is_file() else where.resolve().as_posix()
