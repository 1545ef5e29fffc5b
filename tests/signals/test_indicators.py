"""Indicator kernels: reference equality, properties and golden examples."""

from operator import attrgetter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signals.indicators import (
    BARS_SINCE_NEVER,
    atr_nb,
    bars_since_valid_nb,
    ema_nb,
    log_returns_nb,
    realized_vol_nb,
    rolling_max_nb,
    rolling_min_nb,
    rolling_sum_nb,
    rsi_nb,
    sma_nb,
    volume_ratio_nb,
    zscore_nb,
)
from tests.reference import registry
from tests.strategies import kernel_arrays, kernel_scales, special_arrays

FAMILY = registry.entries("indicators")
WINDOWED = [e for e in FAMILY if e.window is not None]
NAN_RULED = [e for e in FAMILY if e.nan_rule != "none"]
PROPS = settings(max_examples=50, deadline=None)
nan = np.nan


def col(*values):
    return np.array(values, dtype=np.float64).reshape(-1, 1)


# --- properties (every kernel, from the registry) ---


@pytest.mark.parametrize("entry", FAMILY, ids=attrgetter("name"))
@PROPS
@given(x=kernel_arrays(), scale=kernel_scales())
def test_kernel_random_input_matches_reference(entry, x, scale):
    registry.check_reference(entry, x, scale)


@pytest.mark.parametrize("entry", FAMILY, ids=attrgetter("name"))
@PROPS
@given(x=special_arrays(), scale=kernel_scales())
def test_kernel_hostile_input_matches_reference(entry, x, scale):
    registry.check_runs(entry, x, scale)
    registry.check_reference(entry, x, scale)


@pytest.mark.parametrize("entry", FAMILY, ids=attrgetter("name"))
@PROPS
@given(x=kernel_arrays(min_rows=1), scale=kernel_scales(), data=st.data())
def test_kernel_prefix_output_equals_full_output_head(entry, x, scale, data):
    n = data.draw(st.integers(0, x.shape[0]), label="n")
    registry.check_prefix(entry, x, scale, n)


@pytest.mark.parametrize("entry", WINDOWED, ids=attrgetter("name"))
@PROPS
@given(x=kernel_arrays(min_rows=1), scale=kernel_scales(), data=st.data())
def test_windowed_kernel_late_start_gives_identical_rows(entry, x, scale, data):
    k = data.draw(st.integers(0, x.shape[0]), label="k")
    registry.check_window_independence(entry, x, scale, k)


@pytest.mark.parametrize("entry", NAN_RULED, ids=attrgetter("name"))
@PROPS
@given(x=kernel_arrays(), scale=kernel_scales())
def test_kernel_nan_input_gives_documented_null(entry, x, scale):
    registry.check_nan_rule(entry, x, scale)


@pytest.mark.parametrize("entry", FAMILY, ids=attrgetter("name"))
@pytest.mark.parametrize("shape", [(0, 0), (0, 3), (1, 1), (1, 3), (2, 0)])
@pytest.mark.parametrize("fill", [nan, np.inf, -np.inf, 0.0, 100.0])
def test_kernel_tiny_input_does_not_crash(entry, shape, fill):
    x = np.full(shape, fill)
    out = registry.check_runs(entry, x, 3)
    with np.errstate(all="ignore"):
        expected = entry.reference(*entry.make_args(x, 3))
    registry.assert_same(out, expected)


@PROPS
@given(x=kernel_arrays(min_rows=1), data=st.data())
def test_bars_since_valid_late_start_matches_once_a_value_is_seen(x, data):
    k = data.draw(st.integers(0, x.shape[0] - 1), label="k")
    full = bars_since_valid_nb(x)
    tail = bars_since_valid_nb(np.ascontiguousarray(x[k:]))
    seen = np.maximum.accumulate(np.isfinite(x[k:]), axis=0)
    np.testing.assert_array_equal(tail[seen], full[k:][seen])
    assert (tail[~seen] == BARS_SINCE_NEVER).all()


@PROPS
@given(x=kernel_arrays(), scale=kernel_scales())
def test_rsi_random_input_stays_in_0_100(x, scale):
    out = rsi_nb(x, scale)
    finite = out[~np.isnan(out)]
    assert ((finite >= 0.0) & (finite <= 100.0)).all()


# --- golden examples (hand-checked) ---


def test_sma_window_3_with_nan_gives_hand_values():
    x = col(1.0, 2.0, 3.0, 4.0, nan, 6.0, 7.0, 8.0, 9.0)
    expected = col(nan, nan, 2.0, 3.0, nan, nan, nan, 7.0, 8.0)
    np.testing.assert_array_equal(sma_nb(x, 3, 0), expected)
    np.testing.assert_array_equal(rolling_sum_nb(x, 3, 0), 3.0 * expected)


def test_ema_span_3_nan_before_seed_delays_seed():
    # alpha = 0.5; seed = mean(2, 4, 6) = 4 at the third valid value (row 3)
    x = col(2.0, nan, 4.0, 6.0, 8.0, nan, 2.0)
    expected = col(nan, nan, nan, 4.0, 6.0, nan, 4.0)
    np.testing.assert_array_equal(ema_nb(x, 3), expected)


