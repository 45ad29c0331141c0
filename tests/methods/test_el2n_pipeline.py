"""EL2N through the engine (check 5: sharding and executor independence, config) and the statistical checks
on scikit-learn's bundled digits (checks 6-8: label-noise detection, averaging over runs, GraNd at init)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import spearmanr
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

import curate
from curate.config import pipeline_from_dict
from curate.methods.el2n.stage import EL2N
from curate.stage import TablesFitContext
from testkit.helpers import shuffled_shards, write_shards
from tests.methods.test_el2n import feature_table


def digits(flip: float = 0.0, seed: int = 0) -> tuple[pa.Table, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    flipped = np.zeros(len(y), bool)
    flipped[rng.choice(len(y), int(round(flip * len(y))), replace=False)] = True
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    return feature_table(x.astype(np.float32), noisy, [f"d{i:04d}" for i in range(len(y))]), flipped


def small_pipeline(policy_fraction: float = 0.5):
    return curate.Pipeline([EL2N(runs=2, score_epoch=2, hidden=[32], batch_size=128, grand="last_layer")],
                           [curate.KeepFraction("el2n.score", policy_fraction)], id_column="id")


def test_one_shard_and_recut_shuffled_shards_give_the_same_scores(tmp_path):
    table = digits()[0].drop_columns(["_curate.id_hash"])
    write_shards(tmp_path / "one", table, 1)
    shuffled_shards(tmp_path / "five", table, 5, seed=1)
    curate.run(small_pipeline(), tmp_path / "one", tmp_path / "r1", executor="local")
    curate.run(small_pipeline(), tmp_path / "five", tmp_path / "r5", executor="local")
    cols = ["id", "el2n.score", "el2n.std", "el2n.grand", "el2n.loss", "keep"]
    a = curate.load_manifest(tmp_path / "r1", cols).sort_by("id")
    b = curate.load_manifest(tmp_path / "r5", cols).sort_by("id")
    assert a.equals(b)
    assert a.column("keep").to_pylist().count(True) == 899  # floor(0.5 * 1797 + 0.5)


@pytest.mark.slow
def test_local_and_ray_executors_give_the_same_manifest(tmp_path, shared_ray):
    table = digits()[0].drop_columns(["_curate.id_hash"])
    write_shards(tmp_path / "data", table, 3)
    curate.run(small_pipeline(), tmp_path / "data", tmp_path / "local", executor="local")
    curate.run(small_pipeline(), tmp_path / "data", tmp_path / "ray", executor="ray")
    assert curate.load_manifest(tmp_path / "local").equals(curate.load_manifest(tmp_path / "ray"))


def test_config_builds_the_stage_and_the_offset_policy_with_per_row_errors(tmp_path):
    table = digits()[0].drop_columns(["_curate.id_hash"])
    labels = table.column("label").to_numpy().astype(object)
    labels[:3] = None
    table = table.set_column(2, "label", pa.array(labels.tolist(), pa.int64()))
    write_shards(tmp_path / "data", table, 2)
    pipeline, _ = pipeline_from_dict({
        "name": "digits", "id_column": "id",
        "stages": [{"type": "el2n", "runs": 2, "score_epoch": 1, "hidden": [16]}],
        "policies": [{"type": "el2n_keep", "direction": "offset", "offset": 0.1, "fraction": 0.5, "per_class": True}]})
    s = curate.run(pipeline, tmp_path / "data", tmp_path / "run", executor="local")
    m = curate.load_manifest(tmp_path / "run")
    assert m.column("error").to_pylist()[:3] == ["el2n: bad_label: null"] * 3
    n_valid = table.num_rows - 3
    assert s["result"]["kept"] == n_valid // 2 and s["result"]["errored"] == 3
    p = s["policies"]["el2n"]
    assert p["skipped_top"] == round(0.1 * n_valid)
    for c, kept in p["kept_per_class"].items():  # each class's share, rounded by largest remainder
        assert abs(kept - 0.5 * p["rows_per_class"][c]) <= 1


# --- statistical checks on digits (10 runs, 3 epochs, MLP 64-32-10) --------------------------------
@pytest.fixture(scope="module")
def noisy_digits():
    table, flipped = digits(flip=0.1, seed=0)
    stage = EL2N(runs=10, score_epoch=3, hidden=[32], batch_size=128)
    stage.setup(stage.fit(TablesFitContext([table])))
    x = np.asarray(table.column("features").combine_chunks().flatten().to_numpy()).reshape(table.num_rows, -1)
    return stage.score_runs(x, table.column("label").to_numpy())["el2n"], flipped


def test_flipped_labels_are_found_by_el2n_precision_at_10_percent_and_auroc(noisy_digits):
    per_run, flipped = noisy_digits
    score = per_run.mean(0)
    top = np.argsort(-score, kind="stable")[:flipped.sum()]
    precision = flipped[top].mean()
    auroc = roc_auc_score(flipped, score)
    assert precision >= 0.6 and auroc >= 0.9, (precision, auroc)


def test_averaging_over_runs_changes_the_ranks(noisy_digits):
    per_run, _ = noisy_digits
    mean = per_run.mean(0)
    rhos = [spearmanr(per_run[r], mean).statistic for r in range(len(per_run))]
    assert all(0.7 < rho < 0.99 for rho in rhos), rhos


def test_grand_at_initialisation_tracks_the_input_norm():
    table, _ = digits()
    stage = EL2N(runs=10, score_epoch=0, hidden=[32], grand="full")
    stage.setup(stage.fit(TablesFitContext([table])))
    out = stage.score(table)
    x = np.asarray(table.column("features").combine_chunks().flatten().to_numpy()).reshape(table.num_rows, -1)
    norm = np.linalg.norm((x - stage._mean.numpy()) / stage._std.numpy(), axis=1)
    rho = spearmanr(out.column("grand").to_numpy(), norm).statistic
    assert rho > 0.7, rho
