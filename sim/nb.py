"""The backtest loop and the fill model, in numba.

For every bar `t`: the orders decided at the close of `t - 1` fill on bar `t` (market orders at
the open plus slippage with the taker fee; post-only limits at their price with the maker fee
when bar `t` trades through them, possibly partially), then the shared `step_nb` decides the
orders of bar `t` at its close: its mark and quiet check in `_quiet_run_nb`, its decision
`decide_marked_nb` called from the loop. Nothing here decides a trade: the fast paths test
the step's own rule kernels (`exit_purpose_nb`, `over_trim_nb`, `loss_floor_nb`).
"""

import numpy as np
from numba import njit

from signals._math import floor_to_increment_nb
from signals._prefetch import prefetch_row_nb
from signals.decision.nb import (
    DAY_NS,
    apply_fill_nb,
    decide_marked_nb,
    exit_purpose_nb,
    loss_floor_nb,
    mark_periods_breakers_nb,
    new_workspace_nb,
    nothing_to_decide_nb,
    over_trim_nb,
    period_ids_nb,
    roll_periods_nb,
    row_of,
    trim_on_nb,
)
from signals.enums import N_ACC, N_POS, N_REASONS, Acc, OrderType, Pos, Side
from signals.records import ORDER_DT, Book, Combined, Curves, StepOut
from sim.enums import FILL_DT, N_CURSOR, TRADE_DT, Cursor, OrderStatus, SimRecords, SimResult


@njit(cache=True)
def grow_nb(arr):
    """Return `arr` (a record or status buffer) copied into one twice as long; numba compiles
    one version per dtype."""
    # an element loop, not `out[:n] = arr`: the slice assignment's broadcasting and its error
    # messages cost ~4 s of compiling on an empty cache for the four dtypes (numba's compile
    # events, 2026-12-01)
    out = np.empty(arr.shape[0] * 2, dtype=arr.dtype)
    for i in range(arr.shape[0]):
        out[i] = arr[i]
    return out


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, _nrt=False)
def _mix64_nb(x):
    # splitmix64's finaliser (Steele, Lea, Flood 2014): a bijection of uint64 that spreads
    # every input bit over every output bit; uint64 arithmetic wraps modulo 2**64
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(cache=True, _nrt=False)
def fill_draws_nb(seed, bar_no, symbol_key, side, purpose):
    """Return `(u1, u2)`, two uniform draws in [0, 1) for one order's fill.

    Reference: tests/reference/fill.py::fill_draws_ref.
    A pure function of the run's `seed`, the order's decision bar number, its symbol's
    `symbol_key` (`StepStatic.symbol_key`, from the name), `side` and `purpose`: an order's
    fill does not depend on how many orders came before it, nor on the panel's other symbols,
    so removing one order changes no other fill, and the live bridge's paper fills draw the
    backtest's numbers after any restart. Each draw is the top 53 bits of a splitmix64 hash
    chain over those integers, times 2**-53.
    """
    h = _mix64_nb(np.uint64(seed) + _GOLDEN)
    h = _mix64_nb(h ^ np.uint64(bar_no))
    h = _mix64_nb(h ^ np.uint64(symbol_key))
    h = _mix64_nb(h ^ np.uint64(side * 16 + purpose))
    h2 = _mix64_nb(h + _GOLDEN)
    scale = 1.0 / 9007199254740992.0  # 2**-53
    return float(h >> np.uint64(11)) * scale, float(h2 >> np.uint64(11)) * scale


@njit(cache=True)
def new_state_nb(n_symbols, initial_cash):
    """Return fresh `(account[N_ACC], positions[S, N_POS])` holding only cash, USD."""
    account = np.zeros(N_ACC)
    account[Acc.Cash] = initial_cash
    account[Acc.Equity] = initial_cash
    account[Acc.PeakEquity] = initial_cash
    account[Acc.DayStartEquity] = initial_cash
    account[Acc.WeekStartEquity] = initial_cash
    account[Acc.DayId] = -1.0
    account[Acc.WeekId] = -1.0
    positions = np.zeros((n_symbols, N_POS))
    positions[:, Pos.Strategy] = -1.0
    positions[:, Pos.LastPrice] = np.nan
    return account, positions


