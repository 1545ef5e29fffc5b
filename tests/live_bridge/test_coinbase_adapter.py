"""The adapter against the exchange simulator through the real coinbase-advanced-py SDK."""

import base64
import logging
import time
import traceback

import polars as pl
import pytest
import requests
from coinbase import jwt_generator
from coinbase.rest import RESTClient
from coinbase.rest.types.accounts_types import ListAccountsResponse
from coinbase.rest.types.orders_types import ListFillsResponse
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from polars.testing import assert_frame_equal

from live_bridge import wire
from live_bridge.coinbase import (
    CoinbaseAdapter,
    CoinbaseCredentials,
    format_increment,
    parse_rfc3339_ns,
    product_status_code,
)
from live_bridge.errors import (
    AuthenticationError,
    ExchangeError,
    OrderRejectedError,
    TransientExchangeError,
)
from signals.enums import ProductStatus, Side
from signals.errors import ConfigError
from tests.live_bridge.conftest import (
    HOUR_NS,
    N_BARS,
    START_NS,
    T0_NS,
    SleepRecorder,
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
    secret = make_key("k1").private_pem
    env = {"COINBASE_API_KEY": "k1", "COINBASE_API_SECRET": secret, "CB_API_KEY": "k2"}
    creds = CoinbaseCredentials.from_env(env)
    assert creds.api_key == "k1"
    assert "PRIVATE" not in repr(creds)
    assert "PRIVATE" not in str(creds)
    assert creds.api_secret.get_secret_value() == secret
    raw = base64.b64encode(bytes(range(32))).decode()
    assert CoinbaseCredentials.from_env({"CB_API_KEY": "k", "CB_API_SECRET": raw}).api_key == "k"


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


def test_bad_jwt_is_an_authentication_error_not_retried(sim, sleeps):
    stranger = make_key("organizations/x/apiKeys/not-registered")
    with build_adapter(sim, stranger, sleeps) as adapter:
        with pytest.raises(AuthenticationError) as info:
            adapter.balances()
        assert info.value.status == 401
        assert not isinstance(info.value, TransientExchangeError)
        assert isinstance(info.value.__cause__, requests.HTTPError)
        assert str(info.value).startswith("accounts: ")
        assert "check COINBASE_API_KEY / COINBASE_API_SECRET and the key's scopes" in str(
            info.value
        )
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
    # full jitter: attempt n waits uniform(0, min(cap, base * 2**n)), base 0.01, cap 0.5
    assert all(0.0 <= d <= 0.01 * 2**n for n, d in enumerate(sleeps.delays))


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


# --- credentials: refuse what the SDK cannot sign with ----------------------------------------


KEY_NAME = "organizations/o/apiKeys/k"


def _ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def _pem(key, fmt=serialization.PrivateFormat.PKCS8, encryption=None) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, fmt, encryption or serialization.NoEncryption()
    ).decode()


def _accepted_secret(form: str) -> str:
    ec_pem = make_key("x").private_pem
    ed = _ed25519_key()
    seed = ed.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pub = ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "ec": ec_pem,
        "ec-escaped-newlines": ec_pem.replace("\n", "\\n"),
        "ec-pkcs8": _pem(ec.generate_private_key(ec.SECP256R1())),
        "ed25519-pkcs8": _pem(ed),
        "ed25519-escaped-newlines": _pem(ed).replace("\n", "\\n"),
        "ed25519-raw-32": base64.b64encode(seed).decode(),
        "ed25519-raw-64": base64.b64encode(seed + pub).decode() + "\n",
    }[form]


