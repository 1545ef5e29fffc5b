"""The shared stage-2 kernels: `step_nb` (risk, sizing, orders) and `apply_fill_nb` (accounting).

Both drivers call these and nothing else decides: `sim` loops `step_nb` over every bar inside
numba; `live_bridge` calls it once per closed bar with state loaded from its SQLite store.

State is two float64 buffers updated in place (explicit `out` buffers, see STYLE §1):
`account[N_ACC]` indexed by `Acc`, and `positions[S, N_POS]` indexed by `Pos`. Bars are
identified by their absolute bar number `bar_no = ts_ns // bar_ns`, so cooldowns survive a
restart of the live daemon. Pending orders are inputs: the driver sets `Pos.PendingBuyNotional`,
`Pos.PendingSellQty` and `Acc.ReservedCash` from its open orders before calling `step_nb`
(the simulator clears them after each bar's fills), and `step_nb` adds the orders it emits, so
open orders count toward every cap.
"""

import numpy as np
from numba import njit

# `_nrt=False` on the two per-bar kernels: they allocate nothing and keep no reference past
# the call, so reference counting their ~25 array arguments (about 100 atomic operations per
# bar) only cost time: measured 290 -> 55 ns per call for one symbol (/tmp harness in the
# commit message). A kernel that allocates cannot compile with it, so the flag is safe to keep.
from signals._math import ceil_to_increment_nb, floor_to_increment_nb
from signals.enums import Acc, OrderType, Pos, ProductStatus, Purpose, Reason, Side

# ============================================================================================
# Accounting
# ============================================================================================


DAY_NS = 86_400 * 1_000_000_000
"""One UTC day in ns (a fact, not a tunable, so a module constant is fine for numba)."""


@njit(cache=True)
def period_ids_nb(ts_ns):
    """Return `(day_id, week_id)` for a bar opening at `ts_ns` (UTC epoch ns).

    `day_id` is the UTC day number; `week_id` the ISO week (Monday start; day 0, 1970-01-01,
    was a Thursday, hence `+ 3`). The daily and weekly loss stops reset when they change.
    """
    day_id = ts_ns // DAY_NS
    return day_id, (day_id + 3) // 7


@njit(cache=True)
def _mark_row(account, positions, close, row):
    # update last prices from row `row` of `close[T, S]` (NaN keeps the last price); equity
    equity = account[Acc.Cash]
    for s in range(positions.shape[0]):
        price = close[row, s]
        if np.isfinite(price):
            positions[s, Pos.LastPrice] = price
        qty = positions[s, Pos.Qty]
        if qty > 0.0:
            equity += qty * positions[s, Pos.LastPrice]
    account[Acc.Equity] = equity
    return equity


