"""Sensitivity sampling: exact draws, weights, the two-level draw's law, unbiasedness and the gain over
uniform sampling when the loss varies smoothly with the embedding."""
from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import chisquare

import curate
from curate.errors import ConfigError
from curate.methods.sens.policy import Sample, mixing, row_counts, shard_counts
from curate.methods.sens.stage import Sensitivity
from testkit.helpers import vector_table, write_shards


def clustered(n=20_000, d=16, clusters=12, seed=1):
    """12 clusters of varying spread and size; loss = softplus of a linear function of the embedding.

    The gain over uniform depends on the geometry: the distance term (half the mass at alpha = 0.5) goes
    to diffuse clusters whatever their loss. Over seeds 0-5 of this generator the exact RMSE ratio at
    k = 30 is 0.54-0.87 (seed 1: 0.71 at m = 100, 0.65 at m = 300), and at k = 10, where k-means must
    merge true clusters, 0.73-1.11; so the gain is asserted at k = 30 and unbiasedness at both."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d))
    sizes = rng.dirichlet(np.full(clusters, 2.0)) * n
    sizes = np.maximum(1, np.round(sizes)).astype(int)
    sizes[-1] += n - sizes.sum()
    spread = rng.uniform(0.1, 0.3, clusters)
    x = np.concatenate([c + s * rng.standard_normal((k, d)) for c, s, k in zip(centres, spread, sizes)])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    w = rng.standard_normal(d) * 3
    loss = np.log1p(np.exp(x @ w + 0.5))
    return x.astype(np.float32), loss


def sens_run(tmp_path, x, loss_values, k, m=100, shards=4, **stage):
    table = vector_table([f"r{i:06d}" for i in range(len(x))], x)
    if loss_values is not None:
        table = table.append_column("loss", pa.array(loss_values))
    data = write_shards(tmp_path / "data", table, shards)
    source = {"loss": "column", "loss_column": "loss"} if loss_values is not None else {}
    p = curate.Pipeline(stages=[Sensitivity("emb", k=k, niter=25, **{**source, **stage})],
                        policies=[Sample(m=m, alpha=0.5, seed=5)], id_column="id")
    summary = curate.run(p, data, tmp_path / "run", executor="local")
    return summary, curate.load_manifest(tmp_path / "run")


@pytest.fixture(scope="module")
def smooth():
    return clustered()


def test_probabilities_sum_to_one_counts_to_m_and_weights_are_inverse_probability(tmp_path, smooth):
    x, loss = smooth
    summary, m = sens_run(tmp_path, x[:3000], loss[:3000], k=10, m=250)
    p = m.column("sens.p").to_numpy()
    assert m.schema.field("sens.p").type == pa.float64() and m.schema.field("weight").type == pa.float64()
    assert abs(p.sum() - 1) < 1e-12 and (p > 0).all()
    count = m.column("sens.count").to_numpy()
    assert count.sum() == 250
    w = m.column("sens.weight").to_numpy()
    np.testing.assert_allclose(w, count / (250 * p), rtol=1e-12)
    assert (m.column("keep").to_numpy(zero_copy_only=False) == (count > 0)).all()
    np.testing.assert_array_equal(m.column("weight").to_numpy(), w)
    assert summary["policies"]["sens"]["distinct_drawn"] == (count > 0).sum()


def test_same_draw_whatever_the_shard_names_or_listing(tmp_path, smooth, shared_ray):
    x, loss = smooth
    _, a = sens_run(tmp_path / "a", x[:2000], loss[:2000], k=8)
    (tmp_path / "b" / "data").mkdir(parents=True)
    for path in sorted((tmp_path / "a" / "data").glob("*.parquet")):  # same bytes, other names, other order
        shutil.copy(path, tmp_path / "b" / "data" / f"z-{9 - int(path.stem[-1])}.parquet")
    p = curate.Pipeline(stages=[Sensitivity("emb", k=8, niter=25, loss="column", loss_column="loss")],
                        policies=[Sample(m=100, alpha=0.5, seed=5)], id_column="id")
    curate.run(p, tmp_path / "b" / "data", tmp_path / "b" / "run", executor="ray", workers=2)
    b = curate.load_manifest(tmp_path / "b" / "run")
    count_a = dict(zip(a.column("id").to_pylist(), a.column("sens.count").to_pylist()))
    count_b = dict(zip(b.column("id").to_pylist(), b.column("sens.count").to_pylist()))
    assert count_a == count_b and len(count_a) == 2000


def test_two_level_draw_has_the_law_of_one_flat_multinomial():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(30))
    shards = {"aa11": p[:7], "bb22": p[7:19], "cc33": p[19:]}
    m, reps = 40, 2000
    total = np.zeros(30)
    for seed in range(reps):
        counts = shard_counts({k: v.sum() for k, v in shards.items()}, m, seed)
        total += np.concatenate([row_counts(v, counts[k], seed, k) for k, v in shards.items()])
        assert sum(counts.values()) == m
    assert chisquare(total, reps * m * p).pvalue > 0.01


def test_alpha_lambda_round_trip_and_constant_loss_is_the_lightweight_coreset(tmp_path, smooth):
    lam, alpha = mixing(120.0, 30.0, 0.3, None)
    assert abs(alpha - 0.3) < 1e-12 and abs(mixing(120.0, 30.0, None, lam)[1] - 0.3) < 1e-12
    x, _ = smooth
    _, m = sens_run(tmp_path, x[:2000], None, k=8)
    d = m.column("sens.dist_z").to_numpy()
    np.testing.assert_allclose(m.column("sens.p").to_numpy(), 0.5 / 2000 + 0.5 * d / d.sum(), rtol=1e-10)
    assert set(m.column("sens.center_loss").to_pylist()) == {1.0}


def test_a_bad_loss_at_a_representative_fails_naming_the_row(tmp_path, smooth):
    x, _ = smooth
    with pytest.raises(ConfigError, match="loss at representative row 'r"):
        sens_run(tmp_path, x[:500], None, k=3, loss="model", loss_model="testkit.helpers:nan_loss")


def estimates(p, loss, m, k, trials, seed):
    """(sensitivity estimates of the mean loss, uniform estimates with m + k draws) over many trials."""
    rng = np.random.default_rng(seed)
    n = len(loss)
    counts = rng.multinomial(m, p, size=trials)
    sens = (counts / (m * p)) @ loss / n
    uniform = loss[rng.integers(0, n, (trials, m + k))].mean(axis=1)
    return sens, uniform


@pytest.mark.parametrize("k", [10, 30])
def test_unbiased_and_better_than_uniform_when_loss_is_smooth_and_clusters_are_found(tmp_path, smooth, k):
    x, loss = smooth
    _, man = sens_run(tmp_path, x, loss, k=k)
    p = man.column("sens.p").to_numpy()
    truth = loss[[int(i[1:]) for i in man.column("id").to_pylist()]]
    for m in (100, 300):
        sens, uniform = estimates(p, truth, m, k, trials=1000, seed=m + k)
        se = sens.std() / np.sqrt(len(sens))
        assert abs(sens.mean() - truth.mean()) < 3 * se
        rmse = lambda e: np.sqrt(np.mean((e - truth.mean()) ** 2))  # noqa: E731
        if k == 30:
            assert rmse(sens) <= 0.85 * rmse(uniform), (m, k, rmse(sens) / rmse(uniform))


def test_negative_control_loss_unrelated_to_the_embedding_stays_unbiased(tmp_path, smooth):
    x, _ = smooth
    noise = np.random.default_rng(4).exponential(1.0, len(x))
    _, man = sens_run(tmp_path, x, noise, k=10)
    truth = noise[[int(i[1:]) for i in man.column("id").to_pylist()]]
    sens, _ = estimates(man.column("sens.p").to_numpy(), truth, 100, 10, trials=1000, seed=1)
    assert abs(sens.mean() - truth.mean()) < 3 * sens.std() / np.sqrt(len(sens))
