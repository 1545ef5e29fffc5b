"""Numba-visible parameter bundles of the `step` kernel, built from the pydantic configs."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

from signals.config import PlatformConfig
from signals.enums import PRODUCT_STATUS_NAMES, OrderType


class StepParams(NamedTuple):
    """Scalar risk and execution parameters (fractions, not percent)."""

    total_cap: float
    theme_cap: float
    asset_cap: float
    max_positions: int
    stop_loss: float  # fraction below entry; 0 disables
    cooldown_fill_bars: int
    cooldown_stop_bars: int
    daily_loss: float
    weekly_loss: float
    max_drawdown: float
    kill_switch: bool
    auto_trim: bool
    trim_tolerance: float  # fraction of the cap
    maker_fee: float
    taker_fee: float
    entry_order_type: int
    exit_order_type: int
    stop_order_type: int
    limit_offset: float  # fraction of the decision close


class StepStatic(NamedTuple):
    """Per-symbol and per-strategy arrays that change rarely (products, themes, budgets)."""

    theme_id: np.ndarray  # int64[S], -1 = no theme
    base_increment: np.ndarray  # float64[S]
    quote_increment: np.ndarray  # float64[S]
    min_size: np.ndarray  # float64[S], base units
    min_notional: np.ndarray  # float64[S], quote units after fees
    strategy_cap: np.ndarray  # float64[K], fraction of equity
    strategy_max_trades: np.ndarray  # int64[K]
    regime_mult: np.ndarray  # float64[4]: bull, chop, bear, crash
    symbol_key: np.ndarray  # int64[S] >= 0, `symbol_key(name)`: keys the fill model's draws


_ORDER_TYPES = {"market": OrderType.Market, "limit_post_only": OrderType.LimitPostOnly}


def step_params(config: PlatformConfig) -> StepParams:
    """Return the kernel's scalar parameters for `config`."""
    risk = config.policy.risk
    execution = config.policy.execution
    return StepParams(
        total_cap=risk.max_total_at_risk_pct / 100.0,
        theme_cap=risk.max_theme_at_risk_pct / 100.0,
        asset_cap=risk.max_asset_at_risk_pct / 100.0,
        max_positions=risk.max_open_positions,
        stop_loss=risk.stop_loss_pct / 100.0,
        cooldown_fill_bars=risk.cooldown_after_fill_bars,
        cooldown_stop_bars=risk.cooldown_after_stop_bars,
        daily_loss=risk.daily_loss_stop_pct / 100.0,
        weekly_loss=risk.weekly_loss_stop_pct / 100.0,
        max_drawdown=risk.max_drawdown_pct / 100.0,
        kill_switch=risk.kill_switch,
        auto_trim=risk.auto_trim,
        trim_tolerance=risk.trim_tolerance_pct / 100.0,
        maker_fee=execution.maker_fee_bps / 1e4,
        taker_fee=execution.taker_fee_bps / 1e4,
        entry_order_type=_ORDER_TYPES[execution.entry_order_type],
        exit_order_type=_ORDER_TYPES[execution.exit_order_type],
        stop_order_type=_ORDER_TYPES[execution.stop_order_type],
        limit_offset=execution.limit_offset_bps / 1e4,
    )


def symbol_key(symbol: str) -> int:
    """Return a stable 63-bit key of `symbol`'s name (BLAKE2b), the same in every process."""
    digest = hashlib.blake2b(symbol.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def step_static(
    config: PlatformConfig, symbols: tuple[str, ...], strategy_names: tuple[str, ...]
) -> StepStatic:
    """Return the per-symbol/per-strategy arrays for `symbols` and the enabled strategies."""
    universe = config.universe
    theme_names = sorted(universe.themes)
    theme_of = {s: theme_names.index(t) for t, syms in universe.themes.items() for s in syms}
    products = [universe.product(s) for s in symbols]
    entries = config.strategies.strategies
    mult = config.policy.risk.regime_multipliers
    return StepStatic(
        theme_id=np.array([theme_of.get(s, -1) for s in symbols], dtype=np.int64),
        base_increment=np.array([p.base_increment for p in products], dtype=np.float64),
        quote_increment=np.array([p.quote_increment for p in products], dtype=np.float64),
        min_size=np.array([p.base_min_size for p in products], dtype=np.float64),
        min_notional=np.array([p.min_notional_usd for p in products], dtype=np.float64),
        strategy_cap=np.array(
            [entries[n].budget.max_at_risk_pct / 100.0 for n in strategy_names], dtype=np.float64
        ),
        strategy_max_trades=np.array(
            [entries[n].budget.max_new_trades_per_bar for n in strategy_names], dtype=np.int64
        ),
        regime_mult=np.array(
            [mult.get(k, 1.0) for k in ("bull", "chop", "bear", "crash")], dtype=np.float64
        ),
        symbol_key=np.array([symbol_key(s) for s in symbols], dtype=np.int64),
    )


def product_status_codes(config: PlatformConfig, symbols: tuple[str, ...]) -> np.ndarray:
    """Return int64[S] product status codes configured for the backtest."""
    return np.array(
        [PRODUCT_STATUS_NAMES.index(config.universe.product(s).status) for s in symbols],
        dtype=np.int64,
    )