@njit(cache=True)
def fill_order_nb(order, o, h, lo, vol, cash, held, params, static, fill, u1, u2):
    """Return `(status, qty, price, fee, is_maker)` for one order on its fill bar.

    Reference: tests/reference/fill.py::fill_order_ref.
    `o, h, lo` are the fill bar's open/high/low (NaN = no bar), `vol` the decision bar's one-bar
    realized volatility (NaN = none), `cash` the free cash (USD), `held` the position (base units;
    sells are clipped to it: long-only spot), `u1, u2` uniform draws (`fill_draws_nb`).
    The product's increments and minimums are `static`'s (`StepStatic`) at `order["symbol"]`.
    Product minimums are the venue's: Coinbase refuses an order under `base_min_size`
    (`min_size`, base units) or `quote_min_size` (`min_notional`, USD, on size x price) at
    creation (`PREVIEW_INVALID_BASE_SIZE_TOO_SMALL` / `..._QUOTE_SIZE_TOO_SMALL`), so such an
    order is `BelowMinimum` with no fill: a market buy sized at its fill price (net of the
    fee), and a sell, market or limit, whose clipped qty is under `min_size` or whose qty x
    its price (the slipped open, or the limit) is under `min_notional`. The position then
    stays; the decision does not send such a sell (`signals.decision.nb._sell_order`).
    """
    if not np.isfinite(o):
        return OrderStatus.NoBar, 0.0, 0.0, 0.0, 0
    s = order["symbol"]
    min_size = static.min_size[s]
    min_notional = static.min_notional[s]
    base_inc = static.base_increment[s]
    side = order["side"]
    if order["order_type"] == OrderType.Market:
        slip = fill.slippage
        if np.isfinite(vol):
            slip += fill.slippage_vol_mult * vol
        fee_rate = params.taker_fee
        if side == Side.Buy:
            price = o * (1.0 + slip)
            spend = order["notional"]
            if spend > cash:
                spend = cash
            qty = floor_to_increment_nb(spend / (price * (1.0 + fee_rate)), base_inc)
            if qty <= 0.0 or qty < min_size or qty * price * (1.0 - fee_rate) < min_notional:
                if spend < order["notional"]:
                    return OrderStatus.InsufficientCash, 0.0, 0.0, 0.0, 0
                return OrderStatus.BelowMinimum, 0.0, 0.0, 0.0, 0
        else:
            price = o * (1.0 - slip)
            qty = min(order["qty"], held)
            if qty < min_size or qty * price < min_notional:
                return OrderStatus.BelowMinimum, 0.0, 0.0, 0.0, 0
        return OrderStatus.Filled, qty, price, qty * price * fee_rate, 0
    # post-only limit: rejected if it would cross at arrival, else fills if traded through
    limit = order["limit_price"]
    if side == Side.Sell:
        sell_qty = min(order["qty"], held)
        if sell_qty < min_size or sell_qty * limit < min_notional:
            return OrderStatus.BelowMinimum, 0.0, 0.0, 0.0, 1
    if side == Side.Buy:
        if o <= limit:
            return OrderStatus.PostOnlyCross, 0.0, 0.0, 0.0, 1
        if not (lo < limit):
            return OrderStatus.NoFill, 0.0, 0.0, 0.0, 1
    else:
        if o >= limit:
            return OrderStatus.PostOnlyCross, 0.0, 0.0, 0.0, 1
        if not (h > limit):
            return OrderStatus.NoFill, 0.0, 0.0, 0.0, 1
    qty = order["qty"] if side == Side.Buy else min(order["qty"], held)
    status = OrderStatus.Filled
    if fill.partial_fills and u1 < 0.5:
        part = floor_to_increment_nb(
            qty * (fill.min_fill_fraction + (1.0 - fill.min_fill_fraction) * u2), base_inc
        )
        fits = part >= min_size and part * limit * (1.0 - params.maker_fee) >= min_notional
        if fits and part < qty:
            qty = part
            status = OrderStatus.Partial
    if side == Side.Buy:
        cost = qty * limit * (1.0 + params.maker_fee)
        if cost > cash:
            return OrderStatus.InsufficientCash, 0.0, 0.0, 0.0, 1
    return status, qty, limit, qty * limit * params.maker_fee, 1


def new_curves(n_bars: int) -> Curves:
    """Return empty `Curves` (`equity, cash, exposure`, float64[n_bars]) for `simulate_nb`."""
    return Curves(np.empty(n_bars), np.empty(n_bars), np.empty(n_bars))


@njit(cache=True)
def _count_held_nb(positions):
    # how many symbols hold a position
    n = 0
    for s in range(positions.shape[0]):
        if positions[s, Pos.Qty] > 0.0:
            n += 1
    return n


@njit(cache=True)
def _any_entry_nb(weight, row):
    # True when row `row` proposes an entry (weight > 0) on any symbol; one symbol (a sweep's
    # usual case) without the loop, which costs more than the test in the quiet-bar loops
    if weight.shape[1] == 1:
        return weight[row, 0] > 0.0
    for s in range(weight.shape[1]):  # noqa: SIM110 (numba compiles no generator any())
        if weight[row, s] > 0.0:
            return True
    return False


@njit(cache=True)
def _catch_up_last_prices_nb(positions, close, last_marked, row):
    # Set each symbol's last price as marking every row of last_marked+1..row would have: its
    # last finite close in those rows (unchanged when there is none). For rows skipped unmarked.
    for s in range(positions.shape[0]):
        for r in range(row, last_marked, -1):
            if np.isfinite(close[r, s]):
                positions[s, Pos.LastPrice] = close[r, s]
                break


@njit(cache=True)
def _final_mark_nb(account, positions, close, last_ts_ns, last_marked, params):
    # Settle the state after trailing skipped (flat) bars as marking every bar would have:
    # each symbol's last price is its last finite close, and the day/week roll to the last bar.
    n_bars = close.shape[0]
    _catch_up_last_prices_nb(positions, close, last_marked, n_bars - 1)
    day_id, week_id = period_ids_nb(last_ts_ns)
    mark_periods_breakers_nb(account, positions, close, n_bars - 1, day_id, week_id, params)


