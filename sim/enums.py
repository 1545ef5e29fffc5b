"""Record dtypes, bundles and slot layouts of the simulator (numba-visible).

The bundles the simulator shares with the decision kernel (`Market`, `Combined`, `Guards`,
`Book`, `StepOut`, `Curves`) are in `signals/records.py`.
"""

from typing import NamedTuple

import numpy as np

from signals.records import Guards, Market

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


class _Cursor(NamedTuple):
    """Slots of the bar loop's int64 `cursor` (`sim.nb`): its scalars between calls."""

    Bar: int = 0  # the next bar to run
    NOrders: int = 1  # records written so far
    NFills: int = 2
    NTrades: int = 3
    PrevStart: int = 4  # the first order decided on the previous bar (they fill on this one)
    Stepped: int = 5  # 1 if the previous bar ran the full step (its pending orders to clear)
    NHeld: int = 6  # symbols holding a position
    DayId: int = 7  # UTC day number of the last rolled bar
    WeekId: int = 8  # its ISO week number
    DayLoNs: int = 9  # that UTC day is [DayLoNs, DayHiNs), epoch ns; empty at the start
    DayHiNs: int = 10
    LastMarked: int = 11  # the last row marked; -1 = none


Cursor = _Cursor()
N_CURSOR = len(Cursor)


class SimRecords(NamedTuple):
    """The simulator's record buffers; the first four double when full (`sim.nb.grow_nb`)."""

    orders: np.ndarray  # ORDER_DT[n]: every order decided, in decision order
    order_status: np.ndarray  # int64[n]: `OrderStatus` of each order
    fills: np.ndarray  # FILL_DT[m]
    trades: np.ndarray  # TRADE_DT[k]: closed round trips
    step_orders: np.ndarray  # ORDER_DT[2 S + 8]: one bar's orders (`StepOut.orders`)
    reason_counts: np.ndarray  # int64[K, S, N_REASONS]: the run's blocked/shrunk proposals


class SimResult(NamedTuple):
    """What `sim.nb.simulate` returns (records cut to their length)."""

    orders: np.ndarray  # ORDER_DT[n]
    order_status: np.ndarray  # int64[n], `OrderStatus`
    fills: np.ndarray  # FILL_DT[m]
    trades: np.ndarray  # TRADE_DT[k]
    equity: np.ndarray  # float64[T], USD at each close (the caller's `Curves` buffers)
    cash: np.ndarray  # float64[T], USD
    exposure: np.ndarray  # float64[T], fraction of equity
    reason_counts: np.ndarray  # int64[K, S, N_REASONS]
    account: np.ndarray  # float64[N_ACC], the final state (`signals.enums.Acc`)
    positions: np.ndarray  # float64[S, N_POS] (`signals.enums.Pos`)


# --- parameter sweeps (`sim.sweep_nb`) ------------------------------------------------------


class SweepBars(NamedTuple):
    """The bars and stage-1 inputs every combination of a sweep shares (read only).

    It nests `Market` and `Guards`, which a `prange` body cannot take (numba's gufunc wrapper
    refuses nested NamedTuples): the parallel kernels take the four fields and build this
    inside the loop.
    """

    market: Market  # times, OHLC, one-bar volatility
    volume: np.ndarray  # float64[T, S], base units (the `rules` volume spike reads it)
    bad_tick: np.ndarray  # uint8[T, S], 1 = the bar is a bad tick (no entry on it)
    guards: Guards  # block reasons, regime, product statuses


class RunSpec(NamedTuple):
    """The scalars of one simulated run of a sweep, besides the policy (`StepParams`,
    `StepStatic`, `FillParams`, passed as they are)."""

    initial_cash: float  # USD
    seed: int  # the fill model's draws
    bars_per_year: float  # annualises Sharpe, Sortino, CAGR
    trade_start: int  # first row whose proposals count; earlier rows only warm up


class KernelGrid(NamedTuple):
    """The kernel strategies of a sweep group and their parameter rows."""

    rules_slot: int  # index of `rules` among the enabled strategies (name order); -1 = off
    ma_slot: int  # index of `ma_cross`; -1 = off
    rules_p: np.ndarray  # float64[C, len(RULES_FIELDS)], columns `RulesCol`
    ma_p: np.ndarray  # float64[C, len(MA_FIELDS)], columns `MaCol`