@njit(cache=True)
def apply_fill_nb(
    account,
    positions,
    symbol,
    side,
    qty,
    price,
    fee,
    bar_no,
    purpose,
    strategy,
    stop_pct,
    take_pct,
    cooldown_fill_bars,
    cooldown_stop_bars,
    base_increment,
):
    """Apply one fill to the state; return the round trip's PnL (USD) when it closes, else NaN.

    Reference: tests/reference/step.py::apply_fill_ref.
    Buys pay `qty * price + fee` in cash and move the average entry (fees are not in the
    average: the entry fee is realized at the buy, so the round trip's PnL in `TradePnl` is net
    of both fees and realized + unrealized PnL always equals the change in equity). Sells
    are clipped to the position (long-only spot) and receive `qty * price - fee`. A sell that
    leaves less than one `base_increment` (the product's base unit grid; the remainder floors
    to zero increments with `floor_to_increment_nb`'s tolerance) sells the whole position:
    such a remainder is float error of summed fills, no position the venue could hold or
    sell, so the sell closes the trade at this fill. `base_increment <= 0` keeps any
    remainder > 0. The stop and take-profit prices are set from the first fill's price. A
    fill starts a cooldown of `cooldown_fill_bars`; a stop-loss fill starts the longer
    `cooldown_stop_bars`.
    """
    held = positions[symbol, Pos.Qty]
    closed_pnl = np.nan
    if side == Side.Buy:
        if held <= 0.0:
            positions[symbol, Pos.AvgEntry] = price
            positions[symbol, Pos.EntryBar] = bar_no
            positions[symbol, Pos.Strategy] = strategy
            positions[symbol, Pos.TradePnl] = 0.0
            positions[symbol, Pos.TradeFees] = 0.0
            positions[symbol, Pos.EntryNotional] = 0.0
            positions[symbol, Pos.StopPrice] = price * (1.0 - stop_pct) if stop_pct > 0.0 else 0.0
            positions[symbol, Pos.TakePrice] = price * (1.0 + take_pct) if take_pct > 0.0 else 0.0
        else:
            positions[symbol, Pos.AvgEntry] = (
                held * positions[symbol, Pos.AvgEntry] + qty * price
            ) / (held + qty)
        positions[symbol, Pos.Qty] = held + qty
        positions[symbol, Pos.EntryNotional] += qty * price
        account[Acc.Cash] -= qty * price + fee
        # the entry fee is realized at once, so realized + unrealized = equity change
        pnl = -fee
    else:
        if qty > held or floor_to_increment_nb(held - qty, base_increment) <= 0.0:
            # the dust below one increment goes with the fill, at its price
            qty = held
        pnl = qty * (price - positions[symbol, Pos.AvgEntry]) - fee
        account[Acc.Cash] += qty * price - fee
        remaining = held - qty
        if remaining <= 0.0:
            remaining = 0.0
            closed_pnl = positions[symbol, Pos.TradePnl] + pnl
            positions[symbol, Pos.StopPrice] = 0.0
            positions[symbol, Pos.TakePrice] = 0.0
        positions[symbol, Pos.Qty] = remaining
    account[Acc.RealizedPnl] += pnl
    positions[symbol, Pos.RealizedPnl] += pnl
    positions[symbol, Pos.TradePnl] += pnl
    positions[symbol, Pos.TradeFees] += fee
    account[Acc.FeesPaid] += fee
    positions[symbol, Pos.FeesPaid] += fee
    is_stop = purpose == Purpose.StopLoss
    cooldown = cooldown_stop_bars if is_stop else cooldown_fill_bars
    until = bar_no + cooldown
    if until > positions[symbol, Pos.CooldownUntilBar] or is_stop:
        positions[symbol, Pos.CooldownUntilBar] = until
        positions[symbol, Pos.CooldownIsStop] = 1.0 if is_stop else 0.0
    return closed_pnl


# ============================================================================================
# Helpers for step
# ============================================================================================


@njit(cache=True)
def row_of(per_bar, row):
    """Return the row of `per_bar[T, S]` that holds for bar `row`: `row`, or 0 for a `[1, S]`
    array (one row for every bar: a constant input costs S values, not T x S)."""
    return row if per_bar.shape[0] > 1 else 0


@njit(cache=True)
def new_workspace_nb(n_symbols, theme_id, n_strategies):
    """Return scratch buffers for `step_nb`, allocated once per run (none inside the bar loop).

    `(exiting bool[S], expo f8[S], theme_expo f8[n_themes], strat_expo f8[K], trades i8[K],
    order i8[S])`; the kernel overwrites them on every call.
    """
    n_themes = 1
    for s in range(n_symbols):
        if theme_id[s] + 1 > n_themes:
            n_themes = theme_id[s] + 1
    k = max(n_strategies, 1)
    return (
        np.zeros(n_symbols, dtype=np.bool_),
        np.zeros(n_symbols),
        np.zeros(n_themes),
        np.zeros(k),
        np.zeros(k, dtype=np.int64),
        np.zeros(n_symbols, dtype=np.int64),
    )


