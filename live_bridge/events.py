"""Typed events the live daemon emits, and the bus that hands them to operator-facing observers.

The cycle never reads what an observer does: metrics, alerts, the audit trail, latency
tracking, health breakers and the shadow report subscribe to the `EventBus` and see the events
below. An observer that raises is logged (once per observer and event type) and never reaches
the cycle.

Events emitted while a store transaction is open are held and delivered after it commits
(`EventBus.held()`), so no observer sees an order move or a fill the store then rolled back.
Times are UTC epoch ns; durations are seconds.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("live_bridge.events")

STAGES = ("fetch", "settle", "decide", "persist", "place")
"""The cycle's stages, in order: fetch bars and products, settle (reconcile, PAPER fills),
decide (stage 1 and `step`), persist (the write-ahead transaction), place (send, LIVE)."""


def _now_ns() -> int:
    return time.time_ns()


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every event: `ts_ns` is the local UTC time of emission."""

    ts_ns: int = field(default_factory=_now_ns)

    @property
    def event_type(self) -> str:
        """Return the event's type name in snake case (`order_changed`, ...)."""
        name = type(self).__name__
        return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


@dataclass(frozen=True, kw_only=True)
class Started(Event):
    """The daemon started: its mode, config hash, universe and secret age (None: unknown)."""

    mode: str
    config_hash: str
    symbols: tuple[str, ...]
    read_only: bool
    secret_age_days: float | None = None


@dataclass(frozen=True, kw_only=True)
class Stopped(Event):
    """The daemon stopped (`reason`: the signal, `--once`, `max_cycles reached`)."""

    reason: str
    cancelled: int


@dataclass(frozen=True, kw_only=True)
class ApiCall(Event):
    """One HTTP attempt to the venue.

    `endpoint` is the SDK method (`get_candles`, `create_order`, ...), a bounded set.
    `code` is the HTTP status as text, or `timeout` / `connection` / `tls` / `error` when no
    status came back. `ok` is False for every failed attempt (retried or not).
    """

    endpoint: str
    code: str
    secs: float
    ok: bool


@dataclass(frozen=True, kw_only=True)
class Throttled(Event):
    """The rate limiter delayed a request: `level` is `slow` (>= 80 %) or `hold` (>= 90 %)."""

    endpoint: str
    bucket: str
    level: str
    wait_secs: float
    usage_pct: float


@dataclass(frozen=True, kw_only=True)
class ClockChecked(Event):
    """A read of the venue's clock: `skew_ms` = venue time - local time at the mid-point."""

    skew_ms: float
    rtt_ms: float


@dataclass(frozen=True, kw_only=True)
class TradingStateChanged(Event):
    """The daemon's trading state moved (`live_bridge.trading_state`) by `event`."""

    old: str
    new: str
    event: str
    note: str


@dataclass(frozen=True, kw_only=True)
class OrderChanged(Event):
    """An order was stored (`old` is empty) or moved through the order state machine."""

    client_order_id: str
    symbol: str
    side: int
    purpose: int
    order_type: int
    qty: float
    notional: float
    limit_price: float | None
    ref_price: float
    bar_no: int
    old: str
    new: str
    event: str
    note: str
    exchange_order_id: str | None


@dataclass(frozen=True, kw_only=True)
class FillApplied(Event):
    """A fill was applied to the kernel state (once per trade id)."""

    trade_id: str
    client_order_id: str
    symbol: str
    side: int
    qty: float
    price: float
    fee: float
    liquidity: str
    bar_no: int
    fill_ts_ns: int


@dataclass(frozen=True, kw_only=True)
class Divergence(Event):
    """The daemon did something other than the decision, and why.

    `kind` is one of `candles_unavailable`, `bad_bars`, `product_status`, `entry_blocked`,
    `not_placed`, `rejected`, `failed`, `no_answer`, `fee_tier`; `text` is the log line's.
    """

    bar_no: int
    symbol: str
    kind: str
    text: str
    client_order_id: str = ""