def test_atr_window_2_gap_and_nan_bar_give_hand_values():
    high = col(10.0, 11.0, nan, 15.0, 12.0)
    low = col(8.0, 10.0, 9.0, 13.0, 11.0)
    close = col(9.0, 10.5, 10.0, 14.0, 11.5)
    # TR: 2 (h-l), max(1, 2, 1) = 2, skipped, max(2, 4.5, 2.5) = 4.5, max(1, 2, 3) = 3
    # ATR: -, (2 + 2) / 2 = 2, NaN, (2 + 4.5) / 2 = 3.25, (3.25 + 3) / 2 = 3.125
    expected = col(nan, 2.0, nan, 3.25, 3.125)
    np.testing.assert_array_equal(atr_nb(high, low, close, 2), expected)


def test_rsi_window_2_gives_hand_values_and_100_on_all_gains():
    x = col(10.0, 11.0, 12.0, 11.0, nan, 13.0, 13.0)
    # changes +1, +1 -> seed g=1, l=0 -> 100; -1 -> g=0.5, l=0.5 -> 50;
    # +2 -> g=1.25, l=0.25 -> 100 - 100/6; 0 -> g=0.625, l=0.125 -> 100 - 100/6
    expected = col(nan, nan, 100.0, 50.0, nan, 100.0 - 100.0 / 6.0, 100.0 - 100.0 / 6.0)
    np.testing.assert_array_equal(rsi_nb(x, 2), expected)
    np.testing.assert_array_equal(rsi_nb(col(5.0, 5.0, 5.0), 2), col(nan, nan, 50.0))
    np.testing.assert_array_equal(rsi_nb(col(5.0, 4.0, 3.0), 2), col(nan, nan, 0.0))


def test_donchian_window_3_includes_current_row():
    x = col(3.0, 1.0, 4.0, 1.0, 5.0, nan, 2.0, 6.0, 5.0)
    np.testing.assert_array_equal(
        rolling_max_nb(x, 3), col(nan, nan, 4.0, 4.0, 5.0, nan, nan, nan, 6.0)
    )
    np.testing.assert_array_equal(
        rolling_min_nb(x, 3), col(nan, nan, 1.0, 1.0, 1.0, nan, nan, nan, 2.0)
    )


def test_log_returns_lag_2_non_positive_price_gives_nan():
    x = col(1.0, 2.0, np.e, 0.0, np.e**3, 4.0)
    out = log_returns_nb(x, 2)
    expected = col(nan, nan, 1.0, nan, 2.0, nan)
    np.testing.assert_allclose(out, expected, rtol=1e-15, atol=0.0)


def test_realized_vol_window_2_gives_sample_std_of_log_returns():
    e = np.e
    x = col(1.0, e, e, e**3, nan, 1.0, e)
    # returns: -, 1, 0, 2, nan, nan, 1; std(ddof=1) of (1, 0) = sqrt(0.5), of (0, 2) = sqrt(2)
    expected = col(nan, nan, np.sqrt(0.5), np.sqrt(2.0), nan, nan, nan)
    np.testing.assert_allclose(realized_vol_nb(x, 2, 0), expected, rtol=1e-15, atol=1e-15)
    assert np.isnan(realized_vol_nb(x, 1, 0)).all()


def test_zscore_window_3_flat_window_gives_nan():
    x = col(1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 0.1, 0.1, 0.1)
    # (3 - 2) / 1 = 1; (3 - 8/3) / sqrt(1/3) = 1/sqrt(3); (3, 3, c) -> -2/sqrt(3) for any c < 3,
    # (3, c, c) -> -1/sqrt(3); flat windows -> NaN, also (0.1, 0.1, 0.1) whose mean is inexact
    out = zscore_nb(x, 3, 0)
    r3 = np.sqrt(3.0)
    expected = col(nan, nan, 1.0, 1.0 / r3, nan, nan, -2.0 / r3, -1.0 / r3, nan)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_volume_ratio_window_2_excludes_current_bar():
    v = col(1.0, 3.0, 4.0, 0.0, 0.0, 5.0, nan, 2.0)
    # mean of the previous 2 bars: 2 -> 2.0; 3.5 -> 0; 2 -> 0; 0 -> NaN; ...
    expected = col(nan, nan, 2.0, 0.0, 0.0, nan, nan, nan)
    np.testing.assert_array_equal(volume_ratio_nb(v, 2, 0), expected)


def test_bars_since_valid_counts_from_last_finite_value():
    x = np.array(
        [[nan, 1.0], [nan, nan], [2.0, np.inf], [nan, 3.0], [nan, nan], [4.0, nan]],
        dtype=np.float64,
    )
    never = BARS_SINCE_NEVER
    expected = np.array([[never, 0], [never, 1], [0, 2], [1, 0], [2, 1], [0, 2]], dtype=np.int64)
    np.testing.assert_array_equal(bars_since_valid_nb(x), expected, strict=True)