def _refused_secret(form: str) -> tuple[str, str]:
    # (secret, what the message says it was)
    p384 = ec.generate_private_key(ec.SECP384R1())
    encrypted = serialization.BestAvailableEncryption(b"passphrase")
    return {
        "not-a-key": ("s3cr3t-n0t-a-k3y", "neither a PEM nor base64"),
        "garbage-pem": (
            "-----BEGIN EC PRIVATE KEY-----\nQUJDREVGR0hJSktMTU5PUA==\n-----END EC PRIVATE KEY-----\n",
            "a PEM that holds no readable private key",
        ),
        "public-key-pem": (make_key("x").public_pem, "a PEM that holds no readable private key"),
        "ec-p384": (
            _pem(p384, serialization.PrivateFormat.TraditionalOpenSSL),
            "a PEM of an EC key on curve secp384r1",
        ),
        "rsa": (_pem(rsa.generate_private_key(65537, 1024)), "a PEM of a"),
        "encrypted-pem": (
            _pem(_ed25519_key(), encryption=encrypted),
            "an encrypted PEM (the SDK signs only with unencrypted keys)",
        ),
        "base64-16-bytes": (base64.b64encode(bytes(range(16))).decode(), "base64 of 16 bytes"),
        "broken-escape": ("QUJD\\", "text with a broken backslash escape"),
        "blank": ("   ", "empty"),
    }[form]


def _fragments(secret: str, width: int = 8) -> set[str]:
    # every `width`-character window of the secret's key material (PEM armour lines removed)
    body = "".join(
        line for line in secret.replace("\\n", "\n").splitlines() if not line.startswith("-----")
    ).strip()
    return {body[i : i + width] for i in range(max(1, len(body) - width + 1))} - {""}


@pytest.mark.parametrize(
    "form",
    [
        "ec",
        "ec-escaped-newlines",
        "ec-pkcs8",
        "ed25519-pkcs8",
        "ed25519-escaped-newlines",
        "ed25519-raw-32",
        "ed25519-raw-64",
    ],
)
def test_credentials_accept_every_form_the_sdk_signs_with(form):
    secret = _accepted_secret(form)
    creds = CoinbaseCredentials.from_env(
        {"COINBASE_API_KEY": KEY_NAME, "COINBASE_API_SECRET": secret}
    )
    client = RESTClient(
        api_key=creds.api_key,
        api_secret=creds.api_secret.get_secret_value(),
        base_url="127.0.0.1:9",
        timeout=1,
    )
    token = jwt_generator.build_rest_jwt("GET 127.0.0.1:9/x", client.api_key, client.api_secret)
    assert token.count(".") == 2


@pytest.mark.parametrize(
    "form",
    [
        "not-a-key",
        "garbage-pem",
        "public-key-pem",
        "ec-p384",
        "rsa",
        "encrypted-pem",
        "base64-16-bytes",
        "broken-escape",
        "blank",
    ],
)
def test_credentials_refuse_an_unsignable_secret_in_one_line_without_the_secret(form):
    secret, was = _refused_secret(form)
    with pytest.raises(ConfigError) as info:
        CoinbaseCredentials.from_env({"COINBASE_API_KEY": KEY_NAME, "COINBASE_API_SECRET": secret})
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("`COINBASE_API_SECRET` must be a CDP private key: an EC P-256 PEM")
    assert f", was {was}" in msg
    rendered = "".join(traceback.format_exception(info.value))
    assert "During handling" not in rendered
    assert "direct cause" not in rendered
    leaked = [f for f in _fragments(secret) if f.strip() and (f in msg or f in rendered)]
    assert leaked == []


def test_credentials_refuse_at_construction_naming_the_field():
    with pytest.raises(
        ConfigError, match=r"^`api_secret` must be .*, was neither a PEM nor base64"
    ):
        CoinbaseCredentials(api_key=KEY_NAME, api_secret="s3cr3t-n0t-a-k3y")
    with pytest.raises(ConfigError, match=r"^`CB_API_SECRET` must be"):
        CoinbaseCredentials.from_env({"CB_API_KEY": KEY_NAME, "CB_API_SECRET": "s3cr3t-n0t-a-k3y"})


def test_credentials_refuse_an_empty_key_name():
    secret = make_key("x").private_pem
    with pytest.raises(ConfigError, match=r"^`api_key` must be a CDP API key name .*, was empty$"):
        CoinbaseCredentials(api_key="", api_secret=secret)
    with pytest.raises(ConfigError, match=r"^`COINBASE_API_KEY` must be .*, was empty$"):
        CoinbaseCredentials.from_env({"COINBASE_API_KEY": "  ", "COINBASE_API_SECRET": secret})


