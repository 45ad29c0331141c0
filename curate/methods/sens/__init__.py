"""Clustering-based sensitivity sampling (stage `sens`, policy `sample`)."""
from curate.methods.sens.policy import Sample
from curate.methods.sens.stage import Sensitivity

__all__ = ["Sensitivity", "Sample"]
