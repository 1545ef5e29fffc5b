"""Indicator kernels over `[T, S]` float64 arrays (time on axis 0).

Two kinds of kernels live here:

- **Windowed** kernels compute each output row from exactly its own window, in the same
  order every time. The value at row `t` therefore does not depend on any row before
  `t - window + 1`, so the live bridge, which recomputes them on a rolling window that starts
  later than the backtest's history, gets bit-identical values on its last row. Most sum each
  window from scratch (O(T * window), accepted where the windows are short or the kernel runs
  once per backtest). The moving average, the hot kernel of every crossover backtest and
  sweep, is **anchored** instead (`_anchored_sums_nb`): O(T), and still a pure function of
  the window, because its summation order is fixed by absolute bar numbers, not by where the
  array begins; it takes `first_bar_no`, the absolute bar number (`ts_ns // bar_ns`) of row 0.
- **Recursive** kernels (EMA, ATR and RSI with Wilder smoothing) depend on the whole past.
  The live bridge must keep >= 10 * span warm-up bars; decisions use windowed kernels only.

All kernels are causal (row `t` reads rows `<= t` only), hence prefix invariant. NaN rules are
stated per kernel; +/-inf follows IEEE arithmetic unless stated otherwise. Floats are divided
only after a zero check because numba's default error model raises on division by zero.
"""

import numpy as np
from numba import njit

# Returned by `bars_since_valid_nb` for a column that has had no finite value yet. A constant
# (not `T + 1`) so the kernel stays prefix invariant; any staleness threshold is far below it.
BARS_SINCE_NEVER = 2**62


# ############# Private window helpers ############# #


@njit(cache=True)
def _window_sum_nb(x, j, start, stop):
    # Sum x[start:stop, j] with four accumulators in a fixed order relative to `start` (so the
    # result does not depend on where the array begins); NaN propagates through the sum. Four
    # independent chains run ~3x faster than one; the order is part of the parity contract.
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    i = start
    while i + 4 <= stop:
        a0 += x[i, j]
        a1 += x[i + 1, j]
        a2 += x[i + 2, j]
        a3 += x[i + 3, j]
        i += 4
    while i < stop:
        a0 += x[i, j]
        i += 1
    return (a0 + a1) + (a2 + a3)


