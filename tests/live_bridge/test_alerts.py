"""The alert service: each alert type fires from its real condition and resolves when it clears;
deduplication, escalation, and a webhook that fails or hangs never slowing the daemon.

The conditions come from an in-process LIVE daemon on the shipped data against the exchange
simulator (stepped clock, TLS on 127.0.0.1), with the simulator's faults, product status and
balances changed behind the daemon's back. The webhook is a local `ThreadingHTTPServer` that
collects the JSON bodies it is sent.
"""

import datetime as dt
import json
import logging
import signal
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from live_bridge.alerts import AlertService
from live_bridge.config import AlertSettings, LatencySettings, LiveConfig, load_live_config
from live_bridge.daemon import POST_ONLY_CROSS, CycleResult, LiveDaemon
from live_bridge.errors import AuthenticationError
from live_bridge.events import ApiCall, Event, EventBus, OrderChanged, Started
from live_bridge.health import HealthBreakers
from live_bridge.latency import LatencyTracker
from live_bridge.operator import secret_age_days
from live_bridge.store import StateStore
from signals.bars import to_panel
from signals.config import PlatformConfig
from signals.errors import ConfigError
from signals.pipeline import warmup_bars
from tests.live_bridge.daemon_process import start_daemon, write_busy_config, write_live_yaml
from tests.parity.conftest import (  # noqa: F401 (fixtures used by name)
    KEY_NAME,
    Venue,
    fixture_shipped_bars,
    fixture_venue,
    parity_config,
    venue_adapter,
)

pytestmark = pytest.mark.integration

FIRST_FILL = 24
"""Offset from the warm-up of the shipped data's first fill (its first order is at +23)."""
BTC_CANDLES = "/api/v3/brokerage/products/BTC-USD/candles"
ACCOUNTS = "/api/v3/brokerage/accounts"
WAIT_SECS = 10.0


# --- the webhook receiver ---------------------------------------------------------------------


@dataclass
class Receiver:
    """A local webhook: `bodies` it answered 2xx, `attempts` of every POST, adjustable answer."""

    status: int = 200
    delay_secs: float = 0.0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def messages(self, kind: str, status: str | None = None) -> list[dict[str, Any]]:
        """Return the accepted messages of alert type `kind` (and `status`), oldest first."""
        with self.lock:
            return [
                b for b in self.bodies
                if b["type"] == kind and (status is None or b["status"] == status)
            ]  # fmt: skip

    def wait_for(
        self, kind: str, status: str = "firing", wait_secs: float = WAIT_SECS, **fields: Any
    ) -> dict[str, Any]:
        """Return the first accepted message of `kind`/`status` with `fields` (wait seconds)."""
        end = time.monotonic() + wait_secs
        while time.monotonic() < end:
            for body in self.messages(kind, status):
                if all(body.get(k) == v for k, v in fields.items()):
                    return body
            time.sleep(0.02)
        with self.lock:
            seen = [(b["fingerprint"], b["status"]) for b in self.bodies]
        pytest.fail(f"no {status} {kind} message {fields} within {wait_secs} s; got {seen}")


