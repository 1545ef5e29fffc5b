"""Coinbase Advanced Trade adapter: the only module that touches coinbase-advanced-py.

Every method returns plain Python or polars values (no SDK objects leak) and translates
errors at the boundary, most specific first, keeping the cause (`raise ... from e`):

- TLS verification failure -> `ExchangeError` (not retried);
- HTTP 429 / 5xx, timeouts, connection errors -> `TransientExchangeError`, retried with
  capped exponential backoff and full jitter (honouring `retry-after`), raised once the
  retries are exhausted;
- other HTTP 4xx, non-JSON bodies -> `ExchangeError`;
- HTTP 200 with `success: false` on create order -> `OrderRejectedError` carrying the venue's
  error code (never retried).

Retrying a create is safe: Coinbase returns the existing order for a repeated
`client_order_id`, so a request that reached the venue before a timeout is not duplicated.

The SDK reads `COINBASE_API_KEY` / `COINBASE_API_SECRET` at import time as default arguments,
so keys are always passed explicitly here; `CoinbaseCredentials.from_env()` reads them when
the daemon starts.
"""

import datetime as dt
import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, TypeVar, cast

import polars as pl
import requests
from coinbase.rest import RESTClient
from pydantic import BaseModel, SecretStr

from live_bridge.errors import ExchangeError, OrderRejectedError, TransientExchangeError
from signals.enums import ProductStatus, Side
from signals.errors import ConfigError

log = logging.getLogger("live_bridge.coinbase")

NS = 1_000_000_000
MAX_CANDLES_PER_REQUEST = 350
PRODUCTS_TTL_SECS = 300.0
GRANULARITY_SECS = {
    "ONE_MINUTE": 60,
    "FIVE_MINUTE": 300,
    "FIFTEEN_MINUTE": 900,
    "THIRTY_MINUTE": 1800,
    "ONE_HOUR": 3600,
    "TWO_HOUR": 7200,
    "FOUR_HOUR": 14400,
    "SIX_HOUR": 21600,
    "ONE_DAY": 86400,
}
_OFFLINE_STATUSES = frozenset({"offline", "delisted", "internal"})
_ENV_PAIRS = (("COINBASE_API_KEY", "COINBASE_API_SECRET"), ("CB_API_KEY", "CB_API_SECRET"))
BAR_SCHEMA: dict[str, Any] = {
    "ts": pl.Datetime("ns", "UTC"),
    "symbol": pl.String,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
}

T = TypeVar("T")


# === values returned to the daemon ============================================================


class CoinbaseCredentials(BaseModel, frozen=True, extra="forbid"):
    """A CDP API key name and its private key; the secret never shows in `repr` or logs."""

    api_key: str
    api_secret: SecretStr

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "CoinbaseCredentials":
        """Read `COINBASE_API_KEY`/`COINBASE_API_SECRET`, else `CB_API_KEY`/`CB_API_SECRET`.

        Raises
        ------
        ConfigError
            When neither pair is fully set (the message names the variables, never values).
        """
        env = os.environ if environ is None else environ
        for key_var, secret_var in _ENV_PAIRS:
            key, secret = env.get(key_var, ""), env.get(secret_var, "")
            if key and secret:
                return cls(api_key=key, api_secret=SecretStr(secret))
        msg = (
            "Coinbase credentials must be set in COINBASE_API_KEY and COINBASE_API_SECRET "
            "(or CB_API_KEY and CB_API_SECRET), was missing"
        )
        raise ConfigError(msg)


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
class OrderAck:
    """The venue accepted an order (or returned the existing one for its client order id)."""

    order_id: str
    client_order_id: str
    symbol: str
    side: int


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
    """One order as the venue reports it (sizes in base units, money in quote)."""

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


# === helpers ==================================================================================


def parse_rfc3339_ns(text: str) -> int:
    """Return an RFC 3339 UTC time (`...Z` or `+00:00`, up to 9 fractional digits) as epoch ns."""
    s = text.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    frac_ns = 0
    if "." in s:
        head, rest = s.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        frac_ns = int((digits + "000000000")[:9])
        s = head + rest
    stamp = dt.datetime.fromisoformat(s)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return int(stamp.timestamp()) * NS + frac_ns


