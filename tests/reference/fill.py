"""Pure-Python reference of the simulator's fill model (`sim.nb.fill_order_nb`).

Written from the rules, not from the kernel: one branch per order kind, plain floats, no numba.
"""

import math

from signals.enums import OrderType, Side
from sim.enums import OrderStatus
from tests.reference.indicators import floor_to_increment_ref


def fill_order_ref(
    order, o, h, lo, vol, cash, held, min_size, min_notional, base_inc, params, fill, u1, u2
):
    """Return `(status, qty, price, fee, is_maker)` like `sim.nb.fill_order_nb`.

    Rules:

    * no bar (open not finite): `NoBar`.
    * market buy: price = open * (1 + slippage + vol_mult * vol); spend = min(notional, cash);
      qty = floor(spend / (price * (1 + taker)), base_inc) (vectorbt's fee-on-top rule); below
      the product minimums it is `InsufficientCash` when cash clipped the spend, else
      `BelowMinimum`. Fee = qty * price * taker.
    * market sell: price = open * (1 - slippage - vol_mult * vol); qty = min(order qty, held);
      `BelowMinimum` when qty < min_size or qty * price < min_notional (the venue's refusal).
    * post-only limit sell: `BelowMinimum` first (after `NoBar`) when min(order qty, held) <
      min_size or that qty * limit < min_notional.
    * post-only limit: rejected (`PostOnlyCross`) when the open is already at or through the
      limit; fills at the limit when the bar trades strictly through it, else `NoFill`; with
      partial fills on and `u1 < 0.5` only a fraction `min + (1 - min) * u2` fills (if that
      part clears the minimums). A buy the cash cannot pay (limit price plus maker fee) is
      `InsufficientCash`. Fee = qty * limit * maker. Maker flag 1.
    """
    if not math.isfinite(o):
        return OrderStatus.NoBar, 0.0, 0.0, 0.0, 0
    side = int(order["side"])
    if int(order["order_type"]) == OrderType.Market:
        slip = fill.slippage + (fill.slippage_vol_mult * vol if math.isfinite(vol) else 0.0)
        taker = params.taker_fee
        if side == Side.Buy:
            price = o * (1.0 + slip)
            notional = float(order["notional"])
            spend = min(notional, cash)
            qty = floor_to_increment_ref(spend / (price * (1.0 + taker)), base_inc)
            too_small = qty <= 0.0 or qty < min_size or qty * price * (1.0 - taker) < min_notional
            if too_small:
                if spend < notional:
                    return OrderStatus.InsufficientCash, 0.0, 0.0, 0.0, 0
                return OrderStatus.BelowMinimum, 0.0, 0.0, 0.0, 0
            return OrderStatus.Filled, qty, price, qty * price * taker, 0
        price = o * (1.0 - slip)
        qty = min(float(order["qty"]), held)
        if qty < min_size or qty * price < min_notional:
            return OrderStatus.BelowMinimum, 0.0, 0.0, 0.0, 0
        return OrderStatus.Filled, qty, price, qty * price * taker, 0

    limit = float(order["limit_price"])
    maker = params.maker_fee
    if side == Side.Sell:
        sell_qty = min(float(order["qty"]), held)
        if sell_qty < min_size or sell_qty * limit < min_notional:
            return OrderStatus.BelowMinimum, 0.0, 0.0, 0.0, 1
    crosses = o <= limit if side == Side.Buy else o >= limit
    if crosses:
        return OrderStatus.PostOnlyCross, 0.0, 0.0, 0.0, 1
    traded_through = lo < limit if side == Side.Buy else h > limit
    if not traded_through:
        return OrderStatus.NoFill, 0.0, 0.0, 0.0, 1
    qty = float(order["qty"]) if side == Side.Buy else min(float(order["qty"]), held)
    status = OrderStatus.Filled
    if fill.partial_fills and u1 < 0.5:
        fraction = fill.min_fill_fraction + (1.0 - fill.min_fill_fraction) * u2
        part = floor_to_increment_ref(qty * fraction, base_inc)
        clears = part >= min_size and part * limit * (1.0 - maker) >= min_notional
        if clears and part < qty:
            qty, status = part, OrderStatus.Partial
    if side == Side.Buy and qty * limit * (1.0 + maker) > cash:
        return OrderStatus.InsufficientCash, 0.0, 0.0, 0.0, 1
    return status, qty, limit, qty * limit * maker, 1


_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix64(x: int) -> int:
    # splitmix64's finaliser on Python ints, wrapped to 64 bits by hand
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def fill_draws_ref(seed: int, bar_no: int, symbol_key: int, side: int, purpose: int):
    """Return `(u1, u2)` like `sim.nb.fill_draws_nb`: a splitmix64 chain over the order's key
    (seed, bar number, symbol key, side * 16 + purpose), top 53 bits of each hash / 2**53."""
    h = _mix64((seed + _GOLDEN) & _MASK)
    h = _mix64(h ^ (bar_no & _MASK))
    h = _mix64(h ^ (symbol_key & _MASK))
    h = _mix64(h ^ ((side * 16 + purpose) & _MASK))
    h2 = _mix64((h + _GOLDEN) & _MASK)
    return (h >> 11) / 2.0**53, (h2 >> 11) / 2.0**53