@pytest.fixture(name="receiver")
def fixture_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with receiver.lock:
                receiver.attempts += 1
                status, delay = receiver.status, receiver.delay_secs
            if delay and receiver.stop.wait(delay):
                return
            if status < 300:
                with receiver.lock:
                    receiver.bodies.append(body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield receiver
    receiver.stop.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


# --- the daemon with the alert service on its bus -----------------------------------------------


@pytest.fixture(name="market", scope="module")
def fixture_market(shipped_bars):
    """The shipped panel, its bar length (ns) and the decision path's warm-up (bars)."""
    config = parity_config()
    panel = to_panel(shipped_bars)
    bar_ns = int(panel.ts_ns[1] - panel.ts_ns[0])
    return {"config": config, "panel": panel, "bar_ns": bar_ns,
            "first": warmup_bars(config, bar_ns)}  # fmt: skip


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    """A LIVE daemon, its bus and the alert service subscribed to it (last)."""

    venue: Venue
    market: dict
    daemon: LiveDaemon
    bus: EventBus
    alerts: AlertService
    observer_secs: list[float]

    def step(self, offset: int, after_close_secs: float = 0.0) -> CycleResult:
        """Run the cycle of bar `first + offset` at its close (+ `after_close_secs`)."""
        self.set_clock(offset, after_close_secs)
        return self.daemon.run_cycle()

    def set_clock(self, offset: int, after_close_secs: float = 0.0) -> None:
        """Move the venue clock to the close of bar `first + offset` (+ `after_close_secs`)."""
        t = self.market["first"] + offset
        close_ns = int(self.market["panel"].ts_ns[t]) + self.market["bar_ns"]
        self.venue.clock.set(close_ns + int(after_close_secs * 1e9))

    def fired(self, kind: str) -> list[dict[str, Any]]:
        """Return the firing messages of `kind` the service decided (sent or not), in order."""
        return [m for m in self.alerts.messages() if m["type"] == kind and m["status"] == "firing"]

    def resolved(self, kind: str) -> list[dict[str, Any]]:
        """Return the resolved messages of `kind` the service decided, in order."""
        return [
            m for m in self.alerts.messages() if m["type"] == kind and m["status"] == "resolved"
        ]

    def close(self) -> None:
        self.alerts.close(flush_secs=1.0)
        self.daemon.store.close()
        self.daemon.adapter.close()


Observer = Callable[[Event], None]


@pytest.fixture(name="rig")
def fixture_rig(venue: Venue, tmp_path: Path, market: dict, receiver: Receiver):
    made: list[Rig] = []

    def build(
        *,
        alerts: dict[str, Any] | None = None,
        alert_clock: Callable[[], float] = time.monotonic,
        platform: PlatformConfig | None = None,
        before: Callable[[LiveDaemon, EventBus], Observer] | None = None,
        **live_updates: Any,
    ) -> Rig:
        """Build a daemon whose events reach `before(daemon, bus)` (if given), then the alerts."""
        symbols = list(market["panel"].symbols)
        settings = AlertSettings(**{"webhook_url": receiver.url, **(alerts or {})})
        live = LiveConfig(**{
            "mode": "LIVE", "read_only": False, "symbols": symbols,
            "state_path": str(tmp_path / "s.db"), "base_url": venue.server.base_url,
            "ca_path": str(venue.server.ca_path), "timeout_secs": 5.0, "max_retries": 4,
            "max_quote_age_seconds": 60.0, "min_book_depth_usd": 1_000.0,
            "max_clock_skew_ms": None, "kill_switch_path": str(tmp_path / "KILL"),
            "alerts": settings, **live_updates,
        })  # fmt: skip
        adapter = venue_adapter(venue, live)
        bus = EventBus()
        adapter.on_request = lambda e, c, s, ok: bus.emit(
            ApiCall(endpoint=e, code=c, secs=s, ok=ok)
        )
        config = platform or market["config"]
        store = StateStore(live.state_path)
        daemon = LiveDaemon(
            config, live, adapter, store, now_ns=venue.clock.now_ns, events=bus
        )  # fmt: skip
        if before is not None:
            bus.subscribe(before(daemon, bus))
        service = AlertService(live, config.config_hash(), clock=alert_clock)
        observer_secs: list[float] = []

        def timed(event: Event) -> None:
            start = time.perf_counter()
            service(event)
            observer_secs.append(time.perf_counter() - start)

        bus.subscribe(timed)
        service.start()
        rig = Rig(venue, market, daemon, bus, service, observer_secs)
        made.append(rig)
        return rig

    yield build
    for rig in made:
        rig.close()


def _tight(risk_key: str) -> PlatformConfig:
    # 0.001 %: any real loss trips it, no loss does not (0 would trip on a flat account)
    config = parity_config()
    risk = config.policy.risk.model_copy(update={risk_key: 0.001})
    return config.model_copy(update={"policy": config.policy.model_copy(update={"risk": risk})})


def _assert_message(
    msg: dict[str, Any], kind: str, severity: str, fingerprint: str, config_hash: str = ""
) -> None:
    assert msg["type"] == kind
    assert msg["severity"] == severity
    assert msg["fingerprint"] == fingerprint
    assert msg["mode"] == "LIVE"
    assert msg["config_hash"] == (config_hash or parity_config().config_hash())
    assert msg["escalated"] is False
    assert dt.datetime.fromisoformat(msg["ts"]).tzinfo is not None
    assert set(msg) >= {"summary", "details", "count", "first_seen", "last_seen", "status"}


# --- one test per alert type ---------------------------------------------------------------------


def test_kill_file_fires_critical_kill_switch_and_its_removal_resolves_it(rig, receiver):
    r = rig()
    r.step(0)
    kill = Path(r.daemon.live.kill_switch_path)
    kill.write_text("test")
    r.daemon.watch()
    msg = receiver.wait_for("kill_switch")
    _assert_message(msg, "kill_switch", "critical", "kill_switch")
    assert msg["details"]["new"] == "killed"
    assert [a["fingerprint"] for a in r.alerts.active()] == ["kill_switch"]
    r.daemon.watch()  # still engaged: nothing new
    assert len(r.fired("kill_switch")) == 1
    kill.unlink()
    r.daemon.watch()
    resolved = receiver.wait_for("kill_switch", status="resolved")
    assert resolved["severity"] == "critical"
    assert r.alerts.active() == []


def test_key_refused_halts_trading_fires_alert_and_accepted_key_resolves_it(
    rig, receiver, venue: Venue
):
    r = rig()
    r.step(0)
    venue.faults.unauthorized(1, path_prefix=ACCOUNTS)
    with pytest.raises(AuthenticationError):
        r.step(1)
    msg = receiver.wait_for("trading_halted")
    _assert_message(msg, "trading_halted", "critical", "trading_halted")
    assert "401" in msg["summary"]
    r.step(1)  # the venue accepts the key again: the cycle runs, trading resumes
    receiver.wait_for("trading_halted", status="resolved")
    assert r.alerts.active() == []


@pytest.mark.parametrize(
    ("risk_key", "kind", "severity", "others"),
    [
        ("daily_loss_stop_pct", "daily_stop", "warning", ("weekly_stop", "max_drawdown")),
        ("weekly_loss_stop_pct", "weekly_stop", "warning", ("daily_stop", "max_drawdown")),
        ("max_drawdown_pct", "max_drawdown", "critical", ("daily_stop", "weekly_stop")),
    ],
)
def test_account_loss_trips_kernel_breaker_and_fires_its_alert_only(
    rig, receiver, market, risk_key, kind, severity, others
):
    platform = _tight(risk_key)
    r = rig(platform=platform)
    initial = market["config"].backtest.initial_cash_usd
    fired_at = None
    for offset in range(60):
        r.step(offset)
        if r.fired(kind):
            fired_at = offset
            break
    assert fired_at is not None, f"{kind} never tripped"
    assert fired_at >= FIRST_FILL, "no loss is possible before the first fill"
    msg = receiver.wait_for(kind)
    _assert_message(msg, kind, severity, kind, platform.config_hash())
    assert msg["details"]["equity_usd"] < initial
    for other in others:
        assert not r.fired(other)
    if kind != "daily_stop":
        return
    # the stop resets at the next UTC day's first bar
    for offset in range(fired_at + 1, fired_at + 30):
        r.step(offset)
        if r.resolved(kind):
            break
    resolved = receiver.wait_for(kind, status="resolved")
    # the first bar of a UTC day
    assert resolved["details"]["resolved_bar_no"] * market["bar_ns"] % (86_400 * 10**9) == 0


def test_cycle_over_latency_budget_fires_and_cycle_within_budget_resolves(rig, receiver):
    made: list[LatencyTracker] = []

    def tracker(daemon, bus):
        made.append(
            LatencyTracker(LatencySettings(budgets_secs={"cycle": 1e-6}), daemon.store, bus)
        )
        return made[0]

    r = rig(before=tracker)
    r.step(0)
    msg = receiver.wait_for("latency_budget")
    _assert_message(msg, "latency_budget", "warning", "latency_budget:cycle")
    assert msg["details"]["budget_secs"] == 1e-6
    assert msg["details"]["secs"] > 1e-6
    r.step(1)  # over budget again: still firing, not resolved
    assert not r.resolved("latency_budget")
    assert r.alerts.active()[0]["count"] == 2
    made[0].settings = LatencySettings(budgets_secs={"cycle": 3600.0})
    r.step(2)
    receiver.wait_for("latency_budget", status="resolved")


def test_server_errors_on_candles_fire_api_error_burst_and_successes_resolve(
    rig, receiver, venue: Venue
):
    r = rig()
    r.step(0)
    attempts = r.daemon.live.max_retries + 1  # == alerts.error_burst (5)
    venue.faults.server_error(attempts, status=503, path_prefix=BTC_CANDLES)
    r.step(1)
    msg = receiver.wait_for("api_error_burst")
    _assert_message(msg, "api_error_burst", "warning", "api_error_burst:get_candles")
    assert msg["details"] == {"endpoint": "get_candles", "failures": 5, "last_code": "503"}
    r.step(2)  # 8 symbols' candles answer: 5 successes in a row resolve it
    resolved = receiver.wait_for("api_error_burst", status="resolved")
    assert "in a row" in resolved["details"]["resolved_by"]


def test_venue_rejections_fire_burst_post_only_crosses_excluded_window_resolves(
    rig, receiver, venue: Venue, market
):
    clock = FakeClock()
    r = rig(alerts={"rejection_burst": 2}, alert_clock=clock)
    engine = venue.engine
    create = engine.create_order
    panel = market["panel"]
    creates: list[str] = []

    def price_moved_or_entry_disabled(body: dict[str, Any]) -> dict[str, Any]:
        symbol = body["product_id"]
        creates.append(symbol)
        if len(creates) == 1:
            # the first (post-only buy) order meets a price that fell through its limit since
            # the preview: the venue is asked at a later bar whose open is below the limit
            assert body["side"] == "BUY"
            limit = float(body["order_configuration"]["limit_limit_gtc"]["limit_price"])
            now = venue.clock.now_ns()
            s = panel.symbols.index(symbol)
            later = [t for t in range(panel.n_bars)
                     if panel.ts_ns[t] > now and panel.open[t, s] < limit]  # fmt: skip
            venue.clock.set(int(panel.ts_ns[later[0]]) + 1)
            try:
                return create(body)
            finally:
                venue.clock.set(now)
        # the product went cancel-only between the preview and the create
        engine.set_product_status(symbol, "cancel_only")
        try:
            return create(body)
        finally:
            engine.set_product_status(symbol, "online")

    engine.create_order = price_moved_or_entry_disabled
    # (rejection code, alert on right after it), observed after the alert service saw it
    seen: list[tuple[str, bool]] = []

    def after_alerts(event: Event) -> None:
        if isinstance(event, OrderChanged) and event.new == "rejected":
            seen.append((event.note, bool(r.fired("order_rejection_burst"))))

    r.bus.subscribe(after_alerts)
    offset = 0
    while sum(code != POST_ONLY_CROSS for code, _ in seen) < 2:
        assert offset < 40, f"fewer than 2 venue rejections in 40 bars: {seen}"
        r.step(offset)
        offset += 1
    assert seen[:3] == [
        (POST_ONLY_CROSS, False),  # expected by the backtest: not counted
        ("ORDER_ENTRY_DISABLED", False),
        ("ORDER_ENTRY_DISABLED", True),
    ]
    msg = receiver.wait_for("order_rejection_burst")
    _assert_message(msg, "order_rejection_burst", "warning", "order_rejection_burst")
    assert msg["details"]["code"] == "ORDER_ENTRY_DISABLED"
    assert msg["details"]["rejections"] == 2
    clock.now += r.alerts.settings.burst_secs + 1  # a quiet window
    resolved = receiver.wait_for("order_rejection_burst", status="resolved")
    assert "no rejection" in resolved["details"]["resolved_by"]


def test_failed_cycles_fire_critical_exception_burst_and_next_cycle_resolves(
    rig, receiver, venue: Venue
):
    r = rig(retry_delay_secs=0.01)
    r.step(0)
    r.set_clock(1)
    venue.faults.server_error(3 * (r.daemon.live.max_retries + 1), path_prefix=ACCOUNTS)
    for n in range(1, 4):
        assert r.daemon._attempt("cycle", r.daemon.run_cycle) is None
        assert bool(r.fired("exception_burst")) == (n == 3)
    msg = receiver.wait_for("exception_burst")
    _assert_message(msg, "exception_burst", "critical", "exception_burst")
    assert msg["details"]["error"] == "ReconcileError"
    assert msg["details"]["failures"] == 3
    assert r.daemon._attempt("cycle", r.daemon.run_cycle) is not None
    receiver.wait_for("exception_burst", status="resolved")


def test_every_product_offline_fires_empty_universe_and_online_resolves(
    rig, receiver, venue: Venue, market
):
    r = rig()
    r.step(0)
    for symbol in market["panel"].symbols:
        venue.engine.set_product_status(symbol, "offline")
    r.step(1)
    msg = receiver.wait_for("empty_universe")
    _assert_message(msg, "empty_universe", "warning", "empty_universe")
    assert msg["details"]["tradable_symbols"] == 0
    for symbol in market["panel"].symbols:
        venue.engine.set_product_status(symbol, "online")
    r.step(2)
    receiver.wait_for("empty_universe", status="resolved")


def test_balance_changed_behind_daemon_fires_reconcile_mismatch_and_return_resolves(
    rig, receiver, venue: Venue
):
    r = rig()
    r.step(0)
    venue.engine._balances["USD"] -= Decimal(500)  # someone withdraws 500 USD
    r.step(1)
    msg = receiver.wait_for("reconcile_mismatch")
    _assert_message(msg, "reconcile_mismatch", "critical", "reconcile_mismatch")
    usd = msg["details"]["mismatch"]["USD"]
    assert usd["venue"] == pytest.approx(usd["store"] - 500)
    venue.engine._balances["USD"] += Decimal(500)
    r.step(2)
    receiver.wait_for("reconcile_mismatch", status="resolved")


def test_venue_clock_far_from_local_fires_clock_drift_and_synced_clock_resolves(
    rig, receiver, venue: Venue
):
    r = rig(max_clock_skew_ms=150.0)
    r.step(0)  # the simulator's clock is in the shipped data's past
    msg = receiver.wait_for("clock_drift")
    _assert_message(msg, "clock_drift", "warning", "clock_drift")
    assert msg["details"]["skew_ms"] < -86_400_000  # more than a day behind
    venue.clock.set(time.time_ns())
    r.daemon.clock.sync()  # what the waiting daemon does every `clock_sync_secs`
    resolved = receiver.wait_for("clock_drift", status="resolved")
    assert abs(resolved["details"]["resolved_skew_ms"]) < 150


@pytest.mark.parametrize("cause", ["missing_candles", "late_cycle"])
def test_stale_bar_fires_stale_data_and_complete_fresh_bar_resolves(
    rig, receiver, venue: Venue, cause
):
    r = rig(breakers={"stale_bar_secs": 60.0})
    r.step(0)
    if cause == "missing_candles":
        venue.faults.server_error(r.daemon.live.max_retries + 1, path_prefix=BTC_CANDLES)
        r.step(1)
    else:
        r.step(1, after_close_secs=600.0)  # decided 10 minutes after the close
    msg = receiver.wait_for("stale_data")
    _assert_message(msg, "stale_data", "warning", "stale_data")
    if cause == "missing_candles":
        assert msg["details"]["stale_symbols"] == ["BTC-USD"]
    else:
        assert msg["details"]["stale_symbols"] == []
        assert msg["details"]["bar_age_secs"] == pytest.approx(600.0)
    r.step(2)
    receiver.wait_for("stale_data", status="resolved")


def test_secret_older_than_90_days_alerts_and_80_to_90_days_only_logged(receiver):
    clock = FakeClock()
    today = dt.datetime.now(dt.UTC).date()
    for days, alerted in ((85, False), (91, True)):
        live = LiveConfig(
            secret_created=today - dt.timedelta(days=days),
            alerts=AlertSettings(webhook_url=receiver.url, escalate_secs=1.0),
        )
        service = AlertService(live, "cafe", clock=clock)
        service.start()
        bus = EventBus()
        bus.subscribe(service)
        # as `live-bridge run` does once the daemon is built
        bus.emit(Started(mode=live.mode, config_hash="cafe", symbols=tuple(live.symbols),
                         read_only=live.read_only, secret_age_days=secret_age_days(live)))  # fmt: skip
        assert [a["type"] for a in service.active()] == (["secret_age"] if alerted else [])
        clock.now += 10.0  # past escalate_secs: the age of a key is no reason to escalate
        time.sleep(0.5)
        service.close()
    msg = receiver.wait_for("secret_age")
    assert msg["severity"] == "warning"
    assert msg["details"]["secret_age_days"] == 91.0
    assert msg["mode"] == "DRY_RUN"
    assert len(receiver.messages("secret_age")) == 1


def test_health_breaker_open_fires_breaker_open_and_its_close_resolves(rig, receiver, venue: Venue):
    breaker_clock = FakeClock()

    def health(daemon, bus):
        return HealthBreakers(daemon.live, daemon.store, bus, clock=breaker_clock)

    r = rig(before=health)
    r.step(0)
    venue.faults.server_error(r.daemon.live.max_retries + 1, path_prefix=BTC_CANDLES)
    r.step(1)
    msg = receiver.wait_for("breaker_open", fingerprint="breaker_open:api_errors")
    _assert_message(msg, "breaker_open", "warning", "breaker_open:api_errors")
    assert "failed API calls" in msg["details"]["reason"]
    breaker_clock.now += r.daemon.live.breakers.cooldown_secs + 1
    r.step(2)  # healthy for the cooldown: the breaker closes
    receiver.wait_for("breaker_open", status="resolved", fingerprint="breaker_open:api_errors")


# --- dedup, escalation, resolution, the sink -----------------------------------------------------


def test_same_fingerprint_within_dedup_window_sent_once_then_again_with_count(rig, receiver):
    clock = FakeClock()
    r = rig(max_clock_skew_ms=150.0, alert_clock=clock)
    r.step(0)
    r.daemon.clock.sync()
    r.daemon.clock.sync()
    clock.now += 59.0
    r.daemon.clock.sync()
    assert len(r.fired("clock_drift")) == 1
    assert r.alerts.active()[0]["count"] == 4
    clock.now += 2.0  # 61 s after the message
    r.daemon.clock.sync()
    receiver.wait_for("clock_drift", count=5)
    assert [m["count"] for m in receiver.messages("clock_drift")] == [1, 5]


def test_unresolved_alert_escalates_once_one_step_up_after_escalate_secs(rig, receiver):
    clock = FakeClock()
    r = rig(alert_clock=clock)
    r.set_clock(0)
    Path(r.daemon.live.kill_switch_path).write_text("test")
    r.daemon.watch()
    receiver.wait_for("kill_switch", escalated=False)
    clock.now += 119.0
    time.sleep(0.5)  # the sender ticks every 0.2 s
    assert len(receiver.messages("kill_switch")) == 1
    clock.now += 2.0
    msg = receiver.wait_for("kill_switch", escalated=True)
    assert msg["severity"] == "page"  # critical -> page
    clock.now += 1_000.0
    time.sleep(0.5)
    assert len(receiver.messages("kill_switch")) == 2
    assert r.alerts.active()[0]["severity"] == "page"


def test_alerts_without_webhook_are_logged_only(rig, receiver, caplog):
    r = rig(alerts={"webhook_url": None})
    r.set_clock(0)
    Path(r.daemon.live.kill_switch_path).write_text("test")
    with caplog.at_level(logging.WARNING, logger="live_bridge.alerts"):
        r.daemon.watch()
    assert any(
        rec.levelname == "CRITICAL" and "ALERT CRITICAL kill_switch" in rec.getMessage()
        for rec in caplog.records
    )
    time.sleep(0.3)
    assert receiver.attempts == 0
    assert list(r.alerts.sent) == []
    assert len(r.alerts.history) == 1


def test_webhook_url_other_than_http_refused_when_live_yaml_loads(tmp_path):
    path = tmp_path / "live.yaml"
    path.write_text("alerts:\n  webhook_url: ftp://127.0.0.1/hook\n")
    with pytest.raises(ConfigError, match=r"alerts.webhook_url.*must start with http"):
        load_live_config(path)


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def _toggle_clock_drift(r: Rig, times: int) -> None:
    # each toggle is two messages: the drift fires, a synced clock read resolves it
    for _ in range(times):
        r.set_clock(0)
        r.daemon.clock.sync()
        r.venue.clock.set(time.time_ns())
        r.daemon.clock.sync()


def _wait_idle(service: AlertService, secs: float = 15.0) -> None:
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if service.dropped + len(service.sent) >= len(service.history):
            return
        time.sleep(0.02)
    pytest.fail(f"the sender still has messages after {secs} s")


@pytest.mark.parametrize("failure", ["closed_port", "http_500", "sleeps_5s"])
def test_failing_webhook_never_delays_observer_logs_once_per_streak_drops(
    rig, receiver, caplog, failure
):
    url = _closed_port_url() if failure == "closed_port" else receiver.url
    receiver.status = 500 if failure == "http_500" else 200
    receiver.delay_secs = 5.0 if failure == "sleeps_5s" else 0.0
    retries = 1
    with caplog.at_level(logging.WARNING, logger="live_bridge.alerts"):
        r = rig(max_clock_skew_ms=150.0,
                alerts={"webhook_url": url, "timeout_secs": 0.2, "retries": retries})  # fmt: skip
        _toggle_clock_drift(r, 4)
        n = len(r.alerts.history)
        assert n == 8
        # the observer only queues: no POST, no wait, no exception inside the cycle
        assert statistics.median(r.observer_secs) < 0.005, r.observer_secs
        assert max(r.observer_secs) < 0.1, r.observer_secs
        _wait_idle(r.alerts)
        assert r.alerts.dropped == n
        assert list(r.alerts.sent) == []
        failed = [rec for rec in caplog.records if "alert webhook" in rec.getMessage()]
        assert len(failed) == 1, [rec.getMessage() for rec in failed]
        assert "failed" in failed[0].getMessage()
        if failure != "closed_port":
            # retried on the first message only: later ones get one attempt while it fails
            assert receiver.attempts == (1 + retries) + (n - 1)
            receiver.status, receiver.delay_secs = 200, 0.0
            _toggle_clock_drift(r, 1)
            receiver.wait_for("clock_drift", status="resolved")
            assert any("works again" in rec.getMessage() for rec in caplog.records)
        start = time.perf_counter()
        r.alerts.close(flush_secs=0.5)
        assert time.perf_counter() - start < 2.0


def test_close_gives_up_on_a_hanging_webhook_within_its_deadline(rig, receiver):
    receiver.delay_secs = 5.0
    r = rig(max_clock_skew_ms=150.0, alerts={"timeout_secs": 1.0, "retries": 0})
    _toggle_clock_drift(r, 3)
    start = time.perf_counter()
    r.alerts.close(flush_secs=0.3)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.3 + 1.0 + 1.0, elapsed
    assert r.alerts.dropped + len(r.alerts.sent) == len(r.alerts.history) == 6


def test_live_bridge_run_process_posts_alerts_through_operator_and_exits_cleanly(
    venue: Venue, tmp_path: Path, market, receiver
):
    """`live-bridge run` (real process, `Operator` wiring): the key's age at start, the kill
    file while it waits, its removal; SIGTERM flushes and exits 0."""
    config_dir = write_busy_config(tmp_path / "config")
    panel, bar_ns = market["panel"], market["bar_ns"]
    created = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=91)
    live_yaml = write_live_yaml(
        tmp_path / "live.yaml", venue.server, panel.symbols, tmp_path / "state.sqlite",
        alerts={"webhook_url": receiver.url, "timeout_secs": 1.0},
        secret_created=created.isoformat(),
    )  # fmt: skip
    venue.clock.set(int(panel.ts_ns[market["first"]]) + bar_ns)
    kill = tmp_path / "KILL_SWITCH"
    daemon = start_daemon(config_dir, live_yaml, KEY_NAME, venue.private_pem, tmp_path / "d.log")
    try:
        age = receiver.wait_for("secret_age", wait_secs=60.0)
        assert age["details"]["secret_age_days"] == 91.0
        assert age["mode"] == "LIVE"
        kill.write_text("test")
        killed = receiver.wait_for("kill_switch")
        assert killed["severity"] == "critical"
        kill.unlink()
        receiver.wait_for("kill_switch", status="resolved")
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=30) == 0
    finally:
        if daemon.alive:
            daemon.proc.kill()
            daemon.proc.wait()
    log_text = daemon.log()
    assert "Traceback" not in log_text
    assert "ALERT CRITICAL kill_switch" in log_text
