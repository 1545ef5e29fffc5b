"""Dumb pure-Python references of `step_nb` and `apply_fill_nb` (signals/decision/nb.py).

Written from the rules in the kernels' docstrings, not from their code: plain loops over
Python floats, exposures recomputed from the state and the orders emitted so far, orders as
dicts. Arithmetic follows the documented formulas in the same order, so agreement with the
kernel is exact in practice; the tests compare with rtol 1e-12.
"""

from __future__ import annotations

import math

import numpy as np

from signals.enums import Acc, OrderType, Pos, ProductStatus, Purpose, Reason, Side
from signals.records import ORDER_DT
from tests.reference import indicators as _ind


def floor_to_increment_ref(x, inc):
    return _ind.floor_to_increment_ref(float(x), float(inc))


def ceil_to_increment_ref(x, inc):
    return _ind.ceil_to_increment_ref(float(x), float(inc))


TRADABLE = (ProductStatus.Online,)
EXITABLE = (ProductStatus.Online, ProductStatus.PostOnly, ProductStatus.LimitOnly)


def apply_fill_ref(
    account, positions, symbol, side, qty, price, fee, bar_no, purpose, strategy, stop_pct,
    take_pct, cooldown_fill_bars, cooldown_stop_bars, base_increment,
):  # fmt: skip
    """Apply one fill to `account`/`positions` in place; return the closed trade's PnL or NaN.

    A sell that would leave less than one base increment (flooring to zero increments) sells
    the whole position and closes the trade.
    """
    p = positions[symbol]
    held = float(p[Pos.Qty])
    closed = math.nan
    if side == Side.Buy:
        if held <= 0.0:
            p[Pos.AvgEntry] = price
            p[Pos.EntryBar] = bar_no
            p[Pos.Strategy] = strategy
            p[Pos.TradePnl] = 0.0
            p[Pos.TradeFees] = 0.0
            p[Pos.EntryNotional] = 0.0
            p[Pos.StopPrice] = price * (1.0 - stop_pct) if stop_pct > 0.0 else 0.0
            p[Pos.TakePrice] = price * (1.0 + take_pct) if take_pct > 0.0 else 0.0
        else:
            p[Pos.AvgEntry] = (held * p[Pos.AvgEntry] + qty * price) / (held + qty)
        p[Pos.Qty] = held + qty
        p[Pos.EntryNotional] += qty * price
        account[Acc.Cash] -= qty * price + fee
        pnl = -fee
    else:
        qty = min(qty, held)  # long-only spot: never sell more than held
        if floor_to_increment_ref(held - qty, base_increment) <= 0.0:
            qty = held  # a remainder under one increment is no position: it goes too
        pnl = qty * (price - p[Pos.AvgEntry]) - fee
        account[Acc.Cash] += qty * price - fee
        left = held - qty
        if left <= 0.0:
            left = 0.0
            closed = p[Pos.TradePnl] + pnl
            p[Pos.StopPrice] = 0.0
            p[Pos.TakePrice] = 0.0
        p[Pos.Qty] = left
    account[Acc.RealizedPnl] += pnl
    p[Pos.RealizedPnl] += pnl
    p[Pos.TradePnl] += pnl
    p[Pos.TradeFees] += fee
    account[Acc.FeesPaid] += fee
    p[Pos.FeesPaid] += fee
    stop = purpose == Purpose.StopLoss
    until = bar_no + (cooldown_stop_bars if stop else cooldown_fill_bars)
    if stop or until > p[Pos.CooldownUntilBar]:
        p[Pos.CooldownUntilBar] = until
        p[Pos.CooldownIsStop] = 1.0 if stop else 0.0
    return closed


def _value(positions, s):
    # Projected exposure of one symbol at the last price: position + pending buys - pending sells.
    p = positions[s]
    value = p[Pos.Qty] * p[Pos.LastPrice]
    if not math.isfinite(value) or value < 0.0:
        value = 0.0
    value = value + p[Pos.PendingBuyNotional]
    if p[Pos.PendingSellQty] > 0.0:  # a never-priced symbol (NaN) has no pending sell
        value = value - p[Pos.PendingSellQty] * p[Pos.LastPrice]
    return max(value, 0.0)


