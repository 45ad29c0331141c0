"""PII and secrets: the `pii` stage (per-row counts by kind, and the text with each find replaced by a
placeholder, which replaces the text column in `curate export --materialize`) and the `pii` policy."""
from curate.methods.pii.policy import PIIPolicy
from curate.methods.pii.stage import PII

__all__ = ["PII", "PIIPolicy"]