@njit(cache=True)
def _exposures(positions, theme_id, n_themes, strategy_count, out_symbol, out_theme, out_strategy):
    total = 0.0
    for t in range(n_themes):
        out_theme[t] = 0.0
    for k in range(strategy_count):
        out_strategy[k] = 0.0
    for s in range(positions.shape[0]):
        value = positions[s, Pos.Qty] * positions[s, Pos.LastPrice]
        if value < 0.0 or not np.isfinite(value):
            value = 0.0
        value += positions[s, Pos.PendingBuyNotional]
        # only a held symbol can have a pending sell; testing first keeps a never-priced
        # symbol's NaN last price (0 x NaN) out of the totals
        if positions[s, Pos.PendingSellQty] > 0.0:
            value -= positions[s, Pos.PendingSellQty] * positions[s, Pos.LastPrice]
        if value < 0.0:
            value = 0.0
        out_symbol[s] = value
        total += value
        if theme_id[s] >= 0:
            out_theme[theme_id[s]] += value
        k = int(positions[s, Pos.Strategy])
        if value > 0.0 and 0 <= k < strategy_count:
            out_strategy[k] += value
    return total


@njit(cache=True)
def _emit(
    orders,
    n,
    bar_no,
    symbol,
    side,
    order_type,
    purpose,
    strategy,
    qty,
    notional,
    limit_price,
    ref_price,
    stop_pct,
    take_pct,
):
    orders[n]["bar_no"] = bar_no
    orders[n]["symbol"] = symbol
    orders[n]["side"] = side
    orders[n]["order_type"] = order_type
    orders[n]["purpose"] = purpose
    orders[n]["strategy"] = strategy
    orders[n]["qty"] = qty
    orders[n]["notional"] = notional
    orders[n]["limit_price"] = limit_price
    orders[n]["ref_price"] = ref_price
    orders[n]["stop_pct"] = stop_pct
    orders[n]["take_pct"] = take_pct
    return n + 1


@njit(cache=True)
def _sell_order(
    orders, n, bar_no, s, qty, purpose, order_type, status, price, params, static, positions,
    reason_counts,
):  # fmt: skip
    # Route a sell through what the product status allows; return the new order count. A sell
    # under the product minimums (size, or size x its price: the limit, else the close) is not
    # emitted, as the venue refuses it: `BelowMinimum` is counted, the position stays, and the
    # sell is tried again on the next bar that wants it (it goes once the price lifts it).
    if status == ProductStatus.PostOnly or status == ProductStatus.LimitOnly:
        order_type = OrderType.LimitPostOnly
    qty = ceil_to_increment_nb(qty, static.base_increment[s])
    # never more than the part of the position no earlier order is already selling
    held = positions[s, Pos.Qty] - positions[s, Pos.PendingSellQty]
    if qty > held:
        qty = held
    if qty <= 0.0:
        return n
    limit = np.nan
    ref = price
    if order_type == OrderType.LimitPostOnly:
        limit = ceil_to_increment_nb(price * (1.0 + params.limit_offset), static.quote_increment[s])
        ref = limit
    if qty < static.min_size[s] or qty * ref < static.min_notional[s]:
        k = int(positions[s, Pos.Strategy])
        reason_counts[k if k >= 0 else 0, s, Reason.BelowMinimum] += 1
        return n
    positions[s, Pos.PendingSellQty] += qty
    return _emit(
        orders, n, bar_no, s, Side.Sell, order_type, purpose,
        int(positions[s, Pos.Strategy]), qty, 0.0, limit, price, 0.0, 0.0,
    )  # fmt: skip


@njit(cache=True)
def _can_trade(status):
    return status == ProductStatus.Online


@njit(cache=True)
def _can_exit(status):
    return (
        status == ProductStatus.Online
        or status == ProductStatus.PostOnly
        or status == ProductStatus.LimitOnly
    )


# ============================================================================================
# step
# ============================================================================================


@njit(cache=True)
def roll_periods_nb(account, equity, day_id, week_id):
    """Start a new UTC day and/or ISO week in `account` when `day_id`/`week_id` differ from
    its own: the start equity becomes `equity` (USD) and that period's loss stop resets."""
    if account[Acc.DayId] != day_id:
        account[Acc.DayId] = day_id
        account[Acc.DayStartEquity] = equity
        account[Acc.DailyStop] = 0.0
    if account[Acc.WeekId] != week_id:
        account[Acc.WeekId] = week_id
        account[Acc.WeekStartEquity] = equity
        account[Acc.WeeklyStop] = 0.0


