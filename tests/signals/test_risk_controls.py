"""Every risk control binds inside the shared `step` kernel: without it the portfolio breaks the
rule, with it the order is not emitted (or shrunk) and the control's reason code is counted.

Scenarios run `step_nb` directly on hand-built state with the default policy (25 % total, 10 %
theme, 5 % asset, 5 positions, -10 % stop) unless a test says otherwise; universe scenarios run
the real stage 1 (`decision_inputs`) on a small hand-built `Panel` through `run_backtest`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from signals.bars import Panel
from signals.config import (
    PlatformConfig,
    RiskConfig,
    StrategiesConfig,
    StrategyBudget,
    StrategyEntry,
    UniverseConfig,
)
from signals.decision.nb import new_workspace_nb
from signals.decision.params import StepParams, StepStatic, step_params
from signals.enums import (
    N_REASONS,
    Acc,
    OrderType,
    Pos,
    ProductStatus,
    Purpose,
    Reason,
    Regime,
    Side,
)
from signals.pipeline import decision_inputs
from signals.records import ORDER_DT
from sim.engine import run_backtest
from sim.nb import new_state_nb
from tests.step_calls import apply_fill, step_bar

EQUITY = 10_000.0
BAR = 10_000  # absolute bar number of the decision (hourly bars)
DAY = BAR // 24
WEEK = (DAY + 3) // 7


def params(**overrides) -> StepParams:
    """Default policy as kernel params, market entries, overridden by `overrides`."""
    base = step_params(PlatformConfig())._replace(entry_order_type=OrderType.Market)
    return base._replace(**overrides)


def static(n: int, themes=None, k: int = 1, cap=1.0, trades=10, **over) -> StepStatic:
    """Static arrays for `n` symbols without themes or minimums unless given."""
    out = StepStatic(
        theme_id=np.array(themes if themes is not None else [-1] * n, dtype=np.int64),
        base_increment=np.zeros(n),
        quote_increment=np.zeros(n),
        min_size=np.zeros(n),
        min_notional=np.zeros(n),
        strategy_cap=np.full(k, cap, dtype=np.float64),
        strategy_max_trades=np.full(k, trades, dtype=np.int64),
        regime_mult=np.array([1.0, 0.6, 0.3, 0.0]),
        symbol_key=np.arange(n, dtype=np.int64),
    )
    return out._replace(**over)


def state(n: int, cash: float = EQUITY, held=None, bar_no: int = BAR):
    """Return `(account, positions)` with `held = {symbol: (qty, price)}` bought at `price`."""
    account, positions = new_state_nb(n, cash)
    for s, (qty, price) in (held or {}).items():
        apply_fill(account, positions, s, Side.Buy, qty, price, 0.0, bar_no - 100,
                   Purpose.Entry, 0, 0.1, 0.0, 0, 0, 0.0)  # fmt: skip
        account[Acc.Cash] += qty * price  # keep `cash` as given
    equity = account[Acc.Cash] + sum(q * p for q, p in (held or {}).values())
    for i in (Acc.Equity, Acc.PeakEquity, Acc.DayStartEquity, Acc.WeekStartEquity):
        account[i] = equity
    account[Acc.DayId] = DAY
    account[Acc.WeekId] = WEEK
    return account, positions


def step(p, st, account, positions, close, weight, *, block=None, status=None, regime=Regime.Bull,
         strategy=None, stop_pct=None, bar_no=BAR, day_id=DAY, week_id=WEEK):  # fmt: skip
    """Run one `step_nb`; return `(orders, reasons[N_REASONS] summed over strategies, symbols)`
    and keep the per-symbol counts in `step.by_symbol`."""
    n = len(close)
    k = st.strategy_cap.shape[0]
    close = np.asarray(close, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    orders = np.zeros(2 * n + 8, dtype=ORDER_DT)
    reasons = np.zeros((k, n, N_REASONS), dtype=np.int64)
    count = step_bar(
        bar_no, day_id, week_id, close, weight,
        np.asarray(stop_pct if stop_pct is not None else [np.nan] * n, dtype=np.float64),
        np.full(n, np.nan),
        np.asarray(strategy if strategy is not None else [0] * n, dtype=np.int64),
        np.asarray(block if block is not None else [0] * n, dtype=np.int64),
        np.asarray(status if status is not None else [0] * n, dtype=np.int64),
        regime, p, st, account, positions, orders, reasons,
        new_workspace_nb(n, st.theme_id, k),
    )  # fmt: skip
    step.by_symbol = reasons.sum(axis=0)
    return orders[:count], reasons.sum(axis=(0, 1))


def buys(orders):
    return orders[orders["side"] == Side.Buy]


def spent(orders) -> float:
    """USD committed by the buys (market: notional incl. fee)."""
    b = buys(orders)
    return float(b["notional"].sum() + (b["qty"] * b["limit_price"]).sum(where=b["qty"] > 0))


# --------------------------------------------------------------------------------------------
# caps
# --------------------------------------------------------------------------------------------


def test_total_cap_six_five_pct_entries_capped_at_25_pct():
    n = 6
    weight = [0.05] * n
    loose, _ = step(
        params(total_cap=1.0, max_positions=10), static(n), *state(n), [100.0] * n, weight
    )
    assert spent(loose) > 0.25 * EQUITY  # without the cap: 30 %
    orders, reasons = step(params(max_positions=10), static(n), *state(n), [100.0] * n, weight)
    assert spent(orders) <= 0.25 * EQUITY * (1 + 1e-12)
    assert reasons[Reason.TotalCap] == 1
    assert len(buys(orders)) == 5


def test_total_cap_binds_while_a_universe_symbol_has_no_price_yet():
    # a symbol that has never printed a close (NaN last price, e.g. listed later than the
    # others) once made the total exposure NaN, which switched the total cap off
    n = 7
    weight = [0.05] * 6 + [np.nan]
    close = [100.0] * 6 + [np.nan]
    orders, reasons = step(params(max_positions=10), static(n), *state(n), close, weight)
    assert spent(orders) <= 0.25 * EQUITY * (1 + 1e-12)
    assert reasons[Reason.TotalCap] == 1
    assert len(buys(orders)) == 5


def test_asset_cap_twenty_pct_proposal_shrunk_to_5_pct():
    loose, _ = step(
        params(asset_cap=1.0, theme_cap=1.0, total_cap=1.0), static(1), *state(1), [100.0], [0.2]
    )
    assert spent(loose) == pytest.approx(0.2 * EQUITY)
    orders, reasons = step(params(), static(1), *state(1), [100.0], [0.2])
    assert spent(orders) == pytest.approx(0.05 * EQUITY)
    assert reasons[Reason.AssetCap] == 1


def test_theme_cap_three_entries_one_theme_capped_at_10_pct():
    st = static(3, themes=[0, 0, 0])
    loose, _ = step(params(theme_cap=1.0), st, *state(3), [100.0] * 3, [0.05] * 3)
    assert spent(loose) == pytest.approx(0.15 * EQUITY)
    orders, reasons = step(params(), st, *state(3), [100.0] * 3, [0.05] * 3)
    assert spent(orders) <= 0.10 * EQUITY * (1 + 1e-12)
    assert reasons[Reason.ThemeCap] == 1


def test_max_positions_seven_proposals_five_entries():
    n = 7
    p = params(total_cap=1.0, theme_cap=1.0)
    loose, _ = step(p._replace(max_positions=10), static(n), *state(n), [100.0] * n, [0.05] * n)
    assert len(buys(loose)) == 7
    orders, reasons = step(p, static(n), *state(n), [100.0] * n, [0.05] * n)
    assert len(buys(orders)) == 5
    assert reasons[Reason.MaxPositions] == 2


def test_pending_orders_count_toward_every_cap():
    n = 4
    account, positions = state(n)
    # an open buy order of 4.5 % on symbol 0 (theme 0) and 20 % already pending elsewhere
    positions[0, Pos.PendingBuyNotional] = 450.0
    positions[3, Pos.PendingBuyNotional] = 1_600.0
    positions[3, Pos.Strategy] = 0
    account[Acc.ReservedCash] = 2_050.0
    st = static(n, themes=[0, 0, -1, -1])
    p = params(max_positions=3)
    orders, reasons = step(p, st, account, positions, [100.0] * n, [0.05] * n)
    by_symbol = step.by_symbol
    assert by_symbol[0, Reason.AlreadyPending] == 1  # asset: the same symbol is pending
    # theme: 4.5 % pending + 5 % new would be 9.5 %, fits; total: 20.5 % pending leaves 4.5 %
    assert spent(orders) <= (0.25 * EQUITY - 2_050.0) * (1 + 1e-12)
    assert by_symbol[1, Reason.TotalCap] == 1
    # positions: 2 pending + symbol 1 = 3 = max, so symbol 2 is blocked
    assert by_symbol[2, Reason.MaxPositions] == 1
    assert len(buys(orders)) == 1


def test_pending_orders_count_toward_theme_cap():
    account, positions = state(2)
    positions[0, Pos.PendingBuyNotional] = 900.0
    orders, reasons = step(
        params(), static(2, themes=[0, 0]), account, positions, [100.0] * 2, [0, 0.05]
    )
    assert spent(orders) == pytest.approx(100.0)
    assert reasons[Reason.ThemeCap] == 1


def test_strategy_budget_binds_before_global_caps():
    # strategy 0 may hold 5 %; it proposes two 5 % entries: the second is refused by its budget
    st = static(3, k=2, cap=0.05)._replace(strategy_cap=np.array([0.05, 0.25]))
    loose_st = st._replace(strategy_cap=np.array([1.0, 1.0]))
    loose, _ = step(params(), loose_st, *state(3), [100.0] * 3, [0.05] * 3, strategy=[0, 0, 1])
    assert len(buys(loose)) == 3
    weight = [0.08, 0.05, 0.05]
    orders, reasons = step(params(), st, *state(3), [100.0] * 3, weight, strategy=[0, 0, 1])
    assert list(buys(orders)["symbol"]) == [0, 2]
    assert spent(orders) == pytest.approx(1_000.0)
    # budget and asset cap both leave 5 % of the 8 %: the tie is counted as the budget
    assert step.by_symbol[0, Reason.StrategyBudget] == 1
    assert step.by_symbol[0, Reason.AssetCap] == 0
    assert step.by_symbol[1, Reason.StrategyBudget] == 1


def test_strategy_trades_per_bar_one_of_three_entries():
    st = static(3, trades=1)
    orders, reasons = step(params(), st, *state(3), [100.0] * 3, [0.03] * 3)
    assert len(buys(orders)) == 1
    assert reasons[Reason.StrategyTradesPerBar] == 2


# --------------------------------------------------------------------------------------------
# cooldowns, loss stops, breakers, kill switch
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("purpose", "bars", "reason"),
                         [(Purpose.Exit, 4, Reason.Cooldown), (Purpose.StopLoss, 24, Reason.StopCooldown)])  # fmt: skip
def test_cooldown_after_fill_and_stop_blocks_reentry_until_expiry(purpose, bars, reason):
    p = params()
    account, positions = state(1, held={0: (1.0, 100.0)})
    apply_fill(account, positions, 0, Side.Sell, 1.0, 100.0, 0.0, BAR, purpose, 0, 0.0, 0.0,
               p.cooldown_fill_bars, p.cooldown_stop_bars, 0.0)  # fmt: skip
    for bar in (BAR, BAR + bars - 1):
        orders, reasons = step(p, static(1), account, positions, [100.0], [0.05], bar_no=bar)
        assert len(orders) == 0
        assert reasons[reason] == 1
    orders, _ = step(p, static(1), account, positions, [100.0], [0.05], bar_no=BAR + bars)
    assert len(buys(orders)) == 1
    # without cooldowns the entry goes through at once
    account, positions = state(1, held={0: (1.0, 100.0)})
    apply_fill(
        account, positions, 0, Side.Sell, 1.0, 100.0, 0.0, BAR, purpose, 0, 0.0, 0.0, 0, 0, 0.0
    )
    assert len(step(p, static(1), account, positions, [100.0], [0.05])[0]) == 1


def test_daily_loss_stop_unrealized_loss_blocks_until_next_utc_day():
    p = params(max_drawdown=1.0, weekly_loss=1.0)
    account, positions = state(2, cash=9_500.0, held={0: (5.0, 100.0)})  # 10 000 at day start
    # -8 % on the position = -0.4 % ... make it -80 %: equity 9 600 = -4 % <= -3 %
    orders, reasons = step(p, static(2), account, positions, [20.0, 100.0], [np.nan, 0.05])
    assert len(buys(orders)) == 0
    assert reasons[Reason.DailyLossStop] == 1
    # recovered later the same UTC day: still no entries (latched for the day)
    orders, reasons = step(p, static(2), account, positions, [100.0, 100.0], [np.nan, 0.05],
                           bar_no=BAR + 1)  # fmt: skip
    assert len(buys(orders)) == 0
    assert reasons[Reason.DailyLossStop] == 1
    # next UTC day: entries again
    orders, _ = step(p, static(2), account, positions, [100.0, 100.0], [np.nan, 0.05],
                     bar_no=BAR + 24, day_id=DAY + 1)  # fmt: skip
    assert len(buys(orders)) == 1
    # without the stop the loss bar trades
    account, positions = state(2, cash=9_500.0, held={0: (5.0, 100.0)})
    orders, _ = step(
        p._replace(daily_loss=1.0), static(2), account, positions, [20.0, 100.0], [np.nan, 0.05]
    )
    assert len(buys(orders)) == 1


def test_weekly_loss_stop_blocks_until_next_iso_week():
    p = params(max_drawdown=1.0, daily_loss=1.0)
    account, positions = state(2, cash=9_000.0, held={0: (10.0, 100.0)})
    account[Acc.DayStartEquity] = 1e9  # irrelevant (daily stop off)
    orders, reasons = step(p, static(2), account, positions, [20.0, 100.0], [np.nan, 0.05])
    assert len(buys(orders)) == 0
    assert reasons[Reason.WeeklyLossStop] == 1
    # a new UTC day inside the same ISO week: still blocked
    orders, reasons = step(p, static(2), account, positions, [100.0, 100.0], [np.nan, 0.05],
                           bar_no=BAR + 24, day_id=DAY + 1)  # fmt: skip
    assert len(buys(orders)) == 0
    assert reasons[Reason.WeeklyLossStop] == 1
    orders, _ = step(p, static(2), account, positions, [100.0, 100.0], [np.nan, 0.05],
                     bar_no=BAR + 24 * 7, day_id=DAY + 7, week_id=WEEK + 1)  # fmt: skip
    assert len(buys(orders)) == 1


def test_weekly_loss_stop_iso_week_starts_on_monday():
    # the simulator's week id: (day + 3) // 7 with day 0 = Thursday 1970-01-01
    monday = np.datetime64("2024-01-01", "D").astype(np.int64)  # a Monday
    assert (monday + 3) // 7 != (monday - 1 + 3) // 7
    assert all((monday + d + 3) // 7 == (monday + 3) // 7 for d in range(7))


def test_max_drawdown_breaker_from_peak_latches():
    p = params(daily_loss=1.0, weekly_loss=1.0)
    account, positions = state(2, cash=8_400.0)
    account[Acc.PeakEquity] = 10_000.0  # -16 % from peak
    orders, reasons = step(p, static(2), account, positions, [100.0, 100.0], [0.05, 0.05])
    assert len(orders) == 0
    assert reasons[Reason.DrawdownBreaker] == 2
    account[Acc.Cash] = 9_900.0
    orders, reasons = step(p, static(2), account, positions, [100.0, 100.0], [0.05, 0.05])
    assert len(orders) == 0
    assert account[Acc.DrawdownBreaker] == 1.0
    account, positions = state(2, cash=8_400.0)
    account[Acc.PeakEquity] = 10_000.0
    orders, _ = step(
        p._replace(max_drawdown=1.0), static(2), account, positions, [100.0] * 2, [0.05] * 2
    )
    assert len(buys(orders)) == 2


def test_kill_switch_no_orders_at_all():
    held = {0: (5.0, 100.0)}
    args = ([50.0, 100.0], [0.0, 0.05])  # symbol 0 stopped out and exiting, symbol 1 entering
    orders, _ = step(params(), static(2), *state(2, held=held), *args)
    assert len(orders) == 2
    orders, reasons = step(params(kill_switch=True), static(2), *state(2, held=held), *args)
    assert len(orders) == 0
    assert reasons[Reason.KillSwitch] == 1


# --------------------------------------------------------------------------------------------
# product status, staleness, regime
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status",
    [ProductStatus.PostOnly, ProductStatus.LimitOnly, ProductStatus.CancelOnly,
     ProductStatus.Offline, ProductStatus.Unknown, 99],
)  # fmt: skip
def test_product_status_not_online_blocks_entries(status):
    assert len(step(params(), static(1), *state(1), [100.0], [0.05])[0]) == 1
    orders, reasons = step(params(), static(1), *state(1), [100.0], [0.05], status=[status])
    assert len(orders) == 0
    assert reasons[Reason.ProductStatus] == 1


def test_product_status_post_only_routes_exit_as_post_only_limit():
    orders, _ = step(params(), static(1), *state(1, held={0: (1.0, 100.0)}), [100.0], [0.0],
                     status=[ProductStatus.PostOnly])  # fmt: skip
    assert len(orders) == 1
    assert orders[0]["order_type"] == OrderType.LimitPostOnly


@pytest.mark.parametrize("status", [ProductStatus.CancelOnly, ProductStatus.Offline, 99])
def test_product_status_cancel_only_blocks_exit_with_reason(status):
    orders, reasons = step(params(), static(1), *state(1, held={0: (1.0, 100.0)}), [100.0], [0.0],
                           status=[status])  # fmt: skip
    assert len(orders) == 0
    assert reasons[Reason.ProductStatus] == 1


def test_data_staleness_missing_bar_or_stale_block_no_entry():
    orders, reasons = step(params(), static(2), *state(2), [np.nan, 100.0], [0.05, 0.05],
                           block=[0, Reason.StaleData])  # fmt: skip
    assert len(orders) == 0
    assert reasons[Reason.StaleData] == 2


def test_regime_crash_blocks_and_bear_shrinks_entries():
    bull, _ = step(params(), static(1), *state(1), [100.0], [0.05], regime=Regime.Bull)
    orders, reasons = step(params(), static(1), *state(1), [100.0], [0.05], regime=Regime.Crash)
    assert len(orders) == 0
    assert reasons[Reason.RegimeBlock] == 1
    orders, reasons = step(params(), static(1), *state(1), [100.0], [0.05], regime=Regime.Bear)
    assert spent(orders) == pytest.approx(0.3 * spent(bull))
    assert reasons[Reason.RegimeShrink] == 1


# --------------------------------------------------------------------------------------------
# auto-trim and stop-loss
# --------------------------------------------------------------------------------------------


def test_auto_trim_asset_price_rise_sells_back_to_cap():
    # 5 % at 100; price +30 %: 6.5 % > 5 % * 1.1
    account, positions = state(1, cash=9_500.0, held={0: (5.0, 100.0)})
    orders, _ = step(params(auto_trim=False), static(1), account, positions, [130.0], [np.nan])
    assert len(orders) == 0
    account, positions = state(1, cash=9_500.0, held={0: (5.0, 100.0)})
    orders, _ = step(params(), static(1), account, positions, [130.0], [np.nan])
    assert len(orders) == 1
    assert orders[0]["purpose"] == Purpose.Trim
    equity = 9_500.0 + 5.0 * 130.0
    left = (5.0 - orders[0]["qty"]) * 130.0
    assert left == pytest.approx(0.05 * equity)


def test_auto_trim_theme_and_total_trim_largest_contributors():
    # four 4.9 % positions in one theme at 100 -> +40 %: theme ~ 25 % > 10 % and total > 25 %
    held = dict.fromkeys(range(6), (4.9, 100.0))
    cash = EQUITY - 6 * 490.0
    p = params(asset_cap=0.1, theme_cap=0.15)
    st = static(6, themes=[0, 0, 0, 0, -1, -1])
    account, positions = state(6, cash=cash, held=held)
    close = [140.0, 150.0, 140.0, 140.0, 140.0, 100.0]
    orders, _ = step(p, st, account, positions, close, [np.nan] * 6)
    assert (orders["purpose"] == Purpose.Trim).all()
    assert orders[0]["symbol"] == 1  # the largest contributor of the theme goes first
    equity = account[Acc.Equity]
    value = positions[:, Pos.Qty] * np.array(close) - positions[:, Pos.PendingSellQty] * np.array(
        close
    )
    slack = 1 + p.trim_tolerance
    assert value[:4].sum() <= p.theme_cap * equity * slack + 1e-9
    assert value.sum() <= p.total_cap * equity * slack + 1e-9


def test_stop_loss_ten_pct_below_entry_sells():
    held = {0: (1.0, 100.0)}  # stop price 90 (state() passes 10 %)
    orders, _ = step(params(), static(1), *state(1, held=held), [90.5], [np.nan])
    assert len(orders) == 0
    orders, _ = step(params(), static(1), *state(1, held=held), [89.0], [np.nan])
    assert len(orders) == 1
    assert orders[0]["purpose"] == Purpose.StopLoss
    assert orders[0]["qty"] == 1.0


def test_stop_loss_default_ten_pct_caps_wider_strategy_stop():
    orders, _ = step(params(), static(1), *state(1), [100.0], [0.05], stop_pct=[0.3])
    assert orders[0]["stop_pct"] == pytest.approx(0.10)
    orders, _ = step(params(), static(1), *state(1), [100.0], [0.05], stop_pct=[0.04])
    assert orders[0]["stop_pct"] == pytest.approx(0.04)


# --------------------------------------------------------------------------------------------
# product minimums
# --------------------------------------------------------------------------------------------


def test_product_minimums_round_up_within_caps_only():
    fee = 0.006
    # proposal 0.09 % = $9 < min notional $10 after fees: rounded up, still within the 5 % cap
    st = static(1, min_notional=np.array([10.0]), base_increment=np.array([0.01]))
    orders, _ = step(params(), st, *state(1), [100.0], [0.0009])
    assert len(orders) == 1
    qty = orders[0]["notional"] / (100.0 * (1 + fee))
    assert qty * 100.0 * (1 - fee) >= 10.0  # min notional after fees
    # the minimum ($600) is above the 5 % asset cap: no order, BelowMinimum
    st = static(1, min_notional=np.array([600.0]))
    orders, reasons = step(params(), st, *state(1), [100.0], [0.05])
    assert len(orders) == 0
    assert reasons[Reason.BelowMinimum] == 1


def test_product_minimums_min_size_never_rounded_below():
    st = static(1, min_size=np.array([2.0]), base_increment=np.array([1.0]))
    orders, reasons = step(params(), st, *state(1, cash=3_000.0), [100.0], [0.05])
    assert len(orders) == 0
    assert reasons[Reason.BelowMinimum] == 1
    orders, _ = step(params(), st, *state(1), [100.0], [0.05])  # 5 % of 10 000 = 5 units
    assert orders[0]["notional"] == pytest.approx(4 * 100.0 * 1.006)


# --------------------------------------------------------------------------------------------
# universe (real stage 1 on a hand-built panel)
# --------------------------------------------------------------------------------------------

HOUR = 3_600 * 1_000_000_000
SYMBOLS = ("AAA-USD", "BBB-USD", "CCC-USD", "DDD-USD")


def _panel(n_bars=60, volume=None, jump_at=None):
    close = np.full((n_bars, 4), 100.0)
    if jump_at is not None:
        close[jump_at:, 2] = 140.0  # a 40 % one-bar move on a real (high) volume bar
    vol = np.full((n_bars, 4), 1_000_000.0) if volume is None else volume
    if jump_at is not None:
        vol[jump_at, 2] *= 10
    ts = np.arange(n_bars, dtype=np.int64) * HOUR + 1_704_067_200 * 1_000_000_000
    return Panel(ts, SYMBOLS, close.copy(), close * 1.001, close * 0.999, close.copy(), vol)


def _config(**universe) -> PlatformConfig:
    risk = RiskConfig(max_total_at_risk_pct=100, max_theme_at_risk_pct=100, max_asset_at_risk_pct=5,
                      max_open_positions=10, cooldown_after_fill_bars=0, auto_trim=False)  # fmt: skip
    base = {"min_quote_volume_usd": 1e6, "quote_volume_window_bars": 4, "max_universe_size": 10,
            "temporary_ban_hours": 10, "red_flag_move_pct": 20}  # fmt: skip
    base.update(universe)
    entry = StrategyEntry(enabled=True, budget=StrategyBudget(max_at_risk_pct=100,
                                                              max_new_trades_per_bar=10))  # fmt: skip
    cfg = PlatformConfig(
        universe=UniverseConfig(**base), strategies=StrategiesConfig(strategies={"ma_cross": entry})
    )
    return cfg.model_copy(update={"policy": cfg.policy.model_copy(update={"risk": risk})})


def _run_with_weights(panel, config, weight):
    inputs = decision_inputs(panel, config)
    w = np.full(panel.close.shape, weight)
    inputs = dataclasses.replace(inputs, weight=w, strategy=np.zeros(w.shape, dtype=np.int64))
    return run_backtest(panel, config, inputs)


def _entry_bars(result, symbol):
    orders = result.orders.filter(result.orders["symbol"] == symbol)
    return orders


def test_universe_eligibility_low_volume_spread_tier_size_block_entries():
    vol = np.full((60, 4), 1_000_000.0)
    vol[:, 0] = 1.0  # AAA: low volume
    config = _config(
        spread_bps_estimate={"BBB-USD": 50.0}, excluded=["CCC-USD"], max_universe_size=1
    )
    result = _run_with_weights(_panel(volume=vol), config, 0.01)
    symbols = set(result.orders["symbol"].to_list())
    assert symbols == {"DDD-USD"}
    counts = result.reason_counts.sum(axis=0)
    assert counts[0, Reason.LowVolume] > 0
    assert counts[1, Reason.WideSpread] > 0
    assert counts[2, Reason.ExcludedTier] > 0
    # loosen the universe: every symbol trades
    loose = _config(max_universe_size=10, min_quote_volume_usd=0.0)
    assert set(
        _run_with_weights(_panel(volume=vol), loose, 0.01).orders["symbol"].to_list()
    ) == set(SYMBOLS)


def test_universe_max_size_keeps_reason_universe_size():
    vol = np.full((60, 4), 1_000_000.0)
    vol[:, 3] = 2_000_000.0
    result = _run_with_weights(_panel(volume=vol), _config(max_universe_size=1), 0.01)
    assert set(result.orders["symbol"].to_list()) == {"DDD-USD"}
    counts = result.reason_counts.sum(axis=0)
    assert all(counts[s, Reason.UniverseSize] > 0 for s in range(3))


def test_universe_red_flag_ban_expires_after_temporary_ban_hours():
    panel = _panel(jump_at=30)
    weight = np.full(panel.close.shape, 0.01)
    weight[20:30] = 0.0  # flat before the red flag, so the ban is what stops re-entry
    result = _run_with_weights(panel, _config(temporary_ban_hours=10), weight)
    block = result.inputs.block_reason[:, 2]
    assert (block[30:40] == Reason.Banned).all()
    assert block[40] == Reason.Ok
    entries = result.orders.filter(
        (result.orders["symbol"] == "CCC-USD") & (result.orders["side"] == "buy")
    )
    ts = (entries["ts"].dt.epoch("ns").to_numpy() - panel.ts_ns[0]) // HOUR
    assert not ((ts >= 30) & (ts < 40)).any()
    assert (ts >= 40).any()
    assert result.reason_counts.sum(axis=0)[2, Reason.Banned] >= 10


def test_empty_universe_no_trade_with_reason():
    vol = np.full((60, 4), 1.0)
    result = _run_with_weights(_panel(volume=vol), _config(), 0.01)
    assert result.orders.height == 0
    assert result.reason_counts.sum(axis=(0, 1))[Reason.EmptyUniverse] > 0
