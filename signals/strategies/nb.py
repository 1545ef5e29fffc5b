"""Kernels that turn trigger masks into proposals."""

import numpy as np
from numba import njit

from signals.enums import Regime
from signals.indicators.nb import (
    _chunk_rows_nb,
    _column_nb,
    _out_column_nb,
    _rolling_extreme_1d_nb,
    _store_column_nb,
)
from signals.triggers.nb import ma_cross_into_nb


@njit(cache=True)
def rules_combine_nb(
    breakout,
    momentum,
    volume_spike,
    mean_reversion,
    exit_signal,
    bad_tick,
    regime,
    target_weight,
    mean_reversion_enabled,
):
    """Return float64[T, S] target weights of the `rules` strategy from uint8 trigger masks.

    Reference: tests/reference/strategies.py::rules_combine_ref.
    Entry (weight > 0): a breakout confirmed by momentum or a volume spike in a bull or chop
    regime (full weight with both confirmations, 3/4 with one), or, when enabled, a
    mean-reversion trigger in a chop regime (1/2 weight). Exit (weight 0): the exit signal.
    NaN otherwise (no opinion), on bad ticks and while the regime is unknown.
    """
    n_bars, n_symbols = breakout.shape
    out = np.full((n_bars, n_symbols), np.nan)
    for t in range(n_bars):
        r = regime[t]
        if r == Regime.Unknown:
            continue
        trend_ok = r == Regime.Bull or r == Regime.Chop
        for s in range(n_symbols):
            if bad_tick[t, s]:
                continue
            confirmations = momentum[t, s] + volume_spike[t, s]
            if trend_ok and breakout[t, s] and confirmations > 0:
                out[t, s] = target_weight * (0.5 + 0.25 * confirmations)
            elif mean_reversion_enabled and r == Regime.Chop and mean_reversion[t, s]:
                out[t, s] = target_weight * 0.5
            elif exit_signal[t, s]:
                out[t, s] = 0.0
    return out


@njit(cache=True)
def below_channel_nb(close, low, lookback):
    """Return uint8[T, S]: 1 where close[t] < min(low[t - lookback .. t - 1]) (Donchian exit).

    Reference: tests/reference/strategies.py::below_channel_ref. Warm-up: 0 for rows
    `t < lookback`; `lookback < 1` gives all 0. A non-finite close, or any non-finite low in
    the window, gives 0. Windowed, O(T): the minimum of `_rolling_extreme_1d_nb` (van Herk /
    Gil-Werman blocks), exact, so start-independent.
    """
    n_bars, n_symbols = close.shape
    out = np.zeros((n_bars, n_symbols), dtype=np.uint8)
    if lookback < 1:
        return out
    chunk = _chunk_rows_nb(lookback)
    suffix = np.empty(lookback)
    lowest = np.empty(chunk)
    close_buf = np.empty(n_bars if n_symbols > 1 else 0)
    low_buf = np.empty(n_bars if n_symbols > 1 else 0)
    res_buf = np.empty(n_bars if n_symbols > 1 else 0, dtype=np.uint8)
    for s in range(n_symbols):
        c = _column_nb(close, s, close_buf)
        lows = _column_nb(low, s, low_buf)
        res = _out_column_nb(out, s, res_buf)
        for t in range(min(lookback, n_bars)):
            res[t] = 0
        for lo in range(lookback, n_bars, chunk):
            hi = min(n_bars, lo + chunk)
            # the minima of the windows ending one row earlier; a non-finite low in the
            # window makes it NaN, which compares false
            _rolling_extreme_1d_nb(lows, lookback, False, True, lo - 1, hi - 1, lowest, suffix)
            for t in range(lo, hi):
                res[t] = 1 if np.isfinite(c[t]) and c[t] < lowest[t - lo] else 0
        _store_column_nb(out, s, res)
    return out


@njit(cache=True)
def cross_weights_nb(cross, target_weight):
    """Return float64[T, S] weights from an int8 cross signal: +1 -> target, -1 -> 0, else NaN.

    Reference: tests/reference/strategies.py::cross_weights_ref.
    """
    n_bars, n_symbols = cross.shape
    out = np.full((n_bars, n_symbols), np.nan)
    for t in range(n_bars):
        for s in range(n_symbols):
            if cross[t, s] > 0:
                out[t, s] = target_weight
            elif cross[t, s] < 0:
                out[t, s] = 0.0
    return out


@njit(cache=True)
def ma_cross_weights_nb(close, fast, slow, first_bar_no, target_weight, out):
    """Write `cross_weights_nb(ma_cross_nb(close, fast, slow, first_bar_no), target_weight)`
    into `out` (float64 `[T, S]`); return `out`.

    Reference: `cross_weights_ref(ma_cross_ref(...))` (tests/reference). One pass with no int8
    signal in between; the caller allocates `out` (numpy's large arrays fault in on huge pages,
    several times faster to first touch than numba's: a 1M-bar backtest's largest proposal).
    """
    return ma_cross_into_nb(close, fast, slow, first_bar_no, out, target_weight, 0.0, np.nan)
