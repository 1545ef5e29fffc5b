"""Trigger kernels: 0/1 (`uint8`) or -1/0/+1 (`int8`) arrays `[T, S]` built on indicators.

Every trigger here is windowed: it compares windowed indicators of `signals/indicators/nb.py`,
so row `t` depends only on its own window and the live bridge gets bit-identical values on its
last row; each costs O(T) per symbol however long its window (anchored sums, shifted anchored
sums for z-scores, van Herk / Gil-Werman blocks for channels). Triggers built on sums take
`first_bar_no`, the absolute bar number of row 0. NaN inputs (and warm-up rows) give 0.

Numba's cache does not notice edits to `signals/indicators/nb.py` when these kernels are
loaded from cache: clear `NUMBA_CACHE_DIR` after editing it (CI uses a fresh cache).
"""

import numpy as np
from numba import njit, prange

from signals.indicators.nb import (
    _anchored_sums_nb,
    _bar_major_nb,
    _chunk_rows_nb,
    _column_buf_len_nb,
    _column_nb,
    _out_column_nb,
    _rolling_extreme_1d_nb,
    _store_column_nb,
    _volume_ratio_1d_nb,
    _zscore_1d_nb,
    copy_tiles_nb,
    log_returns_nb,
)


@njit(cache=True, _nrt=False)
def _unconfirmed_jump_nb(close, t, vol_ratio_t, max_jump_pct, volume_confirm_ratio):
    # close[t] (1-D column) moved more than max_jump_pct from close[t - 1] without volume
    # confirmation (`vol_ratio_t`, the volume ratio at t)
    if t < 1:
        return False
    c = close[t]
    p = close[t - 1]
    if not (np.isfinite(c) and c > 0.0 and np.isfinite(p) and p > 0.0):
        return False
    return abs(c / p - 1.0) > max_jump_pct and vol_ratio_t < volume_confirm_ratio


@njit(cache=True, _nrt=False)
def _bad_tick_1d_nb(close, volume, max_jump_pct, volume_confirm_ratio, volume_window,
                    first_bar_no, lo, hi, out, ratio, sums, suffix):  # fmt: skip
    # `bad_tick_mask_nb` of one column (1-D `close`, `volume`) for rows lo..hi-1 into the uint8
    # out[0 .. hi - lo). Scratch: ratio and sums >= hi - lo + 1, suffix >= 4 * volume_window.
    first = max(lo - 1, 0)
    # the volume ratios of rows first..hi-1 (row t's and row t - 1's)
    _volume_ratio_1d_nb(volume, volume_window, first_bar_no, first, hi, ratio, sums, suffix)
    for t in range(lo, hi):
        out[t - lo] = 0
        if not _unconfirmed_jump_nb(close, t, ratio[t - first], max_jump_pct, volume_confirm_ratio):
            continue
        returned = (
            t >= 2
            and _unconfirmed_jump_nb(
                close, t - 1, ratio[t - 1 - first], max_jump_pct, volume_confirm_ratio
            )
            and abs(close[t] / close[t - 2] - 1.0) <= max_jump_pct
        )
        if not returned:
            out[t - lo] = 1


@njit(cache=True)
def bad_tick_mask_nb(
    close, volume, max_jump_pct, volume_confirm_ratio, volume_window, first_bar_no
):
    """Mark price jumps that volume does not confirm (bad ticks).

    Reference: `tests/reference/indicators.py::bad_tick_mask_ref`.

    A bar *jumps* when `|close[t] / close[t - 1] - 1| > max_jump_pct` (a fraction, 0.10 = 10 %)
    and `volume_ratio_nb(volume, volume_window, first_bar_no)[t] < volume_confirm_ratio` (NaN
    ratio: no jump). Row `t` is 1 when it jumps, unless it is the *return* from a jump: bar
    `t - 1` jumped and `close[t]` is back within `max_jump_pct` of `close[t - 2]`. So a one-bar
    spike masks one bar, the bar after it is not masked, and a genuine level shift without
    volume masks only its first bar. Both closes must be finite and > 0 (no jump across a
    missing bar; staleness handles gaps). `first_bar_no`: absolute bar number of row 0 (it
    anchors the volume mean's summation order). Windowed, O(T): row t depends on closes
    t-2..t and the volume ratio at t-1..t, so the live bridge reproduces it bit for bit from
    `volume_window + 3` bars.
    """
    out = np.zeros(close.shape, dtype=np.uint8)
    for j in range(close.shape[1]):
        _bad_tick_column_nb(close, volume, max_jump_pct, volume_confirm_ratio, volume_window,
                            first_bar_no, out, j)  # fmt: skip
    return out