# --- errors and backoff -----------------------------------------------------------------------


def _http_error(status: int, body: bytes) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response._content = body
    return requests.HTTPError(f"{status} Client Error: {body.decode()}", response=response)


def test_forbidden_scope_is_an_authentication_error_not_retried(adapter, sleeps):
    def forbidden():
        raise _http_error(
            403,
            b'{"error":"PERMISSION_DENIED","error_details":"Missing required scopes",'
            b'"message":"Missing required scopes"}',
        )

    with pytest.raises(AuthenticationError) as info:
        adapter._call("create order c-1", forbidden)
    assert info.value.status == 403
    assert str(info.value).startswith("create order c-1: the venue refused the credentials")
    assert str(info.value).endswith(
        "check COINBASE_API_KEY / COINBASE_API_SECRET and the key's scopes"
    )
    assert isinstance(info.value.__cause__, requests.HTTPError)
    assert sleeps.delays == []


def test_other_client_errors_are_plain_exchange_errors(adapter, sleeps):
    def bad_request():
        raise _http_error(400, b'{"error":"INVALID_ARGUMENT"}')

    with pytest.raises(ExchangeError) as info:
        adapter._call("candles BTC-USD", bad_request)
    assert type(info.value) is ExchangeError
    assert info.value.status == 400
    assert sleeps.delays == []


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_backoff_is_full_jitter_below_the_capped_bound(sim, api_key, sleeps, seed):
    def unavailable():
        raise TransientExchangeError("server time: 503", status=503)

    adapter = build_adapter(sim, api_key, sleeps, max_retries=8, seed=seed)
    with adapter, pytest.raises(TransientExchangeError):
        adapter._call("server time", unavailable)
    bounds = [min(0.5, 0.01 * 2**n) for n in range(8)]  # base 0.01 s, cap 0.5 s
    assert len(sleeps.delays) == 8
    assert all(0.0 <= d <= b for d, b in zip(sleeps.delays, bounds, strict=True))
    # the old code drew from [b/2, b]; full jitter draws from [0, b]
    assert not all(d >= b / 2 for d, b in zip(sleeps.delays, bounds, strict=True))


def test_backoff_is_the_same_for_the_same_seed(sim, api_key):
    runs = []
    for _ in range(2):
        recorder = SleepRecorder([])
        sim.faults.server_error(3, status=503)
        with build_adapter(sim, api_key, recorder, seed=7) as adapter:
            adapter.server_time_ns()
        runs.append(recorder.delays)
    assert runs[0] == runs[1]
    assert len(runs[0]) == 3


def test_retry_after_above_the_cap_waits_the_cap(adapter, sim, sleeps):
    sim.faults.rate_limit(1, retry_after_secs=30.0)
    assert adapter.server_time_ns() == T0_NS
    assert sleeps.delays == [0.5]


# --- malformed responses ----------------------------------------------------------------------


def _sim_fill(adapter, sim) -> dict:
    adapter.place_market("wire-1", "BTC-USD", Side.Buy, quote_size=50)
    (fill,) = sim.engine.fills()
    return fill


def test_malformed_fill_is_one_exchange_error_naming_the_field(adapter, sim, monkeypatch):
    good = _sim_fill(adapter, sim)
    body = {"fills": [dict(good), dict(good), {**good, "price": None}], "cursor": ""}
    monkeypatch.setattr(adapter._client, "get_fills", lambda **kw: ListFillsResponse(body))
    with pytest.raises(ExchangeError) as info:
        adapter.fills()
    assert type(info.value) is ExchangeError
    assert str(info.value) == (
        "fills: `fills[2].price` must be a positive finite decimal string, was None"
    )


def test_a_body_the_sdk_cannot_read_is_an_exchange_error(adapter, monkeypatch):
    monkeypatch.setattr(
        adapter._client, "get_fills", lambda **kw: ListFillsResponse({"fills": [None]})
    )
    with pytest.raises(ExchangeError, match=r"^fills: the SDK could not read the response") as info:
        adapter.fills()
    assert isinstance(info.value.__cause__, TypeError)


