"""Trigger kernels: 0/1 (`uint8`) or -1/0/+1 (`int8`) arrays `[T, S]` built on indicators.

Every trigger here except `bad_tick_mask_nb` is windowed: it compares windowed indicators from
`signals/indicators/nb.py`, so row `t` depends only on its own window and the live bridge gets
bit-identical values on its last row. NaN inputs (and warm-up rows) give 0.

Numba's cache does not notice edits to `signals/indicators/nb.py` when these kernels are
loaded from cache: clear `NUMBA_CACHE_DIR` after editing it (CI uses a fresh cache).
"""

import numpy as np
from numba import njit

from signals.indicators.nb import (
    log_returns_nb,
    rolling_max_nb,
    sma_nb,
    volume_ratio_nb,
    zscore_nb,
)


@njit(cache=True)
def bad_tick_mask_nb(close, volume, max_jump_pct, volume_confirm_ratio, volume_window):
    """Mark price jumps that volume does not confirm (bad ticks).

    Reference: `tests/reference/indicators.py::bad_tick_mask_ref`.

    Row `t` is 1 when `|close[t] / ref - 1| > max_jump_pct` (a fraction, 0.10 = 10 %) and
    `volume_ratio_nb(volume, volume_window)[t] < volume_confirm_ratio`, where `ref` is the last
    unmasked valid close of the column; so the bar after a bad tick, back to normal, is not
    masked. A valid close is finite and > 0; other closes give 0 and do not move `ref`. The
    first valid close gives 0 and becomes `ref`. NaN volume ratio (warm-up of `volume_window`
    rows, NaN or zero-mean volume) gives 0. Sequential per column, so recursive, but the
    dependence dies out: the only state is the last unmasked close, reset by every unmasked
    valid bar. Causal, hence prefix invariant. Caveat: a genuine level shift without volume
    confirmation stays masked until price comes back within `max_jump_pct` of `ref` or volume
    confirms a bar; the caller should cap consecutive masked bars (or treat them as stale).
    """
    n_rows, n_cols = close.shape
    out = np.zeros((n_rows, n_cols), dtype=np.uint8)
    vol_ratio = volume_ratio_nb(volume, volume_window)
    for j in range(n_cols):
        ref = np.nan
        has_ref = False
        for t in range(n_rows):
            c = close[t, j]
            if not (np.isfinite(c) and c > 0.0):
                continue
            if not has_ref:
                ref = c
                has_ref = True
                continue
            jump = abs(c / ref - 1.0)
            if jump > max_jump_pct and vol_ratio[t, j] < volume_confirm_ratio:
                out[t, j] = 1
            else:
                ref = c
    return out


@njit(cache=True)
def breakout_nb(close, high, lookback):
    """Return 1 where `close[t] > max(high[t - lookback .. t - 1])` (Donchian breakout).

    Reference: `tests/reference/indicators.py::breakout_ref`.

    Warm-up: 0 for rows `t < lookback`. NaN rule: NaN close or any NaN high in the window gives
    0. Windowed over `lookback + 1` rows.
    """
    n_rows, n_cols = close.shape
    out = np.zeros((n_rows, n_cols), dtype=np.uint8)
    high_max = rolling_max_nb(high, lookback)
    for j in range(n_cols):
        for t in range(lookback, n_rows):
            if close[t, j] > high_max[t - 1, j]:
                out[t, j] = 1
    return out


@njit(cache=True)
def momentum_nb(close, lookback, threshold):
    """Return 1 where `log(close[t] / close[t - lookback]) > threshold`.

    Reference: `tests/reference/indicators.py::momentum_ref`.

    Units: `threshold` is a natural-log return. Warm-up: 0 for rows `t < lookback`. NaN rule:
    NaN, zero or negative closes give 0. Windowed over `lookback + 1` rows.
    """
    n_rows, n_cols = close.shape
    out = np.zeros((n_rows, n_cols), dtype=np.uint8)
    log_ret = log_returns_nb(close, lookback)
    for j in range(n_cols):
        for t in range(n_rows):
            if log_ret[t, j] > threshold:
                out[t, j] = 1
    return out


