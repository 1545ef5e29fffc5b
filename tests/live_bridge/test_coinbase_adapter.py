"""The adapter against the exchange simulator through the real coinbase-advanced-py SDK."""

import logging
import time

import polars as pl
import pytest
import requests
from polars.testing import assert_frame_equal

from live_bridge.coinbase import (
    CoinbaseAdapter,
    CoinbaseCredentials,
    format_increment,
    parse_rfc3339_ns,
    product_status_code,
)
from live_bridge.errors import ExchangeError, OrderRejectedError, TransientExchangeError
from signals.enums import ProductStatus, Side
from signals.errors import ConfigError
from tests.live_bridge.conftest import (
    HOUR_NS,
    N_BARS,
    START_NS,
    T0_NS,
    build_adapter,
    make_key,
)


def bar(bars: pl.DataFrame, symbol: str, ts_ns: int) -> dict:
    row = bars.filter(
        (pl.col("symbol") == symbol) & (pl.col("ts").dt.epoch("ns") == ts_ns)
    ).to_dicts()
    assert len(row) == 1
    return row[0]


# --- credentials ------------------------------------------------------------------------------


def test_credentials_from_env_prefers_coinbase_names_and_hides_secret():
    env = {"COINBASE_API_KEY": "k1", "COINBASE_API_SECRET": "s3cret", "CB_API_KEY": "k2"}
    creds = CoinbaseCredentials.from_env(env)
    assert creds.api_key == "k1"
    assert "s3cret" not in repr(creds)
    assert "s3cret" not in str(creds)
    assert creds.api_secret.get_secret_value() == "s3cret"
    assert CoinbaseCredentials.from_env({"CB_API_KEY": "k", "CB_API_SECRET": "s"}).api_key == "k"


def test_credentials_missing_names_the_variables():
    with pytest.raises(ConfigError, match="COINBASE_API_KEY.*CB_API_SECRET"):
        CoinbaseCredentials.from_env({"COINBASE_API_KEY": "only-the-key"})


# --- market data ------------------------------------------------------------------------------


def test_server_time_is_the_simulator_clock(adapter, clock):
    assert adapter.server_time_ns() == T0_NS
    clock.set(T0_NS + 1_500_000_000)
    assert adapter.server_time_ns() == T0_NS + 1_500_000_000


def test_products_metadata_and_status(adapter):
    products = adapter.products()
    assert sorted(products) == ["BTC-USD", "ETH-USD", "SOL-USD"]
    btc = products["BTC-USD"]
    assert btc.base_increment == 1e-8
    assert btc.quote_increment == 0.01
    assert btc.quote_min_size == 1.0
    assert btc.status == ProductStatus.Online


def test_products_cache_and_cancel_only(sim, api_key, sleeps):
    now = [0.0]
    with build_adapter(sim, api_key, sleeps, monotonic=lambda: now[0]) as adapter:
        assert adapter.products()["ETH-USD"].status == ProductStatus.Online
        sim.engine.set_product_status("ETH-USD", "cancel_only")
        assert adapter.products()["ETH-USD"].status == ProductStatus.Online  # cached
        now[0] = 301.0
        assert adapter.products()["ETH-USD"].status == ProductStatus.CancelOnly
        sim.engine.set_product_status("ETH-USD", "offline")
        assert adapter.products(refresh=True)["ETH-USD"].status == ProductStatus.Offline
        sim.engine.set_product_status("ETH-USD", "auction_of_sorts")
        assert adapter.products(refresh=True)["ETH-USD"].status == ProductStatus.Unknown
        sim.engine.set_product_status("ETH-USD", "cancel_only")
        with pytest.raises(OrderRejectedError) as info:
            adapter.place_market("c-eth", "ETH-USD", Side.Sell, base_size="1")
        assert info.value.code == "ORDER_ENTRY_DISABLED"


