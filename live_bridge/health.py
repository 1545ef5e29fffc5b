"""Health circuit breakers: live faults that block new entries until the venue looks healthy.

`HealthBreakers` observes the event bus. Each breaker counts *faults*:

* `api_errors`: an `ApiCall` the venue failed: no answer (`timeout`, `connection`, `tls`,
  `error`) or a 5xx (a 4xx is the request's fault, not the venue's); trips at
  `breakers.error_burst` faults within `breakers.window_secs`.
* `rate_limit`: an `ApiCall` answered 429; trips at `breakers.rate_limit_hits` within
  `window_secs`.
* `stale_data`: a decided (not skipped) `CycleFinished` with `stale_symbols`, or whose newest bar
  was more than `breakers.stale_bar_secs` (default: one bar + `close_delay_secs`) past its
  close; trips at the first.
* `clock_skew`: a `ClockChecked` with abs(skew) > `max_clock_skew_ms` (off when that is null);
  trips at the first.

Each breaker's lifecycle is the transition table below, `(state, event) -> state`:

```
closed --trip--> open --cool--> closed      (trip: the fault count reached its threshold;
  ^ |              |                          cool: no fault for `breakers.cooldown_secs`)
  +-+ cool         +-- trip (a fault while open): stays open, the cooldown starts again
```

A fault while open restarts the cooldown. Cooling is checked on every event (so a breaker also
closes while the daemon waits between bars: clock checks and API calls keep arriving) and in
`blocking()`, the daemon's entry blocker: while any breaker is open, new entries are dropped
(exits still go out). Every change emits `BreakerChanged`, logs a WARNING (open) or INFO
(closed) line and saves `state()` under the state file's meta key `breakers`, which
`live-bridge status` reads. Times for the windows and cooldowns come from `clock` (monotonic
seconds); `since` in `state()` is the UTC wall time of the last change.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from live_bridge.config import LiveConfig
from live_bridge.events import (
    ApiCall,
    BreakerChanged,
    ClockChecked,
    CycleFinished,
    Event,
    EventBus,
)
from live_bridge.store import StateStore

log = logging.getLogger("live_bridge.health")
META_KEY: Final = "breakers"

CLOSED: Final = "closed"
OPEN: Final = "open"
STATES: Final = (CLOSED, OPEN)
EVENTS: Final = ("trip", "cool")
TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    (CLOSED, "trip"): OPEN,
    (CLOSED, "cool"): CLOSED,
    (OPEN, "trip"): OPEN,
    (OPEN, "cool"): CLOSED,
}
"""Every `(state, event)` pair of a breaker and the state it leads to."""

API_ERRORS: Final = "api_errors"
RATE_LIMIT: Final = "rate_limit"
STALE_DATA: Final = "stale_data"
CLOCK_SKEW: Final = "clock_skew"
BREAKERS: Final = (API_ERRORS, RATE_LIMIT, STALE_DATA, CLOCK_SKEW)
TRANSPORT_FAILURES: Final = frozenset({"timeout", "connection", "tls", "error"})
"""`ApiCall` codes of an attempt that got no HTTP answer."""


def next_breaker_state(state: str, event: str) -> str:
    """Return a breaker's state after `event` (ValueError for a name not in the table)."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        msg = (
            f"breaker state must be in {list(STATES)} and event in {list(EVENTS)}, "
            f"was {state!r}, {event!r}"
        )
        raise ValueError(msg) from None


def is_venue_failure(code: str) -> bool:
    """Return whether an `ApiCall` code is the venue's failure: no answer, or a 5xx."""
    return code in TRANSPORT_FAILURES or (code.isdigit() and int(code) >= 500)


@dataclass
class _Breaker:
    """One breaker: its state, the fault times (monotonic s) in the window, the last fault."""

    name: str
    threshold: int
    state: str = CLOSED
    reason: str = ""
    since: str | None = None
    trips: int = 0
    faults: deque[float] = field(default_factory=deque)
    last_fault: float = float("-inf")

    def view(self) -> dict[str, Any]:
        return {
            "open": self.state == OPEN,
            "reason": self.reason,
            "since": self.since,
            "trips": self.trips,
        }


