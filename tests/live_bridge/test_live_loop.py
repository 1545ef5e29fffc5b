"""The daemon's waiting loop pieces: venue clock estimate, jitter bounds and freshness, config."""

import pytest

from live_bridge.config import LiveConfig
from live_bridge.daemon import VenueClock
from signals.config import parse_model
from signals.errors import ConfigError
from tests.parity.conftest import (  # noqa: F401 (fixtures used by name)
    fixture_shipped_bars,
    fixture_venue,
    make_daemon,
    parity_config,
)

HOUR_NS = 3600 * 1_000_000_000


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_venue_clock_estimates_accelerated_time_between_reads():
    real = FakeMonotonic()
    venue = [1_000 * HOUR_NS]
    clock = VenueClock(lambda: venue[0], speed=3600.0, monotonic=real)
    assert clock.sync() == 1_000 * HOUR_NS
    real.t += 0.5  # half a real second is half an hour of venue time
    assert clock.estimate_ns() == 1_000 * HOUR_NS + HOUR_NS // 2
    # the next bar closes in 0.5 venue hours: 0.5 real seconds at 3600x
    assert clock.real_secs_until(1_001 * HOUR_NS) == pytest.approx(0.5)
    venue[0] = 1_001 * HOUR_NS
    clock.sync()
    assert clock.real_secs_until(1_001 * HOUR_NS) == 0.0


def test_venue_clock_real_time_for_coinbase():
    real = FakeMonotonic()
    clock = VenueClock(lambda: 0, speed=1.0, monotonic=real)
    clock.sync()
    assert clock.real_secs_until(30 * 1_000_000_000) == pytest.approx(30.0)
    assert clock.since_sync_secs() == 0.0


@pytest.mark.parametrize("value", [-1, 10.5, 50])
def test_live_config_jitter_pct_bounded_as_documented(value):
    with pytest.raises(ConfigError, match="jitter_pct"):
        parse_model(LiveConfig, {"jitter_pct": value}, "live.yaml")


@pytest.mark.parametrize(
    ("symbols", "reason"),
    [(["BTC-USD", "btc-usd"], "twice"), ([], "at least one"), (["!!??"], "symbol")],
)
def test_live_config_symbols_canonical_unique(symbols, reason):
    with pytest.raises(ConfigError, match=reason):
        parse_model(LiveConfig, {"symbols": symbols}, "live.yaml")


def test_live_config_symbols_normalised():
    assert LiveConfig(symbols=["xbt/usd", "eth-usd"]).symbols == ["BTC-USD", "ETH-USD"]


def test_live_config_poll_interval_at_most_3s_for_the_kill_switch():
    with pytest.raises(ConfigError, match="poll_interval_secs"):
        parse_model(LiveConfig, {"poll_interval_secs": 5}, "live.yaml")


@pytest.mark.integration
def test_jitter_is_fresh_per_daemon_start_not_a_seeded_replay(venue, tmp_path):
    # two starts with the same config and seed draw different waits after a close
    config = parity_config()
    draws = []
    for k in range(2):
        daemon = make_daemon(venue, tmp_path / str(k), config, ("BTC-USD", "ETH-USD"))
        daemon.live = daemon.live.model_copy(update={"jitter_pct": 10.0, "close_delay_secs": 0})
        draws.append([daemon._due_ns(5) - 6 * HOUR_NS for _ in range(5)])
        daemon.store.close()
        daemon.adapter.close()
    assert draws[0] != draws[1]
    assert all(0 <= x <= HOUR_NS // 10 for row in draws for x in row)
