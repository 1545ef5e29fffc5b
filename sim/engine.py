"""The backtest driver: panel + config -> stage 1 -> `simulate` -> polars frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from signals.bars import Panel
from signals.config import PlatformConfig, check_config_symbols
from signals.decision.params import product_status_codes, step_params, step_static
from signals.enums import PURPOSE_NAMES, REASON_NAMES, Side
from signals.pipeline import DecisionInputs, decision_inputs
from sim.enums import ORDER_STATUS_NAMES, FillParams
from sim.nb import new_curves, simulate


@dataclass(frozen=True)
class BacktestResult:
    """Everything a run produced. Frames are polars; curves are per bar at the bar's close."""

    panel: Panel
    inputs: DecisionInputs
    orders: pl.DataFrame
    fills: pl.DataFrame
    trades: pl.DataFrame
    curve: pl.DataFrame  # ts, equity_usd, cash_usd, exposure_frac, regime
    reason_counts: np.ndarray  # int64[K, S, N_REASONS]
    initial_cash_usd: float
    final_account: np.ndarray
    final_positions: np.ndarray


def fill_params(config: PlatformConfig) -> FillParams:
    """Return the fill model's parameters for `config`."""
    execution = config.policy.execution
    return FillParams(
        slippage=execution.slippage_bps / 1e4,
        slippage_vol_mult=execution.slippage_vol_mult,
        partial_fills=execution.partial_fills,
        min_fill_fraction=execution.min_fill_fraction,
    )


def _ts(values: np.ndarray) -> pl.Series:
    return pl.Series(values.astype(np.int64)).cast(pl.Datetime("ns", "UTC"))


def run_backtest(
    panel: Panel,
    config: PlatformConfig,
    inputs: DecisionInputs | None = None,
    *,
    allow_missing_symbols: bool = False,
) -> BacktestResult:
    """Run `config` over `panel` with the config's seed and starting cash.

    Without `inputs` it first checks the config's symbols against the panel's
    (`check_config_symbols`: a `ConfigError`, or with `allow_missing_symbols` a warning for
    absent universe symbols), then computes stage 1. A caller passing `inputs` computed them
    from this panel and config and checked the symbols first, as `sim run` does.
    """
    if inputs is None:
        check_config_symbols(config, panel.symbols, allow_missing=allow_missing_symbols)
        inputs = decision_inputs(panel, config)
    symbols = panel.symbols
    static = step_static(config, symbols, inputs.strategy_names)
    out = simulate(
        panel.ts_ns, inputs.bar_ns, panel.open, panel.high, panel.low, panel.close,
        inputs.weight, inputs.stop_pct, inputs.take_pct, inputs.strategy, inputs.block_reason,
        inputs.regime, inputs.vol, product_status_codes(config, symbols), step_params(config),
        static, fill_params(config), float(config.backtest.initial_cash_usd),
        int(config.backtest.seed), *new_curves(panel.close.shape[0]),
    )  # fmt: skip
    orders, status, fills, trades, equity, cash, exposure, reasons, account, positions = out
    names = inputs.strategy_names or ("none",)
    sym = np.array(symbols)

    def side_names(side: np.ndarray) -> list[str]:
        return ["buy" if s == Side.Buy else "sell" for s in side]

    orders_frame = pl.DataFrame(
        {
            "ts": _ts(orders["bar_no"] * inputs.bar_ns),
            "symbol": sym[orders["symbol"]],
            "side": side_names(orders["side"]),
            "order_type": ["market" if t == 0 else "limit_post_only" for t in orders["order_type"]],
            "purpose": [PURPOSE_NAMES[p] for p in orders["purpose"]],
            "strategy": [names[k] if k >= 0 else "" for k in orders["strategy"]],
            "qty": orders["qty"],
            "notional_usd": orders["notional"],
            "limit_price": orders["limit_price"],
            "ref_price": orders["ref_price"],
            "status": [ORDER_STATUS_NAMES[s] for s in status],
        },
        schema_overrides={"symbol": pl.String},
    )
    fills_frame = pl.DataFrame(
        {
            "ts": _ts(panel.ts_ns[fills["bar"]]),
            "order_id": fills["order_id"],
            "symbol": sym[fills["symbol"]],
            "side": side_names(fills["side"]),
            "purpose": [PURPOSE_NAMES[p] for p in fills["purpose"]],
            "qty": fills["qty"],
            "price": fills["price"],
            "fee_usd": fills["fee"],
            "liquidity": ["maker" if m else "taker" for m in fills["is_maker"]],
        },
        schema_overrides={"symbol": pl.String},
    )
    trades_frame = pl.DataFrame(
        {
            "symbol": sym[trades["symbol"]],
            "strategy": [names[k] if k >= 0 else "" for k in trades["strategy"]],
            "entry_ts": _ts(trades["entry_bar_no"] * inputs.bar_ns),
            "exit_ts": _ts(trades["exit_bar_no"] * inputs.bar_ns),
            "qty": trades["qty"],
            "entry_price": trades["entry_price"],
            "exit_price": trades["exit_price"],
            "pnl_usd": trades["pnl_usd"],
            "fees_usd": trades["fees_usd"],
            "exit_reason": [PURPOSE_NAMES[p] for p in trades["exit_purpose"]],
        },
        schema_overrides={"symbol": pl.String},
    )
    curve = pl.DataFrame(
        {
            "ts": _ts(panel.ts_ns),
            "equity_usd": equity,
            "cash_usd": cash,
            "exposure_frac": exposure,
            "regime": inputs.regime,
        }
    )
    return BacktestResult(
        panel=panel,
        inputs=inputs,
        orders=orders_frame,
        fills=fills_frame,
        trades=trades_frame,
        curve=curve,
        reason_counts=reasons,
        initial_cash_usd=float(config.backtest.initial_cash_usd),
        final_account=account,
        final_positions=positions,
    )


def reason_table(result: BacktestResult) -> dict[str, dict[str, dict[str, int]] | dict[str, int]]:
    """Return no-trade reason counts: `total`, `by_strategy` and `by_symbol` (zeros omitted)."""
    counts = result.reason_counts
    names = result.inputs.strategy_names or ("none",)
    total = counts.sum(axis=(0, 1))
    by_strategy = counts.sum(axis=1)
    by_symbol = counts.sum(axis=0)
    return {
        "total": {REASON_NAMES[r]: int(c) for r, c in enumerate(total) if c and r},
        "by_strategy": {
            names[k]: {REASON_NAMES[r]: int(c) for r, c in enumerate(row) if c and r}
            for k, row in enumerate(by_strategy)
            if k < len(names)
        },
        "by_symbol": {
            result.panel.symbols[s]: {REASON_NAMES[r]: int(c) for r, c in enumerate(row) if c and r}
            for s, row in enumerate(by_symbol)
        },
    }
