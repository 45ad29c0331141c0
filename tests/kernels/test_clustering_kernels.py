"""Kernels of the clustering stages: vectors, max-sim to earlier rows, k-means, the allocation."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy.optimize import minimize

from kernels.allocation import integer_quotas, water_fill
from kernels.kmeans import fit_kmeans, nearest
from kernels.maxsim import max_sim_prev
from kernels.vectors import packed_rows, unit_vectors, unpacked_rows, valid_vectors, vector_size


def unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(e):
    """The reference rule written plainly: the full similarity matrix, max over earlier rows."""
    s = e.astype(np.float64) @ e.astype(np.float64).T
    m = np.array([-1.0] + [s[j, :j].max() for j in range(1, len(e))])
    arg = np.array([-1] + [int(np.argmax(s[j, :j])) for j in range(1, len(e))])
    return m, arg


@pytest.mark.parametrize("n,tile", [(300, 1), (300, 7), (2000, 7), (2000, 4096), (1999, 256)])
def test_max_sim_prev_equals_brute_force_for_any_tile(n, tile):
    e = unit(np.random.default_rng(n + tile), n, 24)
    m, arg = max_sim_prev(e, tile)
    ref_m, ref_arg = brute_force(e)
    assert m.dtype == np.float32 and m[0] == -1 and arg[0] == -1
    np.testing.assert_allclose(m, ref_m, atol=1e-6)
    assert (arg == ref_arg).mean() > 0.999  # near-exact float ties may pick another equal row
    assert np.array_equal(max_sim_prev(e, 4096)[0], m)  # the stored M does not depend on the tile


def test_chain_a_b_c_keeps_only_a():
    """a~b and b~c but a not~c: c is still removed, because it is compared with every earlier row."""
    theta = np.arccos(0.99989)
    e = np.array([[np.cos(i * theta), np.sin(i * theta), 0.0] for i in range(3)], np.float32)
    assert e[0] @ e[2] < 0.99975
    m, arg = max_sim_prev(e, tile=2)
    kept = ~(m > 0.99975)
    assert kept.tolist() == [True, False, False]
    assert arg.tolist() == [-1, 0, 1]


@pytest.mark.parametrize("d", [16, 512])
def test_exact_copies_land_within_float_noise_of_one(d):
    rng = np.random.default_rng(d)
    base = rng.standard_normal(d) * rng.uniform(0.1, 100)
    raw = np.tile(base, (50, 1)) * rng.uniform(0.5, 3, (50, 1))  # same direction, random scales
    e, errors = unit_vectors(pa.FixedSizeListArray.from_arrays(pa.array(raw.astype(np.float32).ravel()), d))
    assert (errors == None).all()  # noqa: E711
    m, _ = max_sim_prev(e)
    assert np.abs(m[1:] - 1).max() < 1e-6
    assert (m[1:] > 1 - 1e-5).all()                 # eps = 1e-5 removes every copy after the first
    literal = m[1:] > 1.0                           # eps = 0: only those rounding lands above 1
    assert literal.sum() == (m[1:].astype(np.float64) > 1.0).sum()


def test_unit_vectors_name_every_bad_row():
    arr = pa.array([[3.0, 4.0], None, [np.nan, 1.0], [0.0, 0.0], [1.0, 2.0, 3.0], [0.0, 2.0]],
                   pa.list_(pa.float32()))
    x, errors = unit_vectors(arr)
    assert errors[0] is None and errors[5] is None
    np.testing.assert_allclose(x[0], [0.6, 0.8], rtol=1e-6)
    assert errors[1] == "invalid_embedding: null"
    assert errors[2] == "invalid_embedding: NaN or Inf values"
    assert errors[3] == "invalid_embedding: zero vector"
    assert errors[4] == "invalid_embedding: 3 values, expected 2"
    assert not x[1:5].any()


def test_kmeans_is_deterministic_and_nearest_is_position_independent():
    rng = np.random.default_rng(0)
    x = unit(rng, 3000, 16)
    c1, c2 = fit_kmeans(x, 8, 20, 1234), fit_kmeans(x, 8, 20, 1234)
    assert np.array_equal(c1, c2)
    np.testing.assert_allclose(np.linalg.norm(c1, axis=1), 1, atol=1e-6)
    cl, sim = nearest(x, c1)
    assert np.array_equal(cl, np.argmax(x @ c1.T, axis=1))
    row = np.repeat(x[:1], 70_000, axis=0)  # one vector everywhere in a large batch: one cluster, one score
    cl2, sim2 = nearest(np.concatenate([x, row]), c1)
    assert len(set(cl2[3000:])) == 1 and len(set(sim2[3000:])) == 1 and sim2[3000] == sim[0]


def _qp(target, lb, ub, total):
    """A generic constrained solver on the reference's QP (SLSQP), as the spec's comparison."""
    res = minimize(lambda x: 0.5 * x @ x - target @ x, np.clip(np.full(len(target), total / len(target)), lb, ub),
                   jac=lambda x: x - target, bounds=list(zip(lb, ub)), method="SLSQP",
                   constraints=[{"type": "eq", "fun": lambda x: x.sum() - total, "jac": lambda x: np.ones_like(x)}],
                   options={"ftol": 1e-12, "maxiter": 500})
    return res.x


def test_water_filling_equals_a_generic_qp_solver_on_random_instances():
    rng = np.random.default_rng(7)
    worst = 0.0
    for _ in range(60):
        k = int(rng.integers(2, 40))
        n = rng.integers(1, 400, k).astype(float)
        p = rng.dirichlet(np.full(k, rng.uniform(0.1, 3)))
        total = float(rng.integers(1, int(n.sum())))
        lb = np.maximum(0, np.minimum(1, n - 1))
        x, _ = water_fill(total * p, lb, n, total)
        worst = max(worst, np.abs(x - _qp(total * p, lb, n, total)).max())
        assert abs(x.sum() - total) <= 1e-9 * total + 1e-9
    assert worst < 1e-3, worst


def test_integer_quotas_sum_exactly_with_tiny_and_huge_instances():
    rng = np.random.default_rng(3)
    for k in (1, 2, 17, 10_000):
        n = rng.integers(1, 60, k)
        n[rng.random(k) < 0.2] = 1
        total = int(rng.integers(1, n.sum() + 1))
        lb = np.maximum(0, np.minimum(1, n - 1))
        p = rng.dirichlet(np.ones(k))
        x, _ = water_fill(total * p, lb, n, total)
        q = integer_quotas(x, n, total)
        assert q.sum() == total and (q >= lb).all() and (q <= n).all()


def test_allocation_refuses_impossible_bounds():
    with pytest.raises(ValueError, match="no allocation"):
        water_fill(np.array([5.0, 5.0]), np.array([4.0, 4.0]), np.array([9.0, 9.0]), 6)


def test_torch_path_of_the_pairwise_kernel_matches_numpy():
    """The code path GPU workers take, run on the CPU here: same pairs, same M."""
    from kernels.maxsim import _max_sim_prev_torch

    e = unit(np.random.default_rng(5), 700, 32)
    m, arg = max_sim_prev(e, 64)
    tm, targ = _max_sim_prev_torch(e, 64, "cpu")
    assert (targ == arg).mean() > 0.999 and np.abs(tm - m).max() < 1e-6


@pytest.mark.parametrize("n,tile", [(1300, 4096), (1300, 600), (1300, 100), (513, 512)])
def test_max_sim_prev_earliest_row_wins_exact_ties_across_strips(n, tile):
    """Small-integer vectors make every dot product exact, so ties are real ties: whatever the tile and the
    diagonal block's strips, each row's argmax is the earliest of its most similar earlier rows."""
    e = np.random.default_rng(n + tile).integers(-2, 3, (n, 8)).astype(np.float32)
    m, arg = max_sim_prev(e, tile)
    s = e.astype(np.float64) @ e.astype(np.float64).T
    ref_arg = np.array([-1] + [int(np.argmax(s[j, :j])) for j in range(1, n)])
    assert np.array_equal(arg, ref_arg)
    assert np.array_equal(m[1:], s[np.arange(1, n), ref_arg[1:]].astype(np.float32))


def test_valid_vectors_agrees_with_unit_vectors_on_float16_bits():
    v = np.random.default_rng(0).standard_normal((12, 4)).astype(np.float16)
    v[1] = 0
    v[2, 1] = np.inf
    v[3, 0] = np.nan
    v[4] = [0, 0, 6e-8, 0]          # the smallest float16: valid (its float32 norm is > 0)
    v[5] = [-0.0, 0, 0, 0]          # negative zero: a zero vector
    v[6] = 65504                    # the largest float16: valid
    v[7, 3] = -np.inf
    rows = pa.FixedSizeListArray.from_arrays(pa.array(v.ravel(), pa.float16()), 4).to_pylist()
    arr = pa.array(rows[:8] + [None] + rows[9:], pa.list_(pa.float16(), 4))
    for a in (arr, arr.slice(3), arr.slice(1, 6), pa.chunked_array([arr.slice(0, 5), arr.slice(5)])):
        assert np.array_equal(valid_vectors(a), unit_vectors(a)[1] == None)  # noqa: E711
    assert valid_vectors(arr).tolist() == [True, False, False, False, True, False, True, False, False, True, True, True]


def test_unit_vectors_of_taken_rows_are_the_rows_of_the_whole_column():
    """The fit's sample pass makes only the sampled rows' vectors: they must be those of the whole column."""
    rows = [[3.0, 4.0], None, [1.0, 2.0, 3.0], [0.5, 0.25], [7.0, 1.0], [1.0, 2.0, 3.0]]
    arr = pa.array(rows, pa.list_(pa.float32()))
    x, errors = unit_vectors(arr)
    take = np.array([0, 2, 5])
    xs, es = unit_vectors(arr.take(pa.array(take)), vector_size(arr))  # alone, their most common length is 3
    assert vector_size(arr) == 2 and np.array_equal(xs, x[take]) and list(es) == list(errors[take])


def test_packed_rows_round_trip_bit_for_bit_through_parquet_slices_and_chunks():
    """SemDeDup's shuffle carries its unit vectors packed: the reduce must get the very same float32 bits."""
    import pyarrow.parquet as pq

    x = np.random.default_rng(3).standard_normal((50, 6)).astype(np.float32)
    x[4] = [np.nan, -0.0, np.inf, 1e-45, -3.0, 0.0]  # odd bits pass through untouched
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"v": packed_rows(x)}), sink, row_group_size=7)
    back = pq.read_table(pa.BufferReader(sink.getvalue())).column("v")
    assert back.num_chunks > 1
    assert unpacked_rows(back).view(np.uint32).tobytes() == x.view(np.uint32).tobytes()
    assert np.array_equal(unpacked_rows(packed_rows(x).slice(10, 5)).view(np.uint32), x[10:15].view(np.uint32))
    assert unpacked_rows(packed_rows(x[:, :0])).shape == (50, 0)
    assert unpacked_rows(packed_rows(x[:0])).shape == (0, 6)
    with pytest.raises(ValueError, match="null"):
        unpacked_rows(pa.array([b"abcd", None], pa.binary(4)))
    with pytest.raises(ValueError, match="whole number"):
        unpacked_rows(pa.array([b"abc"], pa.binary(3)))
