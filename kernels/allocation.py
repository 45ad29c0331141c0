"""Splitting a row budget over clusters: the exact solution of DBP's quadratic program, in integers.

The reference solves  min 1/2 sum x_j^2 - sum (N P_j) x_j  s.t. sum x_j = N, lb <= x <= ub  with a QP
solver. Its KKT conditions give x_j(lam) = clip(N P_j - lam, lb_j, ub_j) with one scalar lam, and
sum_j x_j(lam) is non-increasing in lam, so bisection on lam solves it to any precision: overflow
from capped clusters is shared equally in absolute terms, not in proportion to P.
"""
from __future__ import annotations

import numpy as np


def water_fill(target: np.ndarray, lb: np.ndarray, ub: np.ndarray, total: float) -> tuple[np.ndarray, float]:
    """(x, lam): the real allocation closest to `target` with bounds and sum(x) == total."""
    target, lb, ub = (np.asarray(a, np.float64) for a in (target, lb, ub))
    if lb.sum() > total + 1e-9 * max(total, 1) or ub.sum() < total - 1e-9 * max(total, 1):
        raise ValueError(f"no allocation: lower bounds sum to {lb.sum():g}, upper bounds to {ub.sum():g}, "
                         f"budget {total:g}")
    lo, hi = float(np.min(target - ub)), float(np.max(target - lb))
    lam = 0.5 * (lo + hi)
    for _ in range(200):  # each step halves the bracket; float64 runs out of bits well before 200
        lam = 0.5 * (lo + hi)
        s = np.clip(target - lam, lb, ub).sum()
        if abs(s - total) <= 1e-9 * max(total, 1):
            break
        if s > total:
            lo = lam
        else:
            hi = lam
    return np.clip(target - lam, lb, ub), lam


def integer_quotas(x: np.ndarray, ub: np.ndarray, total: int) -> np.ndarray:
    """Round an allocation down, then hand the rest out by largest remainder (ties by index): sums to total."""
    q = np.floor(x + 1e-9).astype(np.int64)  # 4.9999999999 from the bisection is 5
    q = np.minimum(q, np.asarray(ub, np.int64))
    rest = int(total - q.sum())
    if rest < 0:
        raise ValueError(f"rounded quotas exceed the budget by {-rest}")
    frac = x - q
    room = np.flatnonzero(q < ub)
    order = room[np.lexsort((room, -frac[room]))]
    if rest > len(order):
        raise ValueError(f"{rest} rows left over but only {len(order)} clusters have room")
    q[order[:rest]] += 1
    return q