@njit(cache=True, parallel=True)
def bad_tick_mask_columns_nb(
    close, volume, max_jump_pct, volume_confirm_ratio, volume_window, first_bar_no
):
    """`bad_tick_mask_nb` with the symbols in parallel (`prange`), the same bits. Wide panels."""
    # written symbol-major (each column's stores contiguous), then copied bar-major by tiles
    out = np.zeros((close.shape[1], close.shape[0]), dtype=np.uint8).T
    for j in prange(close.shape[1]):
        _bad_tick_column_nb(close, volume, max_jump_pct, volume_confirm_ratio, volume_window,
                            first_bar_no, out, j)  # fmt: skip
    return _bar_major_nb(out)


@njit(cache=True)
def _bad_tick_column_nb(close, volume, max_jump_pct, volume_confirm_ratio, volume_window,
                        first_bar_no, out, j):  # fmt: skip
    # column j of `bad_tick_mask_nb` into out[:, j] (zeros already), with its own scratch
    n_rows, n_cols = close.shape
    if volume_window < 1:
        return  # every volume ratio is NaN: nothing jumps
    chunk = _chunk_rows_nb(volume_window)
    ratio = np.empty(chunk + 1)
    sums = np.empty(chunk + 1)
    suffix = np.empty(4 * volume_window)
    c = _column_nb(close, j, np.empty(_column_buf_len_nb(close)))
    v = _column_nb(volume, j, np.empty(_column_buf_len_nb(volume)))
    res = _out_column_nb(out, j, np.empty(n_rows if n_cols > 1 else 0, dtype=np.uint8))
    for lo in range(0, n_rows, chunk):
        hi = min(n_rows, lo + chunk)
        _bad_tick_1d_nb(c, v, max_jump_pct, volume_confirm_ratio, volume_window, first_bar_no,
                        lo, hi, res[lo:hi], ratio, sums, suffix)  # fmt: skip
    _store_column_nb(out, j, res)


@njit(cache=True)
def channel_break_nb(close, band, lookback, above, finite_only):
    """Return uint8[T, S]: 1 where `close[t]` breaks out of the channel of the `lookback` rows
    before it: above `max(band[t - lookback .. t - 1])` (`above`), else below its minimum.

    The one kernel of `breakout_nb` (close over the highs) and
    `signals.strategies.nb.below_channel_nb` (close under the lows). Warm-up: 0 for rows
    `t < lookback`; `lookback < 1` gives all 0. A NaN in the window makes its extreme NaN, so
    the row is 0; with `finite_only` any non-finite band value or close gives 0 too. Windowed
    over `lookback + 1` rows, O(T): the extreme of `_rolling_extreme_1d_nb` (van Herk /
    Gil-Werman blocks, exact, so start-independent).
    """
    out = np.zeros(close.shape, dtype=np.uint8)
    for j in range(close.shape[1]):
        _channel_break_column_nb(close, band, lookback, above, finite_only, out, j)
    return out


@njit(cache=True, parallel=True)
def channel_break_columns_nb(close, band, lookback, above, finite_only):
    """`channel_break_nb` with the symbols in parallel (`prange`), the same bits. Wide panels."""
    # written symbol-major (each column's stores contiguous), then copied bar-major by tiles
    out = np.zeros((close.shape[1], close.shape[0]), dtype=np.uint8).T
    for j in prange(close.shape[1]):
        _channel_break_column_nb(close, band, lookback, above, finite_only, out, j)
    return _bar_major_nb(out)


@njit(cache=True)
def _channel_break_column_nb(close, band, lookback, above, finite_only, out, j):
    # column j of `channel_break_nb` into out[:, j] (zeros already), with its own scratch
    n_rows, n_cols = close.shape
    if lookback < 1:
        return
    chunk = _chunk_rows_nb(lookback)
    suffix = np.empty(lookback)
    extreme = np.empty(chunk)
    c = _column_nb(close, j, np.empty(_column_buf_len_nb(close)))
    b = _column_nb(band, j, np.empty(_column_buf_len_nb(band)))
    res = _out_column_nb(out, j, np.empty(n_rows if n_cols > 1 else 0, dtype=np.uint8))
    for t in range(min(lookback, n_rows)):
        res[t] = 0
    for lo in range(lookback, n_rows, chunk):
        hi = min(n_rows, lo + chunk)
        # the extremes of the windows ending one row earlier
        _rolling_extreme_1d_nb(b, lookback, above, finite_only, lo - 1, hi - 1, extreme, suffix)
        for t in range(lo, hi):
            ok = np.isfinite(c[t]) or not finite_only
            if above:
                res[t] = 1 if ok and c[t] > extreme[t - lo] else 0
            else:
                res[t] = 1 if ok and c[t] < extreme[t - lo] else 0
    _store_column_nb(out, j, res)


