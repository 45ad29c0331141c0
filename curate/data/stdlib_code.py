"""Build a real code + prose corpus from files every Python install ships (dataset `stdlib-code`).

Sources (data.md):
- code: every `.py` file under the interpreter's standard library (`sysconfig.get_paths()["stdlib"]`),
  test suites included (the `package` column says where each chunk came from), installed third-party
  packages (`site-packages`) left out;
- prose: the reST sources of the Python docs (`*.rst.txt` under `html/_sources` of Debian
  `python3.11-doc`) and the English `fortunes` (regular files only: no `.dat` indexes, no `.u8` links).

Every file is cut into consecutive runs of whole lines of at least `min_bytes` (1,000) UTF-8 bytes; a
last piece of at least `min_last` (200) bytes is kept, a shorter one is dropped. Files that are not valid
UTF-8 (a few test fixtures) are decoded with replacement characters and counted in `.complete`.

`email_experiment` builds ZIP-FIT's in-domain check (docs/methods/zipfit.md, check 6) from the same files:
target chunks from half of the stdlib `email` package, candidates from its other half, other stdlib code
and prose, with an `in_domain` label.
"""
from __future__ import annotations

import json
import os
import random
import sysconfig
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.parquet as pq

from curate.data.demo import (
    _clear_previous,
    _shard_bounds,
    package_files,
    package_version,
)
from curate.errors import DataError

DOC_PACKAGE = "python3.11-doc"
FORTUNES_PACKAGE = "fortunes"
COMPLETE = ".complete"
SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),   # stdlib | docs | fortunes
    pa.field("path", pa.string(), nullable=False),     # relative to the source's root
    pa.field("package", pa.string(), nullable=False),  # first path component (stdlib package, docs section, topic)
    pa.field("chunk", pa.int32(), nullable=False),
])


@dataclass(frozen=True)
class Chunk:
    source: str
    path: str
    chunk: int
    text: str

    @property
    def id(self) -> str:
        return f"{self.source}:{self.path}#{self.chunk}"

    @property
    def package(self) -> str:
        return PurePosixPath(self.path).parts[0] if "/" in self.path else PurePosixPath(self.path).stem


def chunk_lines(text: str, min_bytes: int = 1000, min_last: int = 200) -> list[str]:
    """Consecutive runs of whole lines of >= min_bytes UTF-8 bytes; a last piece >= min_last is kept."""
    pieces, current, size = [], [], 0
    for line in text.splitlines(keepends=True):
        current.append(line)
        size += len(line.encode())
        if size >= min_bytes:
            pieces.append("".join(current))
            current, size = [], 0
    if current and size >= min_last:
        pieces.append("".join(current))
    return pieces


def _read(path: Path) -> tuple[str, bool]:
    data = path.read_bytes()
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), True


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path | None = None) -> list[tuple[str, Path]]:
    """(relative posix path, file) of every regular `.py` file under the stdlib root, sorted by path;
    installed third-party packages (`site-packages`, `dist-packages`) are not the standard library."""
    root = root or stdlib_root()
    files = [(rel, p) for p in root.rglob("*.py") if p.is_file() and not p.is_symlink()
             and not {"site-packages", "dist-packages"} & set(PurePosixPath(rel := p.relative_to(root).as_posix()).parts)]
    if not files:
        raise DataError([f"no .py files under the standard library root {root}"])
    return sorted(files)


def doc_files() -> list[tuple[str, Path]]:
    """(path below `_sources`, file) of the Python docs' reST sources (Debian python3.11-doc)."""
    files = package_files(DOC_PACKAGE, ".rst.txt")
    out = []
    for f in files:
        parts = f.parts
        if "_sources" in parts:
            out.append((PurePosixPath(*parts[parts.index("_sources") + 1:]).as_posix(), f))
    if not out:
        raise DataError([f"{DOC_PACKAGE} lists no html/_sources/*.rst.txt files; reinstall it"])
    return sorted(out)


def fortune_files() -> list[tuple[str, Path]]:
    """(topic, file) of the English fortunes: regular files without `.dat`/`.u8` (Debian fortunes)."""
    files = package_files(FORTUNES_PACKAGE, "")
    out = [(f.name, f) for f in files if f.parent.name == "fortunes" and not f.is_symlink()
           and f.suffix not in (".dat", ".u8") and "games" in f.parts]
    if not out:
        raise DataError([f"{FORTUNES_PACKAGE} lists no fortune files; reinstall it"])
    return sorted(out)


def chunks_of(source: str, files: Iterable[tuple[str, Path]], min_bytes: int = 1000,
              min_last: int = 200) -> tuple[list[Chunk], int]:
    """Chunks of every file in order, and how many files needed replacement characters."""
    out, replaced = [], 0
    for rel, path in files:
        text, bad = _read(path)
        replaced += bad
        out += [Chunk(source, rel, i, t) for i, t in enumerate(chunk_lines(text, min_bytes, min_last))]
    return out, replaced


