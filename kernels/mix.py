"""The splitmix64 finaliser for compiled kernels: word and n-gram hashes of shingles, ngramindex and textrules.

(kernels/hashing.py's `mix64` is the vectorised numpy form, which also adds splitmix's increment first.)
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, inline="always")
def mix(x):
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
