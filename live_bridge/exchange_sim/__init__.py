"""Local Coinbase Advanced Trade exchange simulator (REST over loopback, no WebSocket).

Build an `ExchangeEngine` over a bar frame and a clock, serve it with `ExchangeServer`, switch
faults with `FaultPlan`. The unmodified coinbase-advanced-py SDK talks to it over TLS.
"""

from live_bridge.exchange_sim.clock import Clock, RealtimeClock, SteppedClock
from live_bridge.exchange_sim.engine import (
    DEFAULT_PRODUCT,
    GRANULARITY_SECS,
    ExchangeEngine,
    SimRequestError,
)
from live_bridge.exchange_sim.faults import Fault, FaultPlan
from live_bridge.exchange_sim.server import ExchangeServer, make_ca_and_leaf

__all__ = [
    "DEFAULT_PRODUCT",
    "GRANULARITY_SECS",
    "Clock",
    "ExchangeEngine",
    "ExchangeServer",
    "Fault",
    "FaultPlan",
    "RealtimeClock",
    "SimRequestError",
    "SteppedClock",
    "make_ca_and_leaf",
]