@njit(cache=True)
def _write_curves_nb(account, positions, t, curves):
    # the curves of bar t at its close, from the marked state
    equity = account[Acc.Equity]
    curves.equity[t] = equity
    curves.cash[t] = account[Acc.Cash]
    gross = 0.0
    for s in range(positions.shape[0]):
        if positions[s, Pos.Qty] > 0.0:
            gross += positions[s, Pos.Qty] * positions[s, Pos.LastPrice]
    curves.exposure[t] = gross / equity if equity > 0.0 else 0.0


@njit(cache=True)
def _no_weight_nb(weight, row):
    # True when row `row` of `weight` is all NaN (no proposal of any kind on any symbol); one
    # symbol without the loop, as `_any_entry_nb`
    if weight.shape[1] == 1:
        return np.isnan(weight[row, 0])
    for s in range(weight.shape[1]):  # noqa: SIM110 (numba compiles no generator all())
        if not np.isnan(weight[row, s]):
            return False
    return True


@njit(cache=True)
def _flat_entry_nb(weight, row, positions):
    # True when row `row` proposes an entry (weight > 0) on a symbol that holds no position,
    # the entry test of `nothing_to_decide_nb`; the held paths run it only on a row with a
    # finite weight (`_no_weight_nb` first)
    for s in range(weight.shape[1]):
        if weight[row, s] > 0.0 and positions[s, Pos.Qty] <= 0.0:
            return True
    return False


@njit(cache=True)
def _enter_day_nb(cursor, ts):
    # the cursor's day slots for the UTC day holding `ts` (ns): its day and ISO week ids and
    # its [lo, hi) in ns
    day_id, week_id = period_ids_nb(ts)
    cursor[Cursor.DayId] = day_id
    cursor[Cursor.WeekId] = week_id
    cursor[Cursor.DayLoNs] = day_id * DAY_NS
    cursor[Cursor.DayHiNs] = cursor[Cursor.DayLoNs] + DAY_NS


@njit(cache=True)
def _loss_floors_nb(account, params):
    # `(daily_floor, weekly_floor)`: the equity (USD) at or below which each loss stop trips
    # (`loss_floor_nb`), -inf for one off or already tripped
    daily_floor = -np.inf
    if account[Acc.DailyStop] == 0.0:
        daily_floor = loss_floor_nb(account[Acc.DayStartEquity], params.daily_loss)
    weekly_floor = -np.inf
    if account[Acc.WeeklyStop] == 0.0:
        weekly_floor = loss_floor_nb(account[Acc.WeekStartEquity], params.weekly_loss)
    return daily_floor, weekly_floor


@njit(cache=True, _nrt=False, inline="always")
def _breakers_running_nb(account, params):
    """Return the held paths' breaker state at the start of a run, as `_quiet_bar_breakers_nb`
    keeps it: `(daily_floor, weekly_floor, trip, peak, drawdown_on)` (USD, USD, USD (the higher
    floor), USD, bool), read from `account`."""
    daily_floor, weekly_floor = _loss_floors_nb(account, params)
    trip = max(daily_floor, weekly_floor)
    return (
        daily_floor,
        weekly_floor,
        trip,
        account[Acc.PeakEquity],
        account[Acc.DrawdownBreaker] == 0.0,
    )


@njit(cache=True, _nrt=False, inline="always")
def _quiet_bar_breakers_nb(e, new_day, ts, running, account, params, cursor):
    """Roll the day (and week), the peak and the breakers over one quiet bar of equity `e`
    (USD) for the held paths, as `mark_periods_breakers_nb` does, with the floors kept between
    bars. `running`: `(daily_floor, weekly_floor, trip, peak, drawdown_on)` (USD, USD, USD
    (the higher floor), USD, bool); returns them updated. `ts`: the bar's open (ns)."""
    daily_floor, weekly_floor, trip, peak, drawdown_on = running
    if new_day:
        _enter_day_nb(cursor, ts)
        roll_periods_nb(account, e, cursor[Cursor.DayId], cursor[Cursor.WeekId])
        daily_floor, weekly_floor = _loss_floors_nb(account, params)
        trip = max(daily_floor, weekly_floor)
    peak = max(peak, e)
    # one test for the two loss stops (the higher floor), then the exact ones
    if e <= trip:
        if e <= daily_floor:
            daily_floor = -np.inf
            account[Acc.DailyStop] = 1.0
        if e <= weekly_floor:
            weekly_floor = -np.inf
            account[Acc.WeeklyStop] = 1.0
        trip = max(daily_floor, weekly_floor)
    if drawdown_on and e <= loss_floor_nb(peak, params.max_drawdown):
        drawdown_on = False
        account[Acc.DrawdownBreaker] = 1.0
    return daily_floor, weekly_floor, trip, peak, drawdown_on


# how many bars ahead the quiet-bar loops hint the rows a fill or a decision reads (see
# signals/_prefetch.py): ~10 ns a bar, so far enough to cover a read from main memory
_AHEAD = 32


@njit(cache=True)
def _rows_per_line_nb(n_symbols):
    # rows of float64[., S] per 64-byte cache line, rounded down to a power of two (1 when a
    # row fills a line): the quiet loops hint one row per line, not every row
    rows = 1
    while rows * 2 * n_symbols * 8 <= 64:
        rows *= 2
    return rows


@njit(cache=True, inline="always")
def _prefetch_fill_rows_nb(row, market, regime):
    # the rows a fill on bar `row` (open, high, low) and a decision at its close (its time,
    # regime) read
    prefetch_row_nb(market.ts_ns, row)
    prefetch_row_nb(market.open, row)
    prefetch_row_nb(market.high, row)
    prefetch_row_nb(market.low, row)
    prefetch_row_nb(regime, row)