def _sell(out, bar_no, s, qty, purpose, order_type, status, price, params, static, positions,
          reasons):  # fmt: skip
    p = positions[s]
    if status in (ProductStatus.PostOnly, ProductStatus.LimitOnly):
        order_type = OrderType.LimitPostOnly
    qty = ceil_to_increment_ref(qty, static.base_increment[s])
    qty = min(qty, p[Pos.Qty] - p[Pos.PendingSellQty])  # never more than the unsold position
    if qty <= 0.0:
        return 0.0
    limit = math.nan
    if order_type == OrderType.LimitPostOnly:
        limit = ceil_to_increment_ref(
            price * (1.0 + params.limit_offset), static.quote_increment[s]
        )
    at = limit if order_type == OrderType.LimitPostOnly else price
    if qty < static.min_size[s] or qty * at < static.min_notional[s]:
        # the venue refuses a sell under its minimums: no order, the position stays
        reasons[max(int(p[Pos.Strategy]), 0), s, Reason.BelowMinimum] += 1
        return 0.0
    p[Pos.PendingSellQty] += qty
    out.append(
        {
            "bar_no": bar_no, "symbol": s, "side": Side.Sell, "order_type": order_type,
            "purpose": purpose, "strategy": int(p[Pos.Strategy]), "qty": qty, "notional": 0.0,
            "limit_price": limit, "ref_price": price, "stop_pct": 0.0, "take_pct": 0.0,
        }
    )  # fmt: skip
    return qty


def _trim(out, bar_no, s, sell_value, status, params, static, positions, reasons):
    p = positions[s]
    price = p[Pos.LastPrice]
    held = p[Pos.Qty] - p[Pos.PendingSellQty]
    qty = sell_value / price
    left = held - ceil_to_increment_ref(qty, static.base_increment[s])
    if (
        left * price * (1.0 - params.taker_fee) < static.min_notional[s]
        or left < static.min_size[s]
    ):
        qty = held  # never leave a remainder below the product minimums
    return _sell(
        out, bar_no, s, qty, Purpose.Trim, params.exit_order_type, status, price, params, static,
        positions, reasons,
    )  # fmt: skip


