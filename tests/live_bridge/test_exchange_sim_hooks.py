"""Test hooks of the exchange simulator: the request log and malformed-candle overrides."""

import pytest
from coinbase.rest import RESTClient

from tests.live_bridge.conftest import START_NS

S = 1_000_000_000
CANDLES = "/api/v3/brokerage/market/products/BTC-USD/candles"


@pytest.fixture(name="public_client")
def fixture_public_client(sim):
    client = RESTClient(api_key=None, api_secret=None, base_url=sim.base_url, timeout=5)
    client.session.verify = sim.ca_path
    client.session.trust_env = False
    yield client
    client.session.close()


def test_requests_seen_logs_path_and_query_in_order(sim, public_client):
    sim.clear_requests()
    start = START_NS // S
    public_client.get_unix_time()
    public_client.get_public_candles("BTC-USD", str(start), str(start + 3 * 3600), "ONE_HOUR")
    seen = sim.requests_seen()
    assert seen[0] == "GET /api/v3/brokerage/time"
    assert seen[1].startswith(f"GET {CANDLES}?")
    assert f"start={start}" in seen[1]
    assert sim.requests_seen(CANDLES) == seen[1:]
    sim.clear_requests()
    assert sim.requests_seen() == []


def test_set_candle_overrides_and_removes_wire_fields_until_reset(sim, public_client):
    start = START_NS // S
    sim.engine.set_candle("BTC-USD", start + 3600, high="1", volume=None)
    resp = public_client.get_public_candles(
        "BTC-USD", str(start), str(start + 3 * 3600), "ONE_HOUR"
    )
    by_start = {int(c.start): c.to_dict() for c in resp.candles}
    assert by_start[start + 3600]["high"] == "1"
    assert "volume" not in by_start[start + 3600]
    assert float(by_start[start]["high"]) > 1.0
    sim.engine.reset()
    resp = public_client.get_public_candles(
        "BTC-USD", str(start), str(start + 3 * 3600), "ONE_HOUR"
    )
    assert all(float(c.high) > 1.0 for c in resp.candles)