@njit(cache=True, _nrt=False)
def _anchored_sums_nb(x, window, first_bar_no, lo, hi, out, suffix):
    # Write the sums of the `window` values ending at each index lo..hi-1 of the 1-D `x` (one
    # column) into out[index - lo] (NaN for indices < window - 1); O(hi - lo + window). A
    # contiguous column (one symbol) compiles without stride multiplications.
    # The summation order is anchored to absolute bar numbers: blocks of `window` rows start
    # where (first_bar_no + row) % window == 0, so a window is the tail of one block, summed
    # from that block's end backwards (its "suffix" sums), plus the head of the next, summed
    # from its start forwards; a window that is exactly one block is its head alone. Both
    # parts lie inside the window, so the result depends only on the window's values and bar
    # numbers: any array holding the window gives the same bits. NaN propagates.
    # `suffix` is scratch of >= 4 * window floats: the previous block's suffix sums by
    # position in one window-sized part while a full block's loop writes its own into another;
    # that loop runs the head (forwards) and suffix (backwards) chains of one block side by
    # side, and of two blocks far apart, because each add waits for the one before it.
    t = lo
    while t < hi and t < window - 1:
        out[t - lo] = np.nan
        t += 1
    if t >= hi:
        return
    # the block holding t: the suffix its windows need from the block before, then its rows
    block_start = t - (first_bar_no % window + t) % window
    prev_start = block_start - window
    acc = 0.0
    for i in range(block_start - 1, t - window, -1):
        acc += x[i]
        suffix[i - prev_start] = acc
    head = 0.0
    for i in range(block_start, t):
        head += x[i]
    b = min(hi, block_start + window)
    for u in range(t, b):
        head += x[u]
        k = u - window + 1
        if k >= block_start:
            out[u - lo] = head
        else:
            out[u - lo] = suffix[k - prev_start] + head
    if b >= hi:
        return
    # that block's own suffix sums, for the next block
    cur = window
    acc = 0.0
    for i in range(b - 1, block_start - 1, -1):
        acc += x[i]
        suffix[cur + i - block_start] = acc
    n_full = (hi - b) // window
    if n_full >= 4:
        # two streams of full blocks, the second starting half-way, in one loop: four
        # independent add chains instead of two. The second stream starts from the suffix
        # of the block before it, summed here in the same order (same bits).
        half = n_full // 2
        b2 = b + half * window
        cur2 = 3 * window
        acc = 0.0
        for i in range(b2 - 1, b2 - window - 1, -1):
            acc += x[i]
            suffix[cur2 + i - (b2 - window)] = acc
        for _ in range(half):
            nxt = window - cur
            nxt2 = 5 * window - cur2
            head = 0.0
            head2 = 0.0
            acc = 0.0
            acc2 = 0.0
            # 0-based views: with indices that are >= 0 (or unsigned), numba's negative-index
            # wrap-around folds away (it was most of this loop's instructions)
            xa = x[b : b + window]
            xb = x[b2 : b2 + window]
            oa = out[b - lo : b - lo + window]
            ob = out[b2 - lo : b2 - lo + window]
            prev_a = suffix[cur : cur + window]
            prev_b = suffix[cur2 : cur2 + window]
            next_a = suffix[nxt : nxt + window]
            next_b = suffix[nxt2 : nxt2 + window]
            for i in range(window - 1):
                head += xa[i]
                head2 += xb[i]
                oa[i] = prev_a[i + 1] + head
                ob[i] = prev_b[i + 1] + head2
                # unsigned: numba wraps negative indices around, signed ones only
                k = np.uint64(window - 1 - i)
                acc += xa[k]
                acc2 += xb[k]
                next_a[k] = acc
                next_b[k] = acc2
            head += xa[window - 1]
            head2 += xb[window - 1]
            oa[window - 1] = head
            ob[window - 1] = head2
            acc += xa[0]
            acc2 += xb[0]
            next_a[0] = acc
            next_b[0] = acc2
            cur = nxt
            cur2 = nxt2
            b += window
            b2 += window
        # the first stream has reached the second's start: go on from the second's end
        for i in range(window):
            suffix[i] = suffix[cur2 + i]
        cur = 0
        b = b2
    while b < hi:
        if b + window <= hi:
            nxt = window - cur
            head = 0.0
            acc = 0.0
            last = b + window - 1
            for i in range(window - 1):
                head += x[b + i]
                out[b + i - lo] = suffix[cur + i + 1] + head
                acc += x[last - i]
                suffix[nxt + window - 1 - i] = acc
            head += x[last]
            out[last - lo] = head
            acc += x[b]
            suffix[nxt] = acc
            cur = nxt
        else:
            head = 0.0
            for i in range(hi - b):
                head += x[b + i]
                out[b + i - lo] = suffix[cur + i + 1] + head
        b += window


@njit(cache=True)
def _one_bar_log_returns_nb(close):
    # r[t] = log(close[t] / close[t - 1]); NaN unless both closes are > 0.
    n_rows, n_cols = close.shape
    out = np.full((n_rows, n_cols), np.nan)
    for j in range(n_cols):
        for t in range(1, n_rows):
            a = close[t, j]
            b = close[t - 1, j]
            if a > 0.0 and b > 0.0:
                out[t, j] = np.log(a / b)
    return out


@njit(cache=True)
def _window_std_nb(x, j, start, stop):
    # Sample std (ddof=1) of x[start:stop, j], two passes; NaN if any NaN or fewer than 2 values.
    n = stop - start
    if n < 2:
        return np.nan
    acc = _window_sum_nb(x, j, start, stop)
    if np.isnan(acc):
        return np.nan
    mean = acc / n
    ss = 0.0
    for i in range(start, stop):
        d = x[i, j] - mean
        ss += d * d
    return np.sqrt(ss / (n - 1))


# ############# Windowed kernels ############# #


