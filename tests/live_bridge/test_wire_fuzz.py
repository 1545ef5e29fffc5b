"""Property tests of the response parsers in `live_bridge.wire`.

For each parser, hypothesis builds valid bodies shaped like the exchange simulator's
(`live_bridge/exchange_sim/engine.py` and `server.py`, numbers written by the simulator's own
`fmt_decimal` / `rfc3339`, plus the `rate_limit_*` keys the SDK's `.to_dict()` adds), checks
that they parse, then mutates one place (drops a key, or puts None, a wrong type, "NaN",
"inf", "abc", "-1", "1e999", "" or a nested wrong shape there). The parser must then either
return its value or raise a plain `ExchangeError` naming the mutated path; any other
exception fails the test. `test_builders_match_the_simulator` keeps the builders' key sets
equal to what the simulator emits.
"""

import copy
import dataclasses
import datetime as dt
import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import polars as pl
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from live_bridge import wire
from live_bridge.errors import ExchangeError
from live_bridge.exchange_sim import ExchangeEngine, SteppedClock
from live_bridge.exchange_sim.engine import DEFAULT_PRODUCT, USER_ID, fmt_decimal, rfc3339

NS = 1_000_000_000
EXAMPLES = 300
SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")

# --- values ---------------------------------------------------------------------------------

ids = st.uuids().map(str)
symbols = st.sampled_from(SYMBOLS)
sides = st.sampled_from(("BUY", "SELL"))
# 2000-01-01 .. 2100-01-01, microseconds as the simulator writes them
ts_ns = st.integers(946_684_800 * 1_000_000, 4_102_444_800 * 1_000_000).map(lambda us: us * 1000)
stamps = ts_ns.map(rfc3339)


def decimals(low: str, high: str, places: int = 8) -> st.SearchStrategy[str]:
    return st.decimals(Decimal(low), Decimal(high), places=places).map(fmt_decimal)


prices = decimals("0.00000001", "10000000")
sizes = decimals("0", "1000000")
money = decimals("0", "100000000", places=10)
rates = decimals("0", "0.05", places=4)
rate_limit_keys = st.sampled_from(
    [
        {"rate_limit_limit": None, "rate_limit_remaining": None, "rate_limit_reset": None},
        {"rate_limit_limit": "30", "rate_limit_remaining": "29", "rate_limit_reset": "1"},
    ]
)


def small_lists(elements: st.SearchStrategy[Any], min_size: int = 0) -> st.SearchStrategy[list]:
    return st.lists(elements, min_size=min_size, max_size=3)


# --- bodies as the simulator sends them (after the SDK's `.to_dict()`) ----------------------


