"""The matching and accounting core of the exchange simulator (no I/O).

The engine replays a bar frame (the canonical bar schema) against a clock. "Now" is the
clock's time; a bar is closed when `open + duration <= now`; the current price of a symbol is
the open of the bar containing now (else the last close before it). Market orders fill at
once at the current price times `1 ± slippage_bps / 1e4` with the taker fee. Limit GTC orders
rest (post-only ones are rejected when they would cross the current price: a buy at or above
it, a sell at or below it) and fill at their limit with the maker fee. An order under the
product minimums is refused at creation and preview, buys and sells alike, as Coinbase refuses
it: size under `base_min_size` (`PREVIEW_INVALID_BASE_SIZE_TOO_SMALL`), or notional under
`quote_min_size` (`PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL`; a market buy's `quote_size`, else
size x the limit, or x the fill price for a market order), with `UNKNOWN_FAILURE_REASON`.

Fill rule of a resting limit order: it is evaluated against the bar that contains its creation
time and every later bar, each once, when that bar has closed; a bar that closed at or before
the creation time is never used. A buy fills when the bar's low is strictly below the limit, a
sell when its high is strictly above it (a touch is no fill), and the fill is stamped at that
bar's close. This is the backtest's rule for post-only limits (`sim/nb.py::fill_order_nb`: an
order decided at bar `t`'s close is judged on bar `t+1`): the daemon places it a few seconds
into `t+1`, so both models judge it on the same bar. With `partial_fill_fraction` set, a
trade-through bar fills that fraction of the remaining size when the part clears the product
minimums as the backtest's partial fills must (size >= `base_min_size`, notional after the
maker fee >= `quote_min_size`) and is less than the rest; otherwise it fills the rest. The
backtest draws its fraction from the seeded RNG, which the venue cannot reproduce, so parity
runs with partial fills off on both sides. Resting orders are evaluated lazily: `process()`
runs on every request the server handles and may be called directly.

Money is `Decimal` inside; the wire shapes (`dict`s) follow Coinbase Advanced Trade, with
numbers as strings. Every public method takes the engine's lock.
"""

import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, cast

import numpy as np
import polars as pl

from signals.errors import DataError
from signals.granularity import GRANULARITY_SECS

DEFAULT_PRODUCT: dict[str, Any] = {
    "base_increment": "0.00000001",
    "quote_increment": "0.01",
    "base_min_size": "0.00000001",
    "base_max_size": "100000000",
    "quote_min_size": "1",
    "quote_max_size": "150000000",
    "status": "online",
    "trading_disabled": False,
    "cancel_only": False,
    "limit_only": False,
    "post_only": False,
    "auction_mode": False,
    "is_disabled": False,
}

# `set_product_status` names that are flags on an "online" product rather than a status.
_FLAG_STATUSES = ("cancel_only", "limit_only", "post_only", "trading_disabled")
_FIAT = frozenset({"USD", "EUR", "GBP"})
USER_ID = "sim-user"
NS = 1_000_000_000


