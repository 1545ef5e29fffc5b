"""Coinbase Advanced Trade adapter: the only module that touches coinbase-advanced-py.

Every method returns plain Python or polars values (no SDK objects leak) and translates
errors at the boundary, most specific first, keeping the cause (`raise ... from e`):

- TLS verification failure -> `ExchangeError` (not retried);
- HTTP 401 / 403 -> `AuthenticationError` (not retried), naming the call and the variables
  to check;
- HTTP 429 / 5xx, timeouts, connection errors -> `TransientExchangeError`, retried with
  capped exponential backoff and full jitter (honouring `retry-after`), raised once the
  retries are exhausted;
- other HTTP 4xx, non-JSON bodies, bodies the SDK's response classes cannot read ->
  `ExchangeError`;
- a body with a missing, mistyped or out-of-range field -> `ExchangeError` naming the call,
  the field path and the value (the parsers live in `live_bridge.wire`);
- HTTP 200 with `success: false` on create order -> `OrderRejectedError` carrying the venue's
  error code (never retried).

Retrying a create is safe: Coinbase returns the existing order for a repeated
`client_order_id`, so a request that reached the venue before a timeout is not duplicated.

The SDK reads `COINBASE_API_KEY` / `COINBASE_API_SECRET` at import time as default arguments,
so keys are always passed explicitly here; `CoinbaseCredentials.from_env()` reads them when
the daemon starts, and `CoinbaseCredentials` refuses a key the SDK could not sign with.
"""

import base64
import binascii
import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, TypeVar, cast

import polars as pl
import requests
from coinbase.rest import RESTClient
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from pydantic import BaseModel, SecretStr, ValidationInfo, field_validator

from live_bridge import wire
from live_bridge.errors import (
    AuthenticationError,
    ExchangeError,
    OrderRejectedError,
    TransientExchangeError,
)
from live_bridge.wire import (
    CancelResult,
    FillInfo,
    OrderAck,
    OrderInfo,
    OrderPreview,
    OrderRejection,
    Page,
    ProductInfo,
    Quote,
    parse_rfc3339_ns,
    product_status_code,
)
from signals.enums import Side
from signals.errors import ConfigError
from signals.granularity import GRANULARITY_SECS, MAX_CANDLES_PER_REQUEST

__all__ = [
    "BAR_SCHEMA",
    "GRANULARITY_SECS",
    "CancelResult",
    "CoinbaseAdapter",
    "CoinbaseCredentials",
    "FillInfo",
    "OrderAck",
    "OrderInfo",
    "OrderPreview",
    "ProductInfo",
    "Quote",
    "format_increment",
    "parse_rfc3339_ns",
    "product_status_code",
]

log = logging.getLogger("live_bridge.coinbase")
# The SDK logs every HTTP error itself, on its own stderr handler and again through the root
# logger; the adapter raises each one as ours with the same text, so the SDK's logger is muted
# (else a refused start prints three lines, and every failed request two more log lines).
_SDK_LOG = logging.getLogger("coinbase.RESTClient")
for _handler in list(_SDK_LOG.handlers):
    _SDK_LOG.removeHandler(_handler)
_SDK_LOG.setLevel(logging.CRITICAL)

NS = 1_000_000_000
PRODUCTS_TTL_SECS = 300.0
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

_SECRET_FORMS = (
    "a CDP private key: an EC P-256 PEM (-----BEGIN EC PRIVATE KEY-----), an Ed25519 PKCS8 PEM "
    "(-----BEGIN PRIVATE KEY-----), either with literal \\n escapes allowed, or the base64 of "
    "a 32- or 64-byte Ed25519 key"
)
_AUTH_HINT = "check COINBASE_API_KEY / COINBASE_API_SECRET and the key's scopes"

T = TypeVar("T")


# === credentials ==============================================================================


def _secret_problem(secret: str) -> str | None:
    # Mirrors coinbase.jwt_generator._load_private_key after the SDK's `unicode_escape`
    # decoding (api_base.py). The answer describes the value's kind, never any of its text.
    if not secret.strip():
        return "empty"
    try:
        text = bytes(secret, "utf8").decode("unicode_escape")
    except UnicodeDecodeError:
        return "text with a broken backslash escape"
    if text.lstrip().startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode("utf-8"), password=None)
        except TypeError:
            return "an encrypted PEM (the SDK signs only with unencrypted keys)"
        except (ValueError, UnsupportedAlgorithm):
            return "a PEM that holds no readable private key"
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return None
        if isinstance(key, ec.EllipticCurvePrivateKey):
            if isinstance(key.curve, ec.SECP256R1):
                return None
            return f"a PEM of an EC key on curve {key.curve.name}"
        return f"a PEM of a {type(key).__name__}"
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return "neither a PEM nor base64"
    if len(raw) not in (32, 64):
        return f"base64 of {len(raw)} bytes"
    return None


