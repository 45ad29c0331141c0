"""What the dedup section shows to choose a threshold, on hand-made texts: a chain a~b~c whose ends are far
below the threshold, a pair just below it that is refused, MinHash estimates labelled as such, the S-curve,
the words a dropped text adds marked, and no "rows kept by score" sweep for the similarity column."""
from __future__ import annotations

import json
import random
from html.parser import HTMLParser

import pyarrow as pa
import pytest

import curate
from curate.methods.dedup import Dedup, MinHashDedup
from curate.report import write_report
from curate.report.blocks import word_diff
from testkit.helpers import write_shards
from tests.report.test_report_dedup import _parse


def _texts():
    """a~b~c (J(a,b) = J(b,c) = 18/22 = 0.818, J(a,c) = 16/24 = 0.667), a pair at 17/23 = 0.739, others."""
    rng = random.Random(11)
    vocab = rng.sample([f"w{i}" for i in range(5000)], 24 + 23 + 20 * 30)
    w, p = vocab[:24], vocab[24:47]
    texts = {"a": w[:20], "b": w[2:22], "c": w[4:24], "p": p[:20], "q": p[:17] + p[20:23]}
    texts.update({f"o{i}": vocab[47 + 20 * i:67 + 20 * i] for i in range(30)})
    return {k: " ".join(v) for k, v in texts.items()}


def _run(tmp_path, verify: bool):
    texts = _texts()
    ids = list(texts)
    score = [3.0 if i == "a" else 2.0 if i == "p" else 1.0 for i in ids]  # keep a (the chain's end) and p
    t = pa.table({"id": ids, "text": [texts[i] for i in ids], "score": score})
    stage = MinHashDedup(shingle="word", n=1, num_perm=128, bands=32, rows=4, threshold=0.8, verify=verify,
                         keep_by="score", partitions=2)
    pipe = curate.Pipeline([stage], [Dedup(column="minhash_dedup.component")], id_column="id")
    run = tmp_path / "run"
    curate.run(pipe, write_shards(tmp_path / "data", t, 2), run, executor="local")
    write_report(run)
    return run, texts, {r["id"]: r for r in curate.load_manifest(run).to_pylist()}


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("verified"), verify=True)


def test_a_chain_far_below_the_threshold_is_called_out(verified):
    run, texts, rows = verified
    assert rows["a"]["minhash_dedup.component"] == rows["c"]["minhash_dedup.component"]  # through b
    page = _parse((run / "report.html").read_text())
    st = page.stages["minhash_dedup"]
    assert st["counts"]["chain_far"].strip().startswith("1 of ")
    chain = st["groups"][0]
    assert chain["why"] == "chain: merged far below the threshold"
    to_kept = {c["id"]: c["to_kept"] for c in chain["cards"]}
    assert [x["id"] for x in chain["cards"]] == ["a", "c", "b"]  # kept, then least similar to it first
    assert to_kept["a"] is None
    assert float(to_kept["c"]) == pytest.approx(16 / 24, abs=1e-4)
    assert float(to_kept["b"]) == pytest.approx(18 / 22, abs=1e-4)
    # the words of c that a lacks are marked, and only those
    c = next(x for x in chain["cards"] if x["id"] == "c")
    assert c["marked"].split() == [w for w in texts["c"].split() if w not in texts["a"].split()]


def test_a_pair_just_below_the_threshold_is_shown_as_refused(verified):
    run, _, rows = verified
    assert rows["p"]["minhash_dedup.component"] != rows["q"]["minhash_dedup.component"]
    summary = json.loads((run / "summary.json").read_text())
    misses = summary["stages"]["minhash_dedup"]["artifact"]["near_misses"]
    assert misses[0][2] == pytest.approx(17 / 23, abs=1e-6)  # the most similar refused pair first
    refused = _parse((run / "report.html").read_text()).stages["minhash_dedup"]["refused"]
    assert {c["id"] for c in refused[0]["cards"]} == {"p", "q"}
    assert float(refused[0]["sim"]) == pytest.approx(17 / 23, abs=1e-6)
    assert len(refused[0]["cards"][1]["marked"].split()) == 3  # the three words the other text lacks


def test_estimates_are_labelled_and_the_s_curve_is_drawn(tmp_path):
    run, _, _ = _run(tmp_path, verify=False)
    page = (run / "report.html").read_text()
    st = _parse(page).stages["minhash_dedup"]
    assert "S-curve of minhash_dedup" in st["figures"]
    assert "least similar merged row (jaccard (MinHash estimate))" in page
    assert "without `verify` every LSH candidate is merged" in page and not st["refused"]
    assert "jaccard ≈" in page


class _Scores(HTMLParser):
    def __init__(self):
        super().__init__()
        self.column, self.imgs = None, {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.column = None
        elif "data-column" in a:
            self.column = a["data-column"]
            self.imgs[self.column] = []
        elif tag == "img" and self.column:
            self.imgs[self.column].append(a.get("class"))


def test_the_similarity_column_gets_no_rows_kept_by_score_sweep(verified):
    run, _, _ = verified
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stages"]["minhash_dedup"]["not_scores"] == ["minhash_dedup.jaccard"]
    p = _Scores()
    p.feed((run / "report.html").read_text())
    assert p.imgs["minhash_dedup.jaccard"] == ["hist"]  # its histogram, no sweep
    assert "not a score (its stage says so): no threshold sweep" in (run / "report.html").read_text()


def test_word_diff_marks_the_words_the_other_text_lacks():
    assert word_diff("the quick  brown fox", "the brown fox jumps") == [("the ", False), ("quick", True),
                                                                       ("  brown fox", False)]
    assert word_diff("a new b new2 c", "a b c") == [("a ", False), ("new", True), (" b ", False), ("new2", True),
                                                    (" c", False)]
    assert word_diff("x y", "") == [("x y", True)]


def test_a_policy_cutting_a_declared_non_score_still_gets_its_sweep():
    import numpy as np

    from curate.report.page import _scores
    from curate.report.stats import FINE_BINS, ManifestStats, ScoreStats

    stats = ManifestStats(scores={c: ScoreStats(c, 0.0, 1.0, 10, 0, np.ones(FINE_BINS, np.int64)) for c in ("s.sim", "t.sim")})
    out = {i["column"]: i for i in _scores(stats, {"cut": {"column": "t.sim", "min": 0.5}}, {"s.sim", "t.sim"})}
    assert out["s.sim"]["hist"] and out["s.sim"]["sweep"] is None
    assert out["t.sim"]["sweep"]  # a policy keeps rows by it: a score after all