@njit(cache=True)
def breakout_nb(close, high, lookback):
    """Return 1 where `close[t] > max(high[t - lookback .. t - 1])` (Donchian breakout).

    Reference: `tests/reference/indicators.py::breakout_ref`.

    Warm-up: 0 for rows `t < lookback`; `lookback < 1` gives all 0. NaN rule: NaN close or any
    NaN high in the window gives 0. Windowed over `lookback + 1` rows, O(T)
    (`channel_break_nb`).
    """
    return channel_break_nb(close, high, lookback, True, False)


@njit(cache=True)
def breakout_columns_nb(close, high, lookback):
    """`breakout_nb` with the symbols in parallel (`channel_break_columns_nb`)."""
    return channel_break_columns_nb(close, high, lookback, True, False)


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
    for t in range(n_rows):
        for j in range(n_cols):
            out[t, j] = 1 if log_ret[t, j] > threshold else 0
    return out


@njit(cache=True)
def volume_spike_nb(volume, lookback, ratio, first_bar_no):
    """Return 1 where `volume_ratio_nb(volume, lookback, first_bar_no)[t] >= ratio`.

    Reference: `tests/reference/indicators.py::volume_spike_ref`.

    Warm-up: 0 for rows `t < lookback`; `lookback < 1` gives all 0. NaN rule: NaN ratio (NaN
    volume in the window, zero mean) gives 0. `first_bar_no`: absolute bar number of row 0.
    Windowed over `lookback + 1` rows and anchored, O(T) (`volume_ratio_nb`).
    """
    out = np.zeros(volume.shape, dtype=np.uint8)
    for j in range(volume.shape[1]):
        _volume_spike_column_nb(volume, lookback, ratio, first_bar_no, out, j)
    return out


@njit(cache=True, parallel=True)
def volume_spike_columns_nb(volume, lookback, ratio, first_bar_no):
    """`volume_spike_nb` with the symbols in parallel (`prange`), the same bits. Wide panels."""
    # written symbol-major (each column's stores contiguous), then copied bar-major by tiles
    out = np.zeros((volume.shape[1], volume.shape[0]), dtype=np.uint8).T
    for j in prange(volume.shape[1]):
        _volume_spike_column_nb(volume, lookback, ratio, first_bar_no, out, j)
    return _bar_major_nb(out)


@njit(cache=True)
def _volume_spike_column_nb(volume, lookback, ratio, first_bar_no, out, j):
    # column j of `volume_spike_nb` into out[:, j] (zeros already), with its own scratch
    n_rows, n_cols = volume.shape
    if lookback < 1:
        return
    chunk = _chunk_rows_nb(lookback)
    vol_ratio = np.empty(chunk)
    sums = np.empty(chunk)
    suffix = np.empty(4 * lookback)
    v = _column_nb(volume, j, np.empty(_column_buf_len_nb(volume)))
    res = _out_column_nb(out, j, np.empty(n_rows if n_cols > 1 else 0, dtype=np.uint8))
    for lo in range(0, n_rows, chunk):
        hi = min(n_rows, lo + chunk)
        _volume_ratio_1d_nb(v, lookback, first_bar_no, lo, hi, vol_ratio, sums, suffix)
        for t in range(lo, hi):
            res[t] = 1 if vol_ratio[t - lo] >= ratio else 0
    _store_column_nb(out, j, res)


@njit(cache=True)
def _zscore_flags_nb(close, lookback, level, below, first_bar_no):
    # 1 where zscore_nb(close, lookback, first_bar_no) <= level (`below`), else >= level
    n_rows, n_cols = close.shape
    out = np.zeros((n_rows, n_cols), dtype=np.uint8)
    if lookback < 2:
        return out
    chunk = _chunk_rows_nb(lookback)
    s1 = np.empty(chunk)
    z = np.empty(chunk)
    tail = np.empty(2 * lookback)
    col_buf = np.empty(n_rows if n_cols > 1 else 0)
    res_buf = np.empty(n_rows if n_cols > 1 else 0, dtype=np.uint8)
    for j in range(n_cols):
        c = _column_nb(close, j, col_buf)
        res = _out_column_nb(out, j, res_buf)
        for lo in range(0, n_rows, chunk):
            hi = min(n_rows, lo + chunk)
            _zscore_1d_nb(c, lookback, first_bar_no, lo, hi, z, s1, tail)
            if below:
                for t in range(lo, hi):
                    res[t] = 1 if z[t - lo] <= level else 0
            else:
                for t in range(lo, hi):
                    res[t] = 1 if z[t - lo] >= level else 0
        _store_column_nb(out, j, res)
    return out


