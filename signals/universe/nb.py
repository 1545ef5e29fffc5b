"""Eligibility kernels. Windowed only, so the live bridge's rolling window reproduces them."""

import numpy as np
from numba import njit

from signals.enums import Reason
from signals.indicators.nb import BARS_SINCE_NEVER

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


@njit(cache=True, inline="always")
def is_red_flag_nb(prev, cur, prev_bad, cur_bad, max_move):
    """True when the move from close `prev` to `cur` (USD) is a red flag: over `max_move` (a
    fraction) on two real bars (neither masked by the bad-tick guard), both closes finite and
    the previous one > 0."""
    return (
        not cur_bad
        and not prev_bad
        and np.isfinite(prev)
        and np.isfinite(cur)
        and prev > 0.0
        and abs(cur / prev - 1.0) > max_move
    )


@njit(cache=True)
def red_flag_nb(close, bad_tick, max_move):
    """Return uint8[T, S]: 1 where |close / previous close - 1| > `max_move` on a real bar.

    Reference: tests/reference/universe.py::red_flag_ref. A bar the bad-tick guard masked is
    not a red flag (it is noise, handled by the guard), and neither is the bar after one (the
    move back from a bad tick to the real price is not a real move); NaN closes never flag.
    The rule is `is_red_flag_nb`.
    """
    n_bars, n_symbols = close.shape
    out = np.zeros((n_bars, n_symbols), dtype=np.uint8)
    for t in range(1, n_bars):
        for s in range(n_symbols):
            if is_red_flag_nb(close[t - 1, s], close[t, s], bad_tick[t - 1, s], bad_tick[t, s],
                              max_move):  # fmt: skip
                out[t, s] = 1
    return out


@njit(cache=True, inline="always")
def block_reason_nb(tier, stale_bars, max_stale_bars, bad_tick, banned, spread_bps,
                    max_spread_bps, quote_volume, min_quote_volume):  # fmt: skip
    """Return the `Reason` code that blocks new entries on one symbol at one bar (0 = none),
    before the universe's size limit: the first of excluded or unlisted tier, stale data, bad
    tick, ban, wide spread, and (not for core symbols) a quote volume below the floor (NaN
    included)."""
    if tier in (TIER_EXCLUDED, TIER_UNLISTED):
        return Reason.ExcludedTier
    if stale_bars > max_stale_bars:
        return Reason.StaleData
    if bad_tick:
        return Reason.BadTick
    if banned:
        return Reason.Banned
    if spread_bps > max_spread_bps:
        return Reason.WideSpread
    if tier != TIER_CORE and not (quote_volume >= min_quote_volume):
        return Reason.LowVolume
    return Reason.Ok


