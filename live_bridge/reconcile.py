"""Pure reconciliation helpers of the live daemon: client order ids, what to cancel, mismatches.

No I/O: the daemon (`live_bridge.daemon`) fetches the venue's snapshot and applies the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from live_bridge.wire import OrderInfo

CLIENT_ID_PREFIX: Final = "247-"
"""Every order the daemon sends has a client order id `247-<bar>-<seq>-<symbol>-<B|S>`."""
RESTING: Final = ("OPEN", "PENDING", "QUEUED", "CANCEL_QUEUED")
"""Venue statuses of an order that may still fill (and can be cancelled)."""

Mismatch = dict[str, dict[str, float]]
"""`{currency: {"store": x, "venue": y}}` for each currency whose amounts disagree."""


def client_order_id(bar_no: int, seq: int, symbol: str, side_is_buy: bool) -> str:
    """Return the deterministic client order id of the `seq`-th order decided at `bar_no`."""
    return f"{CLIENT_ID_PREFIX}{bar_no}-{seq}-{symbol}-{'B' if side_is_buy else 'S'}"


def parse_client_order_id(cid: str) -> tuple[int, int] | None:
    """Return `(bar_no, seq)` of one of our client order ids, None for anyone else's."""
    if not cid.startswith(CLIENT_ID_PREFIX):
        return None
    parts = cid.split("-")
    if len(parts) < 5 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return int(parts[1]), int(parts[2])


def orders_to_cancel(
    orders: Iterable[OrderInfo], decide_bar: int | None, cancel_all: bool
) -> list[str]:
    """Return the venue ids of resting orders to cancel before deciding `decide_bar`.

    With `cancel_all` (kill switch, stop) every resting order; else ours decided at a bar before
    `decide_bar` (their one-bar life has ended). `decide_bar=None` cancels none by age.
    """
    out = []
    for o in orders:
        if o.status.upper() not in RESTING:
            continue
        parsed = parse_client_order_id(o.client_order_id)
        ended = parsed is not None and decide_bar is not None and parsed[0] < decide_bar
        if cancel_all or ended:
            out.append(o.order_id)
    return out


def balance_mismatch(
    cash: float,
    quote: str,
    quote_increment: float,
    held: Sequence[float],
    bases: Sequence[str],
    base_increments: Sequence[float],
    start_balances: dict[str, float],
    balances: dict[str, float],
) -> Mismatch:
    """Return the currencies where the store and the venue disagree beyond an increment.

    The venue should hold `cash` of `quote` and, of each base, what it held at the daemon's
    first start (`start_balances`) plus `held`. A difference up to one increment (plus 1e-9
    relative, for the float sums of decimal amounts) is rounding, not a mismatch.
    """
    out: Mismatch = {}
    venue_cash = float(balances.get(quote, 0.0))
    if abs(cash - venue_cash) > (quote_increment or 0.01) + 1e-9 * abs(venue_cash):
        out[quote] = {"store": float(cash), "venue": venue_cash}
    for qty, base, inc in zip(held, bases, base_increments, strict=True):
        expected = float(qty) + float(start_balances.get(base, 0.0))
        venue_qty = float(balances.get(base, 0.0))
        if abs(expected - venue_qty) > (inc or 1e-8) + 1e-9 * abs(venue_qty):
            out[base] = {"store": expected, "venue": venue_qty}
    return out


def describe_mismatch(mismatch: Mismatch) -> str:
    """Return a mismatch as one log-line fragment."""
    return ", ".join(
        f"{cur} store {v['store']:.8g} vs venue {v['venue']:.8g}" for cur, v in mismatch.items()
    )
