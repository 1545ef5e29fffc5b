"""Kernels that turn trigger masks into proposals."""

import numpy as np
from numba import njit

from signals.enums import Regime
from signals.triggers.nb import (
    channel_break_columns_nb,
    channel_break_nb,
    ma_cross_into_columns_nb,
    ma_cross_into_nb,
)


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
    the window, gives 0. Windowed, O(T) (`signals.triggers.nb.channel_break_nb`), exact, so
    start-independent.
    """
    return channel_break_nb(close, low, lookback, False, True)


@njit(cache=True)
def below_channel_columns_nb(close, low, lookback):
    """`below_channel_nb` with the symbols in parallel (`channel_break_columns_nb`)."""
    return channel_break_columns_nb(close, low, lookback, False, True)


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


@njit(cache=True)
def ma_cross_weights_columns_nb(close, fast, slow, first_bar_no, target_weight, out):
    """`ma_cross_weights_nb` with the symbols in parallel (`ma_cross_into_columns_nb`)."""
    return ma_cross_into_columns_nb(
        close, fast, slow, first_bar_no, out, target_weight, 0.0, np.nan
    )


@njit(cache=True, inline="always")
def takes_nb(x, best, chosen):
    """True when a strategy's weight `x` replaces the combination so far at one bar and symbol.

    The combine rule: the highest positive weight wins (`x` above `best`, the highest taken so
    far, -inf for none); an exit (`x == 0`) is taken only where no strategy was chosen
    (`chosen < 0`); a negative or NaN weight is no opinion.
    """
    return (x > best and x > 0.0) or (x == 0.0 and chosen < 0)


@njit(cache=True)
def combine_first_nb(weight_k, stop_k, take_k, weight, stop_pct, take_pct, chosen):
    """Write the combination of the first strategy alone (index 0) into every cell of
    `weight`, `stop_pct`, `take_pct` (float64 `[T, S]`) and `chosen` (int64 `[T, S]`): what
    `combine_into_nb` leaves after folding strategy 0 into empty arrays (NaN, -1), so the
    arrays need no filling first. Inputs as `combine_into_nb`'s.
    Reference: `tests/reference/strategies.py::combine_ref` (numpy).
    """
    n_bars, n_symbols = weight_k.shape
    stop_rows = stop_k.shape[0] > 1
    take_rows = take_k.shape[0] > 1
    for t in range(n_bars):
        t_stop = t if stop_rows else 0
        t_take = t if take_rows else 0
        for s in range(n_symbols):
            x = weight_k[t, s]
            if takes_nb(x, -np.inf, -1):
                weight[t, s] = x
                stop_pct[t, s] = stop_k[t_stop, s]
                take_pct[t, s] = take_k[t_take, s]
                chosen[t, s] = 0
            else:
                weight[t, s] = np.nan
                stop_pct[t, s] = np.nan
                take_pct[t, s] = np.nan
                chosen[t, s] = -1


@njit(cache=True)
def combine_into_nb(weight_k, stop_k, take_k, k, weight, stop_pct, take_pct, chosen, best):
    """Fold strategy `k`'s proposals into the running combination of the strategies before it.

    The one combine rule (the backtest, the live bridge and every sweep path call it, in
    strategy name order): the highest positive weight wins; an exit (0) is taken only where no
    strategy wants to hold; a negative or NaN weight is no opinion. `weight_k` float64
    `[T, S]`; `stop_k`/`take_k` float64 `[T, S]` or one `[1, S]` row for every bar. Updates in
    place `weight`, `stop_pct`, `take_pct` (float64 `[T, S]`, start NaN), `chosen` (int64
    `[T, S]`, start -1) and `best` (float64 `[T, S]`, start -inf).
    Reference: `tests/reference/strategies.py::combine_ref` (numpy).
    """
    n_bars, n_symbols = weight_k.shape
    stop_rows = stop_k.shape[0] > 1
    take_rows = take_k.shape[0] > 1
    for t in range(n_bars):
        t_stop = t if stop_rows else 0
        t_take = t if take_rows else 0
        for s in range(n_symbols):
            x = weight_k[t, s]
            if takes_nb(x, best[t, s], chosen[t, s]):
                weight[t, s] = x
                stop_pct[t, s] = stop_k[t_stop, s]
                take_pct[t, s] = take_k[t_take, s]
                chosen[t, s] = k
                if x > 0.0:
                    best[t, s] = x
