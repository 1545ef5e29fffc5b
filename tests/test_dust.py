"""Issue 14 items 4 and 5: an exit meant to close closes exactly (no dust position), and a sell
under the product minimums is refused as the venue refuses it (the position stays).

The rule of item 4 lives in `apply_fill_nb` (a sell leaving less than one base increment sells
the whole position), which the simulator and the live daemon both call; item 5 in
`_sell_order` (the decision sends no sell under the minimums and counts `BelowMinimum`) and in
the fill model `fill_order_nb` (such an order is `BelowMinimum`, no fill).
"""

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pytest

from live_bridge.store import FillRow, OrderRow
from signals.bars import load_bars, to_panel
from signals.config import load_config
from signals.decision.nb import new_workspace_nb
from signals.decision.params import product_status_codes, step_params, step_static
from signals.enums import N_REASONS, Acc, OrderType, Pos, Purpose, Reason, Side
from signals.records import ORDER_DT, Combined, Guards, Market
from sim.engine import fill_params, run_backtest
from sim.enums import OrderStatus
from sim.nb import new_curves, new_state_nb, simulate_nb
from tests.parity.conftest import (  # noqa: F401 (fixtures used by name)
    fixture_shipped_bars,
    fixture_venue,
    make_daemon,
    parity_config,
)
from tests.sim.conftest import default_config_with, panel_from_arrays
from tests.step_calls import apply_fill, step_bar

ROOT = Path(__file__).resolve().parents[1]
CONFIG = load_config(ROOT / "config")
PARAMS = step_params(CONFIG)
BAR = 480_000  # an absolute hourly bar number
BTC_INC = 1e-8

# The seed-42 fills of the issue: a BTC entry, an auto-trim, then the take profit whose qty
# `ceil_to_increment_nb` rounds to 0.01384623, a hair under the 0.013846230000000001 held
BTC_FILLS = (
    (Side.Buy, Purpose.Entry, 0.01526153, 32307.33, 1.9722371440596003),
    (Side.Sell, Purpose.Trim, 0.0014153, 36264.439203101254, 0.30795036482489524),
    (Side.Sell, Purpose.TakeProfit, 0.01384623, 37136.395844591236, 3.0851944694115265),
)


def _apply(account, positions, side, purpose, qty, price, fee, bar_no):
    return apply_fill(
        account, positions, 0, side, qty, price, fee, bar_no, purpose, 0, 0.1, 0.15,
        PARAMS.cooldown_fill_bars, PARAMS.cooldown_stop_bars, BTC_INC, PARAMS,
    )  # fmt: skip


def _step(account, positions, close, weight, static, bar_no):
    # one `step_nb` on one symbol; returns (orders, reason counts of that symbol)
    orders = np.zeros(8, dtype=ORDER_DT)
    reasons = np.zeros((1, 1, N_REASONS), dtype=np.int64)
    n = step_bar(
        bar_no, bar_no // 24, (bar_no // 24 + 3) // 7, np.array([close]), np.array([weight]),
        np.array([np.nan]), np.array([np.nan]), np.array([0]), np.array([0]), np.array([0]),
        -1, PARAMS, static, account, positions, orders, reasons,
        new_workspace_nb(1, static.theme_id, 1),
    )  # fmt: skip
    return orders[:n].copy(), reasons[0, 0]


# --- item 4: dust --------------------------------------------------------------------------


def test_apply_fill_take_profit_after_trim_closes_exactly_no_dust():
    account, positions = new_state_nb(1, 10_000.0)
    closed = [
        _apply(account, positions, side, purpose, qty, price, fee, BAR + i)
        for i, (side, purpose, qty, price, fee) in enumerate(BTC_FILLS)
    ]
    assert positions[0, Pos.Qty] == 0.0  # was 1.7e-18 BTC
    assert np.isnan(closed[0])
    assert np.isnan(closed[1])
    # the trade closed at the take profit, its PnL and fees booked there
    fees = sum(f[4] for f in BTC_FILLS)
    assert positions[0, Pos.TradeFees] == pytest.approx(fees, rel=1e-15)
    gross = 0.0014153 * 36264.439203101254 + (0.01526153 - 0.0014153) * 37136.395844591236
    expected = gross - 0.01526153 * 32307.33 - fees
    assert closed[2] == pytest.approx(expected, rel=1e-12)
    assert account[Acc.Cash] == pytest.approx(10_000.0 + expected, rel=1e-15)
    assert (positions[0, Pos.StopPrice], positions[0, Pos.TakePrice]) == (0.0, 0.0)
    assert positions[0, Pos.CooldownUntilBar] == BAR + 2 + PARAMS.cooldown_fill_bars
    # a remainder of one increment or more is a position: a later trim keeps it
    _apply(account, positions, Side.Buy, Purpose.Entry, 0.00000003, 37000.0, 0.0, BAR + 3)
    _apply(account, positions, Side.Sell, Purpose.Trim, 0.00000002, 37000.0, 0.0, BAR + 4)
    assert positions[0, Pos.Qty] == pytest.approx(1e-8, rel=1e-9)


