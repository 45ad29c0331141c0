"""The new-entity estimate (docs/autofj.md, curate.methods.autofj.new_entities) and the fit's warnings."""
from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest

from curate.methods.autofj import program as autofj
from curate.methods.autofj import search
from curate.methods.autofj.new_entities import Inputs, NewEntityModel, pava, pooled_share, storey_share

DATA = Path(__file__).resolve().parents[2] / "bench" / "data" / "autofj"


def test_pava_gives_the_weighted_non_decreasing_fit():
    assert np.allclose(pava(np.array([0.1, 0.5, 0.3, 0.9]), np.array([1.0, 1.0, 3.0, 1.0])), [0.1, 0.35, 0.35, 0.9])
    assert np.allclose(pava(np.array([0.2, 0.4]), np.array([1.0, 1.0])), [0.2, 0.4])  # already monotone


def mixture(share: float, n: int = 4000, seed: int = 0):
    """R's nearest distances: matches near 0, new entities drawn from the same law as the nulls."""
    rng = np.random.default_rng(seed)
    new = rng.random(n) < share
    d = np.where(new, rng.uniform(0.3, 1.0, n), rng.uniform(0.0, 0.15, n))
    return d, rng.uniform(0.3, 1.0, 3000), new


@pytest.mark.parametrize("share", [0.0, 0.3, 0.6])
def test_the_share_of_new_entities_is_recovered_from_the_leave_one_out_nulls(share):
    d, nulls, _ = mixture(share)
    assert storey_share(d, nulls) == pytest.approx(share, abs=0.04)


def test_lfdr_is_low_where_matches_are_and_near_one_where_only_new_entities_are():
    d, nulls, new = mixture(0.5)
    edges = np.linspace(d.min(), d.max(), 50)
    m = NewEntityModel.fit(d, nulls, edges, storey_share(d, nulls))
    keep = m.keep(np.array([0.05, 0.6, 0.95]))
    assert keep[0] > 0.95 and keep[1] < 0.1 and keep[2] < 0.1
    assert np.all(np.diff(m.lfdr) >= -1e-12)  # non-decreasing in distance
    # summed over rows, 1 - lfdr counts the rows that have a match
    assert m.keep(d).sum() == pytest.approx((~new).sum(), rel=0.05)
    back = NewEntityModel.from_dict(m.as_dict())
    assert np.array_equal(back.keep(d), m.keep(d))


def test_a_function_whose_nulls_all_tie_says_nothing_about_the_share():
    d, nulls, _ = mixture(0.3)
    assert storey_share(d, np.ones(100)) is None  # contain-* distances: every null at exactly 1
    assert pooled_share([(d, nulls), (d, np.ones(100)), (d, nulls)]) == pytest.approx(storey_share(d, nulls))


def test_second_nearest_is_the_nearest_without_l_star():
    # r0: candidates l0 (0.1), l1 (0.3), l2 (0.2); r1: one candidate; r2: two tied at the minimum.
    li = np.array([0, 1, 2, 0, 1, 2])
    ri = np.array([0, 0, 0, 1, 2, 2])
    d = np.array([0.1, 0.3, 0.2, 0.5, 0.4, 0.4])
    near = search.nearest(li, ri, d, 4)
    assert np.allclose(search.second_nearest(li, ri, d, near), [0.2, np.inf, 0.4, np.inf])


def read(task: str, name: str) -> list[list[str]]:
    with open(DATA / task / name, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))[1:]


def without_matches(task: str, rate: float, seed: int = 0):
    """The task with the true L match of `rate` of R's matched rows removed (they become new entities)."""
    left, right, gt = read(task, "left.csv"), read(task, "right.csv"), read(task, "gt.csv")
    rng = random.Random(seed)
    gone_r = set(rng.sample(sorted({g[2] for g in gt}), round(rate * len(gt))))
    gone_l = {g[0] for g in gt if g[2] in gone_r}
    kept = [x for x in left if x[0] not in gone_l]
    truth = {(g[0], g[2]) for g in gt if g[0] not in gone_l}
    return [x[0] for x in kept], [x[1] for x in kept], [x[0] for x in right], [x[1] for x in right], truth


def true_precision(res, lids, rids, truth) -> float:
    pred = {(lids[l], rids[i]) for i, l in enumerate(res.join_l) if l >= 0}
    return len(pred & truth) / len(pred)


def test_with_new_entities_the_estimate_stays_honest_where_the_reference_one_does_not():
    lids, lt, rids, rt, truth = without_matches("Country", 0.6)
    ours = autofj.fit(lids, [lt], [rt], ["title"], new_entities=True)
    ref = autofj.fit(lids, [lt], [rt], ["title"])
    p_ours, p_ref = true_precision(ours, lids, rids, truth), true_precision(ref, lids, rids, truth)
    est_ours, est_ref = ours.program["search"]["est_precision"], ref.program["search"]["est_precision"]
    assert abs(est_ours - p_ours) < 0.05 < abs(est_ref - p_ref)
    assert p_ours > p_ref + 0.1
    share = ours.program["new_entities"]["share"]
    assert share > 0.5 and ref.program["new_entities"] is None
    # The warning's share of new entities (R's second-nearest null) is nearer the truth than π0, which also
    # counts matches out of reach.
    true_new = 1 - len({r for _, r in truth}) / len(rids)
    new = ours.program["new_entities"]["new_share"]
    assert abs(new - true_new) < abs(share - true_new) and abs(new - true_new) < 0.15
    # The program applied without searching gives the same joins and estimates.
    m = autofj.Matcher(ours.program, lids, [lt], ours.ll_counts).match([rt])
    assert np.array_equal(m.l, ours.join_l)
    hit = m.l >= 0
    assert np.allclose(m.est[hit], ours.est[hit])