@njit(cache=True, _nrt=False, inline="always")
def _flat_run_nb(t, market, weight, regime, free, curves):
    """Write the curves of the flat bars from `t` (no position, no entry proposal); return the
    first bar with an entry proposal (or T). The cash `free` (USD) does not move on them.
    Compiled into `_quiet_run_nb` (numba IR inlining); on the way it hints the rows the next
    fill and decision read, and the closes the decision marks (unlike the held loop, this one
    reads no close: the mark at the entry bar waited on memory, 6 % of a 1M-bar backtest).
    """
    n_bars, n_symbols = weight.shape
    close = market.close
    equity = curves.equity
    cash = curves.cash
    exposure = curves.exposure
    line_mask = _rows_per_line_nb(n_symbols) - 1
    while t < n_bars and not _any_entry_nb(weight, t):
        if (t & line_mask) == 0:
            _prefetch_fill_rows_nb(t + _AHEAD, market, regime)
            prefetch_row_nb(close, t + _AHEAD)
        equity[t] = free
        cash[t] = free
        exposure[t] = 0.0
        t += 1
    return t


@njit(cache=True, _nrt=False)
def _held_one_run_nb(t, market, weight, regime, params, static, book, curves, cursor):
    """Advance over quiet bars from `t` while exactly one symbol is held; return the first bar
    this fast path cannot prove quiet (or T), for `_quiet_run_nb`'s general path.

    Per bar it does what `mark_periods_breakers_nb`, `nothing_to_decide_nb` and
    `_write_curves_nb` do, through the same rule kernels (`exit_purpose_nb`, `trim_on_nb`,
    `over_trim_nb`, `loss_floor_nb`; so the same bits), specialised to one position and no
    pending order: equity is `cash + qty x close`, the exposure of the held symbol is the total
    and its theme's exposure. It rolls the UTC day and ISO week itself and stops at an entry
    proposal (weight > 0) on a flat symbol (`_flat_entry_nb`), a non-finite close of the held
    symbol, a sell the position needs (its weight 0 among them), or an exposure over an
    auto-trim threshold; other finite weights are quiet, as in `nothing_to_decide_nb`.
    Held bars are most bars of a backtest that trades; this costs a few ns per bar instead of
    the general path's several calls, loops over symbols and themes, and workspace arrays.
    """
    ts_ns = market.ts_ns
    close = market.close
    equity = curves.equity
    cash = curves.cash
    exposure = curves.exposure
    account = book.account
    positions = book.positions
    n_bars, n_symbols = close.shape
    s = 0
    while positions[s, Pos.Qty] <= 0.0:
        s += 1
    if positions[s, Pos.PendingSellQty] != 0.0 or positions[s, Pos.PendingBuyNotional] != 0.0:
        return t
    qty = positions[s, Pos.Qty]
    stop_price = positions[s, Pos.StopPrice]
    take_price = positions[s, Pos.TakePrice]
    free = account[Acc.Cash]
    theme_capped = static.theme_id[s] >= 0
    # the account's peak and breaker state in registers for the run (stored back at the end):
    # the arrays the loop writes could alias `account`, so the compiler would otherwise reload
    # and store it on every bar. A tripped breaker stays tripped; an untripped one trips at
    # the first bar whose equity is at or below its floor, as `mark_periods_breakers_nb`.
    daily_floor, weekly_floor, trip, peak, drawdown_on = _breakers_running_nb(account, params)
    start = t
    price = np.nan
    marked = np.nan
    line_mask = _rows_per_line_nb(n_symbols) - 1
    while t < n_bars:
        if (t & line_mask) == 0:
            _prefetch_fill_rows_nb(t + _AHEAD, market, regime)
        ts = ts_ns[t]
        new_day = ts < cursor[Cursor.DayLoNs] or ts >= cursor[Cursor.DayHiNs]
        if not _no_weight_nb(weight, t) and _flat_entry_nb(weight, t, positions):
            break
        p = close[t, s]
        if not np.isfinite(p):
            break
        if exit_purpose_nb(p, weight[t, s], stop_price, take_price) >= 0:
            break
        value = qty * p
        e = free + value
        if trim_on_nb(params, e):
            if over_trim_nb(value, params.total_cap, e, params):
                break
            if theme_capped and over_trim_nb(value, params.theme_cap, e, params):
                break
            if over_trim_nb(value, params.asset_cap, e, params):
                break
        # bar t is quiet: mark it, roll the day (and week) as `mark_periods_breakers_nb` does
        price = p
        marked = e
        if n_symbols > 1:
            for j in range(n_symbols):
                if j != s and np.isfinite(close[t, j]):
                    positions[j, Pos.LastPrice] = close[t, j]
        daily_floor, weekly_floor, trip, peak, drawdown_on = _quiet_bar_breakers_nb(
            e, new_day, ts, (daily_floor, weekly_floor, trip, peak, drawdown_on), account,
            params, cursor,
        )  # fmt: skip
        equity[t] = e
        cash[t] = free
        exposure[t] = value / e if e > 0.0 else 0.0
        t += 1
    if t > start:
        positions[s, Pos.LastPrice] = price
        account[Acc.Equity] = marked
        account[Acc.PeakEquity] = peak
        cursor[Cursor.LastMarked] = t - 1
    return t