@njit(cache=True, _nrt=False)
def mark_periods_breakers_nb(account, positions, close, row, day_id, week_id, params):
    """Mark to row `row` of `close[T, S]`, roll the day/week, update the peak and the loss and
    drawdown breakers; return equity, USD.

    The first stage of `step_core_nb`, and all it does on a quiet bar (no position, no weight
    > 0): the simulator calls it alone on such bars.
    """
    equity = _mark_row(account, positions, close, row)
    roll_periods_nb(account, equity, day_id, week_id)
    if equity > account[Acc.PeakEquity]:
        account[Acc.PeakEquity] = equity
    if params.daily_loss < 1.0 and equity <= account[Acc.DayStartEquity] * (
        1.0 - params.daily_loss
    ):
        account[Acc.DailyStop] = 1.0
    if params.weekly_loss < 1.0 and equity <= account[Acc.WeekStartEquity] * (
        1.0 - params.weekly_loss
    ):
        account[Acc.WeeklyStop] = 1.0
    if params.max_drawdown < 1.0 and equity <= account[Acc.PeakEquity] * (
        1.0 - params.max_drawdown
    ):
        account[Acc.DrawdownBreaker] = 1.0
    return equity


@njit(cache=True)
def step_nb(
    bar_no,
    day_id,
    week_id,
    close,
    weight,
    stop_pct,
    take_pct,
    strategy,
    block_reason,
    product_status,
    regime,
    params,
    static,
    account,
    positions,
    orders,
    reason_counts,
    workspace,
):
    """Decide the orders of one closed bar from `[S]` inputs; return how many were written.

    Reference: tests/reference/step.py::step_ref.
    The per-bar entry point of the live daemon and the tests: `step_core_nb` on the inputs as
    one-row `[1, S]` arrays (see it for the inputs, units, NaN rules and the order of controls).
    """
    n = close.shape[0]
    return step_core_nb(
        0, bar_no, day_id, week_id, close.reshape((1, n)), weight.reshape((1, n)),
        stop_pct.reshape((1, n)), take_pct.reshape((1, n)), strategy.reshape((1, n)),
        block_reason.reshape((1, n)), product_status, regime, params, static, account,
        positions, orders, reason_counts, workspace,
    )  # fmt: skip


@njit(cache=True, _nrt=False)
def nothing_to_decide_nb(row, close, weight, params, static, account, positions, workspace):
    """Return True when `step_core_nb` would emit no order and count no reason on bar `row`.

    Reference: tests/reference/step.py::step_ref (a quiet bar gives no orders and no counts).
    Call after `mark_periods_breakers_nb`. True needs: no entry proposal (weight > 0) on a flat
    symbol; no held symbol with a stop-loss, take-profit or exit (weight 0) to act on; and, with
    auto-trim, no asset, theme or total exposure over its cap's trim threshold. It is a
    sufficient condition (a False only means "run the full step"), so the simulator may skip the
    step on such bars and `step_core_nb` returns early on them: one check, used by both.
    """
    _, expo, theme_expo, strat_expo, _, _ = workspace
    n_symbols = positions.shape[0]
    for s in range(n_symbols):
        w = weight[row, s]
        qty = positions[s, Pos.Qty]
        if w > 0.0 and qty <= 0.0:
            return False
        if qty - positions[s, Pos.PendingSellQty] <= 0.0:
            continue
        price = close[row, s]
        if not np.isfinite(price):
            continue
        stop_price = positions[s, Pos.StopPrice]
        take_price = positions[s, Pos.TakePrice]
        if w == 0.0 or (stop_price > 0.0 and price <= stop_price):
            return False
        if take_price > 0.0 and price >= take_price:
            return False
    equity = account[Acc.Equity]
    if not (params.auto_trim and equity > 0.0):
        return True
    total = _exposures(
        positions, static.theme_id, theme_expo.shape[0], strat_expo.shape[0], expo, theme_expo,
        strat_expo,
    )  # fmt: skip
    slack = 1.0 + params.trim_tolerance
    if total > params.total_cap * equity * slack:
        return False
    for t in range(theme_expo.shape[0]):
        if theme_expo[t] > params.theme_cap * equity * slack:
            return False
    for s in range(n_symbols):
        if positions[s, Pos.Qty] > 0.0 and expo[s] > params.asset_cap * equity * slack:
            return False
    return True


