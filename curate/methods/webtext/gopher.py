"""`gopher_quality` and `gopher_repetition`: the statistics of the MassiveText quality rules (Rae et al. 2021,
Gopher, section A.1.1 and table A1), one score column each; the `gopher_quality` and `gopher_repetition`
policies hold the thresholds."""
from __future__ import annotations

from typing import Annotated

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.errors import ConfigError
from curate.methods.hints import StageName
from curate.methods.webtext.chars import tables
from curate.methods.webtext.text import RuleStage, TextColumn, WordsStage, masked, null_errors, ratio
from kernels.textrules import gopher_quality, gopher_repetition

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")


class GopherQuality(RuleStage):
    """Gopher's quality statistics: words (tokens with a character other than punctuation), their mean length,
    '#' and ellipses per token, bullet and ellipsis-ending lines, tokens with a letter, distinct stop words."""

    type = "gopher_quality"
    version = "1"

    def __init__(self, text: TextColumn = "text", words: WordsStage = "words",
                 stop_words: Annotated[list[str], Field(description="the stop words counted (case-sensitive, "
                                                                    "whole tokens)")] = list(STOP_WORDS),  # noqa: B006
                 name: StageName = None):
        super().__init__(text, words, name)
        self.stop_words = list(stop_words)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        i, f = pa.int64(), pa.float64()
        return {"words": i, "tokens": i, "mean_word_length": f, "hash_ratio": f, "ellipsis_ratio": f,
                "bullet_lines_ratio": f, "ellipsis_lines_ratio": f, "alpha_words_ratio": f, "stop_words": i,
                "error": pa.string()}

    def _stop_words(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct stop words' UTF-8 bytes, concatenated, and their offsets."""
        encoded = [w.encode() for w in dict.fromkeys(self.stop_words)]
        return (np.frombuffer(b"".join(encoded) or b"\0", np.uint8),
                np.cumsum([0] + [len(w) for w in encoded]).astype(np.int64))

    def score(self, batch: pa.Table) -> pa.Table:
        data, offsets, valid, spans, ptr = self.buffers(batch)
        c = gopher_quality(data, offsets, valid, spans, ptr, tables()[0], *self._stop_words())
        tokens, words, chars, alpha, stop, hashes, ellipses, lines, bullets, ends = c.T
        cols = {"words": words, "tokens": tokens, "mean_word_length": ratio(chars, words),
                "hash_ratio": ratio(hashes, tokens), "ellipsis_ratio": ratio(ellipses, tokens),
                "bullet_lines_ratio": ratio(bullets, lines), "ellipsis_lines_ratio": ratio(ends, lines),
                "alpha_words_ratio": ratio(alpha, tokens), "stop_words": stop}
        out = {k: masked(v, valid, self.outputs[k]) for k, v in cols.items()}
        return pa.table({**out, "error": null_errors(valid, self.text)})


NGrams = Annotated[list[int], Field(description="n-gram sizes")]


class GopherRepetition(RuleStage):
    """Gopher's repetition statistics: repeated paragraphs and lines (share of them, share of the characters),
    the characters of the most frequent n-gram (n = 2, 3, 4) and of repeated n-grams (n = 5 ... 10)."""

    type = "gopher_repetition"
    version = "1"

    def __init__(self, text: TextColumn = "text", words: WordsStage = "words",
                 top_ngrams: NGrams = [2, 3, 4], dup_ngrams: NGrams = [5, 6, 7, 8, 9, 10],  # noqa: B006
                 name: StageName = None):
        super().__init__(text, words, name)
        if any(n < 1 for n in [*top_ngrams, *dup_ngrams]):
            raise ConfigError(f"stage gopher_repetition: n-gram sizes must be at least 1, got "
                              f"{top_ngrams} and {dup_ngrams}")
        self.top_ngrams, self.dup_ngrams = list(top_ngrams), list(dup_ngrams)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        f = pa.float64()
        cols = {"chars": pa.int64(), "dup_para_frac": f, "dup_para_char_frac": f, "dup_line_frac": f,
                "dup_line_char_frac": f}
        cols.update({f"top_{n}gram_char_frac": f for n in self.top_ngrams})
        cols.update({f"dup_{n}gram_char_frac": f for n in self.dup_ngrams})
        return {**cols, "error": pa.string()}

    def score(self, batch: pa.Table) -> pa.Table:
        data, offsets, valid, spans, ptr = self.buffers(batch)
        c = gopher_repetition(data, offsets, valid, spans, ptr, tables()[0],
                              np.array(self.top_ngrams, np.int64), np.array(self.dup_ngrams, np.int64))
        chars = c[:, 0]
        cols = {"chars": chars, "dup_para_frac": ratio(c[:, 2], c[:, 1]), "dup_para_char_frac": ratio(c[:, 3], chars),
                "dup_line_frac": ratio(c[:, 5], c[:, 4]), "dup_line_char_frac": ratio(c[:, 6], chars)}
        for q, n in enumerate(self.top_ngrams):
            cols[f"top_{n}gram_char_frac"] = ratio(c[:, 7 + q], chars)
        for q, n in enumerate(self.dup_ngrams):
            cols[f"dup_{n}gram_char_frac"] = ratio(c[:, 7 + len(self.top_ngrams) + q], chars)
        types = self.outputs
        out = {k: masked(v, valid, types[k]) for k, v in cols.items()}
        return pa.table({**out, "error": null_errors(valid, self.text)})