@njit(cache=True)
def sma_nb(x, window, first_bar_no):
    """Return the simple moving average of `x` over `window` rows.

    Reference: `tests/reference/indicators.py::sma_ref`.

    Units: those of `x`. `first_bar_no`: absolute bar number (`ts_ns // bar_ns`) of row 0.
    Warm-up: NaN for rows `t < window - 1`. NaN rule: any NaN inside the window gives NaN.
    Windowed and anchored, O(T): row `t` is the sum of `x[t - window + 1 .. t]` in the order
    fixed by bar numbers (`_anchored_sums_nb`) divided by `window`, so a later-starting array
    with its own `first_bar_no` gives the same bits on the rows both hold in full.
    """
    n_rows, n_cols = x.shape
    out = np.empty((n_rows, n_cols))
    if window < 1:
        out[:] = np.nan
        return out
    suffix = np.empty(4 * window)
    if n_cols == 1:
        # one column, contiguous (a copy only when the caller's is strided): the sums compile
        # without stride multiplications
        sums = out.reshape(-1)
        _anchored_sums_nb(np.ascontiguousarray(x[:, 0]), window, first_bar_no, 0, n_rows, sums,
                          suffix)  # fmt: skip
        for t in range(window - 1, n_rows):
            sums[t] /= window
        return out
    for j in range(n_cols):
        _anchored_sums_nb(x[:, j], window, first_bar_no, 0, n_rows, out[:, j], suffix)
        for t in range(window - 1, n_rows):
            out[t, j] /= window
    return out


@njit(cache=True)
def rolling_sum_nb(x, window):
    """Return the rolling sum of `x` over `window` rows (e.g. 24h quote volume).

    Reference: `tests/reference/indicators.py::rolling_sum_ref`.

    Units: those of `x`. Warm-up: NaN for rows `t < window - 1`. NaN rule: any NaN inside the
    window gives NaN. Windowed: each row sums its own window from scratch (`_window_sum_nb`).
    """
    n_rows, n_cols = x.shape
    out = np.full((n_rows, n_cols), np.nan)
    for j in range(n_cols):
        for t in range(window - 1, n_rows):
            out[t, j] = _window_sum_nb(x, j, t - window + 1, t + 1)
    return out


@njit(cache=True)
def rolling_max_nb(x, window):
    """Return the rolling maximum of `x` over `window` rows, current row included (Donchian).

    Reference: `tests/reference/indicators.py::rolling_max_ref`.

    Units: those of `x`. Warm-up: NaN for rows `t < window - 1`. NaN rule: any NaN inside the
    window gives NaN. Windowed: each row scans its own window from scratch.
    """
    n_rows, n_cols = x.shape
    out = np.full((n_rows, n_cols), np.nan)
    for j in range(n_cols):
        for t in range(window - 1, n_rows):
            m = x[t - window + 1, j]
            for i in range(t - window + 1, t + 1):
                v = x[i, j]
                if np.isnan(v):
                    m = np.nan
                    break
                if v > m:
                    m = v
            out[t, j] = m
    return out


@njit(cache=True)
def rolling_min_nb(x, window):
    """Return the rolling minimum of `x` over `window` rows, current row included (Donchian).

    Reference: `tests/reference/indicators.py::rolling_min_ref`.

    Units: those of `x`. Warm-up: NaN for rows `t < window - 1`. NaN rule: any NaN inside the
    window gives NaN. Windowed: each row scans its own window from scratch.
    """
    n_rows, n_cols = x.shape
    out = np.full((n_rows, n_cols), np.nan)
    for j in range(n_cols):
        for t in range(window - 1, n_rows):
            m = x[t - window + 1, j]
            for i in range(t - window + 1, t + 1):
                v = x[i, j]
                if np.isnan(v):
                    m = np.nan
                    break
                if v < m:
                    m = v
            out[t, j] = m
    return out


@njit(cache=True)
def log_returns_nb(close, lag):
    """Return `log(close[t] / close[t - lag])`.

    Reference: `tests/reference/indicators.py::log_returns_ref`.

    Units: natural-log return per `lag` bars. Warm-up: NaN for rows `t < lag`. NaN rule: NaN
    unless both closes are > 0 (NaN, zero and negative prices give NaN); +inf follows IEEE.
    Windowed over `lag + 1` rows.
    """
    n_rows, n_cols = close.shape
    out = np.full((n_rows, n_cols), np.nan)
    for j in range(n_cols):
        for t in range(lag, n_rows):
            a = close[t, j]
            b = close[t - lag, j]
            if a > 0.0 and b > 0.0:
                out[t, j] = np.log(a / b)
    return out


