"""Health circuit breakers: API error bursts, 429s, stale data and clock skew block new entries.

Unit tests feed real events to `HealthBreakers` with an injected monotonic clock (seconds) and
a real SQLite state file. The integration test runs an in-process LIVE daemon against the
exchange simulator (stepped venue clock, real monotonic clock for the breakers): injected 503s
trip `api_errors`, entries are dropped while exits go out, and entries flow again once the
venue has been healthy for the cooldown.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pytest

from live_bridge.config import BreakerSettings, LiveConfig
from live_bridge.daemon import LiveDaemon
from live_bridge.events import (
    ApiCall,
    BreakerChanged,
    ClockChecked,
    CycleFinished,
    Divergence,
    Event,
    EventBus,
)
from live_bridge.health import (
    BREAKERS,
    EVENTS,
    STATES,
    TRANSITIONS,
    HealthBreakers,
    next_breaker_state,
)
from live_bridge.store import StateStore
from signals.enums import Pos
from tests.live_bridge.test_daemon import (  # noqa: F401 (fixtures used by name)
    _replay,
    _step,
    fixture_market,
)
from tests.parity.conftest import (  # noqa: F401 (fixtures used by name)
    KEY_NAME,
    Venue,
    fixture_shipped_bars,
    fixture_venue,
    venue_adapter,
)


@dataclass
class FakeClock:
    """Monotonic seconds the test moves by hand."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def _live(**breakers: object) -> LiveConfig:
    return LiveConfig(breakers=BreakerSettings(**breakers))  # type: ignore[arg-type]


def _setup(tmp_path, live: LiveConfig | None = None):
    store = StateStore(tmp_path / "s.db")
    bus = EventBus()
    changes: list[BreakerChanged] = []
    bus.subscribe(lambda e: changes.append(e) if isinstance(e, BreakerChanged) else None)
    clock = FakeClock()
    breakers = HealthBreakers(live or _live(), store, bus, clock=clock)
    bus.subscribe(breakers)
    return store, bus, clock, breakers, changes


def _call(code: str, endpoint: str = "get_accounts") -> ApiCall:
    return ApiCall(endpoint=endpoint, code=code, secs=0.01, ok=code == "200")


def _cycle(
    *, skipped: bool = False, stale: tuple[str, ...] = (), age: float = 3.0
) -> CycleFinished:
    return CycleFinished(
        bar_no=7, bar_ts_ns=0, mode="LIVE", skipped=skipped, trading_state="active", secs=0.1,
        stages={}, equity_usd=1.0, cash_usd=1.0, peak_equity_usd=1.0, positions={}, orders=(),
        fills=0, reasons={}, divergences=(), bar_age_secs=age, stale_symbols=stale,
        tradable_symbols=1, breakers={}, orders_by_status={}, fills_total=0, mismatch={},
    )  # fmt: skip


def _saved(store: StateStore) -> dict:
    return StateStore(store.path, read_only=True).get_meta("breakers")


def test_transition_table_covers_every_pair_and_refuses_unknown_names():
    assert set(TRANSITIONS) == {(s, e) for s in STATES for e in EVENTS}
    assert next_breaker_state("closed", "trip") == "open"
    assert next_breaker_state("open", "trip") == "open"
    assert next_breaker_state("open", "cool") == "closed"
    with pytest.raises(ValueError, match="breaker state must be in"):
        next_breaker_state("half_open", "trip")


