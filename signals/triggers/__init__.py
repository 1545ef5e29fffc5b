"""Trigger kernels (layer 0); see `signals/triggers/nb.py`."""

from signals.triggers.nb import (
    bad_tick_mask_nb,
    breakout_nb,
    ma_cross_nb,
    mean_reversion_exit_nb,
    mean_reversion_nb,
    momentum_nb,
    volume_spike_nb,
)

__all__ = [
    "bad_tick_mask_nb",
    "breakout_nb",
    "ma_cross_nb",
    "mean_reversion_exit_nb",
    "mean_reversion_nb",
    "momentum_nb",
    "volume_spike_nb",
]