@njit(cache=True)
def mean_reversion_nb(close, lookback, z_entry, first_bar_no):
    """Return 1 where `zscore_nb(close, lookback, first_bar_no)[t] <= -z_entry` (oversold).

    Reference: `tests/reference/indicators.py::mean_reversion_ref`.

    Units: `z_entry` in standard deviations. Warm-up: 0 for rows `t < lookback - 1`;
    `lookback < 2` gives all 0. NaN rule: NaN z-score (NaN in the window, flat window) gives 0.
    `first_bar_no`: absolute bar number of row 0. Windowed over `lookback` rows and anchored,
    O(T) (`zscore_nb`).
    """
    return _zscore_flags_nb(close, lookback, -z_entry, True, first_bar_no)


@njit(cache=True)
def mean_reversion_exit_nb(close, lookback, z_exit, first_bar_no):
    """Return 1 where `zscore_nb(close, lookback, first_bar_no)[t] >= z_exit` (reverted, exit).

    Reference: `tests/reference/indicators.py::mean_reversion_exit_ref`.

    Units: `z_exit` in standard deviations. Warm-up: 0 for rows `t < lookback - 1`;
    `lookback < 2` gives all 0. NaN rule: NaN z-score gives 0. `first_bar_no`: absolute bar
    number of row 0. Windowed over `lookback` rows and anchored, O(T) (`zscore_nb`).
    """
    return _zscore_flags_nb(close, lookback, z_exit, False, first_bar_no)


@njit(cache=True)
def ma_cross_nb(close, fast, slow, first_bar_no):
    """Return +1 where SMA(fast) crosses above SMA(slow), -1 where it crosses below, else 0.

    Reference: `tests/reference/indicators.py::ma_cross_ref`.

    Cross above at `t`: `fast[t] > slow[t]` and `fast[t-1] <= slow[t-1]`; cross below:
    `fast[t] < slow[t]` and `fast[t-1] >= slow[t-1]`, with the SMAs of `sma_nb` (anchored at
    `first_bar_no`, the absolute bar number of row 0). Output `int8`. Warm-up: 0 for rows
    `t < max(fast, slow)`. NaN rule: any NaN among the four averages gives 0. Windowed over
    `max(fast, slow) + 1` rows. Equal to `ma_cross_from_sma_nb(sma_nb(close, fast, b),
    sma_nb(close, slow, b))`, but streams the averages through chunk-sized scratch instead of
    two `[T, S]` arrays (fresh memory costs more than the sums here).
    """
    return ma_cross_into_nb(
        close, fast, slow, first_bar_no, np.empty(close.shape, dtype=np.int8), 1, -1, 0
    )


@njit(cache=True)
def ma_cross_into_nb(close, fast, slow, first_bar_no, out, up, down, neither):
    """Write `ma_cross_nb`'s signal into `out[T, S]` as `up` (+1), `down` (-1) or `neither` (0,
    incl. warm-up and row 0); return `out`.

    `ma_cross_nb` is `(1, -1, 0)` into int8; `signals.strategies.nb.ma_cross_weights_nb` writes
    weights (`target, 0, NaN`) straight into a float64 buffer the caller allocated, with no int8
    signal and no second pass in between.
    """
    if fast < 1 or slow < 1:
        out[:] = neither
        return out
    for j in range(close.shape[1]):
        _ma_cross_column_nb(close, fast, slow, first_bar_no, out, up, down, neither, j)
    return out


@njit(cache=True, parallel=True)
def ma_cross_into_columns_nb(close, fast, slow, first_bar_no, out, up, down, neither):
    """`ma_cross_into_nb` with the symbols in parallel (`prange`), the same bits. Wide panels."""
    if fast < 1 or slow < 1:
        out[:] = neither
        return out
    # written symbol-major (each column's stores contiguous), then copied into `out` by tiles
    by_symbol = np.empty((out.shape[1], out.shape[0]), dtype=out.dtype).T
    for j in prange(close.shape[1]):
        _ma_cross_column_nb(close, fast, slow, first_bar_no, by_symbol, up, down, neither, j)
    copy_tiles_nb(by_symbol, out)
    return out