@njit(cache=True)
def realized_vol_nb(close, window):
    """Return the per-bar realized volatility: sample std (ddof=1) of one-bar log returns.

    Reference: `tests/reference/indicators.py::realized_vol_ref`.

    Units: log return per bar, not annualised. Uses the `window` one-bar log returns ending at
    `t`, i.e. `window + 1` closes. Warm-up: NaN for rows `t < window`; `window < 2` gives all
    NaN (ddof=1 undefined). NaN rule: any NaN, zero or negative close inside the `window + 1`
    closes gives NaN. Windowed: mean and squared deviations are recomputed from scratch per row.
    """
    n_rows, n_cols = close.shape
    out = np.full((n_rows, n_cols), np.nan)
    if window < 2:
        return out
    r = _one_bar_log_returns_nb(close)
    for j in range(n_cols):
        for t in range(window, n_rows):
            out[t, j] = _window_std_nb(r, j, t - window + 1, t + 1)
    return out


@njit(cache=True)
def zscore_nb(x, window):
    """Return `(x[t] - mean) / std` over the `window` rows ending at (and including) `t`.

    Reference: `tests/reference/indicators.py::zscore_ref`.

    Units: standard deviations (std with ddof=1). Warm-up: NaN for rows `t < window - 1`;
    `window < 2` gives all NaN. NaN rule: any NaN in the window gives NaN; std == 0 (all values
    in the window equal, tested exactly so rounding in the mean cannot fake a spread) gives NaN.
    Windowed: mean and std are recomputed from scratch per row (two passes).
    """
    n_rows, n_cols = x.shape
    out = np.full((n_rows, n_cols), np.nan)
    if window < 2:
        return out
    for j in range(n_cols):
        for t in range(window - 1, n_rows):
            start = t - window + 1
            first = x[start, j]
            all_equal = True
            for i in range(start + 1, t + 1):
                if x[i, j] != first:
                    all_equal = False
                    break
            if all_equal:
                continue
            acc = _window_sum_nb(x, j, start, t + 1)
            if np.isnan(acc):
                continue
            mean = acc / window
            ss = 0.0
            for i in range(start, t + 1):
                d = x[i, j] - mean
                ss += d * d
            sd = np.sqrt(ss / (window - 1))
            if sd == 0.0 or np.isnan(sd):
                continue
            out[t, j] = (x[t, j] - mean) / sd
    return out


@njit(cache=True)
def volume_ratio_nb(volume, window):
    """Return `volume[t] / mean(volume[t - window .. t - 1])` (the current bar excluded).

    Reference: `tests/reference/indicators.py::volume_ratio_ref`.

    Units: dimensionless ratio. Warm-up: NaN for rows `t < window`. NaN rule: any NaN in the
    `window + 1` rows gives NaN; a mean of 0 gives NaN. Windowed over `window + 1` rows, the
    mean recomputed from scratch per row.
    """
    n_rows, n_cols = volume.shape
    out = np.full((n_rows, n_cols), np.nan)
    for j in range(n_cols):
        for t in range(window, n_rows):
            acc = _window_sum_nb(volume, j, t - window, t)
            if np.isnan(acc):
                continue
            mean = acc / window
            if mean == 0.0:
                continue
            out[t, j] = volume[t, j] / mean
    return out


@njit(cache=True)
def bars_since_valid_nb(x):
    """Return bars since the last finite value: 0 where `x[t]` is finite (used for staleness).

    Reference: `tests/reference/indicators.py::bars_since_valid_ref`.

    Units: bars (int64). A column with no finite value yet gives `BARS_SINCE_NEVER` (2**62), a
    constant rather than `T + 1` so the kernel is prefix invariant. NaN and +/-inf count as
    missing. Depends on the past back to the last finite value: a live window gives the same
    value whenever it contains that value, so keep the window longer than the staleness limit.
    """
    n_rows, n_cols = x.shape
    out = np.empty((n_rows, n_cols), dtype=np.int64)
    for j in range(n_cols):
        last = -1
        for t in range(n_rows):
            if np.isfinite(x[t, j]):
                last = t
                out[t, j] = 0
            elif last < 0:
                out[t, j] = BARS_SINCE_NEVER
            else:
                out[t, j] = t - last
    return out


# ############# Recursive kernels ############# #


