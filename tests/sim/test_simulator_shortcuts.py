"""`simulate_nb`'s shortcuts change nothing: it equals a plain loop that steps every bar.

`simulate_nb` skips work on quiet bars: flat bars with no entry proposal are not marked,
runs of quiet bars are advanced in one call (`_quiet_run_nb`), and while one symbol is held
(`_held_one_run_nb`) or several are (`_held_many_run_nb`) a specialised path marks and checks
bars without the full step.
`simulate_every_bar` below does none of that: for every bar it fills the previous bar's orders
with the same fill model and random draws, then calls the full `step_nb` (which marks,
rolls the day and week, and decides), and writes the curves from the state. Records, curves,
reason counts and the final state must be equal bit for bit.
"""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signals.decision.nb import (
    DAY_NS,
    apply_fill_nb,
    mark_periods_breakers_nb,
    new_workspace_nb,
    nothing_to_decide_nb,
    period_ids_nb,
    step_nb,
)
from signals.decision.params import product_status_codes, step_params, step_static
from signals.enums import N_REASONS, Acc, Pos, Purpose, Side
from signals.pipeline import decision_inputs
from signals.records import ORDER_DT, Book, Curves, Market, StepOut, new_order
from sim.engine import fill_params, guards_of, market_of, proposals_of
from sim.enums import FILL_DT, N_CURSOR, TRADE_DT, Cursor, OrderStatus
from sim.nb import (
    _held_many_run_nb,
    _held_one_run_nb,
    _write_curves_nb,
    fill_draws_nb,
    fill_order_nb,
    new_curves,
    new_state_nb,
    simulate,
    simulate_nb,
)
from tests.sim.conftest import default_config_with, panel_from_arrays
from tests.strategies import sim_markets

INITIAL_CASH = 10_000.0
CONFIGS = {
    "default": default_config_with(),
    # one big position at a time (the single-position path runs on most held bars), a tight
    # stop and a daily loss stop that trips
    "one_big": default_config_with(
        {"policy": {"risk": {"max_total_at_risk_pct": 100, "max_theme_at_risk_pct": 100,
                             "max_asset_at_risk_pct": 100, "max_open_positions": 1,
                             "stop_loss_pct": 2, "daily_loss_stop_pct": 1}}},
        target_weight_pct=90,
    ),
    # auto-trim with a tight tolerance: the single-position path must stop where a trim is due
    "trim": default_config_with(
        {"policy": {"risk": {"max_total_at_risk_pct": 30, "max_theme_at_risk_pct": 20,
                             "max_asset_at_risk_pct": 10, "trim_tolerance_pct": 1}}},
        target_weight_pct=10,
    ),
    # loose breakers and stops far away: long held runs with new equity peaks
    "loose": default_config_with(
        {"policy": {"risk": {"daily_loss_stop_pct": 2, "weekly_loss_stop_pct": 4,
                             "max_drawdown_pct": 6}}},
    ),
}  # fmt: skip
# `step_params` overrides per case. A valid config has asset <= theme <= total caps, so with one
# position the asset cap always binds first; the kernel does not rely on that rule, so these
# cases make the theme and then the total cap bind (and the weekly stop trip first).
PARAMS_OVERRIDES = {
    "trim_theme": ("trim", {"theme_cap": 0.06, "asset_cap": 0.1, "total_cap": 0.3}),
    "trim_total": ("trim", {"total_cap": 0.06, "asset_cap": 0.1, "theme_cap": 0.2}),
    # the weekly loss stop trips before the daily one (tighter), the drawdown breaker late
    "weekly_first": ("one_big", {"daily_loss": 0.05, "weekly_loss": 0.015, "max_drawdown": 0.4}),
}
CASES = sorted([*CONFIGS, *PARAMS_OVERRIDES])


def _case(name):
    """Return `(config, StepParams)` of a case."""
    base, overrides = PARAMS_OVERRIDES.get(name, (name, {}))
    config = CONFIGS[base]
    return config, step_params(config)._replace(**overrides)


