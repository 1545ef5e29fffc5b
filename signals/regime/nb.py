"""Market regime kernel on a 1-D reference close (e.g. BTC-USD), codes from `signals.enums.Regime`.

Only windowed indicators are used, so the regime at row `t` depends only on the last
`regime_warmup_bars(...)` rows and the live bridge gets the same code on its last row.
Numba's cache does not notice edits to `signals/indicators/nb.py` when this kernel is loaded
from cache: clear `NUMBA_CACHE_DIR` after editing it (CI uses a fresh cache).
"""

import numpy as np
from numba import njit

from signals.enums import Regime
from signals.indicators.nb import log_returns_nb, realized_vol_nb, sma_nb


def regime_warmup_bars(
    fast: int, slow: int, vol_window: int, vol_baseline_window: int, crash_lookback: int
) -> int:
    """Return the bars `regime_nb` needs: max(fast, slow, vol_window + vol_baseline_window,
    crash_lookback) + 1.

    The first classified row is `regime_warmup_bars(...) - 1`; earlier rows are Unknown.
    `fast` is included in the max so a fast window longer than the slow one stays safe.
    """
    return max(fast, slow, vol_window + vol_baseline_window, crash_lookback) + 1


@njit(cache=True)
def regime_nb(
    ref_close,
    fast,
    slow,
    vol_window,
    vol_baseline_window,
    crash_lookback,
    crash_drop_pct,
    crash_vol_mult,
    first_bar_no,
):
    """Classify each bar of a 1-D reference close as Bull, Chop, Bear, Crash or Unknown.

    Reference: `tests/reference/indicators.py::regime_ref`.

    Rules, first match wins, per row `t`:
    Crash if `log(close[t] / close[t - crash_lookback]) <= log(1 - crash_drop_pct)`, or if
    realized vol (`realized_vol_nb`, `vol_window`) > `crash_vol_mult` * baseline (SMA of the
    realized vol over `vol_baseline_window` rows, current included) while close < SMA(slow);
    Bull if close > SMA(slow) and SMA(fast) > SMA(slow); Bear if close < SMA(slow) and
    SMA(fast) < SMA(slow); else Chop. Units: `crash_drop_pct` a fraction (0.15 = 15 %),
    `crash_vol_mult` a multiple; `first_bar_no` the absolute bar number of row 0 (it anchors the
    SMAs' and the vol's summation order, see `sma_nb`). Output int64 `[T]`.
    Warm-up: Unknown (-1) for rows `t < W - 1`, W = `regime_warmup_bars(...)` =
    max(fast, slow, vol_window + vol_baseline_window, crash_lookback) + 1. NaN rule: Unknown
    when any input of the row (close, either SMA, the crash return, the vol or its baseline) is
    NaN, which includes NaN, zero or negative closes inside the window. Windowed: row `t`
    depends only on rows `t - W + 1 .. t`, bit for bit whatever row the array starts at, and
    the cost is O(T) (anchored sums, `realized_vol_nb`'s shifted anchored sums).
    """
    n_rows = ref_close.shape[0]
    out = np.empty(n_rows, dtype=np.int64)
    warmup = max(max(fast, slow), max(vol_window + vol_baseline_window, crash_lookback)) + 1
    # Chunks of rows, each from its own `warmup - 1` rows of history: row t depends only on
    # rows t - W + 1 .. t, bit for bit, so this gives the bits of one pass over the array
    # while the six indicator temporaries stay chunk-sized and in cache instead of six
    # fresh `[T]` arrays (their page faults cost more than the sums: 1 x 1M bars, 2026-12-07)
    chunk = max(16_384, 4 * warmup)
    for lo in range(0, n_rows, chunk):
        hi = min(n_rows, lo + chunk)
        start = max(0, lo - warmup + 1)
        _regime_rows_nb(
            ref_close[start:hi], fast, slow, vol_window, vol_baseline_window, crash_lookback,
            crash_drop_pct, crash_vol_mult, first_bar_no + start, out[lo:hi],
        )  # fmt: skip
    return out


@njit(cache=True)
def _regime_rows_nb(ref_close, fast, slow, vol_window, vol_baseline_window, crash_lookback,
                    crash_drop_pct, crash_vol_mult, first_bar_no, out):  # fmt: skip
    # `regime_nb` of the 1-D `ref_close` (row 0 at absolute bar `first_bar_no`) for its last
    # `out.shape[0]` rows, written into `out`
    n_rows = ref_close.shape[0]
    skip = n_rows - out.shape[0]
    warmup = max(max(fast, slow), max(vol_window + vol_baseline_window, crash_lookback)) + 1
    close = ref_close.reshape((n_rows, 1))
    sma_fast = sma_nb(close, fast, first_bar_no)
    sma_slow = sma_nb(close, slow, first_bar_no)
    vol = realized_vol_nb(close, vol_window, first_bar_no)
    vol_base = sma_nb(vol, vol_baseline_window, first_bar_no)
    crash_ret = log_returns_nb(close, crash_lookback)
    crash_level = np.log(1.0 - crash_drop_pct)
    for t in range(skip, n_rows):
        out[t - skip] = Regime.Unknown
        if t < warmup - 1:
            continue
        c = close[t, 0]
        f = sma_fast[t, 0]
        s = sma_slow[t, 0]
        v = vol[t, 0]
        b = vol_base[t, 0]
        r = crash_ret[t, 0]
        if np.isnan(c) or np.isnan(f) or np.isnan(s) or np.isnan(v) or np.isnan(b) or np.isnan(r):
            continue
        if r <= crash_level or (v > crash_vol_mult * b and c < s):
            out[t - skip] = Regime.Crash
        elif c > s and f > s:
            out[t - skip] = Regime.Bull
        elif c < s and f < s:
            out[t - skip] = Regime.Bear
        else:
            out[t - skip] = Regime.Chop
    return out
