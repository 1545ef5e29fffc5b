"""Prometheus metrics of the live daemon, served on 127.0.0.1 at `metrics.port` in live.yaml.

`Metrics` observes the event bus (`live_bridge.events`) and keeps its own `CollectorRegistry`
(never the process-wide default one). `start()` serves `GET /metrics` on 127.0.0.1 only.
Every label has a bounded set of values, so a misbehaving venue cannot blow up the series:

* `symbol`: the products of `live.symbols`, anything else `other`;
* `theme`: the universe's theme names, `none` for a symbol without a theme, else `other`;
* `endpoint`: the SDK methods the adapter calls (`API_ENDPOINTS`), anything else `other`;
* `code`: an HTTP status (three digits) or `timeout` / `connection` / `tls` / `error`, else
  `other`; on rejections the venue's error code (an uppercase identifier such as
  `INSUFFICIENT_FUND`), the first `metrics.max_rejection_codes` distinct ones, then `other`;
* `reason`: `signals.enums.REASON_NAMES`; `status`: `live_bridge.orders.STATUSES`;
  `state`: `live_bridge.trading_state.STATES`; `stage`: `live_bridge.events.STAGES`;
* `breaker`: the kernel's `daily_stop`, `weekly_stop`, `drawdown_breaker`, plus the first
  `metrics.max_breaker_names` health breaker names seen, then `other`.

The state gauges are read from the last `CycleFinished` (the store's view at the cycle's end)
and are absent until the first cycle of the process has finished.

| metric | type | labels | meaning |
| --- | --- | --- | --- |
| `live_bridge_equity_usd` | gauge | | kernel equity at the last cycle's close prices |
| `live_bridge_cash_usd` | gauge | | kernel cash |
| `live_bridge_exposure_usd` | gauge | | value of all held positions |
| `live_bridge_theme_exposure_usd` | gauge | theme | value of the positions of each theme |
| `live_bridge_symbol_exposure_usd` | gauge | symbol | value of each position (0: flat) |
| `live_bridge_open_positions` | gauge | | products with a position |
| `live_bridge_pending_orders` | gauge | | stored orders not settled (`orders.UNFINISHED`) |
| `live_bridge_orders` | gauge | status | stored orders in each status (state file) |
| `live_bridge_fills_total` | counter | | fills applied (state file; survives restarts) |
| `live_bridge_fill_ratio` | gauge | | filled / sent orders (see below) |
| `live_bridge_bar_age_seconds` | gauge | | newest closed bar's age at the last cycle |
| `live_bridge_last_cycle_timestamp_seconds` | gauge | | when the last cycle finished (epoch) |
| `live_bridge_cycles_total` | counter | outcome | cycles `decided`, `skipped`, `failed` |
| `live_bridge_cycle_consecutive_failures` | gauge | | failed cycles since the last finished one |
| `live_bridge_cycle_duration_seconds` | histogram | | whole cycle |
| `live_bridge_stage_duration_seconds` | histogram | stage | each cycle stage that ran |
| `live_bridge_no_trade_reasons_total` | counter | reason | the kernel's no-trade reasons |
| `live_bridge_order_rejections_total` | counter | code | orders moved to `rejected` |
| `live_bridge_api_requests_total` | counter | endpoint, code | HTTP attempts to the venue |
| `live_bridge_api_errors_total` | counter | endpoint, code | failed attempts (retried or not) |
| `live_bridge_api_consecutive_errors` | gauge | | failed attempts since the last success |
| `live_bridge_api_request_duration_seconds` | histogram | endpoint | each HTTP attempt |
| `live_bridge_throttled_requests_total` | counter | endpoint, level | rate limiter delays |
| `live_bridge_breaker_open` | gauge | breaker | 1 while a circuit breaker is open |
| `live_bridge_breaker_trips_total` | counter | breaker | closed -> open moves seen |
| `live_bridge_trading_state` | gauge | state | 1 for the current trading state |
| `live_bridge_kill_switch_engaged` | gauge | | 1 while the trading state is `killed` |
| `live_bridge_reconcile_mismatch` | gauge | | 1 while store and venue disagree |

`live_bridge_fill_ratio` is, over the state file's orders at the last cycle's end, the orders
in status `filled` divided by the orders the venue answered (`orders.SENT`: open,
partially_filled, filled, cancelled, expired, rejected); NaN while none was sent. An order
cancelled after a partial fill counts as sent, not filled.

The counters, histograms and the consecutive-error gauges count what this process saw since it
started (Prometheus' `rate()` handles the reset at a restart), except `live_bridge_fills_total`,
which is the state file's count. A breaker trip is a closed -> open move seen by this
process: a kernel breaker already on at the first cycle after a start is not counted again.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from live_bridge import orders as lifecycle
from live_bridge import trading_state as trading
from live_bridge.config import LiveConfig
from live_bridge.events import (
    STAGES,
    ApiCall,
    BreakerChanged,
    CycleFailed,
    CycleFinished,
    Event,
    OrderChanged,
    Reconciled,
    Throttled,
    TradingStateChanged,
)
from signals.enums import REASON_NAMES
from signals.errors import ConfigError

PREFIX: Final = "live_bridge_"
OTHER: Final = "other"
API_ENDPOINTS: Final = frozenset({
    "get_unix_time", "get_products", "get_candles", "get_best_bid_ask", "get_product_book",
    "get_accounts", "get_transaction_summary", "preview_order", "create_order", "cancel_orders",
    "get_order", "list_orders", "get_fills",
})  # fmt: skip
"""The SDK methods `CoinbaseAdapter` calls (the `endpoint` of an `ApiCall`)."""
NO_STATUS_CODES: Final = frozenset({"timeout", "connection", "tls", "error"})
KERNEL_BREAKERS: Final = ("daily_stop", "weekly_stop", "drawdown_breaker")
THROTTLE_LEVELS: Final = frozenset({"slow", "hold"})
NO_THEME: Final = "none"
_HTTP_STATUS = re.compile(r"[1-5][0-9]{2}")
_VENUE_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_BREAKER_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


class Metrics:
    """Prometheus metrics from the daemon's events, served at `/metrics` on 127.0.0.1.

    Parameters
    ----------
    live : LiveConfig
        The daemon's config: `metrics` (port, buckets, label caps) and `symbols`.
    themes : dict[str, str]
        Symbol -> theme name from the universe config (the bounded `theme` labels).
    """

    def __init__(self, live: LiveConfig, themes: dict[str, str]) -> None:
        self.settings = live.metrics
        self.symbols: tuple[str, ...] = tuple(live.symbols)
        self.themes = dict(themes)
        self._theme_names = tuple(sorted(set(self.themes.values())))
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._last: CycleFinished | None = None
        self._trading_state: str | None = None
        self._mismatch: bool | None = None
        self._breakers: dict[str, bool] = {}
        self._rejection_codes: set[str] = set()
        self._breaker_names: set[str] = set()

        r = self.registry
        self.cycles = Counter(
            "live_bridge_cycles",
            "Cycles by outcome: decided, skipped (bar already decided), failed.",
            ["outcome"],
            registry=r,
        )
        self.cycle_failures = Gauge(
            "live_bridge_cycle_consecutive_failures",
            "Failed cycles since the last cycle that finished.",
            registry=r,
        )
        self.cycle_secs = Histogram(
            "live_bridge_cycle_duration_seconds",
            "Duration of a whole cycle.",
            buckets=self.settings.cycle_buckets_secs,
            registry=r,
        )
        self.stage_secs = Histogram(
            "live_bridge_stage_duration_seconds",
            "Duration of each cycle stage that ran.",
            ["stage"],
            buckets=self.settings.cycle_buckets_secs,
            registry=r,
        )
        self.reasons = Counter(
            "live_bridge_no_trade_reasons",
            "The decision kernel's no-trade reasons.",
            ["reason"],
            registry=r,
        )
        self.rejections = Counter(
            "live_bridge_order_rejections",
            "Orders moved to rejected, by the venue's error code.",
            ["code"],
            registry=r,
        )
        self.api_requests = Counter(
            "live_bridge_api_requests",
            "HTTP attempts to the venue by SDK method and status.",
            ["endpoint", "code"],
            registry=r,
        )
        self.api_errors = Counter(
            "live_bridge_api_errors",
            "Failed HTTP attempts (retried or not).",
            ["endpoint", "code"],
            registry=r,
        )
        self.api_consecutive_errors = Gauge(
            "live_bridge_api_consecutive_errors",
            "Failed HTTP attempts since the last successful one.",
            registry=r,
        )
        self.api_secs = Histogram(
            "live_bridge_api_request_duration_seconds",
            "Duration of each HTTP attempt.",
            ["endpoint"],
            buckets=self.settings.api_buckets_secs,
            registry=r,
        )
        self.throttled = Counter(
            "live_bridge_throttled_requests",
            "Requests the rate limiter delayed, by level.",
            ["endpoint", "level"],
            registry=r,
        )
        self.breaker_trips = Counter(
            "live_bridge_breaker_trips",
            "Circuit breakers moving from closed to open.",
            ["breaker"],
            registry=r,
        )
        for outcome in ("decided", "skipped", "failed"):
            self.cycles.labels(outcome)
        for reason in REASON_NAMES[1:]:  # 0 is `none`
            self.reasons.labels(reason)
        for name in KERNEL_BREAKERS:
            self.breaker_trips.labels(name)
        r.register(_StateCollector(self))

    # --- labels ----------------------------------------------------------------------------------

    def symbol_label(self, symbol: str) -> str:
        """Return `symbol` if the daemon trades it, else `other`."""
        return symbol if symbol in self.symbols else OTHER

    def theme_label(self, theme: str) -> str:
        """Return `theme` if the universe has it, `none` for no theme, else `other`."""
        if not theme:
            return NO_THEME
        return theme if theme in self._theme_names else OTHER

    @staticmethod
    def endpoint_label(endpoint: str) -> str:
        """Return `endpoint` if it is an SDK method the adapter calls, else `other`."""
        return endpoint if endpoint in API_ENDPOINTS else OTHER

    @staticmethod
    def code_label(code: str) -> str:
        """Return an HTTP status or a no-status word (`timeout`, ...) as given, else `other`."""
        if code in NO_STATUS_CODES or _HTTP_STATUS.fullmatch(code):
            return code
        return OTHER

    def rejection_label(self, note: str) -> str:
        """Return the venue's error code in `note`, capped at `max_rejection_codes` values."""
        return _capped(note, _VENUE_CODE, self._rejection_codes, self.settings.max_rejection_codes)

    def breaker_label(self, name: str) -> str:
        """Return a health breaker's name, capped at `max_breaker_names` values."""
        if name in KERNEL_BREAKERS:
            return name
        return _capped(name, _BREAKER_NAME, self._breaker_names, self.settings.max_breaker_names)

    # --- events ----------------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        """Update the metrics from one event (the bus's observer)."""
        if isinstance(event, ApiCall):
            self._api_call(event)
        elif isinstance(event, CycleFinished):
            self._cycle_finished(event)
        elif isinstance(event, CycleFailed):
            self.cycles.labels("failed").inc()
            self.cycle_failures.inc()
        elif isinstance(event, OrderChanged):
            if event.new == lifecycle.REJECTED and event.old != lifecycle.REJECTED:
                self.rejections.labels(self.rejection_label(event.note)).inc()
        elif isinstance(event, TradingStateChanged):
            self._trading_state = event.new
        elif isinstance(event, Reconciled):
            self._mismatch = bool(event.mismatch)
        elif isinstance(event, BreakerChanged):
            self._set_breaker(self.breaker_label(event.name), event.open)
        elif isinstance(event, Throttled):
            level = event.level if event.level in THROTTLE_LEVELS else OTHER
            self.throttled.labels(self.endpoint_label(event.endpoint), level).inc()

    def _api_call(self, event: ApiCall) -> None:
        endpoint = self.endpoint_label(event.endpoint)
        code = self.code_label(event.code)
        self.api_requests.labels(endpoint, code).inc()
        self.api_secs.labels(endpoint).observe(event.secs)
        if event.ok:
            self.api_consecutive_errors.set(0)
        else:
            self.api_errors.labels(endpoint, code).inc()
            self.api_consecutive_errors.inc()

    def _cycle_finished(self, event: CycleFinished) -> None:
        self.cycles.labels("skipped" if event.skipped else "decided").inc()
        self.cycle_failures.set(0)
        self.cycle_secs.observe(event.secs)
        for stage, secs in event.stages.items():
            self.stage_secs.labels(stage if stage in STAGES else OTHER).observe(secs)
        for reason, n in event.reasons.items():
            if n > 0:
                self.reasons.labels(reason if reason in REASON_NAMES else OTHER).inc(n)
        for name in KERNEL_BREAKERS:
            if name in event.breakers:
                self._set_breaker(name, bool(event.breakers[name]))
        self._trading_state = event.trading_state
        self._mismatch = bool(event.mismatch)
        self._last = event  # frozen: the scrape thread reads it whole

    def _set_breaker(self, name: str, is_open: bool) -> None:
        with self._lock:
            was_open = self._breakers.get(name)
            self._breakers[name] = is_open
        # a kernel breaker already on when first seen tripped before this process started;
        # a health breaker is only reported when it moves
        first = was_open is None and name not in KERNEL_BREAKERS
        if is_open and (was_open is False or first):
            self.breaker_trips.labels(name).inc()

    # --- server ----------------------------------------------------------------------------------

    def start(self) -> int:
        """Serve `/metrics` on 127.0.0.1 at `metrics.port` (0: any free port); return the port."""
        if self._port is not None:
            return self._port
        port = self.settings.port or 0
        try:
            server, thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        except OSError as e:
            msg = (
                f"live.yaml `metrics.port` must be a free port on 127.0.0.1, was {port} ({e}); "
                "pick another or set it to 0"
            )
            raise ConfigError(msg) from e
        self._server, self._thread = server, thread
        self._port = int(server.server_port)
        return self._port

    def close(self) -> None:
        """Stop serving and join the server thread (no-op when not started)."""
        server, thread = self._server, self._thread
        self._server = self._thread = self._port = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)

    @property
    def port(self) -> int | None:
        """Return the bound port while serving, else None."""
        return self._port

    # --- the state snapshot (read by the scrape thread) ------------------------------------------

    def snapshot_families(self) -> Iterator[Metric]:
        """Yield the state gauges: the last cycle's view plus trading state and breakers."""
        last = self._last
        if last is not None:
            yield from self._cycle_families(last)
        state = self._trading_state
        if state is not None:
            g = GaugeMetricFamily(
                "live_bridge_trading_state",
                "1 for the daemon's current trading state.",
                labels=["state"],
            )
            for name in trading.STATES:
                g.add_metric([name], 1.0 if state == name else 0.0)
            yield g
            yield GaugeMetricFamily(
                "live_bridge_kill_switch_engaged",
                "1 while the kill switch is on (killed).",
                value=1.0 if state == trading.KILLED else 0.0,
            )
        if self._mismatch is not None:
            yield GaugeMetricFamily(
                "live_bridge_reconcile_mismatch",
                "1 while the last reconciliation found the store and the venue disagreeing.",
                value=1.0 if self._mismatch else 0.0,
            )
        with self._lock:
            breakers = sorted(self._breakers.items())
        if breakers:
            g = GaugeMetricFamily(
                "live_bridge_breaker_open",
                "1 while a circuit breaker is open.",
                labels=["breaker"],
            )
            for name, is_open in breakers:
                g.add_metric([name], 1.0 if is_open else 0.0)
            yield g

    def _cycle_families(self, last: CycleFinished) -> Iterator[Metric]:
        by_symbol = dict.fromkeys(self.symbols, 0.0)
        by_theme = dict.fromkeys((*self._theme_names, NO_THEME), 0.0)
        for symbol, pos in last.positions.items():
            s = self.symbol_label(symbol)
            by_symbol[s] = by_symbol.get(s, 0.0) + pos.value_usd
            t = self.theme_label(pos.theme or self.themes.get(symbol, ""))
            by_theme[t] = by_theme.get(t, 0.0) + pos.value_usd
        counts = last.orders_by_status
        sent = sum(counts.get(s, 0) for s in lifecycle.SENT)
        plain = (
            ("equity_usd", "Equity at the last cycle's close prices (USD).", last.equity_usd),
            ("cash_usd", "Cash at the last cycle (USD).", last.cash_usd),
            ("exposure_usd", "Value of all held positions (USD).",
             sum(p.value_usd for p in last.positions.values())),
            ("open_positions", "Products with a position.", len(last.positions)),
            ("pending_orders", "Stored orders not settled yet (intended, unknown, open, "
             "partially_filled).", sum(counts.get(s, 0) for s in lifecycle.UNFINISHED)),
            ("fill_ratio", "Filled orders / orders the venue answered (state file; NaN while "
             "none was sent).", counts.get(lifecycle.FILLED, 0) / sent if sent else math.nan),
            ("bar_age_seconds", "Age of the newest closed bar when the last cycle started "
             "(venue time).", last.bar_age_secs),
            ("last_cycle_timestamp_seconds", "When the last cycle finished (UTC epoch seconds).",
             last.ts_ns / 1e9),
        )  # fmt: skip
        for name, text, value in plain:
            yield GaugeMetricFamily(f"{PREFIX}{name}", text, value=float(value))
        by_status = {s: counts.get(s, 0) for s in lifecycle.STATUSES}
        other = sum(n for s, n in counts.items() if s not in lifecycle.STATUSES)
        if other:
            by_status[OTHER] = other
        labelled = (
            ("theme_exposure_usd", "Value of the positions of each theme (USD).", "theme",
             by_theme),
            ("symbol_exposure_usd", "Value of each product's position (USD).", "symbol",
             by_symbol),
            ("orders", "Stored orders in each status (state file).", "status", by_status),
        )  # fmt: skip
        for name, text, label, values in labelled:
            g = GaugeMetricFamily(f"{PREFIX}{name}", text, labels=[label])
            for key, value in values.items():
                g.add_metric([key], float(value))
            yield g
        yield CounterMetricFamily(
            f"{PREFIX}fills", "Fills applied (the state file's count).", value=last.fills_total
        )


