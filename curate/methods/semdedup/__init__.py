"""SemDeDup: near-duplicates inside k-means clusters (stage and policy `semdedup`)."""
from curate.methods.semdedup.policy import SemDeDupPolicy
from curate.methods.semdedup.stage import SemDeDup

__all__ = ["SemDeDup", "SemDeDupPolicy"]
