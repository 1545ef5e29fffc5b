"""Client-side rate limiting that throttles *before* the venue's published REST limits.

Coinbase Advanced Trade allows 30 private requests/s per user and 10 public requests/s per IP.
Every SDK endpoint goes through its class's bucket: `get_unix_time` and the `get_public_*`
methods are public (the SDK sends them with `public=True`), every other call is private. An
endpoint named in `rate_limits.per_endpoint_per_sec` also goes through a bucket of its own.

The rule, per bucket with limit `L` requests/s, checked before every HTTP attempt:

* `n` = the requests this bucket let through in the trailing second, `usage = n / L`.
* `usage < slow_pct`: the request goes now.
* `slow_pct <= usage < hold_pct`: `slow`: the request waits until `1 / (L * slow_pct)` seconds
  have passed since the bucket's previous request, so the rate stays at the slow rate.
* `usage >= hold_pct`, or one more request would put more than `L * hold_pct` in the trailing
  second: `hold`: the request waits until usage is back under `slow_pct`.

So no trailing second ever holds more than `floor(L * hold_pct)` requests of a bucket (the
config requires that to be at least 1). A request goes through all its buckets: it waits for the
latest of their times. Each wait emits one `Throttled` (the bucket that made it wait, its level,
the wait and the usage it saw). The decision and the reservation of the request's slot happen
under a lock; the wait itself happens outside it, and requests are let through in arrival
order. Times are kept in integer nanoseconds so window edges are exact.

As a bus observer the limiter saves `state()` (throttle counts by level, the newest throttle,
each bucket's limit and the busiest trailing second it saw since the previous save) to the
state file's meta `rate_limits` after every cycle; `live-bridge status` shows it and the counts
carry over a restart.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from live_bridge.config import RateLimitSettings
from live_bridge.events import CycleFinished, Event, EventBus, Throttled
from signals.errors import ConfigError

if TYPE_CHECKING:
    from live_bridge.store import StateStore

PUBLIC = "public"
PRIVATE = "private"
WINDOW_NS = 1_000_000_000
"""The trailing window usage is measured over: one second."""
PUBLIC_ENDPOINTS = frozenset({"get_unix_time"})
"""Public SDK endpoints besides the `get_public_*` methods."""
META_KEY = "rate_limits"
"""The state file's meta key of `RateLimiter.state()`."""
LEVELS = ("slow", "hold")


def bucket_class(endpoint: str) -> str:
    """Return `public` or `private`: which of the venue's limits `endpoint` counts against."""
    if endpoint in PUBLIC_ENDPOINTS or endpoint.startswith("get_public_"):
        return PUBLIC
    return PRIVATE


@dataclass
class _Bucket:
    """One limit: `per_sec` requests/s; `granted` holds the let-through times (ns), oldest first."""

    name: str
    per_sec: float
    slow_pct: float
    hold_pct: float
    granted: deque[int] = field(default_factory=deque)

    @property
    def cap(self) -> int:
        """Return the most requests any trailing second may hold (`floor(L * hold_pct)`)."""
        # the epsilon keeps 10/s * 90 % at 9, not 8.999...
        return max(1, math.floor(self.per_sec * self.hold_pct / 100.0 + 1e-9))

    def count(self, at_ns: int) -> int:
        """Return how many let-through requests fall in the trailing second (at_ns - 1 s, at_ns]."""
        while self.granted and self.granted[0] <= at_ns - WINDOW_NS:
            self.granted.popleft()
        return len(self.granted)

    def usage_at(self, at_ns: int) -> float:
        """Return the usage (% of `per_sec`) of the trailing second at `at_ns`."""
        return 100.0 * self.count(at_ns) / self.per_sec

    def earliest(self, at_ns: int) -> tuple[int, str, float]:
        """Return (the earliest time >= at_ns this bucket lets a request go, level, usage %)."""
        n = self.count(at_ns)
        usage = 100.0 * n / self.per_sec
        if usage >= self.hold_pct or n + 1 > self.cap:
            # hold until fewer than slow_pct (and fewer than the cap) are in the window
            slow_count = math.ceil(self.per_sec * self.slow_pct / 100.0 - 1e-9)
            keep = max(0, min(slow_count - 1, self.cap - 1))
            return self.granted[n - keep - 1] + WINDOW_NS, "hold", usage
        if usage >= self.slow_pct and self.granted:
            spacing_ns = round(1e9 / (self.per_sec * self.slow_pct / 100.0))
            return max(at_ns, self.granted[-1] + spacing_ns), "slow", usage
        return at_ns, "", usage