@dataclass(frozen=True, kw_only=True)
class Reconciled(Event):
    """A reconciliation committed: `mismatch` maps a currency to {store, venue} (empty: agree)."""

    mismatch: dict[str, dict[str, float]]
    cancelled: int
    adopted: int


@dataclass(frozen=True, kw_only=True)
class PositionView:
    """One held position at the cycle's close price (USD)."""

    qty: float
    entry_price: float
    price: float
    value_usd: float
    unrealized_pnl_usd: float
    theme: str


@dataclass(frozen=True, kw_only=True)
class CycleFinished(Event):
    """A cycle ran to its end (or found its bar decided: `skipped`).

    `stages` maps each of `STAGES` that ran to its seconds; `secs` is the whole cycle.
    `reasons` counts this bar's no-trade reasons by name. `bar_age_secs` is the newest closed
    bar's age when the cycle started (venue time since its close); `stale_symbols` lack it.
    `breakers` are the kernel's own: daily stop, weekly stop, drawdown breaker. `inputs`
    summarises what the decision saw: `regime`, and per symbol `close` and target `weight`
    (non-zero weights only).
    """

    bar_no: int
    bar_ts_ns: int
    mode: str
    skipped: bool
    trading_state: str
    secs: float
    stages: dict[str, float]
    equity_usd: float
    cash_usd: float
    peak_equity_usd: float
    positions: dict[str, PositionView]
    orders: tuple[OrderChanged, ...]
    fills: int
    reasons: dict[str, int]
    divergences: tuple[str, ...]
    bar_age_secs: float
    stale_symbols: tuple[str, ...]
    tradable_symbols: int
    breakers: dict[str, bool]
    orders_by_status: dict[str, int]
    fills_total: int
    mismatch: dict[str, dict[str, float]]
    inputs: dict[str, object] = field(default_factory=dict)
    entries_blocked_by: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class CycleFailed(Event):
    """A cycle (or the start-up reconciliation) failed; the store holds the last commit.

    `error` is the exception's type name (`ReconcileError`, `AuthenticationError`, ...).
    """

    what: str
    error: str
    message: str


@dataclass(frozen=True, kw_only=True)
class BreakerChanged(Event):
    """A health breaker opened (entries blocked) or closed again."""

    name: str
    open: bool
    reason: str


@dataclass(frozen=True, kw_only=True)
class LatencyBreach(Event):
    """A cycle, stage or endpoint took longer than its budget in `live.yaml`."""

    name: str
    secs: float
    budget_secs: float


Observer = Callable[[Event], None]


class EventBus:
    """Deliver events to observers, in subscription order, never raising into the emitter."""

    def __init__(self) -> None:
        self._observers: list[Observer] = []
        self._held: list[list[Event]] = []
        self._failed: set[tuple[int, str]] = set()

    def subscribe(self, observer: Observer) -> None:
        """Add `observer`; it is called with every event emitted from now on."""
        self._observers.append(observer)

    def emit(self, event: Event) -> None:
        """Deliver `event` now, or after the outermost `held()` block ends without an error."""
        if self._held:
            self._held[-1].append(event)
            return
        for observer in self._observers:
            try:
                observer(event)
            except Exception:  # an observer never breaks the cycle
                key = (id(observer), event.event_type)
                if key not in self._failed:
                    self._failed.add(key)
                    log.exception(
                        "observer %r failed on %s (logged once)", observer, event.event_type
                    )

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the events emitted inside; deliver them at the end, or drop them on an error."""
        self._held.append([])
        try:
            yield
        except BaseException:
            self._held.pop()
            raise
        events = self._held.pop()
        for event in events:
            self.emit(event)


def as_record(event: Event) -> dict[str, Any]:
    """Return `event` as a JSON-able dict, its `type` first (the audit trail's shape)."""
    out: dict[str, Any] = {"type": event.event_type}
    for name in event.__dataclass_fields__:
        out[name] = _plain(getattr(event, name))
    return out


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        if isinstance(value, Event):
            return as_record(value)
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):  # NaN and inf are not JSON
        return None
    return value
