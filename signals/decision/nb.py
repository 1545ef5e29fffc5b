"""The shared stage-2 kernels: `step_nb` (risk, sizing, orders) and `apply_fill_nb` (accounting).

Both drivers call these and nothing else decides: `sim` loops `step_nb` over every bar inside
numba; `live_bridge` calls it once per closed bar with state loaded from its SQLite store.

Arguments come in the named bundles of `signals/records.py`: `Combined` and `Guards` (stage
1), `Book` (the state and the step's scratch), `StepOut` (orders and reason counts), plus the
`StepParams`/`StepStatic` of `signals/decision/params.py`. The state is two float64 buffers
updated in place (STYLE §1): `account[N_ACC]` indexed by `Acc`, and `positions[S, N_POS]`
indexed by `Pos`. Bars are
identified by their absolute bar number `bar_no = ts_ns // bar_ns`, so cooldowns survive a
restart of the live daemon. Pending orders are inputs: the driver sets `Pos.PendingBuyNotional`,
`Pos.PendingSellQty` and `Acc.ReservedCash` from its open orders before calling `step_nb`
(the simulator clears them after each bar's fills), and `step_nb` adds the orders it emits, so
open orders count toward every cap.

Each rule the simulator's fast paths also test (a stop or take-profit touched, an exit, a trim
threshold, a loss stop's floor) is one small kernel in "Rules" below, which every path calls.
"""

import numpy as np
from numba import njit

# `_nrt=False` on the per-bar kernels: they allocate nothing and keep no reference past
# the call, so reference counting their ~25 arrays (about 100 atomic operations per
# bar) only cost time: measured 290 -> 55 ns per call for one symbol (/tmp harness in the
# commit message). A kernel that allocates cannot compile with it, so the flag is safe to keep.
from signals._math import ceil_to_increment_nb, floor_to_increment_nb
from signals.enums import Acc, OrderType, Pos, ProductStatus, Purpose, Reason, Side
from signals.records import Workspace

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
def apply_fill_nb(account, positions, order, qty, price, fee, bar_no, params, static):
    """Apply one fill of `order` to the state; return the round trip's PnL (USD) when it
    closes, else NaN.

    Reference: tests/reference/step.py::apply_fill_ref.
    `order` is an `ORDER_DT` record (its symbol, side, purpose, strategy, stop and take are
    read; `signals.records.new_order` makes one); the fill is `qty` base units at `price`
    (quote per base) paying `fee` (USD) on bar number `bar_no`.
    Buys pay `qty * price + fee` in cash and move the average entry (fees are not in the
    average: the entry fee is realized at the buy, so the round trip's PnL in `TradePnl` is net
    of both fees and realized + unrealized PnL always equals the change in equity). Sells
    are clipped to the position (long-only spot) and receive `qty * price - fee`. A sell that
    leaves less than one `base_increment` (the product's base unit grid; the remainder floors
    to zero increments with `floor_to_increment_nb`'s tolerance) sells the whole position:
    such a remainder is float error of summed fills, no position the venue could hold or
    sell, so the sell closes the trade at this fill. `base_increment <= 0` keeps any
    remainder > 0. The stop and take-profit prices are set from the first fill's price. A
    fill starts a cooldown of `params.cooldown_fill_bars`; a stop-loss fill starts the longer
    `params.cooldown_stop_bars`.
    """
    symbol = order["symbol"]
    side = order["side"]
    purpose = order["purpose"]
    strategy = order["strategy"]
    stop_pct = order["stop_pct"]
    take_pct = order["take_pct"]
    base_increment = static.base_increment[symbol]
    cooldown_fill_bars = params.cooldown_fill_bars
    cooldown_stop_bars = params.cooldown_stop_bars
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
    """Return the step's scratch `Workspace`, allocated once per run (none inside the bar loop).

    `theme_id` is `StepStatic.theme_id` (int64[S]); the kernel overwrites the buffers on every
    call.
    """
    n_themes = 1
    for s in range(n_symbols):
        if theme_id[s] + 1 > n_themes:
            n_themes = theme_id[s] + 1
    k = max(n_strategies, 1)
    return Workspace(
        np.zeros(n_symbols, dtype=np.bool_),
        np.zeros(n_symbols),
        np.zeros(n_themes),
        np.zeros(k),
        np.zeros(k, dtype=np.int64),
        np.zeros(n_symbols, dtype=np.int64),
    )


