"""Trigger kernels: reference equality, properties and golden examples."""

from operator import attrgetter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signals.triggers import (
    bad_tick_mask_nb,
    breakout_nb,
    ma_cross_nb,
    mean_reversion_exit_nb,
    mean_reversion_nb,
    momentum_nb,
    volume_spike_nb,
)
from signals.triggers.nb import cross_sign_nb, cross_values_1d_nb
from tests.reference import registry
from tests.reference.indicators import cross_sign_ref
from tests.strategies import kernel_arrays, kernel_scales, special_arrays

FAMILY = registry.entries("triggers")
WINDOWED = [e for e in FAMILY if e.window is not None]
PROPS = settings(max_examples=50, deadline=None)
nan = np.nan


def col(*values):
    return np.array(values, dtype=np.float64).reshape(-1, 1)


def flags(*values, dtype=np.uint8):
    return np.array(values, dtype=dtype).reshape(-1, 1)


# --- properties (every kernel, from the registry) ---


@pytest.mark.parametrize("entry", FAMILY, ids=attrgetter("name"))
@PROPS
@given(x=kernel_arrays(), scale=kernel_scales())
def test_trigger_random_input_matches_reference(entry, x, scale):
    registry.check_reference(entry, x, scale)


@pytest.mark.parametrize("entry", FAMILY, ids=attrgetter("name"))
@PROPS
@given(x=special_arrays(), scale=kernel_scales())
def test_trigger_hostile_input_matches_reference(entry, x, scale):
    registry.check_runs(entry, x, scale)
    registry.check_reference(entry, x, scale)


@pytest.mark.parametrize("entry", FAMILY, ids=attrgetter("name"))
@PROPS
@given(x=kernel_arrays(min_rows=1), scale=kernel_scales(), data=st.data())
def test_trigger_prefix_output_equals_full_output_head(entry, x, scale, data):
    n = data.draw(st.integers(0, x.shape[0]), label="n")
    registry.check_prefix(entry, x, scale, n)


@pytest.mark.parametrize("entry", WINDOWED, ids=attrgetter("name"))
@PROPS
@given(x=kernel_arrays(min_rows=1), scale=kernel_scales(), data=st.data())
def test_windowed_trigger_late_start_gives_identical_rows(entry, x, scale, data):
    k = data.draw(st.integers(0, x.shape[0]), label="k")
    registry.check_window_independence(entry, x, scale, k)


@pytest.mark.parametrize("entry", FAMILY, ids=attrgetter("name"))
@PROPS
@given(x=kernel_arrays(), scale=kernel_scales())
def test_trigger_nan_input_gives_zero(entry, x, scale):
    registry.check_nan_rule(entry, x, scale)


@pytest.mark.parametrize("entry", FAMILY, ids=attrgetter("name"))
@pytest.mark.parametrize("shape", [(0, 0), (0, 3), (1, 1), (1, 3), (2, 0)])
@pytest.mark.parametrize("fill", [nan, np.inf, -np.inf, 0.0, 100.0])
def test_trigger_tiny_input_does_not_crash(entry, shape, fill):
    x = np.full(shape, fill)
    out = registry.check_runs(entry, x, 3)
    assert not out.any()


# --- golden examples (hand-checked) ---


def test_bad_tick_mask_unconfirmed_spike_masked_and_next_bar_not():
    close = col(100.0, 100.0, 150.0, 101.0, 100.0, 130.0, 131.0, nan, 200.0)
    volume = col(1.0, 1.0, 1.0, 1.0, 1.0, 10.0, 1.0, 1.0, 1.0)
    # volume ratio (window 2): -, -, 1, 1, 1, 10, 1/5.5, 1/5.5, 1
    # row 2: +50 % unconfirmed -> 1; row 3: -33 % but back within 10 % of row 1 -> 0;
    # row 5: +30 % confirmed by volume -> 0; row 7: NaN -> 0;
    # row 8: no jump across the missing row 7 (staleness handles gaps) -> 0
    expected = flags(0, 0, 1, 0, 0, 0, 0, 0, 0)
    out = bad_tick_mask_nb(close, volume, 0.10, 1.5, 2, 0)
    np.testing.assert_array_equal(out, expected, strict=True)