def test_a_repeated_cursor_is_an_exchange_error(adapter, monkeypatch):
    page = {"accounts": [], "has_next": True, "cursor": "again", "size": 0}
    monkeypatch.setattr(
        adapter._client, "get_accounts", lambda **kw: ListAccountsResponse(dict(page))
    )
    with pytest.raises(ExchangeError, match=r"^accounts: `cursor` must change from page to page"):
        adapter.balances()


# --- listing calls for reconciliation ---------------------------------------------------------


def _spy_pages(adapter, name: str, limit: int) -> list[dict]:
    # make the venue answer `limit` items per page and record every request's arguments
    seen: list[dict] = []
    orig = getattr(adapter._client, name)

    def spy(**kwargs):
        seen.append(kwargs)
        return orig(**{**kwargs, "limit": limit})

    setattr(adapter._client, name, spy)
    return seen


def test_list_orders_every_status_all_pages_oldest_first(adapter, sim, clock):
    btc, eth = sim.engine.current_price("BTC-USD"), sim.engine.current_price("ETH-USD")
    resting = adapter.place_limit_post_only("lo-1", "BTC-USD", Side.Buy, "0.01", btc * 0.9)
    clock.set(T0_NS + 1_000)  # 1 us later
    adapter.place_market("lo-2", "BTC-USD", Side.Buy, quote_size=50)
    clock.set(T0_NS + 2_000)
    adapter.place_limit_post_only("lo-3", "ETH-USD", Side.Sell, "1", eth * 1.1)
    adapter.cancel([resting.order_id])
    seen = _spy_pages(adapter, "list_orders", limit=1)

    every = adapter.list_orders()
    assert [o.client_order_id for o in every] == ["lo-1", "lo-2", "lo-3"]
    assert [o.status for o in every] == ["CANCELLED", "FILLED", "OPEN"]
    assert [o.number_of_fills for o in every] == [0, 1, 0]
    assert [o.created_ts_ns for o in every] == [T0_NS, T0_NS + 1_000, T0_NS + 2_000]
    assert len(seen) == 3  # one order per page
    assert seen[0]["start_date"] is None
    assert seen[0]["order_status"] is None

    since = adapter.list_orders(start_ts_ns=T0_NS + 1_000)  # at or after
    assert [o.client_order_id for o in since] == ["lo-2", "lo-3"]
    assert seen[-1]["start_date"] == "2024-01-05T04:00:00.000001Z"
    sub_us = adapter.list_orders(start_ts_ns=T0_NS + 1_500)  # nanoseconds reach the venue
    assert [o.client_order_id for o in sub_us] == ["lo-3"]
    assert seen[-1]["start_date"] == "2024-01-05T04:00:00.000001500Z"

    done = adapter.list_orders(["BTC-USD", "BTC-USD"], statuses=["FILLED", "CANCELLED"])
    assert [o.client_order_id for o in done] == ["lo-1", "lo-2"]
    assert seen[-1]["product_ids"] == ["BTC-USD"]
    assert seen[-1]["order_status"] == ["FILLED", "CANCELLED"]

    n_requests = len(seen)
    assert adapter.list_orders([]) == []
    assert adapter.list_orders(statuses=[]) == []
    assert len(seen) == n_requests  # nothing asked

    (still_open,) = adapter.open_orders()
    assert still_open.client_order_id == "lo-3"
    assert seen[-1]["order_status"] == ["OPEN", "PENDING", "QUEUED"]
    assert adapter.open_orders("BTC-USD") == []


