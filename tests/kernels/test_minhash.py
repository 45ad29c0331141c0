"""kernels/minhash.py: the compiled signature kernel against its definition in plain numpy; the S-curve."""
from __future__ import annotations

import numpy as np
import pytest

from kernels.minhash import candidate_probability, min_hashes, mix, permutations, s_curve


def numpy_min_hashes(tokens, offsets, n_hash, seed):
    a, b = permutations(n_hash, seed)
    h = (mix(tokens)[:, None] * a[None, :] + b[None, :]) >> np.uint64(32)
    return np.minimum.reduceat(h, offsets[:-1], axis=0).astype(np.uint32)


@pytest.mark.parametrize("n_hash, seed", [(1, 0), (64, 3), (112, 1)])
def test_compiled_kernel_equals_the_numpy_definition(n_hash, seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 50, 200)
    tokens = rng.integers(0, 2**64, sizes.sum(), dtype=np.uint64)
    offsets = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    assert (min_hashes(tokens, offsets, n_hash, seed) == numpy_min_hashes(tokens, offsets, n_hash, seed)).all()


def test_empty_sets_are_refused_and_agreement_estimates_jaccard():
    with pytest.raises(ValueError, match="at least one token"):
        min_hashes(np.arange(3, dtype=np.uint64), np.array([0, 3, 3]), 8)
    a, b = np.arange(0, 300, dtype=np.uint64), np.arange(100, 400, dtype=np.uint64)  # J = 200 / 400
    sig = min_hashes(np.r_[a, b], np.array([0, 300, 600]), 4096)
    assert abs((sig[0] == sig[1]).mean() - 0.5) < 0.03


def test_s_curve_rises_through_the_threshold():
    curve = s_curve(14, 8)
    assert list(curve.values()) == sorted(curve.values()) and curve["0.8"] == round(float(candidate_probability(0.8, 14, 8)), 4)
