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
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from live_bridge.config import RateLimitSettings
from live_bridge.events import EventBus, Throttled
from signals.errors import ConfigError

PUBLIC = "public"
PRIVATE = "private"
WINDOW_NS = 1_000_000_000
"""The trailing window usage is measured over: one second."""
PUBLIC_ENDPOINTS = frozenset({"get_unix_time"})
"""Public SDK endpoints besides the `get_public_*` methods."""


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
    ) -> None:
        from coinbase.rest import RESTClient  # noqa: PLC0415 (only to check endpoint names)

        self.settings = settings
        self._events = events
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
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
            if binding is None:  # waits behind a request already let through, at its level
                binding = (buckets[0].name, self._last_level, buckets[0].usage_at(now_ns))
            self._last_ns, self._last_level = at_ns, binding[1] or self._last_level
        wait_secs = (at_ns - now_ns) / 1e9
        if wait_secs <= 0.0:
            return
        name, level, usage = binding
        self._events.emit(Throttled(
            endpoint=endpoint, bucket=name, level=level, wait_secs=wait_secs, usage_pct=usage,
        ))  # fmt: skip
        self._sleep(wait_secs)
