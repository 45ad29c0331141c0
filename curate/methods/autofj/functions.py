"""Join functions (pre-processing, tokenizer, token weight, distance) and their distances on pairs of
one join column, computed view by view (docs/methods/autofj.md, "Join functions")."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curate.methods.autofj.distances import (
    CHAR_DISTANCES,
    SET_DISTANCES,
    char_distances,
    idf_weights,
    set_distances,
    side_stats,
)
from curate.methods.autofj.text import (
    PREPROCESS,
    Vocabulary,
    count_matrix,
    pad_columns,
    preprocess,
    view_tokens,
)

_SPACE_OPTIONS = {
    "autofj_sm": (("lower", "lowerRemovePunctuationStem"), ("threeGram", "splitBySpace"), ("idfWeight",),
                  ("containCosineDistance", "jaccardDistance", "maxincDistance"), ("jaroDistance",)),
    "autofj_md": (("lower", "lowerRemovePunctuationStem"), ("threeGram", "splitBySpace"),
                  ("uniformWeight", "idfWeight"), SET_DISTANCES, CHAR_DISTANCES),
    "autofj_lg": (PREPROCESS, ("threeGram", "splitBySpace"), ("uniformWeight", "idfWeight"), SET_DISTANCES,
                  CHAR_DISTANCES),
}
SPACES = tuple(_SPACE_OPTIONS)


@dataclass(frozen=True)
class JoinFunction:
    """Named as in the reference: `{p}_{t}_{w}_{d}`, with None for t and w of character distances."""

    p: str
    t: str | None
    w: str | None
    d: str

    @property
    def name(self) -> str:
        return f"{self.p}_{self.t}_{self.w}_{self.d}"

    @classmethod
    def parse(cls, name: str) -> JoinFunction:
        p, t, w, d = name.split("_")
        f = cls(p, None if t == "None" else t, None if w == "None" else w, d)
        if f.p not in PREPROCESS or f.d not in SET_DISTANCES + CHAR_DISTANCES:
            raise ValueError(f"unknown join function {name!r}")
        return f


def space_functions(space: str) -> list[str]:
    """The names of a built-in space's join functions (14, 68 or 136)."""
    if space not in _SPACE_OPTIONS:
        raise ValueError(f"unknown join function space {space!r}; known: {', '.join(SPACES)}")
    ps, ts, ws, sets, chars = _SPACE_OPTIONS[space]
    names = [JoinFunction(p, t, w, d).name for p in ps for t in ts for w in ws for d in sets]
    return names + [JoinFunction(p, None, None, d).name for p in ps for d in chars]


PAIR_CHUNK = 1 << 20  # pairs per pass: bounds the gathered sparse rows' memory


def _chunked(fn, li: np.ndarray, ri: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """fn over pair chunks, results concatenated per name."""
    if len(li) <= PAIR_CHUNK:
        return fn(li, ri)
    parts = [fn(li[s:s + PAIR_CHUNK], ri[s:s + PAIR_CHUNK]) for s in range(0, len(li), PAIR_CHUNK)]
    return {n: np.concatenate([p[n] for p in parts]) for n in names}


class ColumnViews:
    """One join column of L: its pre-processed strings and token matrices per view, built on demand."""

    def __init__(self, left_values: list[str]):
        self.left = left_values
        self._pre: dict[str, list[str]] = {}
        self._views: dict[tuple[str, str], tuple] = {}

    def pre(self, p: str) -> list[str]:
        if p not in self._pre:
            self._pre[p] = preprocess(self.left, p)
        return self._pre[p]

    def view(self, p: str, t: str):
        """(vocabulary, L token counts) of the view (p, t); the vocabulary is L's."""
        if (p, t) not in self._views:
            toks = view_tokens(self.pre(p), t)
            vocab = Vocabulary.from_tokens(toks.flat)
            self._views[(p, t)] = (vocab, count_matrix(toks, vocab))
        return self._views[(p, t)]

    def distances(self, names: list[str], li: np.ndarray, ri: np.ndarray, right_values: list[str] | None = None
                  ) -> dict[str, np.ndarray]:
        """Distances f(l, r) of pairs (L row li, query row ri) for each named function; queries are
        `right_values`, or L itself when None (L-L pairs)."""
        out: dict[str, np.ndarray] = {}
        funcs = [JoinFunction.parse(n) for n in names]
        right_pre: dict[str, list[str]] = {}

        def rpre(p: str) -> list[str]:
            if right_values is None:
                return self.pre(p)
            if p not in right_pre:
                right_pre[p] = preprocess(right_values, p)
            return right_pre[p]

        groups: dict[tuple[str, str, str], list[JoinFunction]] = {}
        for f in funcs:
            if f.t is None:
                out[f.name] = _chunked(lambda a, b, f=f: {f.d: char_distances(self.pre(f.p), rpre(f.p), a, b, f.d)},
                                       li, ri, (f.d,))[f.d]
            else:
                groups.setdefault((f.p, f.t, f.w), []).append(f)
        for (p, t, w), fs in groups.items():
            vocab, counts_l = self.view(p, t)
            if right_values is None:
                counts_r = counts_l
            else:
                counts_r = count_matrix(view_tokens(rpre(p), t), vocab)
            width = max(counts_l.shape[1], counts_r.shape[1])
            cl, cr = pad_columns(counts_l, width), pad_columns(counts_r, width)
            if w == "idfWeight":
                weights = idf_weights(cl, width)
            elif w == "uniformWeight":
                weights = np.ones(width)
            else:
                raise ValueError(f"unknown token weight {w!r}")
            sl = side_stats(cl, weights)
            sr = sl if right_values is None else side_stats(cr, weights)
            names_d = tuple(f.d for f in fs)
            d = _chunked(lambda a, b: set_distances(sl, sr, weights, a, b, names_d), li, ri, names_d)  # noqa: B023 (called in this iteration)
            for f in fs:
                out[f.name] = d[f.d]
        return out
