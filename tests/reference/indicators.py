"""Dumb pure-Python references for the kernels in `signals/indicators`, `triggers`, `regime`
and `signals/_math.py`.

Each windowed reference slices the window out of a Python list and recomputes it from scratch
for every row (O(T x window)); recursive ones walk the valid values in order. Sums run in the
kernels' documented order (`_anchored_sum`, `_anchored_moments`, `_sequential_sum`), so results
agree bit for bit in practice; tests still state a tolerance. `two_pass_std` is the textbook
two-pass std the shifted anchored sums are held to within their stated error bound.
"""

import math
from fractions import Fraction

import numpy as np

from signals.enums import Regime

NEVER = 2**62  # mirrors signals.indicators.nb.BARS_SINCE_NEVER


# --- helpers ---


def _columns(x: np.ndarray) -> list[list[float]]:
    return [[float(v) for v in x[:, j]] for j in range(x.shape[1])]


def _isnan(v: float) -> bool:
    return v != v


def _sequential_sum(values: list[float]) -> float:
    # The recursive kernels' seed: one accumulator, oldest first.
    acc = 0.0
    for v in values:
        acc += v
    return acc


def _log_ratio(a: float, b: float) -> float:
    if not (a > 0.0 and b > 0.0):
        return math.nan
    q = a / b
    if _isnan(q):
        return math.nan
    return -math.inf if q == 0.0 else math.log(q)


def two_pass_std(values: list[float]) -> float:
    """Sample std (ddof=1) by the textbook two passes (mean, then squared deviations); NaN
    for fewer than 2 values or any NaN."""
    n = len(values)
    if n < 2 or any(_isnan(v) for v in values):
        return math.nan
    mean = _sequential_sum(values) / n
    ss = 0.0
    for v in values:
        ss += (v - mean) * (v - mean)
    var = ss / (n - 1)
    return math.nan if _isnan(var) else math.sqrt(var)


def _per_window(x: np.ndarray, window: int, func) -> np.ndarray:
    # out[t, j] = func(x[t - window + 1 .. t, j]) for t >= window - 1, else NaN.
    out = np.full(x.shape, np.nan)
    for j, col in enumerate(_columns(x)):
        for t in range(window - 1, len(col)):
            out[t, j] = func(col[t - window + 1 : t + 1])
    return out


# --- windowed indicators ---


def _anchored_sum(values: list[float], first: int) -> float:
    # The anchored kernels' order (`signals/indicators/nb.py::_anchored_sums_nb`): the window
    # `values` (oldest first; its first row has absolute bar number `first`) splits where a
    # bar number is a multiple of the window length; the part before the split is summed
    # newest first, the part from it oldest first, then (before + from).
    window = len(values)
    split = (-first) % window
    head = 0.0
    for v in values[split:]:
        head += v
    if split == 0:
        return head
    tail = 0.0
    for v in reversed(values[:split]):
        tail += v
    return tail + head


def _anchored_moments(values: list[float], first: int) -> tuple[float, float, float]:
    # The shifted anchored sums of `signals/indicators/nb.py::_anchored_moments_nb` for one
    # window `values` (oldest first, first row's bar number `first`): the shift c is the value
    # at the split (where a bar number is a multiple of the window length); S1 = sum(v - c)
    # and S2 = sum((v - c)^2) run like `_anchored_sum` (before the split newest first, from
    # it oldest first, then before + from); M2 = S2 - S1 * S1 / n, clamped at 0.
    # Returns (c, S1, M2).
    window = len(values)
    split = (-first) % window
    c = values[split]
    h1 = 0.0
    h2 = 0.0
    for v in values[split:]:
        d = v - c
        h1 += d
        h2 += d * d
    if split == 0:
        s1, s2 = h1, h2
    else:
        a1 = 0.0
        a2 = 0.0
        for v in reversed(values[:split]):
            d = v - c
            a1 += d
            a2 += d * d
        s1, s2 = a1 + h1, a2 + h2
    m2 = s2 - s1 * s1 / window
    return c, s1, (0.0 if m2 < 0.0 else m2)


