"""Shadow mode: the daemon's decisions beside what the account actually did, bar by bar.

`live-bridge run --shadow` subscribes a `ShadowRecorder` to the event bus. The daemon runs as
usual (DRY_RUN beside an account that something else trades, or LIVE beside its own orders);
the recorder compares, per bar, the orders the decision intended with the account's actual
orders and fills, and writes `shadow.json` and a one-page `shadow.html` into
`shadow.report_dir` after every evaluated bar (a temporary file, then `os.replace`).

Timing. The daemon decides bar `b` after it closes (close `c_b = (b + 1) * bar`); its intended
orders (store rows of bar `b` in any status: `dry_run`, or LIVE's sent, skipped, rejected ...)
would execute during bar `b + 1`. Once the cycle of bar `b + 1` has finished (a
`CycleFinished` with `bar_no` b + 1, or any later one), the window `(c_b, c_b + bar]` has
ended and the recorder reads the account's activity in it with two read-only venue calls:
`adapter.fills(symbols, since_ts_ns=c_b)` and `adapter.list_orders(symbols, start_ts_ns=c_b)`.
The window is open at its start and closed at its end because a venue may stamp a resting
limit order's fill at the close of the bar that traded through it (the exchange simulator
does); such a fill belongs to the bar it closed. Bars are evaluated only when this process saw
them decided (a `CycleFinished` not `skipped`, or the store's last cycle at start, or the
report's `pending_bars` from an earlier run), so a bar nobody decided is never called "extra".

Matching, per bar and (symbol, side): a fill whose order has the client order id of an intent
goes to that intent (the daemon's own LIVE orders); the others, oldest first, go to the
intents of that symbol and side in emission order, each up to its intended size, the rest to
the last one. Fills on a (symbol, side) with no intent in the bar are `extra`.

Figures per intent (prices and money in quote currency, USD; times in seconds after `c_b`):

* `intended_price`: the limit price, or for a market order the decision's reference price
  (the close it saw); `intended_qty` (base units, null for a quote-sized market buy) and
  `intended_notional_usd` (a market buy's quote size, fee included; else qty x price);
* `filled_qty`, `filled_notional_usd` (sum of size x price), `fees_usd`, `vwap`, `n_fills`,
  `first_fill_secs`, `last_fill_secs`, `decided_secs` (when the daemon stored the intent);
* `slippage_bps`, positive = worse for us: buys `(vwap / intended_price - 1) * 1e4`, sells
  `(1 - vwap / intended_price) * 1e4`; `slippage_usd` the same in money over the filled qty;
* `fill_ratio`: filled / intended size; for a quote-sized market buy the quote spent
  (notional + fees) over the quote size, else the base quantity;
* `outcome`: `missed` (no fill), `partial` (fill ratio below `FULL_FILL_RATIO`), `filled`.

A bar whose venue reads fail is logged and marked `unavailable` (never raised: the cycle is not
the recorder's business); it is tried again at each of the next `shadow.retry_bars` cycles.
The summary covers the `ok` bars kept (`shadow.max_bars`, newest): counts of intents, filled,
partial, missed and extra, missed and extra notional, mean fill ratio (over all intents,
missed = 0, and over the filled ones), mean / median / p95 / fill-notional-weighted slippage in
bps, and the mean and max delay to the first fill. A restarted daemon with the same
`state_path` and symbols continues the report found in `report_dir`; a report of another
state file is moved aside (`shadow-replaced-<UTC time>.json`) and a new one begun.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from live_bridge.coinbase import CoinbaseAdapter, FillInfo, OrderInfo
from live_bridge.config import LiveConfig
from live_bridge.events import CycleFinished, Event
from live_bridge.store import OrderRow, StateStore
from signals.enums import PURPOSE_NAMES, OrderType, Side
from signals.errors import PlatformError

log = logging.getLogger("live_bridge.shadow")

SCHEMA_VERSION = 1
FULL_FILL_RATIO = 0.999
"""A fill ratio at or above this is a full fill: sizes are rounded down to the product's
increment, so a complete quote-sized buy spends a hair less than its quote size."""
JSON_NAME = "shadow.json"
HTML_NAME = "shadow.html"
HTML_MAX_ROWS = 500
"""Newest bars with orders or fills shown in the HTML table (the JSON keeps every bar)."""


# === the recorder =============================================================================


class ShadowRecorder:
    """Compare intended with actual orders and fills per bar; write the JSON and HTML report.

    Parameters
    ----------
    live : LiveConfig
        `symbols`, the bar length, `state_path` and `shadow` (report_dir, retry_bars, max_bars).
    store : StateStore
        The daemon's state file: the intended orders of each bar are read from it.
    adapter : CoinbaseAdapter
        The venue; only `fills` and `list_orders` are called (read-only).
    """

    def __init__(self, live: LiveConfig, store: StateStore, adapter: CoinbaseAdapter) -> None:
        self.live = live
        self.store = store
        self.adapter = adapter
        self.symbols = tuple(live.symbols)
        self.bar_ns = live.bar_ns()
        self.report_dir = Path(live.shadow.report_dir)
        self.json_path = self.report_dir / JSON_NAME
        self.html_path = self.report_dir / HTML_NAME
        self._state_path = str(Path(live.state_path).resolve())
        self._bars: dict[int, dict[str, Any]] = {}
        self._decided: set[int] = set()
        self._resume()
        last = store.last_cycle()
        if last is not None and int(last[0]) not in self._bars:
            self._decided.add(int(last[0]))

    # --- events ----------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if isinstance(event, CycleFinished):
            self._cycle_finished(event)

    def _cycle_finished(self, event: CycleFinished) -> None:
        now_bar = int(event.bar_no)
        if not event.skipped:
            self._decided.add(now_bar)
        due = sorted(b for b in self._decided if b < now_bar and self._due(b, now_bar))
        for bar_no in due:
            self._evaluate(bar_no, now_bar)
        if due:
            self.write()

    def _due(self, bar_no: int, now_bar: int) -> bool:
        row = self._bars.get(bar_no)
        if row is None:
            return True
        if row["status"] == "ok":
            return False
        # an unavailable bar: tried again at each of the next `retry_bars` cycles
        return int(row["attempts"]) <= self.live.shadow.retry_bars and now_bar > row["tried_at_bar"]

    # --- one bar ---------------------------------------------------------------------------

    def _evaluate(self, bar_no: int, now_bar: int) -> None:
        start_ns = (bar_no + 1) * self.bar_ns
        end_ns = start_ns + self.bar_ns
        attempts = int(self._bars.get(bar_no, {}).get("attempts", 0)) + 1
        intents = self.store.orders(bar_no=bar_no)
        try:
            fills = self.adapter.fills(symbols=self.symbols, since_ts_ns=start_ns)
            orders = self.adapter.list_orders(self.symbols, start_ts_ns=start_ns)
        except PlatformError as e:
            log.warning(
                "shadow: bar %d unavailable (attempt %d): reading the venue's fills and orders "
                "failed: %s", bar_no, attempts, e,
            )  # fmt: skip
            row = _bar_head(bar_no, start_ns, end_ns, "unavailable", str(e), attempts)
            row["tried_at_bar"] = now_bar
            row["intents"] = [_intent_head(o, start_ns) for o in intents]
            row["extra"] = []
            row["n_intents"] = len(intents)
            self._keep(bar_no, row)
            return
        in_window = [f for f in fills if start_ns < f.ts_ns <= end_ns]
        row = evaluate_bar(bar_no, start_ns, end_ns, intents, in_window, orders)
        row["attempts"] = attempts
        self._decided.discard(bar_no)
        self._keep(bar_no, row)
        log.info(
            "shadow bar %d: %d intended, %d filled, %d partial, %d missed, %d extra",
            bar_no, row["n_intents"], row["n_filled"], row["n_partial"], row["n_missed"],
            row["n_extra"],
        )  # fmt: skip

    def _keep(self, bar_no: int, row: dict[str, Any]) -> None:
        self._bars[bar_no] = row
        excess = len(self._bars) - self.live.shadow.max_bars
        for old in sorted(self._bars)[: max(excess, 0)]:
            del self._bars[old]
            self._decided.discard(old)

    # --- the report ------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """Return the report: header, `summary`, `pending_bars` and the `bars` (oldest first)."""
        bars = [self._bars[b] for b in sorted(self._bars)]
        pending = sorted(b for b in self._decided if b not in self._bars)
        return {
            "schema_version": SCHEMA_VERSION,
            "generated_at": _iso(dt.datetime.now(dt.UTC).timestamp() * 1e9),
            "mode": self.live.mode,
            "symbols": list(self.symbols),
            "bar_secs": self.bar_ns / 1e9,
            "state_path": self._state_path,
            "conventions": CONVENTIONS,
            "summary": summarise(bars),
            "pending_bars": pending,
            "bars": [{k: v for k, v in b.items() if k != "tried_at_bar"} for b in bars],
        }

    def write(self) -> dict[str, Any]:
        """Write `shadow.json` and `shadow.html` (atomically each) and return the report.

        A failed write is logged, not raised.
        """
        report = self.report()
        try:
            self.report_dir.mkdir(parents=True, exist_ok=True)
            text = json.dumps(report, indent=1, allow_nan=False, default=str)
            _write_atomic(self.json_path, text)
            _write_atomic(self.html_path, render_html(report))
        except (OSError, ValueError) as e:
            log.error("shadow: writing the report to %s failed: %s", self.report_dir, e)
        return report

    def close(self) -> None:
        """Write the final report."""
        self.write()

    def _resume(self) -> None:
        # continue a report this state file wrote before a restart; keep anything else aside
        try:
            old = json.loads(self.json_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            log.warning("shadow: %s is unreadable (%s); a new one replaces it", self.json_path, e)
            return
        same = (
            isinstance(old, dict)
            and old.get("schema_version") == SCHEMA_VERSION
            and old.get("state_path") == self._state_path
            and old.get("symbols") == list(self.symbols)
            and old.get("bar_secs") == self.bar_ns / 1e9
        )
        if not same:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            aside = self.json_path.with_name(f"shadow-replaced-{stamp}.json")
            log.warning(
                "shadow: %s belongs to another state file or universe; moved to %s, a new "
                "report begins", self.json_path, aside,
            )  # fmt: skip
            try:
                os.replace(self.json_path, aside)
            except OSError as e:
                log.error("shadow: moving the old report aside failed: %s", e)
            return
        for row in old.get("bars", []):
            row.setdefault("tried_at_bar", -1)
            self._bars[int(row["bar_no"])] = row
            if row.get("status") != "ok":
                self._decided.add(int(row["bar_no"]))  # its retries continue
        self._decided.update(int(b) for b in old.get("pending_bars", []))
        log.info("shadow: continuing %s (%d bars)", self.json_path, len(self._bars))


CONVENTIONS = {
    "window": "fills with bar close < time <= bar close + 1 bar (the bar after the decision)",
    "times_secs": "seconds after the decided bar's close",
    "intended_price": "limit price, or the decision's reference price (close) for market orders",
    "slippage_bps": "positive = worse for us: buys (vwap/intended - 1)*1e4, sells the reverse",
    "fill_ratio": "filled / intended size (quote-sized market buys: notional+fees / quote size)",
    "missed": "an intent with no fill in the window",
    "extra": "fills on a symbol and side the bar intended nothing on",
    "partial": f"fill ratio below {FULL_FILL_RATIO}",
}


# === pure figures =============================================================================


def _total(values: Iterable[float]) -> float:
    return float(math.fsum(values))


def _iso(ts_ns: float) -> str:
    stamp = dt.datetime.fromtimestamp(ts_ns / 1e9, dt.UTC)
    return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")


def _side_name(side: int) -> str:
    return "BUY" if side == Side.Buy else "SELL"


def _quote_sized(order: OrderRow) -> bool:
    return (
        order.side == Side.Buy
        and order.order_type == OrderType.Market
        and order.qty <= 0.0
        and order.notional > 0.0
    )


def _intended_price(order: OrderRow) -> float:
    if order.limit_price is not None and order.limit_price > 0.0:
        return float(order.limit_price)
    return float(order.ref_price)


def _capacity(order: OrderRow) -> float:
    return float(order.notional) if _quote_sized(order) else float(order.qty)


def _amount(order: OrderRow, fill: FillInfo) -> float:
    # what a fill contributes toward the intent's size: quote spent, or base quantity
    if _quote_sized(order):
        return fill.size * fill.price + fill.commission
    return fill.size


def _filled(order: OrderRow, fills: list[FillInfo]) -> float:
    # the fill ratio of `order` given its fills (0 when its size is unknown)
    capacity = _capacity(order)
    return sum(_amount(order, f) for f in fills) / capacity if capacity > 0.0 else 0.0


def _bar_head(
    bar_no: int, start_ns: int, end_ns: int, status: str, error: str, attempts: int
) -> dict[str, Any]:
    return {
        "bar_no": bar_no,
        "bar_close": _iso(start_ns),
        "window_end": _iso(end_ns),
        "status": status,
        "error": error,
        "attempts": attempts,
    }


def _intent_head(order: OrderRow, start_ns: int) -> dict[str, Any]:
    price = _intended_price(order)
    quote_sized = _quote_sized(order)
    purpose = PURPOSE_NAMES[order.purpose] if 0 <= order.purpose < len(PURPOSE_NAMES) else ""
    return {
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": _side_name(order.side),
        "order_type": "market" if order.order_type == OrderType.Market else "limit_post_only",
        "purpose": purpose,
        "status": order.status,
        "intended_price": price,
        "intended_qty": None if quote_sized else float(order.qty),
        "intended_notional_usd": float(order.notional) if quote_sized else order.qty * price,
        "decided_secs": (order.created_ts_ns - start_ns) / 1e9,
    }


def _fill_figures(fills: list[FillInfo], start_ns: int) -> dict[str, Any]:
    qty = _total(f.size for f in fills)
    value = _total(f.size * f.price for f in fills)
    return {
        "n_fills": len(fills),
        "filled_qty": qty,
        "filled_notional_usd": value,
        "fees_usd": _total(f.commission for f in fills),
        "vwap": value / qty if qty > 0 else None,
        "first_fill_secs": (fills[0].ts_ns - start_ns) / 1e9 if fills else None,
        "last_fill_secs": (fills[-1].ts_ns - start_ns) / 1e9 if fills else None,
    }


def _intent_row(order: OrderRow, fills: list[FillInfo], start_ns: int) -> dict[str, Any]:
    row = _intent_head(order, start_ns) | _fill_figures(fills, start_ns)
    price = row["intended_price"]
    vwap = row["vwap"]
    if vwap is None or not price > 0.0:
        row.update(slippage_bps=None, slippage_usd=None, fill_ratio=0.0, outcome="missed")
        return row
    buy = order.side == Side.Buy
    row["slippage_bps"] = (vwap / price - 1.0) * 1e4 if buy else (1.0 - vwap / price) * 1e4
    row["slippage_usd"] = (vwap - price) * row["filled_qty"] * (1.0 if buy else -1.0)
    row["fill_ratio"] = _filled(order, fills) if _capacity(order) > 0.0 else None
    ratio = row["fill_ratio"]
    row["outcome"] = "partial" if ratio is not None and ratio < FULL_FILL_RATIO else "filled"
    return row


def _allocate(
    intents: list[OrderRow], fills: list[FillInfo], client_ids: dict[str, str]
) -> tuple[dict[str, list[FillInfo]], dict[tuple[str, int], list[FillInfo]]]:
    # -> fills per intent (client order id) and the unmatched fills per (symbol, side)
    by_intent: dict[str, list[FillInfo]] = {o.client_order_id: [] for o in intents}
    groups: dict[tuple[str, int], list[OrderRow]] = {}
    for o in intents:
        groups.setdefault((o.symbol, o.side), []).append(o)
    rest: list[FillInfo] = []
    for f in fills:
        cid = client_ids.get(f.order_id, "")
        if cid in by_intent:
            by_intent[cid].append(f)
        else:
            rest.append(f)
    extra: dict[tuple[str, int], list[FillInfo]] = {}
    for f in rest:
        group = groups.get((f.symbol, f.side))
        if not group:
            extra.setdefault((f.symbol, f.side), []).append(f)
            continue
        # the first intent not yet filled to its size, else the last one
        target = next(
            (o for o in group if _filled(o, by_intent[o.client_order_id]) < FULL_FILL_RATIO),
            group[-1],
        )
        by_intent[target.client_order_id].append(f)
    for got in by_intent.values():
        got.sort(key=lambda x: (x.ts_ns, x.trade_id))
    return by_intent, extra


def evaluate_bar(
    bar_no: int,
    start_ns: int,
    end_ns: int,
    intents: Iterable[OrderRow],
    fills: Iterable[FillInfo],
    orders: Iterable[OrderInfo],
) -> dict[str, Any]:
    """Return the report row of one bar from its intents and the window's fills and orders.

    `start_ns` is the decided bar's close, `end_ns` one bar later (UTC epoch ns); `fills` are
    the account's fills in `(start_ns, end_ns]`, `orders` the venue's orders created since
    `start_ns` (they name the client order id of each fill's order).
    """
    intents = list(intents)
    fills = sorted(fills, key=lambda f: (f.ts_ns, f.trade_id))
    orders = list(orders)
    client_ids = {o.order_id: o.client_order_id for o in orders}
    by_intent, extra_fills = _allocate(intents, fills, client_ids)
    rows = [_intent_row(o, by_intent[o.client_order_id], start_ns) for o in intents]
    extras = []
    for (symbol, side), got in sorted(extra_fills.items()):
        extras.append(
            {"symbol": symbol, "side": _side_name(side)}
            | _fill_figures(got, start_ns)
            | {"order_ids": sorted({f.order_id for f in got})}
        )
    row = _bar_head(bar_no, start_ns, end_ns, "ok", "", 1)
    slip = [r["slippage_bps"] for r in rows if r["slippage_bps"] is not None]
    row.update(
        intents=rows,
        extra=extras,
        n_intents=len(rows),
        n_filled=sum(r["outcome"] == "filled" for r in rows),
        n_partial=sum(r["outcome"] == "partial" for r in rows),
        n_missed=sum(r["outcome"] == "missed" for r in rows),
        n_extra=len(extras),
        n_fills=len(fills),
        n_orders=sum(1 for o in orders if start_ns <= o.created_ts_ns < end_ns),
        missed_notional_usd=_total(
            r["intended_notional_usd"] for r in rows if r["outcome"] == "missed"
        ),
        extra_notional_usd=_total(e["filled_notional_usd"] for e in extras),
        slippage_bps_mean=float(np.mean(slip)) if slip else None,
        fill_ratio_mean=float(np.mean([r["fill_ratio"] or 0.0 for r in rows])) if rows else None,
    )
    return row


def summarise(bars: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Return the summary of report rows (`ok` bars count; `unavailable` ones are counted)."""
    bars = list(bars)
    ok = [b for b in bars if b["status"] == "ok"]
    intents = [i for b in ok for i in b["intents"]]
    extras = [e for b in ok for e in b["extra"]]
    filled = [i for i in intents if i["outcome"] != "missed"]
    slip = np.array([i["slippage_bps"] for i in filled if i["slippage_bps"] is not None])
    weights = np.array([i["filled_notional_usd"] for i in filled if i["slippage_bps"] is not None])
    delays = [i["first_fill_secs"] for i in filled if i["first_fill_secs"] is not None]
    ratios = [i["fill_ratio"] for i in filled if i["fill_ratio"] is not None]

    def stat(values: Any, func: Any) -> float | None:
        return float(func(values)) if len(values) else None

    return {
        "bars_evaluated": len(ok),
        "bars_unavailable": len(bars) - len(ok),
        "bars_with_orders_or_fills": sum(1 for b in ok if b["intents"] or b["extra"]),
        "first_bar_no": ok[0]["bar_no"] if ok else None,
        "last_bar_no": ok[-1]["bar_no"] if ok else None,
        "intents": len(intents),
        "filled": sum(i["outcome"] == "filled" for i in intents),
        "partial": sum(i["outcome"] == "partial" for i in intents),
        "missed": sum(i["outcome"] == "missed" for i in intents),
        "extra": len(extras),
        "extra_fills": sum(e["n_fills"] for e in extras),
        "intended_notional_usd": _total(i["intended_notional_usd"] for i in intents),
        "filled_notional_usd": _total(i["filled_notional_usd"] for i in intents),
        "missed_notional_usd": _total(
            i["intended_notional_usd"] for i in intents if i["outcome"] == "missed"
        ),
        "extra_notional_usd": _total(e["filled_notional_usd"] for e in extras),
        "fill_ratio_mean": (
            float(np.mean([i["fill_ratio"] or 0.0 for i in intents])) if intents else None
        ),
        "fill_ratio_mean_filled": stat(ratios, np.mean),
        "slippage_bps_mean": stat(slip, np.mean),
        "slippage_bps_median": stat(slip, np.median),
        "slippage_bps_p95": stat(slip, lambda x: np.percentile(x, 95)),
        "slippage_bps_weighted": (
            float(np.average(slip, weights=weights)) if len(slip) and weights.sum() > 0 else None
        ),
        "slippage_usd": _total(i["slippage_usd"] or 0.0 for i in filled),
        "delay_secs_mean": stat(delays, np.mean),
        "delay_secs_max": stat(delays, np.max),
    }


# === files ====================================================================================


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fmt(value: Any, digits: int = 2) -> str:
    """Return a report figure as table text: `-` for none, fixed `digits` for floats."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return html.escape(str(value))


SUMMARY_ROWS = (
    ("Bars evaluated", "bars_evaluated", 0),
    ("Bars unavailable (venue reads failed)", "bars_unavailable", 0),
    ("Bars with orders or fills", "bars_with_orders_or_fills", 0),
    ("Intended orders", "intents", 0),
    ("Filled", "filled", 0),
    ("Partially filled", "partial", 0),
    ("Missed (no fill)", "missed", 0),
    ("Missed notional, USD", "missed_notional_usd", 2),
    ("Extra (symbol/side not intended)", "extra", 0),
    ("Extra fills", "extra_fills", 0),
    ("Extra notional, USD", "extra_notional_usd", 2),
    ("Intended notional, USD", "intended_notional_usd", 2),
    ("Filled notional, USD", "filled_notional_usd", 2),
    ("Fill ratio, mean of all intents", "fill_ratio_mean", 4),
    ("Fill ratio, mean of filled intents", "fill_ratio_mean_filled", 4),
    ("Slippage bps, mean", "slippage_bps_mean", 2),
    ("Slippage bps, median", "slippage_bps_median", 2),
    ("Slippage bps, p95", "slippage_bps_p95", 2),
    ("Slippage bps, weighted by filled notional", "slippage_bps_weighted", 2),
    ("Slippage, USD", "slippage_usd", 2),
    ("Delay to first fill, mean s", "delay_secs_mean", 1),
    ("Delay to first fill, max s", "delay_secs_max", 1),
)

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;
color:#1b1f24;max-width:1280px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:20px 0 6px}
p.meta,p.note{color:#57606a;margin:2px 0}
table{border-collapse:collapse;margin:4px 0 12px}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f6f8fa}td.l,th.l{text-align:left}
tr.unavailable td{background:#fff8c5}
.missed{color:#cf222e}.partial{color:#9a6700}.extra{color:#8250df}
ul{margin:0;padding-left:16px;text-align:left}
"""


def _intent_text(i: dict[str, Any]) -> str:
    size = (
        f"{fmt(i['intended_notional_usd'])} USD"
        if i["intended_qty"] is None
        else f"{i['intended_qty']:.8g}"
    )
    head = (
        f"{i['side']} {html.escape(i['symbol'])} {size} @ {i['intended_price']:.8g} "
        f"({i['order_type']}, {html.escape(i['status'])})"
    )
    if i["outcome"] == "missed":
        return f'<span class="missed">{head}: missed</span>'
    got = (
        f"{i['filled_qty']:.8g} @ {i['vwap']:.8g}, ratio {fmt(i['fill_ratio'], 4)}, "
        f"{fmt(i['slippage_bps'])} bps, first fill {fmt(i['first_fill_secs'], 1)} s"
    )
    css = ' class="partial"' if i["outcome"] == "partial" else ""
    return f"<span{css}>{head} &rarr; {got}</span>"


def _extra_text(e: dict[str, Any]) -> str:
    return (
        f'<span class="extra">extra {e["side"]} {html.escape(e["symbol"])} '
        f"{e['filled_qty']:.8g} @ {e['vwap']:.8g} ({e['n_fills']} fill(s), "
        f"{fmt(e['filled_notional_usd'])} USD)</span>"
    )


def render_html(report: dict[str, Any]) -> str:
    """Return the one-page HTML summary of `report` (inline CSS; no scripts, no assets)."""
    s = report["summary"]
    summary = "".join(
        f'<tr><td class="l">{label}</td><td>{fmt(s.get(key), digits)}</td></tr>'
        for label, key, digits in SUMMARY_ROWS
    )
    shown = [b for b in report["bars"] if b["intents"] or b.get("extra") or b["status"] != "ok"]
    hidden = len(report["bars"]) - len(shown)
    shown = shown[-HTML_MAX_ROWS:]
    rows = []
    for b in reversed(shown):
        if b["status"] != "ok":
            detail = f"venue reads failed: {html.escape(b['error'])}"
            cells = "".join("<td>-</td>" for _ in range(9))
            rows.append(
                f'<tr class="unavailable"><td class="l">{b["bar_close"]}</td><td>{b["bar_no"]}'
                f'</td><td class="l">unavailable</td>{cells}<td class="l">{detail}</td></tr>'
            )
            continue
        items = [_intent_text(i) for i in b["intents"]] + [_extra_text(e) for e in b["extra"]]
        detail = "<ul>" + "".join(f"<li>{x}</li>" for x in items) + "</ul>"
        delays = [i["first_fill_secs"] for i in b["intents"] if i["first_fill_secs"] is not None]
        rows.append(
            f'<tr><td class="l">{b["bar_close"]}</td><td>{b["bar_no"]}</td><td class="l">ok</td>'
            f"<td>{b['n_intents']}</td><td>{b['n_filled']}</td><td>{b['n_partial']}</td>"
            f"<td>{b['n_missed']}</td><td>{b['n_extra']}</td>"
            f"<td>{fmt(b['fill_ratio_mean'], 4)}</td><td>{fmt(b['slippage_bps_mean'])}</td>"
            f"<td>{fmt(float(np.mean(delays)) if delays else None, 1)}</td>"
            f"<td>{fmt(b['missed_notional_usd'])} / {fmt(b['extra_notional_usd'])}</td>"
            f'<td class="l">{detail}</td></tr>'
        )
    pending = ", ".join(str(b) for b in report["pending_bars"]) or "none"
    conventions = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
        for k, v in report["conventions"].items()
    )
    note = f"{hidden} bar(s) without orders or fills not shown." if hidden else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Shadow report: intended vs actual</title>
<style>{_CSS}</style></head><body>
<h1>Shadow report: intended vs actual orders and fills</h1>
<p class="meta">mode {html.escape(report["mode"])} &middot; symbols
{html.escape(", ".join(report["symbols"]))} &middot; bar {report["bar_secs"]:g} s &middot;
generated {report["generated_at"]} &middot; state {html.escape(report["state_path"])}</p>
<p class="meta">decided bars awaiting their window: {pending}</p>
<h2>Summary</h2>
<table class="summary"><tr><th class="l">Figure</th><th>Value</th></tr>{summary}</table>
<h2>Per bar (newest first)</h2>
<p class="note">{note}</p>
<table class="bars"><tr><th class="l">Bar close (UTC)</th><th>Bar</th><th class="l">Status</th>
<th>Intended</th><th>Filled</th><th>Partial</th><th>Missed</th><th>Extra</th>
<th>Fill ratio</th><th>Slippage bps</th><th>Delay s</th><th>Missed / extra USD</th>
<th class="l">Orders</th></tr>{"".join(rows)}</table>
<h2>Conventions</h2><ul>{conventions}</ul>
</body></html>
"""
