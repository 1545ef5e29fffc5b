"""Pure parsers of Coinbase Advanced Trade REST responses into the adapter's values.

Each `parse_*` function takes the plain dict the SDK's response object gives with `.to_dict()`
and returns the adapter's frozen dataclasses (floats, ints, strings; no SDK objects). No I/O,
no clock, no SDK import: `live_bridge.coinbase` calls the venue and hands the bodies here.

Every parser fails with one `ExchangeError` (status None) whose message names the call, the
field path and the value received (shortened to about 80 characters), e.g.
``fills: `fills[2].price` must be a positive finite decimal string, was None``, on: a missing
or null required field, a wrong JSON type, a number string that is not a finite decimal
("NaN", "inf", "abc", "1e999"), a negative size or price, a fee rate outside [0, 1), or a
malformed RFC 3339 timestamp. No KeyError, TypeError, ValueError, AttributeError,
InvalidOperation or IndexError escapes a parser.

Numbers arrive as JSON strings and are checked with `Decimal`, then returned as `float`
(the same correctly rounded value `float(text)` gives). Optional fields are named in each
parser's docstring with their default; an absent optional field, `null`, and (for optional
number strings) `""` all mean the default. Keys the parsers do not read are ignored.
"""

import datetime as dt
import math
import re
import reprlib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, NoReturn, TypeVar

from live_bridge.errors import ExchangeError
from signals.enums import ProductStatus, Side

NS = 1_000_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_OFFLINE_STATUSES = frozenset({"offline", "delisted", "internal"})
_PRODUCT_FLAGS = ("cancel_only", "trading_disabled", "is_disabled", "limit_only", "post_only")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# at most 20 digits: int() refuses very long strings (ValueError) and no count needs more
_INTEGER = re.compile(r"[0-9]{1,20}")
_SHOWN_CHARS = 80
# a bounded repr: a huge wrong-shaped value is never rendered in full just to be cut
_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 60
_SHOW.maxlist = _SHOW.maxdict = 4
_SHOW.maxlevel = 2


class _Missing:
    # stands for an absent key, so messages read "was missing"
    def __repr__(self) -> str:
        return "missing"


_MISSING: Any = _Missing()

T = TypeVar("T")


# === values returned to the daemon ============================================================


@dataclass(frozen=True)
class ProductInfo:
    """Trading metadata of one product; `status` is a `signals.enums.ProductStatus` code."""

    symbol: str
    base_increment: float
    quote_increment: float
    base_min_size: float
    quote_min_size: float
    status: int


@dataclass(frozen=True)
class Quote:
    """Best bid and ask of one product; `ts_ns` is the venue's quote time (UTC epoch ns)."""

    bid: float
    ask: float
    ts_ns: int


@dataclass(frozen=True)
class Candle:
    """One candle; `start_s` is the bucket's open time in UTC epoch seconds."""

    start_s: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True)
class ProductBook:
    """Levels of one product's book as `(price, size)` pairs, best first, as the venue sent."""

    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class AccountBalance:
    """One account: its currency, available amount and amount on hold (same currency)."""

    currency: str
    available: float
    hold: float


@dataclass(frozen=True)
class OrderAck:
    """The venue accepted an order (or returned the existing one for its client order id)."""

    order_id: str
    client_order_id: str
    symbol: str
    side: int


@dataclass(frozen=True)
class OrderRejection:
    """The venue refused an order (HTTP 200, `success: false`); the adapter raises it."""

    code: str
    message: str
    preview_failure_reason: str


@dataclass(frozen=True)
class OrderPreview:
    """The venue's preview; `errors` holds its `PREVIEW_*` codes (empty when acceptable)."""

    errors: tuple[str, ...]
    order_total: float
    commission_total: float
    base_size: float
    quote_size: float


@dataclass(frozen=True)
class OrderInfo:
    """One order as the venue reports it (sizes in base units, money in quote).

    `status` is the venue's string unchanged (upper case: "OPEN", "FILLED", "CANCELLED", ...);
    `number_of_fills` counts the executions so far; `created_ts_ns` is UTC epoch ns, 0 when the
    venue sent no creation time.
    """

    order_id: str
    client_order_id: str
    symbol: str
    side: int
    order_type: str
    status: str
    base_size: float
    limit_price: float
    filled_size: float
    average_filled_price: float
    total_fees: float
    created_ts_ns: int
    number_of_fills: int