def _anchored_std(values: list[float], first: int) -> float:
    # sqrt(M2 / (n - 1)) of `_anchored_moments`, the kernels' sample std (ddof=1)
    _, _, m2 = _anchored_moments(values, first)
    return math.sqrt(m2 / (len(values) - 1)) if not _isnan(m2) else math.nan


def sma_ref(x: np.ndarray, window: int, first_bar_no: int) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    if window < 1:
        return out
    for j, col in enumerate(_columns(x)):
        for t in range(window - 1, len(col)):
            w = col[t - window + 1 : t + 1]
            out[t, j] = _anchored_sum(w, first_bar_no + t - window + 1) / window
    return out


def rolling_sum_ref(x: np.ndarray, window: int, first_bar_no: int) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    if window < 1:
        return out
    for j, col in enumerate(_columns(x)):
        for t in range(window - 1, len(col)):
            out[t, j] = _anchored_sum(col[t - window + 1 : t + 1], first_bar_no + t - window + 1)
    return out


def rolling_max_ref(x: np.ndarray, window: int) -> np.ndarray:
    return _per_window(x, window, lambda w: math.nan if any(_isnan(v) for v in w) else max(w))


def rolling_min_ref(x: np.ndarray, window: int) -> np.ndarray:
    return _per_window(x, window, lambda w: math.nan if any(_isnan(v) for v in w) else min(w))


def log_returns_ref(close: np.ndarray, lag: int) -> np.ndarray:
    return _per_window(close, lag + 1, lambda w: _log_ratio(w[-1], w[0]))


def realized_vol_ref(close: np.ndarray, window: int, first_bar_no: int) -> np.ndarray:
    out = np.full(close.shape, np.nan)
    if window < 2:
        return out
    for j, col in enumerate(_columns(close)):
        for t in range(window, len(col)):
            returns = [_log_ratio(col[i], col[i - 1]) for i in range(t - window + 1, t + 1)]
            out[t, j] = _anchored_std(returns, first_bar_no + t - window + 1)
    return out


def zscore_ref(x: np.ndarray, window: int, first_bar_no: int) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    if window < 2:
        return out
    for j, col in enumerate(_columns(x)):
        for t in range(window - 1, len(col)):
            w = col[t - window + 1 : t + 1]
            c, s1, m2 = _anchored_moments(w, first_bar_no + t - window + 1)
            sd = math.sqrt(m2 / (window - 1)) if not _isnan(m2) else math.nan
            if not (_isnan(sd) or sd == 0.0):
                out[t, j] = ((w[-1] - c) - s1 / window) / sd
    return out


def volume_ratio_ref(volume: np.ndarray, window: int, first_bar_no: int) -> np.ndarray:
    out = np.full(volume.shape, np.nan)
    if window < 1:
        return out
    for j, col in enumerate(_columns(volume)):
        for t in range(window, len(col)):
            mean = _anchored_sum(col[t - window : t], first_bar_no + t - window) / window
            if not (_isnan(mean) or mean == 0.0):
                out[t, j] = col[t] / mean
    return out


def bars_since_valid_ref(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape, dtype=np.int64)
    for j, col in enumerate(_columns(x)):
        for t in range(len(col)):
            finite_rows = [i for i in range(t + 1) if math.isfinite(col[i])]
            out[t, j] = t - finite_rows[-1] if finite_rows else NEVER
    return out


# --- recursive indicators ---


def ema_ref(x: np.ndarray, span: int) -> np.ndarray:
    alpha = 2.0 / (span + 1.0)
    out = np.full(x.shape, np.nan)
    for j, col in enumerate(_columns(x)):
        valid = [(t, v) for t, v in enumerate(col) if not _isnan(v)]
        if len(valid) < span:
            continue
        state = _sequential_sum([v for _, v in valid[:span]]) / span
        out[valid[span - 1][0], j] = state
        for t, v in valid[span:]:
            state = alpha * v + (1.0 - alpha) * state
            out[t, j] = state
    return out


