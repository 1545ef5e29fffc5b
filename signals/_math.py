"""Scalar float helpers for kernels: tolerant comparison and increment rounding.

Increment rounding applies a relative epsilon of 1e-9 to the quotient `x / inc`, so values that
are a multiple of `inc` in decimal but not in binary (0.3 / 0.1 = 2.9999999999999996) round to
that multiple. The price: a value within 1e-9 (relative) below a multiple floors to it. The
epsilon is capped at 0.01 increments: uncapped, 1e-9 * q reaches a whole increment once
q >= 1e9 (100 BTC at a 1e-8 increment is q = 1e10) and floor would round up by whole
increments; 0.01 is still far above the float error of q (|q| * 2.2e-16) for |q| <= 1e12,
the supported range (beyond ~4e13 a double cannot resolve the increment cleanly). When
`inc` is the reciprocal of an integer k (0.1, 0.01, 1e-8), the result is computed as `n / k`,
which is the double nearest to the decimal multiple (0.3, not 0.30000000000000004).
"""

import numpy as np
from numba import njit


@njit(cache=True)
def is_close_nb(a, b, rel, abs_):
    """Return True if `|a - b| <= max(rel * max(|a|, |b|), abs_)`.

    Reference: `tests/reference/indicators.py::is_close_ref` (like `math.isclose`).

    Units: `rel` a fraction, `abs_` in the units of `a`. Equal infinities are close; NaN is
    never close to anything.
    """
    if a == b:
        return True
    if np.isnan(a) or np.isnan(b) or np.isinf(a) or np.isinf(b):
        return False
    diff = abs(a - b)
    tol = rel * max(abs(a), abs(b))
    if abs_ > tol:
        tol = abs_
    return diff <= tol


@njit(cache=True)
def _multiple_nb(n, inc):
    # n * inc, computed as n / k when inc is 1 / k for an integer k (exactly representable).
    if inc < 1.0:
        k = np.round(1.0 / inc)
        if k < 9.0e15 and abs(k * inc - 1.0) <= 1e-12:
            return n / k
    return n * inc


@njit(cache=True)
def floor_to_increment_nb(x, inc):
    """Round `x` down to a multiple of `inc`, robust to float error in the quotient.

    Reference: `tests/reference/indicators.py::floor_to_increment_ref`.

    `n = floor(q + min(1e-9 * |q|, 0.01))` with `q = x / inc`; result `n * inc` (module
    docstring).
    `inc <= 0` returns `x` unchanged. NaN `x` or `inc` gives NaN; infinite `x` is returned.
    """
    if inc <= 0.0:
        return x
    if np.isnan(inc) or np.isnan(x):
        return np.nan
    if np.isinf(x):
        return x
    q = x / inc
    n = np.floor(q + min(1e-9 * abs(q), 0.01))
    return _multiple_nb(n, inc)


@njit(cache=True)
def ceil_to_increment_nb(x, inc):
    """Round `x` up to a multiple of `inc`, robust to float error in the quotient.

    Reference: `tests/reference/indicators.py::ceil_to_increment_ref`.

    `n = ceil(q - min(1e-9 * |q|, 0.01))` with `q = x / inc`; result `n * inc` (module
    docstring).
    `inc <= 0` returns `x` unchanged. NaN `x` or `inc` gives NaN; infinite `x` is returned.
    """
    if inc <= 0.0:
        return x
    if np.isnan(inc) or np.isnan(x):
        return np.nan
    if np.isinf(x):
        return x
    q = x / inc
    n = np.ceil(q - min(1e-9 * abs(q), 0.01))
    return _multiple_nb(n, inc)