def test_step_after_take_profit_fill_reenters_instead_of_selling_dust():
    # the bar after the take profit (price still above the take price): the old remainder was
    # "held", so the step sold 1.7e-18 BTC and blocked the entry; now the symbol is flat
    static = step_static(CONFIG, ("BTC-USD",), ("rules",))
    account, positions = new_state_nb(1, 10_000.0)
    for i, (side, purpose, qty, price, fee) in enumerate(BTC_FILLS):
        _apply(account, positions, side, purpose, qty, price, fee, BAR + i)
    bar_no = BAR + 2 + PARAMS.cooldown_fill_bars
    orders, _ = _step(account, positions, 37190.48641310313, 0.05, static, bar_no)
    assert orders["side"].tolist() == [Side.Buy]
    assert orders["purpose"].tolist() == [Purpose.Entry]


def test_simulate_seed17_btc_take_profit_after_trim_exits_at_its_fill():
    # the case on the shipped data and config (seen with seed 42 under the old
    # sequential fill draws; with draws keyed by order, seed 17 has it): the exit was dated
    # two bars late at the price of a second ~1e-18 BTC sell (2024-09-08 17:00, 37165.11)
    panel = to_panel(load_bars(ROOT / "data" / "sample_hourly.parquet"))
    result = run_backtest(panel, CONFIG.with_seed(17))
    entry = dt.datetime(2024, 9, 4, 21, tzinfo=dt.UTC)
    trade = result.trades.filter(
        (result.trades["symbol"] == "BTC-USD") & (result.trades["entry_ts"] == entry)
    ).row(0, named=True)
    assert trade["exit_ts"] == dt.datetime(2024, 9, 8, 15, tzinfo=dt.UTC)
    assert trade["exit_price"] == pytest.approx(37136.395844591236, rel=1e-15)
    assert trade["exit_reason"] == "take_profit"
    fills = result.fills
    assert fills.filter(fills["qty"] * fills["price"] < 1e-6).height == 0
    assert not np.any((result.final_positions[:, Pos.Qty] > 0.0)
                      & (result.final_positions[:, Pos.Qty] < 1e-8))  # fmt: skip


def test_daemon_fills_take_profit_after_trim_leave_no_dust(venue, tmp_path):
    # the live bridge applies venue fills through the same kernel (the rehearsal kept a
    # 2.8e-17 BTC remainder that blocked re-entry for good)
    config = parity_config()
    daemon = make_daemon(venue, tmp_path, config, ["BTC-USD", "ETH-USD"])
    s = daemon.symbols.index("BTC-USD")
    ts_ns = venue.clock.now_ns()
    with daemon._txn() as db:
        for i, (side, purpose, qty, price, fee) in enumerate(BTC_FILLS):
            cid = f"247-{BAR + i}-0-BTC-USD-{'B' if side == Side.Buy else 'S'}"
            order = OrderRow(
                client_order_id=cid, exchange_order_id=f"x{i}", bar_no=BAR + i, seq=0,
                symbol="BTC-USD", side=side, order_type=OrderType.Market, purpose=purpose,
                strategy=0, qty=qty, notional=0.0, limit_price=None, ref_price=price,
                stop_pct=0.1 if side == Side.Buy else 0.0, take_pct=0.0, status="intended",
                note="", created_ts_ns=ts_ns, updated_ts_ns=ts_ns,
            )  # fmt: skip
            daemon.store.insert_order(db, order)
            fill = FillRow(f"t{i}", cid, "BTC-USD", side, qty, price, fee, "TAKER", BAR + i + 1,
                           ts_ns)  # fmt: skip
            daemon._apply_fill(db, order, fill)
    try:
        assert daemon.positions[s, Pos.Qty] == 0.0
        assert daemon.positions[s, Pos.TakePrice] == 0.0
    finally:
        daemon.store.close()
        daemon.adapter.close()


