"""The web-text policies: each holds one rule set's thresholds (the published defaults) and drops a row with
the first rule it breaks, in the published order, naming the rule and the value: `gopher_quality: mean word
length 12.4 > 10`. The statistics are the stages' columns, so a new threshold re-runs only the policy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BeforeValidator, Field

from curate.methods.hints import PolicyName
from curate.methods.webtext.presentation import RulesPresenter
from curate.policy import Policy, Rows, scatter

Bound = Annotated[float | None, Field(description="None: rule off")]


@dataclass(frozen=True)
class Rule:
    """One test on one column: rows where `fails(values)` are dropped with `<label> <value> <op> <bound>`, or
    with `label` alone when `op` is empty (a flag)."""

    column: str
    label: str
    op: str
    bound: float | None = None

    def fails(self, v: np.ndarray) -> np.ndarray:
        if self.op == "":
            return np.asarray(v, bool)
        return {"<": v < self.bound, ">": v > self.bound}[self.op]

    def reasons(self, policy: str, v: np.ndarray) -> pa.Array:
        if self.op == "":
            return pa.array([f"{policy}: {self.label}"] * len(v), pa.string())
        shown = pc.cast(pa.array(np.round(np.asarray(v, np.float64), 4)), pa.string())
        shown = pc.replace_substring_regex(shown, r"\.0$", "")
        return pc.binary_join_element_wise(f"{policy}: {self.label} ", shown, f" {self.op} {self.bound:g}", "")


class RulePolicy(Policy):
    """Drops a row with the first of `rules()` it breaks (rules whose bound is None are off)."""

    stage_type = ""
    presenter = RulesPresenter()

    def rules(self) -> list[Rule]:
        raise NotImplementedError

    def active_rules(self) -> list[Rule]:
        """The rules that are on (a bound of None turns a rule off)."""
        return self._rules()

    def _rules(self) -> list[Rule]:
        return [r for r in self.rules() if r.op == "" or r.bound is not None]

    def col(self, output: str) -> str:
        return f"{self.stage}.{output}"

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys([self.column, *(r.column for r in self._rules())]))

    def decide_rows(self, rows: Rows) -> tuple[np.ndarray, pa.Array, dict[str, np.ndarray]]:
        n = len(rows.values)
        first = np.full(n, -1)
        rules = self._rules()
        for k in reversed(range(len(rules))):  # the earliest broken rule names the row
            first[rules[k].fails(rows.cols[rules[k].column])] = k
        gone = np.flatnonzero(first >= 0)
        if not len(gone):
            return np.ones(n, bool), pa.nulls(n, pa.string()), {}
        text = pa.nulls(len(gone), pa.string())
        for k, rule in enumerate(rules):
            hit = first[gone] == k
            if hit.any():
                text = pc.replace_with_mask(text, pa.array(hit), rule.reasons(self.name, rows.cols[rule.column][gone[hit]]))
        return first < 0, scatter(text, gone, n), {}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "rules": [f"{r.label} {r.op} {r.bound:g}" if r.op else r.label
                                                for r in self._rules()]}


class GopherQualityPolicy(RulePolicy):
    """Gopher's quality rules (Rae et al. 2021, A.1.1), in datatrove's order: 50 to 100,000 words, mean word
    length 3 to 10, at most 0.1 '#' and 0.1 ellipses per word, at most 90% bullet lines and 30% lines ending in
    an ellipsis, at least 80% words with a letter, at least 2 stop words."""

    type = "gopher_quality"

    def __init__(self, column: Annotated[str, Field(description="the stage's `words` column (names the stage)")]
                 = "gopher_quality.words",
                 min_doc_words: Bound = 50, max_doc_words: Bound = 100_000,
                 min_avg_word_length: Bound = 3, max_avg_word_length: Bound = 10,
                 max_symbol_word_ratio: Bound = 0.1, max_bullet_lines_ratio: Bound = 0.9,
                 max_ellipsis_lines_ratio: Bound = 0.3, min_alpha_words_ratio: Bound = 0.8,
                 min_stop_words: Bound = 2, name: PolicyName = None):
        super().__init__(column, name)
        self.min_doc_words, self.max_doc_words = min_doc_words, max_doc_words
        self.min_avg_word_length, self.max_avg_word_length = min_avg_word_length, max_avg_word_length
        self.max_symbol_word_ratio, self.max_bullet_lines_ratio = max_symbol_word_ratio, max_bullet_lines_ratio
        self.max_ellipsis_lines_ratio, self.min_alpha_words_ratio = max_ellipsis_lines_ratio, min_alpha_words_ratio
        self.min_stop_words = min_stop_words

    def rules(self) -> list[Rule]:
        c = self.col
        return [Rule(self.column, "words", "<", self.min_doc_words),
                Rule(self.column, "words", ">", self.max_doc_words),
                Rule(c("mean_word_length"), "mean word length", "<", self.min_avg_word_length),
                Rule(c("mean_word_length"), "mean word length", ">", self.max_avg_word_length),
                Rule(c("hash_ratio"), "'#' per word", ">", self.max_symbol_word_ratio),
                Rule(c("ellipsis_ratio"), "ellipses per word", ">", self.max_symbol_word_ratio),
                Rule(c("bullet_lines_ratio"), "bullet lines", ">", self.max_bullet_lines_ratio),
                Rule(c("ellipsis_lines_ratio"), "lines ending in an ellipsis", ">", self.max_ellipsis_lines_ratio),
                Rule(c("alpha_words_ratio"), "words with a letter", "<", self.min_alpha_words_ratio),
                Rule(c("stop_words"), "stop words", "<", self.min_stop_words)]


def _n(key: object) -> object:
    """An n-gram size written as a JSON object key ("2": summary.json, read back by the report) is that int."""
    return int(key) if isinstance(key, str) and key.isdigit() else key


NGramBounds = Annotated[dict[Annotated[int, BeforeValidator(_n)], float],
                        Field(description="n -> the largest share of characters allowed")]


class GopherRepetitionPolicy(RulePolicy):
    """Gopher's repetition rules (Rae et al. 2021, table A1), in datatrove's order: an empty text; more than 30%
    repeated paragraphs or lines, 20% of the characters in them; the most frequent 2-, 3-, 4-gram over 20%,
    18%, 16% of the characters; repeated 5- to 10-grams over 15% ... 10%."""

    type = "gopher_repetition"

    def __init__(self, column: Annotated[str, Field(description="the stage's `chars` column (names the stage)")]
                 = "gopher_repetition.chars",
                 dup_para_frac: Bound = 0.3, dup_para_char_frac: Bound = 0.2,
                 dup_line_frac: Bound = 0.3, dup_line_char_frac: Bound = 0.2,
                 top_n_grams: NGramBounds = {2: 0.2, 3: 0.18, 4: 0.16},  # noqa: B006
                 dup_n_grams: NGramBounds = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},  # noqa: B006
                 name: PolicyName = None):
        super().__init__(column, name)
        self.dup_para_frac, self.dup_para_char_frac = dup_para_frac, dup_para_char_frac
        self.dup_line_frac, self.dup_line_char_frac = dup_line_frac, dup_line_char_frac
        self.top_n_grams = {int(n): b for n, b in top_n_grams.items()}  # (keys read back from JSON are strings)
        self.dup_n_grams = {int(n): b for n, b in dup_n_grams.items()}

    def rules(self) -> list[Rule]:
        c = self.col
        return [Rule(self.column, "empty text", "<", 1),
                Rule(c("dup_para_frac"), "repeated paragraphs", ">", self.dup_para_frac),
                Rule(c("dup_para_char_frac"), "characters in repeated paragraphs", ">", self.dup_para_char_frac),
                Rule(c("dup_line_frac"), "repeated lines", ">", self.dup_line_frac),
                Rule(c("dup_line_char_frac"), "characters in repeated lines", ">", self.dup_line_char_frac),
                *[Rule(c(f"top_{n}gram_char_frac"), f"characters in the top {n}-gram", ">", b)
                  for n, b in self.top_n_grams.items()],
                *[Rule(c(f"dup_{n}gram_char_frac"), f"characters in repeated {n}-grams", ">", b)
                  for n, b in self.dup_n_grams.items()]]


class C4Policy(RulePolicy):
    """C4's document rules: drop a document with "lorem ipsum" or a curly bracket in a line that reached that
    test, or fewer than 5 sentences in its kept lines."""

    type = "c4"

    def __init__(self, column: Annotated[str, Field(description="the stage's `sentences` column (names the "
                                                                "stage)")] = "c4.sentences",
                 min_num_sentences: Bound = 5,
                 filter_lorem_ipsum: Annotated[bool, Field(description="drop documents with lorem ipsum")] = True,
                 filter_curly_bracket: Annotated[bool, Field(description="drop documents with a '{'")] = True,
                 name: PolicyName = None):
        super().__init__(column, name)
        self.min_num_sentences = min_num_sentences
        self.filter_lorem_ipsum, self.filter_curly_bracket = filter_lorem_ipsum, filter_curly_bracket

    def rules(self) -> list[Rule]:
        flags = [Rule(self.col("lorem_ipsum"), "contains 'lorem ipsum'", "")] if self.filter_lorem_ipsum else []
        if self.filter_curly_bracket:
            flags.append(Rule(self.col("curly_bracket"), "contains a curly bracket", ""))
        return [*flags, Rule(self.column, "sentences", "<", self.min_num_sentences)]


class FineWebPolicy(RulePolicy):
    """FineWeb's rules (Penedo et al. 2024), in datatrove's order: no non-blank line; under 12% of lines ending
    in terminal punctuation; over 67% short lines; over 1% of the characters in repeated lines; over 0.3
    newlines per word."""

    type = "fineweb"

    def __init__(self, column: Annotated[str, Field(description="the stage's `lines` column (names the stage)")]
                 = "fineweb.lines",
                 line_punct_thr: Bound = 0.12,
                 line_punct_exclude_zero: Annotated[bool, Field(description="keep documents where no line ends "
                                                                            "in punctuation")] = False,
                 short_line_thr: Bound = 0.67, char_duplicates_ratio: Bound = 0.01, new_line_ratio: Bound = 0.3,
                 name: PolicyName = None):
        super().__init__(column, name)
        self.line_punct_thr, self.line_punct_exclude_zero = line_punct_thr, line_punct_exclude_zero
        self.short_line_thr, self.char_duplicates_ratio = short_line_thr, char_duplicates_ratio
        self.new_line_ratio = new_line_ratio

    def rules(self) -> list[Rule]:
        c = self.col
        return [Rule(self.column, "non-blank lines", "<", 1),
                _PunctRule(c("line_punct_ratio"), "lines ending in punctuation", "<", self.line_punct_thr,
                           self.line_punct_exclude_zero),
                Rule(c("short_line_ratio"), "short lines", ">", self.short_line_thr),
                Rule(c("char_dup_ratio"), "characters in repeated lines", ">", self.char_duplicates_ratio),
                Rule(c("list_ratio"), "newlines per word", ">", self.new_line_ratio)]


@dataclass(frozen=True)
class _PunctRule(Rule):
    exclude_zero: bool = False

    def fails(self, v: np.ndarray) -> np.ndarray:
        bad = super().fails(v)
        return bad & (v != 0) if self.exclude_zero else bad