def format_increment(value: str | float | Decimal, increment: float, rounding: str) -> str:
    """Return `value` rounded to a multiple of `increment` as a plain decimal string."""
    try:
        d = Decimal(str(value))
    except InvalidOperation as e:
        msg = f"`value` must be a decimal number, was {value!r}"
        raise ValueError(msg) from e
    inc = Decimal(repr(float(increment))).normalize()
    out = (d / inc).to_integral_value(rounding=rounding) * inc
    places = max(0, -inc.as_tuple().exponent)  # type: ignore[operator]
    return f"{out:.{places}f}"


def _side_str(side: int | str) -> str:
    if side in (Side.Buy, "BUY", "buy"):
        return "BUY"
    if side in (Side.Sell, "SELL", "sell"):
        return "SELL"
    msg = f"`side` must be Side.Buy (1) or Side.Sell (-1), was {side!r}"
    raise ValueError(msg)


def _side_code(side: str) -> int:
    return Side.Buy if str(side).upper() == "BUY" else Side.Sell


def _f(value: Any) -> float:
    if value in (None, ""):
        return 0.0
    return float(value)


def product_status_code(product: dict[str, Any]) -> int:
    """Map a Coinbase product object to a `ProductStatus` code (unknown status -> Unknown).

    A non-online status ("offline", "delisted", "internal") is Offline; on an online product
    `cancel_only` or `trading_disabled` is CancelOnly, then `limit_only`, `post_only`.
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


def _retry_after(response: requests.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


# === the adapter ==============================================================================


class CoinbaseAdapter:
    """Typed, retrying wrapper over `coinbase.rest.RESTClient`.

    Parameters
    ----------
    credentials : CoinbaseCredentials
        Key name and private key (always passed explicitly to the SDK).
    base_url : str, optional
        `host:port` without scheme (the SDK forces https); None means production.
    ca_path : str, optional
        A CA bundle to trust instead of the system one (the exchange simulator's CA). Also
        sets `session.trust_env = False`, else `REQUESTS_CA_BUNDLE` would override it.
    timeout_secs : float
        Per-request timeout passed to requests.
    max_retries : int
        Retries of a transient failure (so at most `max_retries + 1` attempts).
    backoff_base_secs, backoff_cap_secs : float
        Attempt `n` (0-based) waits `uniform(0.5, 1) * min(cap, base * 2**n)`, or the venue's
        `retry-after` if longer, never more than the cap.
    sleep : callable
        Injected for tests.
    monotonic : callable
        Clock of the product cache (refreshed every 300 s).
    seed : int, optional
        Seeds the backoff jitter.
    """

    def __init__(
        self,
        credentials: CoinbaseCredentials,
        base_url: str | None = None,
        ca_path: str | None = None,
        timeout_secs: float = 10.0,
        max_retries: int = 4,
        backoff_base_secs: float = 0.2,
        backoff_cap_secs: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        seed: int | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {
            "api_key": credentials.api_key,
            "api_secret": credentials.api_secret.get_secret_value(),
            "timeout": timeout_secs,
            "rate_limit_headers": True,
        }
        if base_url is not None:
            kwargs["base_url"] = base_url
        self._client = RESTClient(**kwargs)
        if ca_path is not None:
            self._client.session.verify = ca_path
            self._client.session.trust_env = False
        self.max_retries = int(max_retries)
        self.backoff_base_secs = float(backoff_base_secs)
        self.backoff_cap_secs = float(backoff_cap_secs)
        self._sleep = sleep
        self._monotonic = monotonic
        self._rng = random.Random(seed)
        self._products: dict[str, ProductInfo] = {}
        self._products_at: float | None = None
        self.candles_per_request = MAX_CANDLES_PER_REQUEST

    def close(self) -> None:
        """Close the HTTP session (its pooled connections)."""
        self._client.session.close()

    def __enter__(self) -> "CoinbaseAdapter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CoinbaseAdapter(base_url={self._client.base_url!r})"

    # --- transport ------------------------------------------------------------------------

    def _call(self, what: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        attempt = 0
        while True:
            try:
                return self._translate(what, func, *args, **kwargs)
            except TransientExchangeError as e:
                if attempt >= self.max_retries:
                    raise
                delay = min(self.backoff_cap_secs, self.backoff_base_secs * 2**attempt)
                delay *= self._rng.uniform(0.5, 1.0)
                if e.retry_after_secs is not None:
                    delay = min(self.backoff_cap_secs, max(delay, e.retry_after_secs))
                attempt += 1
                log.warning(
                    "%s failed (attempt %d of %d), retrying in %.3f s: %s",
                    what,
                    attempt,
                    self.max_retries + 1,
                    delay,
                    e,
                )
                self._sleep(delay)

    def _translate(self, what: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return func(*args, **kwargs)
        except requests.exceptions.SSLError as e:
            msg = f"{what}: TLS verification failed: {e}"
            raise ExchangeError(msg) from e
        except requests.exceptions.HTTPError as e:
            status = e.response.status_code if e.response is not None else None
            msg = f"{what}: {e}"
            if status is not None and (status == 429 or status >= 500):
                raise TransientExchangeError(
                    msg, status=status, retry_after_secs=_retry_after(e.response)
                ) from e
            raise ExchangeError(msg, status=status) from e
        except requests.exceptions.Timeout as e:
            msg = f"{what}: timed out: {e}"
            raise TransientExchangeError(msg) from e
        except requests.exceptions.ConnectionError as e:
            msg = f"{what}: connection failed: {e}"
            raise TransientExchangeError(msg) from e
        except requests.exceptions.RequestException as e:
            msg = f"{what}: bad response: {e}"
            raise ExchangeError(msg) from e

    def _get_dict(self, what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> dict:
        return self._call(what, func, *args, **kwargs).to_dict()

    # --- market data ----------------------------------------------------------------------

    def server_time_ns(self) -> int:
        """Return the venue's time, UTC epoch ns."""
        data = self._get_dict("server time", self._client.get_unix_time)
        return int(data["epoch_millis"]) * 1_000_000

    def products(self, refresh: bool = False) -> dict[str, ProductInfo]:
        """Return spot products by symbol, cached for 300 s (monotonic) unless `refresh`."""
        now = self._monotonic()
        fresh = self._products_at is not None and now - self._products_at < PRODUCTS_TTL_SECS
        if fresh and not refresh:
            return dict(self._products)
        data = self._get_dict(
            "products", self._client.get_products, product_type="SPOT", get_all_products=False
        )
        out = {}
        for p in data.get("products") or []:
            symbol = p["product_id"]
            out[symbol] = ProductInfo(
                symbol=symbol,
                base_increment=_f(p.get("base_increment")),
                quote_increment=_f(p.get("quote_increment")),
                base_min_size=_f(p.get("base_min_size")),
                quote_min_size=_f(p.get("quote_min_size")),
                status=product_status_code(p),
            )
        self._products, self._products_at = out, now
        return dict(out)

    def _product(self, symbol: str) -> ProductInfo:
        info = self.products().get(symbol)
        if info is None:
            info = self.products(refresh=True).get(symbol)
        if info is None:
            msg = f"`symbol` must be a product listed by the venue, was {symbol!r}"
            raise ExchangeError(msg, status=404)
        return info

    def candles(
        self,
        symbol: str,
        start_ts_ns: int,
        end_ts_ns: int,
        granularity: str = "ONE_HOUR",
        *,
        now_ns: int | None = None,
    ) -> pl.DataFrame:
        """Return closed bars of `symbol` with open time in `[start_ts_ns, end_ts_ns)`.

        Requests are chunked at `candles_per_request` (350) candles. The result is in the bar
        schema, sorted by `ts` ascending; bars still in progress at `now_ns` (default: the
        venue's time) are dropped.
        """
        if granularity not in GRANULARITY_SECS:
            msg = f"`granularity` must be one of {sorted(GRANULARITY_SECS)}, was {granularity!r}"
            raise ValueError(msg)
        g = GRANULARITY_SECS[granularity]
        if now_ns is None:
            now_ns = self.server_time_ns()
        start_s = -(-int(start_ts_ns) // NS)
        end_s = -(-int(end_ts_ns) // NS)
        rows: dict[int, tuple[float, float, float, float, float]] = {}
        chunk = self.candles_per_request * g
        t = start_s
        while t < end_s:
            stop = min(end_s, t + chunk)
            data = self._get_dict(
                f"candles {symbol}",
                self._client.get_candles,
                symbol,
                str(t),
                str(stop),
                granularity,
            )
            for c in data.get("candles") or []:
                ts_s = int(c["start"])
                if t <= ts_s < stop:
                    rows[ts_s] = (
                        float(c["open"]),
                        float(c["high"]),
                        float(c["low"]),
                        float(c["close"]),
                        float(c["volume"]),
                    )
            t = stop
        keep = sorted(ts for ts in rows if (ts + g) * NS <= now_ns)
        return pl.DataFrame(
            {
                "ts": [ts * NS for ts in keep],
                "symbol": [symbol] * len(keep),
                "open": [rows[ts][0] for ts in keep],
                "high": [rows[ts][1] for ts in keep],
                "low": [rows[ts][2] for ts in keep],
                "close": [rows[ts][3] for ts in keep],
                "volume": [rows[ts][4] for ts in keep],
            },
            schema={**BAR_SCHEMA, "ts": pl.Int64},
        ).with_columns(pl.col("ts").cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"))

    def best_bid_ask(self, symbols: Iterable[str]) -> dict[str, Quote]:
        """Return the best bid/ask per symbol (symbols without a two-sided book are left out)."""
        data = self._get_dict("best bid/ask", self._client.get_best_bid_ask, list(symbols))
        out = {}
        for book in data.get("pricebooks") or []:
            bids, asks = book.get("bids") or [], book.get("asks") or []
            if not bids or not asks:
                continue
            out[book["product_id"]] = Quote(
                bid=float(bids[0]["price"]),
                ask=float(asks[0]["price"]),
                ts_ns=parse_rfc3339_ns(book["time"]),
            )
        return out

    def book_depth_usd(self, symbol: str, within_bps: float = 20.0) -> tuple[float, float]:
        """Return `(bid_usd, ask_usd)`: quote notional resting within `within_bps` of the mid."""
        data = self._get_dict(
            f"product book {symbol}", self._client.get_product_book, symbol, limit=1000
        )
        book = data.get("pricebook") or {}
        bids, asks = book.get("bids") or [], book.get("asks") or []
        if not bids or not asks:
            return 0.0, 0.0
        mid = (float(bids[0]["price"]) + float(asks[0]["price"])) / 2
        lo, hi = mid * (1 - within_bps / 1e4), mid * (1 + within_bps / 1e4)
        bid_usd = sum(float(x["price"]) * float(x["size"]) for x in bids if float(x["price"]) >= lo)
        ask_usd = sum(float(x["price"]) * float(x["size"]) for x in asks if float(x["price"]) <= hi)
        return bid_usd, ask_usd

    # --- account --------------------------------------------------------------------------

    def balances(self, *, available_only: bool = False) -> dict[str, float]:
        """Return the balance per currency: available + hold (or available only)."""
        out: dict[str, float] = {}
        cursor: str | None = None
        while True:
            data = self._get_dict("accounts", self._client.get_accounts, limit=250, cursor=cursor)
            for acct in data.get("accounts") or []:
                total = _f((acct.get("available_balance") or {}).get("value"))
                if not available_only:
                    total += _f((acct.get("hold") or {}).get("value"))
                out[acct["currency"]] = out.get(acct["currency"], 0.0) + total
            cursor = data.get("cursor")
            if not data.get("has_next") or not cursor:
                return out

    def fee_rates(self) -> tuple[float, float]:
        """Return `(maker, taker)` fee rates of the account's tier (fractions of notional)."""
        data = self._get_dict(
            "transaction summary", self._client.get_transaction_summary, product_type="SPOT"
        )
        tier = data.get("fee_tier") or {}
        return float(tier["maker_fee_rate"]), float(tier["taker_fee_rate"])

    # --- orders ---------------------------------------------------------------------------

    def _size(self, symbol: str, base_size: str | float) -> str:
        return format_increment(base_size, self._product(symbol).base_increment, ROUND_FLOOR)

    def _price(self, symbol: str, price: str | float, side: str) -> str:
        # buys round down and sells up, so rounding never makes a post-only order cross
        rounding = ROUND_FLOOR if side == "BUY" else ROUND_CEILING
        return format_increment(price, self._product(symbol).quote_increment, rounding)

    def _quote(self, symbol: str, quote_size: str | float) -> str:
        return format_increment(quote_size, self._product(symbol).quote_increment, ROUND_FLOOR)

    def preview_order(
        self,
        symbol: str,
        side: int | str,
        *,
        base_size: str | float | None = None,
        quote_size: str | float | None = None,
        limit_price: str | float | None = None,
        post_only: bool = True,
    ) -> OrderPreview:
        """Return the venue's preview of a market order or (with `limit_price`) a GTC limit."""
        side_s = _side_str(side)
        config = self._order_configuration(symbol, side_s, base_size, quote_size, limit_price)
        if limit_price is not None:
            config["limit_limit_gtc"]["post_only"] = post_only
        data = self._get_dict(
            f"preview {symbol}", self._client.preview_order, symbol, side_s, config
        )
        return OrderPreview(
            errors=tuple(str(x) for x in data.get("errs") or []),
            order_total=_f(data.get("order_total")),
            commission_total=_f(data.get("commission_total")),
            base_size=_f(data.get("base_size")),
            quote_size=_f(data.get("quote_size")),
        )

    def _order_configuration(
        self,
        symbol: str,
        side: str,
        base_size: str | float | None,
        quote_size: str | float | None,
        limit_price: str | float | None,
    ) -> dict[str, dict[str, Any]]:
        if limit_price is not None:
            if base_size is None:
                msg = "`base_size` must be given for a limit order, was None"
                raise ValueError(msg)
            return {
                "limit_limit_gtc": {
                    "base_size": self._size(symbol, base_size),
                    "limit_price": self._price(symbol, limit_price, side),
                }
            }
        if (base_size is None) == (quote_size is None):
            msg = "exactly one of `base_size`, `quote_size` must be given, was both or neither"
            raise ValueError(msg)
        if side == "SELL" and base_size is None:
            msg = "`base_size` must be given for a market sell, was None"
            raise ValueError(msg)
        if quote_size is not None:
            return {"market_market_ioc": {"quote_size": self._quote(symbol, quote_size)}}
        return {"market_market_ioc": {"base_size": self._size(symbol, cast(str, base_size))}}

    def _create(
        self, client_order_id: str, symbol: str, side: str, config: dict[str, Any]
    ) -> OrderAck:
        if not client_order_id:
            msg = "`client_order_id` must be non-empty (it makes retries idempotent), was ''"
            raise ValueError(msg)
        data = self._get_dict(
            f"create order {client_order_id}",
            self._client.create_order,
            client_order_id,
            symbol,
            side,
            config,
        )
        if not data.get("success"):
            err = data.get("error_response") or {}
            code = str(err.get("error") or data.get("failure_reason") or "UNKNOWN_FAILURE_REASON")
            preview = str(err.get("preview_failure_reason") or "")
            msg = (
                f"order {client_order_id} on {symbol} rejected by the venue: {code} "
                f"({err.get('message', '')}; {preview})"
            )
            raise OrderRejectedError(msg, code=code, preview_failure_reason=preview)
        ok = data.get("success_response") or {}
        return OrderAck(
            order_id=str(ok.get("order_id") or data.get("order_id")),
            client_order_id=str(ok.get("client_order_id") or client_order_id),
            symbol=str(ok.get("product_id") or symbol),
            side=_side_code(str(ok.get("side") or side)),
        )

    def place_limit_post_only(
        self,
        client_order_id: str,
        symbol: str,
        side: int | str,
        base_size: str | float,
        limit_price: str | float,
    ) -> OrderAck:
        """Place a post-only GTC limit; size and price are rounded to the product increments.

        Raises
        ------
        OrderRejectedError
            The venue refused it (e.g. `INVALID_LIMIT_PRICE_POST_ONLY` when it would cross).
        """
        side_s = _side_str(side)
        config = self._order_configuration(symbol, side_s, base_size, None, limit_price)
        config["limit_limit_gtc"]["post_only"] = True
        return self._create(client_order_id, symbol, side_s, config)

    def place_market(
        self,
        client_order_id: str,
        symbol: str,
        side: int | str,
        base_size: str | float | None = None,
        quote_size: str | float | None = None,
    ) -> OrderAck:
        """Place an IOC market order sized by `base_size` or (buys only) `quote_size`.

        A quote-sized buy spends `quote_size` including the taker fee (Coinbase semantics).
        """
        side_s = _side_str(side)
        config = self._order_configuration(symbol, side_s, base_size, quote_size, None)
        return self._create(client_order_id, symbol, side_s, config)

    def cancel(self, order_ids: Iterable[str]) -> list[CancelResult]:
        """Cancel orders in batches of 100; per-order failures are returned, not raised."""
        ids = list(order_ids)
        out: list[CancelResult] = []
        for i in range(0, len(ids), 100):
            data = self._get_dict("cancel orders", self._client.cancel_orders, ids[i : i + 100])
            out.extend(
                CancelResult(
                    order_id=str(r.get("order_id")),
                    success=bool(r.get("success")),
                    failure_reason=str(r.get("failure_reason") or ""),
                )
                for r in data.get("results") or []
            )
        return out

    def order(self, order_id: str) -> OrderInfo:
        """Return one order by venue id (`ExchangeError` status 404 when unknown)."""
        data = self._get_dict(f"order {order_id}", self._client.get_order, order_id)
        return _order_info(data["order"])

    def open_orders(self, symbol: str | None = None) -> list[OrderInfo]:
        """Return the orders still OPEN or PENDING (of one symbol, or all)."""
        out: list[OrderInfo] = []
        cursor: str | None = None
        while True:
            data = self._get_dict(
                "open orders",
                self._client.list_orders,
                product_ids=[symbol] if symbol else None,
                order_status=["OPEN", "PENDING"],
                limit=100,
                cursor=cursor,
            )
            out.extend(_order_info(o) for o in data.get("orders") or [])
            cursor = data.get("cursor")
            if not data.get("has_next") or not cursor:
                return out

    def fills(self, order_id: str | None = None, symbol: str | None = None) -> list[FillInfo]:
        """Return fills (of one order and/or symbol), oldest first."""
        out: list[FillInfo] = []
        cursor: str | None = None
        while True:
            data = self._get_dict(
                "fills",
                self._client.get_fills,
                order_ids=[order_id] if order_id else None,
                product_ids=[symbol] if symbol else None,
                limit=100,
                cursor=cursor,
            )
            out.extend(
                FillInfo(
                    trade_id=str(f["trade_id"]),
                    order_id=str(f["order_id"]),
                    symbol=str(f["product_id"]),
                    side=_side_code(str(f.get("side"))),
                    price=_f(f.get("price")),
                    size=_f(f.get("size")),
                    commission=_f(f.get("commission")),
                    liquidity=str(f.get("liquidity_indicator") or ""),
                    ts_ns=parse_rfc3339_ns(str(f["trade_time"])),
                )
                for f in data.get("fills") or []
            )
            cursor = data.get("cursor")
            if not cursor:
                return sorted(out, key=lambda x: (x.ts_ns, x.trade_id))


def _order_info(o: dict[str, Any]) -> OrderInfo:
    ((_, spec),) = (o.get("order_configuration") or {"": {}}).items()
    spec = spec or {}
    base = _f(spec.get("base_size")) or _f(o.get("filled_size"))
    return OrderInfo(
        order_id=str(o["order_id"]),
        client_order_id=str(o.get("client_order_id") or ""),
        symbol=str(o["product_id"]),
        side=_side_code(str(o.get("side"))),
        order_type=str(o.get("order_type") or ""),
        status=str(o.get("status") or ""),
        base_size=base,
        limit_price=_f(spec.get("limit_price")),
        filled_size=_f(o.get("filled_size")),
        average_filled_price=_f(o.get("average_filled_price")),
        total_fees=_f(o.get("total_fees")),
        created_ts_ns=parse_rfc3339_ns(str(o["created_time"])) if o.get("created_time") else 0,
    )
