"""Alerts: conditions read from the daemon's events, deduplicated, escalated, sent to a webhook.

`AlertService` observes the event bus (it must be subscribed after the `LatencyTracker`, as
`Operator` does, so a cycle's own budget breach reaches it before that cycle's `CycleFinished`).
Each alert has a type, a severity, a fingerprint (the type, or `type:subject` such as
`api_error_burst:get_candles`), a summary, details and first/last seen times. Every message is
logged on `live_bridge.alerts` (firing: INFO/WARNING/CRITICAL by severity; resolved: WARNING)
and, with `alerts.webhook_url` set, POSTed there as JSON by one background thread:
`{type, severity, status: firing|resolved, fingerprint, summary, details, mode, config_hash,
ts (ISO UTC), escalated, count, first_seen, last_seen}`.

Alert types (severity): fires on -> resolved by.

* `kill_switch` (critical): `TradingStateChanged` to `killed` -> leaving `killed` (a move to
  `stopping` is no release).
* `trading_halted` (critical): `TradingStateChanged` to `halted` (the venue refused the key)
  -> the state back to `active` or `reduce_only`.
* `daily_stop`, `weekly_stop` (warning), `max_drawdown` (critical): the kernel's
  `CycleFinished.breakers` `daily_stop` / `weekly_stop` / `drawdown_breaker` true -> false
  again (the next UTC day / ISO week; the drawdown breaker latches).
* `latency_budget:<name>` (warning): `LatencyBreach` of `cycle`, `stage:<s>` or
  `api:<endpoint>` -> a `CycleFinished` with no breach of that name since the previous one.
* `api_error_burst:<endpoint>` (warning): >= `error_burst` failed `ApiCall`s of the endpoint
  within `burst_secs`, counting no answer, 5xx and 429 (another 4xx is the request's fault)
  -> `error_burst` successful calls of it in a row, or `burst_secs` without a failure.
* `order_rejection_burst` (warning): >= `rejection_burst` orders moved to `rejected` within
  `burst_secs`; post-only crosses do not count (the backtest rejects them the same way)
  -> `burst_secs` without a rejection.
* `exception_burst` (critical): >= `exception_burst` `CycleFailed` within `burst_secs` -> the
  next `CycleFinished`.
* `empty_universe` (warning): a decided (not skipped) `CycleFinished` with no tradable symbol
  or the no-trade reason `empty_universe` -> a decided cycle with a tradable symbol.
* `reconcile_mismatch` (critical): `Reconciled.mismatch` not empty -> a `Reconciled` without.
* `clock_drift` (warning): `ClockChecked` with abs(`skew_ms`) > `max_clock_skew_ms` (off when
  null) -> a clock read within it.
* `stale_data` (warning): a decided `CycleFinished` with `stale_symbols`, or whose newest bar
  was older than `breakers.stale_bar_secs` (default: one bar + `close_delay_secs`, as the
  health breaker) past its close -> a decided cycle with neither.
* `secret_age` (warning): `Started.secret_age_days` >= 90 -> never within a run, and never
  escalated (80-90 days: only the CLI's WARNING line, no alert).
* `breaker_open:<name>` (warning): `BreakerChanged` open (`live_bridge.health`) -> closed.

Deduplication: a fingerprint that fires again within `dedup_secs` of its last message is not
sent again (its `count` grows); after that it is sent again as a reminder. Escalation: an alert
unresolved for `escalate_secs` is sent once more with its severity one step up the ladder
`info -> warning -> critical -> page` and `escalated: true`. Resolution sends one `resolved`
message and the alert leaves `active()`; a later firing is a new alert.

Observing never blocks and never raises: messages go into a bounded queue and the thread POSTs
them (`urllib.request`, `alerts.timeout_secs`), retrying `alerts.retries` times; a message
that still fails is dropped. A failing webhook is logged once per failure streak and once when
it works again. Windows, dedup and escalation use `clock` (monotonic seconds).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import queue
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from live_bridge.config import LiveConfig
from live_bridge.daemon import POST_ONLY_CROSS
from live_bridge.events import (
    ApiCall,
    BreakerChanged,
    ClockChecked,
    CycleFailed,
    CycleFinished,
    Event,
    LatencyBreach,
    OrderChanged,
    Reconciled,
    Started,
    TradingStateChanged,
)

log = logging.getLogger("live_bridge.alerts")

SEVERITIES: Final = ("info", "warning", "critical", "page")
"""The escalation ladder, lowest first."""
SEVERITY_OF: Final[dict[str, str]] = {
    "kill_switch": "critical",
    "trading_halted": "critical",
    "daily_stop": "warning",
    "weekly_stop": "warning",
    "max_drawdown": "critical",
    "latency_budget": "warning",
    "api_error_burst": "warning",
    "order_rejection_burst": "warning",
    "exception_burst": "critical",
    "empty_universe": "warning",
    "reconcile_mismatch": "critical",
    "clock_drift": "warning",
    "stale_data": "warning",
    "secret_age": "warning",
    "breaker_open": "warning",
}
"""Each alert type's first severity (the table in the module docstring)."""
NOT_ESCALATED: Final = frozenset({"secret_age"})
"""Types whose age says nothing about urgency: a key does not get older faster."""
KERNEL_BREAKERS: Final = (
    ("daily_stop", "daily_stop", "the daily loss stop tripped: no new entries today"),
    ("weekly_stop", "weekly_stop", "the weekly loss stop tripped: no new entries this week"),
    ("drawdown_breaker", "max_drawdown", "the drawdown breaker tripped: no new entries"),
)
"""(`CycleFinished.breakers` key, alert type, summary)."""
SECRET_ALERT_DAYS: Final = 90.0
TICK_SECS: Final = 0.2
"""How often the thread checks escalation and the burst windows."""
QUEUE_MAX: Final = 1000
HISTORY_MAX: Final = 1000
RETRY_DELAY_SECS: Final = 0.25


