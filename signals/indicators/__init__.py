"""Indicator kernels (layer 0); see `signals/indicators/nb.py` for the window rules."""

from signals.indicators.nb import (
    BARS_SINCE_NEVER,
    atr_nb,
    bars_since_valid_nb,
    ema_nb,
    log_returns_nb,
    realized_vol_nb,
    rolling_max_nb,
    rolling_min_nb,
    rolling_sum_nb,
    rsi_nb,
    sma_nb,
    volume_ratio_nb,
    zscore_nb,
)

__all__ = [
    "BARS_SINCE_NEVER",
    "atr_nb",
    "bars_since_valid_nb",
    "ema_nb",
    "log_returns_nb",
    "realized_vol_nb",
    "rolling_max_nb",
    "rolling_min_nb",
    "rolling_sum_nb",
    "rsi_nb",
    "sma_nb",
    "volume_ratio_nb",
    "zscore_nb",
]