def simulate_every_bar(panel, inputs, config, params, seed):
    """Return `simulate_nb`'s outputs from a loop that runs the full step on every bar."""
    ts_ns, bar_ns = panel.ts_ns, inputs.bar_ns
    close = panel.close
    n_bars, n_symbols = close.shape
    static = step_static(config, panel.symbols, inputs.strategy_names)
    fill = fill_params(config)
    status_codes = product_status_codes(config, panel.symbols)
    n_strategies = static.strategy_cap.shape[0]
    account, positions = new_state_nb(n_symbols, INITIAL_CASH)
    book = Book(account, positions, new_workspace_nb(n_symbols, static.theme_id, n_strategies))
    reason_counts = np.zeros((max(n_strategies, 1), n_symbols, N_REASONS), dtype=np.int64)
    step_orders = np.empty(2 * n_symbols + 8, dtype=ORDER_DT)
    proposals, guards = proposals_of(inputs), guards_of(inputs, status_codes)
    orders, status, fills, trades = [], [], [], []
    equity, cash, exposure = np.empty(n_bars), np.empty(n_bars), np.empty(n_bars)
    pending: range = range(0)
    for t in range(n_bars):
        for j in pending:
            order = orders[j]
            s = int(order["symbol"])
            u1, u2 = fill_draws_nb(
                seed, order["bar_no"], static.symbol_key[s], order["side"], order["purpose"]
            )
            st_, qty, price, fee, is_maker = fill_order_nb(
                order, panel.open[t, s], panel.high[t, s], panel.low[t, s],
                inputs.vol[t - 1, s], account[Acc.Cash], positions[s, Pos.Qty], params, static,
                fill, u1, u2,
            )  # fmt: skip
            status[j] = st_
            if st_ not in (OrderStatus.Filled, OrderStatus.Partial) or qty <= 0.0:
                continue
            bar_no = ts_ns[t] // bar_ns
            entry_bar = positions[s, Pos.EntryBar]
            closed = apply_fill_nb(
                account, positions, order, qty, price, fee, bar_no, params, static
            )
            fills.append(
                (j, t, s, order["side"], order["order_type"], order["purpose"], qty, price, fee,
                 is_maker)
            )  # fmt: skip
            if np.isfinite(closed):
                trades.append(
                    (s, int(positions[s, Pos.Strategy]), int(entry_bar), bar_no,
                     positions[s, Pos.AvgEntry], price,
                     positions[s, Pos.EntryNotional] / positions[s, Pos.AvgEntry], closed,
                     positions[s, Pos.TradeFees], order["purpose"])
                )  # fmt: skip
        positions[:, Pos.PendingBuyNotional] = 0.0
        positions[:, Pos.PendingSellQty] = 0.0
        account[Acc.ReservedCash] = 0.0
        day_id, week_id = period_ids_nb(ts_ns[t])
        n_new = step_nb(
            t, ts_ns[t] // bar_ns, day_id, week_id, close, proposals, guards, params, static,
            book, StepOut(step_orders, reason_counts),
        )  # fmt: skip
        pending = range(len(orders), len(orders) + n_new)
        for j in range(n_new):
            orders.append(step_orders[j].copy())
            status.append(OrderStatus.Open)
        held = positions[:, Pos.Qty] > 0.0
        equity[t] = account[Acc.Equity]
        cash[t] = account[Acc.Cash]
        gross = 0.0
        for s in np.flatnonzero(held):
            gross += positions[s, Pos.Qty] * positions[s, Pos.LastPrice]
        exposure[t] = gross / equity[t] if equity[t] > 0.0 else 0.0
    return (
        np.array(orders, dtype=ORDER_DT), np.array(status, dtype=np.int64),
        np.array(fills, dtype=FILL_DT), np.array(trades, dtype=TRADE_DT), equity, cash,
        exposure, reason_counts, account, positions,
    )  # fmt: skip


def _simulate(panel, inputs, config, params, seed, driver=simulate_nb, **per_bar):
    """Run `driver` (`simulate_nb` or `simulate`) on `inputs`; `per_bar` replaces some of its
    per-bar arrays by name."""
    inputs = dataclasses.replace(inputs, **per_bar)
    return driver(
        market_of(panel, inputs), proposals_of(inputs),
        guards_of(inputs, product_status_codes(config, panel.symbols)), params,
        step_static(config, panel.symbols, inputs.strategy_names), fill_params(config),
        INITIAL_CASH, seed, new_curves(panel.close.shape[0]),
    )  # fmt: skip


