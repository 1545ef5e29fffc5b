"""Every windowed stage-1 kernel: a late-starting window gives the same row bits, long columns
(several chunks) agree with short ones, and the std kernels keep their stated error bounds.

The live bridge recomputes stage 1 on a rolling window whose first row is a later absolute
bar, so `kernel(x[s:], first_bar_no + s)[t - s]` must equal `kernel(x, first_bar_no)[t]` bit
for bit for every `t >= s + warmup - 1`. The std kernels (`realized_vol_nb`, `zscore_nb`)
use shifted anchored sums; their docstrings state the error bound tested here against an exact
(rational) std, on adversarial data (large offsets, small noise, ties).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signals.indicators import nb as ind
from signals.regime import nb as reg
from signals.strategies import nb as stn
from signals.triggers import nb as trg
from signals.universe import nb as uni
from tests.reference import indicators as ref
from tests.reference import strategies as sref
from tests.reference.registry import high_of, low_of, volume_of

U = 2.0**-53
FIRST = 473_353  # an arbitrary absolute bar number of row 0
PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Kernel:
    """A windowed kernel: `call(x, w, first_bar_no)` on a price-like `x` `[T, S]` and a window
    scale `w`, and the rows each output row reads (`warmup(w)`)."""

    name: str
    call: Any
    warmup: Any


def _bad(x):
    # bad-tick mask of x (its own volume), the red-flag kernel's input
    return trg.bad_tick_mask_nb(x, volume_of(x), 0.05, 1.5, 3, FIRST)


KERNELS = [
    Kernel("sma", lambda x, w, b: ind.sma_nb(x, w, b), lambda w: w),
    Kernel("rolling_sum", lambda x, w, b: ind.rolling_sum_nb(x, w, b), lambda w: w),
    Kernel("rolling_max", lambda x, w, b: ind.rolling_max_nb(high_of(x), w), lambda w: w),
    Kernel("rolling_min", lambda x, w, b: ind.rolling_min_nb(low_of(x), w), lambda w: w),
    Kernel("log_returns", lambda x, w, b: ind.log_returns_nb(x, w), lambda w: w + 1),
    Kernel("realized_vol", lambda x, w, b: ind.realized_vol_nb(x, w + 1, b), lambda w: w + 2),
    Kernel("zscore", lambda x, w, b: ind.zscore_nb(x, w + 1, b), lambda w: w + 1),
    Kernel(
        "volume_ratio", lambda x, w, b: ind.volume_ratio_nb(volume_of(x), w, b), lambda w: w + 1
    ),
    Kernel(
        "bad_tick_mask",
        lambda x, w, b: trg.bad_tick_mask_nb(x, volume_of(x), 0.05, 1.5, w, b),
        lambda w: w + 3,
    ),
    Kernel("breakout", lambda x, w, b: trg.breakout_nb(x, high_of(x), w), lambda w: w + 1),
    Kernel("momentum", lambda x, w, b: trg.momentum_nb(x, w, 0.01), lambda w: w + 1),
    Kernel(
        "volume_spike",
        lambda x, w, b: trg.volume_spike_nb(volume_of(x), w, 1.5, b),
        lambda w: w + 1,
    ),
    Kernel(
        "mean_reversion",
        lambda x, w, b: trg.mean_reversion_nb(x, w + 1, 1.0, b),
        lambda w: w + 1,
    ),
    Kernel(
        "mean_reversion_exit",
        lambda x, w, b: trg.mean_reversion_exit_nb(x, w + 1, 0.5, b),
        lambda w: w + 1,
    ),
    Kernel("ma_cross", lambda x, w, b: trg.ma_cross_nb(x, w, 2 * w + 1, b), lambda w: 2 * w + 2),
    Kernel("below_channel", lambda x, w, b: stn.below_channel_nb(x, low_of(x), w), lambda w: w + 1),
    Kernel(
        "red_flag",
        # bad ticks read `3 + 3` rows; the flag reads them on this row and the one before
        lambda x, w, b: uni.red_flag_nb(x, _bad(x), 0.02),
        lambda w: 3 + 3 + 1,
    ),
    Kernel(
        "ban_active",
        lambda x, w, b: uni.ban_active_nb(
            np.ascontiguousarray(np.isnan(x) | (x > 100.0)).astype(np.uint8), w
        ),
        lambda w: w,
    ),
    Kernel(
        "regime",
        lambda x, w, b: reg.regime_nb(
            np.ascontiguousarray(x[:, 0]), w, 2 * w, w + 1, w + 2, w, 0.1, 1.5, b
        ),
        lambda w: reg.regime_warmup_bars(w, 2 * w, w + 1, w + 2, w),
    ),
]


def assert_same_bits(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal dtype, shape, NaN positions and every other value's bits (so -0.0 != 0.0)."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if actual.dtype.kind != "f":
        np.testing.assert_array_equal(actual, expected)
        return
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan)
    np.testing.assert_array_equal(actual[~nan].view(np.int64), expected[~nan].view(np.int64))


@st.composite
def walks(draw, min_rows=1, max_rows=400, max_cols=3):
    """Seeded random walks with NaN runs, flat stretches, jumps and volume spikes."""
    n_rows = draw(st.integers(min_rows, max_rows))
    n_cols = draw(st.integers(1, max_cols))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    steps = rng.normal(0.0, draw(st.sampled_from((0.0, 0.002, 0.02))), (n_rows, n_cols))
    jumps = rng.random((n_rows, n_cols)) < 0.03
    steps[jumps] += rng.choice((-0.3, 0.3), size=int(jumps.sum()))
    x = 100.0 * np.exp(np.cumsum(steps, axis=0))
    x = np.round(x, draw(st.sampled_from((2, 8, 15))))  # ties
    x[rng.random((n_rows, n_cols)) < draw(st.sampled_from((0.0, 0.01, 0.1)))] = np.nan
    return np.ascontiguousarray(x)


# --- a late-starting window gives the same row bits, every kernel ---


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
@PROPS
@given(x=walks(), w=st.integers(1, 40), data=st.data())
def test_windowed_kernel_late_start_gives_identical_row_bits(kernel, x, w, data):
    s = data.draw(st.integers(0, x.shape[0]), label="s")
    full = kernel.call(x, w, FIRST)
    tail = kernel.call(np.ascontiguousarray(x[s:]), w, FIRST + s)
    first = s + kernel.warmup(w) - 1
    assert_same_bits(tail[max(first, s) - s :], full[max(first, s) :])


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
@FEW
@given(seed=st.integers(0, 2**32 - 1), w=st.sampled_from((1, 2, 24, 48, 1100)))
def test_long_column_rows_equal_a_short_window_ending_there(kernel, seed, w):
    # the column loops run in chunks of max(4096, 4 * window) rows: every row near a chunk
    # edge (NaNs placed on some) equals the kernel on a short array holding just its window
    rng = np.random.default_rng(seed)
    n_rows = 9_000
    x = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (n_rows, 2)), axis=0))
    x[[4095, 4096, 4400, 8191], 0] = np.nan
    full = kernel.call(x, w, FIRST)
    need = kernel.warmup(w)
    for t in (4094, 4095, 4097, 4098, 4099 + need, 4399, 4401 + need, 8192, 8799, 8800, 8999):
        s = max(0, t - need + 1 - int(rng.integers(0, 5)))
        short = kernel.call(np.ascontiguousarray(x[s : t + 1]), w, FIRST + s)
        assert_same_bits(short[t - s :], full[t : t + 1])


# --- long columns equal the plain references (across chunk edges) ---


@FEW
@given(seed=st.integers(0, 2**32 - 1), w=st.integers(2, 30))
def test_long_column_kernels_equal_references_bit_for_bit(seed, w):
    rng = np.random.default_rng(seed)
    n_rows = 8_400
    x = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (n_rows, 1)), axis=0))
    x[[10, 4095, 4096, 8191], 0] = np.nan
    v = volume_of(x)
    pairs = [
        (ind.rolling_sum_nb(x, w, FIRST), ref.rolling_sum_ref(x, w, FIRST)),
        (ind.realized_vol_nb(x, w, FIRST), ref.realized_vol_ref(x, w, FIRST)),
        (ind.zscore_nb(x, w, FIRST), ref.zscore_ref(x, w, FIRST)),
        (ind.volume_ratio_nb(v, w, FIRST), ref.volume_ratio_ref(v, w, FIRST)),
        (ind.rolling_max_nb(x, w), ref.rolling_max_ref(x, w)),
        (trg.breakout_nb(x, high_of(x), w), ref.breakout_ref(x, high_of(x), w)),
        (stn.below_channel_nb(x, low_of(x), w), sref.below_channel_ref(x, low_of(x), w)),
        (
            trg.bad_tick_mask_nb(x, v, 0.01, 1.2, w, FIRST),
            ref.bad_tick_mask_ref(x, v, 0.01, 1.2, w, FIRST),
        ),
    ]
    for got, expected in pairs:
        with np.errstate(all="ignore"):
            assert_same_bits(got, expected)


# --- max / min: exact, oldest of equal extremes ---

_SIGNED = st.sampled_from((0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan))


@PROPS
@given(values=st.lists(_SIGNED, min_size=1, max_size=80), w=st.integers(1, 9), data=st.data())
def test_rolling_extremes_signed_zeros_and_infinities_match_reference_bits(values, w, data):
    x = np.array(values, dtype=np.float64).reshape(-1, 1)
    assert_same_bits(ind.rolling_max_nb(x, w), ref.rolling_max_ref(x, w))
    assert_same_bits(ind.rolling_min_nb(x, w), ref.rolling_min_ref(x, w))
    s = data.draw(st.integers(0, x.shape[0]), label="s")
    tail = np.ascontiguousarray(x[s:])
    first = s + w - 1
    assert_same_bits(ind.rolling_max_nb(tail, w)[first - s :], ind.rolling_max_nb(x, w)[first:])
    assert_same_bits(ind.rolling_min_nb(tail, w)[first - s :], ind.rolling_min_nb(x, w)[first:])


def test_rolling_max_of_equal_zeros_is_the_oldest():
    x = np.array([[0.0], [-0.0], [0.0], [-0.0]])
    assert list(np.signbit(ind.rolling_max_nb(x, 2)[1:, 0])) == [False, True, False]
    assert list(np.signbit(ind.rolling_min_nb(x, 2)[1:, 0])) == [False, True, False]


# --- the std kernels' error bounds (docstrings of realized_vol_nb and zscore_nb) ---


def _exact_moments(values: list[float]) -> tuple[Fraction, Fraction]:
    # exact mean and sample variance (ddof=1) of the doubles `values`
    xs = [Fraction(v) for v in values]
    mean = sum(xs, Fraction(0)) / len(xs)
    var = sum(((v - mean) ** 2 for v in xs), Fraction(0)) / (len(xs) - 1)
    return mean, var


def _sqrt(q: Fraction) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        return (Decimal(q.numerator) / Decimal(q.denominator)).sqrt()


def _std_bound(n: int) -> float:
    return 2.0 * (n + 2) ** 2 * U


def _z_bound(n: int) -> float:
    return 3.0 * (n + 2) ** 2.5 * U


@st.composite
def offset_noise(draw, max_rows=160):
    """Large offsets plus small noise (condition numbers up to ~1e18), with ties."""
    n_rows = draw(st.integers(2, max_rows))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    offset = draw(st.sampled_from((0.0, 1.0, 1e3, 1e6, 1e9, 1e12, -1e9)))
    noise = draw(st.sampled_from((1e-6, 1e-3, 1.0, 1e3)))
    x = offset + noise * rng.standard_normal(n_rows)
    if draw(st.booleans()):
        x = np.round(x / noise) * noise  # ties and flat stretches
    if draw(st.booleans()):
        x[rng.random(n_rows) < 0.3] = offset  # many equal values
    return np.ascontiguousarray(x.reshape(-1, 1))


@PROPS
@given(x=offset_noise(), w=st.integers(2, 80), first=st.integers(0, 10**9))
def test_zscore_within_stated_bound_of_exact_on_large_offsets(x, w, first):
    out = ind.zscore_nb(x, w, first)[:, 0]
    col = [float(v) for v in x[:, 0]]
    for t in range(w - 1, len(col)):
        window = col[t - w + 1 : t + 1]
        mean, var = _exact_moments(window)
        if var == 0:
            assert np.isnan(out[t])
            continue
        exact = float((Fraction(window[-1]) - mean) / Fraction(_sqrt(var)))
        assert abs(out[t] - exact) <= _z_bound(w), (t, out[t], exact)


@PROPS
@given(x=offset_noise(), w=st.integers(2, 80), first=st.integers(0, 10**9))
def test_realized_vol_within_stated_bound_of_exact_on_large_offsets(x, w, first):
    # closes whose one-bar log returns are `x` scaled into (-0.7, 0.7): a steady drift (the
    # offset) plus noise, so the returns have a large mean relative to their spread
    r = x[:, 0]
    scale = 0.7 / max(1.0, float(np.nanmax(np.abs(r))))
    close = np.exp(np.cumsum(np.r_[0.0, r * scale])).reshape(-1, 1)
    out = ind.realized_vol_nb(close, w, first)[:, 0]
    returns = ind.log_returns_nb(close, 1)[:, 0]  # the very returns the kernel reads
    for t in range(w, close.shape[0]):
        _, var = _exact_moments([float(v) for v in returns[t - w + 1 : t + 1]])
        if var == 0:
            assert out[t] == 0.0
            continue
        exact = float(_sqrt(var))
        assert abs(out[t] - exact) <= _std_bound(w) * exact, (t, out[t], exact)


@PROPS
@given(x=walks(min_rows=3, max_rows=200, max_cols=1), w=st.integers(2, 60))
def test_std_kernels_within_twice_the_bound_of_two_pass_on_prices(x, w):
    # on price-like data the textbook two-pass std is itself within ~(n + 3) u of exact
    vol = ind.realized_vol_nb(x, w, FIRST)[:, 0]
    returns = ind.log_returns_nb(x, 1)[:, 0]
    for t in range(w, x.shape[0]):
        two_pass = ref.two_pass_std([float(v) for v in returns[t - w + 1 : t + 1]])
        if math.isnan(two_pass):
            assert np.isnan(vol[t])
        else:
            assert abs(vol[t] - two_pass) <= 2.0 * _std_bound(w) * two_pass + 1e-300


def test_zscore_large_offset_small_noise_keeps_its_value():
    # 1e12 + noise of 1e-3: a two-pass std with a rounded mean loses every digit here
    rng = np.random.default_rng(7)
    noise = np.round(rng.standard_normal(48), 3)
    x = (1e12 + noise * 1e-3).reshape(-1, 1)
    w = 24
    out = ind.zscore_nb(x, w, FIRST)[:, 0]
    for t in range(w - 1, x.shape[0]):
        window = [float(v) for v in x[t - w + 1 : t + 1, 0]]
        mean, var = _exact_moments(window)
        exact = float((Fraction(window[-1]) - mean) / Fraction(_sqrt(var)))
        assert abs(out[t] - exact) <= _z_bound(w)


# --- the memory layout of the input changes no bit (stage 1 passes symbol-major copies) ---


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
@FEW
@given(x=walks(min_rows=1, max_rows=300, max_cols=4), w=st.integers(1, 30))
def test_windowed_kernel_symbol_major_input_gives_identical_bits(kernel, x, w):
    assert_same_bits(kernel.call(np.asfortranarray(x), w, FIRST), kernel.call(x, w, FIRST))
