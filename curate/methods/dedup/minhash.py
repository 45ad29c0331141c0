"""`minhash_dedup`: near-duplicate texts by MinHash LSH over word or character n-gram shingles.

Signatures are `num_perm` min-hashes of each text's shingle set (kernels/minhash.py); the banding
(bands x rows) is chosen from `threshold` and `false_negative` (the largest miss rate allowed for a pair
at the threshold) unless given, and the S-curve's numbers go to the summary. Rows sharing a bucket in
any band are candidates; without `verify` every candidate pair is a duplicate (the standard LSH rule,
as in datatrove and NeMo Curator), with `verify` only pairs whose true Jaccard on the shingles is at
least `threshold`. Components and the keep rule: components.py. `jaccard` is each row's highest
similarity to a linked row (estimated from the signatures, or verified).
"""
from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.errors import ConfigError
from curate.methods.dedup.components import GraphStage, KeepBy, KeepLargest, Partitions, Seed
from curate.methods.dedup.text import NORMALIZE_HELP, Normalize, text_shingles
from curate.methods.hints import StageName
from kernels.minhash import band_keys, choose_bands, min_hashes, s_curve

log = logging.getLogger(__name__)


def jaccard_of_lists(a: pa.Array, b: pa.Array) -> np.ndarray:
    """Exact Jaccard of paired sets given as lists of distinct values, vectorised over the pairs."""
    a = a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a
    b = b.combine_chunks() if isinstance(b, pa.ChunkedArray) else b
    la = np.diff(np.asarray(a.offsets)).astype(np.int64)
    lb = np.diff(np.asarray(b.offsets)).astype(np.int64)
    pair = np.r_[np.repeat(np.arange(len(la)), la), np.repeat(np.arange(len(lb)), lb)]
    vals = np.r_[a.flatten().to_numpy(), b.flatten().to_numpy()].astype(np.uint64)
    order = np.lexsort((vals, pair))
    p, v = pair[order], vals[order]
    both = (p[1:] == p[:-1]) & (v[1:] == v[:-1])  # a value in both sets appears twice in a row
    inter = np.bincount(p[1:][both], minlength=len(la))
    union = la + lb - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