@st.composite
def time_bodies(draw) -> dict[str, Any]:
    now = draw(ts_ns)
    return {
        "iso": rfc3339(now),
        "epoch_seconds": str(now // NS),
        "epoch_millis": str(now // 1_000_000),
        **draw(rate_limit_keys),
    }


@st.composite
def product_objects(draw) -> dict[str, Any]:
    symbol = draw(symbols)
    base, quote = symbol.split("-")
    increment = draw(st.sampled_from(["0.00000001", "0.0001", "0.01", "1"]))
    prod = {
        **DEFAULT_PRODUCT,
        "base_increment": increment,
        "quote_increment": draw(st.sampled_from(["0.01", "0.001", "0.00001"])),
        "base_min_size": increment,
        "quote_min_size": draw(st.sampled_from(["1", "0", "10"])),
        "status": draw(st.sampled_from(["online", "offline", "delisted", "internal", "odd"])),
        "product_id": symbol,
        "base_currency_id": base,
        "quote_currency_id": quote,
    }
    for flag in ("trading_disabled", "cancel_only", "limit_only", "post_only", "is_disabled"):
        prod[flag] = draw(st.booleans())
    prod.update(
        price=draw(st.one_of(st.just(""), prices)),
        price_percentage_change_24h="0",
        volume_24h="0",
        volume_percentage_change_24h="0",
        price_increment=prod["quote_increment"],
        base_name=base,
        quote_name=quote,
        watched=False,
        new=False,
        product_type="SPOT",
        fcm_trading_session_details=None,
        mid_market_price="",
        alias="",
        alias_to=[],
        base_display_symbol=base,
        quote_display_symbol=quote,
        view_only=False,
        display_name=symbol,
        product_venue="CBE",
        approximate_quote_24h_volume="0",
    )
    return prod


@st.composite
def products_bodies(draw) -> dict[str, Any]:
    products = draw(small_lists(product_objects()))
    return {"products": products, "num_products": len(products), **draw(rate_limit_keys)}


floats_text = st.floats(1e-8, 1e9).map(repr)


@st.composite
def candle_bodies(draw) -> dict[str, Any]:
    candles = [
        {
            "start": str(draw(ts_ns) // NS),
            "low": draw(floats_text),
            "high": draw(floats_text),
            "open": draw(floats_text),
            "close": draw(floats_text),
            "volume": draw(st.one_of(st.just("0.0"), floats_text)),
        }
        for _ in range(draw(st.integers(0, 3)))
    ]
    return {"candles": candles, **draw(rate_limit_keys)}


@st.composite
def pricebooks(draw, symbol: str | None = None, max_levels: int = 1) -> dict[str, Any]:
    def levels() -> list[dict[str, str]]:
        n = draw(st.integers(0, max_levels))
        return [{"price": draw(prices), "size": draw(sizes)} for _ in range(n)]

    return {
        "product_id": symbol or draw(symbols),
        "bids": levels(),
        "asks": levels(),
        "time": draw(stamps),
    }


@st.composite
def best_bid_ask_bodies(draw) -> dict[str, Any]:
    return {"pricebooks": draw(small_lists(pricebooks())), **draw(rate_limit_keys)}


@st.composite
def product_book_bodies(draw) -> dict[str, Any]:
    book = draw(pricebooks(max_levels=3))
    out: dict[str, Any] = {"pricebook": book, **draw(rate_limit_keys)}
    if book["bids"] and book["asks"]:
        mid = (float(book["bids"][0]["price"]) + float(book["asks"][0]["price"])) / 2
        out.update(last=repr(mid), mid_market=repr(mid), spread_bps="1.0", spread_absolute="0.01")
    return out


@st.composite
def account_objects(draw) -> dict[str, Any]:
    currency = draw(st.sampled_from(["USD", "BTC", "ETH", "SOL"]))
    return {
        "uuid": draw(ids),
        "name": f"{currency} Wallet",
        "currency": currency,
        "available_balance": {"value": draw(money), "currency": currency},
        "default": currency == "USD",
        "active": True,
        "created_at": "2020-01-01T00:00:00.000000Z",
        "updated_at": draw(stamps),
        "deleted_at": None,
        "type": "ACCOUNT_TYPE_FIAT" if currency == "USD" else "ACCOUNT_TYPE_CRYPTO",
        "ready": True,
        "hold": {"value": draw(money), "currency": currency},
        "retail_portfolio_id": "sim-portfolio",
        "platform": "ACCOUNT_PLATFORM_CONSUMER",
    }


@st.composite
def accounts_bodies(draw) -> dict[str, Any]:
    accounts = draw(small_lists(account_objects()))
    has_next = draw(st.booleans())
    return {
        "accounts": accounts,
        "has_next": has_next,
        "cursor": str(draw(st.integers(1, 500))) if has_next else "",
        "size": len(accounts),
        **draw(rate_limit_keys),
    }


@st.composite
def summary_bodies(draw) -> dict[str, Any]:
    volume, fees = draw(st.floats(0, 1e9)), draw(st.floats(0, 1e7))
    return {
        "total_volume": volume,
        "total_fees": fees,
        "fee_tier": {
            "pricing_tier": "Simulator",
            "usd_from": "0",
            "usd_to": "10000",
            "taker_fee_rate": draw(rates),
            "maker_fee_rate": draw(rates),
            "aop_from": "",
            "aop_to": "",
        },
        "margin_rate": None,
        "goods_and_services_tax": None,
        "advanced_trade_only_volume": volume,
        "advanced_trade_only_fees": fees,
        "coinbase_pro_volume": 0,
        "coinbase_pro_fees": 0,
        "total_balance": "0",
        "has_promo_fee": False,
        **draw(rate_limit_keys),
    }


@st.composite
def preview_bodies(draw) -> dict[str, Any]:
    out: dict[str, Any] = {"warning": [], "preview_id": draw(ids), **draw(rate_limit_keys)}
    if draw(st.booleans()):
        out["errs"] = [draw(st.sampled_from(["PREVIEW_INSUFFICIENT_FUND", "PREVIEW_INVALID_SIDE"]))]
        return out
    out["errs"] = []
    out.update(
        order_total=draw(money),
        commission_total=draw(money),
        quote_size=draw(money),
        base_size=draw(sizes),
        best_bid=draw(prices),
        best_ask=draw(prices),
        is_max=False,
        order_margin_total="0",
        leverage="0",
        long_leverage="0",
        short_leverage="0",
        slippage="0",
    )
    return out


order_configurations = st.one_of(
    st.builds(lambda q: {"market_market_ioc": {"quote_size": q}}, money),
    st.builds(lambda b: {"market_market_ioc": {"base_size": b}}, sizes),
    st.builds(
        lambda b, p, po: {"limit_limit_gtc": {"base_size": b, "limit_price": p, "post_only": po}},
        sizes,
        prices,
        st.booleans(),
    ),
)


@st.composite
def create_bodies(draw) -> dict[str, Any]:
    config = draw(order_configurations)
    if draw(st.booleans()):
        order_id = draw(ids)
        return {
            "success": True,
            "failure_reason": "UNKNOWN_FAILURE_REASON",
            "order_id": order_id,
            "success_response": {
                "order_id": order_id,
                "product_id": draw(symbols),
                "side": draw(sides),
                "client_order_id": draw(ids),
            },
            "order_configuration": config,
            **draw(rate_limit_keys),
        }
    code, preview = draw(
        st.sampled_from(
            [
                ("INSUFFICIENT_FUND", "PREVIEW_INSUFFICIENT_FUND"),
                ("INVALID_LIMIT_PRICE_POST_ONLY", "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY"),
                ("ORDER_ENTRY_DISABLED", "PREVIEW_TRADING_DISABLED"),
            ]
        )
    )
    return {
        "success": False,
        "failure_reason": "UNKNOWN_FAILURE_REASON",
        "order_id": "",
        "error_response": {
            "error": code,
            "message": "Insufficient balance in source account",
            "error_details": "",
            "preview_failure_reason": preview,
        },
        "order_configuration": config,
        **draw(rate_limit_keys),
    }


@st.composite
def cancel_bodies(draw) -> dict[str, Any]:
    def result() -> dict[str, Any]:
        ok = draw(st.booleans())
        reason = "UNKNOWN_CANCEL_FAILURE_REASON" if ok else "UNKNOWN_CANCEL_ORDER"
        return {"success": ok, "failure_reason": reason, "order_id": draw(ids)}

    n = draw(st.integers(0, 3))
    return {"results": [result() for _ in range(n)], **draw(rate_limit_keys)}


@st.composite
def order_objects(draw) -> dict[str, Any]:
    config = draw(order_configurations)
    status = draw(st.sampled_from(["OPEN", "FILLED", "CANCELLED", "PENDING"]))
    n_fills = draw(st.integers(0, 5))
    filled, last_fill = (draw(sizes), draw(stamps)) if n_fills else ("0", None)
    is_market = "market_market_ioc" in config
    quote_sized = "quote_size" in next(iter(config.values()))
    return {
        "order_id": draw(ids),
        "product_id": draw(symbols),
        "user_id": USER_ID,
        "order_configuration": config,
        "side": draw(sides),
        "client_order_id": draw(ids),
        "status": status,
        "time_in_force": "IMMEDIATE_OR_CANCEL" if is_market else "GOOD_UNTIL_CANCELLED",
        "created_time": draw(stamps),
        "completion_percentage": draw(decimals("0", "100", places=2)),
        "filled_size": filled,
        "average_filled_price": draw(prices) if n_fills else "0",
        "fee": "",
        "number_of_fills": str(n_fills),
        "filled_value": draw(money),
        "pending_cancel": False,
        "size_in_quote": quote_sized,
        "total_fees": draw(money),
        "size_inclusive_of_fees": quote_sized,
        "total_value_after_fees": draw(money),
        "trigger_status": "INVALID_ORDER_TYPE",
        "order_type": "MARKET" if is_market else "LIMIT",
        "reject_reason": "",
        "settled": status in ("FILLED", "CANCELLED"),
        "product_type": "SPOT",
        "reject_message": "",
        "cancel_message": "",
        "order_placement_source": "RETAIL_ADVANCED",
        "outstanding_hold_amount": draw(money),
        "is_liquidation": False,
        "last_fill_time": last_fill,
        "edit_history": [],
        "leverage": "",
        "margin_type": "",
        "retail_portfolio_id": "",
        "originating_order_id": "",
        "attached_order_id": "",
    }


@st.composite
def order_bodies(draw) -> dict[str, Any]:
    return {"order": draw(order_objects()), **draw(rate_limit_keys)}


@st.composite
def orders_bodies(draw) -> dict[str, Any]:
    has_next = draw(st.booleans())
    return {
        "orders": draw(small_lists(order_objects())),
        "sequence": "0",
        "has_next": has_next,
        "cursor": str(draw(st.integers(1, 500))) if has_next else "",
        **draw(rate_limit_keys),
    }


@st.composite
def fill_objects(draw) -> dict[str, Any]:
    trade_id, when = draw(ids), draw(stamps)
    return {
        "entry_id": trade_id,
        "trade_id": trade_id,
        "order_id": draw(ids),
        "trade_time": when,
        "trade_type": "FILL",
        "price": draw(prices),
        "size": draw(sizes),
        "commission": draw(money),
        "product_id": draw(symbols),
        "sequence_timestamp": when,
        "liquidity_indicator": draw(st.sampled_from(["MAKER", "TAKER"])),
        "size_in_quote": False,
        "user_id": USER_ID,
        "side": draw(sides),
        "retail_portfolio_id": "",
    }


@st.composite
def fills_bodies(draw) -> dict[str, Any]:
    return {
        "fills": draw(small_lists(fill_objects())),
        "cursor": draw(st.sampled_from(["", "100"])),
        **draw(rate_limit_keys),
    }


# --- parsers and what a valid body must give --------------------------------------------------


def _create(body: dict) -> wire.OrderAck | wire.OrderRejection:
    return wire.parse_create_order(body, client_order_id="cid", symbol="BTC-USD", side="BUY")


def _created_ok(body: dict, out: Any) -> bool:
    if body["success"]:
        return isinstance(out, wire.OrderAck) and out.order_id == body["order_id"]
    return isinstance(out, wire.OrderRejection) and out.code == body["error_response"]["error"]


def _fills_ok(body: dict, out: wire.Page) -> bool:
    want = [
        (f["trade_id"], float(f["price"]), wire.parse_rfc3339_ns(f["trade_time"]))
        for f in body["fills"]
    ]
    got = [(f.trade_id, f.price, f.ts_ns) for f in out.items]
    return got == want and out.has_next == bool(body["cursor"])


def _orders_ok(body: dict, out: wire.Page) -> bool:
    want = [(o["order_id"], o["status"], int(o["number_of_fills"])) for o in body["orders"]]
    got = [(o.order_id, o.status, o.number_of_fills) for o in out.items]
    return got == want and (out.cursor, out.has_next) == (body["cursor"], body["has_next"])


@dataclass(frozen=True)
class Case:
    """One parser, its valid bodies, and what a valid body's result must satisfy."""

    name: str
    bodies: st.SearchStrategy[dict[str, Any]]
    parse: Callable[[dict[str, Any]], Any]
    valid: Callable[[dict[str, Any], Any], bool]


CASES = [
    Case(
        "server_time",
        time_bodies(),
        wire.parse_server_time,
        lambda b, out: out == int(b["epoch_millis"]) * 1_000_000,
    ),
    Case(
        "products",
        products_bodies(),
        wire.parse_products,
        lambda b, out: set(out) == {p["product_id"] for p in b["products"]},
    ),
    Case(
        "candles",
        candle_bodies(),
        wire.parse_candles,
        lambda b, out: (
            [(c.start_s, c.close) for c in out]
            == [(int(c["start"]), float(c["close"])) for c in b["candles"]]
        ),
    ),
    Case(
        "best_bid_ask",
        best_bid_ask_bodies(),
        wire.parse_best_bid_ask,
        lambda b, out: (
            set(out) == {p["product_id"] for p in b["pricebooks"] if p["bids"] and p["asks"]}
        ),
    ),
    Case(
        "product_book",
        product_book_bodies(),
        wire.parse_product_book,
        lambda b, out: (
            [p for p, _ in out.asks] == [float(x["price"]) for x in b["pricebook"]["asks"]]
        ),
    ),
    Case(
        "accounts",
        accounts_bodies(),
        wire.parse_accounts,
        lambda b, out: (
            [(a.currency, a.hold) for a in out.items]
            == [(a["currency"], float(a["hold"]["value"])) for a in b["accounts"]]
        ),
    ),
    Case(
        "fee_rates",
        summary_bodies(),
        wire.parse_fee_rates,
        lambda b, out: (
            out == (float(b["fee_tier"]["maker_fee_rate"]), float(b["fee_tier"]["taker_fee_rate"]))
        ),
    ),
    Case(
        "preview",
        preview_bodies(),
        wire.parse_preview,
        lambda b, out: (
            out.errors == tuple(b["errs"]) and out.order_total == float(b.get("order_total", 0))
        ),
    ),
    Case("create_order", create_bodies(), _create, _created_ok),
    Case(
        "cancel",
        cancel_bodies(),
        wire.parse_cancel,
        lambda b, out: (
            [(r.order_id, r.success) for r in out]
            == [(r["order_id"], r["success"]) for r in b["results"]]
        ),
    ),
    Case(
        "order",
        order_bodies(),
        wire.parse_order,
        lambda b, out: (
            (out.order_id, out.created_ts_ns)
            == (b["order"]["order_id"], wire.parse_rfc3339_ns(b["order"]["created_time"]))
        ),
    ),
    Case("orders", orders_bodies(), wire.parse_orders, _orders_ok),
    Case("fills", fills_bodies(), wire.parse_fills, _fills_ok),
]


# --- mutations --------------------------------------------------------------------------------

Path = tuple[str | int, ...]
REPLACEMENTS: tuple[Any, ...] = (
    None,
    12345,
    -1.5,
    True,
    [],
    {},
    "",
    "NaN",
    "inf",
    "-inf",
    "abc",
    "-1",
    "1e999",
    {"unexpected": [1]},
    [{"unexpected": 1}],
)


def _paths(node: Any, prefix: Path = ()) -> list[Path]:
    out: list[Path] = []
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in children:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


def _render(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


# The field names the parsers read; half the mutations hit one of these (or a list element),
# the other half any place in the body.
READ = frozenset(
    {
        *("epoch_millis", "products", "product_id", "base_increment", "quote_increment"),
        *("base_min_size", "quote_min_size", "status", "cancel_only", "trading_disabled"),
        *("is_disabled", "limit_only", "post_only", "candles", "start", "open", "high", "low"),
        *("close", "volume", "pricebooks", "bids", "asks", "price", "size", "time", "pricebook"),
        *("accounts", "currency", "available_balance", "value", "hold", "cursor", "has_next"),
        *("fee_tier", "maker_fee_rate", "taker_fee_rate", "errs", "order_total"),
        *("commission_total", "base_size", "quote_size", "success", "error_response", "error"),
        *("message", "preview_failure_reason", "failure_reason", "success_response", "order_id"),
        *("client_order_id", "side", "results", "order", "orders", "order_configuration"),
        *("market_market_ioc", "limit_limit_gtc", "limit_price", "filled_size"),
        *("average_filled_price", "total_fees", "created_time", "number_of_fills", "order_type"),
        *("fills", "trade_id", "commission", "liquidity_indicator", "trade_time"),
    }
)


@st.composite
def mutations(draw, body: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    # a true-random generator drawn from hypothesis: `sampled_from` favours the first
    # elements so strongly that fields deep in a body were almost never mutated
    rnd = draw(st.randoms(use_true_random=True))
    paths = _paths(body)
    read = [p for p in paths if isinstance(p[-1], int) or p[-1] in READ]
    path = rnd.choice(read if read and rnd.random() < 0.5 else paths)
    out = copy.deepcopy(body)
    parent: Any = out
    for part in path[:-1]:
        parent = parent[part]
    if isinstance(parent, dict) and rnd.random() < 0.25:
        del parent[path[-1]]
        what = "drop"
    else:
        value = rnd.choice(REPLACEMENTS)
        parent[path[-1]] = copy.deepcopy(value)
        what = f"replace with {value!r}"
    return out, _render(path), what


# result fields that are sizes, prices or amounts that cannot be negative
NON_NEGATIVE = frozenset(
    {
        *("bid", "ask", "price", "size", "base_increment", "quote_increment", "base_min_size"),
        *("quote_min_size", "open", "high", "low", "close", "volume", "base_size", "quote_size"),
        *("limit_price", "filled_size", "average_filled_price", "order_total"),
        *("commission_total", "bids", "asks", "number_of_fills", "ts_ns", "start_s"),
    }
)


def _assert_sane(value: Any, name: str = "") -> None:
    # every number a parser returns is finite, and the ones that cannot be negative are not
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            _assert_sane(getattr(value, f.name), f.name)
    elif isinstance(value, dict):
        for v in value.values():
            _assert_sane(v, name)
    elif isinstance(value, list | tuple):
        for v in value:
            _assert_sane(v, name)
    elif isinstance(value, float | int) and not isinstance(value, bool):
        assert math.isfinite(value), (name, value)
        assert name not in NON_NEGATIVE or value >= 0, (name, value)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_parser_accepts_valid_bodies_and_names_the_mutated_field(case: Case, data) -> None:
    body = data.draw(case.bodies, label="valid body")
    parsed = case.parse(copy.deepcopy(body))
    assert case.valid(body, parsed)
    _assert_sane(parsed)
    mutated, path, what = data.draw(mutations(body), label="mutation")
    error: ExchangeError | None = None
    result = None
    try:
        result = case.parse(mutated)
    except ExchangeError as e:
        error = e
    kind = what.split(" ")[0]
    if error is None:
        _assert_sane(result)
        event(f"parsed ({kind})")
        return
    event(f"refused ({kind})")
    assert type(error) is ExchangeError
    assert error.status is None
    message = str(error)
    assert "\n" not in message
    # the message names the mutated field, or a field inside it (a dropped object's key)
    assert re.search(rf"`{re.escape(path)}[`.\[]", message), (path, what, message)
    assert re.search(r"` must .*, was ", message), message


# --- the builders stay in step with the simulator ---------------------------------------------


def _shape(node: Any) -> Any:
    # the key structure of a wire object: nested objects recurse, lists and leaves do not
    if isinstance(node, dict):
        return {k: _shape(v) for k, v in node.items()}
    return None


@functools.cache
def _simulator_objects() -> dict[str, Any]:
    # one of each object, from a real engine over three hourly bars
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    bars = pl.DataFrame(
        {
            "ts": [start + dt.timedelta(hours=i) for i in range(3)],
            "symbol": "BTC-USD",
            "open": [100.0, 101.0, 99.0],
            "high": [102.0, 103.0, 101.0],
            "low": [98.0, 100.0, 90.0],
            "close": [101.0, 99.0, 95.0],
            "volume": [1.0, 2.0, 3.0],
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
    clock = SteppedClock(int(start.timestamp()) * NS + 1800 * NS)
    engine = ExchangeEngine(bars, clock, balances={"USD": 10_000.0, "BTC": 1.0})
    limit = {"limit_limit_gtc": {"base_size": "1", "limit_price": "95.00", "post_only": True}}
    market = {"market_market_ioc": {"quote_size": "100"}}
    too_big = {"market_market_ioc": {"quote_size": "1000000"}}
    order = {"product_id": "BTC-USD", "side": "BUY"}
    created = engine.create_order({**order, "client_order_id": "a", "order_configuration": limit})
    engine.create_order({**order, "client_order_id": "b", "order_configuration": market})
    rejected = engine.create_order(
        {**order, "client_order_id": "c", "order_configuration": too_big}
    )
    preview = engine.preview_order({**order, "order_configuration": market})
    refused = engine.preview_order({**order, "order_configuration": too_big})
    cancel = engine.cancel_orders([created["order_id"], "no-such-order"])
    return {
        "product": engine.product_wire("BTC-USD"),
        "pricebook": engine.pricebook("BTC-USD", 2),
        "account": engine.accounts_wire()[0],
        "summary": engine.transaction_summary_wire(),
        "created": created,
        "rejected": rejected,
        "preview": preview,
        "refused": refused,
        "cancel_result": cancel["results"][0],
        "order": engine.list_orders()[0],
        "fill": engine.list_fills()[0],
    }


def _without_rate_limits(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if not k.startswith("rate_limit_")}


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_builders_match_the_simulator(data) -> None:
    sim = _simulator_objects()
    built = {
        "product": data.draw(product_objects()),
        "pricebook": data.draw(pricebooks()),
        "account": data.draw(account_objects()),
        "summary": _without_rate_limits(data.draw(summary_bodies())),
        "cancel_result": data.draw(cancel_bodies(), label="cancel")["results"],
        "order": data.draw(order_objects()),
        "fill": data.draw(fill_objects()),
    }
    create = _without_rate_limits(data.draw(create_bodies()))
    built["created" if create["success"] else "rejected"] = create
    preview = _without_rate_limits(data.draw(preview_bodies()))
    built["refused" if preview["errs"] else "preview"] = preview
    for name, obj in built.items():
        if name == "cancel_result":
            assert all(set(r) == set(sim[name]) for r in obj), name
            continue
        if name == "order":
            # the configuration's order type is drawn; the rest of the shape is fixed
            assert set(obj) == set(sim[name]), (name, set(obj) ^ set(sim[name]))
            continue
        if name in ("created", "rejected"):
            obj = {k: v for k, v in obj.items() if k != "order_configuration"}
            want = {k: v for k, v in sim[name].items() if k != "order_configuration"}
            assert _shape(obj) == _shape(want), name
            continue
        assert _shape(obj) == _shape(sim[name]), (name, _shape(obj), _shape(sim[name]))