@njit(cache=True)
def _ma_cross_column_nb(close, fast, slow, first_bar_no, out, up, down, neither, j):
    # column j of `ma_cross_into_nb` into out[:, j], with its own scratch; fast, slow >= 1
    n_rows, n_cols = close.shape
    chunk = max(4096, 4 * max(fast, slow))
    avg_fast = np.empty(chunk + 1)
    avg_slow = np.empty(chunk + 1)
    suffix = np.empty(4 * max(fast, slow))
    # the symbol's closes as a contiguous 1-D array (a view; a copy only when the caller's
    # column is strided), whose sums compile without stride multiplications
    column = _column_nb(close, j, np.empty(_column_buf_len_nb(close)))
    if n_rows > 0:
        out[0, j] = neither
    lo = 1
    while lo < n_rows:
        hi = min(n_rows, lo + chunk)
        # the sums of rows lo - 1 .. hi - 1 (the previous row of the chunk's first row included)
        _anchored_sums_nb(column, fast, first_bar_no, lo - 1, hi, avg_fast, suffix)
        _anchored_sums_nb(column, slow, first_bar_no, lo - 1, hi, avg_slow, suffix)
        # the averages, then the crossings, each in a loop of its own over 1-D views: both
        # vectorise (row indexing into `[n, 1]` arrays did not)
        for i in range(hi - lo + 1):
            avg_fast[i] = avg_fast[i] / fast
            avg_slow[i] = avg_slow[i] / slow
        if n_cols == 1:
            m = hi - lo
            cross_values_1d_nb(
                avg_fast[:m], avg_slow[:m], avg_fast[1 : m + 1], avg_slow[1 : m + 1], up, down,
                neither, out.reshape(-1)[lo:hi],
            )  # fmt: skip
        else:
            for t in range(lo, hi):
                out[t, j] = cross_value_nb(
                    avg_fast[t - lo], avg_slow[t - lo], avg_fast[t - lo + 1],
                    avg_slow[t - lo + 1], up, down, neither,
                )  # fmt: skip
        lo = hi


@njit(cache=True)
def cross_values_1d_nb(f_prev, s_prev, f_now, s_now, up, down, neither, out):
    """Write `cross_value_nb` of each element of the four 1-D averages into `out` (same length).

    Indexed from 0 on views so that numba's negative-index wrap-around folds away and the loop
    vectorises with plain loads and stores; indexed by `t - 1` from an arbitrary start it
    gathered and scattered instead, several times slower.
    """
    for i in range(out.shape[0]):
        out[i] = cross_value_nb(f_prev[i], s_prev[i], f_now[i], s_now[i], up, down, neither)


@njit(cache=True, inline="always")
def cross_value_nb(f_prev, s_prev, f_now, s_now, up, down, neither):
    """Return `up`, `down` or `neither` as `cross_sign_nb` gives +1, -1 or 0, without branches,
    so a loop over bars vectorises. A NaN makes every comparison false, hence `neither`."""
    above = (f_now > s_now) & (f_prev <= s_prev)
    below = (f_now < s_now) & (f_prev >= s_prev)
    return up if above else (down if below else neither)


@njit(cache=True)
def cross_sign_nb(f_prev, s_prev, f_now, s_now):
    """Return +1 (fast crosses above slow), -1 (below) or 0 for one bar of `ma_cross_nb` from
    the two averages at the previous bar and at this one; any NaN gives 0."""
    if np.isnan(f_now) or np.isnan(s_now) or np.isnan(f_prev) or np.isnan(s_prev):
        return 0
    if f_now > s_now and f_prev <= s_prev:
        return 1
    if f_now < s_now and f_prev >= s_prev:
        return -1
    return 0


@njit(cache=True)
def ma_cross_from_sma_nb(sma_fast, sma_slow):
    """Return the crossing test of `ma_cross_nb` on two precomputed SMAs `[T, S]`.

    `ma_cross_nb(close, fast, slow, b)` equals `ma_cross_from_sma_nb(sma_nb(close, fast, b),
    sma_nb(close, slow, b))`; the parameter sweep (`sim/sweep_nb.py`) uses this form, computing
    each distinct SMA once and reusing it across combinations. Both share `cross_sign_nb`.
    Output `int8`; NaN in any of the four averages gives 0.
    """
    n_rows, n_cols = sma_fast.shape
    out = np.zeros((n_rows, n_cols), dtype=np.int8)
    for j in range(n_cols):
        for t in range(1, n_rows):
            out[t, j] = cross_sign_nb(
                sma_fast[t - 1, j], sma_slow[t - 1, j], sma_fast[t, j], sma_slow[t, j]
            )
    return out