NAMES = ("orders", "status", "fills", "trades", "equity", "cash", "exposure", "reason_counts",
         "account", "positions")  # fmt: skip


@settings(max_examples=50, deadline=None)
@given(
    market=sim_markets(max_bars=240),
    seed=st.integers(0, 2**31 - 1),
    case=st.sampled_from(CASES),
)
def test_simulate_equals_stepping_every_bar(market, seed, case):
    config, params = _case(case)
    panel = panel_from_arrays(*market[:5], symbols=market[5])
    inputs = decision_inputs(panel, config)
    fast = _simulate(panel, inputs, config, params, seed)
    slow = simulate_every_bar(panel, inputs, config, params, seed)
    for name, a, b in zip(NAMES, fast, slow, strict=True):
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), name


def test_flat_rows_skipped_unmarked_leave_the_last_prices_stepping_gives():
    # rows 0-7 are flat (no position, no entry proposal) and skipped unmarked; row 8 proposes
    # an entry in BTC, so it is marked, while ETH has no close there: ETH's last price must be
    # its close of row 7, as marking every row gives (hypothesis found the stale one)
    n_bars = 12
    close = np.column_stack([np.linspace(100.0, 110.0, n_bars), np.linspace(50.0, 61.0, n_bars)])
    close[8:, 1] = np.nan
    open_ = np.vstack([close[:1], close[:-1]])
    volume = np.full_like(close, 1e6)
    config, params = _case("default")
    panel = panel_from_arrays(open_, close * 1.001, close * 0.999, close, volume,
                              symbols=("BTC-USD", "ETH-USD"))  # fmt: skip
    inputs = decision_inputs(panel, config)
    weight = np.full(close.shape, np.nan)
    weight[8, 0] = 0.05
    fast = _simulate(panel, inputs, config, params, 1, weight=weight)
    slow = simulate_every_bar(panel, dataclasses.replace(inputs, weight=weight), config, params, 1)
    assert fast[9][1, Pos.LastPrice] == close[7, 1]
    for name, a, b in zip(NAMES, fast, slow, strict=True):
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), name


def test_simulate_equals_stepping_every_bar_on_a_long_single_position_run():
    # a deterministic case the single-position path dominates: one symbol trending up (new
    # peaks), then down through the stop, across several UTC days
    n_bars = 400
    trend = np.r_[np.linspace(0.0, 0.25, 200), np.linspace(0.25, -0.2, 200)]
    rng = np.random.default_rng(3)
    close = (100.0 * np.exp(trend + np.cumsum(rng.normal(0.0, 0.004, n_bars)))).reshape(-1, 1)
    open_ = np.vstack([close[:1], close[:-1]])
    high, low = np.maximum(open_, close) * 1.002, np.minimum(open_, close) * 0.998
    volume = np.full_like(close, 1e5)
    config, params = _case("one_big")
    panel = panel_from_arrays(open_, high, low, close, volume, symbols=("BTC-USD",))
    inputs = decision_inputs(panel, config)
    fast = _simulate(panel, inputs, config, params, 5)
    slow = simulate_every_bar(panel, inputs, config, params, 5)
    assert fast[2].shape[0] >= 2, "the case should trade"
    assert (fast[6] > 0.0).sum() > 50, "the case should hold a position for many bars"
    for name, a, b in zip(NAMES, fast, slow, strict=True):
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), name


@settings(max_examples=25, deadline=None)
@given(market=sim_markets(max_bars=200), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_simulate_one_row_inputs_equal_the_repeated_row(market, seed, data):
    # `stop_pct`, `take_pct`, `strategy`, `block_reason` and `vol` may be one [1, S] row for
    # every bar: the run must be the one with that row repeated over [T, S]
    config, params = _case(data.draw(st.sampled_from(CASES)))
    panel = panel_from_arrays(*market[:5], symbols=market[5])
    inputs = decision_inputs(panel, config)
    n_bars, n_symbols = panel.close.shape
    rows = {
        "stop_pct": data.draw(st.sampled_from((np.nan, 0.02, 0.05))),
        "take_pct": data.draw(st.sampled_from((np.nan, 0.0, 0.03))),
        "strategy": np.int64(0),
        "block_reason": np.int64(data.draw(st.sampled_from((0, 0, 3)))),
        "vol": data.draw(st.sampled_from((np.nan, 0.01))),
    }
    one_row = {k: np.full((1, n_symbols), v) for k, v in rows.items()}
    repeated = {k: np.repeat(v, n_bars, axis=0) for k, v in one_row.items()}
    runs = [
        _simulate(panel, inputs, config, params, seed, **arrays) for arrays in (one_row, repeated)
    ]
    for name, a, b in zip(NAMES, *runs, strict=True):
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), name