@njit(cache=True, _nrt=False)
def step_core_nb(
    row,
    bar_no,
    day_id,
    week_id,
    close,
    weight,
    stop_pct,
    take_pct,
    strategy,
    block_reason,
    product_status,
    regime,
    params,
    static,
    account,
    positions,
    orders,
    reason_counts,
    workspace,
):
    """Decide the orders of bar `row` of `[T, S]` inputs; return how many were written to `orders`.

    Reference: tests/reference/step.py::step_ref.

    Taking whole `[T, S]` arrays and the row index (not per-bar row views) keeps the simulator's
    per-bar call free of new array views and their reference counting; `step_nb` is the same
    decision on `[S]` inputs.

    Inputs at the close of bar `row` (row `row` of `[T, S]` unless noted): `close` (NaN = no
    bar), the combined proposals `weight` (target fraction of equity; NaN = no opinion, 0 =
    exit, > 0 = hold or enter), `stop_pct`/`take_pct` (fractions; NaN = the policy default),
    `strategy` (index of the proposing strategy), `block_reason` (stage-1 `Reason` code:
    universe, staleness, bans, bad ticks; 0 = tradable), `product_status` (`ProductStatus`),
    where `stop_pct`, `take_pct`, `strategy` and `block_reason` may also be one `[1, S]` row
    that holds for every bar (`row_of`; they are read only where a weight proposes an entry),
    scalar `regime` (`Regime`), `day_id` (UTC day number) and `week_id` (ISO week number).
    `orders` must hold at least `2 * S` records of `ORDER_DT`. `reason_counts[K, S, N_REASONS]`
    is incremented once per proposal a control blocks or shrinks. `workspace` comes from
    `new_workspace_nb`.

    Order of controls: exits (stop-loss, take-profit, signal) first, then auto-trim (a sell,
    exit or trim, under the product's minimum size or notional at its price is not emitted:
    the venue refuses it; it counts `BelowMinimum` on every bar it is wanted, the position
    stays held, and it goes on the first such bar it clears the minimums), then
    entries in descending weight through kill switch, drawdown breaker, daily/weekly loss stops,
    regime, product status, stage-1 blocks (counted as `EmptyUniverse` when every symbol is
    blocked on the bar), pending orders, cooldowns, max positions, the
    strategy's trades per bar, then sizing through regime multiplier, the strategy's budget,
    asset, theme and total caps and cash, and finally product minimums (a smaller target is
    rounded up to them only within every cap and the cash; never rounded down below them).
    """
    equity = mark_periods_breakers_nb(account, positions, close, row, day_id, week_id, params)
    if not params.kill_switch and nothing_to_decide_nb(
        row, close, weight, params, static, account, positions, workspace
    ):
        return 0
    return decide_marked_nb(
        row, bar_no, equity, close, weight, stop_pct, take_pct, strategy, block_reason,
        product_status, regime, params, static, account, positions, orders, reason_counts,
        workspace,
    )  # fmt: skip


