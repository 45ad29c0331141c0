"""WFPP: word-frequency-based image-text pair pruning (stage `wfpp`, docs/methods/wfpp.md).

A caption's score is (1 - prod of factors) / n over its first `max_tokens` word-level tokens (CLIP's
simple-tokenizer cleaning and split, no BPE), where a word's factor is word2vec's subsampling
probability P(w) = 1 - sqrt(t / f(w)) with f(w) = count(w) / total, counted over the dataset by `fit`.
Keeping the highest scores flattens the word distribution of the kept captions.

Behaviour that follows from the reference code (documented on purpose):
- Captions made only of very frequent words have factors near 1, score near 0 and are pruned first.
- A word with f just above t has a factor near 0, giving the maximum score 1/n for that length.
- Rare (f < t, P < 0) and unknown (count < min_count) words have factor 1 but still count in n, so
  adding a rare word *lowers* the score; a caption of only rare or unknown words scores 0.
- Length normalisation favours short captions; only the first `max_tokens` tokens are scored (n is
  counted after truncation), while counting in `fit` uses every token (of the first
  `count_max_chars` characters of each caption).

Errors: a null caption, or a caption column that is not a string type, gives `bad_caption`; a caption
with no tokens after cleaning gives `empty_caption`. Those rows get null score/n_tokens/n_neutral.
The error value is `"<code>: <message>"`.

Implementation. Tokenising, counting and the word -> factor lookup are the kernel in
kernels/words.py (vectorised for plain ASCII rows, exact to the `regex` pattern on all text). The
product over factors is `np.multiply.reduceat`, a left-to-right loop, so scores are bit-identical to the
straightforward implementation in testkit/wfpp_reference.py.

Fit map output (`count_fn`): a table `word` (string), `count` (int64), `part` (int32 =
the kernels.hashing hash of the word mod `partitions`), with per-shard row tallies in the schema metadata under the keys
`wfpp.rows`, `wfpp.rows_null` (null, or the column is not a string type), `wfpp.rows_no_tokens`
(non-null rows without tokens) and `wfpp.rows_clipped` (longer than `count_max_chars`), as ASCII
decimal strings. Fit reduce: two passes over hash partitions of the words (each merged on its own),
the first for `total`, the second for the table. Artifact: `word`, `p` for the words with
count >= min_count and P >= 0 (the spec's count >= max(min_count, t * total), decided on P so that
rounding at f = t cannot disagree with the factor rule), sorted by word, with t, min_count, total,
vocab_size (words with count >= min_count), n_p_nonneg, tokenizer, ftfy and the row tallies in the
schema metadata.
"""
from __future__ import annotations

from typing import Annotated, Any

import ftfy
import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import Field

from curate.methods.hints import StageName
from curate.stage import FitContext, Stage
from kernels.hashing import hash_strings
from kernels.words import (
    TOKENIZER_VERSION,
    VocabIndex,
    count_words,
    is_string_type,
    split_column,
)

FTFY_VERSION = ftfy.__version__

META_ROWS = b"wfpp.rows"
META_NULL = b"wfpp.rows_null"
META_EMPTY = b"wfpp.rows_no_tokens"
META_CLIPPED = b"wfpp.rows_clipped"

ERR_NULL = "bad_caption: caption is null"
ERR_EMPTY = "empty_caption: no tokens after cleaning"

_MAX_INT16 = 32767


def _err_type(column) -> str:
    return f"bad_caption: caption column has type {column.type}, expected a string type"


# --------------------------------------------------------------------------------------------------
# Counting (fit map) and the vocabulary (fit reduce)
# --------------------------------------------------------------------------------------------------
def _partition(words: pa.Array, partitions: int) -> np.ndarray:
    """Stable partition of each word: its kernels.hashing hash mod partitions (0 when partitions == 1)."""
    if partitions == 1:
        return np.zeros(len(words), np.int32)
    return (hash_strings(words) % np.uint64(partitions)).astype(np.int32)


def count_tokens(column, count_max_chars: int = 10_000, partitions: int = 1) -> pa.Table:
    """Fit map: token counts of one shard's caption column (see the module docstring)."""
    n = len(column)
    schema = pa.schema([("word", pa.large_string()), ("count", pa.int64()), ("part", pa.int32())])
    if not is_string_type(column.type):
        meta = {META_ROWS: n, META_NULL: n, META_EMPTY: 0, META_CLIPPED: 0}
        return schema.with_metadata({k: str(v).encode() for k, v in meta.items()}).empty_table()
    c = count_words(column, clip=count_max_chars)
    if len(c.words):
        table = pa.table([c.words, c.counts, _partition(c.words, partitions)], schema=schema)
    else:
        table = schema.empty_table()
    meta = {META_ROWS: n, META_NULL: c.rows_null, META_EMPTY: c.rows_no_tokens, META_CLIPPED: c.rows_clipped}
    return table.replace_schema_metadata({k: str(v).encode() for k, v in meta.items()})