@settings(max_examples=25, deadline=None)
@given(
    market=sim_markets(max_bars=240), seed=st.integers(0, 2**31 - 1), case=st.sampled_from(CASES)
)
def test_simulate_from_python_equals_simulate_nb(market, seed, case):
    # `simulate` runs `simulate_nb`'s body in the interpreter: same records, curves and state
    config, params = _case(case)
    panel = panel_from_arrays(*market[:5], symbols=market[5])
    inputs = decision_inputs(panel, config)
    runs = [
        _simulate(panel, inputs, config, params, seed, driver=d) for d in (simulate_nb, simulate)
    ]
    for name, a, b in zip(NAMES, *runs, strict=True):
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), name


def test_simulate_from_python_equals_simulate_nb_when_the_record_buffers_grow():
    # a choppy market that trades on many bars: the record buffers start at a record per 32
    # bars and double several times, and `simulate` re-enters the bar loop after each
    n_bars, n_symbols = 1_500, 3
    rng = np.random.default_rng(11)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, (n_bars, n_symbols)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]])
    high, low = np.maximum(open_, close) * 1.01, np.minimum(open_, close) * 0.99
    volume = 1e5 * np.exp(rng.normal(0.0, 1.0, (n_bars, n_symbols)))
    config, params = _case("default")
    panel = panel_from_arrays(
        open_, high, low, close, volume, symbols=("BTC-USD", "ETH-USD", "SOL-USD")
    )
    inputs = decision_inputs(panel, config)
    runs = [_simulate(panel, inputs, config, params, 9, driver=d) for d in (simulate_nb, simulate)]
    room = max(16, n_bars // 32)
    assert runs[0][0].shape[0] > 4 * room, "the case should grow the order buffer three times"
    assert runs[0][3].shape[0] > 2 * room, "and the trade buffer twice"
    for name, a, b in zip(NAMES, *runs, strict=True):
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), name


def test_simulate_rejects_per_bar_inputs_of_another_shape():
    config, params = _case("default")
    close = np.full((30, 2), 100.0)
    panel = panel_from_arrays(close, close, close, close, symbols=("BTC-USD", "ETH-USD"))
    inputs = decision_inputs(panel, config)
    two_rows = np.zeros((2, 2))
    with pytest.raises(ValueError, match="one \\[1, S\\] row"):
        _simulate(panel, inputs, config, params, 1, stop_pct=two_rows)
    with pytest.raises(ValueError, match="`weight` must have the shape"):
        _simulate(panel, inputs, config, params, 1, weight=inputs.weight[:1])