def test_product_status_mapping():
    assert product_status_code({"status": "online"}) == ProductStatus.Online
    assert product_status_code({"status": "online", "limit_only": True}) == ProductStatus.LimitOnly
    assert product_status_code({"status": "online", "post_only": True}) == ProductStatus.PostOnly
    assert product_status_code({"status": "delisted"}) == ProductStatus.Offline
    assert product_status_code({"status": "???"}) == ProductStatus.Unknown


def test_candles_only_closed_bars_in_bar_schema(adapter, clock, bars):
    clock.set(T0_NS + HOUR_NS // 2)  # bar 100 is in progress
    got = adapter.candles("BTC-USD", START_NS + 90 * HOUR_NS, T0_NS + 5 * HOUR_NS)
    want = bars.filter(
        (pl.col("symbol") == "BTC-USD")
        & (pl.col("ts").dt.epoch("ns") >= START_NS + 90 * HOUR_NS)
        & (pl.col("ts").dt.epoch("ns") < T0_NS)
    )
    assert got.height == 10
    assert_frame_equal(got, want)


def test_candles_chunked_over_the_350_limit(adapter, clock, bars):
    clock.set(START_NS + N_BARS * HOUR_NS)  # every bar closed
    seen = []
    orig = adapter._client.get_candles

    def spy(*args, **kwargs):
        seen.append(args)
        return orig(*args, **kwargs)

    adapter._client.get_candles = spy
    got = adapter.candles("ETH-USD", START_NS - 500 * HOUR_NS, START_NS + N_BARS * HOUR_NS)
    assert len(seen) == 2  # 700 hours in chunks of 350
    assert got.height == N_BARS
    assert got["ts"].is_sorted()
    assert_frame_equal(got, bars.filter(pl.col("symbol") == "ETH-USD"))


def test_candles_small_chunks(adapter, clock, bars):
    clock.set(START_NS + N_BARS * HOUR_NS)
    adapter.candles_per_request = 30
    got = adapter.candles("SOL-USD", START_NS, START_NS + N_BARS * HOUR_NS)
    assert_frame_equal(got, bars.filter(pl.col("symbol") == "SOL-USD"))


def test_best_bid_ask_and_book_depth(adapter, sim, clock):
    price = sim.engine.current_price("BTC-USD")
    quotes = adapter.best_bid_ask(["BTC-USD", "ETH-USD"])
    q = quotes["BTC-USD"]
    assert q.bid < price < q.ask
    assert (q.ask - q.bid) / price < 5e-4
    assert q.ts_ns == T0_NS
    bid_usd, ask_usd = adapter.book_depth_usd("BTC-USD", within_bps=20.0)
    assert 100_000 < bid_usd < 1_000_000
    assert 100_000 < ask_usd < 1_000_000
    near_bid, near_ask = adapter.book_depth_usd("BTC-USD", within_bps=1.5)
    assert 0 < near_bid < bid_usd
    assert 0 < near_ask < ask_usd


def test_stale_quotes(adapter, sim):
    sim.faults.stale_quotes(True, age_secs=600)
    assert adapter.best_bid_ask(["SOL-USD"])["SOL-USD"].ts_ns == T0_NS - 600 * 1_000_000_000
    sim.faults.stale_quotes(False)
    assert adapter.best_bid_ask(["SOL-USD"])["SOL-USD"].ts_ns == T0_NS


# --- account ----------------------------------------------------------------------------------


def test_balances_and_fee_tier(adapter):
    assert adapter.balances() == {"BTC": 0.0, "ETH": 5.0, "SOL": 0.0, "USD": 100_000.0}
    assert adapter.fee_rates() == (0.004, 0.006)


# --- orders -----------------------------------------------------------------------------------


def test_market_buy_fill_price_and_taker_fee(adapter, sim, bars):
    sim.engine.configure(slippage_bps=10.0)
    open_ = bar(bars, "BTC-USD", T0_NS)["open"]
    ack = adapter.place_market("mkt-1", "BTC-USD", Side.Buy, quote_size=1000.004)
    assert ack.client_order_id == "mkt-1"
    assert ack.side == Side.Buy
    (fill,) = adapter.fills(order_id=ack.order_id)
    assert fill.liquidity == "TAKER"
    assert fill.price == pytest.approx(open_ * 1.001, rel=1e-12)
    assert fill.commission == pytest.approx(fill.price * fill.size * 0.006, rel=1e-9)
    assert fill.size * fill.price + fill.commission == pytest.approx(1000.0, abs=0.01)
    assert fill.ts_ns == T0_NS
    order = adapter.order(ack.order_id)
    assert order.status == "FILLED"
    assert order.filled_size == pytest.approx(fill.size)
    balances = adapter.balances()
    assert balances["BTC"] == pytest.approx(fill.size)
    assert balances["USD"] == pytest.approx(100_000 - 1000.0, abs=0.01)


def test_market_sell_by_base_size(adapter, bars):
    ack = adapter.place_market("mkt-2", "ETH-USD", Side.Sell, base_size="1.5")
    (fill,) = adapter.fills(order_id=ack.order_id)
    assert fill.size == 1.5
    assert fill.price == pytest.approx(bar(bars, "ETH-USD", T0_NS)["open"])
    assert adapter.balances()["ETH"] == pytest.approx(3.5)


def test_insufficient_funds_rejected_not_retried(adapter, sleeps):
    with pytest.raises(OrderRejectedError) as info:
        adapter.place_market("big", "BTC-USD", Side.Buy, quote_size=10_000_000)
    assert info.value.code == "INSUFFICIENT_FUND"
    assert info.value.preview_failure_reason == "PREVIEW_INSUFFICIENT_FUND"
    assert sleeps.delays == []


def test_post_only_crossing_is_rejected(adapter, sim):
    price = sim.engine.current_price("BTC-USD")
    with pytest.raises(OrderRejectedError) as info:
        adapter.place_limit_post_only("po-x", "BTC-USD", Side.Buy, "0.01", str(price * 1.01))
    assert info.value.code == "INVALID_LIMIT_PRICE_POST_ONLY"
    assert sim.engine.orders() == []
    eth = sim.engine.current_price("ETH-USD")
    with pytest.raises(OrderRejectedError) as info:
        adapter.place_limit_post_only("po-y", "ETH-USD", Side.Sell, "1", str(eth * 0.99))
    assert info.value.code == "INVALID_LIMIT_PRICE_POST_ONLY"


def test_resting_limit_fills_when_traded_through(adapter, sim, clock, bars):
    b = bar(bars, "BTC-USD", T0_NS)
    limit = (b["open"] + b["low"]) / 2  # below the price, above the bar's low
    ack = adapter.place_limit_post_only("po-1", "BTC-USD", Side.Buy, "0.01", limit)
    want_price = float(format_increment(limit, 0.01, "ROUND_FLOOR"))
    (open_order,) = adapter.open_orders()
    assert open_order.order_id == ack.order_id
    assert open_order.limit_price == want_price
    assert adapter.balances(available_only=True)["USD"] < 100_000 - 0.01 * want_price
    clock.set(T0_NS + HOUR_NS // 2)  # bar not closed yet: nothing known about its low
    assert adapter.fills() == []
    clock.set(T0_NS + HOUR_NS)
    (fill,) = adapter.fills(symbol="BTC-USD")
    assert fill.liquidity == "MAKER"
    assert fill.price == want_price
    assert fill.size == 0.01
    assert fill.commission == pytest.approx(want_price * 0.01 * 0.004)
    assert fill.ts_ns == T0_NS + HOUR_NS
    assert adapter.order(ack.order_id).status == "FILLED"
    assert adapter.open_orders() == []
    balances = adapter.balances()
    assert balances["USD"] == pytest.approx(100_000 - want_price * 0.01 * 1.004)
    assert balances["BTC"] == pytest.approx(0.01)


def test_partial_fills(adapter, sim, clock, bars):
    sim.engine.configure(partial_fill_fraction=0.5)
    price = sim.engine.current_price("SOL-USD")
    limit = round(price * 0.999, 2)
    through = [
        i for i in range(100, N_BARS) if bar(bars, "SOL-USD", START_NS + i * HOUR_NS)["low"] < limit
    ]
    assert len(through) >= 3
    ack = adapter.place_limit_post_only("po-p", "SOL-USD", Side.Buy, "4", limit)
    clock.set(START_NS + (through[0] + 1) * HOUR_NS)
    order = adapter.order(ack.order_id)
    assert (order.status, order.filled_size) == ("OPEN", 2.0)
    clock.set(START_NS + (through[2] + 1) * HOUR_NS)
    fills = adapter.fills(order_id=ack.order_id)
    assert [f.size for f in fills] == [2.0, 1.0, 0.5]
    assert all(f.liquidity == "MAKER" and f.price == limit for f in fills)
    assert adapter.order(ack.order_id).filled_size == 3.5


def test_repeated_client_order_id_returns_the_same_order(adapter, sim):
    price = sim.engine.current_price("BTC-USD")
    first = adapter.place_limit_post_only("same", "BTC-USD", Side.Buy, "0.01", price * 0.9)
    again = adapter.place_limit_post_only("same", "BTC-USD", Side.Buy, "0.02", price * 0.8)
    assert again.order_id == first.order_id
    assert len(sim.engine.orders()) == 1


def test_cancel(adapter, sim):
    price = sim.engine.current_price("BTC-USD")
    ack = adapter.place_limit_post_only("c-1", "BTC-USD", Side.Buy, "0.01", price * 0.9)
    assert sim.engine.holds()["USD"] > 0
    (res,) = adapter.cancel([ack.order_id])
    assert res.success
    assert adapter.order(ack.order_id).status == "CANCELLED"
    assert sim.engine.holds()["USD"] == 0
    assert adapter.open_orders() == []
    (again, unknown) = adapter.cancel([ack.order_id, "no-such-order"])
    assert not again.success
    assert again.failure_reason == "UNKNOWN_CANCEL_ORDER"
    assert not unknown.success


def test_unknown_order_is_404(adapter):
    with pytest.raises(ExchangeError) as info:
        adapter.order("nope")
    assert info.value.status == 404
    assert not isinstance(info.value, TransientExchangeError)


def test_preview(adapter):
    ok = adapter.preview_order("BTC-USD", Side.Buy, quote_size=100)
    assert ok.errors == ()
    assert ok.order_total == pytest.approx(100)
    assert ok.commission_total == pytest.approx(100 - 100 / 1.006)
    bad = adapter.preview_order("BTC-USD", Side.Buy, quote_size=1e9)
    assert bad.errors == ("PREVIEW_INSUFFICIENT_FUND",)


def test_fills_listing_by_symbol(adapter):
    a = adapter.place_market("f-1", "BTC-USD", Side.Buy, quote_size=50)
    b = adapter.place_market("f-2", "ETH-USD", Side.Sell, base_size="0.1")
    assert [f.order_id for f in adapter.fills()] == [a.order_id, b.order_id]
    assert [f.order_id for f in adapter.fills(symbol="ETH-USD")] == [b.order_id]


# --- auth and faults --------------------------------------------------------------------------


def test_bad_jwt_is_an_exchange_error(sim, sleeps):
    stranger = make_key("organizations/x/apiKeys/not-registered")
    with build_adapter(sim, stranger, sleeps) as adapter:
        with pytest.raises(ExchangeError) as info:
            adapter.balances()
        assert info.value.status == 401
        assert not isinstance(info.value, TransientExchangeError)
        assert isinstance(info.value.__cause__, requests.HTTPError)
        assert adapter.server_time_ns() == T0_NS  # public endpoint still answers
    assert sleeps.delays == []


def test_rate_limit_retried_honouring_retry_after(adapter, sim, sleeps, caplog):
    sim.faults.rate_limit(2, retry_after_secs=0.25)
    with caplog.at_level(logging.WARNING, logger="live_bridge.coinbase"):
        assert adapter.fee_rates() == (0.004, 0.006)
    assert sleeps.delays == [0.25, 0.25]
    assert "attempt 1 of 4" in caplog.text
    assert "attempt 2 of 4" in caplog.text
    assert "429" in caplog.text


def test_server_error_burst_retried(adapter, sim, sleeps):
    sim.faults.server_error(3, status=503)
    assert adapter.balances()["USD"] == 100_000.0
    assert len(sleeps.delays) == 3
    assert sleeps.delays == sorted(sleeps.delays)  # backoff grows
    assert max(sleeps.delays) <= 0.5


def test_retries_exhausted_raise_transient(adapter, sim, sleeps):
    sim.faults.server_error(10, status=502)
    with pytest.raises(TransientExchangeError) as info:
        adapter.server_time_ns()
    assert info.value.status == 502
    assert len(sleeps.delays) == 3


def test_timeout_raises_transient_after_retries(sim, api_key, sleeps):
    sim.faults.timeout(3, delay_secs=0.6)
    with build_adapter(sim, api_key, sleeps, timeout_secs=0.15, max_retries=2) as adapter:
        t = time.monotonic()
        with pytest.raises(TransientExchangeError) as info:
            adapter.server_time_ns()
        assert time.monotonic() - t < 3.0
        assert isinstance(info.value.__cause__, requests.Timeout)
        assert len(sleeps.delays) == 2


def test_dropped_connection_retried(adapter, sim, sleeps):
    sim.faults.drop(1)
    assert adapter.server_time_ns() == T0_NS
    assert len(sleeps.delays) == 1
    sim.faults.drop(10)
    with pytest.raises(TransientExchangeError) as info:
        adapter.server_time_ns()
    assert isinstance(info.value.__cause__, requests.ConnectionError)


def test_faults_limited_to_a_path_prefix(adapter, sim, sleeps):
    sim.faults.server_error(1, path_prefix="/api/v3/brokerage/orders")
    assert adapter.server_time_ns() == T0_NS
    assert sleeps.delays == []
    ack = adapter.place_market("pp-1", "BTC-USD", Side.Buy, quote_size=20)
    assert len(sleeps.delays) == 1
    assert adapter.order(ack.order_id).status == "FILLED"


def test_create_retried_after_timeout_is_idempotent(sim, api_key, sleeps):
    # the first create reaches the venue but answers too late; the retry returns the same order
    sim.faults.timeout(1, delay_secs=0.4, path_prefix="/api/v3/brokerage/orders")
    with build_adapter(sim, api_key, sleeps, timeout_secs=0.15) as adapter:
        ack = adapter.place_market("idem-1", "BTC-USD", Side.Buy, quote_size=20)
        time.sleep(0.4)
        again = adapter.place_market("idem-1", "BTC-USD", Side.Buy, quote_size=20)
    assert again.order_id == ack.order_id
    assert len(sim.engine.orders()) == 1


def test_latency(adapter, sim):
    sim.faults.latency(0.1)
    t = time.monotonic()
    adapter.server_time_ns()
    assert time.monotonic() - t >= 0.1


def test_helpers():
    assert parse_rfc3339_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_rfc3339_ns("1970-01-01T00:00:00.123456789Z") == 123_456_789
    assert format_increment("0.123456789", 1e-8, "ROUND_FLOOR") == "0.12345678"
    assert format_increment(100.005, 0.01, "ROUND_CEILING") == "100.01"
    assert format_increment(5, 1.0, "ROUND_FLOOR") == "5"


def test_adapter_repr_has_no_secret(sim, api_key, sleeps):
    with build_adapter(sim, api_key, sleeps) as adapter:
        assert "PRIVATE" not in repr(adapter)
        assert isinstance(adapter, CoinbaseAdapter)
