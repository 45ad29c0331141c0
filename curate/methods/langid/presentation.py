"""What the report and the CLI show of a `languages` policy: the rows it dropped per identified language (not
listed) and for a confidence below its threshold (listed), and the rows of a listed language nearest to the
threshold, just dropped and just kept, with their text; after a run, the languages dropped most.

Read from the manifest (the langid stage's language and confidence columns, streamed part by part) and the
input shards (the text of the rows shown).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow.compute as pc

from curate.presentation import (
    ID,
    ROW,
    SHARD,
    Block,
    Card,
    CardGroup,
    Details,
    Gallery,
    Heading,
    Presenter,
    RunView,
    Table,
    Text,
    num,
)

NEAREST = 4       # rows shown on each side of the confidence threshold
TOP_LANGUAGES = 20
LOW = "listed, confidence below the threshold"


class LanguagesPresenter(Presenter):
    id = "languages"
    title = "Languages"

    def section(self, run: RunView, members: Sequence[Any]) -> list[Block]:
        out: list[Block] = []
        for policy in members:
            dropped, near, decided = _scan(run, policy)
            rows = [[lang, num(n)] for lang, n in dropped.most_common(TOP_LANGUAGES)]
            rest = sum(dropped.values()) - sum(n for _, n in dropped.most_common(TOP_LANGUAGES))
            out += [Heading(f"{policy.name}: keeps {', '.join(policy.languages)} with confidence >= "
                            f"{policy.min_confidence:g}"),
                    Table(["identified language (or reason)", "rows dropped"], rows, empty="no row dropped"),
                    Text(f"{num(decided)} rows decided, {num(sum(dropped.values()))} dropped"
                         + (f"; {num(rest)} more in other languages." if rest else "."), "muted")]
            groups = [CardGroup(f"confidence {policy.min_confidence:g}: just {side}",
                                [Card(shard, row, id_, lines=[f"{lang} {conf:.4f}"], highlight=side == "dropped")
                                 for _, shard, row, id_, lang, conf in near[side]])
                      for side in ("dropped", "kept") if near[side]]
            if groups:
                out.append(Details(f"{policy.name}: listed-language rows nearest to the confidence threshold",
                                   [Gallery(groups)]))
        return out

    def lines(self, run: RunView, members: Sequence[Any]) -> list[str]:
        out = []
        for policy in members:
            dropped, _, _ = _scan(run, policy, nearest=0)
            if dropped:
                out.append(f"  policy {policy.name} drops most: "
                           + ", ".join(f"{lang} {num(n)}" for lang, n in dropped.most_common(5)))
        return out


def _scan(run: RunView, policy: Any, nearest: int = NEAREST) -> tuple[Counter, dict[str, list[tuple]], int]:
    """(rows dropped per language or LOW, the listed-language rows nearest the threshold per side, rows decided)."""
    confidence_col, language_col = policy.columns
    keep_col = f"keep.{policy.name}"
    dropped: Counter = Counter()
    near: dict[str, list[tuple]] = {"dropped": [], "kept": []}
    decided = 0
    for part in run.manifest([confidence_col, language_col, keep_col, ID, SHARD, ROW]):
        part = part.filter(pc.is_valid(part.column(keep_col)))
        decided += part.num_rows
        keep = part.column(keep_col).to_numpy(zero_copy_only=False).astype(bool)
        language = np.asarray(part.column(language_col).to_pylist(), dtype=object).astype(str)
        confidence = np.asarray(part.column(confidence_col).to_numpy(zero_copy_only=False), np.float64)
        listed = np.isin(language, policy.wanted())
        dropped.update(language[~keep & ~listed].tolist())
        dropped[LOW] += int((~keep & listed).sum())
        if nearest:
            distance = np.abs(confidence - policy.min_confidence)
            for side, mask in (("dropped", listed & ~keep), ("kept", keep)):
                idx = np.flatnonzero(mask)
                for j in idx[np.argsort(distance[idx], kind="stable")[:nearest]]:
                    near[side].append((float(distance[j]), part.column(SHARD)[j].as_py(), int(part.column(ROW)[j].as_py()),
                                       part.column(ID)[j].as_py(), language[j], float(confidence[j])))
                near[side] = sorted(near[side], key=lambda x: x[0])[:nearest]
    if not dropped[LOW]:
        del dropped[LOW]
    return dropped, near, decided