@njit(cache=True, _nrt=False)
def _held_many_run_nb(t, market, weight, regime, params, static, book, curves, cursor):
    """Advance over quiet bars from `t` while two or more symbols are held; return the first
    bar this fast path cannot prove quiet (or T), for `_quiet_run_nb`'s general path.

    `_held_one_run_nb`'s shortcut for several positions: per bar it does what
    `mark_periods_breakers_nb`, `nothing_to_decide_nb` and `_write_curves_nb` do, through the
    same rule kernels (`exit_purpose_nb`, `trim_on_nb`, `over_trim_nb`, `loss_floor_nb`; so the
    same bits), reading only the held symbols (listed in `book.workspace.order_of`, the step's
    scratch, which the next step rewrites) and no pending order: equity is `cash + sum of qty x
    close` over them in symbol order, each exposure as `_exposures` sums it. The flat symbols'
    last prices are caught up once at the end (`_catch_up_last_prices_nb`), as marking every
    bar would have left them. It stops where `_held_one_run_nb` does, for any held symbol, and
    at a close of a held symbol that is not positive. Bars with two or more positions were
    about half the bars of the 1,000-pair `ma_cross` sweep over 20 x 20k bars, each marked and
    checked by the general path's loops over every symbol: this path took one combination from
    4.5-5.4 to 3.8-4.6 ms (weights and simulation, one thread, 2026-12-07).
    """
    ts_ns = market.ts_ns
    close = market.close
    equity = curves.equity
    cash = curves.cash
    exposure = curves.exposure
    account = book.account
    positions = book.positions
    held = book.workspace.order_of
    theme_expo = book.workspace.theme_expo
    theme_id = static.theme_id
    n_bars, n_symbols = close.shape
    n_held = 0
    for s in range(n_symbols):
        if positions[s, Pos.Qty] > 0.0:
            if (
                positions[s, Pos.PendingSellQty] != 0.0
                or positions[s, Pos.PendingBuyNotional] != 0.0
            ):
                return t
            held[n_held] = s
            n_held += 1
    free = account[Acc.Cash]
    daily_floor, weekly_floor, trip, peak, drawdown_on = _breakers_running_nb(account, params)
    start = t
    marked = np.nan
    line_mask = _rows_per_line_nb(n_symbols) - 1
    while t < n_bars:
        if (t & line_mask) == 0:
            _prefetch_fill_rows_nb(t + _AHEAD, market, regime)
        ts = ts_ns[t]
        new_day = ts < cursor[Cursor.DayLoNs] or ts >= cursor[Cursor.DayHiNs]
        if not _no_weight_nb(weight, t) and _flat_entry_nb(weight, t, positions):
            break
        # equity and gross exposure in symbol order, as `_mark_row` and `_write_curves_nb`
        e = free
        gross = 0.0
        quiet = True
        for i in range(n_held):
            s = held[i]
            p = close[t, s]
            if not p > 0.0 or not np.isfinite(p):
                quiet = False
                break
            w = weight[t, s]
            if exit_purpose_nb(p, w, positions[s, Pos.StopPrice], positions[s, Pos.TakePrice]) >= 0:
                quiet = False
                break
            value = positions[s, Pos.Qty] * p
            e += value
            gross += value
        if not quiet or not np.isfinite(gross):
            break
        if trim_on_nb(params, e):
            if over_trim_nb(gross, params.total_cap, e, params):
                break
            for i in range(n_held):
                if theme_id[held[i]] >= 0:
                    theme_expo[theme_id[held[i]]] = 0.0
            over = False
            for i in range(n_held):
                s = held[i]
                value = positions[s, Pos.Qty] * close[t, s]
                if over_trim_nb(value, params.asset_cap, e, params):
                    over = True
                if theme_id[s] >= 0:
                    theme_expo[theme_id[s]] += value
            for i in range(n_held):
                k = theme_id[held[i]]
                if k >= 0 and over_trim_nb(theme_expo[k], params.theme_cap, e, params):
                    over = True
            if over:
                break
        # bar t is quiet: roll the day (and week), peak and breakers as
        # `mark_periods_breakers_nb` does
        marked = e
        daily_floor, weekly_floor, trip, peak, drawdown_on = _quiet_bar_breakers_nb(
            e, new_day, ts, (daily_floor, weekly_floor, trip, peak, drawdown_on), account,
            params, cursor,
        )  # fmt: skip
        equity[t] = e
        cash[t] = free
        exposure[t] = gross / e if e > 0.0 else 0.0
        t += 1
    if t > start:
        _catch_up_last_prices_nb(positions, close, cursor[Cursor.LastMarked], t - 1)
        account[Acc.Equity] = marked
        account[Acc.PeakEquity] = peak
        cursor[Cursor.LastMarked] = t - 1
    return t