def test_fills_of_several_symbols_since_a_time_all_pages(adapter, sim, clock):
    ids = []
    for i, (symbol, side, size) in enumerate(
        [
            ("BTC-USD", Side.Buy, {"quote_size": 50}),
            ("ETH-USD", Side.Sell, {"base_size": "0.1"}),
            ("BTC-USD", Side.Buy, {"quote_size": 20}),
            ("SOL-USD", Side.Buy, {"quote_size": 20}),
        ]
    ):
        clock.set(T0_NS + i * 1_000_000_000)
        ids.append(adapter.place_market(f"fs-{i}", symbol, side, **size).order_id)
    seen = _spy_pages(adapter, "get_fills", limit=1)

    assert [f.order_id for f in adapter.fills()] == ids
    assert len(seen) == 4  # one fill per page
    both = adapter.fills(symbols=["BTC-USD", "ETH-USD"])
    assert [f.order_id for f in both] == ids[:3]
    assert seen[-1]["product_ids"] == ["BTC-USD", "ETH-USD"]
    later = adapter.fills(symbols=["BTC-USD"], since_ts_ns=T0_NS + 1_000_000_000)
    assert [f.order_id for f in later] == [ids[2]]
    assert seen[-1]["start_sequence_timestamp"] == "2024-01-05T04:00:01.000000Z"
    at = adapter.fills(since_ts_ns=T0_NS + 2_000_000_000)  # at or after
    assert [f.order_id for f in at] == ids[2:]
    mixed = adapter.fills(symbol="SOL-USD", symbols=["ETH-USD"])
    assert [f.order_id for f in mixed] == [ids[1], ids[3]]
    assert [f.order_id for f in adapter.fills(order_id=ids[1], symbols=["ETH-USD"])] == [ids[1]]
    n_requests = len(seen)
    assert adapter.fills(symbols=[]) == []
    assert len(seen) == n_requests


def test_simulator_filters_by_start_and_refuses_a_malformed_start(adapter, sim, clock):
    adapter.place_market("st-1", "BTC-USD", Side.Buy, quote_size=50)
    clock.set(T0_NS + 3_000_000_000)
    adapter.place_market("st-2", "BTC-USD", Side.Buy, quote_size=50)
    later = T0_NS + 3_000_000_000
    assert [o["client_order_id"] for o in sim.engine.list_orders(start_ns=later)] == ["st-2"]
    assert len(sim.engine.list_orders(start_ns=later + 1)) == 0
    assert len(sim.engine.list_fills(start_ns=later)) == 1
    assert len(sim.engine.list_fills(start_ns=T0_NS)) == 2
    # an offset is honoured: 05:00:03+01:00 is 04:00:03Z
    page = adapter._client.list_orders(start_date="2024-01-05T05:00:03+01:00").to_dict()
    assert [o["client_order_id"] for o in page["orders"]] == ["st-2"]
    for name, bad in [
        ("start_date", "yesterday"),
        ("start_date", "2024-01-05"),
        ("start_sequence_timestamp", "2024-13-01T00:00:00Z"),
    ]:
        call = adapter._client.list_orders if name == "start_date" else adapter._client.get_fills
        with pytest.raises(requests.HTTPError) as info:
            call(**{name: bad})
        assert info.value.response.status_code == 400
        assert f"`{name}` must be an RFC 3339 timestamp" in info.value.response.text
        assert "INVALID_ARGUMENT" in info.value.response.text


# --- wire parsers -----------------------------------------------------------------------------


FILL = {
    "trade_id": "t1",
    "order_id": "o1",
    "product_id": "BTC-USD",
    "side": "BUY",
    "price": "100.5",
    "size": "0.25",
    "commission": "0.1",
    "liquidity_indicator": "MAKER",
    "trade_time": "2024-01-05T04:00:00.000001Z",
}


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("price", None, "a positive finite decimal string"),
        ("price", "NaN", "a positive finite decimal string"),
        ("price", "inf", "a positive finite decimal string"),
        ("price", "abc", "a positive finite decimal string"),
        ("price", "1e999", "a positive finite decimal string"),
        ("price", "-1", "a positive finite decimal string"),
        ("price", 100.5, "a positive finite decimal string"),
        ("size", "-0.1", "a non-negative finite decimal string"),
        ("commission", "sNaN", "a finite decimal string"),
        ("side", "HOLD", 'be "BUY" or "SELL"'),
        ("trade_id", "", "a non-empty string"),
        ("trade_time", "2024-01-05", "an RFC 3339 timestamp string"),
        ("trade_time", "2024-02-30T00:00:00Z", "an RFC 3339 timestamp string"),
        ("liquidity_indicator", 5, "a string"),
    ],
)
def test_wire_fill_field_errors_name_the_call_path_and_value(field, value, rule):
    body = {"fills": [FILL, {**FILL, field: value}]}
    with pytest.raises(ExchangeError) as info:
        wire.parse_fills(body, call="fills")
    assert type(info.value) is ExchangeError
    assert str(info.value).startswith(f"fills: `fills[1].{field}` must ")
    assert rule in str(info.value)
    assert str(info.value).endswith(f", was {value!r}")