@settings(max_examples=200, deadline=None)
@given(
    n_symbols=st.integers(1, 2),
    seed=st.integers(0, 2**32 - 1),
    loss=st.tuples(*[st.sampled_from((0.004, 0.01, 0.03, 1.0))] * 3),
    tripped=st.tuples(*[st.booleans()] * 3),
    trim=st.sampled_from((None, 0.3, 0.6)),
    weight_at=st.sampled_from((None, 40, 90)),
)
def test_held_one_run_equals_marking_and_checking_each_bar(
    n_symbols, seed, loss, tripped, trim, weight_at
):
    # The single-position path against the general per-bar path of `_quiet_run_nb` (mark and
    # roll, check nothing to decide, write the curves) on the same bars: every bar it claims
    # quiet must be quiet, and the state (breaker flags included, which a backtest only shows
    # when an entry is later blocked) and curves after it must be the same bits.
    rng = np.random.default_rng(seed)
    n_bars, held = 120, int(rng.integers(n_symbols))
    close = 100.0 * np.exp(np.cumsum(rng.standard_t(3, (n_bars, n_symbols)) * 0.006, axis=0))
    close[rng.random(close.shape) < 0.02] = np.nan
    close[:, held] = np.where(np.isnan(close[:, held]), 100.0, close[:, held])
    ts_ns = (19_700 * DAY_NS + int(rng.integers(24)) * 3_600 * 10**9
             + np.arange(n_bars, dtype=np.int64) * 3_600 * 10**9)  # fmt: skip
    weight = np.full((n_bars, n_symbols), np.nan)
    if weight_at is not None:
        weight[weight_at, int(rng.integers(n_symbols))] = 0.0
    config, params = _case("default")
    params = params._replace(
        daily_loss=loss[0], weekly_loss=loss[1], max_drawdown=loss[2],
        auto_trim=trim is not None, asset_cap=trim or 1.0, theme_cap=trim or 1.0,
        total_cap=trim or 1.0, trim_tolerance=0.05,
    )  # fmt: skip
    symbols = ("BTC-USD", "ETH-USD")[:n_symbols]
    static = step_static(config, symbols, ("rules", "ma_cross"))
    start = 1
    account, positions = new_state_nb(n_symbols, 10_000.0)
    entry = new_order(held, Side.Buy, Purpose.Entry, 0, stop_pct=rng.choice((0.0, 0.05)),
                      take_pct=rng.choice((0.0, 0.08)))  # fmt: skip
    apply_fill_nb(account, positions, entry, rng.uniform(5.0, 40.0), close[0, held], 1.0, 0,
                  params._replace(cooldown_fill_bars=0, cooldown_stop_bars=0), static)  # fmt: skip
    periods = _marked_at_bar_0(ts_ns, close, params, account, positions, rng, tripped)
    fast_state = (account.copy(), positions.copy(), periods.copy())
    fast_curves = [np.full(n_bars, -1.0) for _ in range(3)]
    # open/high/low/regime are only prefetched (hints): close and a zero regime stand in
    regime = np.zeros(n_bars, dtype=np.int64)
    market = Market(ts_ns, 3_600 * 10**9, close, close, close, close, close)
    stop = _held_one_run_nb(
        start, market, weight, regime, params, static,
        Book(fast_state[0], fast_state[1], new_workspace_nb(n_symbols, static.theme_id, 2)),
        Curves(*fast_curves), fast_state[2],
    )  # fmt: skip

    workspace = new_workspace_nb(n_symbols, static.theme_id, 2)
    book = Book(account, positions, workspace)
    curves = [np.full(n_bars, -1.0) for _ in range(3)]
    lo, hi = Cursor.DayLoNs, Cursor.DayHiNs
    for t in range(start, stop):
        if not periods[lo] <= ts_ns[t] < periods[hi]:
            periods[Cursor.DayId], periods[Cursor.WeekId] = period_ids_nb(ts_ns[t])
            periods[lo], periods[hi] = (periods[Cursor.DayId] * DAY_NS,
                                        (periods[Cursor.DayId] + 1) * DAY_NS)  # fmt: skip
        mark_periods_breakers_nb(account, positions, close, t, periods[Cursor.DayId],
                                 periods[Cursor.WeekId], params)  # fmt: skip
        assert nothing_to_decide_nb(t, close, weight, params, static, book), f"bar {t} not quiet"
        _write_curves_nb(account, positions, t, Curves(*curves))
        periods[Cursor.LastMarked] = t
    if stop < n_bars:
        # it stops only where the general path has to look: a weight, a missing close of the
        # held symbol, or a bar that is not quiet
        if not periods[lo] <= ts_ns[stop] < periods[hi]:
            day_id, week_id = period_ids_nb(ts_ns[stop])
        else:
            day_id, week_id = periods[Cursor.DayId], periods[Cursor.WeekId]
        at_stop = Book(account.copy(), positions.copy(), workspace)
        mark_periods_breakers_nb(at_stop.account, at_stop.positions, close, stop, day_id, week_id,
                                 params)  # fmt: skip
        assert (
            np.isfinite(weight[stop]).any()
            or not np.isfinite(close[stop, held])
            or not nothing_to_decide_nb(stop, close, weight, params, static, at_stop)
        ), f"stopped at quiet bar {stop}"
    for name, a, b in zip(("account", "positions", "periods"), fast_state,
                          (account, positions, periods), strict=True):  # fmt: skip
        assert a.tobytes() == b.tobytes(), name
    for a, b in zip(fast_curves, curves, strict=True):
        assert a.tobytes() == b.tobytes()


