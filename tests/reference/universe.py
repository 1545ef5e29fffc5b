"""Dumb pure-Python references of the universe kernels (signals/universe/nb.py)."""

from __future__ import annotations

import math

import numpy as np

from signals.enums import Reason
from signals.universe.nb import TIER_CORE, TIER_EXCLUDED, TIER_UNLISTED


def ban_active_ref(red_flag: np.ndarray, ban_bars: int) -> np.ndarray:
    """Return 1 where any red flag fired in rows `t - ban_bars + 1 .. t` (window from scratch)."""
    n_bars, n_symbols = red_flag.shape
    out = np.zeros((n_bars, n_symbols), dtype=np.uint8)
    for t in range(n_bars):
        for s in range(n_symbols):
            window = red_flag[max(0, t - ban_bars + 1) : t + 1, s] if ban_bars > 0 else []
            out[t, s] = 1 if any(window) else 0
    return out


def red_flag_ref(close: np.ndarray, bad_tick: np.ndarray, max_move: float) -> np.ndarray:
    """Return 1 where a real bar (it and the previous not bad ticks) moved more than `max_move`."""
    n_bars, n_symbols = close.shape
    out = np.zeros((n_bars, n_symbols), dtype=np.uint8)
    for t in range(1, n_bars):
        for s in range(n_symbols):
            prev, cur = float(close[t - 1, s]), float(close[t, s])
            if bad_tick[t, s] or bad_tick[t - 1, s]:
                continue
            if not (math.isfinite(prev) and math.isfinite(cur) and prev > 0.0):
                continue
            if abs(cur / prev - 1.0) > max_move:
                out[t, s] = 1
    return out


def universe_block_ref(
    quote_volume, spread_bps, tier, min_quote_volume, max_spread_bps, max_size, banned, bad_tick,
    stale_bars, max_stale_bars,
):  # fmt: skip
    """Return the `Reason` code per bar and symbol: first failing rule, then the size limit."""
    n_bars, n_symbols = quote_volume.shape
    out = np.zeros((n_bars, n_symbols), dtype=np.int64)
    for t in range(n_bars):
        for s in range(n_symbols):
            qv = quote_volume[t, s]
            if tier[s] in (TIER_EXCLUDED, TIER_UNLISTED):
                out[t, s] = Reason.ExcludedTier
            elif stale_bars[t, s] > max_stale_bars:
                out[t, s] = Reason.StaleData
            elif bad_tick[t, s]:
                out[t, s] = Reason.BadTick
            elif banned[t, s]:
                out[t, s] = Reason.Banned
            elif spread_bps[s] > max_spread_bps:
                out[t, s] = Reason.WideSpread
            elif tier[s] != TIER_CORE and not qv >= min_quote_volume:
                out[t, s] = Reason.LowVolume
        eligible = [s for s in range(n_symbols) if out[t, s] == Reason.Ok]
        core = [s for s in eligible if tier[s] == TIER_CORE]
        rotational = [s for s in eligible if tier[s] != TIER_CORE]
        slots = max(max_size - len(core), 0)
        # most liquid first, ties by column order (sorted is stable)
        ranked = sorted(rotational, key=lambda s: -quote_volume[t, s])
        for s in ranked[slots:]:
            out[t, s] = Reason.UniverseSize
    return out
