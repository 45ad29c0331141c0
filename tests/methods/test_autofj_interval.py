"""The precision interval over the new-entity models (curate.methods.autofj.interval, docs/autofj.md section 2)
and the `target_at_risk` warning."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from curate.errors import ConfigError
from curate.methods.autofj import program as autofj
from curate.methods.autofj.interval import (
    Z_ONE_SIDED,
    Joined,
    bounds,
    estimate,
    joined_share,
    standard_error,
    union_pass,
    union_precision,
    union_r_model,
    union_r_pass,
    without_delivered,
)
from curate.methods.autofj.new_entities import Inputs, NewEntityModel, pooled_share
from curate.methods.autofj.presentation import _interval_text, _risk
from curate.methods.autofj.stage import AutoFJ
from tests.methods.test_autofj_new_entities import without_matches


def test_an_estimate_counts_the_same_true_matches_over_rows_and_over_proposals():
    e = estimate(0.9, rows=90, proposals=100, model_se=0.02, least=0.8)
    assert e["precision"] == 0.9 and e["precision_least"] == 0.8
    assert e["precision_proposals"] == pytest.approx(0.81)  # 81 expected true matches over 100 proposed pairs
    assert e["se"] == pytest.approx(np.sqrt(0.9 * 0.1 / 90 + 0.02 ** 2))
    assert estimate(0.9, 90, 90, None)["se"] == pytest.approx(np.sqrt(0.9 * 0.1 / 90))
    assert np.isnan(standard_error(0.9, 0, None))


def test_the_interval_runs_from_the_most_pessimistic_model_to_the_most_optimistic():
    ests = {"a": {"precision": 0.95, "precision_proposals": 0.90, "precision_least": 0.85, "se": 0.01},
            "b": {"precision": 0.80, "precision_proposals": 0.78, "precision_least": 0.79, "se": 0.03}}
    lo, hi = bounds(ests)
    assert lo == pytest.approx(0.78 - Z_ONE_SIDED * 0.03)  # b, counted over proposals, minus its own se
    ests["a"]["precision_least"] = 0.70  # a's least convinced reading is now the lowest
    assert bounds(ests)[0] == pytest.approx(0.70 - Z_ONE_SIDED * 0.01)
    ests["a"]["precision_least"] = 0.85
    assert hi == pytest.approx(0.95 + Z_ONE_SIDED * 0.01)  # a, counted over delivered rows, plus its own se
    assert bounds(ests, z=1.0) == pytest.approx((0.75, 0.96))
    # within [0, 1]
    assert bounds({"a": {"precision": 0.99, "precision_proposals": 0.05, "precision_least": 0.5, "se": 0.1}}
                  ) == (0.0, 1.0)


def test_the_union_model_only_lowers_the_lower_end():
    ests = {"a": {"precision": 0.95, "precision_proposals": 0.95, "precision_least": 0.93, "se": 0.01},
            "union": {"precision": 0.99, "precision_proposals": 0.80, "precision_least": 0.80, "se": 0.02}}
    lo, hi = bounds(ests)
    assert lo == pytest.approx(0.80 - Z_ONE_SIDED * 0.02)
    assert hi == pytest.approx(0.95 + Z_ONE_SIDED * 0.01)  # not the union's 0.99 + z·0.02: it is a bound below


def test_the_union_passes_a_null_row_that_any_of_its_configurations_passes():
    # three null rows; f passes row 0 (0.1 <= 0.2), g passes row 1 (0.05 <= 0.1); row 2 neither; NaN never
    nulls = {"f": np.array([0.1, 0.5, np.nan]), "g": np.array([0.3, 0.05, 0.2])}
    assert union_pass(nulls, [("f", 0.2), ("g", 0.1)]).tolist() == [True, True, False]
    assert union_pass(nulls, [("f", 0.2)]).tolist() == [True, False, False]
    # each function alone passes a third of the rows, the union two thirds: what the per-row readings miss
    assert union_pass(nulls, [("f", 0.2), ("g", 0.1)]).mean() == pytest.approx(2 / 3)


def test_union_precision_takes_the_expected_new_entities_off_the_expected_true_matches():
    # 4 joined rows, best 1 / (1 + neighbours) 1, 1, 1/2, 1: 3.5 expected true matches if every row had a match
    joined = Joined(np.array([[1.0, 1.0, 0.5, 0.0], [0.0, 0.5, 0.0, 1.0]]), [0, 0], {"f": np.zeros(4)})
    # π0 = 0.5 of |R| = 20 rows are new, the union joins α = 5% of the null: 0.5 new entities expected joined
    assert union_precision(joined, 20, 0.5, 0.05) == pytest.approx((3.5 - 0.5) / 4)
    assert union_precision(joined, 20, 0.0, 0.05) == pytest.approx(3.5 / 4)  # no new entities: the reference's
    assert union_precision(joined, 200, 1.0, 0.5) == 0.0  # never below 0
    assert np.isnan(union_precision(Joined(np.zeros((1, 0)), [0], {"f": np.zeros(0)}), 20, 0.5, 0.05))


def test_the_union_models_spread_draws_the_shares_the_fit_draws():
    rng = np.random.default_rng(1)
    inputs = Inputs({"f": rng.uniform(0, 1, 60), "g": rng.uniform(0, 1, 60)},
                    {"f": rng.uniform(0, 1, 80), "g": rng.uniform(0, 1, 80)}, {"f": np.linspace(0, 1, 5),
                                                                               "g": np.linspace(0, 1, 5)})
    shares = inputs.draw_shares(draws=5)
    expected = [pooled_share([(inputs.seen[f][i], inputs.nulls[f][j]) for f in ("f", "g")])
                for i, j in inputs.draws(5)]
    assert shares == expected and inputs.draw_shares(draws=5) is shares  # kept, not redrawn


def _four_rows():
    """Candidates of 4 R rows under functions f, g: nearest L rows (lstar), their distances (dstar) and
    second-nearest distances; rows 0-2 joined (to L rows 7, 8, 9), row 3 not."""
    rng = np.random.default_rng(2)
    inputs = Inputs({"f": rng.uniform(0, 1, 4), "g": rng.uniform(0, 1, 4)},
                    {"f": rng.uniform(0, 1, 10), "g": rng.uniform(0, 1, 10)}, {},
                    second={"f": np.array([0.15, 0.50, 0.40, 0.9]), "g": np.array([0.60, 0.08, 0.70, 0.9])})
    cands = SimpleNamespace(functions=["f", "g"], inputs=inputs,
                            lstar=np.array([[7, 8, 9, 5], [7, 3, 9, 5]]),
                            dstar=np.array([[0.05, 0.10, 0.12, 0.8], [0.02, 0.06, 0.3, 0.8]]),
                            models={"f": NewEntityModel(np.array([1.0]), np.zeros(1), 0.5, 10),
                                    "g": NewEntityModel(np.array([1.0]), np.zeros(1), 0.5, 10)})
    return cands, np.array([7, 8, 9, -1])


def test_without_its_delivered_row_a_joined_row_moves_to_its_second_nearest_where_that_row_was_nearest():
    cands, join_l = _four_rows()
    rows = np.flatnonzero(join_l >= 0)
    d = without_delivered(cands, [("f", 0.2), ("g", 0.1)], rows, join_l)
    # f's nearest is the delivered row for rows 0-2: their second-nearest distances
    assert d["f"].tolist() == [0.15, 0.50, 0.40]
    # g's nearest of row 1 is L row 3, not the delivered 8: it stays at its nearest distance 0.06
    assert d["g"].tolist() == [0.60, 0.06, 0.70]


def test_union_r_passes_a_joined_row_that_some_configuration_still_joins_without_its_delivered_row():
    cands, join_l = _four_rows()
    # row 0: f 0.15 <= 0.2; row 1: g 0.06 <= 0.1 (through another L row); row 2: neither
    assert union_r_pass(cands, [("f", 0.2), ("g", 0.1)], join_l).tolist() == [True, True, False]
    assert union_r_pass(cands, [("f", 0.2)], join_l).tolist() == [True, False, False]


def test_alpha_r_on_a_draw_counts_its_joined_rows_with_their_repeats():
    join_l = np.array([7, -1, 8, 9, -1])
    hit = np.array([True, False, True])  # joined rows 0, 2, 3
    assert joined_share(hit, join_l, np.arange(5)) == pytest.approx(2 / 3)
    assert joined_share(hit, join_l, np.array([0, 0, 2, 1])) == pytest.approx(2 / 3)  # rows 0, 0, 2: F, F, T
    assert joined_share(hit, join_l, np.array([3, 3, 1])) == pytest.approx(1.0)
    assert joined_share(hit, join_l, np.array([1, 4])) == 0.0  # no joined row drawn


def test_union_r_takes_off_the_new_entities_its_own_pass_rate_expects():
    cands, join_l = _four_rows()
    # 3 joined rows, best 1 / (1 + neighbours) 1, 1/2, 1: 2.5 expected true matches if every row had a match
    joined = Joined(np.array([[1.0, 0.5, 1.0]]), [0], {"f": np.zeros(3)})
    p, spread, share, alpha = union_r_model(cands, joined, [("f", 0.2), ("g", 0.1)], join_l)
    assert share == 0.5 and alpha == pytest.approx(2 / 3)  # the within-reach π0; 2 of 3 joined rows pass
    # π0·|R|·α_R = 0.5 · 4 · 2/3 new entities expected among the joins
    assert p == pytest.approx((2.5 - 0.5 * 4 * 2 / 3) / 3)
    assert spread >= 0.0 and np.isfinite(spread)
    # no configuration joins any row without its delivered L row: nothing taken off
    p0, _, _, a0 = union_r_model(cands, joined, [("f", 0.01)], join_l)
    assert a0 == 0.0 and p0 == pytest.approx(2.5 / 3)


def test_the_union_r_model_only_lowers_the_lower_end():
    ests = {"a": {"precision": 0.95, "precision_proposals": 0.95, "precision_least": 0.93, "se": 0.01},
            "union_r": {"precision": 0.99, "precision_proposals": 0.70, "precision_least": 0.70, "se": 0.05}}
    assert bounds(ests) == pytest.approx((0.70 - Z_ONE_SIDED * 0.05, 0.95 + Z_ONE_SIDED * 0.01))


def test_joined_precision_is_the_mean_of_each_rows_best_estimate_or_of_its_least_convinced_function():
    # two configurations (functions f, g), three joined rows; config 0 proposes rows 0-1, config 1 rows 1-2
    base = np.array([[1 / 2, 1.0, 0.0], [0.0, 1 / 3, 1.0]])
    edges = np.array([0.1, 0.2, 0.3])
    f = NewEntityModel(edges, np.array([0.0, 0.5, 1.0]), 0.4, 100)
    g = NewEntityModel(edges, np.array([0.0, 0.5, 0.5]), 0.4, 100)
    joined = Joined(base, [0, 1], {"f": np.array([0.05, 0.05, 0.25]), "g": np.array([0.05, 0.15, 0.25])})
    # keep (1 - lfdr) at the rows' distances: f 1, 1, 0; g 1, 0.5, 0.5
    assert joined.precision({"f": f, "g": g}) == pytest.approx((0.5 + max(1.0, 0.5 / 3) + 0.5) / 3)
    # least: row 1's best configuration (f, base 1) with g's keep 0.5, the lower of the two proposing it
    assert joined.precision({"f": f, "g": g}, least=True) == pytest.approx((0.5 + 0.5 + 0.5) / 3)
    assert joined.precision(None) == pytest.approx((0.5 + 1.0 + 1.0) / 3)  # the reference: every row has a match


def test_target_at_risk_when_the_lower_end_is_below_the_target():
    def program(est, interval):
        return {"search": {"est_precision": est, "est_precision_interval": interval, "est_precision_se": 0.01,
                           "far_beyond_theta_share": 0.0, "matched": 100}, "new_entities": None}

    codes = lambda p: [w.split(":")[0] for w in autofj.fit_warnings(p, 0.9, 1000)]  # noqa: E731
    assert "target_at_risk" in codes(program(0.91, [0.87, 0.95]))
    assert "target_at_risk" not in codes(program(0.93, [0.905, 0.96]))
    # no program: target_not_met, not at risk as well
    assert codes(program(None, None)) == ["target_not_met"]
    warning = next(w for w in autofj.fit_warnings(program(0.91, [0.87, 0.95]), 0.9, 1000) if "at_risk" in w)
    assert "[0.870, 0.950]" in warning and "precision_target_on: lower" in warning


def test_the_estimate_line_carries_the_interval_and_the_flag():
    art = {"est_precision_interval": [0.8712, 0.95], "warnings": ["target_at_risk: ...", "many_new_entities: ..."]}
    assert _interval_text(art) == ", interval [0.871, 0.950] over the new-entity models"
    assert "target_at_risk" in _risk(art)
    assert _risk({"warnings": ["many_new_entities: ..."]}) == "" and _interval_text({}) == ""


@pytest.fixture(scope="module")
def shopping_mall():
    """ShoppingMall (154 L rows, 227 R rows) with 30% of R's matched rows turned into new entities."""
    lids, lt, rids, rt, truth = without_matches("ShoppingMall", 0.3)
    fits = {on: autofj.fit(lids, [lt], [rt], ["title"], new_entities=True, precision_target_on=on)
            for on in ("point", "lower")}
    return fits, autofj.fit(lids, [lt], [rt], ["title"])


