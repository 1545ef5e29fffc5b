"""Indicator kernels over `[T, S]` float64 arrays (time on axis 0).

Two kinds of kernels live here:

- **Windowed** kernels compute each output row from exactly its own window. The value at row
  `t` does not depend on any row before `t - window + 1` nor on where the array begins, so the
  live bridge, which recomputes them on a rolling window that starts later than the
  backtest's history, gets bit-identical values on its rows. All cost O(T) per symbol however
  long the window:
  - sums, means and ratios of means are **anchored** (`_anchored_sums_nb`): their summation
    order is fixed by absolute bar numbers, not by where the array begins; they take
    `first_bar_no`, the absolute bar number (`ts_ns // bar_ns`) of row 0;
  - standard deviations (realized vol, z-score) use anchored *shifted* sums
    (`_anchored_moments_nb`): the same anchored order over `x - c`, `c` the value at the
    window's block start, with a relative error bound stated in `realized_vol_nb`;
  - max and min use van Herk / Gil-Werman blocks (`_rolling_extreme_1d_nb`; a monotonic
    deque was 2-4x slower); they are exact, so any order gives the same bits.
- **Recursive** kernels (EMA, ATR and RSI with Wilder smoothing) depend on the whole past.
  The live bridge must keep >= 10 * span warm-up bars; decisions use windowed kernels only.

All kernels are causal (row `t` reads rows `<= t` only), hence prefix invariant. NaN rules are
stated per kernel; +/-inf follows IEEE arithmetic unless stated otherwise. Floats are divided
only after a zero check because numba's default error model raises on division by zero.
Per-symbol work runs in `*_1d`-style helpers over one column (`x[:, j]`), so a contiguous
column (one symbol, or a symbol-major panel) compiles without stride multiplications.
"""

import numpy as np
from numba import njit, prange

# Returned by `bars_since_valid_nb` for a column that has had no finite value yet. A constant
# (not `T + 1`) so the kernel stays prefix invariant; any staleness threshold is far below it.
BARS_SINCE_NEVER = 2**62


# ############# Private window helpers ############# #


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


@njit(cache=True, _nrt=False)
def _anchored_moments_nb(x, window, first_bar_no, lo, hi, s1_out, m2_out, tail):
    # Write, for the `window` values of the 1-D `x` (one column) ending at each index u in
    # lo..hi-1, their shifted sum S1 = sum(x - c) into s1_out[u - lo] and their sum of squared
    # deviations M2 = S2 - S1 * S1 / window, S2 = sum((x - c)^2), clamped at 0, into
    # m2_out[u - lo] (both NaN for u < window - 1); O(hi - lo + window).
    # Blocks as in `_anchored_sums_nb` start where (first_bar_no + row) % window == 0; the
    # shift c is x at the start of u's block, a value inside every window ending in that
    # block, hence sum((x - c)^2) <= (window + 1) * M2 whatever the offset of x: the textbook
    # formula on these shifted sums keeps a relative error of O(window^2 u) (`realized_vol_nb`).
    # Each sum is the part of the window in the block before, summed from that block's end
    # backwards, plus the part in u's block, summed from its start forwards, so the result
    # depends only on the window's values and bar numbers (any array holding the window gives
    # the same bits). NaN propagates; equal values give exactly 0. `tail` is scratch of
    # >= 2 * window floats (the previous block's backward sums, S1 then S2, by position).
    t = lo
    while t < hi and t < window - 1:
        s1_out[t - lo] = np.nan
        m2_out[t - lo] = np.nan
        t += 1
    if t >= hi:
        return
    block_start = t - (first_bar_no % window + t) % window
    while block_start < hi:
        c = x[block_start]
        prev_start = block_start - window
        first = max(t, block_start)
        # the block before: the backward sums the windows ending in this block need
        a1 = 0.0
        a2 = 0.0
        for i in range(block_start - 1, first - window, -1):
            d = x[i] - c
            a1 += d
            a2 += d * d
            tail[i - prev_start] = a1
            tail[window + i - prev_start] = a2
        h1 = 0.0
        h2 = 0.0
        for i in range(block_start, first):
            d = x[i] - c
            h1 += d
            h2 += d * d
        for u in range(first, min(hi, block_start + window)):
            d = x[u] - c
            h1 += d
            h2 += d * d
            k = u - window + 1
            if k == block_start:
                s1 = h1
                s2 = h2
            else:
                s1 = tail[k - prev_start] + h1
                s2 = tail[window + k - prev_start] + h2
            m2 = s2 - s1 * s1 / window
            s1_out[u - lo] = s1
            # rounding can take a tiny M2 below 0 (NaN stays NaN)
            m2_out[u - lo] = 0.0 if m2 < 0.0 else m2
        block_start += window


