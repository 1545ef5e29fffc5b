"""Performance metrics of a backtest (pure functions of the result's frames and curves)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from sim.engine import BacktestResult

HOUR_NS = 3_600 * 1_000_000_000
YEAR_NS = 365 * 86_400 * 1_000_000_000
PROFIT_FACTOR_CAP = 100.0
"""Profit factor with no losing trade would be infinite; JSON has no infinity, so it is capped."""

MAX_LOG_GROWTH = math.log(1e6)
"""CAGR is capped at 1e6x a year (100,000,000 %): past that, annualising a run is meaningless."""

REGRESSION_KEYS = ("total_trades", "win_rate", "total_pnl_pct", "max_drawdown_pct", "profit_factor")


def max_drawdown_frac(equity: np.ndarray) -> float:
    """Return the largest fall from a running peak as a positive fraction (0 when flat)."""
    if equity.size == 0:
        return 0.0
    peak = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peak))


def benchmark_return_pct(close: np.ndarray) -> float:
    """Return the equal-weight buy-and-hold return (%) of the symbols of `close` (`[T, S]`).

    Each symbol gets an equal share of the cash at its first finite close and is held to its
    last finite close, with no fee and no rebalancing, so the return is the mean of
    `last / first - 1` over the symbols; a symbol with no finite close is left out (0 with
    none). Reference: `sim.metrics` tests (a hand-computed panel).
    """
    if close.ndim != 2 or close.shape[0] == 0:
        return 0.0
    finite = np.isfinite(close)
    has = finite.any(axis=0)
    if not has.any():
        return 0.0
    first_row = np.argmax(finite, axis=0)
    last_row = close.shape[0] - 1 - np.argmax(finite[::-1], axis=0)
    cols = np.flatnonzero(has)
    growth = close[last_row[cols], cols] / close[first_row[cols], cols]
    return float(np.mean(growth) - 1.0) * 100.0


def summary_metrics(result: BacktestResult) -> dict[str, float | int]:
    """Return the summary metrics (percent units where named `_pct`).

    Sharpe and Sortino are annualised from per-bar returns of the equity curve (risk-free 0,
    bars per year from the bar length); Calmar is the annualised return over max drawdown.
    Exposure time is the share of bars with any open position; turnover is traded notional over
    mean equity; `profit_factor` is gross profit / gross loss over closed trades, capped at 100.
    `benchmark_return_pct` is the equal-weight buy-and-hold of the panel's symbols over the
    curve's bars (`benchmark_return_pct`); `avg_trade_duration_hours` the mean time from a
    closed trade's entry fill to its exit fill; `expectancy_usd` the mean PnL per closed trade
    (win rate x mean win - loss rate x mean loss), 0 with no trade.
    """
    equity = result.curve["equity_usd"].to_numpy()
    initial = result.initial_cash_usd
    final = float(equity[-1]) if equity.size else initial
    pnl = result.trades["pnl_usd"].to_numpy()
    wins = pnl[pnl > 0.0]
    losses = pnl[pnl <= 0.0]
    gross_loss = float(-losses.sum())
    if pnl.size == 0:
        profit_factor = 0.0
    elif gross_loss <= 0.0:
        profit_factor = PROFIT_FACTOR_CAP
    else:
        profit_factor = min(float(wins.sum()) / gross_loss, PROFIT_FACTOR_CAP)

    returns = np.diff(np.concatenate(([initial], equity))) / np.concatenate(
        ([initial], equity[:-1])
    )
    bars_per_year = YEAR_NS / result.inputs.bar_ns
    std = float(np.std(returns, ddof=1)) if returns.size > 1 else 0.0
    mean = float(np.mean(returns)) if returns.size else 0.0
    downside = returns[returns < 0.0]
    down_std = float(np.sqrt(np.mean(downside**2))) if downside.size else 0.0
    sharpe = mean / std * math.sqrt(bars_per_year) if std > 0 else 0.0
    sortino = mean / down_std * math.sqrt(bars_per_year) if down_std > 0 else 0.0
    max_dd = max_drawdown_frac(np.concatenate(([initial], equity)))
    years = equity.size / bars_per_year
    # annualising a short run explodes (1.25 ** 4380 overflows), so the exponent is capped
    growth = math.log(final / initial) / years if years > 0 and final > 0 else 0.0
    cagr = math.expm1(min(growth, MAX_LOG_GROWTH))
    calmar = cagr / max_dd if max_dd > 0 else 0.0
    fills = result.fills
    traded = float((fills["qty"] * fills["price"]).sum()) if fills.height else 0.0
    mean_equity = float(np.mean(equity)) if equity.size else initial
    exposure = result.curve["exposure_frac"].to_numpy()
    return {
        "total_trades": int(pnl.size),
        "win_rate": float(wins.size / pnl.size * 100.0) if pnl.size else 0.0,
        "total_pnl_pct": (final / initial - 1.0) * 100.0,
        "max_drawdown_pct": max_dd * 100.0,
        "profit_factor": profit_factor,
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": calmar,
        "cagr_pct": cagr * 100.0,
        "exposure_time_pct": float(np.mean(exposure > 0.0) * 100.0) if exposure.size else 0.0,
        "turnover": traded / mean_equity if mean_equity > 0 else 0.0,
        "fees_paid_usd": float(fills["fee_usd"].sum()) if fills.height else 0.0,
        "final_equity_usd": final,
        "total_orders": int(result.orders.height),
        "total_fills": int(fills.height),
        "benchmark_return_pct": benchmark_return_pct(result.panel.close[result.trade_start_row :]),
        "avg_trade_duration_hours": _mean_hours(result.trades),
        "expectancy_usd": float(pnl.mean()) if pnl.size else 0.0,
    }


def _mean_hours(trades: pl.DataFrame) -> float:
    if trades.height == 0:
        return 0.0
    held_ns = (trades["exit_ts"].dt.epoch("ns") - trades["entry_ts"].dt.epoch("ns")).to_numpy()
    return float(np.mean(held_ns)) / HOUR_NS
