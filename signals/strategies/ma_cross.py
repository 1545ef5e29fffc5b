"""`ma_cross`: a long-only moving-average crossover (the vectorbt cross-check's strategy)."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field, model_validator

from signals.bars import first_bar_no
from signals.parallel import columns_in_parallel
from signals.strategies.base import Proposals, Strategy, StrategyContext, params_as
from signals.strategies.nb import ma_cross_weights_columns_nb, ma_cross_weights_nb
from signals.strategies.registry import register
from signals.types import Pct, PositiveBars


class MaCrossParams(BaseModel, frozen=True, extra="forbid"):
    """Parameters of `ma_cross`."""

    fast: PositiveBars = Field(10, description="Fast SMA window, bars.")
    slow: PositiveBars = Field(50, description="Slow SMA window, bars.")
    target_weight_pct: Pct = Field(5.0, description="Target position, % of equity.")
    stop_loss_pct: Pct = Field(0.0, description="Stop below the fill price, %; 0 = policy's.")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MaCrossParams:
        if self.fast >= self.slow:
            msg = f"`fast` must be < `slow`, was {self.fast} >= {self.slow}"
            raise ValueError(msg)
        return self


@register
class MaCross(Strategy):
    """Enter when the fast SMA crosses above the slow one; exit when it crosses below."""

    name = "ma_cross"
    Params = MaCrossParams
    reads_regime = False

    @classmethod
    def warmup_bars(cls, params: BaseModel) -> int:
        return params_as(MaCrossParams, params).slow + 1

    @classmethod
    def propose(cls, ctx: StrategyContext) -> Proposals:
        p = params_as(MaCrossParams, ctx.params)
        weights_nb = (
            ma_cross_weights_columns_nb if columns_in_parallel(ctx.close.shape)
            else ma_cross_weights_nb
        )  # fmt: skip
        weight = weights_nb(
            ctx.close, p.fast, p.slow, first_bar_no(ctx.ts_ns, ctx.bar_ns),
            p.target_weight_pct / 100.0, np.empty(ctx.close.shape),
        )  # fmt: skip
        # constant over the bars: one row each (`Proposals`)
        n_symbols = weight.shape[1]
        stop = np.full((1, n_symbols), p.stop_loss_pct / 100.0 if p.stop_loss_pct > 0 else np.nan)
        return Proposals(weight=weight, stop_pct=stop, take_pct=np.zeros((1, n_symbols)))