@njit(cache=True, _nrt=False)
def _rolling_extreme_1d_nb(x, window, is_max, finite_only, lo, hi, out, suffix):
    # Write the maximum (`is_max`) or minimum of x[t - window + 1 .. t] into out[t - lo] for
    # t in lo..hi-1 of the 1-D `x` (one column); NaN for t < window - 1 and while the window
    # holds a NaN (any non-finite value if `finite_only`); window >= 1; O(hi - lo + window).
    # Branch-free van Herk / Gil-Werman: in blocks of `window` rows from the first row needed,
    # a window is the tail of one block (its extreme scanned from the block's end backwards
    # into `suffix`, >= window floats) and the head of the next (the running extreme
    # forwards). Among equal extremes the oldest wins every comparison, as in a strict scan
    # of the window (it decides between -0.0 and 0.0): the result is exact and a function of
    # the window alone, whatever the blocks. A monotonic deque was 2-4x slower.
    init = -np.inf if is_max else np.inf
    base = max(0, lo - window + 1)
    last_bad = base - window
    for b in range(base, hi, window):
        if b > base:
            # suffix[i - b + window] = the extreme of x[i .. b - 1], oldest on ties
            m = init
            for i in range(b - 1, b - window, -1):
                v = x[i]
                if is_max:
                    m = v if v >= m else m
                else:
                    m = v if v <= m else m
                suffix[i - b + window] = m
        m = init
        for t in range(b, min(hi, b + window)):
            v = x[t]
            if np.isnan(v) or (finite_only and not np.isfinite(v)):
                last_bad = t
            if is_max:
                m = v if v > m else m
            else:
                m = v if v < m else m
            if t < lo:
                continue
            k = t - window + 1
            if t < window - 1 or t - last_bad < window:
                out[t - lo] = np.nan
            elif k == b:
                out[t - lo] = m
            else:
                older = suffix[k - b + window]
                if is_max:
                    out[t - lo] = older if older >= m else m
                else:
                    out[t - lo] = older if older <= m else m


@njit(cache=True)
def _chunk_rows_nb(window):
    # Rows per chunk of the column loops: small scratch that stays in cache (a fresh `[T]`
    # scratch array of a long column cost more in page faults than the sums), and >= 4 windows
    # so the warm-up each chunk recomputes stays small.
    return max(4096, 4 * window)


@njit(cache=True)
def _column_nb(x, j, buf):
    # Column j of x `[T, S]` as a contiguous 1-D array: x's own memory when the column is
    # contiguous (one symbol, or a symbol-major layout), else copied into `buf` (length T) by
    # an explicit loop (numba's strided slice copy is several times slower).
    if x.shape[1] == 1 or x.strides[0] == x.itemsize:
        return np.ascontiguousarray(x[:, j])
    for t in range(x.shape[0]):
        buf[t] = x[t, j]
    return buf


@njit(cache=True)
def _column_buf_len_nb(x):
    # the length of the scratch `_column_nb` copies a column of x into: 0 when it needs none
    return 0 if x.shape[1] == 1 or x.strides[0] == x.itemsize else x.shape[0]


@njit(cache=True)
def _out_column_nb(out, j, buf):
    # Where a kernel writes column j of its C-ordered output `out` `[T, S]`: out's own memory
    # for one column, else `buf` (length T), stored afterwards by `_store_column_nb`.
    if out.shape[1] == 1:
        return out.reshape(-1)
    return buf


@njit(cache=True)
def _store_column_nb(out, j, res):
    # Store `res`, the column of `_out_column_nb(out, j, ...)`, into out[:, j] (explicit loop)
    if out.shape[1] != 1:
        for t in range(out.shape[0]):
            out[t, j] = res[t]


