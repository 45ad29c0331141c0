"""Concept-cluster complexity pruning, DBP (stage `dbp`, policy `cluster_quota`)."""
from curate.methods.dbp.policy import ClusterQuota
from curate.methods.dbp.stage import DBP

__all__ = ["DBP", "ClusterQuota"]
