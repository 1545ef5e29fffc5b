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