@njit(cache=True, _nrt=False)
def _realized_vol_1d_nb(close, window, first_bar_no, lo, hi, out, r, s1, tail):
    # `realized_vol_nb` of the 1-D `close` for rows lo..hi-1 into out[0 .. hi - lo); window
    # >= 2. Scratch: r >= hi - lo + window (the one-bar log returns of the rows the windows
    # read), s1 >= hi - lo, tail >= 2 * window.
    base = max(0, lo - window + 1)
    for t in range(base, hi):
        a = close[t]
        b = close[t - 1] if t > 0 else np.nan
        r[t - base] = np.log(a / b) if a > 0.0 and b > 0.0 else np.nan
    # the returns from row `base` on, with that row's bar number: the same bits
    # (`_anchored_moments_nb` depends only on the window's values and bar numbers)
    _anchored_moments_nb(r, window, first_bar_no + base, lo - base, hi - base, s1, out, tail)
    for i in range(hi - lo):
        out[i] = np.sqrt(out[i] / (window - 1))


@njit(cache=True, _nrt=False)
def _zscore_1d_nb(x, window, first_bar_no, lo, hi, out, s1, tail):
    # `zscore_nb` of the 1-D `x` for rows lo..hi-1 into out[0 .. hi - lo); window >= 2.
    # Scratch: s1 >= hi - lo, tail >= 2 * window.
    _anchored_moments_nb(x, window, first_bar_no, lo, hi, s1, out, tail)
    for t in range(lo, hi):
        i = t - lo
        sd = np.sqrt(out[i] / (window - 1))
        if sd == 0.0 or np.isnan(sd):
            out[i] = np.nan
            continue
        c = x[t - (first_bar_no % window + t) % window]
        out[i] = ((x[t] - c) - s1[i] / window) / sd


@njit(cache=True, _nrt=False)
def _volume_ratio_1d_nb(volume, window, first_bar_no, lo, hi, out, sums, suffix):
    # `volume_ratio_nb` of the 1-D `volume` for rows lo..hi-1 into out[0 .. hi - lo);
    # window >= 1. Scratch: sums >= hi - lo, suffix >= 4 * window.
    first = min(hi, max(lo, window))
    for t in range(lo, first):
        out[t - lo] = np.nan
    if first >= hi:
        return
    # the sums of the windows ending one row earlier
    _anchored_sums_nb(volume, window, first_bar_no, first - 1, hi - 1, sums, suffix)
    for t in range(first, hi):
        acc = sums[t - first]
        mean = acc / window
        if np.isnan(acc) or mean == 0.0:
            out[t - lo] = np.nan
        else:
            out[t - lo] = volume[t] / mean


# ############# Memory order ############# #

_TILE = 64
"""Rows and columns of one tile of `copy_tiles_nb` (64 x 64 float64: 32 KiB)."""


