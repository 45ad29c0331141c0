"""Fuzzy joins against a reference table. `curate.join.autofj`: Auto-FuzzyJoin (specs/autofj.md)."""
from curate.join import autofj  # noqa: F401