@njit(cache=True)
def ema_nb(x, span):
    """Return the exponential moving average with `alpha = 2 / (span + 1)`.

    Reference: `tests/reference/indicators.py::ema_ref`.

    Units: those of `x`. Seeded with the simple mean of the first `span` non-NaN values (at the
    row of the `span`-th one, row `span - 1` without NaNs), then
    `ema = alpha * x + (1 - alpha) * ema`. NaN rule: a NaN input gives NaN at that row and
    leaves the state unchanged; NaNs before the seed delay it. Warm-up: NaN before the seed.
    Recursive: depends on the whole past; the live bridge must keep >= 10*span warm-up bars,
    decisions use windowed kernels only.
    """
    n_rows, n_cols = x.shape
    out = np.full((n_rows, n_cols), np.nan)
    alpha = 2.0 / (span + 1.0)
    for j in range(n_cols):
        count = 0
        acc = 0.0
        state = np.nan
        for t in range(n_rows):
            v = x[t, j]
            if np.isnan(v):
                continue
            if count < span:
                acc += v
                count += 1
                if count < span:
                    continue
                state = acc / span
            else:
                state = alpha * v + (1.0 - alpha) * state
            out[t, j] = state
    return out


@njit(cache=True)
def atr_nb(high, low, close, window):
    """Return the average true range with Wilder smoothing.

    Reference: `tests/reference/indicators.py::atr_ref`.

    Units: price. True range = max(high - low, |high - prev_close|, |low - prev_close|), where
    prev_close is the close of the previous valid bar; the first valid bar uses high - low.
    Seeded with the mean of the first `window` TRs, then `atr = (atr * (window - 1) + tr) /
    window`. NaN rule: a bar with NaN high, low or close gives NaN and is skipped (state
    unchanged). Warm-up: NaN until `window` valid bars. Recursive: depends on the whole past;
    the live bridge must keep >= 10*span warm-up bars, decisions use windowed kernels only.
    """
    n_rows, n_cols = close.shape
    out = np.full((n_rows, n_cols), np.nan)
    for j in range(n_cols):
        count = 0
        acc = 0.0
        state = np.nan
        prev_close = np.nan
        has_prev = False
        for t in range(n_rows):
            h = high[t, j]
            lo = low[t, j]
            c = close[t, j]
            if np.isnan(h) or np.isnan(lo) or np.isnan(c):
                continue
            tr = h - lo
            if has_prev:
                a = abs(h - prev_close)
                if a > tr:
                    tr = a
                b = abs(lo - prev_close)
                if b > tr:
                    tr = b
            prev_close = c
            has_prev = True
            if count < window:
                acc += tr
                count += 1
                if count < window:
                    continue
                state = acc / window
            else:
                state = (state * (window - 1) + tr) / window
            out[t, j] = state
    return out


@njit(cache=True)
def rsi_nb(close, window):
    """Return Wilder's relative strength index in [0, 100].

    Reference: `tests/reference/indicators.py::rsi_ref`.

    Units: index points. Changes are taken between consecutive valid (non-NaN) closes; average
    gain/loss are seeded with simple means of the first `window` changes (so `window + 1` valid
    closes), then Wilder-smoothed `avg = (avg * (window - 1) + x) / window`.
    `rsi = 100 - 100 / (1 + avg_gain / avg_loss)`; all gain (avg_loss == 0) gives exactly 100,
    no movement at all gives 50. NaN rule: a NaN close gives NaN and is skipped (state
    unchanged). Recursive: depends on the whole past; the live bridge must keep >= 10*span
    warm-up bars, decisions use windowed kernels only.
    """
    n_rows, n_cols = close.shape
    out = np.full((n_rows, n_cols), np.nan)
    for j in range(n_cols):
        count = 0
        gain_acc = 0.0
        loss_acc = 0.0
        avg_gain = np.nan
        avg_loss = np.nan
        prev = np.nan
        has_prev = False
        for t in range(n_rows):
            c = close[t, j]
            if np.isnan(c):
                continue
            if not has_prev:
                prev = c
                has_prev = True
                continue
            d = c - prev
            prev = c
            gain = d if d > 0.0 else 0.0
            loss = -d if d < 0.0 else 0.0
            if count < window:
                gain_acc += gain
                loss_acc += loss
                count += 1
                if count < window:
                    continue
                avg_gain = gain_acc / window
                avg_loss = loss_acc / window
            else:
                avg_gain = (avg_gain * (window - 1) + gain) / window
                avg_loss = (avg_loss * (window - 1) + loss) / window
            if avg_loss == 0.0:
                if avg_gain > 0.0:
                    out[t, j] = 100.0
                elif avg_gain == 0.0:
                    out[t, j] = 50.0
            else:
                out[t, j] = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    return out