@njit(cache=True, _nrt=False, inline="always")
def _quiet_run_nb(t, n_held, market, weight, regime, params, static, book, curves, cursor):
    """Advance over the bars from `t` that need no decision; return the first that does (or T).

    Called with no order pending (the bar's fills are done), so the positions (`n_held` of
    them) do not change on the way. Each quiet bar gets its curves; a bar with a position or
    an entry proposal is marked and rolled (`mark_periods_breakers_nb`) first, and the one
    returned is left marked, rolled and checked for the decision (`decide_marked_nb`).
    The day slots and the last marked row live in `cursor` across calls (`Cursor`).
    Compiled into `_simulate_loop_nb` (numba IR inlining): a call with this many arguments
    costs more than a bar's work.

    A flat bar with no entry proposal is not even marked: with no position, equity is the cash,
    so marking would only move the flat symbols' last prices and roll the day/week to the same
    cash. The next marked bar first takes each symbol's last finite close from the skipped rows
    (`_catch_up_last_prices_nb`: its own close may be missing) and rolls the day/week to the
    same values before anything reads them; `_final_mark_nb` settles the state the run returns
    after trailing skipped bars. Exact.
    """
    ts_ns = market.ts_ns
    close = market.close
    account = book.account
    positions = book.positions
    n_bars = close.shape[0]
    while t < n_bars:
        if n_held == 0 and not _any_entry_nb(weight, t):
            t = _flat_run_nb(t, market, weight, regime, account[Acc.Cash], curves)
            continue
        if n_held == 1:
            t = _held_one_run_nb(t, market, weight, regime, params, static, book, curves, cursor)
            if t == n_bars:
                return t
        elif n_held > 1:
            t = _held_many_run_nb(t, market, weight, regime, params, static, book, curves, cursor)
            if t == n_bars:
                return t
        if cursor[Cursor.LastMarked] < t - 1:
            # flat rows were skipped unmarked since the last mark
            _catch_up_last_prices_nb(positions, close, cursor[Cursor.LastMarked], t - 1)
        cursor[Cursor.LastMarked] = t
        # the UTC day (and ISO week) change once per day: divide only when `ts_ns[t]` leaves
        # the current day's `[DayLoNs, DayHiNs)` window, not on every bar
        ts = ts_ns[t]
        if ts < cursor[Cursor.DayLoNs] or ts >= cursor[Cursor.DayHiNs]:
            _enter_day_nb(cursor, ts)
        mark_periods_breakers_nb(account, positions, close, t, cursor[Cursor.DayId],
                                 cursor[Cursor.WeekId], params)  # fmt: skip
        if not nothing_to_decide_nb(t, close, weight, params, static, book):
            return t
        _write_curves_nb(account, positions, t, curves)
        t += 1
    return t


# Tried until 2026-12-07: the decision compiled into `_simulate_loop_nb` by numba IR inlining
# (`inline="always"` on a copy of `decide_marked_nb`) rather than called; end to end, in fresh
# processes, `run_backtest` took 89-104 vs 91-109 ms at 1 x 1M bars and 27-28 vs 27-28 ms at
# 20 x 20k, under the 5 % a trick must gain: removed, the loop calls `decide_marked_nb`.

# what `_simulate_loop_nb` stopped for: done, or the record buffer to grow before going on
_FULL_NONE, _FULL_ORDERS, _FULL_FILLS, _FULL_TRADES = 0, 1, 2, 3