class RateLimiter:
    """Token buckets per venue limit class and per configured endpoint (see the module doc)."""

    def __init__(
        self,
        settings: RateLimitSettings,
        events: EventBus,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        store: StateStore | None = None,
    ) -> None:
        from coinbase.rest import RESTClient  # noqa: PLC0415 (only to check endpoint names)

        self.settings = settings
        self._events = events
        self._clock = clock
        self._sleep = sleep
        self._store = store
        self._lock = threading.Lock()
        saved = (store.get_meta(META_KEY, {}) or {}) if store is not None else {}
        counts = saved.get("throttled") or {}
        self._throttled = {level: int(counts.get(level, 0)) for level in LEVELS}
        self._last_throttle: dict[str, Any] | None = saved.get("last_throttle")
        self._peak_pct: dict[str, float] = {}
        self._last_ns = -(2**62)
        self._last_level = "slow"
        slow, hold = settings.slow_pct, settings.hold_pct
        self._buckets = {
            PRIVATE: _Bucket(PRIVATE, settings.private_per_sec, slow, hold),
            PUBLIC: _Bucket(PUBLIC, settings.public_per_sec, slow, hold),
        }
        for endpoint, per_sec in settings.per_endpoint_per_sec.items():
            if not callable(getattr(RESTClient, endpoint, None)):
                msg = (
                    f"rate_limits.per_endpoint_per_sec: `{endpoint}` is not a coinbase-advanced-py "
                    "RESTClient method; use the SDK method name (get_candles, create_order, ...)"
                )
                raise ConfigError(msg)
            self._buckets[endpoint] = _Bucket(endpoint, per_sec, slow, hold)

    def buckets_of(self, endpoint: str) -> tuple[str, ...]:
        """Return the names of the buckets a request to `endpoint` goes through."""
        own = (endpoint,) if endpoint in self.settings.per_endpoint_per_sec else ()
        return (bucket_class(endpoint), *own)

    def usage_pct(self, bucket: str) -> float:
        """Return `bucket`'s usage now: its requests in the trailing second, % of its limit."""
        with self._lock:
            return self._buckets[bucket].usage_at(self._now_ns())

    def _now_ns(self) -> int:
        return round(self._clock() * 1e9)

    def before_request(self, endpoint: str) -> None:
        """Wait (sleep) until every bucket of `endpoint` lets one more request go, then return."""
        with self._lock:
            now_ns = self._now_ns()
            buckets = [self._buckets[name] for name in self.buckets_of(endpoint)]
            # in arrival order: never before a request already let through
            at_ns = max(now_ns, self._last_ns)
            binding: tuple[str, str, float] | None = None
            # each pass moves to a later time a bucket allows (from a finite set: a granted
            # time + 1 s, or the previous + the spacing) until every bucket allows the same
            while True:
                moved = False
                for b in buckets:
                    t_ns, level, usage = b.earliest(at_ns)
                    if t_ns > at_ns:
                        at_ns, binding, moved = t_ns, (b.name, level, usage), True
                if not moved:
                    break
            for b in buckets:
                b.granted.append(at_ns)
                peak = 100.0 * len(b.granted) / b.per_sec
                self._peak_pct[b.name] = max(self._peak_pct.get(b.name, 0.0), peak)
            if binding is None:  # waits behind a request already let through, at its level
                binding = (buckets[0].name, self._last_level, buckets[0].usage_at(now_ns))
            self._last_ns, self._last_level = at_ns, binding[1] or self._last_level
        wait_secs = (at_ns - now_ns) / 1e9
        if wait_secs <= 0.0:
            return
        name, level, usage = binding
        with self._lock:
            if level in self._throttled:
                self._throttled[level] += 1
            self._last_throttle = {
                "ts": dt.datetime.now(dt.UTC).isoformat(), "endpoint": endpoint, "bucket": name,
                "level": level, "wait_secs": round(wait_secs, 6), "usage_pct": round(usage, 3),
            }  # fmt: skip
        self._events.emit(Throttled(
            endpoint=endpoint, bucket=name, level=level, wait_secs=wait_secs, usage_pct=usage,
        ))  # fmt: skip
        self._sleep(wait_secs)

    def state(self) -> dict[str, Any]:
        """Return the throttle counts by level (since the state file began), the newest
        throttle (ISO UTC `ts`, endpoint, bucket, level, wait, usage %; None before the first),
        and per bucket its limit (requests/s) and `peak_pct`, the fullest trailing second since
        the previous `save` as % of the limit."""
        with self._lock:
            buckets = {
                name: {"per_sec": b.per_sec, "peak_pct": round(self._peak_pct.get(name, 0.0), 3)}
                for name, b in self._buckets.items()
            }
            return {
                "throttled": dict(self._throttled),
                "last_throttle": self._last_throttle,
                "slow_pct": self.settings.slow_pct,
                "hold_pct": self.settings.hold_pct,
                "buckets": buckets,
            }

    def save(self) -> None:
        """Write `state()` to the state file's meta `rate_limits`; start a new peak."""
        if self._store is None:
            return
        data = self.state()
        with self._store.transaction() as db:
            self._store.set_meta(db, META_KEY, data)
        with self._lock:
            self._peak_pct.clear()

    def __call__(self, event: Event) -> None:
        if isinstance(event, CycleFinished):
            self.save()