def test_the_fit_reports_both_models_and_the_estimate_lies_in_the_interval(shopping_mall):
    fits, ref = shopping_mall
    s = fits["point"].program["search"]
    models = s["precision_models"]
    assert set(models) == {"within_reach", "new_share", "union", "union_r"}
    # the union models: the within-reach π0, the share of the null the union joins, and bounds below
    for name in ("union", "union_r"):
        u = models[name]
        assert u["share"] == pytest.approx(models["within_reach"]["share"])
        assert 0.0 <= u["null_pass"] <= 1.0
        assert s["est_precision_interval"][0] <= max(0.0, u["precision_proposals"] - Z_ONE_SIDED * u["se"]) + 1e-12
    # the estimate's own model counted over proposals is P̂ itself (the recomputation is the search's)
    assert models["within_reach"]["precision_proposals"] == pytest.approx(s["est_precision"], abs=1e-9)
    assert models["within_reach"]["model_se"] == s["est_precision_model_se"]  # the spread the fit drew
    assert models["new_share"]["share"] == pytest.approx(fits["point"].program["new_entities"]["new_share"])
    lo, hi = s["est_precision_interval"]
    assert lo <= s["est_precision"] <= hi
    assert lo == pytest.approx(bounds(models)[0]) and hi == pytest.approx(bounds(models)[1])
    assert (lo < 0.9) == any(w.startswith("target_at_risk") for w in fits["point"].program["warnings"])
    # the reference estimator: one model, its own P̂ ± z·se
    rs = ref.program["search"]
    assert set(rs["precision_models"]) == {"reference"}
    assert rs["est_precision_interval"][0] == pytest.approx(
        rs["est_precision"] - Z_ONE_SIDED * rs["precision_models"]["reference"]["se"])


def test_targeting_the_lower_end_joins_fewer_rows_and_clears_it_or_says_so(shopping_mall):
    fits, _ = shopping_mall
    point, lower = (fits[on].program for on in ("point", "lower"))
    assert point["precision_target_on"] == "point" and lower["precision_target_on"] == "lower"
    assert point["search"]["search_target"] == 0.9
    assert lower["search"]["matched"] <= point["search"]["matched"]
    lo = lower["search"]["est_precision_interval"][0]
    at_risk = any(w.startswith("target_at_risk") for w in lower["warnings"])
    assert lo >= 0.9 or at_risk
    if point["search"]["est_precision_interval"][0] < 0.9:  # the point program is at risk: the search moved
        assert lower["search"]["search_target"] > 0.9
        assert lo > point["search"]["est_precision_interval"][0]


def test_lower_needs_the_new_entity_models():
    with pytest.raises(ConfigError, match="precision_target_on"):
        AutoFJ(reference="l.csv", on="title", mode="reference", precision_target_on="lower")
    with pytest.raises(ValueError, match="precision_target_on"):
        autofj.fit(["1", "2"], [["a", "b"]], [["a"]], ["title"], precision_target_on="upper")