@njit(cache=True, _nrt=False)
def _simulate_loop_nb(cursor, market, proposals, guards, params, static, fill, seed, book,
                      records, curves):  # fmt: skip
    """Run `simulate_nb`'s bar loop from bar `cursor[Cursor.Bar]` until the end or a full
    record buffer.

    Returns `_FULL_NONE` when the last bar is done, else which buffer (`_FULL_ORDERS`,
    `_FULL_FILLS`, `_FULL_TRADES`) must grow before calling again: a bar starts only when its
    fills, trades and orders fit, so stopping loses nothing. The loop's scalars between calls
    are `cursor`'s slots (`Cursor`). The loop allocates nothing, hence `_nrt=False`: without it
    every call inside it (quiet runs, the step, fills) paid reference counting on its ~20
    array arguments, about a sixth of a backtest that trades often.
    """
    ts_ns = market.ts_ns
    bar_ns = market.bar_ns
    open_ = market.open
    high = market.high
    low = market.low
    vol = market.vol
    weight = proposals.weight
    regime = guards.regime
    account = book.account
    positions = book.positions
    orders = records.orders
    status = records.order_status
    fills = records.fills
    trades = records.trades
    step_orders = records.step_orders
    step_out = StepOut(step_orders, records.reason_counts)
    n_bars, n_symbols = market.close.shape
    t = cursor[Cursor.Bar]
    n_orders = cursor[Cursor.NOrders]
    n_fills = cursor[Cursor.NFills]
    n_trades = cursor[Cursor.NTrades]
    prev_start = cursor[Cursor.PrevStart]
    stepped = cursor[Cursor.Stepped] != 0
    n_held = cursor[Cursor.NHeld]
    full = _FULL_NONE
    while t < n_bars:
        # --- room for this bar's records, else stop here and let the caller grow a buffer ---
        n_pending = n_orders - prev_start
        if n_fills + n_pending > fills.shape[0]:
            full = _FULL_FILLS
            break
        if n_trades + n_pending > trades.shape[0]:
            full = _FULL_TRADES
            break
        if n_orders + step_orders.shape[0] > orders.shape[0]:
            full = _FULL_ORDERS
            break
        # --- fills of the orders decided at t - 1 ------------------------------------------
        for j in range(prev_start, n_orders):
            order = orders[j]
            s = order["symbol"]
            u1, u2 = fill_draws_nb(
                seed, order["bar_no"], static.symbol_key[s], order["side"], order["purpose"]
            )
            st, qty, price, fee, is_maker = fill_order_nb(
                order, open_[t, s], high[t, s], low[t, s], vol[row_of(vol, t - 1), s],
                account[Acc.Cash], positions[s, Pos.Qty], params, static, fill, u1, u2,
            )  # fmt: skip
            status[j] = st
            if st != OrderStatus.Filled and st != OrderStatus.Partial:
                continue
            if qty <= 0.0:
                continue
            bar_no = ts_ns[t] // bar_ns
            entry_bar = positions[s, Pos.EntryBar]
            closed = apply_fill_nb(account, positions, order, qty, price, fee, bar_no, params,
                                   static)  # fmt: skip
            n_held = _count_held_nb(positions)
            rec = fills[n_fills]
            rec["order_id"] = j
            rec["bar"] = t
            rec["symbol"] = s
            rec["side"] = order["side"]
            rec["order_type"] = order["order_type"]
            rec["purpose"] = order["purpose"]
            rec["qty"] = qty
            rec["price"] = price
            rec["fee"] = fee
            rec["is_maker"] = is_maker
            n_fills += 1
            if np.isfinite(closed):
                tr = trades[n_trades]
                tr["symbol"] = s
                tr["strategy"] = int(positions[s, Pos.Strategy])
                tr["entry_bar_no"] = int(entry_bar)
                tr["exit_bar_no"] = bar_no
                tr["entry_price"] = positions[s, Pos.AvgEntry]
                tr["exit_price"] = price
                tr["qty"] = positions[s, Pos.EntryNotional] / positions[s, Pos.AvgEntry]
                tr["pnl_usd"] = closed
                tr["fees_usd"] = positions[s, Pos.TradeFees]
                tr["exit_purpose"] = order["purpose"]
                n_trades += 1
        # pending orders live one bar: whatever did not fill is cancelled (only the step sets
        # them, so a bar after one that skipped the step has nothing to clear)
        if stepped:
            for s in range(n_symbols):
                positions[s, Pos.PendingBuyNotional] = 0.0
                positions[s, Pos.PendingSellQty] = 0.0
            account[Acc.ReservedCash] = 0.0
        prev_start = n_orders
        stepped = False

        # --- the quiet bars from t on: marked, rolled and written, nothing decided ----------
        t = _quiet_run_nb(t, n_held, market, weight, regime, params, static, book, curves, cursor)
        if t == n_bars:
            break

        # --- decide at the close of t (`_quiet_run_nb` has marked and rolled it) -----------
        n_new = decide_marked_nb(
            t, ts_ns[t] // bar_ns, account[Acc.Equity], market.close, proposals, guards, params,
            static, book, step_out,
        )  # fmt: skip
        stepped = True
        for j in range(n_new):
            orders[n_orders] = step_orders[j]
            status[n_orders] = OrderStatus.Open
            n_orders += 1
        _write_curves_nb(account, positions, t, curves)
        t += 1
    cursor[Cursor.Bar] = t
    cursor[Cursor.NOrders] = n_orders
    cursor[Cursor.NFills] = n_fills
    cursor[Cursor.NTrades] = n_trades
    cursor[Cursor.PrevStart] = prev_start
    cursor[Cursor.Stepped] = 1 if stepped else 0
    cursor[Cursor.NHeld] = n_held
    return full


@njit(cache=True)
def _check_per_bar_shapes_nb(market, proposals, guards):
    # `weight` is [T, S]; the inputs read only on an entry or a fill may be one [1, S] row
    n_bars, n_symbols = market.close.shape
    weight = proposals.weight
    if weight.shape[0] != n_bars or weight.shape[1] != n_symbols:
        raise ValueError("simulate_nb: `weight` must have the shape of `close`, [T, S]")
    for shape in (proposals.stop_pct.shape, proposals.take_pct.shape, proposals.strategy.shape,
                  guards.block_reason.shape, market.vol.shape):  # fmt: skip
        if shape[1] != n_symbols or (shape[0] != n_bars and shape[0] != 1):
            raise ValueError(
                "simulate_nb: `stop_pct`, `take_pct`, `strategy`, `block_reason` and `vol` must "
                "be [T, S] or one [1, S] row for every bar"
            )