def _utc_iso() -> str:
    now = dt.datetime.now(dt.UTC)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def is_counted_api_error(code: str, ok: bool) -> bool:
    """Return whether a failed `ApiCall` counts toward `api_error_burst`.

    No answer (`timeout`, `connection`, `tls`, `error`), a 5xx and a 429 count; any other 4xx
    is the request's own fault (a 404 for an order the venue forgot, a 400) and does not.
    """
    if ok:
        return False
    if not code.isdigit():
        return True
    status = int(code)
    return status >= 500 or status == 429


@dataclass
class Alert:
    """One unresolved alert; `*_seen` and `last_sent` are `clock` seconds."""

    type: str
    fingerprint: str
    severity: str
    summary: str
    details: dict[str, Any]
    first_seen: float
    last_seen: float
    first_seen_utc: str
    last_seen_utc: str
    last_sent: float
    count: int = 1
    escalated: bool = False


class AlertService:
    """Turn the daemon's events into alerts: log them and POST them to `alerts.webhook_url`.

    Parameters
    ----------
    live : LiveConfig
        `alerts` (webhook, dedup, escalation, bursts), `mode`, `max_clock_skew_ms`, the bar,
        `breakers.stale_bar_secs`, `close_delay_secs`.
    config_hash : str
        The platform config's hash, stamped on every message.
    clock : Callable[[], float]
        Monotonic seconds for the windows, dedup and escalation (injectable for tests).

    Raises
    ------
    ConfigError
        `alerts.webhook_url` is not an http:// or https:// URL.
    """

    def __init__(
        self, live: LiveConfig, config_hash: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.live = live
        self.settings = live.alerts
        self.config_hash = config_hash
        self._clock = clock
        self.webhook_url = self.settings.webhook_url  # http(s) only: checked by the config
        self._stale_limit_secs = (
            live.breakers.stale_bar_secs
            if live.breakers.stale_bar_secs is not None
            else live.bar_ns() / 1e9 + live.close_delay_secs
        )
        self._lock = threading.RLock()
        self._active: dict[str, Alert] = {}
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_MAX)
        """Every message decided (logged, and queued when there is a webhook), oldest first."""
        self.sent: deque[dict[str, Any]] = deque(maxlen=HISTORY_MAX)
        """Every message the webhook accepted (2xx), oldest first."""
        self.dropped = 0
        """Messages given up on: the webhook failed every attempt, or the queue was full."""
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=QUEUE_MAX)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._deadline = math.inf
        self._failing = False
        self._failed_in_streak = 0
        self._queue_full_logged = False
        self._observer_failed: set[str] = set()
        self._api_failures: dict[str, deque[float]] = {}
        self._api_successes: dict[str, int] = {}
        self._rejections: deque[float] = deque()
        self._cycle_failures: deque[float] = deque()
        self._breached: set[str] = set()

    # --- the observer ---------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        """Fire, count or resolve alerts from `event`; never blocks on the network, never raises."""
        try:
            with self._lock:
                self._observe(event, self._clock())
        except Exception:  # an alert bug must not reach the cycle; the bus would log it too
            if event.event_type not in self._observer_failed:
                self._observer_failed.add(event.event_type)
                log.exception("alerts failed on %s (logged once)", event.event_type)

    def _observe(self, event: Event, now: float) -> None:
        if isinstance(event, ApiCall):
            self._api_call(event, now)
        elif isinstance(event, CycleFinished):
            self._cycle_finished(event, now)
        elif isinstance(event, TradingStateChanged):
            self._trading_state(event, now)
        elif isinstance(event, OrderChanged):
            self._order_changed(event, now)
        elif isinstance(event, CycleFailed):
            self._cycle_failed(event, now)
        elif isinstance(event, Reconciled):
            if event.mismatch:
                currencies = ", ".join(sorted(event.mismatch))
                summary = f"the store and the venue disagree on {currencies}: entries stopped"
                self._fire("reconcile_mismatch", "", summary, {"mismatch": event.mismatch}, now)
            else:
                self._resolve("reconcile_mismatch", "", "store and venue agree again", now)
        elif isinstance(event, ClockChecked):
            self._clock_checked(event, now)
        elif isinstance(event, LatencyBreach):
            self._breached.add(event.name)
            summary = (
                f"{event.name} took {event.secs:.3f} s, over its budget of {event.budget_secs:g} s"
            )
            details = {"name": event.name, "secs": event.secs, "budget_secs": event.budget_secs}
            self._fire("latency_budget", event.name, summary, details, now)
        elif isinstance(event, BreakerChanged):
            if event.open:
                summary = f"health breaker {event.name} open, new entries blocked: {event.reason}"
                details = {"name": event.name, "reason": event.reason}
                self._fire("breaker_open", event.name, summary, details, now)
            else:
                self._resolve("breaker_open", event.name, event.reason, now)
        elif isinstance(event, Started):
            age = event.secret_age_days
            if age is not None and age >= SECRET_ALERT_DAYS:
                summary = (
                    f"the API key is {age:.0f} days old (>= {SECRET_ALERT_DAYS:.0f}): rotate it "
                    "and update `secret_created` in live.yaml"
                )
                self._fire("secret_age", "", summary, {"secret_age_days": age}, now)

    def _api_call(self, event: ApiCall, now: float) -> None:
        endpoint = event.endpoint
        burst = self.settings.error_burst
        if is_counted_api_error(event.code, event.ok):
            window = self._api_failures.setdefault(endpoint, deque())
            window.append(now)
            self._prune(window, now)
            self._api_successes[endpoint] = 0
            if len(window) >= burst:
                summary = (
                    f"{len(window)} failed {endpoint} calls within "
                    f"{self.settings.burst_secs:g} s (last: {event.code})"
                )
                details = {"endpoint": endpoint, "failures": len(window), "last_code": event.code}
                self._fire("api_error_burst", endpoint, summary, details, now)
        elif event.ok:
            run = self._api_successes.get(endpoint, 0) + 1
            self._api_successes[endpoint] = run
            if run >= burst and self._is_active("api_error_burst", endpoint):
                self._api_failures.pop(endpoint, None)
                self._resolve("api_error_burst", endpoint, f"{run} successful calls in a row", now)

    def _cycle_finished(self, event: CycleFinished, now: float) -> None:
        for name in [a.fingerprint for a in self._active.values() if a.type == "latency_budget"]:
            subject = name.split(":", 1)[1]
            if subject not in self._breached:
                self._resolve("latency_budget", subject, "a cycle within budget", now)
        self._breached.clear()
        if self._is_active("exception_burst", ""):
            self._cycle_failures.clear()
            self._resolve("exception_burst", "", f"bar {event.bar_no} ran to its end", now)
        for key, kind, summary in KERNEL_BREAKERS:
            if key not in event.breakers:
                continue
            if event.breakers[key]:
                details: dict[str, Any] = {
                    "bar_no": event.bar_no,
                    "equity_usd": event.equity_usd,
                    "peak_equity_usd": event.peak_equity_usd,
                    "drawdown_pct": (
                        (1.0 - event.equity_usd / event.peak_equity_usd) * 100.0
                        if event.peak_equity_usd > 0
                        else None
                    ),
                }
                self._fire(kind, "", summary, details, now)
            else:
                why = f"cleared at bar {event.bar_no}"
                self._resolve(kind, "", why, now, bar_no=event.bar_no)
        if event.skipped:
            return
        if event.tradable_symbols == 0 or event.reasons.get("empty_universe", 0) > 0:
            summary = f"bar {event.bar_no}: no symbol is tradable (stale, offline or filtered)"
            details = {
                "bar_no": event.bar_no,
                "tradable_symbols": event.tradable_symbols,
                "stale_symbols": list(event.stale_symbols),
                "divergences": list(event.divergences),
            }
            self._fire("empty_universe", "", summary, details, now)
        else:
            tradable = event.tradable_symbols
            self._resolve("empty_universe", "", f"{tradable} tradable symbol(s)", now)
        problem = self._stale_problem(event)
        if problem:
            details = {
                "bar_no": event.bar_no,
                "stale_symbols": list(event.stale_symbols),
                "bar_age_secs": event.bar_age_secs,
                "stale_limit_secs": self._stale_limit_secs,
            }
            self._fire("stale_data", "", problem, details, now)
        else:
            self._resolve("stale_data", "", f"bar {event.bar_no} complete and fresh", now)

    def _stale_problem(self, event: CycleFinished) -> str:
        if event.stale_symbols:
            return f"bar {event.bar_no} missing for {', '.join(event.stale_symbols)}"
        if event.bar_age_secs > self._stale_limit_secs:
            return (
                f"bar {event.bar_no} was {event.bar_age_secs:.0f} s past its close when decided "
                f"(limit {self._stale_limit_secs:g} s)"
            )
        return ""

    def _trading_state(self, event: TradingStateChanged, now: float) -> None:
        details = {"old": event.old, "new": event.new, "event": event.event, "note": event.note}
        if event.new == "killed":
            summary = f"kill switch engaged ({event.note}): no orders, open orders cancelled"
            self._fire("kill_switch", "", summary, details, now)
        elif event.old == "killed" and event.new != "stopping":
            self._resolve("kill_switch", "", f"released ({event.note})", now)
        if event.new == "halted":
            summary = f"trading halted, the venue refused the credentials: {event.note}"
            self._fire("trading_halted", "", summary, details, now)
        elif event.new in ("active", "reduce_only"):
            self._resolve("trading_halted", "", f"trading state {event.new}", now)

    def _order_changed(self, event: OrderChanged, now: float) -> None:
        if event.new != "rejected" or event.note == POST_ONLY_CROSS:
            return
        self._rejections.append(now)
        self._prune(self._rejections, now)
        if len(self._rejections) >= self.settings.rejection_burst:
            summary = (
                f"{len(self._rejections)} orders rejected within {self.settings.burst_secs:g} s "
                f"(last: {event.client_order_id} {event.note})"
            )
            details = {
                "rejections": len(self._rejections),
                "client_order_id": event.client_order_id,
                "symbol": event.symbol,
                "code": event.note,
            }
            self._fire("order_rejection_burst", "", summary, details, now)

    def _cycle_failed(self, event: CycleFailed, now: float) -> None:
        self._cycle_failures.append(now)
        self._prune(self._cycle_failures, now)
        if len(self._cycle_failures) >= self.settings.exception_burst:
            summary = (
                f"{len(self._cycle_failures)} failed cycles within "
                f"{self.settings.burst_secs:g} s (last: {event.what}: {event.error})"
            )
            details = {
                "failures": len(self._cycle_failures),
                "what": event.what,
                "error": event.error,
                "message": event.message,
            }
            self._fire("exception_burst", "", summary, details, now)

    def _clock_checked(self, event: ClockChecked, now: float) -> None:
        limit = self.live.max_clock_skew_ms
        if limit is None or not math.isfinite(event.skew_ms):
            return
        if abs(event.skew_ms) > limit:
            summary = (
                f"the local clock differs from the venue's by {event.skew_ms:+.0f} ms, more than "
                f"max_clock_skew_ms {limit:g}: sync it (chronyc makestep)"
            )
            details = {"skew_ms": event.skew_ms, "rtt_ms": event.rtt_ms, "limit_ms": limit}
            self._fire("clock_drift", "", summary, details, now)
        else:
            why = f"skew {event.skew_ms:+.0f} ms"
            self._resolve("clock_drift", "", why, now, skew_ms=event.skew_ms)

    def _prune(self, window: deque[float], now: float) -> None:
        while window and window[0] <= now - self.settings.burst_secs:
            window.popleft()

    # --- alerts ---------------------------------------------------------------------------------

    def _is_active(self, kind: str, subject: str) -> bool:
        return _fingerprint(kind, subject) in self._active

    def _fire(
        self, kind: str, subject: str, summary: str, details: dict[str, Any], now: float
    ) -> None:
        fingerprint = _fingerprint(kind, subject)
        alert = self._active.get(fingerprint)
        wall = _utc_iso()
        if alert is None:
            alert = Alert(
                type=kind, fingerprint=fingerprint, severity=SEVERITY_OF[kind], summary=summary,
                details=details, first_seen=now, last_seen=now, first_seen_utc=wall,
                last_seen_utc=wall, last_sent=now,
            )  # fmt: skip
            self._active[fingerprint] = alert
            self._emit(alert, "firing", now)
            return
        alert.count += 1
        alert.summary, alert.details = summary, details
        alert.last_seen, alert.last_seen_utc = now, wall
        if now - alert.last_sent >= self.settings.dedup_secs:
            self._emit(alert, "firing", now)

    def _resolve(self, kind: str, subject: str, why: str, now: float, **found: Any) -> None:
        # `found`: what the clearing event showed, added to the details (`resolved_<name>`)
        alert = self._active.pop(_fingerprint(kind, subject), None)
        if alert is None:
            return
        extra = {f"resolved_{k}": v for k, v in found.items()}
        alert.details = {**alert.details, "resolved_by": why, **extra}
        self._emit(alert, "resolved", now)

    def _emit(self, alert: Alert, status: str, now: float) -> None:
        alert.last_sent = now
        message = {
            "type": alert.type,
            "severity": alert.severity,
            "status": status,
            "fingerprint": alert.fingerprint,
            "summary": alert.summary,
            "details": _jsonable(alert.details),
            "mode": self.live.mode,
            "config_hash": self.config_hash,
            "ts": _utc_iso(),
            "escalated": alert.escalated,
            "count": alert.count,
            "first_seen": alert.first_seen_utc,
            "last_seen": alert.last_seen_utc,
        }
        if status == "resolved":
            log.warning("ALERT RESOLVED %s: %s (%s)", alert.fingerprint, alert.summary,
                        alert.details.get("resolved_by", ""))  # fmt: skip
        else:
            level = {"info": logging.INFO, "warning": logging.WARNING}.get(
                alert.severity, logging.CRITICAL
            )
            escalated = " ESCALATED" if alert.escalated else ""
            log.log(level, "ALERT %s%s %s: %s (seen %d time(s))", alert.severity.upper(),
                    escalated, alert.fingerprint, alert.summary, alert.count)  # fmt: skip
        self.history.append(message)
        if self.webhook_url is None:
            return
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self.dropped += 1
            if not self._queue_full_logged:
                self._queue_full_logged = True
                log.error("alert queue full (%d messages): the webhook %s is too slow; newer "
                          "alerts are logged only", QUEUE_MAX, self.webhook_url)  # fmt: skip

    def tick(self) -> None:
        """Escalate alerts unresolved for `escalate_secs`; resolve bursts whose window emptied.

        The thread calls this every 0.2 s; a test with an injected clock may call it directly.
        """
        with self._lock:
            now = self._clock()
            for endpoint, window in list(self._api_failures.items()):
                self._prune(window, now)
                if not window:
                    del self._api_failures[endpoint]
                    why = f"no failed call for {self.settings.burst_secs:g} s"
                    self._resolve("api_error_burst", endpoint, why, now)
            self._prune(self._rejections, now)
            if not self._rejections:
                why = f"no rejection for {self.settings.burst_secs:g} s"
                self._resolve("order_rejection_burst", "", why, now)
            for alert in list(self._active.values()):
                if (
                    alert.escalated
                    or alert.type in NOT_ESCALATED
                    or now - alert.first_seen < self.settings.escalate_secs
                ):
                    continue
                alert.escalated = True
                step = min(SEVERITIES.index(alert.severity) + 1, len(SEVERITIES) - 1)
                alert.severity = SEVERITIES[step]
                self._emit(alert, "firing", now)

    def messages(self) -> list[dict[str, Any]]:
        """Return a copy of `history`: every message decided so far, oldest first."""
        with self._lock:
            return list(self.history)

    def active(self) -> list[dict[str, Any]]:
        """Return the unresolved alerts, oldest first, as dicts of the message fields."""
        with self._lock:
            alerts = sorted(self._active.values(), key=lambda a: a.first_seen)
            return [
                {
                    "type": a.type,
                    "severity": a.severity,
                    "fingerprint": a.fingerprint,
                    "summary": a.summary,
                    "details": _jsonable(a.details),
                    "count": a.count,
                    "escalated": a.escalated,
                    "first_seen": a.first_seen_utc,
                    "last_seen": a.last_seen_utc,
                }  # fmt: skip
                for a in alerts
            ]

    # --- the sender thread ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread that sends the queued messages and calls `tick()`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._deadline = math.inf
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        self._thread.start()

    def close(self, flush_secs: float | None = None) -> None:
        """Send what is queued for at most `flush_secs` (default `timeout_secs` + 1), then stop.

        No message is made up at shutdown (open alerts are not resolved); what is still queued
        at the deadline is counted in `dropped` and logged.
        """
        flush = self.settings.timeout_secs + 1.0 if flush_secs is None else flush_secs
        self._deadline = time.monotonic() + flush
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait({})  # wakes the thread now; an empty message is skipped
        if self._thread is None:
            if self.webhook_url is not None:
                self._run()  # never started: flush here, within the same deadline
        else:
            self._thread.join(flush + self.settings.timeout_secs + 0.5)
            if self._thread.is_alive():
                log.warning("the alert sender is still waiting on %s; left behind",
                            self.webhook_url)  # fmt: skip
            self._thread = None
        left = 0
        while True:
            try:
                left += bool(self._queue.get_nowait())
            except queue.Empty:
                break
        if left:
            with self._lock:
                self.dropped += left
            log.warning("%d alert message(s) not sent at shutdown (logged above)", left)

    def _run(self) -> None:
        next_tick = time.monotonic()
        while True:
            stopping = self._stop.is_set()
            if stopping and (self._queue.empty() or time.monotonic() >= self._deadline):
                return
            try:
                message = self._queue.get(timeout=TICK_SECS)
            except queue.Empty:
                message = None
            if message:
                self._deliver(message)
            if not stopping and time.monotonic() >= next_tick:
                next_tick = time.monotonic() + TICK_SECS
                try:
                    self.tick()
                except Exception:  # the sender must outlive a bug in one check
                    log.exception("alert escalation check failed")

    def _deliver(self, message: dict[str, Any]) -> None:
        # while the webhook keeps failing, one attempt per message so the queue keeps moving
        attempts = 1 if self._failing else 1 + self.settings.retries
        error: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                self._stop.wait(RETRY_DELAY_SECS * 2 ** (attempt - 1))
                if time.monotonic() >= self._deadline:
                    break
            try:
                self._post(message)
            except Exception as e:  # any failure of the sink is the same to the daemon
                error = e
                continue
            if self._failing:
                log.warning("alert webhook %s works again; %d message(s) were dropped while it "
                            "failed", self.webhook_url, self._failed_in_streak)  # fmt: skip
                self._failing, self._failed_in_streak = False, 0
            self.sent.append(message)
            return
        with self._lock:
            self.dropped += 1
        self._failed_in_streak += 1
        if not self._failing:
            self._failing = True
            log.warning(
                "alert webhook %s failed (%s); the message was dropped after %d attempt(s); "
                "alerts are still logged here; further failures are not logged until it works",
                self.webhook_url, error, attempts,
            )  # fmt: skip

    def _post(self, message: dict[str, Any]) -> None:
        assert self.webhook_url is not None  # only queued with a webhook
        body = json.dumps(message, allow_nan=False).encode()
        request = urllib.request.Request(  # the scheme is checked in __init__
            self.webhook_url, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "247trader-alerts"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_secs) as response:
                response.read()
        except urllib.error.HTTPError as e:
            e.close()  # it holds the connection; left to the garbage collector it leaks it
            msg = f"HTTP {e.code} {e.reason}"
            raise OSError(msg) from None


def _fingerprint(kind: str, subject: str) -> str:
    return f"{kind}:{subject}" if subject else kind
