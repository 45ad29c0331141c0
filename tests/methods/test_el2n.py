"""EL2N / GraNd (docs/methods/el2n.md): the score math (checks 1-3), batch independence (check 4), per-row
errors, and the el2n_keep policy's exact windows."""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
import torch
from torch import nn

from curate.errors import ConfigError, DataError
from curate.methods.el2n import proxy
from curate.methods.el2n.policy import El2nKeep
from curate.methods.el2n.stage import EL2N
from curate.policy import Rows, RowsScan, order_keys, tie_keys
from curate.stage import ROW_HASH, TablesFitContext
from kernels.hashing import hash_strings


def feature_table(x: np.ndarray, y, ids=None) -> pa.Table:
    ids = pa.array(ids if ids is not None else [f"r{i:05d}" for i in range(len(x))], pa.string())
    flat = pa.array(np.asarray(x, np.float32).reshape(-1), pa.float32())
    return pa.table({"id": ids, "features": pa.FixedSizeListArray.from_arrays(flat, x.shape[1]),
                     "label": pa.array(y, pa.int64()), ROW_HASH: pa.array(hash_strings(ids), pa.uint64())})


def blobs(n: int = 600, d: int = 8, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = rng.normal(0, 2, (classes, d))
    return (centres[y] + rng.normal(0, 1.5, (n, d))).astype(np.float32), y


@pytest.fixture(scope="module")
def fitted():
    x, y = blobs()
    table = feature_table(x, y)
    stage = EL2N(runs=3, score_epoch=2, hidden=[16], batch_size=64, grand="full")
    artifact = stage.fit(TablesFitContext([table.slice(0, 250), table.slice(250)]))
    stage.setup(artifact)
    return stage, table, artifact


# --- check 1: EL2N range ---------------------------------------------------------------------------
def test_el2n_lies_in_0_sqrt2_is_0_for_a_perfect_prediction_and_sqrt2_for_a_confident_wrong_one():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5000, 10, generator=g, dtype=torch.float64) * torch.logspace(-2, 3, 5000, dtype=torch.float64)[:, None]
    y = torch.randint(0, 10, (5000,), generator=g)
    e, ce, _ = proxy.el2n_from_logits(z, y)
    assert (e >= 0).all() and (e <= math.sqrt(2)).all() and (ce >= 0).all()
    perfect = torch.zeros(4, 10, dtype=torch.float64)
    perfect[torch.arange(4), torch.tensor([0, 3, 5, 9])] = 1000.0
    assert proxy.el2n_from_logits(perfect, torch.tensor([0, 3, 5, 9]))[0].tolist() == [0.0] * 4
    wrong = proxy.el2n_from_logits(perfect, torch.tensor([1, 4, 6, 0]))[0]
    assert torch.allclose(wrong, torch.full((4,), math.sqrt(2), dtype=torch.float64), rtol=0, atol=1e-15)


# --- check 2: last-layer closed form ---------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_last_layer_grand_equals_el2n_times_sqrt_1_plus_h2_and_the_autograd_gradient(bias):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(12, 20), nn.Tanh(), nn.Linear(20, 7, bias=bias)).double().eval()
    x, y = torch.randn(64, 12, dtype=torch.float64), torch.randint(0, 7, (64,))
    closed = proxy.last_layer_grand(model, x, y)
    h = model[:2](x)
    e, _, _ = proxy.el2n_from_logits(model(x), y)
    formula = e * torch.sqrt(float(bias) + (h ** 2).sum(1))
    assert torch.allclose(closed, formula, rtol=0, atol=1e-12)
    last = model[2]
    explicit = []
    for i in range(len(x)):  # per-row backward through the last layer's own parameters
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        sq = (last.weight.grad ** 2).sum() + ((last.bias.grad ** 2).sum() if bias else 0.0)
        explicit.append(float(torch.sqrt(sq)))
    assert np.allclose(closed.detach().numpy(), explicit, rtol=0, atol=1e-12)


