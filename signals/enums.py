"""Integer codes shared by kernels (numba sees the NamedTuple instances as constants).

Python code at layer 2 may mirror them as `IntEnum`s; kernels only ever see ints.
"""

from typing import NamedTuple


class _Side(NamedTuple):
    Buy: int = 1
    Sell: int = -1


Side = _Side()


class _OrderType(NamedTuple):
    Market: int = 0
    LimitPostOnly: int = 1


OrderType = _OrderType()


class _Regime(NamedTuple):
    Unknown: int = -1
    Bull: int = 0
    Chop: int = 1
    Bear: int = 2
    Crash: int = 3


Regime = _Regime()
REGIME_NAMES = ("bull", "chop", "bear", "crash")


class _ProductStatus(NamedTuple):
    Online: int = 0
    PostOnly: int = 1
    LimitOnly: int = 2
    CancelOnly: int = 3
    Offline: int = 4
    Unknown: int = 5


ProductStatus = _ProductStatus()
PRODUCT_STATUS_NAMES = ("online", "post_only", "limit_only", "cancel_only", "offline", "unknown")


class _Reason(NamedTuple):
    """Why a proposal was blocked or shrunk: the report's "no-trade reasons"."""

    Ok: int = 0
    KillSwitch: int = 1
    DrawdownBreaker: int = 2
    DailyLossStop: int = 3
    WeeklyLossStop: int = 4
    RegimeBlock: int = 5
    ProductStatus: int = 6
    StaleData: int = 7
    LowVolume: int = 8
    WideSpread: int = 9
    ExcludedTier: int = 10
    UniverseSize: int = 11
    Banned: int = 12
    Cooldown: int = 13
    StopCooldown: int = 14
    MaxPositions: int = 15
    StrategyBudget: int = 16
    StrategyTradesPerBar: int = 17
    AssetCap: int = 18
    ThemeCap: int = 19
    TotalCap: int = 20
    BelowMinimum: int = 21
    InsufficientCash: int = 22
    BadTick: int = 23
    RegimeShrink: int = 24
    AlreadyPending: int = 25
    PostOnlyCross: int = 26
    NoFill: int = 27
    EmptyUniverse: int = 28


Reason = _Reason()
N_REASONS = len(Reason)
REASON_NAMES = tuple(
    "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    for name in _Reason._fields
)


class _Purpose(NamedTuple):
    """Why the `step` kernel emitted an order."""

    Entry: int = 0
    Exit: int = 1
    StopLoss: int = 2
    TakeProfit: int = 3
    Trim: int = 4


Purpose = _Purpose()
PURPOSE_NAMES = ("entry", "exit", "stop_loss", "take_profit", "trim")


class _Acc(NamedTuple):
    """Column indices of the account state vector (float64[N_ACC])."""

    Cash: int = 0
    Equity: int = 1
    PeakEquity: int = 2
    DayId: int = 3
    DayStartEquity: int = 4
    WeekId: int = 5
    WeekStartEquity: int = 6
    DailyStop: int = 7
    WeeklyStop: int = 8
    DrawdownBreaker: int = 9
    RealizedPnl: int = 10
    FeesPaid: int = 11
    ReservedCash: int = 12


Acc = _Acc()
N_ACC = len(Acc)


class _Pos(NamedTuple):
    """Column indices of the per-symbol position state (float64[S, N_POS])."""

    Qty: int = 0
    AvgEntry: int = 1
    LastPrice: int = 2
    StopPrice: int = 3
    TakePrice: int = 4
    Strategy: int = 5
    CooldownUntilBar: int = 6
    CooldownIsStop: int = 7
    PendingBuyNotional: int = 8
    PendingSellQty: int = 9
    EntryBar: int = 10
    TradePnl: int = 11
    TradeFees: int = 12
    RealizedPnl: int = 13
    FeesPaid: int = 14
    EntryNotional: int = 15


Pos = _Pos()
N_POS = len(Pos)