def test_api_errors_trip_at_the_burst_block_entries_and_persist(tmp_path, caplog):
    store, bus, clock, breakers, changes = _setup(tmp_path)
    assert set(_saved(store)) == set(BREAKERS)  # written at start: all closed
    # 4xx answers are the request's fault, 429s have their own breaker
    for code in ("404", "400", "401", "429", "200"):
        bus.emit(_call(code))
    for code in ("503", "timeout", "connection", "500"):
        clock.now += 1.0
        bus.emit(_call(code))
    assert breakers.blocking() is None
    with caplog.at_level(logging.WARNING, logger="live_bridge.health"):
        bus.emit(_call("error", "create_order"))
    reason = "5 failed API calls in 60 s (last: create_order error)"
    assert breakers.blocking() == f"breaker api_errors open: {reason}"
    assert changes == [BreakerChanged(name="api_errors", open=True, reason=reason,
                                      ts_ns=changes[0].ts_ns)]  # fmt: skip
    assert any(r.levelname == "WARNING" and reason in r.getMessage() for r in caplog.records)
    saved = _saved(store)
    assert saved["api_errors"]["open"] is True
    assert saved["api_errors"]["trips"] == 1
    assert saved["api_errors"]["reason"] == reason
    assert saved["api_errors"]["since"] is not None
    assert not any(saved[name]["open"] for name in ("rate_limit", "stale_data", "clock_skew"))


def test_failures_spread_wider_than_the_window_do_not_trip(tmp_path):
    _store, bus, clock, breakers, changes = _setup(tmp_path, _live(error_burst=3))
    for _ in range(10):
        bus.emit(_call("502"))
        clock.now += 30.0  # two per 60 s window at most
    assert breakers.blocking() is None
    assert changes == []


def test_open_breaker_closes_after_cooldown_and_a_fault_restarts_it(tmp_path, caplog):
    store, bus, clock, breakers, changes = _setup(tmp_path, _live(error_burst=2))
    bus.emit(_call("503"))
    bus.emit(_call("503"))
    assert breakers.state()["api_errors"]["open"]
    clock.now += 100.0
    bus.emit(_call("timeout"))  # still failing: the 120 s start again
    clock.now += 119.0
    assert breakers.blocking() is not None
    clock.now += 1.0
    with caplog.at_level(logging.INFO, logger="live_bridge.health"):
        assert breakers.blocking() is None  # cooled in the blocker call itself
    assert [(c.name, c.open) for c in changes] == [("api_errors", True), ("api_errors", False)]
    assert changes[-1].reason == "no fault for 120 s"
    assert any(r.levelname == "INFO" and "closed" in r.getMessage() for r in caplog.records)
    since = breakers.state()["api_errors"]["since"]
    assert _saved(store)["api_errors"] == {
        "open": False, "reason": "no fault for 120 s", "since": since, "trips": 1,
    }  # fmt: skip
    # one more failure after closing starts a fresh count; a second trips again
    bus.emit(_call("503"))
    assert breakers.blocking() is None
    bus.emit(_call("503"))
    assert breakers.state()["api_errors"]["open"]
    assert breakers.state()["api_errors"]["trips"] == 2


def test_cooling_happens_on_any_event_while_the_daemon_waits(tmp_path):
    _store, bus, clock, breakers, changes = _setup(tmp_path, _live(cooldown_secs=30.0))
    bus.emit(ClockChecked(skew_ms=400.0, rtt_ms=5.0))
    assert breakers.state()["clock_skew"]["open"]
    clock.now += 31.0
    bus.emit(ClockChecked(skew_ms=3.0, rtt_ms=5.0))  # a healthy check 31 s later
    assert [(c.name, c.open) for c in changes] == [("clock_skew", True), ("clock_skew", False)]
    assert not breakers.state()["clock_skew"]["open"]


def test_rate_limit_breaker_counts_429s_only(tmp_path):
    store, bus, _clock, breakers, _changes = _setup(tmp_path)
    for _ in range(2):
        bus.emit(_call("429", "get_candles"))
    bus.emit(_call("503"))
    assert breakers.blocking() is None
    bus.emit(_call("429", "get_candles"))
    assert breakers.blocking() == (
        "breaker rate_limit open: 3 HTTP 429 answers in 60 s (last: get_candles 429)"
    )
    assert not breakers.state()["api_errors"]["open"]
    assert _saved(store)["rate_limit"]["open"] is True


