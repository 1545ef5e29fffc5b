"""Golden checks of `sim.metrics` on hand-made equity curves and trade lists."""

import math
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from sim.metrics import (
    PROFIT_FACTOR_CAP,
    benchmark_return_pct,
    max_drawdown_frac,
    summary_metrics,
)

HOUR_NS = 3_600 * 1_000_000_000
BARS_PER_YEAR = 8_760


def _result(equity, pnl=(), initial=100.0, fills=None, close=None, held_hours=None):
    equity = np.asarray(equity, dtype=np.float64)
    if fills is None:
        fills = pl.DataFrame({"qty": [], "price": [], "fee_usd": []}, schema=dict.fromkeys(
            ("qty", "price", "fee_usd"), pl.Float64))  # fmt: skip
    if close is None:
        close = np.full((equity.size, 1), 100.0)
    held_ns = [int(h * HOUR_NS) for h in (held_hours or [1.0] * len(pnl))]
    entry = pl.Series([0] * len(pnl), dtype=pl.Int64).cast(pl.Datetime("ns", "UTC"))
    trades = pl.DataFrame(
        {"pnl_usd": pl.Series(list(pnl), dtype=pl.Float64), "entry_ts": entry,
         "exit_ts": pl.Series(held_ns, dtype=pl.Int64).cast(pl.Datetime("ns", "UTC"))}
    )  # fmt: skip
    return SimpleNamespace(
        curve=pl.DataFrame({"equity_usd": equity, "exposure_frac": np.zeros_like(equity)}),
        trades=trades,
        fills=fills,
        orders=pl.DataFrame({"x": [0] * fills.height}),
        inputs=SimpleNamespace(bar_ns=HOUR_NS),
        initial_cash_usd=initial,
        panel=SimpleNamespace(close=np.asarray(close, dtype=np.float64)),
        trade_start_row=0,
    )


def test_max_drawdown_two_peaks_largest_fall_from_running_peak():
    # peaks 110 then 121; the falls are 110 -> 99 (10 %) and 121 -> 88 (27.27 %)
    equity = np.array([100.0, 110.0, 99.0, 121.0, 88.0, 100.0])
    assert max_drawdown_frac(equity) == pytest.approx(1.0 - 88.0 / 121.0, rel=1e-15)


def test_max_drawdown_rising_or_empty_curve_zero():
    assert max_drawdown_frac(np.array([1.0, 2.0, 3.0])) == 0.0
    assert max_drawdown_frac(np.array([])) == 0.0


def test_summary_mixed_trades_win_rate_and_profit_factor():
    # a zero-PnL trade is not a win and adds nothing to the gross loss
    summary = summary_metrics(_result([100.0, 100.0], pnl=[10.0, -5.0, 0.0, 20.0]))
    assert summary["total_trades"] == 4
    assert summary["win_rate"] == pytest.approx(50.0)
    assert summary["profit_factor"] == pytest.approx(30.0 / 5.0)


def test_summary_no_losing_trade_profit_factor_capped():
    summary = summary_metrics(_result([100.0, 103.0], pnl=[1.0, 2.0]))
    assert summary["profit_factor"] == PROFIT_FACTOR_CAP
    assert summary["win_rate"] == 100.0


def test_summary_huge_profit_factor_capped():
    summary = summary_metrics(_result([100.0, 100.0], pnl=[1e6, -1.0]))
    assert summary["profit_factor"] == PROFIT_FACTOR_CAP


def test_summary_no_trades_profit_factor_and_win_rate_zero():
    summary = summary_metrics(_result([100.0, 100.0]))
    assert (summary["total_trades"], summary["win_rate"], summary["profit_factor"]) == (0, 0.0, 0.0)


def test_summary_hand_curve_sharpe_sortino_drawdown():
    # per-bar returns from the 100 start: +10 %, +10 %, -10 %
    # mean 1/30, sample std sqrt(0.04 / 3) -> Sharpe = sqrt(3) / 6 * sqrt(bars per year)
    # downside deviation sqrt(mean([0.01])) = 0.1 -> Sortino = (1/30) / 0.1 * sqrt(bars/yr)
    summary = summary_metrics(_result([110.0, 121.0, 108.9]))
    assert summary["sharpe"] == pytest.approx(
        math.sqrt(3) / 6 * math.sqrt(BARS_PER_YEAR), rel=1e-12
    )
    assert summary["sortino"] == pytest.approx(math.sqrt(BARS_PER_YEAR) / 3, rel=1e-12)
    assert summary["max_drawdown_pct"] == pytest.approx(10.0, rel=1e-12)
    assert summary["total_pnl_pct"] == pytest.approx(8.9, rel=1e-12)
    assert summary["final_equity_usd"] == pytest.approx(108.9)


def test_summary_flat_curve_sharpe_zero_not_nan():
    summary = summary_metrics(_result([100.0, 100.0, 100.0]))
    assert summary["sharpe"] == 0.0
    assert summary["sortino"] == 0.0
    assert summary["calmar"] == 0.0


def test_summary_fills_turnover_and_fees():
    fills = pl.DataFrame({"qty": [1.0, 1.0], "price": [50.0, 60.0], "fee_usd": [0.3, 0.36]})
    summary = summary_metrics(_result([100.0, 110.0], pnl=[9.34], fills=fills))
    assert summary["fees_paid_usd"] == pytest.approx(0.66)
    assert summary["turnover"] == pytest.approx(110.0 / 105.0)
    assert summary["total_fills"] == 2


def test_summary_short_curve_large_gain_cagr_finite():
    # CAGR of a 2-bar hourly curve [100, 125] is 1.25 ** 4380: capped, not an OverflowError
    summary = summary_metrics(_result([100.0, 125.0]))
    assert math.isfinite(summary["cagr_pct"])
    assert summary["cagr_pct"] == pytest.approx((1e6 - 1) * 100)


def test_summary_benchmark_equal_weight_buy_and_hold():
    # A +10 %; B -20 % (bought at its first finite close, 50 on row 1; held to 40); C has no
    # finite close and is left out: the mean of 1.10 and 0.80 is 0.95, so -5 %
    close = np.array([[100.0, np.nan, np.nan], [105.0, 50.0, np.nan], [110.0, 40.0, np.nan]])
    summary = summary_metrics(_result([100.0, 100.0, 100.0], close=close))
    assert summary["benchmark_return_pct"] == pytest.approx(-5.0, rel=1e-12)
    assert benchmark_return_pct(np.full((3, 2), np.nan)) == 0.0
    assert benchmark_return_pct(np.empty((0, 2))) == 0.0


def test_summary_duration_and_expectancy_from_closed_trades():
    summary = summary_metrics(
        _result([100.0, 100.0], pnl=[10.0, -4.0, 3.0], held_hours=[2.0, 5.0, 0.5])
    )
    assert summary["avg_trade_duration_hours"] == pytest.approx(2.5, rel=1e-12)
    # win rate 2/3 x mean win 6.5 - loss rate 1/3 x mean loss 4 = 3.0 = mean PnL
    assert summary["expectancy_usd"] == pytest.approx(3.0, rel=1e-12)
    empty = summary_metrics(_result([100.0, 100.0]))
    assert empty["avg_trade_duration_hours"] == 0.0
    assert empty["expectancy_usd"] == 0.0