class StrategyWeights(NamedTuple):
    """One kernel strategy's proposals in combined form (`sim.sweep_nb._no_opinion_before_nb`)."""

    weight: np.ndarray  # float64[T, S]: >= 0 or NaN (no opinion); empty when disabled
    stop_pct: float  # constant stop, fraction; NaN = the policy's
    take_pct: float  # constant take-profit, fraction; 0 = none


class SharedIndicators(NamedTuple):
    """Each distinct indicator array of a grid, computed once (`shared_indicators_nb`)."""

    breakout: np.ndarray  # uint8[D, T, S], one per distinct `breakout_lookback`
    momentum: np.ndarray  # uint8[D, T, S], per distinct (lookback, threshold)
    spike: np.ndarray  # uint8[D, T, S], per distinct (volume lookback, ratio)
    dip: np.ndarray  # uint8[D, T, S], per distinct (lookback, z) of rows with mean reversion
    exit_signal: np.ndarray  # uint8[D, T, S], per distinct `exit_lookback`
    rules_idx: np.ndarray  # int64[C, 5]: row c's entry in each mask, columns `MaskCol`; -1 none
    sma: np.ndarray  # float64[W, T, S], one per distinct `ma_cross` window
    fast_idx: np.ndarray  # int64[C]: row c's fast SMA in `sma`; -1 when disabled
    slow_idx: np.ndarray  # int64[C]


class _MaskCol(NamedTuple):
    """Columns of `SharedIndicators.rules_idx`: which `rules` trigger mask."""

    Breakout: int = 0
    Momentum: int = 1
    Spike: int = 2
    Dip: int = 3
    Exit: int = 4


MaskCol = _MaskCol()


class Scratch(NamedTuple):
    """Work buffers of one simulated run (`new_scratch_nb`: a stack of them, `[W, ...]`, one
    set per worker); overwritten on every use. `T'` is T when two strategies are combined,
    else 0."""

    proposal: np.ndarray  # float64[T, S]: one strategy's weights
    weight: np.ndarray  # float64[T', S]: the combined proposals
    stop_pct: np.ndarray  # float64[T', S]
    take_pct: np.ndarray  # float64[T', S]
    chosen: np.ndarray  # int64[T', S]: the strategy each combined row came from
    best: np.ndarray  # float64[T', S]: the combine's running best weight
    equity: np.ndarray  # float64[T]: the run's curves
    cash: np.ndarray  # float64[T]
    exposure: np.ndarray  # float64[T]


class _RulesCol(NamedTuple):
    """Columns of a `rules` parameter row (float64; ints and bools stored exactly as floats),
    named as the `rules` config fields; `RULES_FIELDS` is the tuple of the names."""

    breakout_lookback: int = 0
    momentum_lookback: int = 1
    momentum_threshold_pct: int = 2
    volume_lookback: int = 3
    volume_spike_ratio: int = 4
    mean_reversion: int = 5
    mean_reversion_lookback: int = 6
    mean_reversion_z: int = 7
    exit_lookback: int = 8
    target_weight_pct: int = 9
    stop_loss_pct: int = 10
    take_profit_pct: int = 11


RulesCol = _RulesCol()
RULES_FIELDS = _RulesCol._fields


class _MaCol(NamedTuple):
    """Columns of an `ma_cross` parameter row, named as its config fields (`MA_FIELDS`)."""

    fast: int = 0
    slow: int = 1
    target_weight_pct: int = 2
    stop_loss_pct: int = 3


MaCol = _MaCol()
MA_FIELDS = _MaCol._fields


class _Metric(NamedTuple):
    """Columns of a sweep's metrics row, with the meaning of `sim.metrics.summary_metrics`
    (`METRIC_NAMES` is the tuple of the names)."""

    total_trades: int = 0
    win_rate: int = 1
    total_pnl_pct: int = 2
    max_drawdown_pct: int = 3
    profit_factor: int = 4
    sharpe: int = 5
    sortino: int = 6
    calmar: int = 7
    cagr_pct: int = 8
    exposure_time_pct: int = 9
    turnover: int = 10
    fees_paid_usd: int = 11
    final_equity_usd: int = 12
    total_orders: int = 13
    total_fills: int = 14


Metric = _Metric()
METRIC_NAMES = _Metric._fields
N_METRICS = len(Metric)