def test_stale_data_breaker_on_missing_symbols_or_an_old_bar(tmp_path):
    _store, bus, clock, breakers, changes = _setup(tmp_path)
    assert breakers.stale_bar_secs == 3600.0 + 2.0  # one ONE_HOUR bar + close_delay_secs
    bus.emit(_cycle(skipped=True, stale=("BTC-USD",)))  # a re-run of a decided bar: not fed
    bus.emit(_cycle(age=3601.0))
    assert breakers.blocking() is None
    bus.emit(_cycle(stale=("SOL-USD", "BTC-USD")))
    assert breakers.blocking() == "breaker stale_data open: bar 7 missing for SOL-USD, BTC-USD"
    clock.now += 120.0
    assert breakers.blocking() is None
    bus.emit(_cycle(age=3700.0))
    assert breakers.blocking() == (
        "breaker stale_data open: bar 7 was 3700 s old after its close (stale_bar_secs 3602)"
    )
    assert breakers.state()["stale_data"]["trips"] == 2
    assert [c.open for c in changes] == [True, False, True]


def test_configured_stale_bar_secs_replaces_the_one_bar_default(tmp_path):
    _store, bus, _clock, breakers, _changes = _setup(tmp_path, _live(stale_bar_secs=60.0))
    bus.emit(_cycle(age=59.0))
    assert breakers.blocking() is None
    bus.emit(_cycle(age=61.0))
    assert breakers.state()["stale_data"]["open"]


def test_clock_skew_breaker_beyond_max_skew_and_off_when_null(tmp_path):
    _store, bus, _clock, breakers, _changes = _setup(tmp_path)
    bus.emit(ClockChecked(skew_ms=-149.0, rtt_ms=5.0))
    assert breakers.blocking() is None
    bus.emit(ClockChecked(skew_ms=-151.0, rtt_ms=5.0))
    assert breakers.blocking() == (
        "breaker clock_skew open: venue clock differs by -151 ms, more than max_clock_skew_ms 150"
    )
    off = LiveConfig(base_url="127.0.0.1:1", max_clock_skew_ms=None)
    _s, bus_off, _c, unchecked, _ch = _setup(tmp_path / "off", off)
    bus_off.emit(ClockChecked(skew_ms=1e9, rtt_ms=5.0))
    assert unchecked.blocking() is None


def test_every_open_breaker_is_named_in_the_block_reason(tmp_path):
    _store, bus, _clock, breakers, _changes = _setup(tmp_path, _live(rate_limit_hits=1))
    bus.emit(_call("429"))
    bus.emit(ClockChecked(skew_ms=500.0, rtt_ms=5.0))
    reason = breakers.blocking()
    assert reason is not None
    assert reason.startswith("breaker rate_limit open: ")
    assert "; breaker clock_skew open: " in reason


def test_trip_counts_survive_a_restart_and_breakers_start_closed(tmp_path):
    store, bus, _clock, breakers, _changes = _setup(tmp_path, _live(rate_limit_hits=1))
    bus.emit(_call("429"))
    assert _saved(store)["rate_limit"]["open"]
    store.close()
    again = HealthBreakers(_live(), StateStore(tmp_path / "s.db"), EventBus(), clock=FakeClock())
    assert again.state()["rate_limit"]["trips"] == 1
    assert again.blocking() is None
    assert _saved(store)["rate_limit"]["open"] is False  # the new run's state, not the old one


# --- the daemon -----------------------------------------------------------------------------

ACCOUNTS_PATH = "/api/v3/brokerage/accounts"
COOLDOWN_SECS = 2.0
"""Real seconds; one cycle (a fault, then the decision) takes well under it."""


