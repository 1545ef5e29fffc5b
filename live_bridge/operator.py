"""What the operator sees of one daemon run: the observers on its event bus, built from live.yaml.

`Operator` owns the `EventBus` the daemon emits on and subscribes, in this order:

1. `LatencyTracker` (always): percentiles per endpoint and stage, budgets -> `LatencyBreach`;
2. `HealthBreakers` (always): API error bursts, rate-limit hits, stale data and clock skew
   open breakers that block new entries (`LiveDaemon.entry_blockers`) until healthy again;
3. `AlertService` (always; it logs, and POSTs to `alerts.webhook_url` when set);
4. `Metrics` (when `metrics.port` is set): Prometheus on 127.0.0.1;
5. `AuditTrail` (unless `audit.enabled: false`);
6. `ShadowRecorder` (with `live-bridge run --shadow`).

It also hooks the adapter: every HTTP attempt waits on the `RateLimiter` first and is then
emitted as an `ApiCall`. Nothing here decides anything; a failing observer is logged by the bus.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from live_bridge.coinbase import CoinbaseAdapter
from live_bridge.config import LiveConfig
from live_bridge.events import ApiCall, Event, EventBus
from live_bridge.latency import LatencyTracker
from live_bridge.store import StateStore
from signals.config import PlatformConfig
from signals.errors import ConfigError

log = logging.getLogger("live_bridge.operator")


SECRET_WARN_DAYS = 80
SECRET_ALERT_DAYS = 90


def secret_age_days(live: LiveConfig, today: dt.date | None = None) -> float | None:
    """Return the API key's age in days from `secret_created` (None when not configured).

    Logs a WARNING from `SECRET_WARN_DAYS` on; the `secret_age` alert fires from
    `SECRET_ALERT_DAYS` (on the `Started` event that carries this age).
    """
    if live.secret_created is None:
        return None
    age = float(((today or dt.datetime.now(dt.UTC).date()) - live.secret_created).days)
    if age >= SECRET_WARN_DAYS:
        log.warning(
            "the API key is %.0f days old (secret_created %s): rotate it before %d days",
            age, live.secret_created, SECRET_ALERT_DAYS,
        )  # fmt: skip
    return age


def check_clock(adapter: CoinbaseAdapter, live: LiveConfig) -> float:
    """Return the skew (venue - local, ms); raise `ConfigError` in LIVE when it is too large.

    The skew is measured at the mid-point of a `server time` request. Other modes only log a
    warning; `max_clock_skew_ms: null` (a simulator's simulated clock) skips the check.
    """
    import time  # noqa: PLC0415

    if live.max_clock_skew_ms is None:
        return float("nan")
    before = time.time_ns()
    venue_ns = adapter.server_time_ns()
    after = time.time_ns()
    skew_ms = (venue_ns - (before + after) / 2) / 1e6
    if abs(skew_ms) > live.max_clock_skew_ms:
        msg = (
            f"the local clock differs from the venue's by {skew_ms:+.0f} ms, more than "
            f"live.yaml `max_clock_skew_ms` ({live.max_clock_skew_ms:.0f} ms); sync the clock "
            "(chronyc makestep, or ntpd) and start again"
        )
        if live.mode == "LIVE":
            raise ConfigError(msg)
        log.warning("%s", msg)
    return skew_ms


class Operator:
    """Build and own the operator-facing observers of one daemon run."""

    def __init__(
        self,
        live: LiveConfig,
        platform: PlatformConfig,
        store: StateStore,
        adapter: CoinbaseAdapter,
        *,
        shadow: bool = False,
    ) -> None:
        from live_bridge.alerts import AlertService  # noqa: PLC0415
        from live_bridge.health import HealthBreakers  # noqa: PLC0415
        from live_bridge.ratelimit import RateLimiter  # noqa: PLC0415

        self.live = live
        self.bus = EventBus()
        self._closers: list[Any] = []
        config_hash = platform.config_hash()
        self.latency = LatencyTracker(live.latency, store, self.bus)
        self.bus.subscribe(self.latency)
        self.health = HealthBreakers(live, store, self.bus)
        self.bus.subscribe(self.health)
        self.alerts = AlertService(live, config_hash)
        self.bus.subscribe(self.alerts)
        self._closers.append(self.alerts)
        self.metrics: Any = None
        if live.metrics.port is not None:
            from live_bridge.metrics import Metrics  # noqa: PLC0415

            themes = {s: t for t, syms in platform.universe.themes.items() for s in syms}
            self.metrics = Metrics(live, themes)
            self.bus.subscribe(self.metrics)
            self._closers.append(self.metrics)
        self.audit: Any = None
        audit_path = live.audit_path()
        if audit_path is not None:
            from live_bridge.audit import AuditTrail  # noqa: PLC0415

            self.audit = AuditTrail(audit_path, live.audit, live.mode, config_hash)
            self.bus.subscribe(self.audit)
            self._closers.append(self.audit)
        self.shadow: Any = None
        if shadow:
            from live_bridge.shadow import ShadowRecorder  # noqa: PLC0415

            self.shadow = ShadowRecorder(live, store, adapter)
            self.bus.subscribe(self.shadow)
            self._closers.append(self.shadow)
        self.limiter = RateLimiter(live.rate_limits, self.bus, store=store)
        self.bus.subscribe(self.limiter)
        adapter.before_request = self.limiter.before_request
        adapter.on_request = self._api_call

    def _api_call(self, endpoint: str, code: str, secs: float, ok: bool) -> None:
        self.bus.emit(ApiCall(endpoint=endpoint, code=code, secs=secs, ok=ok))

    def emit(self, event: Event) -> None:
        """Emit `event` on the bus (the CLI's start and stop events)."""
        self.bus.emit(event)

    def start(self) -> None:
        """Start the servers and threads (the metrics endpoint, the alert sender)."""
        if self.metrics is not None:
            port = self.metrics.start()
            log.info("metrics on http://127.0.0.1:%d/metrics", port)
        self.alerts.start()

    def close(self) -> None:
        """Stop the servers and threads and flush the files (newest first)."""
        for closer in reversed(self._closers):
            try:
                closer.close()
            except Exception:  # closing one must not keep the others open
                log.exception("closing %r failed", closer)