class HealthBreakers:
    """The four health breakers as one bus observer and one entry blocker (see the module doc).

    Parameters
    ----------
    live : LiveConfig
        `breakers` (thresholds, window, cooldown, stale bar age), `max_clock_skew_ms`, the bar.
    store : StateStore
        Where `state()` is saved on every change (meta `breakers`); trip counts are read back.
    events : EventBus
        Where `BreakerChanged` goes.
    clock : Callable[[], float]
        Monotonic seconds, for the windows and cooldowns.
    """

    def __init__(
        self,
        live: LiveConfig,
        store: StateStore,
        events: EventBus,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = live.breakers
        self._store = store
        self._events = events
        self._clock = clock
        self._lock = threading.RLock()
        self._max_skew_ms = live.max_clock_skew_ms
        self.stale_bar_secs = (
            self.settings.stale_bar_secs
            if self.settings.stale_bar_secs is not None
            else live.bar_ns() / 1e9 + live.close_delay_secs
        )
        thresholds = {
            API_ERRORS: self.settings.error_burst,
            RATE_LIMIT: self.settings.rate_limit_hits,
            STALE_DATA: 1,
            CLOCK_SKEW: 1,
        }
        saved = store.get_meta(META_KEY, {}) or {}
        self._breakers = {
            name: _Breaker(name, threshold, trips=int((saved.get(name) or {}).get("trips", 0)))
            for name, threshold in thresholds.items()
        }
        self._unsaved = True
        self._save()

    # --- the observer ---------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        with self._lock:
            now = self._clock()
            self._cool(now)  # the quiet time before this event counts first
            if isinstance(event, ApiCall):
                last = f"last: {event.endpoint} {event.code}"
                if event.code == "429":
                    self._fault(RATE_LIMIT, now, "HTTP 429 answers", last)
                elif is_venue_failure(event.code):
                    self._fault(API_ERRORS, now, "failed API calls", last)
            elif isinstance(event, CycleFinished) and not event.skipped:
                problem = self._stale_problem(event)
                if problem:
                    self._fault(STALE_DATA, now, "", problem)
            elif isinstance(event, ClockChecked):
                problem = self._skew_problem(event)
                if problem:
                    self._fault(CLOCK_SKEW, now, "", problem)
            if self._unsaved:
                self._save()

    def _stale_problem(self, event: CycleFinished) -> str:
        if event.stale_symbols:
            return f"bar {event.bar_no} missing for {', '.join(event.stale_symbols)}"
        if event.bar_age_secs > self.stale_bar_secs:
            return (
                f"bar {event.bar_no} was {event.bar_age_secs:.0f} s old after its close "
                f"(stale_bar_secs {self.stale_bar_secs:g})"
            )
        return ""

    def _skew_problem(self, event: ClockChecked) -> str:
        if self._max_skew_ms is None or not abs(event.skew_ms) > self._max_skew_ms:
            return ""
        return (
            f"venue clock differs by {event.skew_ms:+.0f} ms, more than "
            f"max_clock_skew_ms {self._max_skew_ms:g}"
        )

    def _fault(self, name: str, now: float, counted: str, detail: str) -> None:
        breaker = self._breakers[name]
        breaker.faults.append(now)
        breaker.last_fault = now
        window = self.settings.window_secs
        while breaker.faults and breaker.faults[0] <= now - window:
            breaker.faults.popleft()
        if len(breaker.faults) < breaker.threshold:
            return
        if breaker.threshold == 1:
            reason = detail
        else:
            reason = f"{len(breaker.faults)} {counted} in {window:g} s ({detail})"
        self._move(breaker, "trip", reason)

    def _cool(self, now: float) -> None:
        cooldown = self.settings.cooldown_secs
        for breaker in self._breakers.values():
            if breaker.state == OPEN and now - breaker.last_fault >= cooldown:
                breaker.faults.clear()
                self._move(breaker, "cool", f"no fault for {cooldown:g} s")

    def _move(self, breaker: _Breaker, event: str, reason: str) -> None:
        new = next_breaker_state(breaker.state, event)
        if new == breaker.state:
            return
        breaker.state, breaker.reason = new, reason
        breaker.since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        opened = new == OPEN
        if opened:
            breaker.trips += 1
            log.warning("health breaker %s OPEN, new entries blocked: %s", breaker.name, reason)
        else:
            log.info("health breaker %s closed: %s", breaker.name, reason)
        self._unsaved = True
        self._save()
        self._events.emit(BreakerChanged(name=breaker.name, open=opened, reason=reason))

    def _save(self) -> None:
        try:
            with self._store.transaction() as db:
                self._store.set_meta(db, META_KEY, self.state())
        except sqlite3.OperationalError as e:
            # another transaction is open on the connection: saved with the next event
            log.debug("breaker state not saved yet (%s)", e)
            return
        self._unsaved = False

    # --- what the daemon and the operator read ----------------------------------------------------

    def blocking(self) -> str | None:
        """Return why new entries are blocked (every open breaker and its reason), or None."""
        with self._lock:
            self._cool(self._clock())
            if self._unsaved:
                self._save()
            reasons = [
                f"breaker {b.name} open: {b.reason}"
                for b in self._breakers.values()
                if b.state == OPEN
            ]
        return "; ".join(reasons) or None

    def state(self) -> dict[str, dict[str, Any]]:
        """Return {breaker: {open, reason, since (UTC ISO of the last change), trips}}."""
        with self._lock:
            return {name: b.view() for name, b in self._breakers.items()}