def test_fit_warnings_name_what_is_wrong():
    def prog(est=0.91, se=0.01, matched=500, share=None, nulls=1000, far=0.0, new=None):
        ne = {"share": share, "null_rows": nulls, **({} if new is None else {"new_share": new})}
        return {"search": {"est_precision": est, "est_precision_se": se, "matched": matched,
                           "far_beyond_theta_share": far},
                "new_entities": None if share is None else ne}

    codes = lambda p, n_left=1000: [w.split(":")[0] for w in autofj.fit_warnings(p, 0.9, n_left)]  # noqa: E731
    assert codes(prog(share=0.2)) == []
    assert codes(prog(est=None, se=None, share=0.2)) == ["target_not_met"]
    assert codes(prog(share=0.7)) == ["many_new_entities"]
    assert codes(prog(share=0.7, new=0.1)) == []  # out of reach but not new: the new-entity share decides
    assert codes(prog(share=0.7, new=0.4)) == ["many_new_entities"]
    assert codes(prog(share=0.2, nulls=10)) == ["few_reference_pairs"]
    assert codes(prog(se=0.08, matched=12, share=0.1)) == ["imprecise_estimate"]
    assert codes(prog(far=0.3)) == ["new_entities_unseen"]  # reference estimator, many rows far from any θ
    assert codes(prog(), n_left=10) == ["few_reference_pairs"]


def test_rows_with_no_known_distance_are_left_out_of_the_share_not_counted_as_new():
    d, nulls, _ = mixture(0.3)
    unknown = np.full(len(d), np.nan)  # as many rows again, blank in every column the search weighs
    assert storey_share(np.concatenate([d, unknown]), nulls) == pytest.approx(storey_share(d, nulls))
    edges = np.linspace(0, 1, 20)
    a = NewEntityModel.fit(np.concatenate([d, unknown]), nulls, edges, 0.3)
    assert np.array_equal(a.lfdr, NewEntityModel.fit(d, nulls, edges, 0.3).lfdr)


def storey_se(share: float, s_r: float, n: int, s_g: float, m: int) -> float:
    """The delta method's standard error of S_R(t) / S_G(t), both shares binomial."""
    return share * float(np.sqrt((1 - s_r) / (n * s_r) + (1 - s_g) / (m * s_g)))


@pytest.mark.parametrize("n", [400, 4000])
def test_the_bootstrap_spread_of_the_share_is_the_binomial_one(n):
    rng = np.random.default_rng(1)
    new = rng.random(n) < 0.5
    d = np.where(new, rng.uniform(0.3, 1.0, n), rng.uniform(0.0, 0.15, n))
    nulls = rng.uniform(0.3, 1.0, 3000)
    edges = np.linspace(0.0, 1.0, 50)
    inputs = Inputs({"f": d, "g": d}, {"f": nulls, "g": nulls}, {"f": edges})
    shares = [m["f"].share for m in inputs.bootstrap(["f"], draws=300)]
    # t = the nulls' median: S_G = 1/2, S_R = 1/4, so π0 = 1/2
    assert np.std(shares, ddof=1) == pytest.approx(storey_se(0.5, 0.25, n, 0.5, 3000), rel=0.2)
    assert np.mean(shares) == pytest.approx(storey_share(d, nulls), abs=0.01)
    # the same seed gives the same draws (a fit is reproducible)
    assert [m["f"].share for m in inputs.bootstrap(["f"], draws=5)] == shares[:5]


def test_the_standard_error_adds_the_new_entity_models_uncertainty(monkeypatch):
    lids, lt, rids, rt, _ = without_matches("TelevisionStation", 0.6)
    res = autofj.fit(lids, [lt], [rt], ["title"], new_entities=True)
    s = res.program["search"]
    binom = np.sqrt(s["est_precision"] * (1 - s["est_precision"]) / s["matched"])
    assert s["est_precision_model_se"] > 0.005
    assert s["est_precision_se"] == pytest.approx(np.sqrt(binom ** 2 + s["est_precision_model_se"] ** 2))
    assert s["est_precision_se"] > binom + 0.002
    # each draw recomputes every joined row's estimate as the search and Matcher do: with the fitted models in
    # every draw, the draws are P̂ itself (no spread), and a draw of all-new entities gives P̂ = 0
    ref = autofj.fit(lids, [lt], [rt], ["title"])
    assert ref.program["search"]["est_precision_model_se"] is None
    rs = ref.program["search"]
    assert rs["est_precision_se"] == pytest.approx(np.sqrt(rs["est_precision"] * (1 - rs["est_precision"]) /
                                                           rs["matched"]))
    seen = {}

    def fitted(self, functions, draws=200, seed=0):
        models = seen["cands"].models
        zero = {f: NewEntityModel(m.edges, np.ones_like(m.lfdr), m.share, m.null_rows) for f, m in models.items()}
        return [{f: models[f] for f in functions}] * 3 + [zero]

    real = autofj._model_se

    def spy(cands, configs, ll_counts, joined):
        seen["cands"] = cands
        return real(cands, configs, ll_counts, joined)

    monkeypatch.setattr(Inputs, "bootstrap", fitted)
    monkeypatch.setattr(autofj, "_model_se", spy)
    again = autofj.fit(lids, [lt], [rt], ["title"], new_entities=True)
    p = again.program["search"]["est_precision"]
    assert again.program["search"]["est_precision_model_se"] == pytest.approx(np.std([p, p, p, 0.0], ddof=1), rel=1e-6)
