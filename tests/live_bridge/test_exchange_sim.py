"""The exchange simulator itself: clocks, engine rules, raw HTTP behaviour, faults, CLI."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import requests
from coinbase.rest import RESTClient

from live_bridge.cli import main
from live_bridge.exchange_sim import (
    ExchangeEngine,
    ExchangeServer,
    FaultPlan,
    RealtimeClock,
    SteppedClock,
)
from live_bridge.exchange_sim.engine import rfc3339
from signals.errors import DataError
from tests.live_bridge.conftest import HOUR_NS, N_BARS, START_NS, T0_NS, make_key

PREFIX = "/api/v3/brokerage"
S = 1_000_000_000


@pytest.fixture(name="http")
def fixture_http(sim):
    with requests.Session() as session:
        session.verify = sim.ca_path
        session.trust_env = False
        yield session


@pytest.fixture(name="client")
def fixture_client(sim, api_key):
    client = RESTClient(
        api_key=api_key.name,
        api_secret=api_key.private_pem,
        base_url=sim.base_url,
        timeout=5,
        rate_limit_headers=True,
    )
    client.session.verify = sim.ca_path
    client.session.trust_env = False
    yield client
    client.session.close()


# --- clocks -----------------------------------------------------------------------------------


def test_stepped_clock():
    clock = SteppedClock(10)
    clock.advance_to(20)
    clock.advance(5)
    assert clock.now_ns() == 25
    with pytest.raises(ValueError, match="was 5"):
        clock.advance_to(5)
    clock.set(5)
    assert clock.now_ns() == 5


def test_realtime_clock_accelerated():
    real = [100.0]
    clock = RealtimeClock(1_000 * S, speed=60.0, monotonic=lambda: real[0])
    real[0] += 2.0
    assert clock.now_ns() == 1_120 * S
    clock.set(0)
    real[0] += 1.0
    assert clock.now_ns() == 60 * S
    with pytest.raises(ValueError, match="speed"):
        RealtimeClock(0, speed=0)


# --- engine -----------------------------------------------------------------------------------


def test_engine_infers_duration_and_prices(bars):
    clock = SteppedClock(T0_NS + HOUR_NS // 3)
    engine = ExchangeEngine(bars, clock)
    assert engine.bar_duration_ns == HOUR_NS
    row = bars.row(
        by_predicate=(pl.col("symbol") == "BTC-USD") & (pl.col("ts").dt.epoch("ns") == T0_NS),
        named=True,
    )
    assert engine.current_price("BTC-USD") == row["open"]
    clock.set(START_NS + (N_BARS + 5) * HOUR_NS)  # after the data: last close
    assert engine.current_price("BTC-USD") == bars.filter(bars["symbol"] == "BTC-USD")["close"][-1]
    clock.set(START_NS - 1)
    assert engine.current_price("BTC-USD") is None


def test_engine_rejects_bad_frames(bars):
    with pytest.raises(DataError, match="columns"):
        ExchangeEngine(bars.drop("volume"), SteppedClock(0))
    with pytest.raises(DataError, match="unique"):
        ExchangeEngine(bars.vstack(bars.head(1)), SteppedClock(0))


def test_engine_direct_orders_fees_and_balances(bars):
    clock = SteppedClock(T0_NS)
    engine = ExchangeEngine(bars, clock, balances={"USD": 10_000.0}, taker_fee_rate=0.01)
    body = {
        "client_order_id": "a",
        "product_id": "SOL-USD",
        "side": "BUY",
        "order_configuration": {"market_market_ioc": {"base_size": "10"}},
    }
    resp = engine.create_order(body)
    assert resp["success"]
    (fill,) = engine.fills()
    price = float(fill["price"])
    assert float(fill["commission"]) == pytest.approx(10 * price * 0.01)
    assert engine.balances()["SOL"] == 10.0
    assert engine.balances()["USD"] == pytest.approx(10_000 - 10 * price * 1.01)
    assert engine.fees_paid() == pytest.approx(10 * price * 0.01)
    assert engine.orders()[0]["status"] == "FILLED"
    # precision and minimum checks are rejections, not rounding
    bad = dict(body, client_order_id="b")
    bad["order_configuration"] = {"market_market_ioc": {"base_size": "0.000000001"}}
    assert engine.create_order(bad)["error_response"]["error"] == "INVALID_SIZE_PRECISION"
    engine.set_product("SOL-USD", quote_min_size="1000000")
    small = dict(body, client_order_id="c")
    assert engine.create_order(small)["error_response"]["preview_failure_reason"] == (
        "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"
    )
    engine.reset()
    assert engine.orders() == []
    assert engine.balances()["USD"] == 10_000.0


def test_engine_limit_only_product_refuses_market(bars):
    engine = ExchangeEngine(bars, SteppedClock(T0_NS), products={"BTC-USD": {"limit_only": True}})
    resp = engine.create_order(
        {
            "client_order_id": "m",
            "product_id": "BTC-USD",
            "side": "BUY",
            "order_configuration": {"market_market_ioc": {"quote_size": "10"}},
        }
    )
    assert resp["error_response"]["error"] == "UNSUPPORTED_ORDER_CONFIGURATION"


# --- resting limit orders: the bar they are judged on ----------------------------------------

# four hourly BTC-USD bars from START_NS: bar 0 dips to 90, bar 1 trades 98..102, bars 2-3 are
# quiet (100.5..101.5); open, high, low, close
GOLDEN_OHLC = [
    (100.0, 101.0, 90.0, 100.0),
    (100.0, 102.0, 98.0, 101.0),
    (101.0, 101.5, 100.5, 101.0),
    (101.0, 101.5, 100.5, 101.0),
]
BAR1_NS = START_NS + HOUR_NS


def _golden_engine(clock: SteppedClock, **kwargs) -> ExchangeEngine:
    frame = pl.DataFrame(
        {
            "ts": [START_NS + i * HOUR_NS for i in range(len(GOLDEN_OHLC))],
            "symbol": "BTC-USD",
            "open": [b[0] for b in GOLDEN_OHLC],
            "high": [b[1] for b in GOLDEN_OHLC],
            "low": [b[2] for b in GOLDEN_OHLC],
            "close": [b[3] for b in GOLDEN_OHLC],
            "volume": 10.0,
        }
    ).with_columns(pl.from_epoch("ts", time_unit="ns").dt.replace_time_zone("UTC"))
    balances = {"USD": 10_000.0, "BTC": 10.0}
    return ExchangeEngine(frame, clock, balances=balances, **kwargs)


def _rest(engine: ExchangeEngine, cid: str, side: str, limit: str, size: str = "1") -> str:
    resp = engine.create_order(
        {
            "client_order_id": cid,
            "product_id": "BTC-USD",
            "side": side,
            "order_configuration": {
                "limit_limit_gtc": {"base_size": size, "limit_price": limit, "post_only": True}
            },
        }
    )
    assert resp["success"], resp
    return str(resp["order_id"])


@pytest.mark.parametrize("offset_secs", [0, 2, 59 * 60])
@pytest.mark.parametrize(
    ("side", "limit", "fills"),
    [
        ("BUY", "98.5", True),  # low 98 < 98.5
        ("BUY", "98", False),  # a touch is not a trade-through (fill_order_nb: lo < limit)
        ("BUY", "97", False),
        ("SELL", "101.5", True),  # high 102 > 101.5
        ("SELL", "102", False),  # touch
    ],
)
def test_engine_resting_limit_placed_inside_bar_judged_on_that_bar(offset_secs, side, limit, fills):
    clock = SteppedClock(BAR1_NS + offset_secs * S)
    engine = _golden_engine(clock)
    order_id = _rest(engine, "r", side, limit)
    clock.set(BAR1_NS + HOUR_NS - 1)  # bar 1 not closed yet: nothing known about its range
    assert engine.fills() == []
    clock.set(BAR1_NS + HOUR_NS)
    fills_now = engine.fills()
    assert len(fills_now) == int(fills)
    if fills:
        (fill,) = fills_now
        assert (fill["order_id"], fill["price"], fill["size"]) == (order_id, limit, "1")
        assert fill["liquidity_indicator"] == "MAKER"
        assert fill["trade_time"] == rfc3339(BAR1_NS + HOUR_NS)
        assert engine.get_order(order_id)["status"] == "FILLED"
    else:
        assert engine.get_order(order_id)["status"] == "OPEN"


@pytest.mark.parametrize("offset_ns", [0, 2 * S])
def test_engine_resting_limit_bar_closed_before_creation_not_used(offset_ns):
    # bar 0's low (90) trades through 95, but bar 0 closed at bar 1's open, before creation
    clock = SteppedClock(BAR1_NS + offset_ns)
    engine = _golden_engine(clock)
    order_id = _rest(engine, "late", "BUY", "95")
    clock.set(START_NS + len(GOLDEN_OHLC) * HOUR_NS)
    assert engine.process() == 0
    assert engine.fills() == []
    assert engine.get_order(order_id)["status"] == "OPEN"


def test_engine_resting_limit_placed_in_last_ns_of_bar_judged_on_that_bar():
    clock = SteppedClock(BAR1_NS - 1)  # still inside bar 0
    engine = _golden_engine(clock)
    order_id = _rest(engine, "edge", "BUY", "95")
    clock.set(BAR1_NS)
    (fill,) = engine.fills()
    assert (fill["order_id"], fill["trade_time"]) == (order_id, rfc3339(BAR1_NS))


def _sell_body(cid: str, spec: dict) -> dict:
    return {"client_order_id": cid, "product_id": "BTC-USD", "side": "SELL",
            "order_configuration": spec}  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "slippage_bps"),
    [
        # 0.0099 x 100 (the open of bar 1) = 0.99 USD
        ({"market_market_ioc": {"base_size": "0.0099"}}, 0.0),
        # 0.01 x 100 x (1 - 20 bps) = 0.998 USD: the notional is taken at the fill price
        ({"market_market_ioc": {"base_size": "0.01"}}, 20.0),
        # 0.0099 x 101 = 0.9999 USD at the limit
        ({"limit_limit_gtc": {"base_size": "0.0099", "limit_price": "101", "post_only": True}},
         0.0),
    ],
)  # fmt: skip
def test_engine_sell_under_quote_min_size_refused_on_create_and_preview(spec, slippage_bps):
    # Coinbase refuses a sell under `quote_min_size` as it does a buy (issue 14: 16.9 DOGE
    # sold for 0.99 USD): HTTP 200, success false, nothing stored, no balance moved
    engine = _golden_engine(SteppedClock(BAR1_NS + 2 * S), slippage_bps=slippage_bps)
    before = engine.balances()
    preview = engine.preview_order(_sell_body("p", spec))
    assert preview["errs"] == ["PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"]
    resp = engine.create_order(_sell_body("c", spec))
    assert resp["success"] is False
    assert resp["error_response"]["error"] == "UNKNOWN_FAILURE_REASON"
    assert resp["error_response"]["preview_failure_reason"] == (
        "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"
    )
    assert (engine.orders(), engine.fills(), engine.balances()) == ([], [], before)
    # over the minimum it fills (0.0101 x 99.8 = 1.008 USD with the slippage)
    ok = _sell_body("ok", {"market_market_ioc": {"base_size": "0.0101"}})
    assert engine.preview_order(ok)["errs"] == []
    assert engine.create_order(ok)["success"]
    (fill,) = engine.fills()
    assert fill["size"] == "0.0101"


@pytest.mark.parametrize(("fraction", "first_size"), [(0.5, "1"), (0.7, "0.7")])
def test_engine_partial_fill_below_minimum_notional_fills_whole(fraction, first_size):
    # as fill_order_nb: a part fills alone only when its notional after the maker fee clears
    # the minimum (0.5 * 98.5 * 0.996 = 49.05 < 60 <= 68.67 = 0.7 * 98.5 * 0.996)
    clock = SteppedClock(BAR1_NS + 2 * S)
    engine = _golden_engine(
        clock, products={"BTC-USD": {"quote_min_size": "60"}}, partial_fill_fraction=fraction
    )
    _rest(engine, "p", "BUY", "98.5")
    clock.set(BAR1_NS + HOUR_NS)
    (fill,) = engine.fills()
    assert fill["size"] == first_size


# --- HTTP surface -----------------------------------------------------------------------------


def test_candles_350_limit_and_closed_bars(client, clock):
    clock.set(T0_NS + HOUR_NS // 2)
    start = START_NS // S
    resp = client.get_candles("BTC-USD", str(start), str(start + 350 * 3600), "ONE_HOUR")
    assert len(resp.candles) == 100  # bars 0..99 closed; bar 100 in progress
    assert int(resp.candles[0].start) == (T0_NS - HOUR_NS) // S  # newest first
    with pytest.raises(requests.HTTPError) as info:
        client.get_candles("BTC-USD", str(start), str(start + 351 * 3600), "ONE_HOUR")
    assert info.value.response.status_code == 400
    assert "INVALID_ARGUMENT" in info.value.response.text
    assert "less than 350" in info.value.response.text
    with pytest.raises(requests.HTTPError):
        client.get_candles("BTC-USD", str(start), str(start + 3600), "ONE_MINUTE")


def test_candles_aggregate_coarser_granularity(client, clock, bars):
    clock.set(START_NS + 8 * HOUR_NS)
    start = START_NS // S
    resp = client.get_public_candles("ETH-USD", str(start), str(start + 8 * 3600), "FOUR_HOUR")
    first4 = bars.filter(bars["symbol"] == "ETH-USD").head(4)
    oldest = resp.candles[-1]
    assert len(resp.candles) == 2
    assert float(oldest.open) == first4["open"][0]
    assert float(oldest.close) == first4["close"][3]
    assert float(oldest.high) == first4["high"].max()
    assert float(oldest.volume) == pytest.approx(first4["volume"].sum())


def test_private_endpoint_needs_a_valid_jwt(sim, http, client):
    resp = http.get(f"{sim.url}{PREFIX}/accounts")
    assert resp.status_code == 401
    assert resp.text == "Unauthorized"
    resp = http.get(f"{sim.url}{PREFIX}/accounts", headers={"Authorization": "Bearer x.y.z"})
    assert resp.status_code == 401
    assert http.get(f"{sim.url}{PREFIX}/time").status_code == 200
    assert http.get(f"{sim.url}{PREFIX}/market/products/BTC-USD").json()["status"] == "online"
    # a token signed for another path is refused
    other = make_key("organizations/x/apiKeys/other")
    sim.register_api_key(other.name, other.public_pem)
    from coinbase import jwt_generator

    token = jwt_generator.build_rest_jwt(
        f"GET {sim.base_url}{PREFIX}/orders/historical/batch", other.name, other.private_pem
    )
    resp = http.get(f"{sim.url}{PREFIX}/accounts", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
    assert client.get_accounts().size == 4


def test_unknown_product_is_404(client):
    with pytest.raises(requests.HTTPError) as info:
        client.get_product("NOPE-USD")
    assert info.value.response.status_code == 404
    assert "Product NOPE-USD not supported" in info.value.response.text


def test_rate_limit_header_is_lowercase(sim, http, client):
    sim.faults.rate_limit(1, retry_after_secs=2)
    resp = http.get(f"{sim.url}{PREFIX}/time")
    assert resp.status_code == 429
    assert dict(resp.headers)["retry-after"] == "2"
    assert client.get_accounts()["rate_limit_limit"] == "30"


def test_list_orders_filters_and_pages(client, sim):
    price = sim.engine.current_price("BTC-USD")
    for i in range(3):
        client.limit_order_gtc_buy(
            f"l{i}", "BTC-USD", "0.001", f"{price * 0.9:.2f}", post_only=True
        )
    client.market_order_buy("m0", "ETH-USD", quote_size="10")
    opened = client.list_orders(order_status=["OPEN"], product_ids=["BTC-USD"], limit=2)
    assert len(opened.orders) == 2
    assert opened.has_next
    rest = client.list_orders(order_status=["OPEN"], product_ids=["BTC-USD"], cursor=opened.cursor)
    assert len(rest.orders) == 1
    filled = client.list_orders(order_status=["FILLED"])
    assert [o.client_order_id for o in filled.orders] == ["m0"]
    cancel = client.cancel_orders([o.order_id for o in opened.orders])
    assert all(r["success"] for r in cancel.to_dict()["results"])


def test_admin_endpoints_move_clock_and_set_faults(sim, http, clock):
    resp = http.post(f"{sim.url}/sim/clock", json={"ts": (T0_NS + HOUR_NS) // S})
    assert resp.status_code == 200
    assert clock.now_ns() == T0_NS + HOUR_NS
    resp = http.post(f"{sim.url}/sim/faults", json={"server_error": {"n": 1, "status": 500}})
    assert resp.json() == {"pending": 1}
    assert http.get(f"{sim.url}{PREFIX}/time").status_code == 500
    assert http.get(f"{sim.url}{PREFIX}/time").status_code == 200
    assert http.post(f"{sim.url}/sim/faults", json={"bogus": 1}).status_code == 400
    resp = http.post(f"{sim.url}/sim/products", json={"symbol": "SOL-USD", "status": "offline"})
    assert resp.json()["status"] == "offline"
    assert http.get(f"{sim.url}/sim/state").json()["orders"] == 0


def test_fault_plan_consumes_in_order():
    faults = FaultPlan()
    faults.drop(1, path_prefix="/a")
    faults.server_error(1)
    assert faults.next_fault("/b").kind == "server_error"
    assert faults.next_fault("/b") is None
    assert faults.next_fault("/a/x").kind == "drop"
    assert faults.pending() == 0
    with pytest.raises(ValueError, match="status"):
        faults.server_error(1, status=404)


def test_fault_plan_configure_commit_then_fail_and_unauthorized():
    faults = FaultPlan()
    faults.configure(
        {
            "commit_then_fail": {
                "n": 1,
                "mode": "server_error",
                "status": 502,
                "path_prefix": f"{PREFIX}/orders",
            },
            "unauthorized": {"n": 1, "path_prefix": f"{PREFIX}/accounts"},
        }
    )
    assert faults.pending() == 2
    assert faults.next_fault(f"{PREFIX}/time") is None
    hit = faults.next_fault(f"{PREFIX}/orders")
    assert (hit.kind, hit.mode, hit.status) == ("commit_then_fail", "server_error", 502)
    hit = faults.next_fault(f"{PREFIX}/accounts")
    assert (hit.kind, hit.status) == ("unauthorized", 401)
    faults.configure({"commit_then_fail": {"n": 1}})
    hit = faults.next_fault("/x")
    assert (hit.kind, hit.mode) == ("commit_then_fail", "drop")
    with pytest.raises(ValueError, match="`mode`"):
        faults.commit_then_fail(1, mode="lose")
    with pytest.raises(ValueError, match="`status`"):
        faults.commit_then_fail(1, mode="server_error", status=404)


@pytest.mark.parametrize("mode", ["drop", "server_error"])
def test_commit_then_fail_create_leaves_order_and_retry_returns_it(client, sim, mode):
    sim.faults.commit_then_fail(1, mode=mode, status=503, path_prefix=f"{PREFIX}/orders")
    price = sim.engine.current_price("BTC-USD")
    limit = f"{price * 0.9:.2f}"
    lost = requests.ConnectionError if mode == "drop" else requests.HTTPError
    with pytest.raises(lost) as info:
        client.limit_order_gtc_buy("ctf-1", "BTC-USD", "0.001", limit, post_only=True)
    if mode == "server_error":
        assert info.value.response.status_code == 503
    (order,) = sim.engine.orders()  # the create was committed before the answer was lost
    assert (order["client_order_id"], order["status"]) == ("ctf-1", "OPEN")
    assert sim.engine.holds()["USD"] > 0
    assert sim.faults.pending() == 0
    again = client.limit_order_gtc_buy("ctf-1", "BTC-USD", "0.001", limit, post_only=True)
    assert again.success
    assert again.success_response["order_id"] == order["order_id"]
    assert len(sim.engine.orders()) == 1


def test_unauthorized_fault_answers_401_text(sim, http, client):
    sim.faults.unauthorized(1, path_prefix=f"{PREFIX}/accounts")
    assert client.get_unix_time().epoch_seconds  # other paths are not hit
    with pytest.raises(requests.HTTPError) as info:
        client.get_accounts()
    assert info.value.response.status_code == 401
    assert info.value.response.text == "Unauthorized"
    assert info.value.response.headers["Content-Type"] == "text/plain"
    assert client.get_accounts().size == 4
    http.post(f"{sim.url}/sim/faults", json={"unauthorized": {"n": 1}})
    resp = http.get(f"{sim.url}{PREFIX}/time")
    assert (resp.status_code, resp.text) == (401, "Unauthorized")


def test_sim_state_reports_clock_and_is_never_faulted(sim, http):
    sim.faults.unauthorized(1)
    sim.faults.commit_then_fail(1, mode="drop")
    for _ in range(2):
        state = http.get(f"{sim.url}/sim/state").json()
        assert (state["clock"], state["speed"]) == ("stepped", 0.0)
        assert state["pending_faults"] == 2


def test_sim_state_reports_realtime_clock_speed(bars):
    engine = ExchangeEngine(bars, RealtimeClock(T0_NS, speed=60.0))
    with ExchangeServer(engine, tls=False) as server, requests.Session() as s:
        s.trust_env = False
        state = s.get(f"{server.url}/sim/state").json()
    assert (state["clock"], state["speed"]) == ("realtime", 60.0)


def test_plain_http_server(bars):
    engine = ExchangeEngine(bars, SteppedClock(T0_NS))
    with ExchangeServer(engine, tls=False) as server:
        assert server.ca_path is None
        with requests.Session() as s:
            s.trust_env = False
            assert s.get(f"{server.url}{PREFIX}/time").json()["epochSeconds"] == str(T0_NS // S)
    with pytest.raises(ValueError, match="ws_port"):
        ExchangeServer(engine, ws_port=1)


# --- CLI --------------------------------------------------------------------------------------


def test_cli_bad_input_exits_2(tmp_path, capsys):
    assert main(["exchange-sim", "--data", str(tmp_path / "missing.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert main(["exchange-sim"]) == 2
    assert main(["no-such-command"]) == 2


def test_cli_serves_until_interrupted(tmp_path, bars, api_key):
    data = tmp_path / "bars.parquet"
    bars.write_parquet(data)
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps({"name": api_key.name, "publicKey": api_key.public_pem}))
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "live_bridge.cli",
            "exchange-sim",
            "--data",
            str(data),
            "--port",
            "0",
            "--start",
            "2024-01-05T04:00:00",
            "--api-key-file",
            str(key_file),
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = proc.stdout.readline().split()[1]
        ca_path = proc.stdout.readline().split()[1]
        client = RESTClient(
            api_key=api_key.name, api_secret=api_key.private_pem, base_url=base_url, timeout=5
        )
        client.session.verify = ca_path
        client.session.trust_env = False
        assert int(client.get_unix_time().epoch_seconds) == T0_NS // S
        assert client.get_accounts().size == 4
        client.session.close()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
