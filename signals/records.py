"""Record dtypes and the argument bundles of the stage-2 kernels (numba-visible).

The bundles are NamedTuples of arrays (vectorbt's `exec_state` style): numba passes one as its
fields, so a kernel takes a few named bundles instead of many positional arrays, at no cost
per call. Arrays are `[T, S]` (time on axis 0) unless noted; a field documented as "or one
`[1, S]` row" holds for every bar (`signals.decision.nb.row_of`). The simulator's own
bundles (record buffers, loop cursor) are in `sim/enums.py`, beside their dtypes.
"""

from typing import NamedTuple

import numpy as np

ORDER_DT = np.dtype(
    [
        ("bar_no", np.int64),  # absolute bar number (ts_ns // bar_ns) of the decision bar
        ("symbol", np.int64),  # column index into the panel's symbols
        ("side", np.int64),  # Side.Buy / Side.Sell
        ("order_type", np.int64),  # OrderType
        ("purpose", np.int64),  # Purpose
        ("strategy", np.int64),  # index into the enabled strategies
        ("qty", np.float64),  # base units; 0 for a market buy sized by notional
        ("notional", np.float64),  # quote units incl. fee, for market buys; else 0
        ("limit_price", np.float64),  # quote per base; NaN for market orders
        ("ref_price", np.float64),  # the decision bar's close
        ("stop_pct", np.float64),  # fraction below the fill price for the stop (entries)
        ("take_pct", np.float64),  # fraction above the fill price for take-profit; 0 = none
    ],
    align=True,
)


def new_order(
    symbol: int,
    side: int,
    purpose: int,
    strategy: int,
    *,
    bar_no: int = 0,
    stop_pct: float = 0.0,
    take_pct: float = 0.0,
) -> np.void:
    """Return one `ORDER_DT` record (a market order of no size) for `apply_fill_nb` callers
    that hold no order row: the live daemon closing dust, tests."""
    rec = np.zeros(1, dtype=ORDER_DT)[0]
    rec["bar_no"] = bar_no
    rec["symbol"] = symbol
    rec["side"] = side
    rec["purpose"] = purpose
    rec["strategy"] = strategy
    rec["limit_price"] = np.nan
    rec["stop_pct"] = stop_pct
    rec["take_pct"] = take_pct
    return rec


class Market(NamedTuple):
    """The bars a backtest marks and fills on."""

    ts_ns: np.ndarray  # int64[T], bar open times, UTC epoch ns
    bar_ns: int  # bar length, ns
    open: np.ndarray  # float64, quote per base; NaN = no bar
    high: np.ndarray  # float64
    low: np.ndarray  # float64
    close: np.ndarray  # float64; NaN = no bar (the last finite close marks the position)
    vol: np.ndarray  # float64 or one [1, S] row: one-bar realized volatility at each close
    # (the fill model's slippage term for orders decided on that bar); NaN = none


class Combined(NamedTuple):
    """Stage 1's combined proposals (`signals.pipeline.combine_proposals`; a strategy's own
    are `signals.strategies.Proposals`).

    `stop_pct`, `take_pct` and `strategy` may be one `[1, S]` row; the step reads them only
    where a weight proposes an entry.
    """

    weight: np.ndarray  # float64, target fraction of equity: NaN = no opinion, 0 = exit,
    # > 0 = hold or enter
    stop_pct: np.ndarray  # float64, stop-loss as a fraction below the fill price;
    # NaN = the policy's `stop_loss_pct`
    take_pct: np.ndarray  # float64, take-profit as a fraction above the fill price;
    # NaN or < 0 = none
    strategy: np.ndarray  # int64, index of the proposing strategy among the enabled; -1 = none


class Guards(NamedTuple):
    """Stage 1's guards: what blocks an entry whatever the strategies propose."""

    block_reason: np.ndarray  # int64 or one [1, S] row: `Reason` code from the universe,
    # staleness, bans and bad ticks; 0 (`Reason.Ok`) = tradable
    regime: np.ndarray  # int64[T] or int64[1] (every bar): `Regime` code of the bar
    product_status: np.ndarray  # int64[S]: `ProductStatus` of each product


class Workspace(NamedTuple):
    """Scratch of the step (`signals.decision.nb.new_workspace_nb`), overwritten every call."""

    exiting: np.ndarray  # bool[S]: the symbol sells on this bar (no entry, no second sell)
    expo: np.ndarray  # float64[S]: exposure, USD, positions plus pending orders
    theme_expo: np.ndarray  # float64[n_themes]: exposure per theme, USD
    strategy_expo: np.ndarray  # float64[K]: exposure per strategy, USD
    trades_this_bar: np.ndarray  # int64[K]: entries emitted per strategy on this bar
    order_of: np.ndarray  # int64[S]: symbols by descending weight (NaN last)


class Book(NamedTuple):
    """The running state the step and the fills update in place, and the step's scratch."""

    account: np.ndarray  # float64[N_ACC], columns `signals.enums.Acc` (USD, ids, flags)
    positions: np.ndarray  # float64[S, N_POS], columns `signals.enums.Pos`
    workspace: Workspace


class StepOut(NamedTuple):
    """What one step writes besides the state."""

    orders: np.ndarray  # ORDER_DT[>= 2 S]: the bar's orders, written from row 0
    reason_counts: np.ndarray  # int64[K, S, N_REASONS]: +1 per proposal a control blocks
    # or shrinks (`signals.enums.Reason`)


class Curves(NamedTuple):
    """Per-bar curves at each bar's close, float64[T] each."""

    equity: np.ndarray  # USD
    cash: np.ndarray  # USD
    exposure: np.ndarray  # gross position value as a fraction of equity
