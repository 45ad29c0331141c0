"""The web-text rule policies' report section and CLI lines (RulesPresenter): rows dropped per rule as the drop
reasons count them, and the rows nearest to each threshold on the right side of it."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

import curate
from curate.methods.webtext import FineWeb, FineWebPolicy, GopherQuality, GopherQualityPolicy, Words
from curate.methods.webtext.presentation import RulesPresenter
from curate.presentation import Card, Details, Gallery, Table
from curate.report import write_report
from curate.report.view import RunDirectory, presenters
from testkit.helpers import write_shards

WORDS = ["the", "data", "of", "and", "curate", "text", "rule", "extraordinarily", "a", "to", "is", "x"]


def corpus(n: int = 120, seed: int = 0) -> pa.Table:
    """Documents of varied line counts, line lengths and punctuation: each FineWeb and Gopher rule drops some."""
    rng = np.random.default_rng(seed)
    texts = []
    for i in range(n):
        lines = []
        for _ in range(int(rng.integers(1, 12))):
            words = rng.choice(WORDS, int(rng.integers(1, 14)), p=None)
            lines.append(" ".join(words) + ("." if rng.random() < 0.5 else ""))
        if i % 9 == 0:
            lines += lines[:2]
        texts.append("\n".join(lines))
    texts[5] = None
    return pa.table({"id": [f"d{i:03d}" for i in range(n)], "text": pa.array(texts, pa.string())})


def test_rows_dropped_per_rule_and_the_rows_nearest_each_threshold(tmp_path):
    data = write_shards(tmp_path / "data", corpus(), 3)
    fineweb, gopher = FineWebPolicy(), GopherQualityPolicy(min_doc_words=20)
    pipe = curate.Pipeline([Words(), FineWeb(), GopherQuality()], [fineweb, gopher], id_column="id")
    summary = curate.run(pipe, data, tmp_path / "run", executor="local")
    view = RunDirectory(tmp_path / "run", summary)
    found, problems = presenters(view)
    [(presenter, members)] = [(p, m) for p, m in found if isinstance(p, RulesPresenter)]
    assert [m.name for m in members] == ["fineweb", "gopher_quality"] and not problems
    blocks = presenter.section(view, members)
    tables = [b for b in blocks if isinstance(b, Table)]
    rows = curate.load_manifest(tmp_path / "run").to_pylist()

    # fineweb is the first policy: its drop reasons in the manifest name the first rule each row broke.
    reasons = Counter(r["drop_reason"].split(": ", 1)[1].rsplit(" ", 3)[0] for r in rows
                      if r["drop_reason"] and r["drop_reason"].startswith("fineweb: "))
    table = {row[0].rsplit(" ", 2)[0]: int(row[1].replace(",", "")) for row in tables[0].rows}
    assert {k: v for k, v in table.items() if v} == dict(reasons) and len(reasons) >= 2
    assert sum(table.values()) == summary["policies"]["fineweb"]["dropped"]
    gopher_first = sum(int(row[1].replace(",", "")) for row in tables[1].rows)
    assert gopher_first == summary["policies"]["gopher_quality"]["dropped"] > 0

    # The rows shown beside a threshold are on their side of it and nearest to it among the decided rows.
    rules = {f"{r.label} {r.op} {r.bound:g}": r for r in fineweb.active_rules() if r.op}
    gallery = next(b for b in blocks if isinstance(b, Details) and b.summary.startswith("fineweb")).blocks[0]
    assert isinstance(gallery, Gallery) and gallery.groups
    decided = [r for r in rows if r["keep.fineweb"] is not None]
    for group in gallery.groups:
        label, side = group.caption.rsplit(": just ", 1)
        rule = rules[label]
        def fails(r, rule=rule):
            return bool(rule.fails(np.array([r[rule.column]]))[0])
        pool = [r for r in decided if fails(r) == (side == "dropped")]
        best = sorted(abs(r[rule.column] - rule.bound) for r in pool)[:len(group.cards)]
        shown = {r["id"]: r for r in decided}
        assert all(isinstance(c, Card) and fails(shown[c.id]) == (side == "dropped") for c in group.cards)
        assert sorted(abs(shown[c.id][rule.column] - rule.bound) for c in group.cards) == best

    assert any(line.startswith("  policy fineweb drops most by: ") for line in presenter.lines(view, members))
    page = write_report(tmp_path / "run").read_text()
    assert 'id="rules"' in page and "just dropped" in page


def test_the_repetition_policy_is_rebuilt_from_summary_json_whose_keys_are_strings(tmp_path):
    from curate.methods.webtext import GopherRepetition, GopherRepetitionPolicy

    data = write_shards(tmp_path / "data", corpus(30), 2)
    pipe = curate.Pipeline([Words(), GopherRepetition()], [GopherRepetitionPolicy(top_n_grams={2: 0.1})], id_column="id")
    curate.run(pipe, data, tmp_path / "run", executor="local")
    found, problems = presenters(RunDirectory(tmp_path / "run", curate.load_summary(tmp_path / "run")))
    assert not problems
    [policy] = [m for p, members in found if isinstance(p, RulesPresenter) for m in members]
    assert policy.top_n_grams == {2: 0.1}