class _StateCollector:
    # the state gauges, built at each scrape from the last events (no stale label series)
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return list(self._metrics.snapshot_families())

    def describe(self) -> Iterable[Metric]:
        return [
            GaugeMetricFamily(name, "")
            for name in (
                "live_bridge_equity_usd",
                "live_bridge_cash_usd",
                "live_bridge_exposure_usd",
                "live_bridge_theme_exposure_usd",
                "live_bridge_symbol_exposure_usd",
                "live_bridge_open_positions",
                "live_bridge_pending_orders",
                "live_bridge_orders",
                "live_bridge_fill_ratio",
                "live_bridge_bar_age_seconds",
                "live_bridge_last_cycle_timestamp_seconds",
                "live_bridge_trading_state",
                "live_bridge_kill_switch_engaged",
                "live_bridge_reconcile_mismatch",
                "live_bridge_breaker_open",
            )
        ] + [CounterMetricFamily("live_bridge_fills", "")]


def _capped(value: str, pattern: re.Pattern[str], seen: set[str], cap: int) -> str:
    # a well-formed value is its own label until `cap` distinct ones have been seen
    if not pattern.fullmatch(value):
        return OTHER
    if value in seen:
        return value
    if len(seen) >= cap:
        return OTHER
    seen.add(value)
    return value
