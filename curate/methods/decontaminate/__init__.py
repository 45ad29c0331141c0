"""Benchmark decontamination: the `decontaminate` stage (word n-gram overlap with benchmark files, per row; with
`remove: span`, the text with the overlaps cut out, which replaces the text column in `curate export
--materialize`) and the `decontaminate` policy."""
from curate.methods.decontaminate.policy import DecontaminatePolicy
from curate.methods.decontaminate.stage import Decontaminate

__all__ = ["Decontaminate", "DecontaminatePolicy"]