def test_wire_missing_fields_read_was_missing():
    with pytest.raises(ExchangeError, match=r"^fills: `fills` must be a list, was missing$"):
        wire.parse_fills({"cursor": ""})
    partial = {k: v for k, v in FILL.items() if k != "trade_time"}
    with pytest.raises(ExchangeError, match=r"`fills\[0\]\.trade_time` must .*, was missing$"):
        wire.parse_fills({"fills": [partial]})
    with pytest.raises(ExchangeError, match=r"^transaction summary: `fee_tier` must be an object"):
        wire.parse_fee_rates({"fee_tier": "Intro"})
    with pytest.raises(
        ExchangeError,
        match=r"`fee_tier\.maker_fee_rate` must be a decimal string in \[0, 1\), was '1.5'",
    ):
        wire.parse_fee_rates({"fee_tier": {"maker_fee_rate": "1.5", "taker_fee_rate": "0.01"}})


def test_wire_optional_fields_keep_their_defaults():
    fill = {k: v for k, v in FILL.items() if k != "liquidity_indicator"}
    (parsed,) = wire.parse_fills({"fills": [fill]}).items
    assert parsed.liquidity == ""
    order = {
        "order_id": "o1",
        "product_id": "BTC-USD",
        "side": "sell",
        "status": "CANCEL_QUEUED",
        "number_of_fills": "2",
        "filled_size": "0.5",
        "created_time": "",
    }
    info = wire.parse_order({"order": order})
    assert (info.status, info.side, info.number_of_fills) == ("CANCEL_QUEUED", Side.Sell, 2)
    assert (info.base_size, info.limit_price, info.created_ts_ns) == (0.5, 0.0, 0)
    assert (info.client_order_id, info.order_type, info.total_fees) == ("", "", 0.0)
    with pytest.raises(
        ExchangeError,
        match=r"^order: `order\.number_of_fills` must be a non-negative integer string, was missing$",
    ):
        wire.parse_order({"order": {k: v for k, v in order.items() if k != "number_of_fills"}})
    preview = wire.parse_preview({"errs": ["PREVIEW_INSUFFICIENT_FUND"]})
    assert preview.errors == ("PREVIEW_INSUFFICIENT_FUND",)
    assert preview.order_total == 0.0
    rejected = wire.parse_create_order(
        {"success": False, "failure_reason": "UNKNOWN_FAILURE_REASON"},
        client_order_id="c",
        symbol="BTC-USD",
        side="BUY",
    )
    assert rejected == wire.OrderRejection("UNKNOWN_FAILURE_REASON", "", "")


def test_wire_timestamps():
    assert parse_rfc3339_ns("1970-01-01T01:00:00+01:00") == 0
    assert parse_rfc3339_ns("1970-01-01 00:00:00.5z") == 500_000_000
    assert parse_rfc3339_ns(" 1969-12-31T23:59:59.000000001Z ") == -999_999_999
    assert parse_rfc3339_ns("1970-01-01T00:00:00.1234567891234Z") == 123_456_789
    for bad in ["", "abc", "2024-01-05", "2024-01-05T04:00:00", "2024-02-30T00:00:00Z",
                "2024-01-05T24:00:00Z", "2024-01-05T04:00:00+25:00", "20240105T040000Z"]:  # fmt: skip
        with pytest.raises(ValueError, match=r"^`text` must "):
            parse_rfc3339_ns(bad)
    for ts in [0, T0_NS, T0_NS + 1_000, T0_NS + 1_500, -1]:
        assert parse_rfc3339_ns(wire.format_rfc3339_ns(ts)) == ts
    assert wire.format_rfc3339_ns(T0_NS) == "2024-01-05T04:00:00.000000Z"
