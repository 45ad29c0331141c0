"""Auto-FuzzyJoin: link rows to a reference table at a precision target, no labels (stage `autofj`).

`program.fit` / `program.Matcher` are the algorithm without the engine; `stage.AutoFJ` runs it over shards."""
from curate.methods.autofj.stage import AutoFJ

__all__ = ["AutoFJ"]