@njit(cache=True)
def volume_spike_nb(volume, lookback, ratio):
    """Return 1 where `volume_ratio_nb(volume, lookback)[t] >= ratio`.

    Reference: `tests/reference/indicators.py::volume_spike_ref`.

    Warm-up: 0 for rows `t < lookback`. NaN rule: NaN ratio (NaN volume in the window, zero
    mean) gives 0. Windowed over `lookback + 1` rows.
    """
    n_rows, n_cols = volume.shape
    out = np.zeros((n_rows, n_cols), dtype=np.uint8)
    vol_ratio = volume_ratio_nb(volume, lookback)
    for j in range(n_cols):
        for t in range(n_rows):
            if vol_ratio[t, j] >= ratio:
                out[t, j] = 1
    return out


@njit(cache=True)
def mean_reversion_nb(close, lookback, z_entry):
    """Return 1 where `zscore_nb(close, lookback)[t] <= -z_entry` (oversold entry).

    Reference: `tests/reference/indicators.py::mean_reversion_ref`.

    Units: `z_entry` in standard deviations. Warm-up: 0 for rows `t < lookback - 1`. NaN rule:
    NaN z-score (NaN in the window, flat window) gives 0. Windowed over `lookback` rows.
    """
    n_rows, n_cols = close.shape
    out = np.zeros((n_rows, n_cols), dtype=np.uint8)
    z = zscore_nb(close, lookback)
    for j in range(n_cols):
        for t in range(n_rows):
            if z[t, j] <= -z_entry:
                out[t, j] = 1
    return out


@njit(cache=True)
def mean_reversion_exit_nb(close, lookback, z_exit):
    """Return 1 where `zscore_nb(close, lookback)[t] >= z_exit` (reverted, exit).

    Reference: `tests/reference/indicators.py::mean_reversion_exit_ref`.

    Units: `z_exit` in standard deviations. Warm-up: 0 for rows `t < lookback - 1`. NaN rule:
    NaN z-score gives 0. Windowed over `lookback` rows.
    """
    n_rows, n_cols = close.shape
    out = np.zeros((n_rows, n_cols), dtype=np.uint8)
    z = zscore_nb(close, lookback)
    for j in range(n_cols):
        for t in range(n_rows):
            if z[t, j] >= z_exit:
                out[t, j] = 1
    return out


@njit(cache=True)
def ma_cross_nb(close, fast, slow):
    """Return +1 where SMA(fast) crosses above SMA(slow), -1 where it crosses below, else 0.

    Reference: `tests/reference/indicators.py::ma_cross_ref`.

    Cross above at `t`: `fast[t] > slow[t]` and `fast[t-1] <= slow[t-1]`; cross below:
    `fast[t] < slow[t]` and `fast[t-1] >= slow[t-1]`. Output `int8`. Warm-up: 0 for rows
    `t < max(fast, slow)`. NaN rule: any NaN among the four averages gives 0. Windowed over
    `max(fast, slow) + 1` rows.
    """
    n_rows, n_cols = close.shape
    out = np.zeros((n_rows, n_cols), dtype=np.int8)
    sma_fast = sma_nb(close, fast)
    sma_slow = sma_nb(close, slow)
    for j in range(n_cols):
        for t in range(1, n_rows):
            f_now = sma_fast[t, j]
            s_now = sma_slow[t, j]
            f_prev = sma_fast[t - 1, j]
            s_prev = sma_slow[t - 1, j]
            if np.isnan(f_now) or np.isnan(s_now) or np.isnan(f_prev) or np.isnan(s_prev):
                continue
            if f_now > s_now and f_prev <= s_prev:
                out[t, j] = 1
            elif f_now < s_now and f_prev >= s_prev:
                out[t, j] = -1
    return out