def atr_ref(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    out = np.full(close.shape, np.nan)
    for j in range(close.shape[1]):
        bars = [
            (t, float(high[t, j]), float(low[t, j]), float(close[t, j]))
            for t in range(close.shape[0])
            if not (_isnan(high[t, j]) or _isnan(low[t, j]) or _isnan(close[t, j]))
        ]
        trs = []
        for k, (t, h, lo, _) in enumerate(bars):
            tr = h - lo
            if k > 0:
                pc = bars[k - 1][3]
                for cand in (abs(h - pc), abs(lo - pc)):
                    if cand > tr:
                        tr = cand
            trs.append((t, tr))
        if len(trs) < window:
            continue
        state = _sequential_sum([tr for _, tr in trs[:window]]) / window
        out[trs[window - 1][0], j] = state
        for t, tr in trs[window:]:
            state = (state * (window - 1) + tr) / window
            out[t, j] = state
    return out


def _rsi_value(avg_gain: float, avg_loss: float) -> float:
    if avg_loss == 0.0:
        if avg_gain > 0.0:
            return 100.0
        return 50.0 if avg_gain == 0.0 else math.nan
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


def rsi_ref(close: np.ndarray, window: int) -> np.ndarray:
    out = np.full(close.shape, np.nan)
    for j, col in enumerate(_columns(close)):
        valid = [(t, v) for t, v in enumerate(col) if not _isnan(v)]
        changes = [(valid[k][0], valid[k][1] - valid[k - 1][1]) for k in range(1, len(valid))]
        gains = [(t, d if d > 0.0 else 0.0) for t, d in changes]
        losses = [(t, -d if d < 0.0 else 0.0) for t, d in changes]
        if len(changes) < window:
            continue
        avg_gain = _sequential_sum([g for _, g in gains[:window]]) / window
        avg_loss = _sequential_sum([lo for _, lo in losses[:window]]) / window
        out[changes[window - 1][0], j] = _rsi_value(avg_gain, avg_loss)
        for (t, g), (_, lo) in zip(gains[window:], losses[window:], strict=True):
            avg_gain = (avg_gain * (window - 1) + g) / window
            avg_loss = (avg_loss * (window - 1) + lo) / window
            out[t, j] = _rsi_value(avg_gain, avg_loss)
    return out


# --- triggers ---


def _as_flag(values: np.ndarray, pred) -> np.ndarray:
    out = np.zeros(values.shape, dtype=np.uint8)
    for idx, v in np.ndenumerate(values):
        if not _isnan(v) and pred(float(v)):
            out[idx] = 1
    return out


def bad_tick_mask_ref(
    close: np.ndarray,
    volume: np.ndarray,
    max_jump_pct: float,
    volume_confirm_ratio: float,
    volume_window: int,
    first_bar_no: int,
) -> np.ndarray:
    vol_ratio = volume_ratio_ref(volume, volume_window, first_bar_no)

    def valid(v: float) -> bool:
        return math.isfinite(v) and v > 0.0

    def jump(t: int, j: int) -> bool:
        if t < 1 or not (valid(close[t, j]) and valid(close[t - 1, j])):
            return False
        moved = abs(close[t, j] / close[t - 1, j] - 1.0) > max_jump_pct
        return bool(moved and vol_ratio[t, j] < volume_confirm_ratio)

    out = np.zeros(close.shape, dtype=np.uint8)
    for j in range(close.shape[1]):
        for t in range(close.shape[0]):
            if not jump(t, j):
                continue
            returned = (
                t >= 2
                and jump(t - 1, j)
                and (abs(close[t, j] / close[t - 2, j] - 1.0) <= max_jump_pct)
            )
            out[t, j] = 0 if returned else 1
    return out


def breakout_ref(close: np.ndarray, high: np.ndarray, lookback: int) -> np.ndarray:
    out = np.zeros(close.shape, dtype=np.uint8)
    for j in range(close.shape[1]):
        for t in range(lookback, close.shape[0]):
            past = [float(v) for v in high[t - lookback : t, j]]
            if any(_isnan(v) for v in past):
                continue
            if close[t, j] > max(past):
                out[t, j] = 1
    return out


def momentum_ref(close: np.ndarray, lookback: int, threshold: float) -> np.ndarray:
    return _as_flag(log_returns_ref(close, lookback), lambda v: v > threshold)


def volume_spike_ref(
    volume: np.ndarray, lookback: int, ratio: float, first_bar_no: int
) -> np.ndarray:
    return _as_flag(volume_ratio_ref(volume, lookback, first_bar_no), lambda v: v >= ratio)


def mean_reversion_ref(
    close: np.ndarray, lookback: int, z_entry: float, first_bar_no: int
) -> np.ndarray:
    return _as_flag(zscore_ref(close, lookback, first_bar_no), lambda v: v <= -z_entry)


def mean_reversion_exit_ref(
    close: np.ndarray, lookback: int, z_exit: float, first_bar_no: int
) -> np.ndarray:
    return _as_flag(zscore_ref(close, lookback, first_bar_no), lambda v: v >= z_exit)


def cross_sign_ref(f_prev: float, s_prev: float, f_now: float, s_now: float) -> int:
    """The crossing rule of one bar: +1 fast up through slow, -1 down through, 0 otherwise or
    with any NaN among the four averages."""
    if any(_isnan(v) for v in (f_prev, s_prev, f_now, s_now)):
        return 0
    if f_now > s_now and f_prev <= s_prev:
        return 1
    if f_now < s_now and f_prev >= s_prev:
        return -1
    return 0


def ma_cross_ref(close: np.ndarray, fast: int, slow: int, first_bar_no: int) -> np.ndarray:
    f = sma_ref(close, fast, first_bar_no)
    s = sma_ref(close, slow, first_bar_no)
    out = np.zeros(close.shape, dtype=np.int8)
    for j in range(close.shape[1]):
        for t in range(1, close.shape[0]):
            out[t, j] = cross_sign_ref(f[t - 1, j], s[t - 1, j], f[t, j], s[t, j])
    return out


# --- regime ---


def regime_ref(
    ref_close: np.ndarray,
    fast: int,
    slow: int,
    vol_window: int,
    vol_baseline_window: int,
    crash_lookback: int,
    crash_drop_pct: float,
    crash_vol_mult: float,
    first_bar_no: int,
) -> np.ndarray:
    close = ref_close.reshape(-1, 1)
    n = close.shape[0]
    warmup = max(fast, slow, vol_window + vol_baseline_window, crash_lookback) + 1
    sma_f = sma_ref(close, fast, first_bar_no)[:, 0]
    sma_s = sma_ref(close, slow, first_bar_no)[:, 0]
    vol = realized_vol_ref(close, vol_window, first_bar_no)
    base = sma_ref(vol, vol_baseline_window, first_bar_no)[:, 0]
    crash = log_returns_ref(close, crash_lookback)[:, 0]
    level = math.log(1.0 - crash_drop_pct)
    out = np.full(n, Regime.Unknown, dtype=np.int64)
    for t in range(warmup - 1, n):
        c, f, s, v, b, r = close[t, 0], sma_f[t], sma_s[t], vol[t, 0], base[t], crash[t]
        if any(_isnan(z) for z in (c, f, s, v, b, r)):
            continue
        if r <= level or (v > crash_vol_mult * b and c < s):
            out[t] = Regime.Crash
        elif c > s and f > s:
            out[t] = Regime.Bull
        elif c < s and f < s:
            out[t] = Regime.Bear
        else:
            out[t] = Regime.Chop
    return out


# --- signals/_math.py ---


def is_close_ref(a: float, b: float, rel: float, abs_: float) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def _increment(x: float, inc: float, rounder) -> float:
    # Exact rational arithmetic: n = rounder(q +/- min(1e-9 |q|, 0.01)) with q = x / inc exactly, then the
    # multiple of the decimal increment (repr(inc)), rounded once to a double.
    if inc <= 0.0:
        return x
    if math.isnan(x) or math.isnan(inc):
        return math.nan
    if math.isinf(x):
        return x
    q = Fraction(x) / Fraction(inc)
    n = rounder(q)
    return float(n * Fraction(repr(inc)))


def _eps(q: Fraction) -> Fraction:
    return min(Fraction(1, 10**9) * abs(q), Fraction(1, 100))


def floor_to_increment_ref(x: float, inc: float) -> float:
    return _increment(x, inc, lambda q: math.floor(q + _eps(q)))


def ceil_to_increment_ref(x: float, inc: float) -> float:
    return _increment(x, inc, lambda q: math.ceil(q - _eps(q)))
