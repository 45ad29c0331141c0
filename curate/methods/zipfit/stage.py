"""ZIP-FIT: compression-based alignment of candidate texts to a target set (stage `zipfit`, docs/methods/zipfit.md).

    alignment(x) = 1 - (1/n') sum_j NCD(x, y_j),
    NCD(x, y)    = (C(x + y) - min(C(x), C(y))) / max(C(x), C(y)),

with C the gzip size at `level` (computed as zlib size + 12, byte-exact, see kernels/compress.py), `+`
byte concatenation with no separator, candidate first (the reference code's order; NCD is not
symmetric for a real compressor). The mean is over target examples, not a max and not one
concatenated target blob. Scores are not clipped (NCD can slightly exceed 1). Policies `top_k`,
`keep_fraction` or `threshold` on `zipfit.score` make the cut, ties broken by id hash.

Fit (small, global): read the targets (a Parquet/JSONL file, a folder of Parquet shards, or a list of
texts), cap each at `max_bytes` UTF-8 bytes, optionally sample n' of them (`target_sample`, seeded),
and store their bytes and C(y_j). The artifact also carries the set's SHA-256, codec, level, backend
and candidate length statistics from one cheap map over the shards (warns when the median candidate
is under 64 bytes: the 18-byte gzip framing then dominates C and scores are noisy).

Score (per shard): the target set arrives once per worker (`setup`); candidates stream one at a time
against the n' targets, so nothing of size N x n' is built.

Optional, off by default, labelled in outputs:
- `backend: isal` - ISA-L DEFLATE (levels 1-3), faster and near-faithful, not byte-identical to gzip.
- `target_sample: n'` - score against n' < n targets.
- `prefilter_keep: f` - a zstd dictionary trained on the targets gives gain(x) = 1 - C_dict(x) / C(x)
  (one extra compression per candidate); only rows whose gain lies in the global top fraction f (fit
  computes the cut from a gain histogram over all shards) get the exact score. The others keep
  `zipfit.gain`, get a null score and `zipfit.status = prefiltered`, and are dropped (not errored) by
  every policy on `zipfit.score`.

Errors: a null text, or a text column of a non-string type, gives `bad_text`; an empty text (0 bytes)
gives `empty_text` (never scored as 0). Targets that are null or empty fail the fit, naming the row.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field

from curate.errors import ConfigError, DataError
from curate.methods.hints import StageName
from curate.stage import FitContext, Stage
from kernels.compress import (
    GZIP_FRAMING,
    alignment,
    check_level,
    dictionary_sizes,
    gzip_sizes,
    train_dictionary,
)

log = logging.getLogger(__name__)

ERR_NULL = "bad_text: text is null"
ERR_EMPTY = "empty_text: text is empty (0 bytes)"
STATUS_PREFILTERED = "prefiltered"
SHORT_MEDIAN_BYTES = 64
GAIN_BINS = 1 << 16  # prefilter cut resolution over gains in [-1, 1]
_LEN_BINS = 64       # candidate byte lengths, histogram by bit length (for the median warning)


def _err_type(type_: pa.DataType) -> str:
    return f"bad_text: text column has type {type_}, expected a string type"


def _is_string(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


# --------------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------------
def read_targets(source: str | Path | Sequence[str], column: str = "text") -> list[str]:
    """The target texts: a list of strings, a `.parquet` or `.jsonl` file, or a folder of Parquet shards.

    Raises DataError naming the file and row for a missing column, a non-string column, an empty set,
    or a null or empty target.
    """
    if isinstance(source, (list, tuple)):
        where, values = "target list", list(source)
        bad_type = next((i for i, v in enumerate(values) if v is not None and not isinstance(v, str)), None)
        if bad_type is not None:
            raise DataError([f"{where}: row {bad_type} is {type(values[bad_type]).__name__}, expected a string"])
    else:
        path = Path(source)
        where = f"target {path}"
        if not path.exists():
            raise DataError([f"{where} does not exist (give a .parquet or .jsonl file or a folder of Parquet shards)"])
        if path.is_dir() or path.suffix == ".parquet":
            table = pq.read_table(path)
        elif path.suffix in (".jsonl", ".json", ".ndjson"):
            import pyarrow.json as pj

            try:
                table = pj.read_json(path)
            except pa.ArrowInvalid as e:
                raise DataError([f"{where}: not valid JSON Lines ({e})"]) from e
        else:
            raise DataError([f"{where}: unknown format {path.suffix!r}; give a .parquet or .jsonl file "
                             "or a folder of Parquet shards"])
        if column not in table.column_names:
            raise DataError([f"{where}: no column {column!r} (columns: {', '.join(table.column_names)}); "
                             "set target_column"])
        col = table.column(column)
        if not (_is_string(col.type) or pa.types.is_null(col.type)):
            raise DataError([f"{where}: column {column!r} is {col.type}, expected a string"])
        values = col.to_pylist()
    if not values:
        raise DataError([f"{where}: the target set is empty; ZIP-FIT needs at least one target text"])
    problems = [f"{where}: row {i} ({column!r}) is {'null' if v is None else 'empty (0 bytes)'}; "
                "every target must be non-empty text" for i, v in enumerate(values) if not v]
    if problems:
        raise DataError(problems)
    return values


def set_hash(texts: Sequence[bytes]) -> str:
    """SHA-256 of a list of byte strings, each prefixed by its length (order matters)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(len(t).to_bytes(8, "little"))
        h.update(t)
    return h.hexdigest()


