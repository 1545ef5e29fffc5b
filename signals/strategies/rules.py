"""`rules`: the conservative baseline strategy driven by the triggers."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from signals.bars import first_bar_no
from signals.parallel import columns_in_parallel
from signals.strategies.base import Proposals, Strategy, StrategyContext, params_as
from signals.strategies.nb import below_channel_columns_nb, below_channel_nb, rules_combine_nb
from signals.strategies.registry import register
from signals.triggers.nb import (
    breakout_columns_nb,
    breakout_nb,
    mean_reversion_nb,
    momentum_nb,
    volume_spike_columns_nb,
    volume_spike_nb,
)
from signals.types import Pct, PositiveBars, PositiveFloat


class RulesParams(BaseModel, frozen=True, extra="forbid"):
    """Parameters of `rules` (bars are the data's bar length, hourly for the shipped set)."""

    breakout_lookback: PositiveBars = Field(48, description="Donchian breakout window, bars.")
    momentum_lookback: PositiveBars = Field(24, description="Momentum window, bars.")
    momentum_threshold_pct: float = Field(2.0, description="Log-return threshold, %.")
    volume_lookback: PositiveBars = Field(24, description="Volume average window, bars.")
    volume_spike_ratio: PositiveFloat = Field(2.0, description="Volume / average for a spike.")
    mean_reversion: bool = Field(False, description="Also buy oversold dips in chop regimes.")
    mean_reversion_lookback: PositiveBars = Field(72, description="Z-score window, bars.")
    mean_reversion_z: PositiveFloat = Field(2.5, description="Z-score below -z is oversold.")
    exit_lookback: PositiveBars = Field(24, description="Exit below the N-bar low, bars.")
    target_weight_pct: Pct = Field(5.0, description="Target position, % of equity.")
    stop_loss_pct: Pct = Field(6.0, description="Stop below the fill price, %; 0 = policy's.")
    take_profit_pct: Pct = Field(15.0, description="Take profit above the fill price, %; 0 = off.")


@register
class Rules(Strategy):
    """Breakouts confirmed by momentum or volume; optional mean reversion; channel exits."""

    name = "rules"
    Params = RulesParams

    @classmethod
    def warmup_bars(cls, params: BaseModel) -> int:
        p = params_as(RulesParams, params)
        return 1 + max(
            p.breakout_lookback,
            p.momentum_lookback,
            p.volume_lookback,
            p.mean_reversion_lookback,
            p.exit_lookback,
        )

    @classmethod
    def propose(cls, ctx: StrategyContext) -> Proposals:
        p = params_as(RulesParams, ctx.params)
        close, high, low, volume = ctx.close, ctx.high, ctx.low, ctx.volume
        bar_no = first_bar_no(ctx.ts_ns, ctx.bar_ns)
        wide = columns_in_parallel(close.shape)  # the per-symbol triggers on every core
        breakout = (breakout_columns_nb if wide else breakout_nb)(close, high, p.breakout_lookback)
        momentum = momentum_nb(close, p.momentum_lookback, p.momentum_threshold_pct / 100.0)
        spike = (volume_spike_columns_nb if wide else volume_spike_nb)(
            volume, p.volume_lookback, p.volume_spike_ratio, bar_no
        )
        if p.mean_reversion:
            dip = mean_reversion_nb(close, p.mean_reversion_lookback, p.mean_reversion_z, bar_no)
        else:
            # ignored by `rules_combine_nb` when off: skip the z-scores, as the sweep does
            dip = np.zeros(close.shape, dtype=np.uint8)
        exit_signal = (below_channel_columns_nb if wide else below_channel_nb)(
            close, low, p.exit_lookback
        )
        weight = rules_combine_nb(
            breakout, momentum, spike, dip, exit_signal, ctx.bad_tick, ctx.regime,
            p.target_weight_pct / 100.0, p.mean_reversion,
        )  # fmt: skip
        # constant over the bars: one row each (`Proposals`), not two more `[T, S]` arrays
        row = (1, weight.shape[1])
        stop = np.full(row, p.stop_loss_pct / 100.0 if p.stop_loss_pct > 0 else np.nan)
        take = np.full(row, p.take_profit_pct / 100.0)
        return Proposals(weight=weight, stop_pct=stop, take_pct=take)