@njit(cache=True)
def simulate_nb(market, proposals, guards, params, static, fill, initial_cash, seed, curves):
    """Run the backtest over `[T, S]` arrays; return a `SimResult` of records and curves.

    `market` (`signals.records.Market`: times, OHLC, one-bar volatility), `proposals`
    (`Combined`) and `guards` (`Guards`) are the bars and stage 1; `params`/`static`
    (`StepParams`/`StepStatic`) the policy, `fill` (`FillParams`) the fill model, `seed` its
    draws, `initial_cash` USD. `stop_pct`, `take_pct`, `strategy`, `block_reason` and `vol`
    may each be one `[1, S]` row that holds for every bar (`signals.decision.nb.row_of`), e.g.
    a single strategy's constant stop: the results are those of the `[T, S]` array repeating
    that row. Other shapes raise.

    Reference: the vectorbt cross-check in tests/sim/test_vectorbt_parity.py (market orders, no
    slippage), the accounting invariants in tests/sim/test_simulator_properties.py, and a plain
    loop stepping every bar in tests/sim/test_simulator_shortcuts.py (equal bit for bit: the
    quiet-bar and single-position shortcuts change no result).

    Returns `SimResult(orders ORDER_DT[n], order_status int64[n], fills FILL_DT[m], trades
    TRADE_DT[k], equity[T], cash[T], exposure[T], reason_counts[K, S, N_REASONS], account,
    positions)`. Curves are measured at each bar's close (USD; exposure as a fraction of
    equity) into the caller's `curves` buffers (float64[T], returned as given): a caller outside
    numba allocates them with numpy, whose large arrays fault in on huge pages (about 6x faster
    to first touch than numba's own allocations: 1.3 vs 7.6 ms for three 1M-bar curves,
    measured 2026-12-01; `new_curves` does it).
    """
    _check_per_bar_shapes_nb(market, proposals, guards)
    close = market.close
    n_bars, n_symbols = close.shape
    n_strategies = static.strategy_cap.shape[0]
    account, positions = new_state_nb(n_symbols, initial_cash)
    book = Book(account, positions, new_workspace_nb(n_symbols, static.theme_id, n_strategies))
    # record buffers double when full (a copy, and one more call of the loop): start at a
    # record per 32 bars, so that most runs never grow them. Only the records written touch
    # memory; the rest of a buffer is address space (264 B per 32 bars).
    room = max(16, 4 * n_symbols, n_bars // 32)
    records = SimRecords(
        np.empty(room, dtype=ORDER_DT),
        np.empty(room, dtype=np.int64),
        np.empty(room, dtype=FILL_DT),
        np.empty(max(16, n_bars // 32), dtype=TRADE_DT),
        np.empty(2 * n_symbols + 8, dtype=ORDER_DT),
        np.zeros((max(n_strategies, 1), n_symbols, N_REASONS), dtype=np.int64),
    )
    # the day slots start empty (the first bar computes its day) and no row is marked
    cursor = np.zeros(N_CURSOR, dtype=np.int64)
    cursor[Cursor.LastMarked] = -1
    while True:
        full = _simulate_loop_nb(cursor, market, proposals, guards, params, static, fill, seed,
                                 book, records, curves)  # fmt: skip
        if full == _FULL_NONE:
            break
        if full == _FULL_ORDERS:
            records = SimRecords(
                grow_nb(records.orders), grow_nb(records.order_status), records.fills,
                records.trades, records.step_orders, records.reason_counts,
            )  # fmt: skip
        elif full == _FULL_FILLS:
            records = SimRecords(
                records.orders, records.order_status, grow_nb(records.fills), records.trades,
                records.step_orders, records.reason_counts,
            )  # fmt: skip
        else:
            records = SimRecords(
                records.orders, records.order_status, records.fills, grow_nb(records.trades),
                records.step_orders, records.reason_counts,
            )  # fmt: skip
    n_orders = cursor[Cursor.NOrders]
    last_marked = cursor[Cursor.LastMarked]
    if last_marked < n_bars - 1:
        _final_mark_nb(account, positions, close, market.ts_ns[n_bars - 1], last_marked, params)
    return SimResult(
        records.orders[:n_orders],
        records.order_status[:n_orders],
        records.fills[: cursor[Cursor.NFills]],
        records.trades[: cursor[Cursor.NTrades]],
        curves.equity,
        curves.cash,
        curves.exposure,
        records.reason_counts,
        account,
        positions,
    )


# Tried until 2026-12-07: `simulate` ran `simulate_nb.py_func` in the interpreter so the bar loop
# kept its own machine code (6.8-7.5 vs 9.5-11.2 ms for the loop alone); end to end, in fresh
# processes, `run_backtest` took 98-102 vs 97-102 ms at 1 x 1M bars and 28-30 vs 29-30 ms at
# 20 x 20k, under the 5 % a trick must gain: removed. `simulate` is `simulate_nb`.
simulate = simulate_nb
"""`simulate_nb` (the name Python callers use)."""


def simulate_without_proposals(market, guards, params, static, fill, initial_cash, seed):
    """`simulate` over these bars with no proposal on any bar; returns its result.

    Called on two bars, it loads (or compiles) the kernels `simulate` calls for these argument
    types, and nothing else: `sim.warmup` uses it so. The per-bar proposal inputs are built
    here with the types a real run passes (float64 weights, stop and take; int64 strategy
    index).
    """
    n_bars, n_symbols = market.close.shape
    nan_row = np.full((1, n_symbols), np.nan)
    proposals = Combined(
        np.full((n_bars, n_symbols), np.nan), nan_row, nan_row.copy(),
        np.full((1, n_symbols), -1, dtype=np.int64),
    )  # fmt: skip
    return simulate(
        market, proposals, guards, params, static, fill, initial_cash, seed, new_curves(n_bars)
    )


# the kernels `simulate` calls, each compiled once per argument-type signature (`sim.warmup`
# compiles them into the cache ahead of a first run)
SIMULATE_KERNELS = (
    simulate_nb, _check_per_bar_shapes_nb, new_state_nb, new_workspace_nb, _simulate_loop_nb,
    grow_nb, _final_mark_nb,
)  # fmt: skip
