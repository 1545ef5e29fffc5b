"""Eligibility kernels. Windowed only, so the live bridge's rolling window reproduces them."""

import numpy as np
from numba import njit

from signals.enums import Reason

TIER_CORE = 0
TIER_ROTATIONAL = 1
TIER_EXCLUDED = 2
TIER_UNLISTED = 3


@njit(cache=True)
def ban_active_nb(red_flag, ban_bars):
    """Return uint8[T, S]: 1 where a red flag fired within the last `ban_bars` bars (incl. t).

    Reference: tests/reference/universe.py::ban_active_ref. Bans expire by themselves after
    `ban_bars` bars; windowed (row t depends on rows t - ban_bars + 1 .. t only, whatever row
    the array starts at), O(T).
    """
    n_bars, n_symbols = red_flag.shape
    out = np.zeros((n_bars, n_symbols), dtype=np.uint8)
    # the last flag's row per symbol; rows outer, in the `[T, S]` panel's memory order. O(T)
    last = np.full(n_symbols, -1, dtype=np.int64)
    for t in range(n_bars):
        for s in range(n_symbols):
            if red_flag[t, s]:
                last[s] = t
            if last[s] >= 0 and t - last[s] < ban_bars:
                out[t, s] = 1
    return out


@njit(cache=True)
def red_flag_nb(close, bad_tick, max_move):
    """Return uint8[T, S]: 1 where |close / previous close - 1| > `max_move` on a real bar.

    Reference: tests/reference/universe.py::red_flag_ref. A bar the bad-tick guard masked is
    not a red flag (it is noise, handled by the guard), and neither is the bar after one (the
    move back from a bad tick to the real price is not a real move); NaN closes never flag.
    """
    n_bars, n_symbols = close.shape
    out = np.zeros((n_bars, n_symbols), dtype=np.uint8)
    for t in range(1, n_bars):
        for s in range(n_symbols):
            prev = close[t - 1, s]
            cur = close[t, s]
            real = not bad_tick[t, s] and not bad_tick[t - 1, s]
            if (
                real
                and np.isfinite(prev)
                and np.isfinite(cur)
                and prev > 0.0
                and abs(cur / prev - 1.0) > max_move
            ):
                out[t, s] = 1
    return out


@njit(cache=True)
def universe_block_nb(
    quote_volume,
    spread_bps,
    tier,
    min_quote_volume,
    max_spread_bps,
    max_size,
    banned,
    bad_tick,
    stale_bars,
    max_stale_bars,
):
    """Return int64[T, S] `Reason` codes; 0 = eligible for new entries on that bar.

    Reference: tests/reference/universe.py::universe_block_ref.
    Inputs: rolling quote volume (USD, NaN in warm-up), `spread_bps[S]`, `tier[S]` (core,
    rotational, excluded, unlisted), `banned`/`bad_tick` uint8 masks, `stale_bars` (bars since
    the last real bar). Core symbols skip the volume floor and the size limit; the remaining
    slots go to the most liquid rotational symbols (ties by column order).
    """
    n_bars, n_symbols = quote_volume.shape
    out = np.zeros((n_bars, n_symbols), dtype=np.int64)
    candidates = np.empty(n_symbols, dtype=np.int64)
    for t in range(n_bars):
        n_core = 0
        n_cand = 0
        for s in range(n_symbols):
            reason = Reason.Ok
            if tier[s] == TIER_EXCLUDED or tier[s] == TIER_UNLISTED:
                reason = Reason.ExcludedTier
            elif stale_bars[t, s] > max_stale_bars:
                reason = Reason.StaleData
            elif bad_tick[t, s]:
                reason = Reason.BadTick
            elif banned[t, s]:
                reason = Reason.Banned
            elif spread_bps[s] > max_spread_bps:
                reason = Reason.WideSpread
            elif tier[s] != TIER_CORE and not (quote_volume[t, s] >= min_quote_volume):
                reason = Reason.LowVolume
            out[t, s] = reason
            if reason == Reason.Ok:
                if tier[s] == TIER_CORE:
                    n_core += 1
                else:
                    candidates[n_cand] = s
                    n_cand += 1
        slots = max_size - n_core
        if n_cand > slots:
            # keep the `slots` most liquid candidates: selection by repeated max (S is small)
            keep = np.zeros(n_symbols, dtype=np.bool_)
            for _ in range(max(slots, 0)):
                best = -1
                for i in range(n_cand):
                    s = candidates[i]
                    if keep[s]:
                        continue
                    if best < 0 or quote_volume[t, s] > quote_volume[t, best]:
                        best = s
                keep[best] = True
            for i in range(n_cand):
                s = candidates[i]
                if not keep[s]:
                    out[t, s] = Reason.UniverseSize
    return out
