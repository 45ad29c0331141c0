"""Benchmark files: what a config names, reading them (JSON Lines, Parquet, CSV or plain text), their content
hash, and the hashed n-gram set built from them (the stage's artifact)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import ConfigError, DataError
from kernels import ngramindex

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".csv": "csv",
           ".txt": "text"}
KEYS = {"path", "column", "id_column", "name"}
BYTES_PER_NGRAM = 16  # a uint64 hash, an int32 item number, and up to 32 bits of the workers' prefilter bitmap


@dataclass(frozen=True)
class Benchmark:
    """One benchmark file: its path, the text column, the id column (None: `id` if there is one, else the row or
    line number) and its name."""

    path: str
    column: str = "text"
    id_column: str | None = None
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or Path(self.path).stem

    def sha256(self) -> str:
        """The file's content hash: an edited file rebuilds the n-gram set; a moved one does not."""
        try:
            h = hashlib.sha256()
            with open(self.path, "rb") as f:
                while chunk := f.read(8 << 20):
                    h.update(chunk)
        except OSError as e:
            raise ConfigError(f"decontaminate: benchmark file {self.path}: cannot be read ({e.strerror or e})") from e
        return h.hexdigest()


def parse(entries: list[str | dict[str, str]], column: str) -> list[Benchmark]:
    """The benchmark entries of a config (a path, or a mapping with `path` and optionally `column`, `id_column`,
    `name`), checked: a known format, known keys, distinct names. No file is read here."""
    out = []
    for e in entries:
        spec = {"path": e} if isinstance(e, str) else dict(e)
        if "path" not in spec or set(spec) - KEYS:
            raise ConfigError(f"decontaminate: benchmark entry {e!r}: give a path, or a mapping with `path` and "
                              f"optionally {', '.join(sorted(KEYS - {'path'}))}")
        b = Benchmark(spec["path"], spec.get("column", column), spec.get("id_column"), spec.get("name", ""))
        if Path(b.path).suffix.lower() not in FORMATS:
            raise ConfigError(f"decontaminate: benchmark file {b.path}: unknown format; give one ending in "
                              f"{', '.join(FORMATS)}")
        out.append(b)
    labels = [b.label for b in out]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"decontaminate: two benchmarks have the same name ({', '.join(labels)}); set `name`")
    return out


def _read_table(b: Benchmark) -> pa.Table:
    fmt = FORMATS[Path(b.path).suffix.lower()]
    if fmt == "text":  # one item a line; blank lines are not items
        lines = Path(b.path).read_text(encoding="utf-8").splitlines()
        keep = [i for i, t in enumerate(lines) if t.strip()]
        return pa.table({b.column: [lines[i] for i in keep], "_line": [i + 1 for i in keep]})
    if fmt == "parquet":
        import pyarrow.parquet as pq
        return pq.read_table(b.path)
    if fmt == "csv":
        import pyarrow.csv as pcsv
        return pcsv.read_csv(b.path)
    import pyarrow.json as pj
    return pj.read_json(b.path)


def read(b: Benchmark) -> tuple[pa.Array, list[str]]:
    """(texts, ids) of one benchmark file; a missing, unreadable or corrupt file, a missing or non-string column
    and an empty file are refused naming the file."""
    where = f"benchmark file {b.path}"
    if not Path(b.path).is_file():
        raise DataError([f"{where} does not exist"])
    try:
        table = _read_table(b)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as e:
        raise DataError([f"{where}: cannot be read as {FORMATS[Path(b.path).suffix.lower()]} ({e})"]) from e
    for col in (b.column, b.id_column):
        if col is not None and col not in table.column_names:
            raise DataError([f"{where}: no column {col!r} (columns: {', '.join(table.column_names)})"])
    texts = table.column(b.column).combine_chunks()
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        raise DataError([f"{where}: column {b.column!r} is {texts.type}; needs strings"])
    if not len(texts):
        raise DataError([f"{where}: no items"])
    id_column = b.id_column or ("id" if "id" in table.column_names else None)
    if id_column is not None:
        ids = [str(v) for v in table.column(id_column).to_pylist()]
    elif "_line" in table.column_names:
        ids = [f"line {v}" for v in table.column("_line").to_pylist()]
    else:
        ids = [f"row {i}" for i in range(len(texts))]
    return texts, ids


def nfkc(texts: pa.Array) -> pa.Array:
    """NFKC on the rows that are not pure ASCII (the identity on the others: skipped, as dedup does)."""
    texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    other = pc.invert(pc.fill_null(pc.string_is_ascii(texts), True))
    if not pc.any(other).as_py():
        return texts
    return pc.replace_with_mask(texts, other, pc.utf8_normalize(pc.filter(texts, other), "NFKC"))


def _check_size(ngrams: int, max_mb: float) -> None:
    """Refuse a set over the budget (counted before duplicates are merged: a bound from above)."""
    mb = ngrams * BYTES_PER_NGRAM / 2**20
    if mb > max_mb:
        size = f"{mb:,.0f}" if mb >= 1 else f"{mb:.3g}"
        raise ConfigError(f"decontaminate: the benchmarks hold {ngrams:,} n-grams, {size} MB in memory on every "
                          f"worker, over max_ngram_mb={max_mb:g}; raise it or give fewer benchmark items")


def build(benchmarks: list[Benchmark], n: int, min_words: int, max_mb: float) -> pa.Table:
    """The artifact: every distinct n-gram hash of the benchmarks, sorted, with the number of the first item that
    holds it; items, benchmark names and counts in the schema metadata. Refused past `max_mb`."""
    grams, owners, items, counts, sizes = [], [], [], [], set()
    for k, b in enumerate(benchmarks):
        texts, ids = read(b)
        g, item, words = ngramindex.item_grams(nfkc(texts), n, min_words)
        grams.append(g)
        owners.append(item.astype(np.int32) + len(items))
        items += [[k, i] for i in ids]
        short = (words < n) & (words >= min_words)
        sizes |= set(words[short].tolist())  # each size of short item is one more pass at scoring
        counts.append({"name": b.label, "path": b.path, "items": len(ids), "ngrams": len(g),
                       "short_items": int(short.sum()), "too_short": int((words < min_words).sum())})
        _check_size(sum(len(x) for x in grams), max_mb)  # before reading the next file
    g, owner = np.concatenate(grams), np.concatenate(owners)
    order = np.lexsort((owner, g))  # by hash, then the lowest item number first
    g, owner = g[order], owner[order]
    first = np.ones(len(g), bool)
    first[1:] = g[1:] != g[:-1]
    meta = {"items": items, "benchmarks": counts, "short_sizes": sorted(int(w) for w in sizes), "n": n}
    return pa.table({"hash": g[first], "item": owner[first]},
                    metadata={b"decontaminate": json.dumps(meta).encode()})