def test_bad_tick_mask_level_shift_without_volume_masks_only_its_first_bar():
    close = col(100.0, 200.0, 100.0, 100.0, 200.0, 200.0)
    volume = col(1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    # row 1 is in the volume warm-up (ratio NaN) -> no jump; row 2 jumps -50 % -> 1 (row 1
    # did not jump, so it is no return); row 3 flat -> 0; row 4 shifts +100 % -> 1; row 5
    # stays at the new level -> 0
    expected = flags(0, 0, 1, 0, 1, 0)
    np.testing.assert_array_equal(bad_tick_mask_nb(close, volume, 0.10, 1.5, 2, 0), expected)


def test_breakout_lookback_2_excludes_current_high():
    close = col(1.0, 2.0, 3.0, 2.0, 5.0, nan, 6.0, 7.0)
    high = close + 0.5
    expected = flags(0, 0, 1, 0, 1, 0, 0, 0)
    np.testing.assert_array_equal(breakout_nb(close, high, 2), expected, strict=True)


def test_momentum_lookback_1_threshold_half_gives_hand_flags():
    e = np.e
    close = col(1.0, e, e**2, e**2, nan, e**3, -1.0)
    expected = flags(0, 1, 1, 0, 0, 0, 0)
    np.testing.assert_array_equal(momentum_nb(close, 1, 0.5), expected, strict=True)


def test_volume_spike_ratio_is_inclusive():
    volume = col(1.0, 1.0, 3.0, 0.0, 0.0, 5.0, nan, 1.0)
    # ratio (window 2): 3, 0, 0, 5 / 0 -> NaN, NaN, NaN
    expected = flags(0, 0, 1, 0, 0, 0, 0, 0)
    np.testing.assert_array_equal(volume_spike_nb(volume, 2, 3.0, 0), expected, strict=True)


def test_mean_reversion_entry_and_exit_lookback_3_give_hand_flags():
    close = col(1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 0.1, 0.1, 0.1)
    # z: -, -, 1, 1/sqrt(3), NaN, NaN, -2/sqrt(3), -1/sqrt(3), NaN
    entry = flags(0, 0, 0, 0, 0, 0, 1, 0, 0)
    exit_ = flags(0, 0, 1, 1, 0, 0, 0, 0, 0)
    np.testing.assert_array_equal(mean_reversion_nb(close, 3, 1.0, 0), entry, strict=True)
    np.testing.assert_array_equal(mean_reversion_exit_nb(close, 3, 0.5, 0), exit_, strict=True)


def test_ma_cross_fast_1_slow_2_gives_hand_signals():
    close = col(1.0, 1.0, 1.0, 2.0, 3.0, 1.0, 0.0, 0.0, nan, 5.0)
    # fast = close, slow = mean of the last two closes:
    # row 2 equal (no cross), row 3 2 > 1.5 after 1 <= 1 -> +1, row 5 1 < 2 after 3 > 2.5 -> -1
    expected = flags(0, 0, 0, 1, 0, -1, 0, 0, 0, 0, dtype=np.int8)
    np.testing.assert_array_equal(ma_cross_nb(close, 1, 2, 0), expected, strict=True)


@pytest.mark.parametrize(("fast", "slow"), [(3, 7), (10, 50), (20, 1500)])
def test_ma_cross_streamed_in_chunks_equals_crossing_whole_smas(fast, slow):
    # ma_cross_nb streams its averages through chunks of >= 4096 rows: the result must be the
    # crossing test of the two whole anchored SMAs, bit for bit, across chunk boundaries (NaNs
    # placed on them) and on a later-starting window with its own first bar number
    from signals.indicators import sma_nb  # noqa: PLC0415
    from signals.triggers.nb import ma_cross_from_sma_nb  # noqa: PLC0415

    rng = np.random.default_rng(fast * slow)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (20_000, 2)), axis=0))
    close[[4095, 4096, 8192, 12_000], 0] = np.nan
    first = 1_234_567
    expected = ma_cross_from_sma_nb(sma_nb(close, fast, first), sma_nb(close, slow, first))
    got = ma_cross_nb(close, fast, slow, first)
    np.testing.assert_array_equal(got, expected, strict=True)
    assert np.abs(got).sum() > 10
    k = 5_555
    tail = ma_cross_nb(np.ascontiguousarray(close[k:]), fast, slow, first + k)
    np.testing.assert_array_equal(tail[slow:], got[k + slow :], strict=True)


# few distinct values, so ties (equal averages) are common; NaN and infinities included
_AVERAGES = st.sampled_from([nan, -np.inf, np.inf, -1.0, 0.0, 1.0, 1.0 + 2**-52, 2.0])


@PROPS
@given(st.lists(st.tuples(_AVERAGES, _AVERAGES, _AVERAGES, _AVERAGES), max_size=40))
def test_branch_free_cross_values_equal_the_reference_rule(rows):
    four = np.array(rows, dtype=np.float64).reshape(-1, 4)
    f_prev, s_prev, f_now, s_now = (np.ascontiguousarray(four[:, k]) for k in range(4))
    out = np.full(four.shape[0], -7.0)
    cross_values_1d_nb(f_prev, s_prev, f_now, s_now, 1.0, 0.0, nan, out)
    labels = {1: 1.0, -1: 0.0, 0: nan}
    for i, row in enumerate(rows):
        expected = labels[cross_sign_ref(*row)]
        assert cross_sign_nb(*row) == cross_sign_ref(*row)
        assert out[i] == expected or (np.isnan(out[i]) and np.isnan(expected)), row