# --------------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------------
def build_stdlib_code(out: str | Path, shards: int = 8, min_bytes: int = 1000, prose: bool = True) -> dict:
    """Write the corpus as Parquet shards (in source/path/chunk order) under `out`, and the 50 `email`
    target chunks of `email_experiment` as `out/_targets/email.jsonl` (Parquet readers skip `_` folders);
    return the `.complete` info."""
    started = time.monotonic()
    out = Path(out)
    targets = write_email_targets(out / "_targets" / "email.jsonl") if prose else None
    chunks, replaced = chunks_of("stdlib", stdlib_files(), min_bytes)
    counts = {"stdlib": len(chunks)}
    if prose:
        for source, files in (("docs", doc_files()), ("fortunes", fortune_files())):
            extra, bad = chunks_of(source, files, min_bytes)
            chunks += extra
            replaced += bad
            counts[source] = len(extra)
    out.mkdir(parents=True, exist_ok=True)
    _clear_previous(out)
    names = []
    shards = max(1, min(shards, len(chunks)))
    for i, (a, b) in enumerate(_shard_bounds(len(chunks), shards)):
        part = chunks[a:b]
        table = pa.table({"id": [c.id for c in part], "text": [c.text for c in part],
                          "source": [c.source for c in part], "path": [c.path for c in part],
                          "package": [c.package for c in part], "chunk": [c.chunk for c in part]}, schema=SCHEMA)
        name = f"part-{i:05d}.parquet"
        pq.write_table(table, out / f".{name}.tmp", compression="zstd")
        os.replace(out / f".{name}.tmp", out / name)
        names.append(name)
    info = {"dataset": "stdlib-code", "rows": len(chunks), "shards": len(names), "files": names,
            "chunks": counts, "files_decoded_with_replacement": replaced, "min_bytes": min_bytes,
            "stdlib_root": str(stdlib_root()), "targets": str(targets) if targets else None, "python": sysconfig.get_python_version(),
            "packages": {p: package_version(p) for p in (DOC_PACKAGE, FORTUNES_PACKAGE)} if prose else {},
            "seconds": round(time.monotonic() - started, 2)}
    (out / f"{COMPLETE}.tmp").write_text(json.dumps(info, indent=2) + "\n")
    os.replace(out / f"{COMPLETE}.tmp", out / COMPLETE)
    return info


def write_email_targets(path: str | Path, seed: int = 0) -> Path:
    """The 50 email target chunks of `email_experiment` as a JSONL file (`text`, `id`) for configs."""
    targets, _ = email_experiment(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for c in targets:
            f.write(json.dumps({"id": c.id, "text": c.text}) + "\n")
    return path


# --------------------------------------------------------------------------------------------------
# The in-domain experiment (docs/methods/zipfit.md check 6)
# --------------------------------------------------------------------------------------------------
_OTHER_EXCLUDED = ("email", "test", "idlelib", "lib2to3", "site-packages")


def _other_code(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    return parts[0] not in _OTHER_EXCLUDED and "tests" not in parts


def email_experiment(seed: int = 0, n_targets: int = 50, n_in: int = 144, n_code: int = 600,
                     n_prose: int = 450) -> tuple[list[Chunk], list[tuple[Chunk, bool]]]:
    """(targets, [(candidate, in_domain)]) for the stdlib `email` check.

    The `email` package's .py files sorted by path alternate: even positions are the target half, odd
    the held-out half. Targets: n_targets chunks sampled from the target half; candidates: n_in chunks
    of the held-out half (in-domain), n_code chunks of stdlib .py outside email, the test suites,
    idlelib, lib2to3 and site-packages, and n_prose chunks of docs reST sources whose path does not
    contain "email". Sampling is seeded; candidates come in a seeded random order.
    """
    files = stdlib_files()
    email = [f for f in files if PurePosixPath(f[0]).parts[0] == "email"]
    if len(email) < 2:
        raise DataError([f"the standard library at {stdlib_root()} has no email package .py files"])
    target_half, _ = chunks_of("stdlib", email[0::2])
    held_out, _ = chunks_of("stdlib", email[1::2])
    other, _ = chunks_of("stdlib", [f for f in files if _other_code(f[0])])
    prose, _ = chunks_of("docs", [f for f in doc_files() if "email" not in f[0]])
    rng = random.Random(seed)

    def sample(pool: list[Chunk], k: int, what: str) -> list[Chunk]:
        if len(pool) < k:
            raise DataError([f"email experiment: only {len(pool)} {what} chunks, need {k}"])
        return rng.sample(pool, k)

    targets = sample(target_half, n_targets, "target-half email")
    candidates = ([(c, True) for c in sample(held_out, n_in, "held-out email")]
                  + [(c, False) for c in sample(other, n_code, "other stdlib code")]
                  + [(c, False) for c in sample(prose, n_prose, "docs prose")])
    rng.shuffle(candidates)
    return targets, candidates
