"""What the report shows of the `cluster_quota` policy beyond the generic tables: its drop reasons in plain
words (its per-cluster table is in the policy's details, shown as a table by the report)."""
from __future__ import annotations

import re
from typing import Any

from curate.presentation import Presenter

_QUOTA = re.compile(r"^cluster (?P<c>\S+) quota (?P<q>\S+) of (?P<n>\S+): (?P<col>\S+) (?P<v>\S+) "
                    r"not among the kept \((?P<order>\w+)\)$")
_KEPT = {"hard": "the rows farthest from its centre (the hardest examples)",
         "easy": "the rows nearest its centre (the most typical examples)",
         "random": "a seeded random choice of its rows"}


class QuotaPresenter(Presenter):
    """The `cluster_quota` policy's reasons: a row outside its cluster's quota, or outside the dedup pool. Works on
    a row's reason and on its pattern (numbers as #) alike."""

    def reason(self, member: Any, pattern: str) -> str:
        m = _QUOTA.match(pattern)
        if m is None:
            return pattern
        return (f"concept cluster {m['c']} keeps {m['q']} of its {m['n']} rows, "
                f"{_KEPT.get(m['order'], m['order'])}; this row ({m['col']} {m['v']}) was not among them")
