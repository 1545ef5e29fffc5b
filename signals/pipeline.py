"""Stage 1 of the decision path over a panel: regime, guards, universe and combined proposals.

`decision_inputs(panel, config)` is the one function the backtest (over the whole history) and
the live bridge (over its rolling window, taking the last row) both call. Every kernel it uses
on the decision path is windowed, so its last row depends only on the last `warmup_bars(...)`
bars: this is what makes the live window reproduce the backtest bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from signals.bars import Panel, first_bar_no
from signals.config import PlatformConfig
from signals.enums import Regime
from signals.indicators.nb import (
    realized_vol_columns_nb,
    realized_vol_nb,
    rolling_sum_columns_nb,
    rolling_sum_nb,
)
from signals.parallel import columns_in_parallel, symbol_major
from signals.regime.nb import regime_nb, regime_warmup_bars
from signals.strategies import Proposals, StrategyContext, enabled_strategies
from signals.strategies.nb import combine_first_nb, combine_into_nb
from signals.triggers.nb import bad_tick_mask_columns_nb, bad_tick_mask_nb
from signals.universe.nb import (
    TIER_CORE,
    TIER_EXCLUDED,
    TIER_ROTATIONAL,
    TIER_UNLISTED,
    universe_guards_nb,
)

HOUR_NS = 3_600 * 1_000_000_000


@dataclass(frozen=True)
class DecisionInputs:
    """Everything `step` needs per bar, as arrays over the panel (`[T, S]` unless noted)."""

    strategy_names: tuple[str, ...]
    weight: np.ndarray  # float64, combined target weights (NaN = no opinion)
    stop_pct: np.ndarray  # float64 fractions
    take_pct: np.ndarray  # float64 fractions
    strategy: np.ndarray  # int64 index into strategy_names (-1 = none)
    block_reason: np.ndarray  # int64 `Reason` codes from the universe/guards
    regime: np.ndarray  # int64[T] `Regime` codes
    bad_tick: np.ndarray  # uint8
    vol: np.ndarray  # float64 one-bar realized volatility (slippage model; NaN: not read)
    bar_ns: int


def infer_bar_ns(ts_ns: np.ndarray) -> int:
    """Return the most common spacing of `ts_ns` (ns); one hour for fewer than two bars."""
    if ts_ns.shape[0] < 2:
        return HOUR_NS
    diffs, counts = np.unique(np.diff(ts_ns), return_counts=True)
    return int(diffs[np.argmax(counts)])


def symbol_tiers(config: PlatformConfig, symbols: tuple[str, ...]) -> np.ndarray:
    """Return int64[S] tier codes; with no rotational list every non-core symbol rotates."""
    universe = config.universe
    excluded, core, rotational = map(set, (universe.excluded, universe.core, universe.rotational))
    tiers = []
    for symbol in symbols:
        if symbol in excluded:
            tiers.append(TIER_EXCLUDED)
        elif symbol in core:
            tiers.append(TIER_CORE)
        elif not rotational or symbol in rotational:
            tiers.append(TIER_ROTATIONAL)
        else:
            tiers.append(TIER_UNLISTED)
    return np.array(tiers, dtype=np.int64)


def warmup_bars(config: PlatformConfig, bar_ns: int = HOUR_NS) -> int:
    """Return how many bars of history make the last row of `decision_inputs` exact."""
    universe = config.universe
    regime = universe.regime
    need = [
        regime_warmup_bars(
            regime.fast_bars, regime.slow_bars, regime.vol_window_bars, regime.vol_baseline_bars,
            regime.crash_lookback_bars,
        ),
        universe.quote_volume_window_bars + 1,
        config.policy.execution.slippage_vol_window + 2,
        universe.bad_tick_volume_window + 3,
        _ban_bars(config, bar_ns) + 2,
        config.policy.risk.max_data_staleness_bars + 2,
    ]  # fmt: skip
    need.extend(s.cls.warmup_bars(s.params) + 1 for s in enabled_strategies(config.strategies))
    return max(need)


def _ban_bars(config: PlatformConfig, bar_ns: int) -> int:
    return int(np.ceil(config.universe.temporary_ban_hours * HOUR_NS / bar_ns))


def strategy_context(
    panel: Panel,
    regime: np.ndarray,
    bad_tick: np.ndarray,
    bar_ns: int,
    params: BaseModel,
    *,
    close: np.ndarray | None = None,
    volume: np.ndarray | None = None,
) -> StrategyContext:
    """Return the read-only context a strategy's `propose` sees over `panel` (`regime` and
    `bad_tick`: stage 1 of the same bars). `close`/`volume`, when given, are the panel's own
    values in another memory layout (`decision_inputs` passes its symbol-major copies)."""
    return StrategyContext(
        ts_ns=panel.ts_ns, symbols=panel.symbols, open=panel.open, high=panel.high,
        low=panel.low, close=panel.close if close is None else close,
        volume=panel.volume if volume is None else volume, regime=regime, bad_tick=bad_tick,
        bar_ns=bar_ns, params=params,
    )  # fmt: skip


def combine_proposals(
    proposals: Sequence[Proposals], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Combine the enabled strategies' proposals (in name order) into one per bar and symbol.

    The rule is `signals.strategies.nb.combine_into_nb` (the highest positive weight wins; an
    exit only where no strategy wants to hold). Returns C-ordered `[T, S]` `(weight,
    stop_pct, take_pct, strategy)`: float64 x 3 (NaN = no opinion / the policy's default) and
    int64 index into `proposals` (-1 = none). Raises `ValueError` naming the strategy's index
    and array for a proposal of another shape than `[T, S]` (`[1, S]` for stop/take).
    """
    weight, stop_pct, take_pct = np.empty(shape), np.empty(shape), np.empty(shape)
    chosen = np.empty(shape, dtype=np.int64)
    if not proposals:
        weight.fill(np.nan)
        stop_pct.fill(np.nan)
        take_pct.fill(np.nan)
        chosen.fill(-1)
        return weight, stop_pct, take_pct, chosen
    arrays = [
        (
            _proposal_array(p.weight, shape, k, "weight", rows_ok=False),
            _proposal_array(p.stop_pct, shape, k, "stop_pct"),
            _proposal_array(p.take_pct, shape, k, "take_pct"),
        )
        for k, p in enumerate(proposals)
    ]
    # the first strategy writes every cell, no array is filled first (one strategy, best of 5:
    # 16.3 -> 11.7 ms at 1 x 1M bars, 117-139 -> 63 ms at 500 x 20k, 2026-12-07); `best`, the
    # highest weight taken so far, is needed only to fold in a second
    combine_first_nb(*arrays[0], weight, stop_pct, take_pct, chosen)
    if len(arrays) > 1:
        best = np.where(weight > 0.0, weight, -np.inf)
        for k, (weight_k, stop_k, take_k) in enumerate(arrays[1:], start=1):
            combine_into_nb(weight_k, stop_k, take_k, k, weight, stop_pct, take_pct, chosen, best)
    return weight, stop_pct, take_pct, chosen