@njit(cache=True, parallel=True)
def copy_tiles_nb(x, out):
    """Copy `x` into `out`, both `[T, S]` of one shape in any two memory orders, tile by tile,
    the row blocks in parallel: each tile's reads and writes stay in cache, where a plain copy
    walks one of the two arrays against its memory order. The same values, bit for bit.

    The column-parallel kernels write symbol-major and copy bar-major with it, instead of
    storing each column straight into the bar-major output (one 8-byte store per cache line
    of S columns): `run_backtest` of `ma_cross` at 500 x 20k 0.81-0.94 vs 0.92-1.02 s
    without, three fresh processes each, best of 5 (2026-12-07).
    """
    n_rows, n_cols = x.shape
    for block in prange((n_rows + _TILE - 1) // _TILE):
        t0 = block * _TILE
        t1 = min(n_rows, t0 + _TILE)
        for j0 in range(0, n_cols, _TILE):
            for j in range(j0, min(n_cols, j0 + _TILE)):
                for t in range(t0, t1):
                    out[t, j] = x[t, j]


@njit(cache=True)
def _bar_major_nb(x):
    # `x` (symbol-major `[T, S]`, as the column-parallel kernels write it) copied bar-major
    out = np.empty(x.shape, dtype=x.dtype)
    copy_tiles_nb(x, out)
    return out


# ############# Windowed kernels ############# #


@njit(cache=True)
def _anchored_sums_2d_nb(x, window, first_bar_no):
    # The anchored window sums of every column of x `[T, S]` (NaN in the warm-up), window >= 1.
    out = np.empty(x.shape)
    for j in range(x.shape[1]):
        _anchored_sums_column_nb(x, window, first_bar_no, out, j)
    return out


@njit(cache=True)
def _anchored_sums_column_nb(x, window, first_bar_no, out, j):
    # column j of `_anchored_sums_2d_nb` into out[:, j], with its own scratch
    n_rows, n_cols = x.shape
    res = _out_column_nb(out, j, np.empty(n_rows if n_cols > 1 else 0))
    _anchored_sums_nb(_column_nb(x, j, np.empty(_column_buf_len_nb(x))), window, first_bar_no,
                      0, n_rows, res, np.empty(4 * window))  # fmt: skip
    _store_column_nb(out, j, res)


@njit(cache=True, parallel=True)
def rolling_sum_columns_nb(x, window, first_bar_no):
    """`rolling_sum_nb` with the columns in parallel (`prange`), the same bits. Wide panels."""
    if window < 1:
        return np.full(x.shape, np.nan)
    # written symbol-major (each column's stores contiguous), then copied bar-major by tiles
    out = np.empty((x.shape[1], x.shape[0])).T
    for j in prange(x.shape[1]):
        _anchored_sums_column_nb(x, window, first_bar_no, out, j)
    return _bar_major_nb(out)


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
    if window < 1:
        return np.full((n_rows, n_cols), np.nan)
    out = _anchored_sums_2d_nb(x, window, first_bar_no)
    for t in range(window - 1, n_rows):
        for j in range(n_cols):
            out[t, j] /= window
    return out


@njit(cache=True)
def rolling_sum_nb(x, window, first_bar_no):
    """Return the rolling sum of `x` over `window` rows (e.g. 24h quote volume).

    Reference: `tests/reference/indicators.py::rolling_sum_ref`.

    Units: those of `x`. `first_bar_no`: absolute bar number (`ts_ns // bar_ns`) of row 0.
    Warm-up: NaN for rows `t < window - 1`; `window < 1` gives all NaN. NaN rule: any NaN
    inside the window gives NaN. Windowed and anchored, O(T): the sums of `sma_nb`
    (`_anchored_sums_nb`), start-independent bit for bit.
    """
    if window < 1:
        return np.full(x.shape, np.nan)
    return _anchored_sums_2d_nb(x, window, first_bar_no)


@njit(cache=True)
def _rolling_extreme_nb(x, window, is_max):
    # `_rolling_extreme_1d_nb` over every column of x `[T, S]`.
    n_rows, n_cols = x.shape
    out = np.empty((n_rows, n_cols))
    if window < 1:
        out[:] = np.nan
        return out
    suffix = np.empty(window)
    col_buf = np.empty(n_rows if n_cols > 1 else 0)
    res_buf = np.empty(n_rows if n_cols > 1 else 0)
    for j in range(n_cols):
        res = _out_column_nb(out, j, res_buf)
        _rolling_extreme_1d_nb(_column_nb(x, j, col_buf), window, is_max, False, 0, n_rows, res,
                               suffix)  # fmt: skip
        _store_column_nb(out, j, res)
    return out


@njit(cache=True)
def rolling_max_nb(x, window):
    """Return the rolling maximum of `x` over `window` rows, current row included (Donchian).

    Reference: `tests/reference/indicators.py::rolling_max_ref`.

    Units: those of `x`. Warm-up: NaN for rows `t < window - 1`; `window < 1` gives all NaN.
    NaN rule: any NaN inside the window gives NaN. Among equal maxima (-0.0 and 0.0) the oldest.
    Windowed, O(T) (`_rolling_extreme_1d_nb`, van Herk / Gil-Werman blocks); exact, so
    start-independent bit for bit.
    """
    return _rolling_extreme_nb(x, window, True)


@njit(cache=True)
def rolling_min_nb(x, window):
    """Return the rolling minimum of `x` over `window` rows, current row included (Donchian).

    Reference: `tests/reference/indicators.py::rolling_min_ref`.

    Units: those of `x`. Warm-up: NaN for rows `t < window - 1`; `window < 1` gives all NaN.
    NaN rule: any NaN inside the window gives NaN. Among equal minima (-0.0 and 0.0) the oldest.
    Windowed, O(T) (`_rolling_extreme_1d_nb`, van Herk / Gil-Werman blocks); exact, so
    start-independent bit for bit.
    """
    return _rolling_extreme_nb(x, window, False)


@njit(cache=True)
def log_returns_nb(close, lag):
    """Return `log(close[t] / close[t - lag])`.

    Reference: `tests/reference/indicators.py::log_returns_ref`.

    Units: natural-log return per `lag` bars. Warm-up: NaN for rows `t < lag`. NaN rule: NaN
    unless both closes are > 0 (NaN, zero and negative prices give NaN); +inf follows IEEE.
    Windowed over `lag + 1` rows, O(T).
    """
    n_rows, n_cols = close.shape
    out = np.empty((n_rows, n_cols))
    lag = max(lag, 0)
    # element-wise: row by row, in the panel's memory order
    for t in range(min(lag, n_rows)):
        for j in range(n_cols):
            out[t, j] = np.nan
    for t in range(lag, n_rows):
        for j in range(n_cols):
            a = close[t, j]
            b = close[t - lag, j]
            out[t, j] = np.log(a / b) if a > 0.0 and b > 0.0 else np.nan
    return out


@njit(cache=True)
def realized_vol_nb(close, window, first_bar_no):
    """Return the per-bar realized volatility: sample std (ddof=1) of one-bar log returns.

    Reference: `tests/reference/indicators.py::realized_vol_ref` (same arithmetic, so equal bit
    for bit); the error bound below is tested against an exact (rational) std and the two-pass
    one (`tests/signals/test_window_start_independence.py`).

    Units: log return per bar, not annualised. Uses the `window` one-bar log returns ending at
    `t`, i.e. `window + 1` closes. `first_bar_no`: absolute bar number of row 0. Warm-up: NaN
    for rows `t < window`; `window < 2` gives all NaN (ddof=1 undefined). NaN rule: any NaN,
    zero or negative close inside the `window + 1` closes gives NaN.
    Windowed and anchored, O(T): `sqrt(M2 / (n - 1))`, n = `window`, with M2 from the anchored
    shifted sums of `_anchored_moments_nb` (shift = the window's value at its block start), so
    a later-starting array with its own `first_bar_no` gives the same bits.
    Error bound (barring overflow and underflow): relative error of the std at most
    `2 * (n + 2)**2 * u` against the exact std of the returns, u = 2**-53 (1.7e-13 at n = 24):
    the shifted sums hold `sum((r - c)^2) <= (n + 1) * M2`, so both sums' rounding (each
    <= ~n u of that) costs at most ~(3n + 4)(n + 1) u of M2, whatever the offset of the data.
    """
    n_rows, n_cols = close.shape
    out = np.empty((n_rows, n_cols))
    for j in range(n_cols):
        _realized_vol_column_nb(close, window, first_bar_no, out, j)
    return out


@njit(cache=True, parallel=True)
def realized_vol_columns_nb(close, window, first_bar_no):
    """`realized_vol_nb` with the symbols (columns) in parallel (`prange`): the same bits
    (each column is `_realized_vol_column_nb`, whatever thread runs it). For wide panels."""
    n_rows, n_cols = close.shape
    # written symbol-major (each column's stores contiguous), then copied bar-major by tiles
    out = np.empty((n_cols, n_rows)).T
    for j in prange(n_cols):
        _realized_vol_column_nb(close, window, first_bar_no, out, j)
    return _bar_major_nb(out)


@njit(cache=True)
def _realized_vol_column_nb(close, window, first_bar_no, out, j):
    # column j of `realized_vol_nb` into out[:, j], with its own scratch
    n_rows, n_cols = close.shape
    if window < 2:
        for t in range(n_rows):
            out[t, j] = np.nan
        return
    chunk = _chunk_rows_nb(window)
    r = np.empty(chunk + window)
    s1 = np.empty(chunk)
    tail = np.empty(2 * window)
    c = _column_nb(close, j, np.empty(_column_buf_len_nb(close)))
    res = _out_column_nb(out, j, np.empty(n_rows if n_cols > 1 else 0))
    for lo in range(0, n_rows, chunk):
        hi = min(n_rows, lo + chunk)
        _realized_vol_1d_nb(c, window, first_bar_no, lo, hi, res[lo:hi], r, s1, tail)
    _store_column_nb(out, j, res)


@njit(cache=True)
def zscore_nb(x, window, first_bar_no):
    """Return `(x[t] - mean) / std` over the `window` rows ending at (and including) `t`.

    Reference: `tests/reference/indicators.py::zscore_ref` (same arithmetic, bit for bit).

    Units: standard deviations (std with ddof=1). `first_bar_no`: absolute bar number of row
    0. Warm-up: NaN for rows `t < window - 1`; `window < 2` gives all NaN. NaN rule: any NaN in
    the window gives NaN; std == 0 gives NaN (all values in the window equal give exactly 0,
    since the shift is one of them, so rounding in the mean cannot fake a spread).
    Windowed and anchored, O(T): with the shifted sums S1, M2 of `_anchored_moments_nb` (shift
    c = the window's value at its block start), `z = ((x[t] - c) - S1 / n) / sqrt(M2 / (n - 1))`,
    n = `window`; start-independent bit for bit.
    Error bound (barring overflow and underflow): absolute error at most `3 * (n + 2)**2.5 * u`
    against the exact z-score, u = 2**-53 (|z| < sqrt(n); 1.6e-11 at n = 72): the std's bound
    of `realized_vol_nb` times |z|, plus the numerator's rounding, <= ~(n + 3)^1.5 u stds.
    """
    n_rows, n_cols = x.shape
    out = np.empty((n_rows, n_cols))
    if window < 2:
        out[:] = np.nan
        return out
    chunk = _chunk_rows_nb(window)
    s1 = np.empty(chunk)
    tail = np.empty(2 * window)
    col_buf = np.empty(n_rows if n_cols > 1 else 0)
    res_buf = np.empty(n_rows if n_cols > 1 else 0)
    for j in range(n_cols):
        col = _column_nb(x, j, col_buf)
        res = _out_column_nb(out, j, res_buf)
        for lo in range(0, n_rows, chunk):
            hi = min(n_rows, lo + chunk)
            _zscore_1d_nb(col, window, first_bar_no, lo, hi, res[lo:hi], s1, tail)
        _store_column_nb(out, j, res)
    return out


@njit(cache=True)
def volume_ratio_nb(volume, window, first_bar_no):
    """Return `volume[t] / mean(volume[t - window .. t - 1])` (the current bar excluded).

    Reference: `tests/reference/indicators.py::volume_ratio_ref`.

    Units: dimensionless ratio. `first_bar_no`: absolute bar number of row 0. Warm-up: NaN for
    rows `t < window`; `window < 1` gives all NaN. NaN rule: any NaN in the `window + 1` rows
    gives NaN; a mean of 0 gives NaN. Windowed over `window + 1` rows and anchored, O(T): the
    mean is the anchored sum (`_anchored_sums_nb`) ending at `t - 1` divided by `window`.
    """
    n_rows, n_cols = volume.shape
    out = np.empty((n_rows, n_cols))
    if window < 1:
        out[:] = np.nan
        return out
    chunk = _chunk_rows_nb(window)
    sums = np.empty(chunk)
    suffix = np.empty(4 * window)
    col_buf = np.empty(n_rows if n_cols > 1 else 0)
    res_buf = np.empty(n_rows if n_cols > 1 else 0)
    for j in range(n_cols):
        col = _column_nb(volume, j, col_buf)
        res = _out_column_nb(out, j, res_buf)
        for lo in range(0, n_rows, chunk):
            hi = min(n_rows, lo + chunk)
            _volume_ratio_1d_nb(col, window, first_bar_no, lo, hi, res[lo:hi], sums, suffix)
        _store_column_nb(out, j, res)
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
    # the last finite value's row per column; rows outer, in the `[T, S]` panel's memory order
    last = np.full(n_cols, -1, dtype=np.int64)
    for t in range(n_rows):
        for j in range(n_cols):
            if np.isfinite(x[t, j]):
                last[j] = t
                out[t, j] = 0
            elif last[j] < 0:
                out[t, j] = BARS_SINCE_NEVER
            else:
                out[t, j] = t - last[j]
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
