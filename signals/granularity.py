"""Coinbase Advanced Trade candle granularities: the names the API takes and their lengths.

One table for every reader of candles: `sim data fetch`, the live bridge's adapter and the
exchange simulator.
"""

from __future__ import annotations

GRANULARITY_SECS: dict[str, int] = {
    "ONE_MINUTE": 60,
    "FIVE_MINUTE": 300,
    "FIFTEEN_MINUTE": 900,
    "THIRTY_MINUTE": 1800,
    "ONE_HOUR": 3600,
    "TWO_HOUR": 7200,
    "FOUR_HOUR": 14400,
    "SIX_HOUR": 21600,
    "ONE_DAY": 86400,
}
"""Candle granularity name -> bar length, seconds."""

MAX_CANDLES_PER_REQUEST = 350
"""Coinbase's cap on the buckets one candles request may span."""
