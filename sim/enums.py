"""Record dtypes and parameter bundles of the simulator (numba-visible)."""

from typing import NamedTuple

import numpy as np

FILL_DT = np.dtype(
    [
        ("order_id", np.int64),  # row in the orders log
        ("bar", np.int64),  # row index of the fill bar in the panel
        ("symbol", np.int64),
        ("side", np.int64),
        ("order_type", np.int64),
        ("purpose", np.int64),
        ("qty", np.float64),  # base units
        ("price", np.float64),  # quote per base, incl. slippage
        ("fee", np.float64),  # quote units
        ("is_maker", np.int64),
    ],
    align=True,
)

TRADE_DT = np.dtype(
    [
        ("symbol", np.int64),
        ("strategy", np.int64),
        ("entry_bar_no", np.int64),  # absolute bar numbers (ts_ns // bar_ns)
        ("exit_bar_no", np.int64),
        ("entry_price", np.float64),  # average entry
        ("exit_price", np.float64),  # last exit fill
        ("qty", np.float64),  # base units bought over the round trip
        ("pnl_usd", np.float64),  # net of entry and exit fees
        ("fees_usd", np.float64),
        ("exit_purpose", np.int64),
    ],
    align=True,
)


class _OrderStatus(NamedTuple):
    Filled: int = 0
    Partial: int = 1
    NoFill: int = 2
    PostOnlyCross: int = 3
    BelowMinimum: int = 4
    InsufficientCash: int = 5
    NoBar: int = 6
    Open: int = 7  # still open when the data ended


OrderStatus = _OrderStatus()
ORDER_STATUS_NAMES = (
    "filled", "partial", "no_fill", "post_only_cross", "below_minimum", "insufficient_cash",
    "no_bar", "open",
)  # fmt: skip


class FillParams(NamedTuple):
    """Fill-model parameters (fractions)."""

    slippage: float  # fixed market-order slippage, fraction of price
    slippage_vol_mult: float  # extra slippage per unit of one-bar realized volatility
    partial_fills: bool
    min_fill_fraction: float
