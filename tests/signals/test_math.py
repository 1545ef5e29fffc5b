"""Scalar helpers in signals/_math.py: reference equality, properties and golden values."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from signals._math import ceil_to_increment_nb, floor_to_increment_nb, is_close_nb
from tests.reference.indicators import (
    ceil_to_increment_ref,
    floor_to_increment_ref,
    is_close_ref,
)

PROPS = settings(max_examples=200, deadline=None)
# Result tolerance vs the exact-fraction reference: the kernel multiplies by the binary
# increment (or divides by 1/inc), the reference by the decimal one; they differ by an ulp.
RTOL = 1e-12
INCREMENTS = st.one_of(
    st.sampled_from((0.1, 0.01, 1e-8, 0.5, 0.25, 0.05, 1.0, 5.0, 0.3, 0.0, -1.0)),
    st.floats(min_value=1e-6, max_value=100.0),
)
VALUES = st.one_of(
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    st.integers(-(10**6), 10**6).map(lambda n: n / 10.0),
    st.integers(-(10**6), 10**6).map(lambda n: n / 100.0),
)


def _far_from_boundary(x, inc, sign):
    # Skip quotients whose epsilon-shifted value sits within float noise of an integer.
    if inc <= 0.0:
        return True
    q = Fraction(x) / Fraction(inc)
    shifted = q + sign * min(Fraction(1, 10**9) * abs(q), Fraction(1, 100))
    return abs(shifted - round(shifted)) > Fraction(1, 10**12) * max(1, abs(q))


# --- golden values ---


@pytest.mark.parametrize(
    ("x", "inc", "expected"),
    [
        (0.3, 0.1, 0.3),
        (0.7, 0.1, 0.7),
        (0.29, 0.1, 0.2),
        (0.30000000001, 0.1, 0.3),
        (1.23456789, 1e-8, 1.23456789),
        (7.5, 2.5, 7.5),
        (7.4, 2.5, 5.0),
        (-0.3, 0.1, -0.3),
        (-0.29, 0.1, -0.3),
        (5.0, 0.0, 5.0),
        (5.0, -1.0, 5.0),
        (0.0, 0.1, 0.0),
        (100.0, 1e-8, 100.0),
        (123.45678901, 1e-8, 123.45678901),
        (99999995.0, 0.1, 99999995.0),
        (99.999999995, 1e-8, 99.99999999),
    ],
)
def test_floor_to_increment_decimal_multiples_give_exact_double(x, inc, expected):
    assert floor_to_increment_nb(x, inc) == expected


@pytest.mark.parametrize(
    ("x", "inc", "expected"),
    [
        (0.3, 0.1, 0.3),
        (0.31, 0.1, 0.4),
        (0.2999999999, 0.1, 0.3),
        (1.1, 0.1, 1.1),
        (7.6, 2.5, 10.0),
        (-0.29, 0.1, -0.2),
        (5.0, 0.0, 5.0),
        (100.0, 1e-8, 100.0),
        (99999995.0, 0.1, 99999995.0),
    ],
)
def test_ceil_to_increment_decimal_multiples_give_exact_double(x, inc, expected):
    assert ceil_to_increment_nb(x, inc) == expected


def test_increment_rounding_nan_and_inf_follow_documented_rule():
    assert math.isnan(floor_to_increment_nb(math.nan, 0.1))
    assert math.isnan(ceil_to_increment_nb(1.0, math.nan))
    assert floor_to_increment_nb(math.inf, 0.1) == math.inf
    assert ceil_to_increment_nb(-math.inf, 0.1) == -math.inf


@pytest.mark.parametrize(
    ("a", "b", "rel", "abs_", "expected"),
    [
        (1.0, 1.0 + 1e-10, 1e-9, 0.0, True),
        (1.0, 1.1, 1e-9, 0.0, False),
        (0.0, 1e-13, 0.0, 1e-12, True),
        (0.0, 1e-11, 0.0, 1e-12, False),
        (math.nan, math.nan, 1e-9, 1.0, False),
        (math.inf, math.inf, 1e-9, 0.0, True),
        (math.inf, -math.inf, 1e-9, 0.0, False),
        (math.inf, 1e308, 1.0, 0.0, False),
    ],
)
def test_is_close_edge_values_give_expected(a, b, rel, abs_, expected):
    assert is_close_nb(a, b, rel, abs_) is expected


# --- properties ---


@PROPS
@given(x=VALUES, inc=INCREMENTS)
def test_floor_to_increment_random_matches_reference(x, inc):
    assume(_far_from_boundary(x, inc, +1))
    got = floor_to_increment_nb(x, inc)
    np.testing.assert_allclose(got, floor_to_increment_ref(x, inc), rtol=RTOL, atol=1e-300)
    if inc > 0.0:
        # a multiple of inc, not above x beyond the epsilon, less than one inc below it
        assert got <= x + 1e-9 * abs(x) + 1e-300
        assert x - got < inc * (1.0 + 1e-6)


@PROPS
@given(x=VALUES, inc=INCREMENTS)
def test_ceil_to_increment_random_matches_reference(x, inc):
    assume(_far_from_boundary(x, inc, -1))
    got = ceil_to_increment_nb(x, inc)
    np.testing.assert_allclose(got, ceil_to_increment_ref(x, inc), rtol=RTOL, atol=1e-300)
    if inc > 0.0:
        assert got >= x - 1e-9 * abs(x) - 1e-300
        assert got - x < inc * (1.0 + 1e-6)


@PROPS
@given(x=VALUES, inc=INCREMENTS)
def test_increment_rounding_is_idempotent(x, inc):
    assume(inc <= 0.0 or abs(x / inc) <= 1e12)  # the documented supported range
    once = floor_to_increment_nb(x, inc)
    assert floor_to_increment_nb(once, inc) == once
    assert ceil_to_increment_nb(once, inc) == once


@PROPS
@given(
    a=st.floats(allow_nan=True),
    b=st.floats(allow_nan=True),
    rel=st.floats(0.0, 1.0),
    abs_=st.floats(0.0, 1e6),
)
def test_is_close_random_matches_math_isclose(a, b, rel, abs_):
    assert is_close_nb(a, b, rel, abs_) == is_close_ref(a, b, rel, abs_)
