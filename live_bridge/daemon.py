"""The live daemon: once per closed bar, the backtest's decision code on a rolling window.

One cycle, for the newest closed bar `b` (bar open time `ts_b`, absolute bar number `b`):

1. fetch the closed bars up to `b` and append them to the rolling window (`window_bars` long,
   the decision path's warm-up by default, so stage 1 reproduces the backtest's row exactly);
2. settle the orders decided at the previous cycle exactly as the backtest does on bar `b`:
   apply their fills through the shared `apply_fill_nb` in emission order, cancel the rest
   (orders live one bar);
3. run stage 1 (`signals.pipeline.decision_inputs`) over the window and the shared `step_nb`
   on its last row with the persisted state;
4. act on the orders by mode: DRY_RUN logs them; PAPER fills them on the next bar with the
   simulator's fill model; LIVE previews, checks the book, places them and tracks them;
5. persist everything in one SQLite transaction.

Whatever the daemon does differently from the decision (a rejected order, a failed request, a
thin book, a stale quote, a product status change) is logged as `DIVERGENCE ...` with the
reason, so a parity comparison can explain every difference.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from live_bridge.coinbase import CoinbaseAdapter, ProductInfo
from live_bridge.config import LiveConfig
from live_bridge.errors import ExchangeError, OrderRejectedError, TransientExchangeError
from live_bridge.store import KernelState, OrderRow, StateStore
from signals.bars import BAR_SCHEMA, Panel, bar_violations
from signals.config import PlatformConfig
from signals.decision.nb import (
    DAY_NS,
    apply_fill_nb,
    new_workspace_nb,
    period_ids_nb,
    step_nb,
)
from signals.decision.params import step_params, step_static
from signals.enums import N_REASONS, PRODUCT_STATUS_NAMES, Acc, OrderType, Pos, ProductStatus, Side
from signals.errors import DataError
from signals.pipeline import decision_inputs, warmup_bars
from signals.records import ORDER_DT
from signals.strategies import enabled_strategies
from signals.symbols import canonical_symbol
from sim.engine import fill_params
from sim.enums import OrderStatus
from sim.nb import fill_order_nb, new_state_nb

log = logging.getLogger("live_bridge.daemon")
POST_ONLY_CROSS = "INVALID_LIMIT_PRICE_POST_ONLY"
SENT = ("open", "filled", "cancelled", "rejected")
"""Order statuses of orders that reached the venue."""


@dataclass
class CycleResult:
    """What one cycle did (for logs, tests and the parity comparison)."""

    bar_no: int
    ts_ns: int
    skipped: bool = False
    orders: list[OrderRow] = field(default_factory=list)
    fills: int = 0
    divergences: list[str] = field(default_factory=list)
    equity_usd: float = float("nan")


class LiveDaemon:
    """Drive the shared decision code once per closed bar against a Coinbase adapter."""

    def __init__(
        self,
        platform: PlatformConfig,
        live: LiveConfig,
        adapter: CoinbaseAdapter,
        store: StateStore,
        *,
        now_ns: Callable[[], int] | None = None,
    ) -> None:
        self.platform = platform
        self.live = live
        self.adapter = adapter
        self.store = store
        self._now_ns = now_ns or adapter.server_time_ns
        self.symbols = tuple(sorted(canonical_symbol(s) for s in live.symbols))
        self.bar_ns = live.bar_ns()
        self.window_bars = live.window_bars or warmup_bars(platform, self.bar_ns)
        self.strategy_names = tuple(s.name for s in enabled_strategies(platform.strategies))
        self.params = step_params(platform)
        self.fill = fill_params(platform)
        self._window = pl.DataFrame(schema=BAR_SCHEMA)
        self._last_fetched_ns: dict[str, int] = {}
        self._rng = random.Random(platform.backtest.seed)
        self._fee_day = -1
        saved = store.load_state()
        n_strat = max(len(self.strategy_names), 1)
        if saved is not None:
            if saved.symbols != self.symbols:
                msg = (
                    f"state store `{store.path}` holds symbols {list(saved.symbols)}, must match "
                    f"live.yaml's {list(self.symbols)}; use a new `state_path` for a new universe"
                )
                raise DataError(msg)
            self.account, self.positions = saved.account, saved.positions
            self.reason_counts = saved.reason_counts
            self.last_bar_no = saved.last_bar_no
            log.info("resumed from %s at bar %d", store.path, self.last_bar_no)
        else:
            cash = self._starting_cash()
            self.account, self.positions = new_state_nb(len(self.symbols), cash)
            self.reason_counts = np.zeros((n_strat, len(self.symbols), N_REASONS), dtype=np.int64)
            self.last_bar_no = -1
        self._static = step_static(platform, self.symbols, self.strategy_names)
        self._workspace = new_workspace_nb(
            len(self.symbols), self._static.theme_id, len(self.strategy_names)
        )

    # --- set-up ------------------------------------------------------------------------------

    def _starting_cash(self) -> float:
        if self.live.mode == "LIVE":
            return float(self.adapter.balances().get("USD", 0.0))
        if self.live.initial_cash_usd is not None:
            return float(self.live.initial_cash_usd)
        return float(self.platform.backtest.initial_cash_usd)

    def _check_fees(self, now_ns: int) -> None:
        # The venue's fee tier is the truth (it moves with 30-day volume); a rate other than the
        # policy's changes sizing, so the daemon says so and trades with the venue's rates.
        # Checked at start and then once per UTC day.
        day = now_ns // DAY_NS
        if self._fee_day == day:
            return
        self._fee_day = day
        maker, taker = self.adapter.fee_rates()
        if abs(maker - self.params.maker_fee) > 1e-12 or abs(taker - self.params.taker_fee) > 1e-12:
            log.warning(
                "DIVERGENCE fee tier maker=%.4f taker=%.4f differs from policy %.4f/%.4f; "
                "using the venue's", maker, taker, self.params.maker_fee, self.params.taker_fee,
            )  # fmt: skip
            self.params = self.params._replace(maker_fee=maker, taker_fee=taker)

    def _products(self) -> np.ndarray:
        products = self.adapter.products()
        status = np.empty(len(self.symbols), dtype=np.int64)
        for s, symbol in enumerate(self.symbols):
            info = products.get(symbol)
            status[s] = info.status if info is not None else ProductStatus.Unknown  # fail closed
        self._static = self._static._replace(
            base_increment=np.array([_p(products, s, "base_increment") for s in self.symbols]),
            quote_increment=np.array([_p(products, s, "quote_increment") for s in self.symbols]),
            min_size=np.array([_p(products, s, "base_min_size") for s in self.symbols]),
            min_notional=np.array([_p(products, s, "quote_min_size") for s in self.symbols]),
        )
        return status

    # --- data --------------------------------------------------------------------------------

    def _update_window(self, newest_open_ns: int, now_ns: int, divergences: list[str]) -> None:
        first_needed = newest_open_ns - (self.window_bars - 1) * self.bar_ns
        batches = []
        for symbol in self.symbols:
            last = self._last_fetched_ns.get(symbol)
            start = first_needed if last is None else max(first_needed, last + self.bar_ns)
            if start > newest_open_ns:
                continue
            try:
                new = self.adapter.candles(
                    symbol, start, newest_open_ns + self.bar_ns, self.live.granularity,
                    now_ns=now_ns,
                )  # fmt: skip
            except (TransientExchangeError, ExchangeError) as e:
                divergences.append(f"{symbol}: candles unavailable ({e})")
                continue
            if new.height:
                # a bad bar is dropped once, not fetched again and again
                self._last_fetched_ns[symbol] = int(new["ts"].dt.epoch("ns").max())  # type: ignore[arg-type]
                batches.append(new.select(list(BAR_SCHEMA)))
        window = self._window
        if batches:
            new = pl.concat(batches)
            bad = bar_violations(new)
            if bad:
                for _, symbol, message in bad:
                    divergences.append(f"{symbol}: bad bars skipped ({message})")
                rows = [i for i, _, _ in bad]
                new = new.with_row_index("_row").filter(~pl.col("_row").is_in(rows)).drop("_row")
            window = pl.concat([window, new])
        self._window = window.filter(pl.col("ts").dt.epoch("ns") >= first_needed)

    def _panel(self, newest_open_ns: int) -> Panel:
        # an explicit index ending at the newest closed bar: a missing bar is NaN (stale)
        n = self.window_bars
        ts = newest_open_ns - np.arange(n - 1, -1, -1, dtype=np.int64) * self.bar_ns
        cols = {
            k: np.full((n, len(self.symbols)), np.nan)
            for k in ("open", "high", "low", "close", "volume")
        }
        w = self._window
        if w.height:
            row = ((w["ts"].dt.epoch("ns").to_numpy() - ts[0]) // self.bar_ns).astype(np.int64)
            col = np.searchsorted(np.array(self.symbols), w["symbol"].to_numpy())
            ok = (row >= 0) & (row < n)
            for k in cols:
                cols[k][row[ok], col[ok]] = w[k].to_numpy()[ok]
        return Panel(
            ts_ns=ts, symbols=self.symbols, **{k: np.ascontiguousarray(v) for k, v in cols.items()}
        )

    # --- settlement of the previous cycle's orders ---------------------------------------------

    def _settle(
        self, bar_no: int, panel: Panel, vol_prev: np.ndarray, now_ns: int, divergences: list[str]
    ) -> int:
        n_fills = 0
        open_orders = self.store.orders(status="open")
        with self.store.transaction() as db:
            for order in open_orders:
                s = self.symbols.index(order.symbol)
                if self.live.mode == "PAPER":
                    n_fills += self._settle_paper(db, order, s, bar_no, panel, vol_prev, now_ns)
                    continue
                try:
                    n_fills += self._settle_live(db, order, s, bar_no, now_ns)
                except (TransientExchangeError, ExchangeError) as e:
                    # stays open: the next cycle settles it (its fills then count on that bar)
                    divergences.append(
                        f"{order.symbol}: order {order.client_order_id} not settled: {e}"
                    )
        return n_fills

    def _apply(self, db, order: OrderRow, s: int, bar_no: int, qty: float, price: float,
               fee: float, trade_id: str, liquidity: str, ts_ns: int) -> None:  # fmt: skip
        apply_fill_nb(
            self.account, self.positions, s, order.side, qty, price, fee, bar_no, order.purpose,
            order.strategy, order.stop_pct, order.take_pct, self.params.cooldown_fill_bars,
            self.params.cooldown_stop_bars,
        )  # fmt: skip
        self.store.insert_fill(
            db, trade_id, order.client_order_id, order.symbol, order.side, qty, price, fee,
            liquidity, bar_no, ts_ns,
        )  # fmt: skip

    def _settle_paper(self, db, order, s, bar_no, panel, vol_prev, now_ns) -> int:  # type: ignore[no-untyped-def]
        rec = _order_record(order, s)
        u1, u2 = self._rng.random(), self._rng.random()
        st, qty, price, fee, is_maker = fill_order_nb(
            rec, panel.open[-1, s], panel.high[-1, s], panel.low[-1, s], vol_prev[s],
            self.account[Acc.Cash], self.positions[s, Pos.Qty], self._static.min_size[s],
            self._static.min_notional[s], self._static.base_increment[s], self.params,
            self.fill, u1, u2,
        )  # fmt: skip
        filled = st in (OrderStatus.Filled, OrderStatus.Partial) and qty > 0.0
        if filled:
            self._apply(db, order, s, bar_no, qty, price, fee, f"paper-{order.client_order_id}",
                        "MAKER" if is_maker else "TAKER", now_ns)  # fmt: skip
        self.store.update_order(db, order.client_order_id, now_ns,
                                status="filled" if filled else "cancelled")  # fmt: skip
        return int(filled)

    def _settle_live(self, db, order: OrderRow, s: int, bar_no: int, now_ns: int) -> int:  # type: ignore[no-untyped-def]
        n = 0
        if order.exchange_order_id is None:
            self.store.update_order(db, order.client_order_id, now_ns, status="failed")
            return 0
        info = self.adapter.order(order.exchange_order_id)
        if info.status in ("OPEN", "PENDING", "QUEUED"):
            self.adapter.cancel([order.exchange_order_id])
        for fill in sorted(
            self.adapter.fills(order_id=order.exchange_order_id),
            key=lambda f: (f.ts_ns, f.trade_id),
        ):
            if self.store.has_fill(fill.trade_id):
                continue
            self._apply(db, order, s, bar_no, fill.size, fill.price, fill.commission,
                        fill.trade_id, fill.liquidity, fill.ts_ns)  # fmt: skip
            n += 1
        status = "filled" if n or info.status == "FILLED" else "cancelled"
        self.store.update_order(db, order.client_order_id, now_ns, status=status)
        return n

    # --- one cycle ----------------------------------------------------------------------------

    def newest_closed_open_ns(self, now_ns: int) -> int:
        """Return the open time of the newest bar that has closed at `now_ns`."""
        return (now_ns // self.bar_ns) * self.bar_ns - self.bar_ns

    def run_cycle(self) -> CycleResult:
        """Run one decision cycle for the newest closed bar (a no-op if it already ran)."""
        now = self._now_ns()
        newest = self.newest_closed_open_ns(now)
        bar_no = newest // self.bar_ns
        result = CycleResult(bar_no=bar_no, ts_ns=newest)
        if bar_no <= self.last_bar_no:
            result.skipped = True
            return result
        if self.live.mode != "DRY_RUN":
            self._check_fees(now)
        status = self._products()
        self._update_window(newest, now, result.divergences)
        panel = self._panel(newest)
        inputs = decision_inputs(panel, self.platform, self.bar_ns)
        vol_prev = inputs.vol[-2] if panel.n_bars > 1 else np.full(len(self.symbols), np.nan)
        result.fills = self._settle(bar_no, panel, vol_prev, now, result.divergences)
        # orders live one bar, so after settlement nothing is pending (as in the backtest)
        self.positions[:, Pos.PendingBuyNotional] = 0.0
        self.positions[:, Pos.PendingSellQty] = 0.0
        self.account[Acc.ReservedCash] = 0.0
        for s, symbol in enumerate(self.symbols):
            if status[s] != ProductStatus.Online:
                name = PRODUCT_STATUS_NAMES[int(status[s])]
                result.divergences.append(f"{symbol}: product status {name} blocks new entries")

        t = panel.n_bars - 1
        day_id, week_id = period_ids_nb(newest)
        out = np.empty(2 * len(self.symbols) + 8, dtype=ORDER_DT)
        n = step_nb(
            bar_no, day_id, week_id, panel.close[t], inputs.weight[t], inputs.stop_pct[t],
            inputs.take_pct[t], inputs.strategy[t], inputs.block_reason[t], status,
            int(inputs.regime[t]), self.params, self._static, self.account, self.positions,
            out, self.reason_counts, self._workspace,
        )  # fmt: skip
        result.equity_usd = float(self.account[Acc.Equity])
        rows = [self._row(out[i], i, bar_no, now) for i in range(n)]
        self._act(rows, now, result)
        result.orders = rows
        self.last_bar_no = bar_no
        with self.store.transaction() as db:
            for row in rows:
                self.store.insert_order(db, row)
            self.store.save_state(
                db,
                KernelState(self.symbols, self.account, self.positions, self.reason_counts, bar_no),
                now,
            )
            note = "; ".join(result.divergences)
            self.store.record_cycle(db, bar_no, newest, self.live.mode, n, result.equity_usd, note)
        for line in result.divergences:
            log.warning("DIVERGENCE bar=%d %s", bar_no, line)
        log.info(
            "cycle bar=%d mode=%s orders=%d fills=%d equity=%.2f", bar_no, self.live.mode, n,
            result.fills, result.equity_usd,
        )  # fmt: skip
        return result

    def _row(self, rec: np.void, seq: int, bar_no: int, now_ns: int) -> OrderRow:
        symbol = self.symbols[int(rec["symbol"])]
        side = int(rec["side"])
        cid = f"247-{bar_no}-{seq}-{symbol}-{'B' if side == Side.Buy else 'S'}"
        limit = float(rec["limit_price"])
        return OrderRow(
            client_order_id=cid, exchange_order_id=None, bar_no=bar_no, seq=seq, symbol=symbol,
            side=side, order_type=int(rec["order_type"]), purpose=int(rec["purpose"]),
            strategy=int(rec["strategy"]), qty=float(rec["qty"]), notional=float(rec["notional"]),
            limit_price=None if np.isnan(limit) else limit, ref_price=float(rec["ref_price"]),
            stop_pct=float(rec["stop_pct"]), take_pct=float(rec["take_pct"]), status="intended",
            note="", created_ts_ns=now_ns, updated_ts_ns=now_ns,
        )  # fmt: skip

    # --- acting on orders -----------------------------------------------------------------------

    def _act(self, rows: list[OrderRow], now_ns: int, result: CycleResult) -> None:
        if self.live.mode == "DRY_RUN":
            for row in rows:
                row.status = "dry_run"
                log.info("DRY_RUN would place %s", _describe(row))
            return
        for row in rows:
            problem = self._pre_trade_problem(row, now_ns)
            if problem:
                row.status, row.note = "skipped", problem
                result.divergences.append(
                    f"{row.symbol}: order {row.client_order_id} not placed: {problem}"
                )
                continue
            if self.live.mode == "PAPER":
                row.status = "open"
                log.info("PAPER placed %s", _describe(row))
                continue
            self._place(row, result)

    def _pre_trade_problem(self, row: OrderRow, now_ns: int) -> str:
        try:
            quote = self.adapter.best_bid_ask([row.symbol]).get(row.symbol)
            if quote is None:
                return "no quote"
            age = (now_ns - quote.ts_ns) / 1e9
            if age > self.live.max_quote_age_seconds:
                return f"quote is {age:.0f} s old (max {self.live.max_quote_age_seconds:.0f} s)"
            mid = (quote.bid + quote.ask) / 2.0
            spread_bps = (quote.ask - quote.bid) / mid * 1e4 if mid > 0 else float("inf")
            if spread_bps > self.live.max_spread_bps:
                return f"spread {spread_bps:.1f} bps > {self.live.max_spread_bps:.1f} bps"
            bid_usd, ask_usd = self.adapter.book_depth_usd(row.symbol, self.live.depth_within_bps)
            depth = ask_usd if row.side == Side.Buy else bid_usd
            if depth < self.live.min_book_depth_usd:
                return (
                    f"book within {self.live.depth_within_bps:.0f} bps holds {depth:,.0f} USD "
                    f"< {self.live.min_book_depth_usd:,.0f} USD"
                )
        except (TransientExchangeError, ExchangeError) as e:
            return f"pre-trade checks failed ({e})"
        return ""

    def _place(self, row: OrderRow, result: CycleResult) -> None:
        if self.live.read_only:  # the ladder forbids this; a second lock on the door
            row.status, row.note = "skipped", "read_only"
            return
        try:
            preview = self.adapter.preview_order(
                row.symbol, row.side,
                base_size=None if row.side == Side.Buy and row.order_type == OrderType.Market
                else row.qty,
                quote_size=row.notional
                if row.side == Side.Buy and row.order_type == OrderType.Market else None,
                limit_price=row.limit_price if row.order_type == OrderType.LimitPostOnly else None,
            )  # fmt: skip
            if preview.errors:
                modelled = all(POST_ONLY_CROSS in err for err in preview.errors)
                row.status, row.note = (
                    ("rejected" if modelled else "skipped"),
                    ",".join(preview.errors),
                )
                if modelled:
                    log.info("preview of %s: post-only would cross", row.client_order_id)
                else:
                    result.divergences.append(
                        f"{row.symbol}: order {row.client_order_id} failed preview: {row.note}"
                    )
                return
            if row.order_type == OrderType.LimitPostOnly:
                ack = self.adapter.place_limit_post_only(
                    row.client_order_id, row.symbol, row.side, row.qty, row.limit_price or 0.0
                )
            elif row.side == Side.Buy:
                ack = self.adapter.place_market(
                    row.client_order_id, row.symbol, row.side, quote_size=row.notional
                )
            else:
                ack = self.adapter.place_market(
                    row.client_order_id, row.symbol, row.side, base_size=row.qty
                )
        except OrderRejectedError as e:
            row.status, row.note = "rejected", e.code
            if e.code == POST_ONLY_CROSS:
                # the backtest's fill model rejects a crossing post-only order the same way
                log.info("venue rejected %s: post-only would cross", row.client_order_id)
            else:
                result.divergences.append(
                    f"{row.symbol}: order {row.client_order_id} rejected: {e.code}"
                )
            return
        except (TransientExchangeError, ExchangeError) as e:
            row.status, row.note = "failed", str(e)
            result.divergences.append(f"{row.symbol}: order {row.client_order_id} failed: {e}")
            return
        row.exchange_order_id = ack.order_id
        row.status = "open"
        log.info("LIVE placed %s as %s", _describe(row), ack.order_id)

    # --- the loop -------------------------------------------------------------------------------

    def run_forever(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Run a cycle after every bar close (+ delay + 0-jitter % of a bar) until stopped."""
        cycles = 0
        while self.live.max_cycles is None or cycles < self.live.max_cycles:
            now = self._now_ns()
            next_close = (now // self.bar_ns + 1) * self.bar_ns
            jitter = self._rng.uniform(0.0, self.live.jitter_pct / 100.0) * self.bar_ns
            wait_secs = (next_close - now + jitter) / 1e9 + self.live.close_delay_secs
            log.info("next cycle in %.1f s", wait_secs)
            sleep(wait_secs)
            try:
                self.run_cycle()
            except Exception:  # the daemon's top loop: log, keep state, stay safe
                log.exception("cycle failed; state kept as of the last completed cycle")
            cycles += 1


def _p(products: dict[str, ProductInfo], symbol: str, name: str) -> float:
    info = products.get(symbol)
    return float(getattr(info, name)) if info is not None else 0.0


def _order_record(order: OrderRow, s: int) -> np.void:
    rec = np.zeros(1, dtype=ORDER_DT)[0]
    rec["bar_no"] = order.bar_no
    rec["symbol"] = s
    rec["side"] = order.side
    rec["order_type"] = order.order_type
    rec["purpose"] = order.purpose
    rec["strategy"] = order.strategy
    rec["qty"] = order.qty
    rec["notional"] = order.notional
    rec["limit_price"] = np.nan if order.limit_price is None else order.limit_price
    rec["ref_price"] = order.ref_price
    rec["stop_pct"] = order.stop_pct
    rec["take_pct"] = order.take_pct
    return rec


def _describe(row: OrderRow) -> str:
    side = "buy" if row.side == Side.Buy else "sell"
    if row.order_type == OrderType.LimitPostOnly:
        limit = f"limit {row.limit_price:g} post-only"
        return f"{row.client_order_id} {side} {row.qty:g} {row.symbol} {limit}"
    size = f"{row.notional:.2f} USD of" if row.side == Side.Buy else f"{row.qty:g}"
    return f"{row.client_order_id} {side} {size} {row.symbol} at market"