@njit(cache=True, _nrt=False)
def decide_marked_nb(
    row, bar_no, equity, close, weight, stop_pct, take_pct, strategy, block_reason,
    product_status, regime, params, static, account, positions, orders, reason_counts,
    workspace,
):  # fmt: skip
    """`step_core_nb` after its mark, for a bar already marked (`mark_periods_breakers_nb`,
    which returned `equity`, USD) on which `nothing_to_decide_nb` is False or the kill switch
    is on; same inputs and result.

    The simulator's quiet-bar loop has marked and checked the bar before it calls this, so
    it does not mark and check it a second time.
    """
    n_symbols = close.shape[1]
    n_strategies = static.strategy_cap.shape[0]
    exiting, expo, theme_expo, strat_expo, trades_this_bar, order_of = workspace
    n_themes = theme_expo.shape[0]
    n = 0
    strategy_row = row_of(strategy, row)

    if params.kill_switch:
        for s in range(n_symbols):
            if weight[row, s] > 0.0 and positions[s, Pos.Qty] <= 0.0:
                k = strategy[strategy_row, s] if strategy[strategy_row, s] >= 0 else 0
                reason_counts[k, s, Reason.KillSwitch] += 1
        return 0

    # --- exits: stop-loss, take-profit, strategy exit ---------------------------------------
    for s in range(n_symbols):
        exiting[s] = False
        qty = positions[s, Pos.Qty] - positions[s, Pos.PendingSellQty]
        price = close[row, s]
        if qty <= 0.0 or not np.isfinite(price):
            continue
        purpose = -1
        stop_price = positions[s, Pos.StopPrice]
        take_price = positions[s, Pos.TakePrice]
        if stop_price > 0.0 and price <= stop_price:
            purpose = Purpose.StopLoss
        elif take_price > 0.0 and price >= take_price:
            purpose = Purpose.TakeProfit
        elif weight[row, s] == 0.0:
            purpose = Purpose.Exit
        if purpose < 0:
            continue
        if not _can_exit(product_status[s]):
            k = int(positions[s, Pos.Strategy])
            reason_counts[k if k >= 0 else 0, s, Reason.ProductStatus] += 1
            continue
        order_type = params.exit_order_type
        if purpose == Purpose.StopLoss or purpose == Purpose.TakeProfit:
            order_type = params.stop_order_type
        n = _sell_order(
            orders, n, bar_no, s, qty, purpose, order_type, product_status[s], price,
            params, static, positions, reason_counts,
        )  # fmt: skip
        exiting[s] = True

    # --- exposures (positions + pending) ----------------------------------------------------
    total = _exposures(
        positions, static.theme_id, n_themes, n_strategies, expo, theme_expo, strat_expo
    )

    # --- auto-trim: back under asset, theme and total caps -----------------------------------
    if params.auto_trim and equity > 0.0:
        slack = 1.0 + params.trim_tolerance
        for s in range(n_symbols):
            if exiting[s] or positions[s, Pos.Qty] <= 0.0 or not _can_exit(product_status[s]):
                continue
            cap = params.asset_cap * equity
            if expo[s] > cap * slack:
                sell_value = expo[s] - cap
                n = _trim(
                    orders, n, bar_no, s, sell_value, product_status[s], params, static,
                    positions, expo, theme_expo, strat_expo, reason_counts,
                )  # fmt: skip
                exiting[s] = True
        for t in range(n_themes):
            cap = params.theme_cap * equity
            while theme_expo[t] > cap * slack:
                s = _largest(expo, static.theme_id, t, exiting, positions, product_status)
                if s < 0:
                    break
                sell_value = min(theme_expo[t] - cap, expo[s])
                n = _trim(
                    orders, n, bar_no, s, sell_value, product_status[s], params, static,
                    positions, expo, theme_expo, strat_expo, reason_counts,
                )  # fmt: skip
                exiting[s] = True
        total = 0.0
        for s in range(n_symbols):
            total += expo[s]
        cap = params.total_cap * equity
        while total > cap * slack:
            s = _largest(expo, static.theme_id, -2, exiting, positions, product_status)
            if s < 0:
                break
            sell_value = min(total - cap, expo[s])
            before = expo[s]
            n = _trim(
                orders, n, bar_no, s, sell_value, product_status[s], params, static,
                positions, expo, theme_expo, strat_expo, reason_counts,
            )  # fmt: skip
            total -= before - expo[s]
            exiting[s] = True

    # --- entries ---------------------------------------------------------------------------
    open_positions = 0
    for s in range(n_symbols):
        if positions[s, Pos.Qty] > 0.0 or positions[s, Pos.PendingBuyNotional] > 0.0:
            open_positions += 1
    any_entry = False
    for s in range(n_symbols):
        if weight[row, s] > 0.0 and positions[s, Pos.Qty] <= 0.0 and not exiting[s]:
            any_entry = True
            break
    if not any_entry:
        return n
    for k in range(trades_this_bar.shape[0]):
        trades_this_bar[k] = 0
    _descending(weight, row, order_of)
    regime_mult = 1.0
    if regime >= 0:
        regime_mult = static.regime_mult[regime]
    cash_free = account[Acc.Cash] - account[Acc.ReservedCash]
    block_row = row_of(block_reason, row)
    stop_row = row_of(stop_pct, row)
    take_row = row_of(take_pct, row)
    universe_empty = True
    for s in range(n_symbols):
        if block_reason[block_row, s] == Reason.Ok:
            universe_empty = False
            break
    for i in range(n_symbols):
        s = order_of[i]
        w = weight[row, s]
        if not (w > 0.0) or positions[s, Pos.Qty] > 0.0 or exiting[s]:
            continue
        k = strategy[strategy_row, s] if strategy[strategy_row, s] >= 0 else 0
        price = close[row, s]
        reason = Reason.Ok
        if account[Acc.DrawdownBreaker] > 0.0:
            reason = Reason.DrawdownBreaker
        elif account[Acc.DailyStop] > 0.0:
            reason = Reason.DailyLossStop
        elif account[Acc.WeeklyStop] > 0.0:
            reason = Reason.WeeklyLossStop
        elif regime_mult <= 0.0:
            reason = Reason.RegimeBlock
        elif not _can_trade(product_status[s]):
            reason = Reason.ProductStatus
        elif block_reason[block_row, s] != Reason.Ok:
            reason = Reason.EmptyUniverse if universe_empty else block_reason[block_row, s]
        elif not np.isfinite(price) or price <= 0.0:
            reason = Reason.StaleData
        elif positions[s, Pos.PendingBuyNotional] > 0.0:
            reason = Reason.AlreadyPending
        elif bar_no < positions[s, Pos.CooldownUntilBar]:
            if positions[s, Pos.CooldownIsStop] > 0.0:
                reason = Reason.StopCooldown
            else:
                reason = Reason.Cooldown
        elif open_positions >= params.max_positions:
            reason = Reason.MaxPositions
        elif trades_this_bar[k] >= static.strategy_max_trades[k]:
            reason = Reason.StrategyTradesPerBar
        if reason != Reason.Ok:
            reason_counts[k, s, reason] += 1
            continue

        # sizing: every cap as headroom in USD, incl. fees
        target = w * equity
        if regime_mult < 1.0:
            target *= regime_mult
            reason_counts[k, s, Reason.RegimeShrink] += 1
        headroom = target
        limiting = Reason.Ok
        # the strategy's own budget first, then the global caps (ties keep the earlier reason);
        # `cap_room` is the tightest cap alone, the limit for rounding up to product minimums
        cap_room = static.strategy_cap[k] * equity - strat_expo[k]
        if cap_room < headroom:
            headroom = cap_room
            limiting = Reason.StrategyBudget
        room = params.asset_cap * equity - expo[s]
        cap_room = min(cap_room, room)
        if room < headroom:
            headroom = room
            limiting = Reason.AssetCap
        t = static.theme_id[s]
        if t >= 0:
            room = params.theme_cap * equity - theme_expo[t]
            cap_room = min(cap_room, room)
            if room < headroom:
                headroom = room
                limiting = Reason.ThemeCap
        room = params.total_cap * equity - total
        cap_room = min(cap_room, room)
        if room < headroom:
            headroom = room
            limiting = Reason.TotalCap
        if cash_free < headroom:
            headroom = cash_free
            limiting = Reason.InsufficientCash
        if headroom <= 0.0:
            reason_counts[k, s, limiting if limiting != Reason.Ok else Reason.TotalCap] += 1
            continue
        if limiting != Reason.Ok:
            reason_counts[k, s, limiting] += 1

        stop = stop_pct[stop_row, s]
        if not np.isfinite(stop) or stop <= 0.0 or (0.0 < params.stop_loss < stop):
            stop = params.stop_loss
        take = take_pct[take_row, s]
        if not np.isfinite(take) or take < 0.0:
            take = 0.0

        order_type = params.entry_order_type
        if order_type == OrderType.Market:
            fee = params.taker_fee
            fill_price = price
            limit = np.nan
        else:
            fee = params.maker_fee
            limit = floor_to_increment_nb(
                price * (1.0 - params.limit_offset), static.quote_increment[s]
            )
            fill_price = limit
        if not (fill_price > 0.0):
            reason_counts[k, s, Reason.BelowMinimum] += 1
            continue
        # qty such that qty * price * (1 + fee) spends `headroom` (vectorbt's all-in rule)
        qty = floor_to_increment_nb(headroom / (fill_price * (1.0 + fee)), static.base_increment[s])
        need = static.min_size[s]
        by_notional = ceil_to_increment_nb(
            static.min_notional[s] / (fill_price * (1.0 - fee)), static.base_increment[s]
        )
        if by_notional > need:
            need = by_notional
        if qty < need:
            # round up to the minimum, past a smaller target, only if it fits every cap and
            # the cash
            if need * fill_price * (1.0 + fee) <= cap_room * (1.0 + 1e-12) and (
                need * fill_price * (1.0 + fee) <= cash_free
            ):
                qty = need
            else:
                reason_counts[k, s, Reason.BelowMinimum] += 1
                continue
        if qty <= 0.0:
            reason_counts[k, s, Reason.BelowMinimum] += 1
            continue
        cost = qty * fill_price * (1.0 + fee)
        notional = 0.0
        order_qty = qty
        if order_type == OrderType.Market:
            # Coinbase market buys are sized in quote (quote_size, on the quote grid, fee
            # included); the fill price sets the qty
            notional = floor_to_increment_nb(cost, static.quote_increment[s])
            order_qty = 0.0
        n = _emit(
            orders, n, bar_no, s, Side.Buy, order_type, Purpose.Entry, k, order_qty, notional,
            limit, price, stop, take,
        )  # fmt: skip
        positions[s, Pos.PendingBuyNotional] += cost
        # the pending entry counts toward its strategy's budget on later bars too (live)
        positions[s, Pos.Strategy] = k
        account[Acc.ReservedCash] += cost
        cash_free -= cost
        expo[s] += cost
        if t >= 0:
            theme_expo[t] += cost
        strat_expo[k] += cost
        total += cost
        open_positions += 1
        trades_this_bar[k] += 1
    return n