def test_daemon_restarted_on_a_state_file_with_dust_closes_it(venue, tmp_path, caplog):
    # a state file written before the fix: 2.8e-17 BTC held, as in the rehearsal
    config = parity_config()
    daemon = make_daemon(venue, tmp_path, config, ["BTC-USD", "ETH-USD"])
    s = daemon.symbols.index("BTC-USD")
    daemon.positions[s, Pos.Qty] = 2.8e-17
    daemon.positions[s, Pos.LastPrice] = 40_000.0
    with daemon._txn() as db:
        daemon._save_state(db, venue.clock.now_ns())
    daemon.store.close()
    daemon.adapter.close()
    with caplog.at_level(logging.WARNING, logger="live_bridge"):
        again = make_daemon(venue, tmp_path, config, ["BTC-USD", "ETH-USD"])
    try:
        assert again.positions[s, Pos.Qty] == 0.0
        assert "closed a dust position of 2.8e-17 BTC-USD" in caplog.text
        assert again.store.load_state().positions[s, Pos.Qty] == 0.0  # saved, not only in memory
    finally:
        again.store.close()
        again.adapter.close()


# --- item 5: sells under the minimums ------------------------------------------------------


def test_step_exit_under_min_notional_not_sent_counts_below_minimum_until_price_lifts_it():
    # the DOGE case: 16.9 DOGE (1 USD minimum notional, ma_cross at seed 42) exited by
    # a market sell worth 16.9 x 0.058555 = 0.99 USD
    static = step_static(CONFIG, ("DOGE-USD",), ("rules",))
    account, positions = new_state_nb(1, 10_000.0)
    apply_fill(account, positions, 0, Side.Buy, 16.9, 0.0612, 0.004137, BAR, Purpose.Entry, 0,
               0.0, 0.0, 0, 0, static.base_increment[0])  # fmt: skip
    for bar in (BAR + 10, BAR + 11):
        orders, reasons = _step(account, positions, 0.058555, 0.0, static, bar)
        assert len(orders) == 0
        assert reasons[Reason.BelowMinimum] == 1
        assert positions[0, Pos.Qty] == 16.9  # the position stays
        assert positions[0, Pos.PendingSellQty] == 0.0
    # at 16.9 x 0.0592 = 1.0005 USD the exit goes
    orders, reasons = _step(account, positions, 0.0592, 0.0, static, BAR + 12)
    assert (orders["side"].tolist(), orders["qty"].tolist()) == ([Side.Sell], [16.9])
    assert reasons[Reason.BelowMinimum] == 0


def test_simulate_exit_under_min_notional_waits_for_the_minimum_then_closes():
    # a 1.5 USD DOGE entry whose price halves: the exits while it is worth under 1 USD used to
    # fill (0.74 USD); now none fills, `BelowMinimum` is counted, and the exit fills once the
    # price is back (24.6 DOGE x 0.05 = 1.23 USD)
    config = default_config_with({"policy": {"execution": {
        "entry_order_type": "market", "slippage_bps": 0, "slippage_vol_mult": 0,
        "partial_fills": False,
    }, "risk": {"stop_loss_pct": 90}}})  # fmt: skip
    close = np.array([0.06] * 4 + [0.03] * 6 + [0.05] * 4)
    panel = panel_from_arrays(close, close, close, close, symbols=("DOGE-USD",))
    n_bars = close.shape[0]
    weight = np.full((n_bars, 1), np.nan)
    weight[1, 0] = 0.00015  # 1.5 USD of 10 000
    weight[5:, 0] = 0.0  # exit wanted from bar 5 on
    one = np.zeros((1, 1))
    bar_ns = 3_600 * 1_000_000_000
    orders, status, fills, trades, *_, reasons, _, positions = simulate_nb(
        Market(panel.ts_ns, bar_ns, panel.open, panel.high, panel.low, panel.close, one + np.nan),
        Combined(weight, one + np.nan, one + np.nan, np.zeros((1, 1), dtype=np.int64)),
        Guards(np.zeros((1, 1), dtype=np.int64), np.full(n_bars, -1, dtype=np.int64),
               product_status_codes(config, panel.symbols)),
        step_params(config), step_static(config, panel.symbols, ("ma_cross",)),
        fill_params(config), 10_000.0, 42, new_curves(n_bars),
    )  # fmt: skip
    sells = fills[fills["side"] == Side.Sell]
    assert sells.shape[0] == 1
    assert sells["bar"][0] == 11  # decided at the close of bar 10, the first at 0.05
    assert sells["qty"][0] * sells["price"][0] >= 1.0
    assert reasons[0, 0, Reason.BelowMinimum] == 5  # bars 5..9 at 0.03
    assert not np.any(status == OrderStatus.BelowMinimum)  # the decision sent none of them
    assert trades.shape[0] == 1
    assert trades["exit_purpose"][0] == Purpose.Exit
    assert positions[0, Pos.Qty] == 0.0
    assert orders.shape[0] == 2