def _merge(tables: list[pa.Table], part: int | None) -> pl.DataFrame:
    """Sum counts by word over shard tables (only rows of partition `part` when given)."""
    frames = []
    for t in tables:
        df = pl.from_arrow(t.select(["word", "count", "part"]))
        if part is not None:
            df = df.filter(pl.col("part") == part)
        frames.append(df.select("word", "count"))
    if not frames:
        return pl.DataFrame(schema={"word": pl.String, "count": pl.Int64})
    return pl.concat(frames).group_by("word").agg(pl.col("count").sum())


def _probabilities(merged: pl.DataFrame, t: float, min_count: int, total: int) -> pl.DataFrame:
    """Words with count >= min_count and P >= 0, with P = 1 - sqrt(t / (count / total))."""
    kept = merged.filter(pl.col("count") >= min_count)
    counts = kept["count"].to_numpy()
    if len(counts) == 0:
        return pl.DataFrame(schema={"word": pl.String, "p": pl.Float64})
    p = 1.0 - np.sqrt(t / (counts.astype(np.float64) / float(total)))
    keep = p >= 0
    return pl.DataFrame({"word": kept["word"].filter(pl.Series(keep)), "p": p[keep]})


def _artifact(words: pl.DataFrame, meta: dict[str, Any]) -> pa.Table:
    words = words.sort("word")
    table = pa.table({"word": words["word"].to_arrow().cast(pa.string()),
                      "p": pa.array(words["p"].to_numpy(), pa.float64())})
    return table.replace_schema_metadata({k.encode(): str(v).encode() for k, v in meta.items()})


def _meta(t: float, min_count: int, total: int, vocab_size: int, n_words: int, rows: int = 0,
          null: int = 0, empty: int = 0, clipped: int = 0) -> dict[str, Any]:
    return {"t": repr(float(t)), "min_count": min_count, "total": total, "vocab_size": vocab_size,
            "n_p_nonneg": n_words, "tokenizer": TOKENIZER_VERSION, "ftfy": FTFY_VERSION,
            "rows": rows, "rows_null": null, "rows_no_tokens": empty, "rows_clipped": clipped}


def vocabulary_from_counts(counts: pa.Table, t: float, min_count: int, **row_tallies: int) -> pa.Table:
    """The artifact from merged counts (`word`, `count`; one row per word): spec steps 2-3.

    Keeps words with count >= min_count and P >= 0 (the words whose factor is not 1; the same set
    as count >= max(min_count, t * total) up to floating-point rounding at f = t).
    """
    merged = pl.from_arrow(counts.select(["word", "count"]))
    kept = merged.filter(pl.col("count") >= min_count)
    total = int(kept["count"].sum())
    words = _probabilities(merged, t, min_count, total)
    return _artifact(words, _meta(t, min_count, total, kept.height, words.height, **row_tallies))


# --------------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------------
def _meta_int(table: pa.Table, key: bytes) -> int:
    md = table.schema.metadata or {}
    return int(md.get(key, b"0"))


