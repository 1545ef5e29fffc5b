"""Plain references of the strategy kernels in `signals/strategies/nb.py`."""

from __future__ import annotations

import math

import numpy as np

from signals.enums import Regime


def rules_combine_ref(
    breakout, momentum, volume_spike, mean_reversion, exit_signal, bad_tick, regime,
    target_weight, mean_reversion_enabled,
) -> np.ndarray:  # fmt: skip
    n_bars, n_symbols = breakout.shape
    out = np.full((n_bars, n_symbols), np.nan)
    for t in range(n_bars):
        r = int(regime[t])
        if r == Regime.Unknown:
            continue
        for s in range(n_symbols):
            if bad_tick[t, s]:
                continue
            confirmations = int(momentum[t, s]) + int(volume_spike[t, s])
            if r in (Regime.Bull, Regime.Chop) and breakout[t, s] and confirmations > 0:
                out[t, s] = target_weight * (0.5 + 0.25 * confirmations)
            elif mean_reversion_enabled and r == Regime.Chop and mean_reversion[t, s]:
                out[t, s] = target_weight * 0.5
            elif exit_signal[t, s]:
                out[t, s] = 0.0
    return out


def below_channel_ref(close, low, lookback) -> np.ndarray:
    out = np.zeros(close.shape, dtype=np.uint8)
    for s in range(close.shape[1]):
        for t in range(lookback, close.shape[0]):
            past = [float(v) for v in low[t - lookback : t, s]]
            if all(math.isfinite(v) for v in past) and math.isfinite(close[t, s]):
                out[t, s] = 1 if close[t, s] < min(past) else 0
    return out


def cross_weights_ref(cross, target_weight) -> np.ndarray:
    out = np.full(cross.shape, np.nan)
    out[cross > 0] = target_weight
    out[cross < 0] = 0.0
    return out


def combine_ref(proposals, shape):
    """Plain numpy combine of `(weight, stop_pct, take_pct)` triples in strategy order.

    The highest positive weight wins; an exit (0) only where nobody holds; anything else is
    no opinion. Returns `(weight, stop_pct, take_pct, chosen)`.
    """
    weight = np.full(shape, np.nan)
    stop_pct = np.full(shape, np.nan)
    take_pct = np.full(shape, np.nan)
    chosen = np.full(shape, -1, dtype=np.int64)
    best = np.full(shape, -np.inf)
    for k, (w, stop, take) in enumerate(proposals):
        take_it = (w > best) & (w > 0.0) | ((w == 0.0) & (chosen < 0))
        weight = np.where(take_it, w, weight)
        stop_pct = np.where(take_it, stop, stop_pct)
        take_pct = np.where(take_it, take, take_pct)
        chosen = np.where(take_it, k, chosen)
        best = np.where(take_it & (w > 0.0), w, best)
    return weight, stop_pct, take_pct, chosen