@njit(cache=True)
def _exposures(positions, theme_id, n_strategies, workspace):
    # each symbol's, theme's and strategy's exposure (USD, positions + pending) into
    # `workspace`; return the total
    out_symbol = workspace.expo
    out_theme = workspace.theme_expo
    out_strategy = workspace.strategy_expo
    total = 0.0
    for t in range(out_theme.shape[0]):
        out_theme[t] = 0.0
    for k in range(n_strategies):
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
        if value > 0.0 and 0 <= k < n_strategies:
            out_strategy[k] += value
    return total


@njit(cache=True)
def _emit(orders, n, bar_no, symbol, side, order_type, purpose, strategy, ref_price):
    # write order `n` with no size (qty and notional 0, no limit, no stop or take); the caller
    # sizes it
    orders[n]["bar_no"] = bar_no
    orders[n]["symbol"] = symbol
    orders[n]["side"] = side
    orders[n]["order_type"] = order_type
    orders[n]["purpose"] = purpose
    orders[n]["strategy"] = strategy
    orders[n]["qty"] = 0.0
    orders[n]["notional"] = 0.0
    orders[n]["limit_price"] = np.nan
    orders[n]["ref_price"] = ref_price
    orders[n]["stop_pct"] = 0.0
    orders[n]["take_pct"] = 0.0


@njit(cache=True)
def _sell_order_type(purpose, params):
    # stop-loss and take-profit sells use the policy's stop order type, other sells its exit type
    if purpose == Purpose.StopLoss or purpose == Purpose.TakeProfit:
        return params.stop_order_type
    return params.exit_order_type


@njit(cache=True)
def _sell_order(out, n, bar_no, s, qty, purpose, status, price, params, static, positions):
    # Route a sell through what the product status allows; return the new order count. A sell
    # under the product minimums (size, or size x its price: the limit, else the close) is not
    # emitted, as the venue refuses it: `BelowMinimum` is counted, the position stays, and the
    # sell is tried again on the next bar that wants it (it goes once the price lifts it).
    order_type = _sell_order_type(purpose, params)
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
        out.reason_counts[k if k >= 0 else 0, s, Reason.BelowMinimum] += 1
        return n
    positions[s, Pos.PendingSellQty] += qty
    orders = out.orders
    _emit(orders, n, bar_no, s, Side.Sell, order_type, purpose, int(positions[s, Pos.Strategy]),
          price)  # fmt: skip
    orders[n]["qty"] = qty
    orders[n]["limit_price"] = limit
    return n + 1


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
# Rules (each one kernel, called by the step and by the simulator's fast paths)
# ============================================================================================


@njit(cache=True)
def exit_purpose_nb(price, weight, stop_price, take_price):
    """Return the `Purpose` of the sell a held position needs at `price`, or -1 for none.

    `StopLoss` when `price` is at or below `stop_price` (quote per base; 0 = no stop), else
    `TakeProfit` when at or above `take_price` (0 = none), else `Exit` when the combined
    `weight` is 0 (the strategy exits; NaN = no opinion keeps the position). A NaN `price`
    gives -1 from the stops; callers skip a non-finite close first.
    """
    if stop_price > 0.0 and price <= stop_price:
        return Purpose.StopLoss
    if take_price > 0.0 and price >= take_price:
        return Purpose.TakeProfit
    if weight == 0.0:
        return Purpose.Exit
    return -1


@njit(cache=True)
def trim_on_nb(params, equity):
    """Return True when auto-trim acts at `equity` (USD): `params.auto_trim` and equity > 0."""
    return params.auto_trim and equity > 0.0


@njit(cache=True)
def over_trim_nb(value, cap, equity, params):
    """Return True when exposure `value` (USD) is over the trim threshold of a cap of `cap`
    (fraction of `equity`, USD): `cap x equity x (1 + params.trim_tolerance)`."""
    return value > cap * equity * (1.0 + params.trim_tolerance)