def _mark_check_write_each_bar(start, stop, ts_ns, close, weight, params, static, book, periods,
                               curves):  # fmt: skip
    # the general per-bar path of `_quiet_run_nb` over bars [start, stop) (mark and roll, check
    # nothing to decide, write the curves), asserting each bar quiet
    lo, hi = Cursor.DayLoNs, Cursor.DayHiNs
    for t in range(start, stop):
        if not periods[lo] <= ts_ns[t] < periods[hi]:
            periods[Cursor.DayId], periods[Cursor.WeekId] = period_ids_nb(ts_ns[t])
            periods[lo], periods[hi] = (periods[Cursor.DayId] * DAY_NS,
                                        (periods[Cursor.DayId] + 1) * DAY_NS)  # fmt: skip
        mark_periods_breakers_nb(book.account, book.positions, close, t, periods[Cursor.DayId],
                                 periods[Cursor.WeekId], params)  # fmt: skip
        assert nothing_to_decide_nb(t, close, weight, params, static, book), f"bar {t} not quiet"
        _write_curves_nb(book.account, book.positions, t, curves)
        periods[Cursor.LastMarked] = t


@settings(max_examples=200, deadline=None)
@given(
    n_symbols=st.integers(2, 5),
    seed=st.integers(0, 2**32 - 1),
    loss=st.tuples(*[st.sampled_from((0.004, 0.01, 0.03, 1.0))] * 3),
    tripped=st.tuples(*[st.booleans()] * 3),
    trim=st.none() | st.tuples(*[st.sampled_from((0.05, 0.1, 0.2, 0.4, 1.0))] * 3),
    n_weights=st.integers(0, 6),
)
def test_held_many_run_equals_marking_and_checking_each_bar(
    n_symbols, seed, loss, tripped, trim, n_weights
):
    # The several-positions path against the general per-bar path of `_quiet_run_nb` on the
    # same bars, as the single-position test above: every bar it claims quiet must be quiet,
    # and the state and curves after it must be the same bits. Finite weights land on held
    # and flat symbols alike (an entry on a held one and an exit on a flat one are quiet),
    # themes are drawn per symbol (-1: none), the three caps apart (any of them may bind
    # first), and flat symbols may miss closes.
    rng = np.random.default_rng(seed)
    n_bars = 120
    n_held = int(rng.integers(2, n_symbols + 1))
    held = np.sort(rng.choice(n_symbols, n_held, replace=False))
    close = 100.0 * np.exp(np.cumsum(rng.standard_t(3, (n_bars, n_symbols)) * 0.006, axis=0))
    close[rng.random(close.shape) < 0.02] = np.nan
    close[0] = np.where(np.isnan(close[0]), 100.0, close[0])
    for s in held:
        close[:, s] = np.where(np.isnan(close[:, s]), 100.0, close[:, s])
    if rng.random() < 0.5:
        # one held close missing on one late bar
        close[rng.integers(n_bars // 2, n_bars), rng.choice(held)] = np.nan
    ts_ns = (19_700 * DAY_NS + int(rng.integers(24)) * 3_600 * 10**9
             + np.arange(n_bars, dtype=np.int64) * 3_600 * 10**9)  # fmt: skip
    weight = np.full((n_bars, n_symbols), np.nan)
    for _ in range(n_weights):
        weight[rng.integers(1, n_bars), rng.integers(n_symbols)] = rng.choice((0.0, 0.05))
    config, params = _case("default")
    params = params._replace(
        daily_loss=loss[0], weekly_loss=loss[1], max_drawdown=loss[2],
        auto_trim=trim is not None, asset_cap=trim[0] if trim else 1.0,
        theme_cap=trim[1] if trim else 1.0, total_cap=trim[2] if trim else 1.0,
        trim_tolerance=0.05,
    )  # fmt: skip
    symbols = ("BTC-USD", "ETH-USD", "SOL-USD", "LINK-USD", "DOGE-USD")[:n_symbols]
    static = step_static(config, symbols, ("rules", "ma_cross"))
    static = static._replace(theme_id=rng.integers(-1, 2, n_symbols).astype(np.int64))
    start = 1
    account, positions = new_state_nb(n_symbols, 10_000.0)
    for s in held:
        entry = new_order(int(s), Side.Buy, Purpose.Entry, 0, stop_pct=rng.choice((0.0, 0.05)),
                          take_pct=rng.choice((0.0, 0.08)))  # fmt: skip
        apply_fill_nb(account, positions, entry, rng.uniform(0.5, 6.0), close[0, s], 1.0, 0,
                      params._replace(cooldown_fill_bars=0, cooldown_stop_bars=0), static)  # fmt: skip
    periods = _marked_at_bar_0(ts_ns, close, params, account, positions, rng, tripped)
    fast_state = (account.copy(), positions.copy(), periods.copy())
    fast_curves = [np.full(n_bars, -1.0) for _ in range(3)]
    regime = np.zeros(n_bars, dtype=np.int64)
    market = Market(ts_ns, 3_600 * 10**9, close, close, close, close, close)
    fast_book = Book(fast_state[0], fast_state[1], new_workspace_nb(n_symbols, static.theme_id, 2))
    stop = _held_many_run_nb(start, market, weight, regime, params, static, fast_book,
                             Curves(*fast_curves), fast_state[2])  # fmt: skip

    book = Book(account, positions, new_workspace_nb(n_symbols, static.theme_id, 2))
    curves = [np.full(n_bars, -1.0) for _ in range(3)]
    _mark_check_write_each_bar(start, stop, ts_ns, close, weight, params, static, book, periods,
                               Curves(*curves))  # fmt: skip
    if stop < n_bars:
        # it stops only where the general path has to look: an entry on a flat symbol, a held
        # close missing or not positive, or a bar that is not quiet
        if not periods[Cursor.DayLoNs] <= ts_ns[stop] < periods[Cursor.DayHiNs]:
            day_id, week_id = period_ids_nb(ts_ns[stop])
        else:
            day_id, week_id = periods[Cursor.DayId], periods[Cursor.WeekId]
        at_stop = Book(account.copy(), positions.copy(), book.workspace)
        mark_periods_breakers_nb(at_stop.account, at_stop.positions, close, stop, day_id, week_id,
                                 params)  # fmt: skip
        flat = positions[:, Pos.Qty] <= 0.0
        assert (
            (weight[stop][flat] > 0.0).any()
            or not (close[stop, held] > 0.0).all()
            or not nothing_to_decide_nb(stop, close, weight, params, static, at_stop)
        ), f"stopped at quiet bar {stop}"
    for name, a, b in zip(("account", "positions", "periods"), fast_state,
                          (account, positions, periods), strict=True):  # fmt: skip
        assert a.tobytes() == b.tobytes(), name
    for a, b in zip(fast_curves, curves, strict=True):
        assert a.tobytes() == b.tobytes()


def _marked_at_bar_0(ts_ns, close, params, account, positions, rng, tripped):
    # the cursor of bar 0's day with bar 0 marked, the peak maybe above equity and the breakers
    # in `tripped` set, as a held run may find them; returns the cursor
    day_id, week_id = period_ids_nb(ts_ns[0])
    periods = np.zeros(N_CURSOR, dtype=np.int64)
    periods[[Cursor.DayId, Cursor.WeekId, Cursor.DayLoNs, Cursor.DayHiNs, Cursor.LastMarked]] = (
        day_id, week_id, day_id * DAY_NS, (day_id + 1) * DAY_NS, 0,
    )  # fmt: skip
    mark_periods_breakers_nb(account, positions, close, 0, day_id, week_id, params)
    account[Acc.PeakEquity] *= rng.choice((1.0, 1.02))
    for flag, on in zip((Acc.DailyStop, Acc.WeeklyStop, Acc.DrawdownBreaker), tripped, strict=True):
        account[flag] = 1.0 if on else account[flag]
    return periods