@dataclass(frozen=True)
class FillInfo:
    """One execution; `liquidity` is "MAKER" or "TAKER", `commission` in quote currency."""

    trade_id: str
    order_id: str
    symbol: str
    side: int
    price: float
    size: float
    commission: float
    liquidity: str
    ts_ns: int


@dataclass(frozen=True)
class CancelResult:
    """The venue's answer for one order id of a batch cancel."""

    order_id: str
    success: bool
    failure_reason: str


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing: its items in the venue's order and where the next page starts.

    `cursor` is "" when the venue sent none; `has_next` is the venue's flag (for fills, which
    have no flag, whether a cursor was sent).
    """

    items: tuple[T, ...]
    cursor: str
    has_next: bool


# === timestamps and product status ============================================================


def parse_rfc3339_ns(text: str) -> int:
    """Return an RFC 3339 time as UTC epoch nanoseconds.

    Accepts `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` (`T` may be a space, surrounding
    whitespace is ignored). Fractions beyond 9 digits are truncated to nanoseconds.

    Raises
    ------
    ValueError
        When `text` is not a string of that form or names an impossible date or time.
    """
    match = _RFC3339.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        msg = f"`text` must be an RFC 3339 timestamp, was {text!r}"
        raise ValueError(msg)
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zone = match.group(7) or "", match.group(8)
    offset_secs = 0
    if zone not in ("Z", "z"):
        zone_hours, zone_minutes = int(zone[1:3]), int(zone[4:6])
        if zone_hours > 23 or zone_minutes > 59:
            msg = f"`text` must have a UTC offset within +-23:59, was {text!r}"
            raise ValueError(msg)
        offset_secs = (1 if zone[0] == "+" else -1) * (zone_hours * 3600 + zone_minutes * 60)
    try:
        stamp = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError as e:
        msg = f"`text` must be a valid date and time, was {text!r}"
        raise ValueError(msg) from e
    secs = (stamp - _EPOCH) // dt.timedelta(seconds=1) - offset_secs
    return secs * NS + int((fraction + "000000000")[:9])


def format_rfc3339_ns(ts_ns: int) -> str:
    """Return UTC epoch nanoseconds as RFC 3339 with a `Z` suffix.

    Six fractional digits when `ts_ns` is a whole number of microseconds, else nine, so
    `parse_rfc3339_ns(format_rfc3339_ns(t)) == t`.
    """
    secs, rem_ns = divmod(int(ts_ns), NS)
    base = (_EPOCH + dt.timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    if rem_ns % 1000 == 0:
        return f"{base}.{rem_ns // 1000:06d}Z"
    return f"{base}.{rem_ns:09d}Z"


def product_status_code(product: dict[str, Any]) -> int:
    """Map a Coinbase product object to a `ProductStatus` code (unknown status -> Unknown).

    A non-online status ("offline", "delisted", "internal") is Offline; on an online product
    `cancel_only`, `trading_disabled` or `is_disabled` is CancelOnly, then `limit_only`,
    `post_only`. Fields are read by truthiness; `parse_products` checks their types first.
    """
    status = str(product.get("status") or "").lower()
    if status in _OFFLINE_STATUSES:
        return ProductStatus.Offline
    if status != "online":
        return ProductStatus.Unknown
    if product.get("cancel_only") or product.get("trading_disabled") or product.get("is_disabled"):
        return ProductStatus.CancelOnly
    if product.get("limit_only"):
        return ProductStatus.LimitOnly
    if product.get("post_only"):
        return ProductStatus.PostOnly
    return ProductStatus.Online


# === field readers ============================================================================
# Each reader takes the call name (the message prefix), the field's path in the body and the
# value found there (`_MISSING` when the key is absent) and returns it typed, or raises.


def _fail(call: str, path: str, rule: str, value: Any) -> NoReturn:
    try:
        shown = _SHOW.repr(value)
    except ValueError:  # an int too long for str() (Python's 4300-digit limit)
        shown = "an integer of more than 4300 digits"
    if len(shown) > _SHOWN_CHARS:
        shown = shown[: _SHOWN_CHARS - 3] + "..."
    msg = f"{call}: `{path}` must {rule}, was {shown}"
    raise ExchangeError(msg)


def _key(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _at(obj: dict[str, Any], key: str) -> Any:
    return obj.get(key, _MISSING)


def _absent(value: Any) -> bool:
    return value is _MISSING or value is None


def _object(call: str, path: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(call, path, "be an object", value)
    return value


def _list(call: str, path: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        _fail(call, path, "be a list", value)
    return value


def _opt_list(call: str, path: str, value: Any) -> list[Any]:
    return [] if _absent(value) else _list(call, path, value)


def _string(call: str, path: str, value: Any) -> str:
    if not isinstance(value, str):
        _fail(call, path, "be a string", value)
    return value


def _text(call: str, path: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        _fail(call, path, "be a non-empty string", value)
    return value


def _opt_text(call: str, path: str, value: Any, default: str = "") -> str:
    if _absent(value):
        return default
    if not isinstance(value, str):
        _fail(call, path, "be a string", value)
    return value


def _flag(call: str, path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        _fail(call, path, "be a boolean", value)
    return value


def _opt_flag(call: str, path: str, value: Any) -> bool:
    return False if _absent(value) else _flag(call, path, value)


def _decimal(call: str, path: str, value: Any, sign: str = "") -> float:
    # sign: "" any finite value, "non-negative" >= 0, "positive" > 0
    rule = f"be a {sign + ' ' if sign else ''}finite decimal string"
    if not isinstance(value, str):
        _fail(call, path, rule, value)
    try:
        number = Decimal(value)
    except InvalidOperation:
        _fail(call, path, rule, value)
    # "1e999" is a finite Decimal but an infinite float; NaN/sNaN must not reach a comparison
    if not number.is_finite() or not math.isfinite(float(number)):
        _fail(call, path, rule, value)
    if (sign == "non-negative" and number < 0) or (sign == "positive" and number <= 0):
        _fail(call, path, rule, value)
    return float(number)


def _opt_decimal(call: str, path: str, value: Any, sign: str = "") -> float:
    if _absent(value) or value == "":
        return 0.0
    return _decimal(call, path, value, sign)


def _rate(call: str, path: str, value: Any) -> float:
    rate = _decimal(call, path, value)
    if not 0.0 <= rate < 1.0:
        _fail(call, path, "be a decimal string in [0, 1)", value)
    return rate


def _integer(call: str, path: str, value: Any) -> int:
    if not isinstance(value, str) or _INTEGER.fullmatch(value) is None:
        _fail(call, path, "be a non-negative integer string", value)
    return int(value)


def _timestamp(call: str, path: str, value: Any) -> int:
    if not isinstance(value, str):
        _fail(call, path, "be an RFC 3339 timestamp string", value)
    try:
        return parse_rfc3339_ns(value)
    except ValueError:
        _fail(call, path, "be an RFC 3339 timestamp string", value)


def _side(call: str, path: str, value: Any) -> int:
    text = value.upper() if isinstance(value, str) else None
    if text == "BUY":
        return int(Side.Buy)
    if text == "SELL":
        return int(Side.Sell)
    _fail(call, path, 'be "BUY" or "SELL"', value)


def _root(call: str, data: Any) -> dict[str, Any]:
    return _object(call, "response", data)


def _items(call: str, data: dict[str, Any], key: str) -> list[tuple[str, dict[str, Any]]]:
    # a required list of objects, with each element's path
    rows = _list(call, key, _at(data, key))
    return [(f"{key}[{i}]", _object(call, f"{key}[{i}]", row)) for i, row in enumerate(rows)]


# === market data ==============================================================================


def parse_server_time(data: dict[str, Any], *, call: str = "server time") -> int:
    """Return the venue's time in UTC epoch ns from `get_unix_time`.

    Reads `epoch_millis` (required, a non-negative integer string; the SDK renames the wire's
    `epochMillis`).
    """
    root = _root(call, data)
    return _integer(call, "epoch_millis", _at(root, "epoch_millis")) * 1_000_000


def parse_products(data: dict[str, Any], *, call: str = "products") -> dict[str, ProductInfo]:
    """Return the products of `get_products` by symbol (a repeated symbol: the last wins).

    Required: `products` (list); per product `product_id` (non-empty string),
    `base_increment` and `quote_increment` (positive decimal strings), `base_min_size` and
    `quote_min_size` (non-negative decimal strings) and `status` (string). Optional booleans,
    default false: `cancel_only`, `trading_disabled`, `is_disabled`, `limit_only`,
    `post_only`. `status` maps through `product_status_code`.
    """
    root = _root(call, data)
    out: dict[str, ProductInfo] = {}
    for path, p in _items(call, root, "products"):
        symbol = _text(call, _key(path, "product_id"), _at(p, "product_id"))
        base_increment = _decimal(
            call, _key(path, "base_increment"), _at(p, "base_increment"), "positive"
        )
        quote_increment = _decimal(
            call, _key(path, "quote_increment"), _at(p, "quote_increment"), "positive"
        )
        base_min = _decimal(
            call, _key(path, "base_min_size"), _at(p, "base_min_size"), "non-negative"
        )
        quote_min = _decimal(
            call, _key(path, "quote_min_size"), _at(p, "quote_min_size"), "non-negative"
        )
        fields: dict[str, Any] = {"status": _string(call, _key(path, "status"), _at(p, "status"))}
        for flag in _PRODUCT_FLAGS:
            fields[flag] = _opt_flag(call, _key(path, flag), _at(p, flag))
        out[symbol] = ProductInfo(
            symbol=symbol,
            base_increment=base_increment,
            quote_increment=quote_increment,
            base_min_size=base_min,
            quote_min_size=quote_min,
            status=product_status_code(fields),
        )
    return out


def parse_candles(data: dict[str, Any], *, call: str = "candles") -> list[Candle]:
    """Return the candles of `get_candles` in the venue's order (newest first).

    Required per candle of `candles` (list): `start` (non-negative integer string, UTC epoch
    seconds), `open`, `high`, `low`, `close` (positive decimal strings) and `volume`
    (non-negative decimal string).
    """
    root = _root(call, data)
    out = []
    for path, c in _items(call, root, "candles"):
        out.append(
            Candle(
                start_s=_integer(call, _key(path, "start"), _at(c, "start")),
                open=_decimal(call, _key(path, "open"), _at(c, "open"), "positive"),
                high=_decimal(call, _key(path, "high"), _at(c, "high"), "positive"),
                low=_decimal(call, _key(path, "low"), _at(c, "low"), "positive"),
                close=_decimal(call, _key(path, "close"), _at(c, "close"), "positive"),
                volume=_decimal(call, _key(path, "volume"), _at(c, "volume"), "non-negative"),
            )
        )
    return out


def parse_best_bid_ask(data: dict[str, Any], *, call: str = "best bid/ask") -> dict[str, Quote]:
    """Return the best bid/ask per symbol from `get_best_bid_ask`.

    Required: `pricebooks` (list); per book `product_id` (non-empty string). Optional: `bids`
    and `asks` (lists, default empty). A book without both sides is left out; otherwise the
    first level's `price` (positive decimal string) of each side and the book's `time`
    (RFC 3339) are required.
    """
    root = _root(call, data)
    out: dict[str, Quote] = {}
    for path, book in _items(call, root, "pricebooks"):
        symbol = _text(call, _key(path, "product_id"), _at(book, "product_id"))
        bids = _opt_list(call, _key(path, "bids"), _at(book, "bids"))
        asks = _opt_list(call, _key(path, "asks"), _at(book, "asks"))
        if not bids or not asks:
            continue
        best = []
        for side, levels in (("bids", bids), ("asks", asks)):
            level_path = _key(path, f"{side}[0]")
            level = _object(call, level_path, levels[0])
            best.append(_decimal(call, _key(level_path, "price"), _at(level, "price"), "positive"))
        out[symbol] = Quote(
            bid=best[0],
            ask=best[1],
            ts_ns=_timestamp(call, _key(path, "time"), _at(book, "time")),
        )
    return out


def parse_product_book(data: dict[str, Any], *, call: str = "product book") -> ProductBook:
    """Return the levels of `get_product_book`.

    Required: `pricebook` (object). Optional: its `bids` and `asks` (lists, default empty);
    every level needs `price` (positive decimal string) and `size` (non-negative decimal
    string).
    """
    root = _root(call, data)
    book = _object(call, "pricebook", _at(root, "pricebook"))
    sides: list[tuple[tuple[float, float], ...]] = []
    for side in ("bids", "asks"):
        side_path = f"pricebook.{side}"
        levels = []
        for i, raw in enumerate(_opt_list(call, side_path, _at(book, side))):
            path = f"{side_path}[{i}]"
            level = _object(call, path, raw)
            price = _decimal(call, _key(path, "price"), _at(level, "price"), "positive")
            size = _decimal(call, _key(path, "size"), _at(level, "size"), "non-negative")
            levels.append((price, size))
        sides.append(tuple(levels))
    return ProductBook(bids=sides[0], asks=sides[1])


# === account ==================================================================================


def parse_accounts(data: dict[str, Any], *, call: str = "accounts") -> Page[AccountBalance]:
    """Return one page of `get_accounts`.

    Required per account of `accounts` (list): `currency` (non-empty string) and
    `available_balance.value` (finite decimal string). Optional: `hold` (object; absent means
    0, present needs `value`, a finite decimal string), `cursor` (string, default "") and
    `has_next` (boolean, default false).
    """
    root = _root(call, data)
    items = []
    for path, acct in _items(call, root, "accounts"):
        currency = _text(call, _key(path, "currency"), _at(acct, "currency"))
        avail_path = _key(path, "available_balance")
        avail = _object(call, avail_path, _at(acct, "available_balance"))
        available = _decimal(call, _key(avail_path, "value"), _at(avail, "value"))
        hold = 0.0
        hold_path = _key(path, "hold")
        if not _absent(_at(acct, "hold")):
            held = _object(call, hold_path, _at(acct, "hold"))
            hold = _decimal(call, _key(hold_path, "value"), _at(held, "value"))
        items.append(AccountBalance(currency=currency, available=available, hold=hold))
    return Page(
        items=tuple(items),
        cursor=_opt_text(call, "cursor", _at(root, "cursor")),
        has_next=_opt_flag(call, "has_next", _at(root, "has_next")),
    )


def parse_fee_rates(
    data: dict[str, Any], *, call: str = "transaction summary"
) -> tuple[float, float]:
    """Return `(maker, taker)` fee rates from `get_transaction_summary`.

    Required: `fee_tier.maker_fee_rate` and `fee_tier.taker_fee_rate`, decimal strings in
    [0, 1) (fractions of notional).
    """
    root = _root(call, data)
    tier = _object(call, "fee_tier", _at(root, "fee_tier"))
    maker = _rate(call, "fee_tier.maker_fee_rate", _at(tier, "maker_fee_rate"))
    taker = _rate(call, "fee_tier.taker_fee_rate", _at(tier, "taker_fee_rate"))
    return maker, taker


# === orders ===================================================================================


def parse_preview(data: dict[str, Any], *, call: str = "preview") -> OrderPreview:
    """Return the venue's preview from `preview_order`.

    Optional: `errs` (list of strings, default empty) and `order_total`, `commission_total`,
    `base_size`, `quote_size` (non-negative decimal strings, default 0; a rejected preview
    may lack them).
    """
    root = _root(call, data)
    errors = tuple(
        _string(call, f"errs[{i}]", e)
        for i, e in enumerate(_opt_list(call, "errs", _at(root, "errs")))
    )
    return OrderPreview(
        errors=errors,
        order_total=_opt_decimal(call, "order_total", _at(root, "order_total"), "non-negative"),
        commission_total=_opt_decimal(
            call, "commission_total", _at(root, "commission_total"), "non-negative"
        ),
        base_size=_opt_decimal(call, "base_size", _at(root, "base_size"), "non-negative"),
        quote_size=_opt_decimal(call, "quote_size", _at(root, "quote_size"), "non-negative"),
    )


def parse_create_order(
    data: dict[str, Any],
    *,
    client_order_id: str,
    symbol: str,
    side: str,
    call: str = "create order",
) -> OrderAck | OrderRejection:
    """Return the acknowledgement or the rejection in a `create_order` answer.

    Required: `success` (boolean). On `success: false`, optional strings (default ""):
    `error_response.error` (else `failure_reason`, else "UNKNOWN_FAILURE_REASON"),
    `error_response.message` and `error_response.preview_failure_reason`. On `success: true`
    the order id is `success_response.order_id`, else `order_id` (one must be a non-empty
    string); `success_response.client_order_id`, `.product_id` and `.side` are optional and
    default to the request's `client_order_id`, `symbol` and `side` ("BUY" or "SELL").
    """
    root = _root(call, data)
    success = _flag(call, "success", _at(root, "success"))
    if not success:
        err: dict[str, Any] = {}
        if not _absent(_at(root, "error_response")):
            err = _object(call, "error_response", _at(root, "error_response"))
        code = _opt_text(call, "error_response.error", _at(err, "error"))
        if not code:
            code = _opt_text(call, "failure_reason", _at(root, "failure_reason"))
        return OrderRejection(
            code=code or "UNKNOWN_FAILURE_REASON",
            message=_opt_text(call, "error_response.message", _at(err, "message")),
            preview_failure_reason=_opt_text(
                call, "error_response.preview_failure_reason", _at(err, "preview_failure_reason")
            ),
        )
    ok: dict[str, Any] = {}
    if not _absent(_at(root, "success_response")):
        ok = _object(call, "success_response", _at(root, "success_response"))
    order_id = _opt_text(call, "success_response.order_id", _at(ok, "order_id"))
    if not order_id:
        order_id = _opt_text(call, "order_id", _at(root, "order_id"))
    if not order_id:
        rule = "be a non-empty string when `success` is true"
        _fail(call, "success_response.order_id", rule, _at(ok, "order_id"))
    ack_cid = _opt_text(call, "success_response.client_order_id", _at(ok, "client_order_id"))
    ack_symbol = _opt_text(call, "success_response.product_id", _at(ok, "product_id"))
    ack_side = _opt_text(call, "success_response.side", _at(ok, "side"))
    return OrderAck(
        order_id=order_id,
        client_order_id=ack_cid or client_order_id,
        symbol=ack_symbol or symbol,
        side=_side(call, "success_response.side", ack_side or side),
    )


def parse_cancel(data: dict[str, Any], *, call: str = "cancel orders") -> list[CancelResult]:
    """Return the per-order results of `cancel_orders`.

    Required per result of `results` (list): `order_id` (non-empty string) and `success`
    (boolean). Optional: `failure_reason` (string, default "").
    """
    root = _root(call, data)
    return [
        CancelResult(
            order_id=_text(call, _key(path, "order_id"), _at(r, "order_id")),
            success=_flag(call, _key(path, "success"), _at(r, "success")),
            failure_reason=_opt_text(call, _key(path, "failure_reason"), _at(r, "failure_reason")),
        )
        for path, r in _items(call, root, "results")
    ]


def parse_order_info(order: Any, *, call: str = "order", path: str = "order") -> OrderInfo:
    """Return one order object (as in `{"order": ...}` or `{"orders": [...]}`).

    Required: `order_id`, `product_id`, `status` (non-empty strings), `side` ("BUY" or
    "SELL", any case) and `number_of_fills` (non-negative integer string). Optional:
    `client_order_id` and `order_type` (strings, default ""); `filled_size` and
    `average_filled_price` (non-negative decimal strings, default 0); `total_fees` (finite
    decimal string, default 0); `created_time` (RFC 3339, default 0); `order_configuration`
    (an object holding at most one order type whose value is an object; its `base_size` and
    `limit_price` are non-negative decimal strings, default 0). `base_size` falls back to
    `filled_size` when the configuration has none (a quote-sized market order).
    """
    o = _object(call, path, order)
    spec: dict[str, Any] = {}
    spec_path = _key(path, "order_configuration")
    if not _absent(_at(o, "order_configuration")):
        config = _object(call, spec_path, _at(o, "order_configuration"))
        if len(config) > 1:
            _fail(call, spec_path, "hold one order type", config)
        for kind, value in config.items():
            spec_path = _key(spec_path, kind)
            spec = _object(call, spec_path, value)
    filled = _opt_decimal(call, _key(path, "filled_size"), _at(o, "filled_size"), "non-negative")
    base = _opt_decimal(call, _key(spec_path, "base_size"), _at(spec, "base_size"), "non-negative")
    created = _at(o, "created_time")
    return OrderInfo(
        order_id=_text(call, _key(path, "order_id"), _at(o, "order_id")),
        client_order_id=_opt_text(call, _key(path, "client_order_id"), _at(o, "client_order_id")),
        symbol=_text(call, _key(path, "product_id"), _at(o, "product_id")),
        side=_side(call, _key(path, "side"), _at(o, "side")),
        order_type=_opt_text(call, _key(path, "order_type"), _at(o, "order_type")),
        status=_text(call, _key(path, "status"), _at(o, "status")),
        base_size=base or filled,
        limit_price=_opt_decimal(
            call, _key(spec_path, "limit_price"), _at(spec, "limit_price"), "non-negative"
        ),
        filled_size=filled,
        average_filled_price=_opt_decimal(
            call, _key(path, "average_filled_price"), _at(o, "average_filled_price"), "non-negative"
        ),
        total_fees=_opt_decimal(call, _key(path, "total_fees"), _at(o, "total_fees")),
        created_ts_ns=0
        if _absent(created) or created == ""
        else _timestamp(call, _key(path, "created_time"), created),
        number_of_fills=_integer(call, _key(path, "number_of_fills"), _at(o, "number_of_fills")),
    )


def parse_order(data: dict[str, Any], *, call: str = "order") -> OrderInfo:
    """Return the order of `get_order`: `order` is required (see `parse_order_info`)."""
    root = _root(call, data)
    return parse_order_info(_at(root, "order"), call=call, path="order")


def parse_orders(data: dict[str, Any], *, call: str = "orders") -> Page[OrderInfo]:
    """Return one page of `list_orders`, in the venue's order (newest first).

    Required: `orders` (list of order objects, see `parse_order_info`). Optional: `cursor`
    (string, default "") and `has_next` (boolean, default false).
    """
    root = _root(call, data)
    rows = _list(call, "orders", _at(root, "orders"))
    return Page(
        items=tuple(
            parse_order_info(o, call=call, path=f"orders[{i}]") for i, o in enumerate(rows)
        ),
        cursor=_opt_text(call, "cursor", _at(root, "cursor")),
        has_next=_opt_flag(call, "has_next", _at(root, "has_next")),
    )


def parse_fills(data: dict[str, Any], *, call: str = "fills") -> Page[FillInfo]:
    """Return one page of `get_fills`, in the venue's order (newest first).

    Required per fill of `fills` (list): `trade_id`, `order_id`, `product_id` (non-empty
    strings), `side` ("BUY" or "SELL"), `price` (positive decimal string), `size`
    (non-negative decimal string), `commission` (finite decimal string) and `trade_time`
    (RFC 3339). Optional: `liquidity_indicator` (string, default "") and `cursor` (string,
    default ""; the page has a next one when it is non-empty).
    """
    root = _root(call, data)
    items = []
    for path, f in _items(call, root, "fills"):
        items.append(
            FillInfo(
                trade_id=_text(call, _key(path, "trade_id"), _at(f, "trade_id")),
                order_id=_text(call, _key(path, "order_id"), _at(f, "order_id")),
                symbol=_text(call, _key(path, "product_id"), _at(f, "product_id")),
                side=_side(call, _key(path, "side"), _at(f, "side")),
                price=_decimal(call, _key(path, "price"), _at(f, "price"), "positive"),
                size=_decimal(call, _key(path, "size"), _at(f, "size"), "non-negative"),
                commission=_decimal(call, _key(path, "commission"), _at(f, "commission")),
                liquidity=_opt_text(
                    call, _key(path, "liquidity_indicator"), _at(f, "liquidity_indicator")
                ),
                ts_ns=_timestamp(call, _key(path, "trade_time"), _at(f, "trade_time")),
            )
        )
    cursor = _opt_text(call, "cursor", _at(root, "cursor"))
    return Page(items=tuple(items), cursor=cursor, has_next=bool(cursor))
