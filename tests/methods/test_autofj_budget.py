"""The budgeted blocker for large L (curate.methods.autofj.blocking, `budget`): what it probes, that a budget large
enough to probe every token gives the exact candidates, and that a small one still finds corrupted
copies among many distractors."""
from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.sparse as sp

from curate.data.autofj_synth import corrupt, names, word_pool
from curate.methods.autofj.blocking import (
    BlockingIndex,
    probe_tokens,
    resolve_budget,
    top_k_pairs,
)


def test_probe_takes_rarest_tokens_within_the_budget_and_at_least_two():
    df = np.array([5, 1, 100, 3, 50])
    q = sp.csr_matrix(np.array([[1, 1, 1, 1, 1], [0, 0, 1, 0, 1], [1, 0, 0, 0, 0]], float))
    got = probe_tokens(q, df, budget=9).toarray()
    # row 0: rarest first 1 (df 1), 3 (3), 0 (5) -> 9 <= 9; token 4 would make 59
    assert got[0].tolist() == [1, 1, 0, 1, 0]
    # row 1: both tokens exceed the budget, but the two rarest are always probed
    assert got[1].tolist() == [0, 0, 1, 0, 1]
    assert got[2].tolist() == [1, 0, 0, 0, 0]


def test_top_k_pairs_keeps_ties_at_the_kth_score():
    rows = np.array([0, 0, 0, 0, 1, 1])
    scores = np.array([3.0, 1.0, 2.0, 2.0, 5.0, 4.0])
    assert top_k_pairs(rows, scores, 2, 2).tolist() == [True, False, True, True, True, True]


def test_resolve_budget():
    assert resolve_budget("auto", 50_000) is None
    assert resolve_budget("auto", 50_001) == 20_000
    assert resolve_budget("exact", 10**7) is None
    assert resolve_budget(500, 10) == 500
    for bad in (0, -3, "lots", 2.5, True):
        with pytest.raises(ValueError, match="budget"):
            resolve_budget(bad, 10)


@pytest.fixture(scope="module")
def tables():
    rng = random.Random(7)
    left = names(6000, rng, word_pool())
    truth = rng.sample(range(len(left)), 400)
    right = [corrupt(left[i], rng) for i in truth]
    return left, right, np.array(truth)


def pairs(index: BlockingIndex, values: list[str]) -> set[tuple[int, int]]:
    q, c = index.candidates(values)
    return set(zip(q.tolist(), c.tolist()))


def test_a_budget_that_probes_everything_equals_exact_blocking(tables):
    left, right, _ = tables
    exact = BlockingIndex.build(left, budget="exact")
    wide = BlockingIndex.build(left, budget=10**9)
    assert exact.budget is None and wide.budget == 10**9
    # every token probed, and the 4k re-scored rows cover the k-th ties on these names
    assert pairs(wide, right) == pairs(exact, right)
    assert pairs(wide, left[:300]) == pairs(exact, left[:300])


def test_a_small_budget_bounds_the_probe_and_keeps_the_true_match(tables):
    left, right, truth = tables
    exact = BlockingIndex.build(left, budget="exact")
    small = BlockingIndex.build(left, budget=300)
    df = np.diff(small.weights_t.indptr)
    probed = probe_tokens(small.query_matrix(right), df, 300)
    two_rarest = np.array([np.sort(df[probed[i].indices])[:2].sum() for i in range(probed.shape[0])])
    cost = np.asarray(probed @ sp.diags(df.astype(float)) @ np.ones(len(df))).ravel()
    assert np.all((cost <= 300) | (cost <= two_rarest))
    got, ref = pairs(small, right), pairs(exact, right)
    found = np.mean([(i, t) in got for i, t in enumerate(truth)])
    assert found >= 0.97
    assert len(got) >= len(right) * small.k  # k per query at least, as exact blocking gives
    assert got != ref  # the budget does change some candidates: this test exercises the approximate path
