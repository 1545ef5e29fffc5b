"""The stage-2 kernels called with one bar's loose arrays, as many tests build their cases.

`step_nb`, `apply_fill_nb` and `fill_order_nb` take named bundles (`signals/records.py`); these wrappers pack a
test's `[S]` arrays and scalars into them, so a case reads as the rule it tests.
"""

from __future__ import annotations

import numpy as np

from signals.decision.nb import apply_fill_nb, step_nb
from signals.decision.params import StepParams, StepStatic
from signals.records import Book, Combined, Guards, StepOut, new_order
from sim.nb import fill_order_nb


def _row(x):
    return np.ascontiguousarray(x).reshape(1, -1)


def step_bar(
    bar_no, day_id, week_id, close, weight, stop_pct, take_pct, strategy, block_reason,
    product_status, regime, params, static, account, positions, orders, reason_counts, workspace,
):  # fmt: skip
    """Return `step_nb` on one bar's `[S]` inputs and scalar `regime` (row 0 of `[1, S]`)."""
    return step_nb(
        0, bar_no, day_id, week_id, _row(close),
        Combined(_row(weight), _row(stop_pct), _row(take_pct), _row(strategy)),
        Guards(_row(block_reason), np.array([regime], dtype=np.int64), product_status),
        params, static, Book(account, positions, workspace), StepOut(orders, reason_counts),
    )  # fmt: skip


# the fields `apply_fill_nb` does not read (it reads the cooldowns, given per call)
_PARAMS = StepParams(
    total_cap=0.25, theme_cap=0.15, asset_cap=0.1, max_positions=8, stop_loss=0.06,
    cooldown_fill_bars=0, cooldown_stop_bars=0, daily_loss=0.03, weekly_loss=0.07,
    max_drawdown=0.15, kill_switch=False, auto_trim=True, trim_tolerance=0.1, maker_fee=0.004,
    taker_fee=0.006, entry_order_type=0, exit_order_type=0, stop_order_type=0, limit_offset=0.0,
)  # fmt: skip


def apply_fill(
    account, positions, symbol, side, qty, price, fee, bar_no, purpose, strategy, stop_pct,
    take_pct, cooldown_fill_bars, cooldown_stop_bars, base_increment, params=_PARAMS,
):  # fmt: skip
    """Return `apply_fill_nb` of one fill given the order's fields, the cooldowns and the
    symbol's `base_increment` loose (`params`' other fields are not read)."""
    n = positions.shape[0]
    empty = np.zeros(0)
    static = StepStatic(
        np.full(n, -1, dtype=np.int64), np.full(n, float(base_increment)), empty, empty, empty,
        empty, np.zeros(0, dtype=np.int64), empty, np.zeros(0, dtype=np.int64),
    )  # fmt: skip
    order = new_order(symbol, side, purpose, strategy, stop_pct=stop_pct, take_pct=take_pct)
    params = params._replace(
        cooldown_fill_bars=int(cooldown_fill_bars), cooldown_stop_bars=int(cooldown_stop_bars)
    )
    return apply_fill_nb(account, positions, order, qty, price, fee, bar_no, params, static)


def fill_order(
    order, o, h, lo, vol, cash, held, min_size, min_notional, base_inc, params, fill, u1, u2
):  # fmt: skip
    """Return `fill_order_nb` of `order` given its product's minimums and increment loose."""
    n = int(order["symbol"]) + 1
    empty = np.zeros(0)
    static = StepStatic(
        np.full(n, -1, dtype=np.int64), np.full(n, float(base_inc)), empty,
        np.full(n, float(min_size)), np.full(n, float(min_notional)), empty,
        np.zeros(0, dtype=np.int64), empty, np.zeros(0, dtype=np.int64),
    )  # fmt: skip
    return fill_order_nb(order, o, h, lo, vol, cash, held, params, static, fill, u1, u2)