@njit(cache=True)
def loss_floor_nb(start_equity, loss):
    """Return the equity (USD) at or below which a stop of `loss` (fraction) under
    `start_equity` (USD) trips: `start_equity x (1 - loss)`; -inf when off (`loss >= 1`).

    The daily and weekly loss stops (from the day's or week's start equity) and the drawdown
    breaker (from the peak equity) all trip by this rule.
    """
    if loss < 1.0:
        return start_equity * (1.0 - loss)
    return -np.inf


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
    drawdown breakers (`loss_floor_nb`); return equity, USD.

    The first stage of `step_nb`, and all it does on a quiet bar (no position, no weight
    > 0): the simulator calls it alone on such bars.
    """
    equity = _mark_row(account, positions, close, row)
    roll_periods_nb(account, equity, day_id, week_id)
    if equity > account[Acc.PeakEquity]:
        account[Acc.PeakEquity] = equity
    if equity <= loss_floor_nb(account[Acc.DayStartEquity], params.daily_loss):
        account[Acc.DailyStop] = 1.0
    if equity <= loss_floor_nb(account[Acc.WeekStartEquity], params.weekly_loss):
        account[Acc.WeeklyStop] = 1.0
    if equity <= loss_floor_nb(account[Acc.PeakEquity], params.max_drawdown):
        account[Acc.DrawdownBreaker] = 1.0
    return equity


@njit(cache=True, _nrt=False)
def nothing_to_decide_nb(row, close, weight, params, static, book):
    """Return True when `step_nb` would emit no order and count no reason on bar `row`.

    Reference: tests/reference/step.py::step_ref (a quiet bar gives no orders and no counts).
    Call after `mark_periods_breakers_nb`. True needs: no entry proposal (`weight[T, S]` > 0) on
    a flat symbol; no held symbol with a sell to make (`exit_purpose_nb`); and, with auto-trim,
    no asset, theme or total exposure over its trim threshold (`over_trim_nb`). It is a
    sufficient condition (a False only means "run the full step"), so the simulator may skip the
    step on such bars and `step_nb` returns early on them: one check, used by both.
    """
    account = book.account
    positions = book.positions
    workspace = book.workspace
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
        if exit_purpose_nb(price, w, positions[s, Pos.StopPrice], positions[s, Pos.TakePrice]) >= 0:
            return False
    equity = account[Acc.Equity]
    if not trim_on_nb(params, equity):
        return True
    total = _exposures(positions, static.theme_id, workspace.strategy_expo.shape[0], workspace)
    if over_trim_nb(total, params.total_cap, equity, params):
        return False
    theme_expo = workspace.theme_expo
    for t in range(theme_expo.shape[0]):
        if over_trim_nb(theme_expo[t], params.theme_cap, equity, params):
            return False
    expo = workspace.expo
    for s in range(n_symbols):
        if positions[s, Pos.Qty] > 0.0 and over_trim_nb(expo[s], params.asset_cap, equity, params):
            return False
    return True


@njit(cache=True, _nrt=False)
def step_nb(row, bar_no, day_id, week_id, close, proposals, guards, params, static, book, out):
    """Decide the orders of bar `row`; return how many were written to `out.orders`.

    Reference: tests/reference/step.py::step_ref.

    The one decision: the simulator runs it (as `mark_periods_breakers_nb`, the quiet check
    and `decide_marked_nb`) on every bar, the live daemon on the last row of its window. Taking
    whole `[T, S]` arrays and the row index (not per-bar row views) keeps the simulator's
    per-bar call free of new array views and their reference counting; one bar's `[S]` inputs
    are one-row `[1, S]` arrays (`x.reshape(1, -1)`) with `row = 0`.

    Inputs at the close of bar `row`: `close[T, S]` (NaN = no bar), `proposals`
    (`signals.records.Combined`: the combined weight, stop, take and strategy), `guards`
    (`signals.records.Guards`: stage-1 block reasons, the regime, product statuses), the UTC
    `day_id` and ISO `week_id` of the bar (`period_ids_nb`) and its absolute `bar_no`.
    `book` (`signals.records.Book`) is the state, updated in place, and the scratch from
    `new_workspace_nb`. `out.orders` must hold at least `2 * S` records of `ORDER_DT`;
    `out.reason_counts[K, S, N_REASONS]` is incremented once per proposal a control blocks or
    shrinks.

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
    equity = mark_periods_breakers_nb(
        book.account, book.positions, close, row, day_id, week_id, params
    )
    if not params.kill_switch and nothing_to_decide_nb(
        row, close, proposals.weight, params, static, book
    ):
        return 0
    return decide_marked_nb(row, bar_no, equity, close, proposals, guards, params, static, book,
                            out)  # fmt: skip