def _daemon_with_breakers(venue: Venue, tmp_path, market) -> tuple[LiveDaemon, HealthBreakers]:
    """A LIVE daemon as `make_daemon` builds it, emitting on a bus `HealthBreakers` watches."""
    live = LiveConfig(
        mode="LIVE", read_only=False, symbols=list(market["panel"].symbols),
        state_path=str(tmp_path / "s.db"), base_url=venue.server.base_url,
        ca_path=str(venue.server.ca_path), timeout_secs=5.0, max_retries=4,
        max_quote_age_seconds=60.0, min_book_depth_usd=1_000.0,
        max_clock_skew_ms=None,  # the venue's clock is the data's (stepped)
        breakers=BreakerSettings(error_burst=3, cooldown_secs=COOLDOWN_SECS),
    )  # fmt: skip
    adapter = venue_adapter(venue, live)
    bus = EventBus()
    store = StateStore(live.state_path)
    breakers = HealthBreakers(live, store, bus)
    bus.subscribe(breakers)
    adapter.on_request = lambda e, c, s, ok: bus.emit(ApiCall(endpoint=e, code=c, secs=s, ok=ok))
    daemon = LiveDaemon(market["config"], live, adapter, store, now_ns=venue.clock.now_ns,
                        events=bus)  # fmt: skip
    daemon.entry_blockers.append(breakers.blocking)
    return daemon, breakers


@pytest.mark.integration
def test_api_error_burst_blocks_entries_not_exits_until_healthy(venue: Venue, tmp_path, market):
    daemon, breakers = _daemon_with_breakers(venue, tmp_path, market)
    seen: list[Event] = []
    daemon.events.subscribe(seen.append)
    # the shipped data's backtest holds 5 positions at offset 100 and exits 3 of them by 136
    _replay(venue, market, daemon, 0, 100)
    assert (daemon.positions[:, Pos.Qty] > 0).sum() == 5
    assert breakers.blocking() is None
    # three 503s on the reconciliation's balance read, retried to success: the burst
    venue.faults.server_error(3, 503, path_prefix=ACCOUNTS_PATH)
    entries_blocked = exits_sent = 0
    for offset in range(100, 170):
        start = len(seen)
        result = _step(venue, market, daemon, offset)
        if offset == 100:
            assert [e.code for e in seen[start:] if isinstance(e, ApiCall)].count("503") == 3
            opened = [e for e in seen[start:] if isinstance(e, BreakerChanged)]
            assert [(e.name, e.open) for e in opened] == [("api_errors", True)]
        assert breakers.state()["api_errors"]["open"]
        sent = [o for o in result.orders if o.status != "skipped"]
        assert all(o.side == -1 for o in sent), f"an entry was sent at offset {offset}"
        exits_sent += len(sent)
        blocked = [e for e in seen[start:] if isinstance(e, Divergence)
                   and e.kind == "entry_blocked"]  # fmt: skip
        assert all("breaker api_errors open: 3 failed API calls" in e.text for e in blocked)
        assert len(blocked) == sum("entry not sent" in d for d in result.divergences)
        entries_blocked += len(blocked)
        # the venue keeps failing now and then: one 503 a cycle keeps the breaker open
        venue.faults.server_error(1, 503, path_prefix=ACCOUNTS_PATH)
    assert entries_blocked > 0
    assert exits_sent > 0
    # the venue is healthy again: after the cooldown the breaker closes and entries go out
    time.sleep(COOLDOWN_SECS + 0.1)
    assert breakers.blocking() is None
    assert [(e.name, e.open) for e in seen if isinstance(e, BreakerChanged)] == [
        ("api_errors", True), ("api_errors", False)
    ]  # fmt: skip
    entries_sent = 0
    for offset in range(170, 260):
        result = _step(venue, market, daemon, offset)
        assert not any("entry not sent" in d for d in result.divergences)
        entries_sent += sum(o.side == 1 and o.status != "skipped" for o in result.orders)
        if entries_sent:
            break
    assert entries_sent > 0
    saved = StateStore(daemon.store.path, read_only=True).get_meta("breakers")
    assert saved["api_errors"]["trips"] == 1
    assert saved["api_errors"]["open"] is False
    daemon.store.close()
    daemon.adapter.close()
