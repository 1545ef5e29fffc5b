"""The event bus and what hangs on it in the lead's hands: held events, the clock check at start,
the secret age, and latency percentiles that survive a restart.

Real parts: the venue is the exchange simulator over TLS (the parity fixtures' stepped clock),
the state file a real SQLite file; the clock-check process test runs `live-bridge run`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import time

import pytest

from live_bridge.config import LatencySettings, LiveConfig
from live_bridge.events import (
    ApiCall,
    CycleFinished,
    EventBus,
    LatencyBreach,
    OrderChanged,
    Started,
)
from live_bridge.latency import LatencyTracker, latency_summary
from live_bridge.operator import check_clock, secret_age_days
from live_bridge.store import StateStore
from signals.bars import to_panel
from signals.errors import ConfigError
from signals.pipeline import warmup_bars
from tests.live_bridge.conftest import build_adapter
from tests.live_bridge.daemon_process import ROOT, write_busy_config, write_live_yaml
from tests.parity.conftest import (  # noqa: F401 (fixtures used by name)
    KEY_NAME,
    Venue,
    fixture_shipped_bars,
    fixture_venue,
    make_daemon,
    parity_config,
)


def test_observer_failure_never_reaches_the_emitter(caplog):
    bus = EventBus()
    seen = []

    def broken(_event):
        raise RuntimeError("boom")

    bus.subscribe(broken)
    bus.subscribe(seen.append)
    with caplog.at_level(logging.ERROR, logger="live_bridge.events"):
        for _ in range(3):
            bus.emit(Started(mode="DRY_RUN", config_hash="h", symbols=(), read_only=True))
    assert len(seen) == 3  # later observers still see every event
    assert sum("observer" in r.getMessage() for r in caplog.records) == 1  # logged once


def test_held_events_arrive_after_the_block_and_vanish_on_an_error():
    bus = EventBus()
    seen = []
    bus.subscribe(seen.append)
    event = Started(mode="LIVE", config_hash="h", symbols=(), read_only=False)
    with bus.held():
        bus.emit(event)
        assert seen == []
    assert seen == [event]

    def rolled_back() -> None:
        with bus.held():
            bus.emit(event)
            raise ValueError("rolled back")

    with pytest.raises(ValueError, match="rolled back"):
        rolled_back()
    assert seen == [event]


@pytest.mark.integration
def test_daemon_emits_order_events_only_for_committed_rows(venue: Venue, tmp_path):
    config = parity_config()
    panel = to_panel(venue.bars)
    bar_ns = int(panel.ts_ns[1] - panel.ts_ns[0])
    first = warmup_bars(config, bar_ns)
    daemon = make_daemon(venue, tmp_path, config, panel.symbols)
    seen = []
    daemon.events.subscribe(seen.append)
    for offset in range(30):  # the shipped data's first order is at +23
        venue.clock.set(int(panel.ts_ns[first + offset]) + bar_ns)
        daemon.run_cycle()
    orders = [e for e in seen if isinstance(e, OrderChanged)]
    cycles = [e for e in seen if isinstance(e, CycleFinished)]
    assert len(cycles) == 30
    assert {e.stages.keys() >= {"fetch", "decide", "persist", "settle"} for e in cycles} == {True}
    stored = daemon.store.orders()
    assert stored, "the replay placed no order"
    # every stored order was announced when intended, and its last event is its stored status
    last = {e.client_order_id: e.new for e in orders}
    assert {o.client_order_id: o.status for o in stored} == last
    assert {e.client_order_id for e in orders if e.old == ""} == {o.client_order_id for o in stored}
    assert cycles[-1].orders_by_status == daemon.store.order_counts()
    assert cycles[-1].fills_total == daemon.store.fill_count()


@pytest.mark.integration
def test_clock_check_refuses_live_on_skew_and_warns_otherwise(sim, api_key, sleeps, caplog):
    live = LiveConfig(mode="LIVE", read_only=False, base_url=sim.base_url, symbols=["BTC-USD"])
    with build_adapter(sim, api_key, sleeps) as adapter:
        sim.engine.clock.set(time.time_ns() + 400_000_000)  # the venue 400 ms ahead
        with pytest.raises(ConfigError, match=r"max_clock_skew_ms.*150 ms"):
            check_clock(adapter, live)
        dry = live.model_copy(update={"mode": "DRY_RUN"})
        with caplog.at_level(logging.WARNING, logger="live_bridge"):
            skew = check_clock(adapter, dry)
        assert 300 < skew < 401
        assert "max_clock_skew_ms" in caplog.text
        sim.engine.clock.set(time.time_ns())
        assert abs(check_clock(adapter, live)) < 150
        off = live.model_copy(update={"max_clock_skew_ms": None})
        sim.engine.clock.set(time.time_ns() + 10 * 60 * 1_000_000_000)
        assert check_clock(adapter, off) != check_clock(adapter, off)  # NaN: not checked


def test_clock_check_may_be_off_only_beside_a_simulator():
    with pytest.raises(ValueError, match="max_clock_skew_ms"):
        LiveConfig(max_clock_skew_ms=None)
    assert LiveConfig(max_clock_skew_ms=None, base_url="127.0.0.1:1").max_clock_skew_ms is None


@pytest.mark.integration
def test_live_start_fails_in_one_line_when_the_clock_is_off(venue: Venue, tmp_path):
    config_dir = write_busy_config(tmp_path / "config")
    state_path = tmp_path / "state.sqlite"
    live_yaml = write_live_yaml(
        tmp_path / "live.yaml", venue.server, to_panel(venue.bars).symbols, state_path,
        max_clock_skew_ms=150,
    )  # fmt: skip
    venue.clock.set(time.time_ns() - 2_000_000_000)  # the venue 2 s behind
    env = {"COINBASE_API_KEY": KEY_NAME, "COINBASE_API_SECRET": venue.private_pem}
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "live_bridge.cli", "run", "--config", str(config_dir),
         "--live-config", str(live_yaml), "--mode", "LIVE", "--confirm-live", "--once"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("COINBASE_", "CB_"))},
             **env},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr
    assert "max_clock_skew_ms" in errors[0]
    assert "Traceback" not in done.stderr
    assert not state_path.exists()  # refused before anything was written


def test_secret_age_from_config_warns_from_80_days(caplog):
    today = dt.date(2026, 12, 4)
    with caplog.at_level(logging.WARNING, logger="live_bridge"):
        assert secret_age_days(LiveConfig(), today) is None
        assert secret_age_days(LiveConfig(secret_created=dt.date(2026, 9, 16)), today) == 79.0
        assert not caplog.records
        assert secret_age_days(LiveConfig(secret_created=dt.date(2026, 9, 15)), today) == 80.0
    assert "80 days old" in caplog.text
    assert "rotate it before 90 days" in caplog.text


def _cycle(secs: float, stages: dict[str, float]) -> CycleFinished:
    return CycleFinished(
        bar_no=1, bar_ts_ns=0, mode="LIVE", skipped=False, trading_state="active", secs=secs,
        stages=stages, equity_usd=1.0, cash_usd=1.0, peak_equity_usd=1.0, positions={},
        orders=(), fills=0, reasons={}, divergences=(), bar_age_secs=0.0, stale_symbols=(),
        tradable_symbols=1, breakers={}, orders_by_status={}, fills_total=0, mismatch={},
    )  # fmt: skip


def test_latency_percentiles_budgets_and_restart(tmp_path):
    store = StateStore(tmp_path / "s.db")
    bus = EventBus()
    breaches = []
    bus.subscribe(lambda e: breaches.append(e) if isinstance(e, LatencyBreach) else None)
    settings = LatencySettings(budgets_secs={"cycle": 45.0, "create_order": 0.5}, samples=100)
    tracker = LatencyTracker(settings, store, bus)
    bus.subscribe(tracker)
    for i in range(1, 101):
        bus.emit(ApiCall(endpoint="create_order", code="200", secs=i / 100, ok=True))
        bus.emit(_cycle(i / 10, {"fetch": i / 1000, "decide": 0.001}))
    summary = tracker.summary()
    assert summary["api:create_order"]["p50"] == pytest.approx(0.505)
    assert summary["api:create_order"]["p99"] == pytest.approx(0.9901)
    assert summary["stage:fetch"]["p95"] == pytest.approx(0.09505)
    assert summary["cycle"]["n"] == 100
    assert [b.name for b in breaches] == ["api:create_order"] * 50  # 0.51 .. 1.00 s
    store.close()
    # a restarted daemon's tracker starts from the saved samples
    again = LatencyTracker(settings, StateStore(tmp_path / "s.db"), EventBus())
    assert again.summary() == summary
    saved = StateStore(tmp_path / "s.db", read_only=True).get_meta("latency")
    assert latency_summary(saved)["cycle"]["p50"] == pytest.approx(summary["cycle"]["p50"])


@pytest.mark.parametrize("source", ["model", "live.yaml"])
def test_operator_defaults_as_documented(source):
    # the defaults: 90 days of audit, a 45 s cycle budget, 150 ms of clock skew,
    # warnings from 80 and alerts from 90 days of key age, metrics off
    from live_bridge.config import load_live_config  # noqa: PLC0415
    from live_bridge.operator import SECRET_ALERT_DAYS, SECRET_WARN_DAYS  # noqa: PLC0415

    live = (
        LiveConfig(symbols=["BTC-USD"])
        if source == "model"
        else load_live_config(ROOT / "config" / "live.yaml")
    )
    assert live.audit.retention_days == 90
    assert live.latency.budgets_secs == {"cycle": 45.0}
    assert live.max_clock_skew_ms == 150
    assert live.metrics.port is None
    assert (SECRET_WARN_DAYS, SECRET_ALERT_DAYS) == (80, 90)