class WFPP(Stage):
    """Word-frequency-based pair pruning (WFPP): scores a caption by the word2vec subsampling probabilities of
    its words, counted over the dataset; keeping the highest scores flattens the kept captions' word
    distribution. docs/methods/wfpp.md has the details."""

    type = "wfpp"
    version = "1"

    unkeyed = frozenset({"partitions"})  # the merge is exact: partitions never change the scores

    def __init__(self,
                 text_column: Annotated[str, Field(min_length=1, description="the caption column")] = "caption",
                 t: Annotated[float, Field(gt=0, lt=1, description="word2vec's subsampling threshold t, "
                                                                   "P(w) = 1 - sqrt(t / f(w))")] = 1e-7,
                 min_count: Annotated[int, Field(ge=1, description="words counted fewer times are unknown "
                                                                  "(factor 1)")] = 5,
                 max_tokens: Annotated[int, Field(ge=1, le=_MAX_INT16, description="tokens scored per caption "
                                                                                   "(the first ones)")] = 30,
                 count_max_chars: Annotated[int, Field(ge=1, description="characters of each caption counted "
                                                                        "by fit")] = 10_000,
                 partitions: Annotated[int, Field(ge=1, description="hash partitions of the vocabulary merge "
                                                                   "(bounds fit memory)")] = 1,
                 name: StageName = None):
        super().__init__(name)
        self.text_column = text_column
        self.t = float(t)
        self.min_count, self.max_tokens = min_count, max_tokens
        self.count_max_chars, self.partitions = count_max_chars, partitions
        self._index: VocabIndex | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.text_column,)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        return {"score": pa.float64(), "n_tokens": pa.int16(), "n_neutral": pa.int16(), "error": pa.string()}

    def depends_on(self) -> dict[str, Any]:
        return {"tokenizer": TOKENIZER_VERSION, "ftfy": FTFY_VERSION}

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        # A null-typed column (an empty or all-null shard) is let through: its rows get bad_caption.
        if is_string_type(type) or pa.types.is_null(type):
            return None
        return f"is {type}; needs a string"

    # --- fit ------------------------------------------------------------------------------------
    def count_fn(self, table: pa.Table) -> pa.Table:
        """Fit map over one shard (a table holding the caption column)."""
        return count_tokens(table.column(self.text_column), self.count_max_chars, self.partitions)

    def fit(self, ctx: FitContext) -> pa.Table:
        shards = list(ctx.map(self.count_fn, [self.text_column]))
        tallies = {name: sum(_meta_int(s, key) for s in shards)
                   for name, key in (("rows", META_ROWS), ("null", META_NULL), ("empty", META_EMPTY),
                                     ("clipped", META_CLIPPED))}
        # Pass 1: total and vocabulary size, one partition at a time.
        total = vocab = 0
        for p in range(self.partitions):
            kept = _merge(shards, p if self.partitions > 1 else None).filter(pl.col("count") >= self.min_count)
            total += int(kept["count"].sum())
            vocab += kept.height
        # Pass 2: the words with P >= 0 of each partition.
        words = [_probabilities(_merge(shards, p if self.partitions > 1 else None), self.t, self.min_count, total)
                 for p in range(self.partitions)]
        merged = pl.concat(words)
        return _artifact(merged, _meta(self.t, self.min_count, total, vocab, merged.height, **tallies))

    # --- score ----------------------------------------------------------------------------------
    def setup(self, artifact: pa.Table | None) -> None:
        if artifact is None:
            raise ValueError("wfpp: setup needs the vocabulary artifact produced by fit")
        self._index = VocabIndex(artifact.column("word"), artifact.column("p").to_numpy())

    def score(self, batch: pa.Table) -> pa.Table:
        if self._index is None:
            raise RuntimeError("wfpp: score called before setup")
        column = batch.column(self.text_column)
        n = batch.num_rows
        if not is_string_type(column.type):
            return self._table(np.zeros(n), np.zeros(n, np.int64), np.zeros(n, np.int64),
                               np.zeros(n, bool), pa.array([_err_type(column)] * n, pa.string()))
        tokens = split_column(column, max_tokens=self.max_tokens)
        prod = np.ones(n)
        ntok = np.zeros(n, np.int64)
        neutral = np.zeros(n, np.int64)
        for toks, rows in tokens.groups():
            if len(toks) == 0:
                continue
            factor, found = self._index.lookup(toks)
            k = toks.counts()
            nonempty = np.flatnonzero(k > 0)
            first = toks.ptr[:-1][nonempty]
            p = np.multiply.reduceat(factor, first)
            nn = np.add.reduceat((~found).view(np.uint8), first, dtype=np.int64)
            target = rows[nonempty]
            prod[target], ntok[target], neutral[target] = p, k[nonempty], nn
        valid = tokens.valid
        ok = valid & (ntok > 0)
        if ok.all():
            errors = pa.nulls(n, pa.string())
        else:
            code = pa.array(valid.astype(np.int8), mask=ok)  # 0: null caption, 1: no tokens
            errors = pa.DictionaryArray.from_arrays(code, pa.array([ERR_NULL, ERR_EMPTY])).cast(pa.string())
        return self._table(prod, ntok, neutral, ok, errors)

    @staticmethod
    def _table(prod, ntok, neutral, ok, errors) -> pa.Table:
        with np.errstate(divide="ignore", invalid="ignore"):
            score = (1.0 - prod) / ntok
        bad = ~ok
        return pa.table({
            "score": pa.array(score, pa.float64(), mask=bad),
            "n_tokens": pa.array(ntok.astype(np.int16), pa.int16(), mask=bad),
            "n_neutral": pa.array(neutral.astype(np.int16), pa.int16(), mask=bad),
            "error": errors,
        })

    def describe(self, artifact: pa.Table | None) -> dict[str, Any]:
        if artifact is None:
            return {}
        md = {k.decode(): v.decode() for k, v in (artifact.schema.metadata or {}).items()}
        out: dict[str, Any] = {"t": float(md.get("t", "nan"))}
        for key in ("min_count", "total", "vocab_size", "n_p_nonneg", "rows", "rows_null",
                    "rows_no_tokens", "rows_clipped"):
            if key in md:
                out[key] = int(md[key])
        for key in ("tokenizer", "ftfy"):
            if key in md:
                out[key] = md[key]
        return out