class MinHashDedup(GraphStage):
    """Near-duplicate texts: MinHash LSH, optional verification, connected components, keep rule.

    Shingles are word (or character) n-grams of the normalised text; a text shorter than `n` words is one
    shingle of all its words, so two short texts match only when they are equal after normalisation.
    Outputs: `component` (the group: set on every row that was scored, a row with no duplicate alone in its
    own; `size` > 1 marks a group of duplicates), `size` (rows in the group), `dup_of` (the id of the row
    kept in the group, on the others), `match` (`near`), `jaccard` (the row's highest similarity to a row linked to it: a MinHash
    estimate unless `verify`; the group is a chain of links, so not necessarily its similarity to the kept row).
    """

    type = "minhash_dedup"
    version = "2"  # 2: control characters separate words (normalize, the shingle kernel)
    similarity_name = "jaccard"

    def __init__(self, text_column: Annotated[str, Field(description="the text column")] = "text",
                 normalize: Annotated[Normalize, Field(description=f"before shingling: {NORMALIZE_HELP}")] = "nfkc_punct",
                 shingle: Annotated[Literal["word", "char"], Field(description="n-grams of words (split on white "
                                                                               "space, and control characters unless "
                                                                               "normalize is none; a text "
                                                                               "of fewer than n words is one n-gram) "
                                                                               "or of characters")] = "word",
                 n: Annotated[int, Field(ge=1, le=64, description="n-gram size")] = 5,
                 num_perm: Annotated[int, Field(ge=1, le=1024, description="min-hashes per signature")] = 112,
                 threshold: Annotated[float, Field(gt=0, le=1, description="Jaccard similarity of a duplicate "
                                                                           "pair")] = 0.8,
                 false_negative: Annotated[float, Field(gt=0, lt=1, description="largest chance of missing a pair "
                                                                                "at the threshold (chooses the "
                                                                                "banding)")] = 0.05,
                 bands: Annotated[int | None, Field(ge=1, description="LSH bands (default: chosen)")] = None,
                 rows: Annotated[int | None, Field(ge=1, description="signature values per band (default: "
                                                                     "chosen)")] = None,
                 verify: Annotated[bool, Field(description="keep only candidate pairs whose true Jaccard on the "
                                                           "shingles is >= threshold")] = False,
                 keep_by: KeepBy = None, keep_largest: KeepLargest = True, seed: Seed = 0,
                 partitions: Partitions = "auto", name: StageName = None):
        super().__init__(keep_by, keep_largest, seed, partitions, name)
        if (bands is None) != (rows is None):
            raise ConfigError("stage minhash_dedup: give both bands and rows, or neither")
        if bands is not None and bands * rows > num_perm:
            raise ConfigError(f"stage minhash_dedup: bands * rows = {bands * rows} exceeds num_perm = {num_perm}")
        self.text_column, self.normalize, self.shingle, self.n, self.num_perm = text_column, normalize, shingle, n, num_perm
        self.threshold, self.false_negative, self.bands, self.rows = float(threshold), float(false_negative), bands, rows
        self.verify = verify
        self._bands, self._rows = (bands, rows) if bands is not None else choose_bands(num_perm, threshold, false_negative)

    @property
    def data_inputs(self) -> tuple[str, ...]:
        return (self.text_column,)

    @property
    def payload(self) -> tuple[str, ...]:
        return ("sig", "tok") if self.verify else ("sig",)

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        if column == self.text_column and not (pa.types.is_string(type) or pa.types.is_large_string(type)):
            return f"is {type}; needs a string column"
        return super().check_input(column, type)

    def node_key(self) -> dict[str, Any]:
        return {"text_column": self.text_column, "normalize": self.normalize, "shingle": self.shingle, "n": self.n,
                "num_perm": self.num_perm, "verify": self.verify}

    def banding(self) -> dict[str, Any]:
        return {"bands": self._bands, "rows": self._rows, "s_curve": s_curve(self._bands, self._rows)}

    def node_payload(self, table: pa.Table) -> tuple[dict[str, pa.Array], np.ndarray, np.ndarray | None]:
        raw = table.column(self.text_column).combine_chunks()
        tokens, offsets = text_shingles(raw, self.normalize, self.shingle, self.n, distinct=self.verify)
        counts = np.diff(offsets)
        errors = np.full(len(raw), None, object)
        errors[counts == 0] = "empty_text: no shingles after normalisation"
        errors[raw.is_null().to_numpy(zero_copy_only=False)] = f"null_text: column {self.text_column!r} is null"
        ok = counts > 0
        sig = np.zeros((len(raw), self.num_perm), np.uint32)
        kept_offsets = np.r_[0, np.cumsum(counts[ok])].astype(np.int64)
        sig[ok] = min_hashes(tokens, kept_offsets, self.num_perm, self.seed)
        payload = {"sig": pa.FixedSizeListArray.from_arrays(pa.array(sig.ravel(), pa.uint32()), self.num_perm)}
        if self.verify:
            payload["tok"] = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(tokens, pa.uint64()))
        length = np.asarray(pa.compute.utf8_length(pa.compute.fill_null(raw, "")).to_numpy(), np.float64)
        return payload, errors, length

    def _signatures(self, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        return np.asarray(arr.flatten().to_numpy(), np.uint32).reshape(len(arr), self.num_perm)

    def bucket_key(self) -> dict[str, Any]:
        return {"bands": self._bands, "rows": self._rows, "verifies": self.verify}

    @property
    def verifies(self) -> bool:
        return self.verify

    def payload_key(self, nodes: pa.Table) -> np.ndarray:
        return band_keys(self._signatures(nodes.column("sig")), 1, self.num_perm)[:, 0]  # one hash of it all

    def bucket_keys(self, nodes: pa.Table) -> np.ndarray:
        return band_keys(self._signatures(nodes.column("sig")), self._bands, self._rows)

    def similarity(self, a: pa.Table, b: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        estimate = (self._signatures(a.column("sig")) == self._signatures(b.column("sig"))).mean(axis=1)
        if not self.verify:
            return estimate, np.ones(len(estimate), bool)
        exact = jaccard_of_lists(a.column("tok"), b.column("tok"))
        return exact, exact >= self.threshold

    @property
    def similarity_cut(self) -> float:
        return self.threshold

    @property
    def similarity_estimated(self) -> bool:
        return not self.verify

    def pair_similarity(self, a: pa.Array, b: pa.Array) -> np.ndarray:
        """The true Jaccard of paired texts' shingle sets (normalised and shingled as the stage does)."""
        ha, oa = text_shingles(a, self.normalize, self.shingle, self.n)
        hb, ob = text_shingles(b, self.normalize, self.shingle, self.n)
        return jaccard_of_lists(pa.ListArray.from_arrays(pa.array(oa.astype(np.int32)), pa.array(ha, pa.uint64())),
                                pa.ListArray.from_arrays(pa.array(ob.astype(np.int32)), pa.array(hb, pa.uint64())))

    def fit(self, ctx):
        log.info("stage %s: %d bands x %d rows; P(candidate | J) = %s", self.name, self._bands, self._rows,
                 s_curve(self._bands, self._rows))
        self._info.update(self.banding())
        return super().fit(ctx)