def step_ref(
    bar_no, day_id, week_id, close, weight, stop_pct, take_pct, strategy, block_reason,
    product_status, regime, params, static, account, positions, reason_counts,
):  # fmt: skip
    """Return the list of order dicts of one bar; update `account`, `positions`, `reason_counts`."""
    n_sym = len(close)
    out: list[dict] = []
    theme = [int(x) for x in static.theme_id]
    n_themes = max([1] + [t + 1 for t in theme])
    n_strat = len(static.strategy_cap)

    def count(k, s, reason):
        reason_counts[k, s, reason] += 1

    # mark to market
    equity = account[Acc.Cash]
    for s in range(n_sym):
        if math.isfinite(close[s]):
            positions[s, Pos.LastPrice] = close[s]
        if positions[s, Pos.Qty] > 0.0:
            equity += positions[s, Pos.Qty] * positions[s, Pos.LastPrice]
    account[Acc.Equity] = equity
    # periods and breakers
    if account[Acc.DayId] != day_id:
        account[Acc.DayId] = day_id
        account[Acc.DayStartEquity] = equity
        account[Acc.DailyStop] = 0.0
    if account[Acc.WeekId] != week_id:
        account[Acc.WeekId] = week_id
        account[Acc.WeekStartEquity] = equity
        account[Acc.WeeklyStop] = 0.0
    account[Acc.PeakEquity] = max(account[Acc.PeakEquity], equity)
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
    if params.kill_switch:
        for s in range(n_sym):
            if weight[s] > 0.0 and positions[s, Pos.Qty] <= 0.0:
                count(max(int(strategy[s]), 0), s, Reason.KillSwitch)
        return out

    # exits
    exiting = [False] * n_sym
    for s in range(n_sym):
        qty = positions[s, Pos.Qty] - positions[s, Pos.PendingSellQty]
        price = close[s]
        if qty <= 0.0 or not math.isfinite(price):
            continue
        stop_price, take_price = positions[s, Pos.StopPrice], positions[s, Pos.TakePrice]
        if stop_price > 0.0 and price <= stop_price:
            purpose = Purpose.StopLoss
        elif take_price > 0.0 and price >= take_price:
            purpose = Purpose.TakeProfit
        elif weight[s] == 0.0:
            purpose = Purpose.Exit
        else:
            continue
        if product_status[s] not in EXITABLE:
            count(max(int(positions[s, Pos.Strategy]), 0), s, Reason.ProductStatus)
            continue
        order_type = params.exit_order_type
        if purpose in (Purpose.StopLoss, Purpose.TakeProfit):
            order_type = params.stop_order_type
        _sell(out, bar_no, s, qty, purpose, order_type, product_status[s], price, params, static,
              positions, reason_counts)  # fmt: skip
        exiting[s] = True

    # auto-trim
    def can_trim(s):
        return not exiting[s] and positions[s, Pos.Qty] > 0.0 and product_status[s] in EXITABLE

    def largest(members):
        best, best_value = -1, 0.0
        for s in members:
            if can_trim(s) and _value(positions, s) > best_value:
                best, best_value = s, _value(positions, s)
        return best

    if params.auto_trim and equity > 0.0:
        slack = 1.0 + params.trim_tolerance
        for s in range(n_sym):
            cap = params.asset_cap * equity
            if can_trim(s) and _value(positions, s) > cap * slack:
                _trim(out, bar_no, s, _value(positions, s) - cap, product_status[s], params,
                      static, positions, reason_counts)  # fmt: skip
                exiting[s] = True
        for t in range(n_themes):
            members = [s for s in range(n_sym) if theme[s] == t]
            cap = params.theme_cap * equity
            while sum(_value(positions, s) for s in members) > cap * slack:
                s = largest(members)
                if s < 0:
                    break
                excess = sum(_value(positions, m) for m in members) - cap
                _trim(out, bar_no, s, min(excess, _value(positions, s)), product_status[s],
                      params, static, positions, reason_counts)  # fmt: skip
                exiting[s] = True
        cap = params.total_cap * equity
        while sum(_value(positions, s) for s in range(n_sym)) > cap * slack:
            s = largest(range(n_sym))
            if s < 0:
                break
            excess = sum(_value(positions, m) for m in range(n_sym)) - cap
            _trim(out, bar_no, s, min(excess, _value(positions, s)), product_status[s], params,
                  static, positions, reason_counts)  # fmt: skip
            exiting[s] = True

    # entries, by descending weight (ties: column order)
    candidates = [s for s in range(n_sym) if weight[s] > 0.0]
    candidates.sort(key=lambda s: -weight[s])
    if not any(positions[s, Pos.Qty] <= 0.0 and not exiting[s] for s in candidates):
        return out
    universe_empty = all(block_reason[s] != Reason.Ok for s in range(n_sym))
    mult = static.regime_mult[regime] if regime >= 0 else 1.0
    cash_free = account[Acc.Cash] - account[Acc.ReservedCash]
    new_trades = [0] * max(n_strat, 1)

    def open_count():
        return sum(
            1 for s in range(n_sym)
            if positions[s, Pos.Qty] > 0.0 or positions[s, Pos.PendingBuyNotional] > 0.0
        )  # fmt: skip

    def strategy_expo(k):
        total = 0.0
        for s in range(n_sym):
            v = _value(positions, s)
            if v > 0.0 and int(positions[s, Pos.Strategy]) == k:
                total += v
        return total

    for s in candidates:
        if positions[s, Pos.Qty] > 0.0 or exiting[s]:
            continue
        k = max(int(strategy[s]), 0)
        price = close[s]
        p = positions[s]
        if account[Acc.DrawdownBreaker] > 0.0:
            reason = Reason.DrawdownBreaker
        elif account[Acc.DailyStop] > 0.0:
            reason = Reason.DailyLossStop
        elif account[Acc.WeeklyStop] > 0.0:
            reason = Reason.WeeklyLossStop
        elif mult <= 0.0:
            reason = Reason.RegimeBlock
        elif product_status[s] not in TRADABLE:
            reason = Reason.ProductStatus
        elif block_reason[s] != Reason.Ok:
            reason = Reason.EmptyUniverse if universe_empty else int(block_reason[s])
        elif not math.isfinite(price) or price <= 0.0:
            reason = Reason.StaleData
        elif p[Pos.PendingBuyNotional] > 0.0:
            reason = Reason.AlreadyPending
        elif bar_no < p[Pos.CooldownUntilBar]:
            reason = Reason.StopCooldown if p[Pos.CooldownIsStop] > 0.0 else Reason.Cooldown
        elif open_count() >= params.max_positions:
            reason = Reason.MaxPositions
        elif new_trades[k] >= static.strategy_max_trades[k]:
            reason = Reason.StrategyTradesPerBar
        else:
            reason = Reason.Ok
        if reason != Reason.Ok:
            count(k, s, reason)
            continue

        target = weight[s] * equity
        if mult < 1.0:
            target *= mult
            count(k, s, Reason.RegimeShrink)
        rooms = [(target, Reason.Ok)]
        rooms.append((static.strategy_cap[k] * equity - strategy_expo(k), Reason.StrategyBudget))
        rooms.append((params.asset_cap * equity - _value(positions, s), Reason.AssetCap))
        t = theme[s]
        if t >= 0:
            theme_value = sum(_value(positions, m) for m in range(n_sym) if theme[m] == t)
            rooms.append((params.theme_cap * equity - theme_value, Reason.ThemeCap))
        rooms.append((params.total_cap * equity - sum(_value(positions, m) for m in range(n_sym)),
                      Reason.TotalCap))  # fmt: skip
        rooms.append((cash_free, Reason.InsufficientCash))
        caps_only = min(room for room, _ in rooms[1:-1])  # caps without the target or cash
        headroom, limiting = rooms[0]
        for room, why in rooms[1:]:
            if room < headroom:  # strict: ties keep the earlier (budget before global caps)
                headroom, limiting = room, why
        if headroom <= 0.0:
            count(k, s, limiting if limiting != Reason.Ok else Reason.TotalCap)
            continue
        if limiting != Reason.Ok:
            count(k, s, limiting)

        stop = stop_pct[s]
        if not math.isfinite(stop) or stop <= 0.0 or 0.0 < params.stop_loss < stop:
            stop = params.stop_loss
        take = take_pct[s]
        if not math.isfinite(take) or take < 0.0:
            take = 0.0
        if params.entry_order_type == OrderType.Market:
            fee, fill_price, limit = params.taker_fee, price, math.nan
        else:
            fee = params.maker_fee
            limit = floor_to_increment_ref(price * (1.0 - params.limit_offset),
                                           static.quote_increment[s])  # fmt: skip
            fill_price = limit
        if not fill_price > 0.0:
            count(k, s, Reason.BelowMinimum)
            continue
        qty = floor_to_increment_ref(
            headroom / (fill_price * (1.0 + fee)), static.base_increment[s]
        )
        need = max(
            static.min_size[s],
            ceil_to_increment_ref(static.min_notional[s] / (fill_price * (1.0 - fee)),
                                  static.base_increment[s]),
        )  # fmt: skip
        if qty < need:
            need_cost = need * fill_price * (1.0 + fee)
            if need_cost <= caps_only * (1.0 + 1e-12) and need_cost <= cash_free:
                qty = need  # round up past the target only within every cap and the cash
            else:
                count(k, s, Reason.BelowMinimum)
                continue
        if qty <= 0.0:
            count(k, s, Reason.BelowMinimum)
            continue
        cost = qty * fill_price * (1.0 + fee)
        market = params.entry_order_type == OrderType.Market
        out.append(
            {
                "bar_no": bar_no, "symbol": s, "side": Side.Buy,
                "order_type": params.entry_order_type, "purpose": Purpose.Entry, "strategy": k,
                "qty": 0.0 if market else qty,
                # market buys are sized in quote on the quote grid (fee included)
                "notional": floor_to_increment_ref(cost, static.quote_increment[s]) if market else 0.0,
                "limit_price": limit, "ref_price": price, "stop_pct": stop, "take_pct": take,
            }
        )  # fmt: skip
        p[Pos.PendingBuyNotional] += cost
        p[Pos.Strategy] = k  # a pending entry counts toward its strategy's budget
        account[Acc.ReservedCash] += cost
        cash_free -= cost
        new_trades[k] += 1
    return out


def orders_array(orders: list[dict]) -> np.ndarray:
    """Return the order dicts as an `ORDER_DT` array."""
    arr = np.zeros(len(orders), dtype=ORDER_DT)
    for i, order in enumerate(orders):
        for key, value in order.items():
            arr[i][key] = value
    return arr