@njit(cache=True, _nrt=False)
def decide_marked_nb(row, bar_no, equity, close, proposals, guards, params, static, book, out):
    """`step_nb` after its mark, for a bar already marked (`mark_periods_breakers_nb`,
    which returned `equity`, USD) on which `nothing_to_decide_nb` is False or the kill switch
    is on; same inputs and result.

    The simulator's quiet-bar loop has marked and checked the bar before it calls this, so
    it does not mark and check it a second time.
    """
    weight = proposals.weight
    stop_pct = proposals.stop_pct
    take_pct = proposals.take_pct
    strategy = proposals.strategy
    block_reason = guards.block_reason
    product_status = guards.product_status
    regime = guards.regime[row_of(guards.regime, row)]
    account = book.account
    positions = book.positions
    workspace = book.workspace
    orders = out.orders
    reason_counts = out.reason_counts
    n_symbols = close.shape[1]
    n_strategies = static.strategy_cap.shape[0]
    exiting = workspace.exiting
    expo = workspace.expo
    theme_expo = workspace.theme_expo
    strat_expo = workspace.strategy_expo
    trades_this_bar = workspace.trades_this_bar
    order_of = workspace.order_of
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
        purpose = exit_purpose_nb(
            price, weight[row, s], positions[s, Pos.StopPrice], positions[s, Pos.TakePrice]
        )
        if purpose < 0:
            continue
        if not _can_exit(product_status[s]):
            k = int(positions[s, Pos.Strategy])
            reason_counts[k if k >= 0 else 0, s, Reason.ProductStatus] += 1
            continue
        n = _sell_order(out, n, bar_no, s, qty, purpose, product_status[s], price, params, static,
                        positions)  # fmt: skip
        exiting[s] = True

    # --- exposures (positions + pending) ----------------------------------------------------
    total = _exposures(positions, static.theme_id, n_strategies, workspace)

    # --- auto-trim: back under asset, theme and total caps -----------------------------------
    if trim_on_nb(params, equity):
        for s in range(n_symbols):
            if exiting[s] or positions[s, Pos.Qty] <= 0.0 or not _can_exit(product_status[s]):
                continue
            if over_trim_nb(expo[s], params.asset_cap, equity, params):
                sell_value = expo[s] - params.asset_cap * equity
                n = _trim(out, n, bar_no, s, sell_value, product_status[s], params, static, book)
                exiting[s] = True
        for t in range(n_themes):
            while over_trim_nb(theme_expo[t], params.theme_cap, equity, params):
                s = _largest(expo, static.theme_id, t, exiting, positions, product_status)
                if s < 0:
                    break
                sell_value = min(theme_expo[t] - params.theme_cap * equity, expo[s])
                n = _trim(out, n, bar_no, s, sell_value, product_status[s], params, static, book)
                exiting[s] = True
        total = 0.0
        for s in range(n_symbols):
            total += expo[s]
        while over_trim_nb(total, params.total_cap, equity, params):
            s = _largest(expo, static.theme_id, -2, exiting, positions, product_status)
            if s < 0:
                break
            sell_value = min(total - params.total_cap * equity, expo[s])
            before = expo[s]
            n = _trim(out, n, bar_no, s, sell_value, product_status[s], params, static, book)
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
        _emit(orders, n, bar_no, s, Side.Buy, order_type, Purpose.Entry, k, price)
        orders[n]["qty"] = order_qty
        orders[n]["notional"] = notional
        orders[n]["limit_price"] = limit
        orders[n]["stop_pct"] = stop
        orders[n]["take_pct"] = take
        n += 1
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
def _trim(out, n, bar_no, s, sell_value, status, params, static, book):
    # sell `sell_value` (USD) of symbol `s` (all of it if the rest would be under the product
    # minimums); take what it sold off the workspace's exposures
    positions = book.positions
    expo = book.workspace.expo
    theme_expo = book.workspace.theme_expo
    strat_expo = book.workspace.strategy_expo
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
    n = _sell_order(out, n, bar_no, s, qty, Purpose.Trim, status, price, params, static, positions)
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