class SimRequestError(Exception):
    """A request the simulated venue answers with an HTTP error (400, 404)."""

    def __init__(self, status: int, error: str, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.details = details if details else message

    def body(self) -> dict[str, str]:
        """Return the Coinbase-style error body."""
        return {"error": self.error, "error_details": self.details, "message": self.message}


class _Reject(Exception):
    def __init__(self, code: str, preview: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.preview = preview
        self.message = message


@dataclass
class _Order:
    order_id: str
    client_order_id: str
    product_id: str
    side: str  # "BUY" | "SELL"
    order_type: str  # "MARKET" | "LIMIT"
    config: dict[str, Any]
    created_ns: int
    base_size: Decimal | None
    quote_size: Decimal | None
    limit_price: Decimal | None
    post_only: bool
    status: str = "PENDING"
    filled_size: Decimal = Decimal(0)
    filled_value: Decimal = Decimal(0)
    total_fees: Decimal = Decimal(0)
    number_of_fills: int = 0
    last_fill_ns: int | None = None
    hold: Decimal = Decimal(0)
    hold_currency: str = ""
    # bars that close after this time are still to be evaluated: the creation time, then the
    # close of the last bar evaluated
    evaluated_to_ns: int = 0
    create_response: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Series:
    ts: np.ndarray  # int64 ns, bar open
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


def rfc3339(ts_ns: int) -> str:
    """Return `ts_ns` (UTC epoch ns) as RFC 3339 with microseconds and a `Z` suffix."""
    secs, rem = divmod(int(ts_ns), NS)
    base = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{rem // 1000:06d}Z"


def fmt_decimal(value: Decimal) -> str:
    """Return `value` as a plain decimal string (no exponent, no trailing zeros)."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def _dec(value: Any, name: str) -> Decimal:
    try:
        out = Decimal(str(value))
    except (InvalidOperation, ValueError) as e:
        msg = f"`{name}` must be a decimal string, was {value!r}"
        raise SimRequestError(400, "INVALID_ARGUMENT", msg) from e
    if not out.is_finite():
        msg = f"`{name}` must be finite, was {value!r}"
        raise SimRequestError(400, "INVALID_ARGUMENT", msg)
    return out


def _on_grid(value: Decimal, increment: Decimal) -> bool:
    return value % increment == 0


def _floor(value: Decimal, increment: Decimal) -> Decimal:
    return (value / increment).to_integral_value(rounding=ROUND_FLOOR) * increment


def _ceil(value: Decimal, increment: Decimal) -> Decimal:
    return (value / increment).to_integral_value(rounding=ROUND_CEILING) * increment


class ExchangeEngine:
    """Simulated Coinbase Advanced Trade venue over recorded bars.

    Parameters
    ----------
    bars : pl.DataFrame
        Long frame `ts` (Datetime, UTC, bar open), `symbol`, `open high low close volume`.
    clock : Clock
        Anything with `now_ns()` (see `clock.py`).
    products : dict, optional
        Per-symbol overrides of the product metadata, e.g.
        `{"BTC-USD": {"base_increment": "0.0001", "status": "offline"}}`.
    balances : dict[str, float], optional
        Starting balances per currency; default `{"USD": 100_000}`.
    maker_fee_rate, taker_fee_rate : float
        Fee rates (fraction of notional), reported by the transaction summary.
    slippage_bps : float
        Market orders fill at `price * (1 ± slippage_bps / 1e4)` (buys pay more).
    partial_fill_fraction : float, optional
        When set, a resting order fills this fraction of its remaining size per trade-through
        bar (rounded down to the base increment); a part below the product minimums (size, or
        notional after the maker fee) fills the whole rest instead, as in the backtest.
    seed : int
        Seeds order, trade and account ids.
    spread_bps : float
        Synthetic spread of the best bid/ask around the current price.
    book_levels : int
        Levels per side of the synthetic book.
    book_step_bps : float
        Distance between book levels.
    book_level_notional_usd : float
        Quote notional at each book level.
    max_candles : int
        Largest candle count a request may span (400 INVALID_ARGUMENT above it).
    """

    def __init__(
        self,
        bars: pl.DataFrame,
        clock: Any,
        *,
        products: dict[str, dict[str, Any]] | None = None,
        balances: dict[str, float] | None = None,
        maker_fee_rate: float = 0.004,
        taker_fee_rate: float = 0.006,
        slippage_bps: float = 0.0,
        partial_fill_fraction: float | None = None,
        seed: int = 0,
        spread_bps: float = 2.0,
        book_levels: int = 50,
        book_step_bps: float = 1.0,
        book_level_notional_usd: float = 25_000.0,
        max_candles: int = 350,
    ) -> None:
        if partial_fill_fraction is not None and not 0.0 < partial_fill_fraction <= 1.0:
            msg = f"`partial_fill_fraction` must be in (0, 1], was {partial_fill_fraction}"
            raise ValueError(msg)
        self._lock = threading.RLock()
        self.clock = clock
        self.maker_fee_rate = Decimal(str(maker_fee_rate))
        self.taker_fee_rate = Decimal(str(taker_fee_rate))
        self.slippage_bps = Decimal(str(slippage_bps))
        self.partial_fill_fraction = (
            None if partial_fill_fraction is None else Decimal(str(partial_fill_fraction))
        )
        self.spread_bps = Decimal(str(spread_bps))
        self.book_levels = int(book_levels)
        self.book_step_bps = Decimal(str(book_step_bps))
        self.book_level_notional_usd = Decimal(str(book_level_notional_usd))
        self.max_candles = int(max_candles)
        self._series, self.bar_duration_ns = _load_bars(bars)
        self.symbols = tuple(self._series)
        self.first_bar_ns = min(int(s.ts[0]) for s in self._series.values())
        self.last_bar_ns = max(int(s.ts[-1]) for s in self._series.values())
        self._product_overrides = {k: dict(v) for k, v in (products or {}).items()}
        unknown = sorted(set(self._product_overrides) - set(self.symbols))
        if unknown:
            msg = f"`products` keys must be symbols of the data, was {unknown}"
            raise ValueError(msg)
        self._initial_balances = dict(balances if balances is not None else {"USD": 100_000.0})
        self._seed = seed
        self.reset()

    # --- state ----------------------------------------------------------------------------

    def reset(self, balances: dict[str, float] | None = None) -> None:
        """Forget orders and fills, restore products and balances (or set new `balances`)."""
        with self._lock:
            if balances is not None:
                self._initial_balances = dict(balances)
            self._rng = random.Random(self._seed)
            self._products: dict[str, dict[str, Any]] = {}
            for sym in self.symbols:
                base, quote = sym.split("-", 1)
                prod = dict(DEFAULT_PRODUCT)
                prod.update(self._product_overrides.get(sym, {}))
                prod.update(product_id=sym, base_currency_id=base, quote_currency_id=quote)
                self._products[sym] = prod
            self._balances: dict[str, Decimal] = {
                c: Decimal(str(v)) for c, v in self._initial_balances.items()
            }
            for sym in self.symbols:
                for cur in sym.split("-", 1):
                    self._balances.setdefault(cur, Decimal(0))
            self._holds: dict[str, Decimal] = dict.fromkeys(self._balances, Decimal(0))
            self._orders: dict[str, _Order] = {}
            self._by_client: dict[str, str] = {}
            self._fills: list[dict[str, Any]] = []
            self._fees_paid = Decimal(0)
            self._volume = Decimal(0)
            self._candle_overrides: dict[tuple[str, int], dict[str, str | None]] = {}

    def configure(
        self,
        *,
        maker_fee_rate: float | None = None,
        taker_fee_rate: float | None = None,
        slippage_bps: float | None = None,
        partial_fill_fraction: float | None | str = "unchanged",
    ) -> None:
        """Change fees, slippage or partial fills at runtime (None turns partial fills off)."""
        with self._lock:
            if maker_fee_rate is not None:
                self.maker_fee_rate = Decimal(str(maker_fee_rate))
            if taker_fee_rate is not None:
                self.taker_fee_rate = Decimal(str(taker_fee_rate))
            if slippage_bps is not None:
                self.slippage_bps = Decimal(str(slippage_bps))
            if partial_fill_fraction != "unchanged":
                if partial_fill_fraction is None:
                    self.partial_fill_fraction = None
                else:
                    frac = float(partial_fill_fraction)
                    if not 0.0 < frac <= 1.0:
                        msg = f"`partial_fill_fraction` must be in (0, 1], was {frac}"
                        raise ValueError(msg)
                    self.partial_fill_fraction = Decimal(str(frac))

    def now_ns(self) -> int:
        """Return the clock's time, UTC epoch ns."""
        return int(self.clock.now_ns())

    def balances(self) -> dict[str, float]:
        """Return the total balance per currency (available + held)."""
        with self._lock:
            self._process()
            return {c: float(v) for c, v in self._balances.items()}

    def holds(self) -> dict[str, float]:
        """Return the amount held by resting orders per currency."""
        with self._lock:
            self._process()
            return {c: float(v) for c, v in self._holds.items()}

    def fees_paid(self) -> float:
        """Return the fees charged so far, in quote currency."""
        with self._lock:
            return float(self._fees_paid)

    def orders(self) -> list[dict[str, Any]]:
        """Return every accepted order in the wire shape, oldest first."""
        with self._lock:
            self._process()
            return [self._order_wire(o) for o in self._orders.values()]

    def fills(self) -> list[dict[str, Any]]:
        """Return every fill in the wire shape, oldest first."""
        with self._lock:
            self._process()
            return [dict(f) for f in self._fills]

    # --- products and market data ---------------------------------------------------------

    def set_product_status(self, symbol: str, status: str) -> None:
        """Change a product's trading status at runtime.

        `status` is "online" (clears every flag), one of the flags "cancel_only",
        "limit_only", "post_only", "trading_disabled" (status stays "online"), or any other
        string, which becomes the `status` field verbatim ("offline", "delisted", ...).
        """
        with self._lock:
            prod = self._product(symbol)
            for flag in _FLAG_STATUSES:
                prod[flag] = False
            if status in _FLAG_STATUSES:
                prod["status"] = "online"
                prod[status] = True
            else:
                prod["status"] = status

    def set_product(self, symbol: str, **fields: Any) -> None:
        """Override any product field at runtime (e.g. `base_min_size="0.001"`)."""
        with self._lock:
            self._product(symbol).update(fields)

    def current_price(self, symbol: str) -> float | None:
        """Return the current price of `symbol`, None before its first bar."""
        with self._lock:
            price = self._price(symbol)
            return None if price is None else float(price)

    def product_wire(self, symbol: str) -> dict[str, Any]:
        """Return the product object of `symbol` (404 SimRequestError when unknown)."""
        with self._lock:
            prod = dict(self._product(symbol))
            price = self._price(symbol)
            base, quote = prod["base_currency_id"], prod["quote_currency_id"]
            prod.update(
                price="" if price is None else fmt_decimal(price),
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

    def products_wire(self, product_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Return the product objects (all, or those in `product_ids` that exist)."""
        with self._lock:
            wanted = [s for s in self.symbols if not product_ids or s in product_ids]
            return [self.product_wire(s) for s in wanted]

    def set_candle(self, symbol: str, start_s: int, **fields: str | None) -> None:
        """Serve `fields` in place of the computed ones in the candle of `symbol` at `start_s`.

        A test hook for malformed venue data: values are wire strings (``high="1"``), None
        removes the field. It applies to the candle starting at `start_s` (epoch seconds) at
        any granularity, when that candle is served; `reset()` removes every override.
        """
        with self._lock:
            self._candle_overrides.setdefault((symbol, int(start_s)), {}).update(fields)

    def candles(
        self, symbol: str, start_s: int, end_s: int, granularity: str
    ) -> list[dict[str, str]]:
        """Return closed candles with bucket start in `[start_s, end_s)`, newest first.

        Buckets coarser than the data are aggregated from it; finer ones are refused (400).
        """
        if granularity not in GRANULARITY_SECS:
            msg = "granularity argument is invalid"
            raise SimRequestError(400, "INVALID_ARGUMENT", msg)
        g_ns = GRANULARITY_SECS[granularity] * NS
        with self._lock:
            series = self._get_series(symbol)
            dur = self.bar_duration_ns
            if g_ns < dur or g_ns % dur:
                msg = (
                    f"granularity argument is invalid - the simulator holds "
                    f"{dur // NS}-second bars, was {granularity}"
                )
                raise SimRequestError(400, "INVALID_ARGUMENT", msg)
            if end_s <= start_s:
                msg = "start and end argument is invalid - end must be after start"
                raise SimRequestError(400, "INVALID_ARGUMENT", msg)
            n_buckets = -(-(end_s - start_s) * NS // g_ns)
            if n_buckets > self.max_candles:
                msg = (
                    "start and end argument is invalid - number of candles requested should "
                    f"be less than {self.max_candles}"
                )
                raise SimRequestError(400, "INVALID_ARGUMENT", msg)
            now = self.now_ns()
            start_ns, end_ns = start_s * NS, end_s * NS
            lo = int(np.searchsorted(series.ts, start_ns, "left"))
            hi = int(np.searchsorted(series.ts, end_ns + g_ns, "left"))
            out: dict[int, list[float]] = {}
            for i in range(lo, hi):
                ts = int(series.ts[i])
                bucket = ts - ts % g_ns
                if not start_ns <= bucket < end_ns or bucket + g_ns > now:
                    continue
                o, h, lw, c, v = (
                    float(series.open[i]),
                    float(series.high[i]),
                    float(series.low[i]),
                    float(series.close[i]),
                    float(series.volume[i]),
                )
                agg = out.get(bucket)
                if agg is None:
                    out[bucket] = [o, h, lw, c, v]
                else:
                    agg[1] = max(agg[1], h)
                    agg[2] = min(agg[2], lw)
                    agg[3] = c
                    agg[4] += v
            wire = [
                {
                    "start": str(b // NS),
                    "low": repr(a[2]),
                    "high": repr(a[1]),
                    "open": repr(a[0]),
                    "close": repr(a[3]),
                    "volume": repr(a[4]),
                }
                for b, a in sorted(out.items(), reverse=True)
            ]
            for candle in wire:
                override = self._candle_overrides.get((symbol, int(candle["start"])), {})
                for name, value in override.items():
                    if value is None:
                        candle.pop(name, None)
                    else:
                        candle[name] = value
            return wire

    def pricebook(self, symbol: str, levels: int = 1) -> dict[str, Any]:
        """Return the synthetic book of `symbol` with `levels` per side (current time)."""
        with self._lock:
            prod = self._product(symbol)
            price = self._price(symbol)
            bids: list[dict[str, str]] = []
            asks: list[dict[str, str]] = []
            if price is not None:
                q_inc = Decimal(prod["quote_increment"])
                b_inc = Decimal(prod["base_increment"])
                half = self.spread_bps / Decimal(20000)
                best_bid = _floor(price * (1 - half), q_inc)
                best_ask = max(_ceil(price * (1 + half), q_inc), best_bid + q_inc)
                step = self.book_step_bps / Decimal(10000)
                for i in range(max(1, levels)):
                    bp = _floor(best_bid * (1 - step * i), q_inc)
                    ap = _ceil(best_ask * (1 + step * i), q_inc)
                    if bp > 0:
                        size = _floor(self.book_level_notional_usd / bp, b_inc)
                        bids.append({"price": fmt_decimal(bp), "size": fmt_decimal(size)})
                    size = _floor(self.book_level_notional_usd / ap, b_inc)
                    asks.append({"price": fmt_decimal(ap), "size": fmt_decimal(size)})
            return {
                "product_id": symbol,
                "bids": bids,
                "asks": asks,
                "time": rfc3339(self.now_ns()),
            }

    # --- accounts and fees ----------------------------------------------------------------

    def accounts_wire(self) -> list[dict[str, Any]]:
        """Return one account object per currency, sorted by currency."""
        with self._lock:
            self._process()
            out = []
            for cur in sorted(self._balances):
                avail = self._balances[cur] - self._holds[cur]
                out.append(
                    {
                        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sim-account/{cur}")),
                        "name": f"{cur} Wallet",
                        "currency": cur,
                        "available_balance": {"value": fmt_decimal(avail), "currency": cur},
                        "default": cur == "USD",
                        "active": True,
                        "created_at": "2020-01-01T00:00:00.000000Z",
                        "updated_at": rfc3339(self.now_ns()),
                        "deleted_at": None,
                        "type": "ACCOUNT_TYPE_FIAT" if cur in _FIAT else "ACCOUNT_TYPE_CRYPTO",
                        "ready": True,
                        "hold": {"value": fmt_decimal(self._holds[cur]), "currency": cur},
                        "retail_portfolio_id": "sim-portfolio",
                        "platform": "ACCOUNT_PLATFORM_CONSUMER",
                    }
                )
            return out

    def transaction_summary_wire(self) -> dict[str, Any]:
        """Return the transaction summary with the fee tier (rates as strings)."""
        with self._lock:
            self._process()
            return {
                "total_volume": float(self._volume),
                "total_fees": float(self._fees_paid),
                "fee_tier": {
                    "pricing_tier": "Simulator",
                    "usd_from": "0",
                    "usd_to": "10000",
                    "taker_fee_rate": fmt_decimal(self.taker_fee_rate),
                    "maker_fee_rate": fmt_decimal(self.maker_fee_rate),
                    "aop_from": "",
                    "aop_to": "",
                },
                "margin_rate": None,
                "goods_and_services_tax": None,
                "advanced_trade_only_volume": float(self._volume),
                "advanced_trade_only_fees": float(self._fees_paid),
                "coinbase_pro_volume": 0,
                "coinbase_pro_fees": 0,
                "total_balance": "0",
                "has_promo_fee": False,
            }

    # --- orders ---------------------------------------------------------------------------

    def create_order(self, body: dict[str, Any]) -> dict[str, Any]:
        """Handle `POST /orders`: validate, then fill (market) or rest (limit).

        Business rejections return `success: false` (HTTP 200); malformed bodies raise a 400
        `SimRequestError`. A repeated `client_order_id` returns the original response.
        """
        with self._lock:
            self._process()
            cid = str(body.get("client_order_id") or "")
            if not cid:
                msg = "client_order_id is required"
                raise SimRequestError(400, "INVALID_ARGUMENT", msg)
            if cid in self._by_client:
                return dict(self._orders[self._by_client[cid]].create_response)
            config = cast(dict[str, Any], body.get("order_configuration"))
            try:
                plan = self._check(body)
            except _Reject as r:
                return {
                    "success": False,
                    "failure_reason": "UNKNOWN_FAILURE_REASON",
                    "order_id": "",
                    "error_response": {
                        "error": r.code,
                        "message": r.message,
                        "error_details": "",
                        "preview_failure_reason": r.preview,
                    },
                    "order_configuration": config,
                }
            order = _Order(
                order_id=self._new_id(),
                client_order_id=cid,
                product_id=plan["symbol"],
                side=plan["side"],
                order_type=plan["order_type"],
                config=config,
                created_ns=self.now_ns(),
                base_size=plan["base_size"],
                quote_size=plan["quote_size"],
                limit_price=plan["limit_price"],
                post_only=plan["post_only"],
                evaluated_to_ns=self.now_ns(),
            )
            order.create_response = {
                "success": True,
                "failure_reason": "UNKNOWN_FAILURE_REASON",
                "order_id": order.order_id,
                "success_response": {
                    "order_id": order.order_id,
                    "product_id": order.product_id,
                    "side": order.side,
                    "client_order_id": cid,
                },
                "order_configuration": config,
            }
            self._orders[order.order_id] = order
            self._by_client[cid] = order.order_id
            if plan["immediate"]:
                self._fill_immediately(order, plan["price"])
            else:
                order.status = "OPEN"
                order.hold, order.hold_currency = plan["hold"], plan["hold_currency"]
                self._holds[order.hold_currency] += order.hold
            return dict(order.create_response)

    def preview_order(self, body: dict[str, Any]) -> dict[str, Any]:
        """Handle `POST /orders/preview`: the create checks without side effects."""
        with self._lock:
            self._process()
            errs: list[str] = []
            out: dict[str, Any] = {"warning": [], "preview_id": str(self._new_id())}
            try:
                plan = self._check(body)
            except _Reject as r:
                errs.append(r.preview)
                plan = None
            out["errs"] = errs
            if plan is not None:
                price = plan["price"] if plan["immediate"] else plan["limit_price"]
                rate = self.taker_fee_rate if plan["immediate"] else self.maker_fee_rate
                if plan["quote_size"] is not None:
                    q = plan["quote_size"]
                    commission = q - q / (1 + rate)
                    base = (q - commission) / price
                    total = q
                else:
                    base = plan["base_size"]
                    notional = base * price
                    commission = notional * rate
                    total = (
                        notional + commission if plan["side"] == "BUY" else notional - commission
                    )
                bid_ask = self.pricebook(plan["symbol"])
                out.update(
                    order_total=fmt_decimal(total),
                    commission_total=fmt_decimal(commission),
                    quote_size=fmt_decimal(base * price),
                    base_size=fmt_decimal(base),
                    best_bid=bid_ask["bids"][0]["price"] if bid_ask["bids"] else "0",
                    best_ask=bid_ask["asks"][0]["price"] if bid_ask["asks"] else "0",
                    is_max=False,
                    order_margin_total="0",
                    leverage="0",
                    long_leverage="0",
                    short_leverage="0",
                    slippage="0",
                )
            return out

    def cancel_orders(self, order_ids: list[str]) -> dict[str, Any]:
        """Handle `POST /orders/batch_cancel`: per-id results; done or unknown ids fail."""
        with self._lock:
            self._process()
            results = []
            for oid in order_ids:
                order = self._orders.get(oid)
                if order is None or order.status not in ("OPEN", "PENDING"):
                    results.append(
                        {
                            "success": False,
                            "failure_reason": "UNKNOWN_CANCEL_ORDER",
                            "order_id": oid,
                        }
                    )
                    continue
                self._release_hold(order)
                order.status = "CANCELLED"
                results.append(
                    {
                        "success": True,
                        "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON",
                        "order_id": oid,
                    }
                )
            return {"results": results}

    def get_order(self, order_id: str) -> dict[str, Any]:
        """Return one order in the wire shape (404 SimRequestError when unknown)."""
        with self._lock:
            self._process()
            order = self._orders.get(order_id)
            if order is None:
                msg = "order with this orderID was not found"
                raise SimRequestError(404, "NOT_FOUND", msg)
            return self._order_wire(order)

    def list_orders(
        self,
        *,
        order_ids: list[str] | None = None,
        product_ids: list[str] | None = None,
        order_status: list[str] | None = None,
        order_side: str | None = None,
        start_ns: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return orders matching every given filter, newest first.

        `start_ns` (UTC epoch ns, the venue's `start_date`) keeps the orders created at or
        after it.
        """
        with self._lock:
            self._process()
            out = []
            for order in reversed(list(self._orders.values())):
                if order_ids and order.order_id not in order_ids:
                    continue
                if product_ids and order.product_id not in product_ids:
                    continue
                if order_status and order.status not in order_status:
                    continue
                if order_side and order.side != order_side:
                    continue
                if start_ns is not None and order.created_ns < start_ns:
                    continue
                out.append(self._order_wire(order))
            return out

    def list_fills(
        self,
        *,
        order_ids: list[str] | None = None,
        product_ids: list[str] | None = None,
        trade_ids: list[str] | None = None,
        start_ns: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return fills matching every given filter, newest first.

        `start_ns` (UTC epoch ns, the venue's `start_sequence_timestamp`) keeps the fills
        whose trade time is at or after it. Fill times are kept in microseconds on the wire,
        so both sides are compared in whole microseconds (a fill less than 1 us before
        `start_ns` is kept: listing one fill too many is safe, one too few is not).
        """

        def trade_us(fill: dict[str, Any]) -> int:
            # `rfc3339` writes exactly six fractional digits and a `Z`
            stamp = datetime.strptime(fill["trade_time"], "%Y-%m-%dT%H:%M:%S.%fZ")
            delta = stamp.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)
            return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

        with self._lock:
            self._process()
            return [
                dict(f)
                for f in reversed(self._fills)
                if (not order_ids or f["order_id"] in order_ids)
                and (not product_ids or f["product_id"] in product_ids)
                and (not trade_ids or f["trade_id"] in trade_ids)
                and (start_ns is None or trade_us(f) >= start_ns // 1000)
            ]

    def process(self) -> int:
        """Fill resting orders against every bar closed by now; return the number of fills."""
        with self._lock:
            return self._process()

    # --- internals ------------------------------------------------------------------------

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _product(self, symbol: str) -> dict[str, Any]:
        prod = self._products.get(symbol)
        if prod is None:
            msg = f"Product {symbol} not supported"
            raise SimRequestError(404, "NOT_FOUND", msg, details="")
        return prod

    def _get_series(self, symbol: str) -> _Series:
        self._product(symbol)
        return self._series[symbol]

    def _price(self, symbol: str) -> Decimal | None:
        series = self._get_series(symbol)
        now = self.now_ns()
        i = int(np.searchsorted(series.ts, now, "right")) - 1
        if i < 0:
            return None
        if series.ts[i] + self.bar_duration_ns > now:
            return Decimal(repr(float(series.open[i])))
        return Decimal(repr(float(series.close[i])))

    def _check(self, body: dict[str, Any]) -> dict[str, Any]:
        symbol = body.get("product_id")
        side = body.get("side")
        config = body.get("order_configuration")
        if not isinstance(symbol, str) or not isinstance(config, dict) or len(config) != 1:
            msg = "product_id and exactly one order_configuration are required"
            raise SimRequestError(400, "INVALID_ARGUMENT", msg)
        if symbol not in self._products:
            raise _Reject("INVALID_PRODUCT_ID", "PREVIEW_INVALID_PRODUCT_ID", "Invalid product")
        if side not in ("BUY", "SELL"):
            raise _Reject("INVALID_SIDE", "PREVIEW_INVALID_SIDE", f"Invalid side {side!r}")
        ((kind, spec),) = config.items()
        if kind not in ("market_market_ioc", "limit_limit_gtc") or not isinstance(spec, dict):
            raise _Reject(
                "UNSUPPORTED_ORDER_CONFIGURATION",
                "PREVIEW_INVALID_ORDER_CONFIG",
                f"The simulator does not support {kind}",
            )
        prod = self._products[symbol]
        is_market = kind == "market_market_ioc"
        post_only = bool(spec.get("post_only", False)) and not is_market
        if (
            prod["status"] != "online"
            or prod["trading_disabled"]
            or prod["cancel_only"]
            or prod.get("is_disabled")
        ):
            raise _Reject("ORDER_ENTRY_DISABLED", "PREVIEW_TRADING_DISABLED", "Trading disabled")
        if (prod["limit_only"] and is_market) or (prod["post_only"] and not post_only):
            raise _Reject(
                "UNSUPPORTED_ORDER_CONFIGURATION",
                "PREVIEW_INVALID_ORDER_CONFIG",
                "Order type not allowed in the product's current mode",
            )
        b_inc, q_inc = Decimal(prod["base_increment"]), Decimal(prod["quote_increment"])
        base_size = _dec(spec["base_size"], "base_size") if "base_size" in spec else None
        quote_size = _dec(spec["quote_size"], "quote_size") if "quote_size" in spec else None
        limit_price = _dec(spec["limit_price"], "limit_price") if "limit_price" in spec else None
        if is_market:
            if (base_size is None) == (quote_size is None) or (
                side == "SELL" and base_size is None
            ):
                msg = "market orders need exactly one of base_size, quote_size (sells base_size)"
                raise SimRequestError(400, "INVALID_ARGUMENT", msg)
        elif base_size is None or limit_price is None:
            msg = "limit orders need base_size and limit_price"
            raise SimRequestError(400, "INVALID_ARGUMENT", msg)
        for value in (base_size, quote_size, limit_price):
            if value is not None and value <= 0:
                raise _Reject(
                    "INVALID_REQUEST", "PREVIEW_INVALID_ORDER_CONFIG", "Sizes must be positive"
                )
        if base_size is not None and not _on_grid(base_size, b_inc):
            raise _Reject(
                "INVALID_SIZE_PRECISION", "PREVIEW_INVALID_SIZE_PRECISION", "Too many decimals"
            )
        if quote_size is not None and not _on_grid(quote_size, q_inc):
            raise _Reject(
                "INVALID_SIZE_PRECISION",
                "PREVIEW_INVALID_QUOTE_SIZE_PRECISION",
                "Too many decimals",
            )
        if limit_price is not None and not _on_grid(limit_price, q_inc):
            raise _Reject(
                "INVALID_PRICE_PRECISION", "PREVIEW_INVALID_PRICE_PRECISION", "Too many decimals"
            )
        price = self._price(symbol)
        if price is None:
            raise _Reject("INVALID_NO_LIQUIDITY", "PREVIEW_INVALID_NO_LIQUIDITY", "Empty book")
        slip = self.slippage_bps / Decimal(10000)
        fill_price = price * (1 + slip) if side == "BUY" else price * (1 - slip)
        ref_price = limit_price if limit_price is not None else fill_price
        if base_size is not None:
            if base_size < Decimal(prod["base_min_size"]):
                raise _Reject(
                    "UNKNOWN_FAILURE_REASON",
                    "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL",
                    "Size below minimum",
                )
            if base_size > Decimal(prod["base_max_size"]):
                raise _Reject(
                    "UNKNOWN_FAILURE_REASON",
                    "PREVIEW_INVALID_BASE_SIZE_TOO_LARGE",
                    "Size above maximum",
                )
        notional = quote_size if quote_size is not None else cast(Decimal, base_size) * ref_price
        if notional < Decimal(prod["quote_min_size"]):
            raise _Reject(
                "UNKNOWN_FAILURE_REASON",
                "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL",
                "Notional below minimum",
            )
        crosses = limit_price is not None and (
            (side == "BUY" and limit_price >= price) or (side == "SELL" and limit_price <= price)
        )
        if post_only and crosses:
            raise _Reject(
                "INVALID_LIMIT_PRICE_POST_ONLY",
                "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY",
                "Post-only order would cross the book",
            )
        immediate = is_market or crosses
        base_cur, quote_cur = prod["base_currency_id"], prod["quote_currency_id"]
        if side == "BUY":
            if quote_size is not None:
                need = quote_size
            else:
                rate = self.maker_fee_rate if post_only else self.taker_fee_rate
                unit = fill_price if immediate else cast(Decimal, limit_price)
                need = cast(Decimal, base_size) * unit * (1 + rate)
            hold_currency = quote_cur
        else:
            need = cast(Decimal, base_size)
            hold_currency = base_cur
        available = self._balances[hold_currency] - self._holds[hold_currency]
        if need > available:
            raise _Reject(
                "INSUFFICIENT_FUND",
                "PREVIEW_INSUFFICIENT_FUND",
                "Insufficient balance in source account",
            )
        return {
            "symbol": symbol,
            "side": side,
            "order_type": "MARKET" if is_market else "LIMIT",
            "base_size": base_size,
            "quote_size": quote_size,
            "limit_price": limit_price,
            "post_only": post_only,
            "immediate": immediate,
            "price": fill_price if is_market else price,
            "hold": need,
            "hold_currency": hold_currency,
        }

    def _fill_immediately(self, order: _Order, price: Decimal) -> None:
        # taker fill; a quote-sized buy spends Q including the fee: commission = Q - Q/(1+f)
        prod = self._products[order.product_id]
        if order.quote_size is not None:
            commission = order.quote_size - order.quote_size / (1 + self.taker_fee_rate)
            size = (order.quote_size - commission) / price
            size = _floor(size, Decimal(prod["base_increment"]))
        else:
            size = cast(Decimal, order.base_size)
        self._apply_fill(order, size, price, "TAKER", self.now_ns())
        order.status = "FILLED"

    def _apply_fill(
        self, order: _Order, size: Decimal, price: Decimal, liquidity: str, ts_ns: int
    ) -> None:
        prod = self._products[order.product_id]
        base_cur, quote_cur = prod["base_currency_id"], prod["quote_currency_id"]
        rate = self.maker_fee_rate if liquidity == "MAKER" else self.taker_fee_rate
        notional = size * price
        commission = notional * rate
        if order.side == "BUY":
            self._balances[quote_cur] -= notional + commission
            self._balances[base_cur] += size
        else:
            self._balances[base_cur] -= size
            self._balances[quote_cur] += notional - commission
        order.filled_size += size
        order.filled_value += notional
        order.total_fees += commission
        order.number_of_fills += 1
        order.last_fill_ns = ts_ns
        self._fees_paid += commission
        self._volume += notional
        trade_id = self._new_id()
        self._fills.append(
            {
                "entry_id": trade_id,
                "trade_id": trade_id,
                "order_id": order.order_id,
                "trade_time": rfc3339(ts_ns),
                "trade_type": "FILL",
                "price": fmt_decimal(price),
                "size": fmt_decimal(size),
                "commission": fmt_decimal(commission),
                "product_id": order.product_id,
                "sequence_timestamp": rfc3339(ts_ns),
                "liquidity_indicator": liquidity,
                "size_in_quote": False,
                "user_id": USER_ID,
                "side": order.side,
                "retail_portfolio_id": "",
            }
        )

    def _release_hold(self, order: _Order) -> None:
        if order.hold_currency:
            self._holds[order.hold_currency] -= order.hold
        order.hold = Decimal(0)

    def _process(self) -> int:
        now = self.now_ns()
        dur = self.bar_duration_ns
        n_fills = 0
        for order in self._orders.values():
            if order.status != "OPEN" or order.limit_price is None or order.base_size is None:
                continue
            base_size = order.base_size
            series = self._series[order.product_id]
            prod = self._products[order.product_id]
            b_inc = Decimal(prod["base_increment"])
            # first bar closing after `evaluated_to_ns` (ts + dur > it): for a new order the bar
            # containing its creation time, so an order placed seconds into a bar is judged on
            # that bar as the backtest judges it; a bar that closed at or before creation is not
            i = int(np.searchsorted(series.ts, order.evaluated_to_ns - dur, "right"))
            while i < len(series.ts) and int(series.ts[i]) + dur <= now:
                bar_end = int(series.ts[i]) + dur
                limit = order.limit_price
                through = (
                    Decimal(repr(float(series.low[i]))) < limit
                    if order.side == "BUY"
                    else Decimal(repr(float(series.high[i]))) > limit
                )
                order.evaluated_to_ns = bar_end
                i += 1
                if not through:
                    continue
                remaining = base_size - order.filled_size
                size = remaining
                if self.partial_fill_fraction is not None:
                    part = _floor(remaining * self.partial_fill_fraction, b_inc)
                    # as `fill_order_nb`: the part fills alone only if it clears the minimums
                    clears = part >= Decimal(prod["base_min_size"]) and part * limit * (
                        1 - self.maker_fee_rate
                    ) >= Decimal(prod["quote_min_size"])
                    if part > 0 and clears and part < remaining:
                        size = part
                # the hold shrinks by the filled share; the fill itself moves the balances
                released = order.hold * size / remaining
                self._holds[order.hold_currency] -= released
                order.hold -= released
                self._apply_fill(order, size, limit, "MAKER", bar_end)
                n_fills += 1
                if order.filled_size >= base_size:
                    self._release_hold(order)
                    order.status = "FILLED"
                    break
        return n_fills

    def _order_wire(self, order: _Order) -> dict[str, Any]:
        size = order.base_size if order.base_size is not None else order.filled_size
        pct = order.filled_size / size * 100 if size else Decimal(0)
        avg = order.filled_value / order.filled_size if order.filled_size else Decimal(0)
        after_fees = (
            order.filled_value + order.total_fees
            if order.side == "BUY"
            else order.filled_value - order.total_fees
        )
        is_market = order.order_type == "MARKET"
        return {
            "order_id": order.order_id,
            "product_id": order.product_id,
            "user_id": USER_ID,
            "order_configuration": order.config,
            "side": order.side,
            "client_order_id": order.client_order_id,
            "status": order.status,
            "time_in_force": "IMMEDIATE_OR_CANCEL" if is_market else "GOOD_UNTIL_CANCELLED",
            "created_time": rfc3339(order.created_ns),
            "completion_percentage": fmt_decimal(pct),
            "filled_size": fmt_decimal(order.filled_size),
            "average_filled_price": fmt_decimal(avg),
            "fee": "",
            "number_of_fills": str(order.number_of_fills),
            "filled_value": fmt_decimal(order.filled_value),
            "pending_cancel": False,
            "size_in_quote": order.quote_size is not None,
            "total_fees": fmt_decimal(order.total_fees),
            "size_inclusive_of_fees": order.quote_size is not None,
            "total_value_after_fees": fmt_decimal(after_fees),
            "trigger_status": "INVALID_ORDER_TYPE",
            "order_type": order.order_type,
            "reject_reason": "",
            "settled": order.status in ("FILLED", "CANCELLED"),
            "product_type": "SPOT",
            "reject_message": "",
            "cancel_message": "",
            "order_placement_source": "RETAIL_ADVANCED",
            "outstanding_hold_amount": fmt_decimal(order.hold),
            "is_liquidation": False,
            "last_fill_time": None if order.last_fill_ns is None else rfc3339(order.last_fill_ns),
            "edit_history": [],
            "leverage": "",
            "margin_type": "",
            "retail_portfolio_id": "",
            "originating_order_id": "",
            "attached_order_id": "",
        }


def _load_bars(bars: pl.DataFrame) -> tuple[dict[str, _Series], int]:
    required = ["ts", "symbol", "open", "high", "low", "close", "volume"]
    missing = [c for c in required if c not in bars.columns]
    if missing:
        msg = f"bars must have columns {required}, was missing {missing}"
        raise DataError(msg)
    if bars.height == 0:
        msg = "bars must not be empty, was 0 rows"
        raise DataError(msg)
    if not isinstance(bars.schema["ts"], pl.Datetime):
        msg = f"`ts` must be a Datetime column, was {bars.schema['ts']}"
        raise DataError(msg)
    frame = bars.select(
        pl.col("ts").dt.epoch("ns").alias("ts"),
        pl.col("symbol").cast(pl.Utf8),
        *(pl.col(c).cast(pl.Float64) for c in required[2:]),
    ).sort("symbol", "ts")
    series: dict[str, _Series] = {}
    duration = None
    for (sym,), part in frame.group_by("symbol", maintain_order=True):
        ts = part["ts"].to_numpy().astype(np.int64)
        if np.any(np.diff(ts) <= 0):
            msg = f"bars of {sym} must have unique timestamps, was duplicated"
            raise DataError(msg)
        if len(ts) > 1:
            d = int(np.diff(ts).min())
            duration = d if duration is None else min(duration, d)
        series[str(sym)] = _Series(
            ts=ts,
            open=part["open"].to_numpy(),
            high=part["high"].to_numpy(),
            low=part["low"].to_numpy(),
            close=part["close"].to_numpy(),
            volume=part["volume"].to_numpy(),
        )
    if duration is None:
        msg = "bars must hold at least two bars of one symbol to infer the bar duration, was 1"
        raise DataError(msg)
    return series, duration
