"""Policies: exact counts, deterministic ties, independence of sharding."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import policy as policy_module
from curate.errors import ConfigError
from curate.policy import (
    KeepFraction,
    Threshold,
    TopK,
    key_to_value,
    order_keys,
    tie_keys,
)


def scan_of(parts):
    return lambda: iter(parts)


def kept_by_sorting(values, hashes, k, largest, seed):
    """The definition: sort by (score, tie_key), take the first k."""
    ties = tie_keys(hashes, seed)
    primary = -values if largest else values
    order = np.lexsort((ties, primary))
    keep = np.zeros(len(values), dtype=bool)
    keep[order[:k]] = True
    return keep


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.sampled_from([0.0, -0.0, 0.5, 1.0, -3.25, 1e-300, 7.0, 1e300, -1e300]) | st.floats(
           allow_nan=False, allow_infinity=True, width=64), min_size=1, max_size=300),
       k_frac=st.floats(0, 1), largest=st.booleans(), seed=st.integers(0, 2**64 - 1), cuts=st.lists(st.integers(0, 300)))
def test_top_k_equals_sorting_for_any_values_and_any_sharding(values, k_frac, largest, seed, cuts):
    v = np.array(values, dtype=np.float64)
    h = np.arange(len(v), dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    k = int(round(k_frac * len(v)))
    bounds = sorted({0, len(v), *[c for c in cuts if c < len(v)]})
    parts = [(v[a:b], h[a:b]) for a, b in zip(bounds, bounds[1:])]
    policy = TopK("s.score", k=k, largest=largest, seed=seed)
    policy.fit(scan_of(parts))
    kept = np.concatenate([policy.decide(pv, ph)[0] for pv, ph in parts])
    assert kept.sum() == k
    assert np.array_equal(kept, kept_by_sorting(v + 0.0, h, k, largest, seed))


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.0 + 2**-52, -3.25, 7.0]) | st.floats(allow_nan=False, width=64),
                       min_size=1, max_size=200),
       k_frac=st.floats(0, 1), held_rows=st.sampled_from([0, 1, 7, 50]), cuts=st.lists(st.integers(0, 200)))
def test_the_boundary_is_the_same_held_in_memory_or_scanned_again(values, k_frac, held_rows, cuts):
    """select_boundary narrows the rows it holds digit by digit; past HELD_ROWS it scans again: same boundary,
    the exact one sorting gives."""
    v = np.array(values, dtype=np.float64)
    h = np.arange(len(v), dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    k = int(round(k_frac * len(v)))
    bounds = sorted({0, len(v), *[c for c in cuts if c < len(v)]})
    parts = [(v[a:b], h[a:b]) for a, b in zip(bounds, bounds[1:])]
    found = {}
    for rows in (held_rows, policy_module.HELD_ROWS):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(policy_module, "HELD_ROWS", rows)
            p = KeepFraction("s.score", k / len(v))
            p.fit(scan_of(parts))
        found[rows] = (p._bound, np.concatenate([p.decide(pv, ph)[0] for pv, ph in parts]))
    (b1, kept1), (b2, kept2) = found.values()
    assert b1 == b2 and np.array_equal(kept1, kept2)
    assert np.array_equal(kept1, kept_by_sorting(v + 0.0, h, p._target(len(v)), True, 0))


def test_all_tied_scores_keep_an_exact_count_chosen_by_seed_and_id():
    v, h = np.zeros(1000), np.arange(1000, dtype=np.uint64)
    picks = []
    for seed in (0, 0, 1):
        p = KeepFraction("s.score", 0.3, seed=seed)
        p.fit(scan_of([(v, h)]))
        picks.append(p.decide(v, h)[0])
    assert all(x.sum() == 300 for x in picks)
    assert np.array_equal(picks[0], picks[1]) and not np.array_equal(picks[0], picks[2])
    v2 = np.r_[np.zeros(10), -np.ones(5)]  # 5 rows below the cut beside ties at it
    p = KeepFraction("s.score", 0.4)
    p.fit(scan_of([(v2, np.arange(15, dtype=np.uint64))]))
    keep, reason = p.decide(v2, np.arange(15, dtype=np.uint64))
    texts = [r for r in reason.to_pylist() if r]
    assert keep.sum() == 6 and len(texts) == 9
    assert texts.count("s.score 0 tied at cut 0, lost the tie-break at fraction 0.4") == 4
    assert texts.count("s.score -1 below cut 0 at fraction 0.4") == 5


def test_keep_fraction_count_and_reasons():
    v, h = np.arange(10, dtype=np.float64), np.arange(10, dtype=np.uint64)
    p = KeepFraction("wfpp.score", 0.9)
    p.fit(scan_of([(v, h)]))
    keep, reason = p.decide(v, h)
    assert keep.tolist() == [False] + [True] * 9
    assert reason.to_pylist()[0] == "wfpp.score 0 below cut 1 at fraction 0.9" and reason.null_count == 9
    assert p.cut == 1.0


def test_order_key_roundtrip_and_order():
    vals = np.array([-np.inf, -2.5, -0.0, 0.0, 1e-310, 3.0, np.inf])
    for largest in (True, False):
        keys = order_keys(vals, largest)
        assert [key_to_value(int(k), largest) for k in keys] == [float(x) + 0.0 for x in vals]
        order = np.argsort(keys, kind="stable")
        expected = np.argsort(-vals if largest else vals, kind="stable")
        assert np.array_equal(vals[order], vals[expected])


def test_threshold_keeps_within_bounds_with_reasons():
    p = Threshold("x.score", min=1.0, max=3.0)
    keep, reason = p.decide(np.array([0.5, 1.0, 2.0, 3.5]), np.zeros(4, dtype=np.uint64))
    assert keep.tolist() == [False, True, True, False]
    assert reason.to_pylist() == ["x.score 0.5 below min 1.0", None, None, "x.score 3.5 above max 3.0"]


@pytest.mark.parametrize("make", [lambda: KeepFraction("s.score", 1.5), lambda: TopK("s.score", k=-1),
                                  lambda: Threshold("s.score"), lambda: KeepFraction("score", 0.5)])
def test_bad_policy_parameters_are_config_errors(make):
    with pytest.raises(ConfigError):
        make()


@pytest.mark.parametrize("spec, match", [
    ({"type": "threshold", "column": "wfpp.score", "min": float("nan")}, r"parameter 'min' is nan; expected float"),
    ({"type": "threshold", "column": "wfpp.score", "max": float("nan")}, r"parameter 'max' is nan"),
    ({"type": "threshold", "column": "wfpp.score", "min": 0.9, "max": 0.1}, r"min 0.9 is above max 0.1"),
    ({"type": "threshold", "column": "wfpp.score", "min": "abc"}, r"parameter 'min' is 'abc'; expected float"),
    ({"type": "threshold", "column": "wfpp.score", "min": True}, r"parameter 'min' is True"),
    ({"type": "keep_fraction", "column": "wfpp.score", "fraction": True}, r"parameter 'fraction' is True"),
    ({"type": "keep_fraction", "column": "wfpp.score", "fraction": "0.5"}, r"parameter 'fraction' is '0.5'"),
    ({"type": "top_k", "column": "wfpp.score", "k": 2.5}, r"parameter 'k' is 2.5; expected int"),
])
def test_policy_values_are_checked_when_the_config_is_loaded(spec, match):
    """NaN bounds kept every row, min > max dropped every row, `true` was read as 1.0 and a string bound
    failed after all scoring: each is now refused at load time, naming the parameter."""
    from curate.config import pipeline_from_dict

    with pytest.raises(ConfigError, match=match):
        pipeline_from_dict({"stages": [{"type": "wfpp"}], "policies": [spec]}, "c.yaml")