@njit(cache=True)
def _largest(expo, theme_id, theme, exiting, positions, product_status):
    # theme == -2 means any symbol
    best = -1
    best_value = 0.0
    for s in range(expo.shape[0]):
        if exiting[s] or positions[s, Pos.Qty] <= 0.0 or not _can_exit(product_status[s]):
            continue
        if theme != -2 and theme_id[s] != theme:
            continue
        if expo[s] > best_value:
            best_value = expo[s]
            best = s
    return best


@njit(cache=True)
def _trim(orders, n, bar_no, s, sell_value, status, params, static, positions, expo, theme_expo,
          strat_expo, reason_counts):  # fmt: skip
    price = positions[s, Pos.LastPrice]
    held = positions[s, Pos.Qty] - positions[s, Pos.PendingSellQty]
    qty = sell_value / price
    # never leave a remainder below the product minimums
    remainder = held - ceil_to_increment_nb(qty, static.base_increment[s])
    if remainder * price * (1.0 - params.taker_fee) < static.min_notional[s] or (
        remainder < static.min_size[s]
    ):
        qty = held
    before = positions[s, Pos.PendingSellQty]
    n = _sell_order(
        orders, n, bar_no, s, qty, Purpose.Trim, params.exit_order_type, status, price, params,
        static, positions, reason_counts,
    )  # fmt: skip
    sold = (positions[s, Pos.PendingSellQty] - before) * price
    expo[s] -= sold
    if static.theme_id[s] >= 0:
        theme_expo[static.theme_id[s]] -= sold
    k = int(positions[s, Pos.Strategy])
    if 0 <= k < strat_expo.shape[0]:
        strat_expo[k] -= sold
    return n


@njit(cache=True)
def _descending(weight, row, order):
    # Stable order of row `row` of `weight` by descending weight (NaN last) into `order`:
    # insertion sort, S is small.
    n = weight.shape[1]
    for i in range(n):
        order[i] = i
    for i in range(1, n):
        j = i
        while j > 0 and _before(weight, row, order[j], order[j - 1]):
            tmp = order[j]
            order[j] = order[j - 1]
            order[j - 1] = tmp
            j -= 1


@njit(cache=True)
def _before(weight, row, a, b):
    wa = weight[row, a]
    wb = weight[row, b]
    if not np.isfinite(wa):
        return False
    if not np.isfinite(wb):
        return True
    return wa > wb