# --- check 3: full GraNd ---------------------------------------------------------------------------
def test_full_grand_equals_an_explicit_per_row_backward_over_all_trainable_parameters():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 5)).double()
    model.train()
    model(torch.randn(256, 10, dtype=torch.float64))  # non-trivial running statistics (state, not parameters)
    model.eval()
    model[3].weight.requires_grad_(False)  # a frozen layer takes no part in the norm
    x, y = torch.randn(50, 10, dtype=torch.float64), torch.randint(0, 5, (50,))
    fast = proxy.full_grand(model, x, y, chunk_elements=3000)  # several chunks
    explicit = []
    for i in range(len(x)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        explicit.append(math.sqrt(sum(float((p.grad ** 2).sum()) for p in model.parameters() if p.requires_grad)))
    assert np.allclose(fast.numpy(), explicit, rtol=0, atol=1e-10)


# --- check 4: batch independence -------------------------------------------------------------------
def test_scores_do_not_change_with_batch_mates_or_batch_size(fitted):
    stage, table, _ = fitted
    whole = stage.score(table)
    perm = np.random.default_rng(3).permutation(table.num_rows)
    shuffled = stage.score(table.take(pa.array(perm)))
    back = shuffled.take(pa.array(np.argsort(perm)))
    pieces = pa.concat_tables([stage.score(table.slice(i, k)) for i, k in ((0, 1), (1, 7), (8, 100), (108, 492))])
    for other in (back, pieces):
        for col in ("score", "std", "loss", "grand", "grand_std", "runs", "label"):
            assert whole.column(col).equals(other.column(col)), col


def test_scoring_uses_eval_mode_so_batchnorm_and_dropout_leave_rows_independent():
    x, y = blobs(300)
    table = feature_table(x, y)
    module = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    stage = EL2N(runs=2, score_epoch=1, proxy=module, batch_size=32, grand="last_layer")
    stage.setup(stage.fit(TablesFitContext([table])))
    whole = stage.score(table)
    alone = pa.concat_tables([stage.score(table.slice(i, 1)) for i in range(0, 300, 37)])
    sel = pa.array(np.arange(0, 300, 37))
    for col in ("score", "grand"):
        assert whole.column(col).take(sel).equals(alone.column(col))


# --- the stage: outputs, runs, averaging -----------------------------------------------------------
def test_outputs_are_the_mean_and_std_over_runs_of_the_per_run_scores(fitted):
    stage, table, artifact = fitted
    out = stage.score(table)
    x = np.asarray(table.column("features").combine_chunks().flatten().to_numpy()).reshape(table.num_rows, -1)
    per_run = stage.score_runs(x, table.column("label").to_numpy())
    assert per_run["el2n"].shape == (3, table.num_rows)
    assert np.allclose(out.column("score").to_numpy(), per_run["el2n"].mean(0).astype(np.float32))
    assert np.allclose(out.column("std").to_numpy(), per_run["el2n"].std(0).astype(np.float32), atol=1e-7)
    assert np.allclose(out.column("grand").to_numpy(), per_run["grand"].mean(0).astype(np.float32))
    assert set(out.column("runs").to_pylist()) == {3}
    assert out.column("error").null_count == table.num_rows
    assert np.all(out.column("score").to_numpy() <= math.sqrt(2))
    info = stage.describe(artifact)
    assert info["runs"] == 3 and info["epochs"] == 2 and len(info["train_acc"]) == 3 and info["classes"] == [0, 1, 2]


def test_runs_differ_and_refitting_is_deterministic(fitted):
    stage, table, artifact = fitted
    again = EL2N(runs=3, score_epoch=2, hidden=[16], batch_size=64, grand="full")
    art2 = again.fit(TablesFitContext([table]))  # other sharding, same sample order (by tie key)
    assert art2.column("weights").equals(artifact.column("weights"))
    weights = artifact.column("weights").to_pylist()
    assert len(set(weights)) == 3


def test_bad_rows_get_per_row_errors_and_the_rest_is_scored(fitted):
    stage, table, _ = fitted
    good = table.slice(0, 3)
    feats = pa.array([[1.0] * 8, None, [1.0] * 7, [float("nan")] + [0.0] * 7, [0.5] * 8, [0.5] * 8, [0.5] * 8],
                     pa.list_(pa.float32()))
    bad = pa.table({"id": [f"b{i}" for i in range(7)], "features": feats,
                    "label": pa.array([7, 0, 1, 2, None, 1, 0], pa.int64())})
    out = stage.score(pa.concat_tables([good.select(["id", "features", "label"]).cast(bad.schema), bad]))
    err = out.column("error").to_pylist()
    assert err[:3] == [None] * 3
    assert err[3].startswith("bad_label: 7 is not in the fitted class set")
    assert err[4] == "invalid_features: null"
    assert err[5] == "invalid_features: 7 values, expected 8"
    assert err[6] == "invalid_features: NaN or Inf values"
    assert err[7] == "bad_label: null"
    assert err[8:] == [None, None]
    score = out.column("score").to_pylist()
    assert all(s is None for s in score[3:8]) and all(s is not None for s in score[:3] + score[8:])
    floats = pa.table({"features": table.column("features").slice(0, 3), "label": pa.array([1.0, 1.5, float("inf")])})
    ferr = stage.score(floats).column("error").to_pylist()
    assert ferr[0] is None and ferr[1] == "bad_label: 1.5 is not an integer" and ferr[2].startswith("bad_label: inf")


def test_a_run_with_nonfinite_logits_is_skipped_and_all_runs_failing_is_an_error(fitted):
    stage, table, artifact = fitted
    broken = EL2N(runs=3, score_epoch=2, hidden=[16], batch_size=64, grand="full")
    broken.setup(artifact)
    with torch.no_grad():
        broken._models[0][0].weight[0, 0] = float("nan")
    out = broken.score(table.slice(0, 20))
    assert set(out.column("runs").to_pylist()) == {2} and out.column("error").null_count == 20
    assert not np.isnan(out.column("score").to_numpy()).any()
    for m in broken._models:
        with torch.no_grad():
            m[-1].bias[0] = float("inf")
    out = broken.score(table.slice(0, 5))
    assert out.column("score").null_count == 5
    assert all(e.startswith("nonfinite_logits") for e in out.column("error").to_pylist())


def test_fit_refuses_a_single_class_and_data_without_valid_rows():
    x, _ = blobs(100)
    with pytest.raises(DataError, match="at least 2"):
        EL2N(runs=1).fit(TablesFitContext([feature_table(x, np.zeros(100, np.int64))]))
    t = feature_table(x, np.zeros(100, np.int64)).set_column(2, "label", pa.nulls(100, pa.int64()))
    with pytest.raises(DataError, match="no row has both"):
        EL2N(runs=1).fit(TablesFitContext([t]))


def test_fit_rows_trains_on_an_exact_seeded_sample_and_scores_every_row():
    x, y = blobs(500)
    table = feature_table(x, y)
    stage = EL2N(runs=1, score_epoch=1, hidden=[8], fit_rows=120)
    artifact = stage.fit(TablesFitContext([table.slice(0, 200), table.slice(200)]))
    info = stage.describe(artifact)
    assert info["fit_rows"] == 120 and info["valid_rows"] == 500
    stage.setup(artifact)
    assert stage.score(table).column("score").null_count == 0


def test_config_errors_name_the_parameter():
    with pytest.raises(ConfigError, match="grand"):
        EL2N(grand="yes")
    with pytest.raises(ConfigError, match="runs"):
        EL2N(runs=0)
    with pytest.raises(ConfigError, match="hidden"):
        EL2N(hidden=[0])
    assert EL2N().check_input("label", pa.string()) is not None
    assert EL2N().check_input("features", pa.list_(pa.uint8(), 784)) is None


# --- the policy ------------------------------------------------------------------------------------
def policy_rows(values: np.ndarray, labels: np.ndarray, shards: int = 3, column: str = "el2n.score") -> list[Rows]:
    ids = pa.array([f"p{i}" for i in range(len(values))])
    h = hash_strings(ids)
    cut = np.array_split(np.arange(len(values)), shards)
    return [Rows(values[c], h[c], {column: values[c], "el2n.label": labels[c].astype(np.float64)}, f"s{i}")
            for i, c in enumerate(cut)]


def decide_all(policy, parts) -> np.ndarray:
    return np.concatenate([policy.decide_rows(r)[0] for r in parts])


def reference_window(values, h, largest, skip, keep, seed=0) -> np.ndarray:
    order = np.lexsort((tie_keys(h, seed), order_keys(values, largest)))
    out = np.zeros(len(values), bool)
    out[order[skip:skip + keep]] = True
    return out


@pytest.mark.parametrize("direction,offset", [("hard", 0.0), ("easy", 0.0), ("offset", 0.2)])
def test_policy_keeps_exactly_the_window_with_ties_broken_by_id(direction, offset):
    rng = np.random.default_rng(4)
    values = np.round(rng.random(1001), 2)  # many exact ties
    labels = rng.integers(0, 4, 1001)
    parts = policy_rows(values, labels)
    p = El2nKeep(fraction=0.5, direction=direction, offset=offset)
    p.fit(RowsScan(parts))
    keep = decide_all(p, parts)
    h = np.concatenate([r.id_hash for r in parts])
    want = reference_window(values, h, direction != "easy", round(offset * 1001), 501)  # floor(0.5 * 1001 + 0.5)
    assert keep.sum() == want.sum() and (keep == want).all()
    assert sum(p.describe()["kept_per_class"].values()) == keep.sum()
    # the same rows whatever the sharding
    parts7 = policy_rows(values, labels, shards=7)
    p7 = El2nKeep(fraction=0.5, direction=direction, offset=offset)
    p7.fit(RowsScan(parts7))
    assert (decide_all(p7, parts7) == keep).all()


def test_offset_drops_the_top_as_likely_label_noise_then_keeps_the_next_fraction():
    values = np.arange(100, dtype=np.float64)
    parts = policy_rows(values, np.zeros(100, np.int64), shards=2)
    p = El2nKeep(fraction=0.5, direction="offset", offset=0.2)
    p.fit(RowsScan(parts))
    keep = decide_all(p, parts)
    assert np.flatnonzero(keep).tolist() == list(range(30, 80))
    reasons = pa.concat_arrays([p.decide_rows(r)[1] for r in parts]).to_pylist()
    assert "likely label noise" in reasons[95] and "below the kept offset window" in reasons[10]
    assert reasons[50] is None


def test_per_class_keeps_a_largest_remainder_share_of_each_class_exactly():
    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1, 2], [501, 300, 199])
    values = rng.random(1000) + labels  # class 2 is all "harder" than class 0
    parts = policy_rows(values, labels)
    glob = El2nKeep(fraction=0.3)
    glob.fit(RowsScan(parts))
    assert glob.describe()["kept_per_class"] == {"0": 0, "1": 101, "2": 199}  # the global cut collapses
    p = El2nKeep(fraction=0.3, per_class=True)
    p.fit(RowsScan(parts))
    keep = decide_all(p, parts)
    assert keep.sum() == 300
    assert p.describe()["kept_per_class"] == {"0": 150, "1": 90, "2": 60}  # 150.3, 90, 59.7 -> sums to 300
    for c in range(3):  # inside each class, the hardest rows
        inside = labels == c
        assert values[inside & keep].min() > values[inside & ~keep].max()


def test_nan_scores_are_never_ranked_as_hardest():
    values = np.array([np.nan, 0.1, 0.9, np.nan, 0.5, 0.7])
    parts = policy_rows(values, np.zeros(6, np.int64), shards=2)
    p = El2nKeep(fraction=0.5)
    p.fit(RowsScan(parts))
    keep = decide_all(p, parts)
    assert keep.tolist() == [False, False, True, False, False, True]  # 2 of the 4 finite rows
    assert p.describe()["valid_rows"] == 4


def test_policy_config_errors():
    with pytest.raises(ConfigError, match="offset"):
        El2nKeep(fraction=0.5, direction="hard", offset=0.1)
    with pytest.raises(ConfigError, match="<= 1"):
        El2nKeep(fraction=0.9, direction="offset", offset=0.2)
    with pytest.raises(ConfigError, match="direction"):
        El2nKeep(direction="hardest")
