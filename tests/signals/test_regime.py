"""Regime kernel: reference equality, properties and golden examples."""

from operator import attrgetter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signals.enums import Regime
from signals.regime import regime_nb, regime_warmup_bars
from tests.reference import registry
from tests.strategies import kernel_arrays, kernel_scales, price_walks, special_arrays

FAMILY = registry.entries("regime")
PROPS = settings(max_examples=50, deadline=None)
nan = np.nan
B, C, D, X, U = Regime.Bull, Regime.Chop, Regime.Bear, Regime.Crash, Regime.Unknown


# --- properties ---


@pytest.mark.parametrize("entry", FAMILY, ids=attrgetter("name"))
@PROPS
@given(x=kernel_arrays(), scale=kernel_scales())
def test_regime_random_input_matches_reference(entry, x, scale):
    registry.check_reference(entry, x, scale)


@pytest.mark.parametrize("entry", FAMILY, ids=attrgetter("name"))
@PROPS
@given(x=special_arrays(), scale=kernel_scales())
def test_regime_hostile_input_matches_reference(entry, x, scale):
    registry.check_runs(entry, x, scale)
    registry.check_reference(entry, x, scale)


@pytest.mark.parametrize("entry", FAMILY, ids=attrgetter("name"))
@PROPS
@given(x=kernel_arrays(min_rows=1), scale=kernel_scales(), data=st.data())
def test_regime_prefix_output_equals_full_output_head(entry, x, scale, data):
    n = data.draw(st.integers(0, x.shape[0]), label="n")
    registry.check_prefix(entry, x, scale, n)


@pytest.mark.parametrize("entry", FAMILY, ids=attrgetter("name"))
@PROPS
@given(x=kernel_arrays(min_rows=1), scale=kernel_scales(), data=st.data())
def test_regime_late_start_gives_identical_rows(entry, x, scale, data):
    k = data.draw(st.integers(0, x.shape[0]), label="k")
    registry.check_window_independence(entry, x, scale, k)


@pytest.mark.parametrize("entry", FAMILY, ids=attrgetter("name"))
@PROPS
@given(x=kernel_arrays(), scale=kernel_scales())
def test_regime_nan_close_gives_unknown(entry, x, scale):
    registry.check_nan_rule(entry, x, scale)


@PROPS
@given(x=price_walks(min_rows=1, max_cols=1), scale=kernel_scales())
def test_regime_codes_unknown_exactly_during_warmup_on_clean_walk(x, scale):
    close = np.ascontiguousarray(x[:, 0])
    params = (scale, 2 * scale, scale + 1, scale + 2, scale)
    out = regime_nb(close, *params, 0.1, 1.5, 0)
    warmup = regime_warmup_bars(*params)
    assert (out[: warmup - 1] == U).all()
    finite_window = np.array(
        [np.isfinite(close[max(0, t - warmup + 1) : t + 1]).all() for t in range(close.size)]
    )
    classified = out[warmup - 1 :]
    # finite windows are always classified; the converse does not hold: `warmup` bounds the
    # dependency, and a NaN on a row no indicator reads at that bar (e.g. the first row of the
    # window, only needed one bar earlier) leaves the bar classified (hypothesis found one)
    if finite_window[warmup - 1 :].all():
        assert np.isin(classified, (B, C, D, X)).all()
    assert ((out == U) | np.isin(out, (B, C, D, X))).all()


@pytest.mark.parametrize("n", [0, 1, 2])
@pytest.mark.parametrize("fill", [nan, np.inf, 0.0, 100.0])
def test_regime_tiny_input_is_unknown(n, fill):
    out = regime_nb(np.full(n, fill), 1, 2, 2, 1, 1, 0.2, 2.0, 0)
    np.testing.assert_array_equal(out, np.full(n, U, dtype=np.int64), strict=True)


# --- golden examples (hand-checked) ---


def test_regime_warmup_bars_is_max_of_windows_plus_one():
    assert regime_warmup_bars(20, 50, 24, 168, 24) == 193
    assert regime_warmup_bars(20, 200, 24, 168, 24) == 201
    assert regime_warmup_bars(5, 10, 2, 3, 30) == 31
    assert regime_warmup_bars(12, 10, 2, 3, 4) == 13


def test_regime_drop_then_flat_gives_hand_codes():
    # fast 1, slow 2, vol 2, baseline 1 (so vol never exceeds 100x itself), crash 1 bar -20 %
    # warm-up = max(1, 2, 2 + 1, 1) + 1 = 4: rows 0-2 Unknown, row 3 close == slow -> Chop
    close = np.array([10.0, 10.0, 10.0, 10.0, 11.0, 12.0, 11.0, 8.0, 8.0, 8.0])
    # row 4: 11 > 10.5, fast 11 > 10.5 -> Bull; row 5 Bull; row 6: 11 < 11.5 -> Bear;
    # row 7: log(8/11) <= log(0.8) -> Crash; rows 8-9: close == slow -> Chop
    expected = np.array([U, U, U, C, B, B, D, X, C, C], dtype=np.int64)
    out = regime_nb(close, 1, 2, 2, 1, 1, 0.2, 100.0, 0)
    np.testing.assert_array_equal(out, expected, strict=True)


def test_regime_vol_spike_below_slow_gives_crash():
    # vol 2, baseline 2, mult 1.5, drop rule off (50 %): warm-up = max(1, 2, 4, 1) + 1 = 5
    close = np.array([100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 90.0, 90.0])
    # row 6: vol = std(0, log 0.9) > 1.5 * mean(0, vol) and 90 < 95 -> Crash
    # row 7: vol equals its baseline -> 90 == slow 90 -> Chop
    expected = np.array([U, U, U, U, C, C, X, C], dtype=np.int64)
    out = regime_nb(close, 1, 2, 2, 2, 1, 0.5, 1.5, 0)
    np.testing.assert_array_equal(out, expected, strict=True)


def test_regime_nan_close_gives_unknown_while_in_window():
    close = np.array([10.0, 10.0, 10.0, 10.0, 11.0, nan, 12.0, 13.0, 14.0, 15.0, 16.0])
    out = regime_nb(close, 1, 2, 2, 1, 1, 0.2, 100.0, 0)
    # rows need closes t-2 .. t (vol over 2 returns), so the NaN at row 5 makes rows 5-7 Unknown
    expected = np.array([U, U, U, C, B, U, U, U, B, B, B], dtype=np.int64)
    np.testing.assert_array_equal(out, expected, strict=True)


@pytest.mark.parametrize("first_bar_no", [0, 16_380, 98_765])
def test_regime_over_several_chunks_matches_reference(first_bar_no):
    # `regime_nb` works in chunks of 16,384 rows (each from its own history): a long array with
    # gaps and a crash crosses chunk boundaries at every phase of the windows
    from tests.reference.indicators import regime_ref

    rng = np.random.default_rng(first_bar_no)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, 3 * 16_384 + 77)))
    close[rng.integers(0, close.shape[0], 300)] = nan
    close[20_000:20_030] *= 0.5
    args = (24, 168, 24, 168, 24, 0.10, 2.5, first_bar_no)
    got = regime_nb(close, *args)
    np.testing.assert_array_equal(got, regime_ref(close, *args))
    assert set(np.unique(got)) >= {B, D, X, U}