def _field_name(info: ValidationInfo, field: str) -> str:
    # `from_env` passes the environment variable names as the validation context
    context = info.context if isinstance(info.context, dict) else {}
    return str(context.get(field, field))


class CoinbaseCredentials(BaseModel, frozen=True, extra="forbid"):
    """A CDP API key name and its private key; the secret never shows in `repr` or logs.

    Construction refuses what the SDK could not sign a request with, raising `ConfigError`
    with one line that names the field (the environment variable when built by `from_env`)
    and the accepted forms, never the secret or any part of it: an empty key name, or a
    secret that is not an unencrypted EC P-256 or Ed25519 PEM (literal `\\n` escapes are
    decoded, as the SDK does) nor the base64 of a 32- or 64-byte Ed25519 key. The keys are
    loaded with `cryptography` to check them.
    """

    api_key: str
    api_secret: SecretStr

    @field_validator("api_key")
    @classmethod
    def check_api_key(cls, value: str, info: ValidationInfo) -> str:
        """Refuse an empty (or blank) key name."""
        if not value.strip():
            name = _field_name(info, "api_key")
            msg = (
                f"`{name}` must be a CDP API key name (organizations/<org>/apiKeys/<id>), was empty"
            )
            raise ConfigError(msg)
        return value

    @field_validator("api_secret")
    @classmethod
    def check_api_secret(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        """Refuse a private key the SDK cannot sign with (the message never quotes it)."""
        problem = _secret_problem(value.get_secret_value())
        if problem is not None:
            name = _field_name(info, "api_secret")
            msg = f"`{name}` must be {_SECRET_FORMS}, was {problem} (the value is not shown)"
            raise ConfigError(msg)
        return value

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "CoinbaseCredentials":
        """Read `COINBASE_API_KEY`/`COINBASE_API_SECRET`, else `CB_API_KEY`/`CB_API_SECRET`.

        Raises
        ------
        ConfigError
            When neither pair is fully set, or the first fully set pair holds a blank key name
            or a secret the SDK cannot sign with (the message names the variables, never
            values).
        """
        env = os.environ if environ is None else environ
        for key_var, secret_var in _ENV_PAIRS:
            key, secret = env.get(key_var, ""), env.get(secret_var, "")
            if key and secret:
                return cls.model_validate(
                    {"api_key": key, "api_secret": secret},
                    context={"api_key": key_var, "api_secret": secret_var},
                )
        msg = (
            "Coinbase credentials must be set in COINBASE_API_KEY and COINBASE_API_SECRET "
            "(or CB_API_KEY and CB_API_SECRET), was missing"
        )
        raise ConfigError(msg)


# === helpers ==================================================================================


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
        Full jitter: after failed attempt `n` (0-based) the adapter waits
        `uniform(0, min(cap, base * 2**n))`, or the venue's `retry-after` if longer, never
        more than the cap.
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
        self.on_request: Callable[[str, str, float, bool], None] | None = None
        """Called after every HTTP attempt with (endpoint, code, seconds, ok); the endpoint is
        the SDK method's name, the code the HTTP status or `timeout`/`connection`/`tls`/`error`."""
        self.before_request: Callable[[str], None] | None = None
        """Called with the endpoint before every HTTP attempt (a rate limiter may wait here)."""

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
                bound = min(self.backoff_cap_secs, self.backoff_base_secs * 2**attempt)
                delay = self._rng.uniform(0.0, bound)  # full jitter
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

    def _timed(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # one HTTP attempt, reported to `on_request` whatever its outcome
        endpoint = getattr(func, "__name__", "call")
        if self.before_request is not None:
            self.before_request(endpoint)
        start = time.perf_counter()
        code = "error"
        try:
            out = func(*args, **kwargs)
            code = "200"
            return out
        except requests.exceptions.HTTPError as e:
            status = e.response.status_code if e.response is not None else None
            code = str(status) if status is not None else "error"
            raise
        except requests.exceptions.SSLError:
            code = "tls"
            raise
        except requests.exceptions.Timeout:
            code = "timeout"
            raise
        except requests.exceptions.ConnectionError:
            code = "connection"
            raise
        finally:
            if self.on_request is not None:
                self.on_request(endpoint, code, time.perf_counter() - start, code == "200")

    def _translate(self, what: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return self._timed(func, *args, **kwargs)
        except requests.exceptions.SSLError as e:
            msg = f"{what}: TLS verification failed: {e}"
            raise ExchangeError(msg) from e
        except requests.exceptions.HTTPError as e:
            status = e.response.status_code if e.response is not None else None
            if status in (401, 403):
                msg = (
                    f"{what}: the venue refused the credentials (HTTP {status}): {e}; {_AUTH_HINT}"
                )
                raise AuthenticationError(msg, status=status) from e
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
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            # the SDK builds its response objects from the body (e.g. `Order(**order)`), so a
            # body of an unexpected shape fails inside the SDK, before `live_bridge.wire`
            msg = f"{what}: the SDK could not read the response: {e!r}"
            raise ExchangeError(msg) from e

    def _get_dict(
        self, what: str, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        return cast(dict[str, Any], self._call(what, func, *args, **kwargs).to_dict())

    def _pages(self, what: str, fetch: Callable[[str | None], Page[T]]) -> list[T]:
        # follow `cursor` until the venue says there is no next page
        out: list[T] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = fetch(cursor)
            out.extend(page.items)
            if not page.has_next or not page.cursor:
                return out
            if page.cursor in seen:
                msg = f"{what}: `cursor` must change from page to page, was {page.cursor!r} again"
                raise ExchangeError(msg)
            seen.add(page.cursor)
            cursor = page.cursor

    # --- market data ----------------------------------------------------------------------

    def server_time_ns(self) -> int:
        """Return the venue's time, UTC epoch ns."""
        data = self._get_dict("server time", self._client.get_unix_time)
        return wire.parse_server_time(data, call="server time")

    def products(self, refresh: bool = False) -> dict[str, ProductInfo]:
        """Return spot products by symbol, cached for 300 s (monotonic) unless `refresh`."""
        now = self._monotonic()
        fresh = self._products_at is not None and now - self._products_at < PRODUCTS_TTL_SECS
        if fresh and not refresh:
            return dict(self._products)
        data = self._get_dict(
            "products", self._client.get_products, product_type="SPOT", get_all_products=False
        )
        out = wire.parse_products(data, call="products")
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
            for c in wire.parse_candles(data, call=f"candles {symbol}"):
                if t <= c.start_s < stop:
                    rows[c.start_s] = (c.open, c.high, c.low, c.close, c.volume)
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
        return wire.parse_best_bid_ask(data, call="best bid/ask")

    def book_depth_usd(self, symbol: str, within_bps: float = 20.0) -> tuple[float, float]:
        """Return `(bid_usd, ask_usd)`: quote notional resting within `within_bps` of the mid."""
        what = f"product book {symbol}"
        data = self._get_dict(what, self._client.get_product_book, symbol, limit=1000)
        book = wire.parse_product_book(data, call=what)
        if not book.bids or not book.asks:
            return 0.0, 0.0
        mid = (book.bids[0][0] + book.asks[0][0]) / 2
        lo, hi = mid * (1 - within_bps / 1e4), mid * (1 + within_bps / 1e4)
        bid_usd = sum(price * size for price, size in book.bids if price >= lo)
        ask_usd = sum(price * size for price, size in book.asks if price <= hi)
        return bid_usd, ask_usd

    # --- account --------------------------------------------------------------------------

    def balances(self, *, available_only: bool = False) -> dict[str, float]:
        """Return the balance per currency: available + hold (or available only)."""
        out: dict[str, float] = {}
        accounts = self._pages(
            "accounts",
            lambda cursor: wire.parse_accounts(
                self._get_dict("accounts", self._client.get_accounts, limit=250, cursor=cursor),
                call="accounts",
            ),
        )
        for acct in accounts:
            total = acct.available if available_only else acct.available + acct.hold
            out[acct.currency] = out.get(acct.currency, 0.0) + total
        return out

    def fee_rates(self) -> tuple[float, float]:
        """Return `(maker, taker)` fee rates of the account's tier (fractions of notional)."""
        data = self._get_dict(
            "transaction summary", self._client.get_transaction_summary, product_type="SPOT"
        )
        return wire.parse_fee_rates(data, call="transaction summary")

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
        what = f"preview {symbol}"
        data = self._get_dict(what, self._client.preview_order, symbol, side_s, config)
        return wire.parse_preview(data, call=what)

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
        what = f"create order {client_order_id}"
        data = self._get_dict(
            what, self._client.create_order, client_order_id, symbol, side, config
        )
        result = wire.parse_create_order(
            data, client_order_id=client_order_id, symbol=symbol, side=side, call=what
        )
        if isinstance(result, OrderRejection):
            msg = (
                f"order {client_order_id} on {symbol} rejected by the venue: {result.code} "
                f"({result.message}; {result.preview_failure_reason})"
            )
            raise OrderRejectedError(
                msg, code=result.code, preview_failure_reason=result.preview_failure_reason
            )
        return result

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
            out.extend(wire.parse_cancel(data, call="cancel orders"))
        return out

    def order(self, order_id: str) -> OrderInfo:
        """Return one order by venue id (`ExchangeError` status 404 when unknown)."""
        what = f"order {order_id}"
        return wire.parse_order(self._get_dict(what, self._client.get_order, order_id), call=what)

    def list_orders(
        self,
        symbols: Iterable[str] | None = None,
        *,
        start_ts_ns: int | None = None,
        statuses: Iterable[str] | None = None,
    ) -> list[OrderInfo]:
        """Return the orders of `symbols` created at or after `start_ts_ns`, oldest first.

        Follows every page of the venue's `list_orders`.

        Parameters
        ----------
        symbols : iterable of str, optional
            Product ids; None means every product, an empty iterable means none (no request).
        start_ts_ns : int, optional
            UTC epoch ns, sent as the RFC 3339 `start_date`; None means since the beginning.
        statuses : iterable of str, optional
            The venue's status names ("OPEN", "PENDING", "QUEUED", "FILLED", "CANCELLED", ...);
            None means every status, an empty iterable means none (no request).

        Returns
        -------
        list of OrderInfo
            Sorted by `created_ts_ns`; orders created at the same instant keep the venue's
            creation order.
        """
        product_ids = None if symbols is None else list(dict.fromkeys(symbols))
        order_status = None if statuses is None else list(dict.fromkeys(statuses))
        if product_ids == [] or order_status == []:
            return []
        start_date = None if start_ts_ns is None else wire.format_rfc3339_ns(start_ts_ns)
        orders = self._pages(
            "orders",
            lambda cursor: wire.parse_orders(
                self._get_dict(
                    "orders",
                    self._client.list_orders,
                    product_ids=product_ids,
                    order_status=order_status,
                    start_date=start_date,
                    limit=100,
                    cursor=cursor,
                ),
                call="orders",
            ),
        )
        # the venue lists newest first: reverse, then a stable sort by creation time keeps
        # the venue's order among orders created at the same instant
        orders.reverse()
        return sorted(orders, key=lambda o: o.created_ts_ns)

    def open_orders(self, symbol: str | None = None) -> list[OrderInfo]:
        """Return the orders still OPEN, PENDING or QUEUED (of one symbol, or all), oldest first."""
        symbols = [symbol] if symbol else None
        return self.list_orders(symbols, statuses=("OPEN", "PENDING", "QUEUED"))

    def fills(
        self,
        order_id: str | None = None,
        symbol: str | None = None,
        *,
        symbols: Iterable[str] | None = None,
        since_ts_ns: int | None = None,
    ) -> list[FillInfo]:
        """Return fills (of one order and/or some products), oldest first.

        Follows every page of the venue's `get_fills`.

        Parameters
        ----------
        order_id : str, optional
            Only the fills of this venue order id.
        symbol : str, optional
            Only the fills of this product (combined with `symbols` when both are given).
        symbols : iterable of str, optional
            Only the fills of these products; an empty iterable (and no `symbol`) means none
            (no request).
        since_ts_ns : int, optional
            UTC epoch ns, sent as the RFC 3339 `start_sequence_timestamp`: the venue keeps the
            fills whose sequence timestamp is at or after it.

        Returns
        -------
        list of FillInfo
            Sorted by `(ts_ns, trade_id)`.
        """
        product_ids: list[str] | None = None
        if symbol or symbols is not None:
            product_ids = list(dict.fromkeys([*([symbol] if symbol else []), *(symbols or [])]))
            if not product_ids:
                return []
        since = None if since_ts_ns is None else wire.format_rfc3339_ns(since_ts_ns)
        fills = self._pages(
            "fills",
            lambda cursor: wire.parse_fills(
                self._get_dict(
                    "fills",
                    self._client.get_fills,
                    order_ids=[order_id] if order_id else None,
                    product_ids=product_ids,
                    start_sequence_timestamp=since,
                    limit=100,
                    cursor=cursor,
                ),
                call="fills",
            ),
        )
        return sorted(fills, key=lambda x: (x.ts_ns, x.trade_id))