@njit(cache=True)
def _limit_universe_row_nb(out_row, volume_row, tier, max_size, candidates, top_s, top_v):
    # Apply the universe's size limit to one bar's `Reason` codes `out_row` (as written by
    # `block_reason_nb`): core symbols that are Ok stay in; of the Ok rotational candidates
    # (finite-or-inf volumes in `volume_row`) only the `max_size - cores` most liquid stay,
    # ties to the lower column, the rest get `UniverseSize`. A sorted top list (`top_s`/`top_v`;
    # scratch of >= S each, as `candidates`), O(S) while few candidates enter it.
    n_core = 0
    n_cand = 0
    for s in range(out_row.shape[0]):
        if out_row[s] == Reason.Ok:
            if tier[s] == TIER_CORE:
                n_core += 1
            else:
                candidates[n_cand] = s
                n_cand += 1
    slots = max_size - n_core
    if n_cand <= slots:
        return
    n_top = 0
    if slots > 0:
        for i in range(n_cand):
            s = candidates[i]
            v = volume_row[s]
            if n_top == slots and not (v > top_v[n_top - 1]):
                continue
            # insert after every kept volume >= v (those have lower columns on a tie)
            pos = n_top if n_top < slots else slots - 1
            while pos > 0 and v > top_v[pos - 1]:
                top_v[pos] = top_v[pos - 1]
                top_s[pos] = top_s[pos - 1]
                pos -= 1
            top_v[pos] = v
            top_s[pos] = s
            if n_top < slots:
                n_top += 1
    for i in range(n_cand):
        out_row[candidates[i]] = Reason.UniverseSize
    for i in range(n_top):
        out_row[top_s[i]] = Reason.Ok


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
    slots go to the most liquid rotational symbols (ties by column order). The rules are
    `block_reason_nb` and `_limit_universe_row_nb`.
    """
    n_bars, n_symbols = quote_volume.shape
    out = np.zeros((n_bars, n_symbols), dtype=np.int64)
    candidates = np.empty(n_symbols, dtype=np.int64)
    top_s = np.empty(n_symbols, dtype=np.int64)
    top_v = np.empty(n_symbols)
    for t in range(n_bars):
        for s in range(n_symbols):
            out[t, s] = block_reason_nb(
                tier[s], stale_bars[t, s], max_stale_bars, bad_tick[t, s], banned[t, s],
                spread_bps[s], max_spread_bps, quote_volume[t, s], min_quote_volume,
            )  # fmt: skip
        _limit_universe_row_nb(out[t], quote_volume[t], tier, max_size, candidates, top_s,
                               top_v)  # fmt: skip
    return out


@njit(cache=True)
def universe_guards_nb(close, bad_tick, quote_volume, spread_bps, tier, max_move, ban_bars,
                       min_quote_volume, max_spread_bps, max_size, max_stale_bars):  # fmt: skip
    """Return int64[T, S] `Reason` codes from the raw guards in one pass over the bars: equal to
    `universe_block_nb(quote_volume, spread_bps, tier, min_quote_volume, max_spread_bps,
    max_size, ban_active_nb(red_flag_nb(close, bad_tick, max_move), ban_bars), bad_tick,
    bars_since_valid_nb(close), max_stale_bars)`, without the three `[T, S]` arrays between.

    Inputs as those kernels' (`close` float64 `[T, S]` in USD, `bad_tick` uint8 `[T, S]`,
    `max_move` a fraction, `ban_bars` bars). Rows outer, in the `[T, S]` panel's memory order;
    the rules are the kernels' own (`is_red_flag_nb`, `block_reason_nb`,
    `_limit_universe_row_nb`), with the per-symbol rows of the last red flag and the last
    finite close carried along as `ban_active_nb` and `bars_since_valid_nb` carry them.
    """
    n_bars, n_symbols = close.shape
    out = np.empty((n_bars, n_symbols), dtype=np.int64)
    candidates = np.empty(n_symbols, dtype=np.int64)
    top_s = np.empty(n_symbols, dtype=np.int64)
    top_v = np.empty(n_symbols)
    last_flag = np.full(n_symbols, -1, dtype=np.int64)
    last_valid = np.full(n_symbols, -1, dtype=np.int64)
    for t in range(n_bars):
        for s in range(n_symbols):
            price = close[t, s]
            if np.isfinite(price):
                last_valid[s] = t
                stale = 0
            elif last_valid[s] < 0:
                stale = BARS_SINCE_NEVER
            else:
                stale = t - last_valid[s]
            # a red flag only bans: with no ban, none is looked for
            if ban_bars > 0 and t > 0 and is_red_flag_nb(close[t - 1, s], price,
                                                         bad_tick[t - 1, s], bad_tick[t, s],
                                                         max_move):  # fmt: skip
                last_flag[s] = t
            banned = last_flag[s] >= 0 and t - last_flag[s] < ban_bars
            out[t, s] = block_reason_nb(
                tier[s], stale, max_stale_bars, bad_tick[t, s], banned, spread_bps[s],
                max_spread_bps, quote_volume[t, s], min_quote_volume,
            )  # fmt: skip
        _limit_universe_row_nb(out[t], quote_volume[t], tier, max_size, candidates, top_s,
                               top_v)  # fmt: skip
    return out
