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