def _meta(table: pa.Table) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}


def gain_bins(gain: np.ndarray) -> np.ndarray:
    """Histogram bin of each prefilter gain: [-1, 1] in GAIN_BINS steps (outside values clipped)."""
    scaled = np.floor((np.clip(gain, -1.0, 1.0) + 1.0) * (GAIN_BINS / 2))
    return np.minimum(scaled, GAIN_BINS - 1).astype(np.int64)


# --------------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------------
class ZipFit(Stage):
    """ZIP-FIT: how well each text aligns with a target set, 1 - mean gzip normalised compression distance to
    the target texts (higher = closer to the target). docs/methods/zipfit.md has the details."""

    type = "zipfit"
    version = "1"

    def __init__(self,
                 target: Annotated[str | Path | list[str] | tuple[str, ...],
                                   Field(description="the target texts: a .parquet or .jsonl file, a folder of "
                                                     "Parquet shards, or a list of texts")],
                 text_column: Annotated[str, Field(min_length=1, description="the candidate text column")] = "text",
                 target_column: Annotated[str, Field(min_length=1, description="the text column of the target "
                                                                              "file")] = "text",
                 codec: Annotated[Literal["gzip"], Field(description="the compressor C inside NCD; zstd and lz4 "
                                                                     "rank differently (rho 0.74-0.94 vs gzip) and "
                                                                     "are not ZIP-FIT")] = "gzip",
                 level: Annotated[int, Field(description="compression level: 1-9 for zlib, 1-3 for isal "
                                                         "(0, stored blocks, is refused)")] = 1,
                 backend: Annotated[Literal["zlib", "isal"],
                                    Field(description="DEFLATE implementation: zlib gives exact gzip sizes, isal "
                                                      "is faster and near-faithful")] = "zlib",
                 max_bytes: Annotated[int, Field(ge=1, description="UTF-8 bytes of each text compressed "
                                                                   "(candidates and targets)")] = 8192,
                 target_sample: Annotated[int | None, Field(ge=1, description="score against this many targets, "
                                                                             "a seeded sample (default: all)")] = None,
                 prefilter_keep: Annotated[float | None, Field(gt=0, le=1, description="zstd-dictionary "
                                           "prefilter: only this top fraction by gain gets the exact score "
                                           "(default: off)")] = None,
                 seed: Annotated[int, Field(ge=0, description="seed of the target sample")] = 0,
                 name: StageName = None):
        super().__init__(name)
        try:
            check_level(level, backend)
        except ValueError as e:
            raise ConfigError(f"zipfit: {e}") from e
        if isinstance(target, (str, Path)):
            self.target: str | list[str] = str(target)
            # Read from here in every process (Ray workers may start elsewhere); keys use the path as given.
            self._target_path = str(Path(target).resolve())
        else:
            self.target = list(target)
        self.text_column, self.target_column, self.codec = text_column, target_column, codec
        self.level, self.backend = level, backend
        self.max_bytes, self.target_sample = max_bytes, target_sample
        self.prefilter_keep = None if prefilter_keep is None else float(prefilter_keep)
        self.seed = seed
        self._source_hash: str | None = None
        self._state: dict[str, Any] | None = None
        self._work = {"pairs": 0, "pair_s": 0.0}

    # --- declarations -------------------------------------------------------------------------
    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.text_column,)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        out = {"score": pa.float64(), "bytes": pa.int32(), "truncated": pa.bool_()}
        if self.prefilter_keep is not None:
            out.update({"gain": pa.float32(), "status": pa.string()})
        return {**out, "error": pa.string()}

    def _texts(self) -> list[str]:
        return read_targets(self._target_path if isinstance(self.target, str) else self.target, self.target_column)

    def source_hash(self) -> str:
        """SHA-256 of the target texts as read (before the cap), so an edited target file re-fits."""
        if self._source_hash is None:
            self._source_hash = set_hash([t.encode() for t in self._texts()])
        return self._source_hash

    def keyed_params(self) -> dict[str, Any]:
        # A list of target texts is keyed by its hash (depends_on), not spelled out in every key and summary.
        params = super().keyed_params()
        if not isinstance(self.target, str):
            params["target"] = f"<{len(self.target)} texts>"
        return params

    def depends_on(self) -> dict[str, Any]:
        return {"target_sha256": self.source_hash()}

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        if _is_string(type) or pa.types.is_null(type):  # a null-typed (all-null) column gives bad_text rows
            return None
        return f"is {type}; needs a string (ZIP-FIT compresses UTF-8 text; binary columns are not accepted)"

    # --- fit ------------------------------------------------------------------------------------
    def _capped(self, column: pa.Array | pa.ChunkedArray) -> tuple[list[bytes | None], np.ndarray]:
        """UTF-8 bytes of each text cut at max_bytes (None for nulls), and the uncut byte lengths."""
        binary = pc.cast(column, pa.large_binary())
        lengths = pc.binary_length(binary).to_numpy(zero_copy_only=False)
        cut = pc.binary_slice(binary, 0, self.max_bytes)
        return cut.to_pylist(), np.nan_to_num(np.asarray(lengths, dtype=np.float64), nan=-1).astype(np.int64)

    def _gains(self, texts: list[bytes], sizes: np.ndarray, dictionary: bytes, kind: str) -> np.ndarray:
        return 1.0 - dictionary_sizes(texts, dictionary, kind) / sizes.astype(np.float64)

    def candidate_stats(self, table: pa.Table) -> pa.Table:
        """Fit map over one shard: histogram of candidate byte lengths (+ prefilter gain histogram)."""
        col = table.column(self.text_column)
        n = len(col)
        length_hist = np.zeros(_LEN_BINS, np.int64)
        gain_hist = np.zeros(GAIN_BINS if self.prefilter_keep is not None else 0, np.int64)
        null = empty = over = 0
        if _is_string(col.type) and n:
            texts, lengths = self._capped(col)
            valid = lengths > 0
            null, empty, over = int((lengths < 0).sum()), int((lengths == 0).sum()), int((lengths > self.max_bytes).sum())
            bits = np.zeros(n, np.int64)
            bits[valid] = np.floor(np.log2(np.minimum(lengths[valid], self.max_bytes))).astype(np.int64) + 1
            length_hist += np.bincount(bits[valid], minlength=_LEN_BINS)[:_LEN_BINS]
            if self.prefilter_keep is not None and valid.any():
                st = self._state or {}
                kept = [t for t, ok in zip(texts, valid) if ok]
                gains = self._gains(kept, gzip_sizes(kept, self.level, self.backend), st["dict"], st["dict_kind"])
                gain_hist += np.bincount(gain_bins(gains), minlength=GAIN_BINS)
        else:
            null = n
        return pa.table({"length_hist": [length_hist.tolist()], "gain_hist": [gain_hist.tolist()],
                         "rows": [n], "null": [null], "empty": [empty], "truncated": [over]})

    def _targets(self) -> dict[str, Any]:
        """The capped (and sampled) target bytes; errors name the row."""
        texts = self._texts()
        data = [t.encode()[: self.max_bytes] for t in texts]
        index = np.arange(len(data))
        if self.target_sample is not None and self.target_sample < len(data):
            index = np.sort(np.random.default_rng(self.seed).choice(len(data), self.target_sample, replace=False))
        return {"bytes": [data[i] for i in index], "n": len(data), "index": index,
                "truncated": sum(len(t.encode()) > self.max_bytes for t in texts)}

    def fit(self, ctx: FitContext) -> pa.Table:
        t = self._targets()
        sizes = gzip_sizes(t["bytes"], self.level, self.backend)
        # Trained once here; the map below carries it to the workers with the stage.
        self._state = None
        if self.prefilter_keep is not None:
            dictionary, kind = train_dictionary(t["bytes"])
            self._state = {"dict": dictionary, "dict_kind": kind}
        stats = list(ctx.map(self.candidate_stats, [self.text_column]))
        length_hist = np.sum([s.column("length_hist")[0].as_py() for s in stats], axis=0) if stats else np.zeros(_LEN_BINS)
        total = {k: int(sum(s.column(k)[0].as_py() for s in stats)) for k in ("rows", "null", "empty", "truncated")}
        meta: dict[str, Any] = {
            "codec": self.codec, "level": self.level, "backend": self.backend,
            "exact_gzip": self.backend == "zlib", "framing": f"zlib size + {GZIP_FRAMING}",
            "max_bytes": self.max_bytes, "target_sha256": set_hash(t["bytes"]),
            "target_source_sha256": self.source_hash(), "n_targets": t["n"], "n_used": len(t["bytes"]),
            "target_sample_seed": self.seed if len(t["bytes"]) < t["n"] else None,
            "targets_truncated": t["truncated"], "candidates": total["rows"], "candidates_null": total["null"],
            "candidates_empty": total["empty"], "candidates_truncated": total["truncated"],
        }
        scored = int(np.sum(length_hist))
        if scored:
            median_bits = int(np.searchsorted(np.cumsum(length_hist), (scored + 1) // 2))
            meta["candidate_median_bytes_below"] = 1 << median_bits
            if (1 << median_bits) <= SHORT_MEDIAN_BYTES:
                log.warning("zipfit %s: the median candidate is under %d bytes; the 18-byte gzip framing dominates "
                            "C(x) for such short texts, so scores are noisy", self.name, SHORT_MEDIAN_BYTES)
        if self.prefilter_keep is not None:
            st = self._state
            gain_hist = np.sum([s.column("gain_hist")[0].as_py() for s in stats], axis=0).astype(np.int64)
            want = int(np.ceil(self.prefilter_keep * gain_hist.sum()))
            from_top = np.cumsum(gain_hist[::-1])
            cut = GAIN_BINS - 1 - int(np.searchsorted(from_top, max(want, 1))) if want else GAIN_BINS
            meta.update({"prefilter_keep": self.prefilter_keep, "prefilter_cut_bin": cut,
                         "prefilter_cut_gain": cut / (GAIN_BINS / 2) - 1.0,
                         "prefilter_passed": int(gain_hist[cut:].sum()) if cut < GAIN_BINS else 0,
                         "prefilter_dictionary": st["dict_kind"], "prefilter_dictionary_bytes": len(st["dict"]),
                         "prefilter_dict_b64": base64.b64encode(st["dict"]).decode()})
        table = pa.table({"target": pa.array(t["bytes"], pa.binary()), "size": pa.array(sizes, pa.int32()),
                          "row": pa.array(t["index"], pa.int64())})
        return table.replace_schema_metadata({k: str(v) for k, v in meta.items()})

    # --- score ----------------------------------------------------------------------------------
    def setup(self, artifact: pa.Table | None) -> None:
        if artifact is None:
            raise ValueError("zipfit: setup needs the target artifact produced by fit")
        meta = _meta(artifact)
        if (meta.get("level"), meta.get("backend")) != (str(self.level), self.backend):
            raise ValueError(f"zipfit: artifact was fitted with level {meta.get('level')} / {meta.get('backend')}, "
                             f"stage has {self.level} / {self.backend}")
        self._state = {"targets": artifact.column("target").to_pylist(),
                       "sizes": artifact.column("size").to_numpy().astype(np.int64), "meta": meta}
        if self.prefilter_keep is not None:
            self._state.update({"dict": base64.b64decode(meta["prefilter_dict_b64"]),
                                "dict_kind": meta["prefilter_dictionary"], "cut": int(meta["prefilter_cut_bin"])})

    def score(self, batch: pa.Table) -> pa.Table:
        if self._state is None or "targets" not in self._state:
            raise RuntimeError("zipfit: score called before setup")
        st = self._state
        col = batch.column(self.text_column)
        n = batch.num_rows
        score = np.full(n, np.nan)
        nbytes = np.zeros(n, np.int64)
        gain = np.full(n, np.nan)
        status = np.full(n, None, dtype=object)
        if not _is_string(col.type):
            errors = pa.array([_err_type(col.type)] * n, pa.string())
            return self._table(score, nbytes, np.zeros(n, bool), np.zeros(n, bool), gain, status, errors)
        texts, lengths = self._capped(col)
        ok = lengths > 0
        rows = np.flatnonzero(ok)
        cands = [texts[i] for i in rows]
        c_x = gzip_sizes(cands, self.level, self.backend)
        exact = np.ones(len(rows), bool)
        if self.prefilter_keep is not None and len(rows):
            g = self._gains(cands, c_x, st["dict"], st["dict_kind"])
            gain[rows] = g
            exact = gain_bins(g) >= st["cut"]
            status[rows[~exact]] = STATUS_PREFILTERED
            status[rows[exact]] = "scored"
        t0 = time.perf_counter()
        keep = np.flatnonzero(exact)
        if len(keep):
            score[rows[keep]] = alignment([cands[i] for i in keep], st["targets"], st["sizes"], self.level,
                                          self.backend, candidate_sizes=c_x[keep])
        self._work["pairs"] += len(keep) * len(st["targets"])
        self._work["pair_s"] += time.perf_counter() - t0
        nbytes[ok] = np.minimum(lengths[ok], self.max_bytes)
        if ok.all():
            errors = pa.nulls(n, pa.string())
        else:
            code = pa.array((lengths == 0).astype(np.int8), mask=ok)  # 0: null text, 1: empty text
            errors = pa.DictionaryArray.from_arrays(code, pa.array([ERR_NULL, ERR_EMPTY])).cast(pa.string())
        scored = np.zeros(n, bool)
        scored[rows[keep]] = True
        return self._table(score, nbytes, lengths > self.max_bytes, ok, gain, status, errors, scored)

    def _table(self, score, nbytes, truncated, ok, gain, status, errors, scored=None) -> pa.Table:
        bad = ~ok
        out = {"score": pa.array(score, pa.float64(), mask=bad if scored is None else ~scored),
               "bytes": pa.array(nbytes.astype(np.int32), pa.int32(), mask=bad),
               "truncated": pa.array(truncated, pa.bool_(), mask=bad)}
        if self.prefilter_keep is not None:
            out["gain"] = pa.array(gain.astype(np.float32), pa.float32(), mask=np.isnan(gain))
            out["status"] = pa.array(status, pa.string())
        out["error"] = errors
        return pa.table(out)

    def worker_info(self) -> dict[str, Any]:
        info = {"pairs": self._work["pairs"], "pair_s": round(self._work["pair_s"], 4)}
        self._work = {"pairs": 0, "pair_s": 0.0}
        return info

    def file_metadata(self) -> dict[str, str]:
        meta = (self._state or {}).get("meta", {})
        return {f"zipfit.{k}": meta[k] for k in ("target_sha256", "codec", "level", "backend", "max_bytes") if k in meta}

    def describe(self, artifact: pa.Table | None) -> dict[str, Any]:
        if artifact is None:
            return {}
        md = _meta(artifact)
        md.pop("prefilter_dict_b64", None)
        out: dict[str, Any] = {}
        for k, v in md.items():
            try:
                out[k] = int(v)
            except ValueError:
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = {"True": True, "False": False, "None": None}.get(v, v)
        return out
