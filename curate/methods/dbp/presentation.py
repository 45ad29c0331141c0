"""What the report shows of the `cluster_quota` policy beyond the generic tables: its drop reasons in plain
words (its per-cluster table is in the policy's details, shown as a table by the report)."""
from __future__ import annotations

from typing import Any

from curate.presentation import Presenter

_KEPT = {"hard": "the rows farthest from its centre (the hardest examples)",
         "easy": "the rows nearest its centre (the most typical examples)",
         "random": "a seeded random choice of its rows"}


class QuotaPresenter(Presenter):
    """The `cluster_quota` policy's reasons: a row outside its cluster's quota, or outside the dedup pool."""

    def reason(self, member: Any, pattern: str) -> str:
        if "not among the kept" in pattern:
            return (f"its concept cluster was over its quota: the cluster keeps {_KEPT.get(member.order, member.order)}, "
                    "and this row was not among them")
        return pattern