def _proposal_array(
    x: np.ndarray, shape: tuple[int, int], k: int, name: str, *, rows_ok: bool = True
) -> np.ndarray:
    # a strategy's array as the combine kernel takes it: C-ordered float64 `[T, S]`, or one
    # `[1, S]` row where a constant is allowed
    arr = np.asarray(x)
    allowed = [shape, (1, shape[1])] if rows_ok else [shape]
    if arr.shape not in allowed:
        msg = (
            f"strategy #{k}'s `{name}` must have shape "
            f"{' or '.join(str(a) for a in allowed)}, was {arr.shape}"
        )
        raise ValueError(msg)
    return np.ascontiguousarray(arr, dtype=np.float64)


def decision_inputs(
    panel: Panel, config: PlatformConfig, bar_ns: int | None = None, *, with_vol: bool = True
) -> DecisionInputs:
    """Compute stage 1 over `panel`: guards, regime, universe and every enabled strategy.

    What no control reads is not computed: with `slippage_vol_mult` 0 `vol` is all NaN, and
    with no temporary ban (`temporary_ban_hours` 0) no red flag is looked for. `with_vol=False`
    leaves `vol` all NaN too, for a caller that simulates no fills (`step_nb` does not read it:
    only the slippage model does); every other array is the same.
    """
    if bar_ns is None:
        bar_ns = infer_bar_ns(panel.ts_ns)
    universe = config.universe
    close, volume = panel.close, panel.volume
    n_bars, n_symbols = close.shape
    # the anchored kernels' summation order follows absolute bar numbers (start-independent)
    bar_no = first_bar_no(panel.ts_ns, bar_ns)

    # symbol-major copies for the per-symbol column loops below, which then read contiguous
    # columns instead of copying each one out of the `[T, S]` rows; a one-symbol panel is
    # already both, nothing is copied. Measured at 500 symbols x 20k bars (2026-12-07):
    # decision_inputs 1.32 vs 1.56 s (ma_cross), 1.89 vs 2.17 s (rules), best of 5;
    # run_backtest in 6 alternating processes, rules median 2.07 vs 2.87 s, ma_cross within
    # the noise (best 1.50 vs 1.66 s, median 1.89 vs 1.82 s)
    close_f, volume_f = symbol_major(close), symbol_major(volume)
    # the per-symbol kernels with the symbols on every core when the panel is wide (the same
    # bits: `signals.parallel`)
    wide = columns_in_parallel(close.shape)
    bad_tick_mask = bad_tick_mask_columns_nb if wide else bad_tick_mask_nb
    rolling_sum = rolling_sum_columns_nb if wide else rolling_sum_nb
    realized_vol = realized_vol_columns_nb if wide else realized_vol_nb
    bad_tick = bad_tick_mask(
        close_f, volume_f, universe.bad_tick_jump_pct / 100.0, universe.bad_tick_volume_ratio,
        universe.bad_tick_volume_window, bar_no,
    )  # fmt: skip
    reg = universe.regime
    if reg.reference_symbol in panel.symbols:
        ref_close = np.ascontiguousarray(close[:, panel.symbols.index(reg.reference_symbol)])
        regime = regime_nb(
            ref_close, reg.fast_bars, reg.slow_bars, reg.vol_window_bars, reg.vol_baseline_bars,
            reg.crash_lookback_bars, reg.crash_drop_pct / 100.0, reg.crash_vol_mult, bar_no,
        )  # fmt: skip
    else:
        # no reference asset in the data: no regime scaling (multiplier of "bull" is not used)
        regime = np.full(n_bars, Regime.Chop, dtype=np.int64)

    quote_volume = rolling_sum(close_f * volume_f, universe.quote_volume_window_bars, bar_no)
    spread = np.array(universe.spread_bps_of(panel.symbols), dtype=np.float64)
    # red flags, bans, staleness and the universe in one pass (`universe_block_nb` of
    # `ban_active_nb(red_flag_nb(...))` and `bars_since_valid_nb`, the same codes)
    block_reason = universe_guards_nb(
        close, bad_tick, quote_volume, spread, symbol_tiers(config, panel.symbols),
        universe.red_flag_move_pct / 100.0, _ban_bars(config, bar_ns),
        universe.min_quote_volume_usd, universe.max_spread_bps, universe.max_universe_size,
        config.policy.risk.max_data_staleness_bars,
    )  # fmt: skip
    execution = config.policy.execution
    if execution.slippage_vol_mult == 0.0 or not with_vol:
        # the slippage model's volatility term is its only reader: off, nothing to compute
        vol = np.full((n_bars, n_symbols), np.nan)
    else:
        vol = realized_vol(close_f, execution.slippage_vol_window, bar_no)

    strategies = enabled_strategies(config.strategies)
    # the strategies read the symbol-major copies too: their per-symbol kernels then read
    # contiguous columns (`ma_cross` at 500 x 20k: propose 316-323 -> 164-187 ms, 2026-12-07)
    proposals = [
        s.cls.propose(
            strategy_context(panel, regime, bad_tick, bar_ns, s.params, close=close_f,
                             volume=volume_f)
        )
        for s in strategies
    ]  # fmt: skip
    weight, stop_pct, take_pct, chosen = combine_proposals(proposals, (n_bars, n_symbols))
    return DecisionInputs(
        strategy_names=tuple(s.name for s in strategies),
        weight=weight,
        stop_pct=stop_pct,
        take_pct=take_pct,
        strategy=chosen,
        block_reason=block_reason,
        regime=regime,
        bad_tick=bad_tick,
        vol=vol,
        bar_ns=bar_ns,
    )
