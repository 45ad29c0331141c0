"""Auto-FuzzyJoin building blocks on hand-computed values (docs/methods/autofj.md checks 1-4)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from curate.methods.autofj.blocking import BlockingIndex
from curate.methods.autofj.distances import idf_weights
from curate.methods.autofj.functions import ColumnViews, JoinFunction, space_functions
from curate.methods.autofj.rules import NegativeRules
from curate.methods.autofj.search import Candidates, build_candidates, greedy
from curate.methods.autofj.text import (
    Vocabulary,
    count_matrix,
    preprocess,
    three_grams,
    tokenize,
)

EPS = 1e-9


def dist(left: list[str], right: list[str], name: str) -> float:
    """Distance of left[0] (in L = left) and right[0] under one join function."""
    views = ColumnViews(left)
    return float(views.distances([name], np.array([0]), np.array([0]), right)[name][0])


def fn(d: str, t: str = "splitBySpace", w: str = "uniformWeight", p: str = "lower") -> str:
    return JoinFunction(p, t, w, d).name


# --- tokens and weights ----------------------------------------------------------------------------
def test_three_grams_of_new_york_are_padded_with_two_dollars():
    assert three_grams("new york") == ["$$n", "$ne", "new", "ew ", "w y", " yo", "yor", "ork", "rk$", "k$$"]
    assert tokenize("new   york", "threeGram") == three_grams("new york")  # whitespace collapsed first


def test_idf_is_ln_of_l_over_df_plus_one_counted_on_l_only():
    lists = [["new", "york"], ["new", "jersey"], ["york"], ["boston"]]
    vocab = Vocabulary.from_tokens([t for x in lists for t in x])
    counts = count_matrix(lists, vocab)
    w = idf_weights(counts, len(vocab) + 1)  # one column L never holds
    got = dict(zip(vocab.index, w))
    assert got["new"] == pytest.approx(math.log(4 / 3)) and got["york"] == pytest.approx(math.log(4 / 3))
    assert got["jersey"] == pytest.approx(math.log(4 / 2))
    assert w[-1] == pytest.approx(math.log(4))  # unseen token: ln |L|
    every = count_matrix([["a", "b"], ["a", "c"]], Vocabulary.from_tokens(["a", "b", "c"]))
    w_every = idf_weights(every, 3)[0]
    assert w_every == pytest.approx(math.log(2 / 3)) and w_every < 0  # in every row: slightly negative


def test_preprocessing_matches_the_reference_functions():
    assert preprocess(["Hello, World's"], "lower") == ["hello, world's"]
    assert preprocess(["Hello, World's"], "lowerRemovePunctuation") == ["hello worlds"]
    assert preprocess(["Running Dogs!"], "lowerRemovePunctuationStem") == ["run dog"]
    assert preprocess(["Running Dogs!"], "lowerStem") == ["run dogs!"]


# --- distances -------------------------------------------------------------------------------------
def test_weighted_jaccard_dice_intersect_maxinc_by_hand():
    # L = ["a b", "c", "d"]: idf a = b = ln(3/2), c = d = ln(3/2); "e" unseen: ln 3.
    left = ["a b", "c d", "x"]
    wa, wu = math.log(3 / 2), math.log(3)
    r = ["a e"]
    inter, union = wa, wa + wa + wu
    assert dist(left, r, fn("jaccardDistance", w="idfWeight")) == pytest.approx(1 - inter / (union + EPS))
    assert dist(left, r, fn("diceDistance", w="idfWeight")) == pytest.approx(1 - 2 * inter / (inter + union + EPS))
    assert dist(left, r, fn("intersectDistance", w="idfWeight")) == pytest.approx(1 - inter / (inter + union + EPS))
    assert dist(left, r, fn("maxincDistance", w="idfWeight")) == pytest.approx(1 - inter / (min(2 * wa, wa + wu) + EPS))
    assert dist(left, r, fn("jaccardDistance")) == pytest.approx(1 - 1 / 3)  # uniform weights


def test_cosine_counts_repeated_three_grams():
    # "aaaa": $$a $aa aaa aaa aa$ a$$ (aaa twice); "aaa": $$a $aa aaa aa$ a$$.
    d = dist(["aaaa"], ["aaa"], fn("cosineDistance", t="threeGram"))
    assert d == pytest.approx(1 - 6 / (math.sqrt(8) * math.sqrt(5) + EPS))


def test_contain_variants_are_one_unless_one_set_contains_the_other():
    left = ["new york city", "zz"]
    assert dist(left, ["york new"], fn("containJaccardDistance")) == pytest.approx(1 - 2 / 3)
    assert dist(left, ["york new"], fn("containDiceDistance")) == pytest.approx(1 - 4 / 5)
    assert dist(left, ["york new"], fn("containCosineDistance")) == pytest.approx(1 - 2 / (math.sqrt(3) * math.sqrt(2)))
    for d in ("containJaccardDistance", "containCosineDistance", "containDiceDistance"):
        assert dist(left, ["york boston"], fn(d)) == 1.0


def test_empty_strings_give_one_for_set_distances_and_char_distances_as_coded():
    for d in ("jaccardDistance", "cosineDistance", "diceDistance", "maxincDistance", "containJaccardDistance"):
        assert dist(["abc"], [""], fn(d)) == pytest.approx(1.0)
    assert dist(["kitten"], ["sitting"], JoinFunction("lower", None, None, "editDistance").name) == 3.0  # raw count
    jaro = dist(["martha"], ["marhta"], JoinFunction("lower", None, None, "jaroDistance").name)
    assert jaro == pytest.approx(1 - 0.9611111111111111)
    assert dist([""], [""], JoinFunction("lower", None, None, "jaroDistance").name) == 1.0  # jellyfish: sim 0


def test_default_space_has_14_functions_and_the_others_68_and_136():
    assert len(space_functions("autofj_sm")) == 14
    assert len(space_functions("autofj_md")) == 68
    assert len(space_functions("autofj_lg")) == 136


# --- negative rules --------------------------------------------------------------------------------
def test_negative_rules_learn_2008_2012_and_veto_the_wrong_games():
    left = ["2008 Summer Olympics", "2012 Summer Olympics", "Winter Sports", "Olympics"]
    index = BlockingIndex.build(left)
    q, c = index.candidates(left)
    keep = q != c
    rules = NegativeRules.learn(left, c[keep], q[keep])
    assert ("2008", "2012") in rules.pairs and ("2012", "2008") in rules.pairs
    # R "2012 summer olympic" vs l = "2008 Summer Olympics": 2008 in l \ r, 2012 in r \ l -> vetoed.
    vetoed, fired = rules.veto(["2012 summer olympics games"], np.array([0, 1]), np.array([0, 0]))
    assert vetoed.tolist() == [True, False]
    assert rules.describe(int(fired[0])) == "2008↔2012"


def test_a_one_word_candidate_teaches_no_rule():
    left = ["Olympics", "Paralympics", "2008 Summer Olympics", "2012 Summer Olympics"]
    q, c = BlockingIndex.build(left).candidates(left)
    keep = q != c
    rules = NegativeRules.learn(left, c[keep], q[keep])
    assert ("olymp", "paralymp") not in rules.pairs  # |l| == 1 on both sides
    assert ("2008", "2012") in rules.pairs


# --- precision estimate and greedy -----------------------------------------------------------------
def hand_built(theta: float = 0.1):
    """L rows 0, 1, 2 with 0, 1 and 3 L-L neighbours within 2θ; R rows 0, 1, 2 nearest to them."""
    # LL pairs (candidate, query, distance): neighbours of 1: {3}; of 2: {4, 5, 6}; far ones beyond 2θ.
    ll = [(3, 1, 0.15), (4, 2, 0.05), (5, 2, 0.2), (6, 2, 0.19), (7, 0, 0.5), (7, 2, 0.21), (8, 1, 0.9)]
    ll_c, ll_q, ll_d = (np.array(x) for x in zip(*ll))
    li, ri, d = np.array([0, 1, 2, 5]), np.array([0, 1, 2, 2]), np.array([0.0, 0.1, 0.1, 0.3])
    return li, ri, {"f": d}, ll_c, ll_q, {"f": ll_d.astype(float)}


def test_estimate_is_one_over_one_plus_neighbours_within_two_theta():
    li, ri, d, c, q, dll = hand_built()
    cands = build_candidates(["f"], li, ri, d, c, q, dll, n_r=3, n_thresholds=2)  # θ in {0.0, 0.1}
    j = next(i for i, (_, th) in enumerate(cands.configs) if th == pytest.approx(0.1))
    assert cands.P[j].tolist() == [1.0, 0.5, 0.25]
    assert cands.lstar[0].tolist() == [0, 1, 2]


def manual(P: list[list[float]], lstar: list[list[int]]) -> Candidates:
    P_ = np.array(P, float)
    return Candidates(["f"] * len(lstar), [(0, 0.1 * i) for i in range(len(P))], np.zeros(len(P), np.int64),
                      np.array(lstar), np.zeros((len(lstar), P_.shape[1])), P_, P_ > 0)


def test_a_solution_is_recorded_only_when_the_estimate_beats_the_target_strictly():
    cands = manual([[0.5, 0.5]], [[0, 1]])
    assert not greedy(cands, target=0.5).found  # P̂ = 0.5 is not > 0.5
    sol = greedy(cands, target=0.49)
    assert sol.found and sol.join_l.tolist() == [0, 1] and sol.precision == pytest.approx(0.5)


def test_configurations_adding_no_new_pair_score_minus_infinity_and_end_the_search():
    # Config 1 proposes exactly config 0's pairs (with higher estimates): after 0 is taken it adds nothing.
    cands = manual([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.2]], [[0, 1, 2]])
    sol = greedy(cands, target=0.9, patience=1.0)  # no early stop: the loop ends when every score is -inf
    assert sol.added == 2  # config 0, then config 2 (config 1 adds no pair: -inf), then all are -inf
    assert [th for _, th in sol.configs] == [0.0]  # config 2 drops P̂ to 2.2/3 < 0.9: not recorded
    assert sol.join_l.tolist() == [0, 1, -1]


def test_vectorised_tokens_equal_the_plain_ones_and_are_stable_across_calls():
    from curate.methods.autofj.text import blocking_tokens, gram_codes

    vals = ["new york", "", "a", "日本語 x", "ab  c", "über-straße 2008"]
    g = gram_codes(vals)
    starts = np.r_[0, np.cumsum(g.lengths)]

    def decode(c: int) -> str:
        return "".join(chr((int(c) >> s) & ((1 << 21) - 1)) for s in (42, 21, 0))

    for i, v in enumerate(vals):
        assert [decode(c) for c in g.flat[starts[i]:starts[i + 1]]] == three_grams(v)
    # A word gets the same code whichever batch it comes in; a 3-letter word is its 3-gram.
    a, b = blocking_tokens(["lakers new"]), blocking_tokens(["boston lakers"])
    assert set(a.flat.tolist()) & set(b.flat.tolist()) >= {int(b.flat[-1])}
    assert int(a.flat[-1]) in set(gram_codes(["new"]).flat.tolist())


def test_blocking_keeps_the_top_k_and_every_tie_with_the_kth_score():
    import scipy.sparse as sp

    from curate.methods.autofj.blocking import top_k_dense, top_k_with_ties

    scores = sp.csr_matrix(np.array([[5.0, 3.0, 3.0, 1.0, 0.0], [2.0, 0.0, 0.0, 0.0, 0.0], [-1.0, 4.0, 0.5, 4.0, 0.5]]))
    want = ([0, 0, 0, 1, 2, 2], [0, 1, 2, 0, 1, 3])
    for f in (top_k_with_ties, top_k_dense):
        r, c = f(scores.copy(), 2)
        assert (r.tolist(), c.tolist()) == want
