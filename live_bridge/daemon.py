"""The live daemon: once per closed bar, the backtest's decision code on a rolling window.

One cycle, for the newest closed bar `b` (bar open time `ts_b`, absolute bar number `b`), each
step safe to crash in:

1. **Reconcile** (LIVE): list the venue's orders (open ones of any age, and every order since
   the oldest unfinished one), cancel those whose one-bar life has ended, then list the fills
   since then and the balances. Any of these calls failing aborts the cycle before anything is
   stored (`ReconcileError`, fail closed). Then, in one transaction: an order of ours (client
   id prefix `247-`) that the store lacks is adopted; every fill not yet applied is applied
   once (its trade id is the key) through the shared `apply_fill_nb`, in emission order, as of
   the bar it filled on in the backtest (`order bar + 1`); every order moves through
   `live_bridge.orders` to what the venue says; cash and positions are compared with the
   balances, and a difference beyond the product increments is a reconcile mismatch that
   stops new entries (trading state `reduce_only`) until a later reconciliation finds none.
   A daemon `halted` by a refused key (401/403) is active again once these calls have
   authenticated, before the bar is decided.
2. **Decide**: fetch the closed bars into the rolling window (`window_bars`, the decision
   path's warm-up by default, so stage 1 reproduces the backtest's row exactly), run stage 1
   (`signals.pipeline.decision_inputs`; the realized volatility only in PAPER, whose
   simulated fills are its one reader) and the shared `step_nb` on its last row.
3. **Intend**: the decided orders go into the store, status `intended`, in one transaction
   with the kernel state and the cycle record, before any is sent.
4. **Act** by mode: DRY_RUN logs them; PAPER fills them at the next cycle with the simulator's
   fill model and the backtest's per-order draws (`sim.nb.fill_draws_nb`); LIVE checks the
   quote and book, previews and creates each with its deterministic client order id
   `247-<bar>-<seq>-<symbol>-<B|S>`, and records the answer (`open`, `rejected`, `failed`, or
   `unknown` when no answer came).

A restarted daemon that finds its bar already decided reconciles and sends the orders of that
bar the venue does not have yet, provided the bar is still the newest closed one; an order
whose bar has ended unsent is `skipped`. Between bars the daemon waits in slices of
`poll_interval_secs`, checking the kill switch file and stop signals (`run_forever`).

Whatever the daemon does differently from the decision (a rejected order, a failed request, a
thin book, a stale quote, a product status change) is logged as `DIVERGENCE ...` with the
reason, so a parity comparison can explain every difference.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import polars as pl

from live_bridge import orders as lifecycle
from live_bridge import trading_state as trading
from live_bridge.coinbase import CoinbaseAdapter, FillInfo, OrderInfo, ProductInfo
from live_bridge.config import LiveConfig
from live_bridge.errors import (
    AuthenticationError,
    ExchangeError,
    OrderRejectedError,
    ReconcileError,
    StateTransitionError,
)
from live_bridge.events import (
    ClockChecked,
    CycleFailed,
    CycleFinished,
    Divergence,
    EventBus,
    FillApplied,
    OrderChanged,
    PositionView,
    Reconciled,
    TradingStateChanged,
)
from live_bridge.orders import SENT  # noqa: F401 (re-exported: the statuses a parity test counts)
from live_bridge.reconcile import (
    CLIENT_ID_PREFIX,
    Mismatch,
    balance_mismatch,
    client_order_id,
    describe_mismatch,
    orders_to_cancel,
    parse_client_order_id,
)
from live_bridge.store import FillRow, KernelState, OrderRow, StateStore
from live_bridge.window import BarWindow
from signals.bars import Panel
from signals.config import PlatformConfig, check_bar_interval, check_reference_symbol
from signals.decision.nb import (
    DAY_NS,
    apply_fill_nb,
    new_workspace_nb,
    period_ids_nb,
    step_nb,
)
from signals.decision.params import step_params, step_static
from signals.enums import (
    N_REASONS,
    PRODUCT_STATUS_NAMES,
    REASON_NAMES,
    REGIME_NAMES,
    Acc,
    OrderType,
    Pos,
    ProductStatus,
    Purpose,
    Side,
)
from signals.errors import ConfigError, DataError, PlatformError
from signals.pipeline import decision_inputs, warmup_bars
from signals.records import ORDER_DT, Book, Combined, Guards, StepOut, new_order
from signals.strategies import enabled_strategies
from sim.engine import fill_params
from sim.enums import OrderStatus
from sim.nb import fill_draws_nb, fill_order_nb, new_state_nb

log = logging.getLogger("live_bridge.daemon")
T = TypeVar("T")
POST_ONLY_CROSS = "INVALID_LIMIT_PRICE_POST_ONLY"
CRASH_ENV = "LIVE_BRIDGE_CRASH_AT"
"""Test hook: `point[:n][,point[:n]...]` SIGKILLs the daemon at the n-th pass of a named point
(`after_intent`, `before_create`, `after_create`, `after_accept`, `mid_reconcile`,
`after_reconcile`), so the crash tests can stop it between placing an order and storing it."""


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
    trading_state: str = trading.ACTIVE
    mismatch: Mismatch = field(default_factory=dict)


@dataclass
class _Snapshot:
    orders: dict[str, OrderInfo]  # by venue order id
    fills: list[FillInfo]
    balances: dict[str, float] | None


class VenueClock:
    """The venue's time: read from it on `sync()`, estimated in between.

    Between reads the estimate is the last venue time plus the real time elapsed times
    `speed` (venue seconds per real second: 1 for Coinbase, the exchange simulator's
    `--speed` under an accelerated clock). Times are UTC epoch ns.
    """

    def __init__(
        self,
        fetch: Callable[[], int],
        speed: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        on_sync: Callable[[float, float], None] | None = None,
    ) -> None:
        self._fetch = fetch
        self.speed = float(speed)
        self._monotonic = monotonic
        self._on_sync = on_sync
        self._anchor: tuple[int, float] | None = None
        self.skew_ms = float("nan")
        """Venue time minus local UTC time at the last read's mid-point, ms."""

    def sync(self) -> int:
        """Read the venue's time (raises what the venue call raises) and return it."""
        before = time.time_ns()
        venue_ns = int(self._fetch())
        after = time.time_ns()
        self._anchor = (venue_ns, self._monotonic())
        self.skew_ms = (venue_ns - (before + after) / 2) / 1e6
        if self._on_sync is not None:
            self._on_sync(self.skew_ms, (after - before) / 1e6)
        return venue_ns

    def estimate_ns(self) -> int:
        """Return the estimated venue time (reads the venue if it was never read)."""
        if self._anchor is None:
            return self.sync()
        venue_ns, real = self._anchor
        return venue_ns + int((self._monotonic() - real) * self.speed * 1e9)

    def real_secs_until(self, venue_ns: int) -> float:
        """Return the real seconds until the venue's clock reaches `venue_ns` (>= 0)."""
        return max(0.0, (venue_ns - self.estimate_ns()) / 1e9 / self.speed)

    def since_sync_secs(self) -> float:
        """Return the real seconds since the last read (inf before the first)."""
        return float("inf") if self._anchor is None else self._monotonic() - self._anchor[1]


class LiveDaemon:
    """Drive the shared decision code once per closed bar against a Coinbase adapter.

    Parameters
    ----------
    platform, live : the backtest's config and `live.yaml`.
    adapter : CoinbaseAdapter
        The venue (Coinbase, or the exchange simulator).
    store : StateStore
        The state file (the caller holds its `InstanceLock`).
    now_ns : callable, optional
        The venue clock; default: the adapter's server time.
    monotonic, sleep : callable
        Real time, injectable for tests.
    events : EventBus, optional
        Where the daemon emits its typed events (`live_bridge.events`); observers subscribe
        to it. `entry_blockers` (callables returning a reason or None) may also refuse new
        entries before they are stored, as a reconcile mismatch does.

    Raises
    ------
    ConfigError
        A configured symbol is not listed by the venue, or the config's lookbacks are
        durations and `live.yaml`'s `granularity` is not `backtest.bar_interval`.
    DataError
        The state file holds another universe.
    """

    def __init__(
        self,
        platform: PlatformConfig,
        live: LiveConfig,
        adapter: CoinbaseAdapter,
        store: StateStore,
        *,
        now_ns: Callable[[], int] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        events: EventBus | None = None,
    ) -> None:
        self.platform = platform
        self.live = live
        self.adapter = adapter
        self.store = store
        self.events = events or EventBus()
        self.entry_blockers: list[Callable[[], str | None]] = []
        self.clock = VenueClock(
            now_ns or adapter.server_time_ns, live.clock_speed, monotonic, self._clock_checked
        )
        self._monotonic = monotonic
        self._sleep = sleep
        self.symbols = tuple(sorted(live.symbols))
        # the regime's reference must be among the fetched symbols (else every bar is "chop");
        # `live-bridge run` has checked the universe lists against them as well
        check_reference_symbol(platform, self.symbols)
        self.bar_ns = live.bar_ns()
        # lookbacks given as durations were converted with `backtest.bar_interval`
        check_bar_interval(platform, self.bar_ns)
        self.window_bars = live.window_bars or warmup_bars(platform, self.bar_ns)
        self.strategy_names = tuple(s.name for s in enabled_strategies(platform.strategies))
        self.params = step_params(platform)
        self.fill = fill_params(platform)
        self._window = BarWindow(self.symbols, self.window_bars, self.bar_ns)
        # the wait after a close is not the backtest's business: a fresh draw on every start
        self._jitter_rng = random.Random()
        self._fee_day = -1
        self._crash_at = _parse_crash_points(os.environ.get(CRASH_ENV, ""))
        self._stop_reason: str | None = None
        self._kill_cancel_pending = False
        self.trading_state = trading.ACTIVE
        self.mismatch: Mismatch = {}
        self._static = step_static(platform, self.symbols, self.strategy_names)
        themes = sorted(platform.universe.themes)
        self._theme_of = [themes[i] if i >= 0 else "" for i in self._static.theme_id]
        self._stage_secs: dict[str, float] = {}
        self._last_close: np.ndarray | None = None
        self._stale: tuple[str, ...] = ()
        self._tradable = len(self.symbols)
        self._blocked_by: tuple[str, ...] = ()
        self._inputs: dict[str, object] = {}
        self._set_increments(self._check_symbols())
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
            missing = N_REASONS - self.reason_counts.shape[2]
            if missing > 0:
                # a state file from before a new `Reason` code: count it from 0 (the kernel
                # writes every code's column, so the array must hold them all)
                self.reason_counts = np.pad(self.reason_counts, ((0, 0), (0, 0), (0, missing)))
            self.last_bar_no = saved.last_bar_no
            log.info("resumed from %s at bar %d", store.path, self.last_bar_no)
            self._close_dust()
        else:
            self._start_fresh(n_strat)
        # a new process starts active; the state file says so (`live-bridge status`), not what
        # the previous run left there; `watch()` and the first reconciliation move it on
        with store.transaction() as db:
            store.set_meta(db, "trading_state", {"state": self.trading_state, "note": "started"})
        self._workspace = new_workspace_nb(
            len(self.symbols), self._static.theme_id, len(self.strategy_names)
        )

    # --- set-up ------------------------------------------------------------------------------

    def _close_dust(self) -> None:
        # A state file written before sells closed exactly may hold a remainder below one base
        # increment: no fill will ever come for it, and it would block re-entry forever. It is
        # closed through the one fill rule (a sell of all of it at its last price, no fee).
        dust = [
            s
            for s in range(len(self.symbols))
            if 0.0 < self.positions[s, Pos.Qty] < self._static.base_increment[s]
        ]
        if not dust:
            return
        no_cooldown = self.params._replace(cooldown_fill_bars=0, cooldown_stop_bars=0)
        for s in dust:
            qty = float(self.positions[s, Pos.Qty])
            order = new_order(s, Side.Sell, Purpose.Exit, int(self.positions[s, Pos.Strategy]))
            apply_fill_nb(
                self.account, self.positions, order, qty, float(self.positions[s, Pos.LastPrice]),
                0.0, self.last_bar_no, no_cooldown, self._static,
            )  # fmt: skip
            log.warning("closed a dust position of %.3g %s (below one base increment %g)",
                        qty, self.symbols[s], self._static.base_increment[s])  # fmt: skip
        with self.store.transaction() as db:
            self._save_state(db, self.clock.estimate_ns())

    def _check_symbols(self) -> dict[str, ProductInfo]:
        return check_symbols(self.adapter, self.symbols)

    def _start_fresh(self, n_strat: int) -> None:
        start_balances: dict[str, float] = {}
        if self.live.mode == "LIVE":
            balances = self.adapter.balances()
            cash = float(balances.get(self._quote, 0.0))
            # holdings the daemon did not buy are not its to manage: positions start at 0 and
            # the reconciliation compares the venue's balance minus this start
            start_balances = {c: float(balances.get(c, 0.0)) for c in self._bases}
        elif self.live.initial_cash_usd is not None:
            cash = float(self.live.initial_cash_usd)
        else:
            cash = float(self.platform.backtest.initial_cash_usd)
        self.account, self.positions = new_state_nb(len(self.symbols), cash)
        self.reason_counts = np.zeros((n_strat, len(self.symbols), N_REASONS), dtype=np.int64)
        self.last_bar_no = -1
        with self._txn() as db:
            self.store.set_meta(db, "start_balances", start_balances)
            self._save_state(db, self.clock.estimate_ns())

    @property
    def _quote(self) -> str:
        return self.symbols[0].split("-", 1)[1]

    @property
    def _bases(self) -> list[str]:
        return [s.split("-", 1)[0] for s in self.symbols]

    def _check_fees(self, now_ns: int) -> None:
        # The venue's fee tier is the truth (it moves with 30-day volume); a rate other than the
        # policy's changes sizing, so the daemon says so and trades with the venue's rates.
        # Checked at start and then once per UTC day.
        day = now_ns // DAY_NS
        if self._fee_day == day:
            return
        maker, taker = self.adapter.fee_rates()
        self._fee_day = day
        if abs(maker - self.params.maker_fee) > 1e-12 or abs(taker - self.params.taker_fee) > 1e-12:
            log.warning(
                "DIVERGENCE fee tier maker=%.4f taker=%.4f differs from policy %.4f/%.4f; "
                "using the venue's", maker, taker, self.params.maker_fee, self.params.taker_fee,
            )  # fmt: skip
            text = (
                f"fee tier maker={maker:.4f} taker={taker:.4f} differs from policy "
                f"{self.params.maker_fee:.4f}/{self.params.taker_fee:.4f}; using the venue's"
            )
            bar_no = self.newest_closed_open_ns(now_ns) // self.bar_ns
            self.events.emit(Divergence(bar_no=bar_no, symbol="", kind="fee_tier", text=text))
            self.params = self.params._replace(maker_fee=maker, taker_fee=taker)

    def _set_increments(self, products: dict[str, ProductInfo]) -> None:
        self._static = self._static._replace(
            base_increment=np.array([_p(products, s, "base_increment") for s in self.symbols]),
            quote_increment=np.array([_p(products, s, "quote_increment") for s in self.symbols]),
            min_size=np.array([_p(products, s, "base_min_size") for s in self.symbols]),
            min_notional=np.array([_p(products, s, "quote_min_size") for s in self.symbols]),
        )

    def _products(self) -> np.ndarray:
        products = self.adapter.products()
        status = np.empty(len(self.symbols), dtype=np.int64)
        for s, symbol in enumerate(self.symbols):
            info = products.get(symbol)
            status[s] = info.status if info is not None else ProductStatus.Unknown  # fail closed
        self._set_increments(products)
        return status

    def _save_state(self, db: Any, now_ns: int, bar_no: int | None = None) -> None:
        last = self.last_bar_no if bar_no is None else bar_no
        state = KernelState(self.symbols, self.account, self.positions, self.reason_counts, last)
        self.store.save_state(db, state, now_ns)

    def _reload_state(self) -> None:
        # after a failed transaction the arrays may hold effects that were rolled back
        saved = self.store.load_state()
        if saved is not None:
            self.account, self.positions = saved.account, saved.positions
            self.reason_counts, self.last_bar_no = saved.reason_counts, saved.last_bar_no

    @contextmanager
    def _txn(self) -> Iterator[Any]:
        # events of a transaction reach observers only once it has committed
        with self.events.held(), self.store.transaction() as db:
            yield db

    def _clock_checked(self, skew_ms: float, rtt_ms: float) -> None:
        self.events.emit(ClockChecked(skew_ms=skew_ms, rtt_ms=rtt_ms))

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self._stage_secs[name] = self._stage_secs.get(name, 0.0) + time.perf_counter() - start

    def _diverge(
        self, result: CycleResult, symbol: str, kind: str, text: str, cid: str = ""
    ) -> None:
        result.divergences.append(text)
        self.events.emit(Divergence(
            bar_no=result.bar_no, symbol=symbol, kind=kind, text=text, client_order_id=cid
        ))  # fmt: skip

    def _crash_point(self, name: str) -> None:
        left = self._crash_at.get(name)
        if left is None:
            return
        if left <= 1:
            os.kill(os.getpid(), signal.SIGKILL)
        self._crash_at[name] = left - 1

    # --- trading state and the kill switch ------------------------------------------------------

    def _event(self, event: str, note: str = "") -> None:
        old = self.trading_state
        new = trading.next_state(old, event)
        if new == old:
            return
        self.trading_state = new
        with self._txn() as db:
            self.store.set_meta(db, "trading_state", {"state": new, "note": note})
        self.events.emit(TradingStateChanged(old=old, new=new, event=event, note=note))
        if event == "kill":
            log.critical(
                "KILL SWITCH engaged (%s): no new orders; cancelling every open order", note
            )
        elif event == "auth_failed":
            log.critical("HALTED: new orders stop: %s", note)
        elif event == "release":
            log.warning("kill switch released (%s removed): trading resumes", note)
        elif event == "stop":
            log.info("stopping (%s)", note)
        elif event == "mismatch":
            log.warning("RECONCILE MISMATCH: new entries stop until it is resolved: %s", note)
        else:
            log.warning("trading state %s -> %s (%s)", old, new, event)

    def kill_switch_engaged(self) -> bool:
        """Return whether the kill switch file exists."""
        return Path(self.live.kill_switch_path).exists()

    def watch(self) -> None:
        """Check the kill switch file: engage or release it, and cancel open orders while on."""
        engaged = self.kill_switch_engaged()
        if engaged and self.trading_state != trading.KILLED:
            self._event("kill", f"{self.live.kill_switch_path} exists")
            self._kill_cancel_pending = True
        elif not engaged and self.trading_state == trading.KILLED:
            self._event("release", self.live.kill_switch_path)
        if self._kill_cancel_pending and self.trading_state == trading.KILLED:
            self._cancel_everything("kill switch")

    def _cancel_everything(self, why: str) -> None:
        if self.live.mode != "LIVE" or self.live.read_only:
            self._kill_cancel_pending = False
            return
        try:
            n = self.reconcile(None, cancel_all=True)
        except (PlatformError, OSError) as e:
            log.error("%s: cancelling open orders failed, tried again in %.0f s: %s",
                      why, self.live.poll_interval_secs, e)  # fmt: skip
            return
        self._kill_cancel_pending = False
        log.warning("%s: cancelled %d open order(s)", why, n)

    def request_stop(self, reason: str) -> None:
        """Ask the daemon to stop after the current step (a signal handler calls this)."""
        self._stop_reason = reason

    @property
    def stopping(self) -> bool:
        """Return whether a stop was requested."""
        return self._stop_reason is not None

    @property
    def stop_reason(self) -> str | None:
        """Return why a stop was requested (the signal's name), None when none was."""
        return self._stop_reason

    # --- data --------------------------------------------------------------------------------

    def _update_window(self, newest_open_ns: int, now_ns: int, result: CycleResult) -> None:
        def fetch(symbol: str, start_ns: int, end_ns: int) -> pl.DataFrame:
            return self.adapter.candles(
                symbol, start_ns, end_ns, self.live.granularity, now_ns=now_ns
            )

        self._window.update(newest_open_ns, fetch, partial(self._diverge, result))

    def _panel(self, newest_open_ns: int) -> Panel:
        # views of the window's arrays, valid until its next update
        return self._window.panel(newest_open_ns)

    # --- orders through the state machine --------------------------------------------------------

    def _move(self, db: Any, order: OrderRow, event: str, now_ns: int, **kw: Any) -> bool:
        old = order.status
        try:
            self.store.move_order(db, order, event, now_ns, **kw)
        except StateTransitionError as e:
            text = f"order {order.client_order_id}: {e}; not applied"
            log.error("%s", text)
            # surfaced in `live-bridge status` (inside the caller's transaction)
            self.store.set_meta(db, "last_transition_error", {"ts_ns": now_ns, "error": text})
            return False
        if order.status != old:
            self.events.emit(_order_event(order, old, event))
        return True

    def _insert(self, db: Any, order: OrderRow, event: str) -> None:
        self.store.insert_order(db, order)
        self.events.emit(_order_event(order, "", event))

    def _move_now(self, order: OrderRow, event: str, now_ns: int, **kw: Any) -> bool:
        with self._txn() as db:
            return self._move(db, order, event, now_ns, **kw)

    def _apply_fill(self, db: Any, order: OrderRow, fill: FillRow) -> None:
        s = self.symbols.index(order.symbol)
        apply_fill_nb(
            self.account, self.positions, _order_record(order, s), fill.qty, fill.price, fill.fee,
            fill.bar_no, self.params, self._static,
        )  # fmt: skip
        self.store.insert_fill(db, fill)
        self.events.emit(FillApplied(
            trade_id=fill.trade_id, client_order_id=fill.client_order_id, symbol=fill.symbol,
            side=fill.side, qty=fill.qty, price=fill.price, fee=fill.fee,
            liquidity=fill.liquidity, bar_no=fill.bar_no, fill_ts_ns=fill.ts_ns,
        ))  # fmt: skip

    # --- reconciliation (LIVE) -------------------------------------------------------------------

    def _venue_call(self, what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AuthenticationError:
            raise
        except ExchangeError as e:
            msg = (
                f"reconciliation aborted, `{what}` failed ({e}); nothing was changed and the "
                "cycle is tried again"
            )
            raise ReconcileError(msg) from e

    def _snapshot(
        self, decide_bar: int | None, now_ns: int, cancel_all: bool
    ) -> tuple[_Snapshot, int]:
        unfinished = self.store.orders(status=lifecycle.UNFINISHED)
        last_cycle = self.store.last_cycle()
        starts = [o.created_ts_ns for o in unfinished]
        if last_cycle is not None:
            starts.append(int(last_cycle[1]))
        since = (min(starts) if starts else now_ns) - 2 * self.bar_ns
        venue: dict[str, OrderInfo] = {}
        listed = self._venue_call("orders", self.adapter.list_orders, self.symbols,
                                  start_ts_ns=since)  # fmt: skip
        resting = self._venue_call("open orders", self.adapter.open_orders)
        for o in [*listed, *resting]:
            if o.symbol in self.symbols:
                venue[o.order_id] = o
        for row in unfinished:
            eid = row.exchange_order_id
            if eid and eid not in venue:
                try:
                    venue[eid] = self.adapter.order(eid)
                except AuthenticationError:
                    raise
                except ExchangeError as e:
                    if e.status != 404:
                        msg = f"reconciliation aborted, `order {eid}` failed ({e})"
                        raise ReconcileError(msg) from e
        cancel = orders_to_cancel(venue.values(), decide_bar, cancel_all)
        if cancel and not self.live.read_only:
            self._venue_call("cancel", self.adapter.cancel, cancel)
            for oid in cancel:
                venue[oid] = self._venue_call(f"order {oid}", self.adapter.order, oid)
        fills = self._venue_call("fills", self.adapter.fills, symbols=self.symbols,
                                 since_ts_ns=since)  # fmt: skip
        for f in fills:
            if f.order_id not in venue:
                venue[f.order_id] = self._venue_call(
                    f"order {f.order_id}", self.adapter.order, f.order_id
                )
        balances = self._venue_call("accounts", self.adapter.balances)
        return _Snapshot(venue, fills, balances), len(cancel)

    def reconcile(self, decide_bar: int | None, *, cancel_all: bool = False) -> int:
        """Make the store agree with the venue; return how many orders were cancelled.

        `decide_bar` is the newest closed bar: orders decided at earlier bars have ended their
        one-bar life and are cancelled if still resting (None: cancel none by age).
        `cancel_all` cancels every resting order on the configured products (kill switch,
        stop). Raises `ReconcileError` (nothing stored) when a venue call fails.
        """
        now = self.clock.estimate_ns()
        for attempt in range(2):
            snap, n_cancelled = self._snapshot(decide_bar, now, cancel_all)
            mismatch = self._apply_snapshot(snap, decide_bar, now, n_cancelled)
            if not mismatch or attempt == 1:
                break
            # a fill may have landed between the fills call and the balances call: look again
            cancel_all = False
        self._crash_point("after_reconcile")
        if mismatch:
            if mismatch != self.mismatch:
                before = self.trading_state
                self.mismatch = mismatch
                self._event("mismatch", describe_mismatch(mismatch))
                if self.trading_state == before:  # the event logged nothing
                    log.warning("reconcile mismatch: %s", describe_mismatch(mismatch))
        elif self.mismatch:
            log.warning("reconcile mismatch resolved: store and venue agree again")
            self.mismatch = {}
        if not mismatch:
            self._event("reconciled")
        return n_cancelled

    def _apply_snapshot(
        self, snap: _Snapshot, decide_bar: int | None, now_ns: int, n_cancelled: int
    ) -> Mismatch:
        ours = {
            o.client_order_id: o
            for o in snap.orders.values()
            if o.client_order_id.startswith(CLIENT_ID_PREFIX)
        }
        adopted = 0
        try:
            with self._txn() as db:
                for cid, info in ours.items():
                    if self.store.order(cid) is None:
                        row = self._adopted_row(info, now_ns)
                        self._insert(db, row, "adopt")
                        adopted += 1
                        log.warning(
                            "adopted venue order %s (%s %s): the store lacked it",
                            cid, info.status, info.symbol,
                        )  # fmt: skip
                cid_of = {o.order_id: o.client_order_id for o in snap.orders.values()}
                pending: list[tuple[OrderRow, FillInfo]] = []
                rows: dict[str, OrderRow] = {}
                for f in snap.fills:
                    cid = cid_of.get(f.order_id, "")
                    if not cid.startswith(CLIENT_ID_PREFIX) or self.store.has_fill(f.trade_id):
                        continue
                    owner = rows.get(cid) or self.store.order(cid)
                    if owner is None:
                        continue
                    rows[cid] = owner
                    pending.append((owner, f))
                pending.sort(key=lambda p: (p[0].bar_no, p[0].seq, p[1].ts_ns, p[1].trade_id))
                for row, f in pending:
                    self._apply_fill(db, row, FillRow(
                        f.trade_id, row.client_order_id, row.symbol, row.side, f.size, f.price,
                        f.commission, f.liquidity, row.bar_no + 1, f.ts_ns,
                    ))  # fmt: skip
                    self._crash_point("mid_reconcile")
                for row in self.store.orders(status=lifecycle.UNFINISHED):
                    venue_order = ours.get(row.client_order_id)
                    if venue_order is None:
                        ended = decide_bar is not None and row.bar_no < decide_bar
                        if ended and row.status == lifecycle.INTENDED:
                            note = "not sent: its bar ended before it was sent"
                            self._move(db, row, "skip", now_ns, note=note)
                        elif ended and row.status == lifecycle.UNKNOWN:
                            note = "the venue never received it"
                            self._move(db, row, "not_found", now_ns, note=note)
                        continue
                    try:
                        event = lifecycle.venue_event(venue_order.status, venue_order.filled_size)
                    except StateTransitionError as e:
                        log.error("order %s: %s; not applied", row.client_order_id, e)
                        continue
                    self._move(db, row, event, now_ns, exchange_order_id=venue_order.order_id)
                mismatch = self._compare(snap.balances) if snap.balances is not None else {}
                self.store.set_meta(db, "reconcile", {"ts_ns": now_ns, "mismatch": mismatch})
                self._save_state(db, now_ns)
                self.events.emit(Reconciled(mismatch=mismatch, cancelled=n_cancelled,
                                            adopted=adopted))  # fmt: skip
        except BaseException:
            self._reload_state()
            raise
        return mismatch

    def _adopted_row(self, info: OrderInfo, now_ns: int) -> OrderRow:
        bar_no, seq = parse_client_order_id(info.client_order_id) or (-1, 0)
        limit = info.limit_price if info.limit_price > 0 else None
        buy = info.side == Side.Buy
        return OrderRow(
            client_order_id=info.client_order_id, exchange_order_id=info.order_id,
            bar_no=bar_no, seq=seq, symbol=info.symbol, side=info.side,
            order_type=OrderType.LimitPostOnly if limit is not None else OrderType.Market,
            purpose=Purpose.Entry if buy else Purpose.Exit, strategy=0, qty=info.base_size,
            notional=info.base_size * (limit or info.average_filled_price), limit_price=limit,
            ref_price=limit or info.average_filled_price,
            stop_pct=self.platform.policy.risk.stop_loss_pct / 100.0 if buy else 0.0,
            take_pct=0.0, status=lifecycle.INTENDED, note="adopted from the venue",
            created_ts_ns=info.created_ts_ns or now_ns, updated_ts_ns=now_ns,
        )  # fmt: skip

    def _compare(self, balances: dict[str, float]) -> Mismatch:
        return balance_mismatch(
            float(self.account[Acc.Cash]), self._quote,
            float(np.max(self._static.quote_increment)), self.positions[:, Pos.Qty].tolist(),
            self._bases, self._static.base_increment.tolist(),
            self.store.get_meta("start_balances", {}) or {}, balances,
        )  # fmt: skip

    # --- settlement of the previous cycle's PAPER orders ----------------------------------------

    def _settle_paper(self, bar_no: int, panel: Panel, vol_prev: np.ndarray, now_ns: int) -> int:
        n_fills = 0
        with self._txn() as db:
            for order in self.store.orders(status=sorted(lifecycle.LIVE)):
                s = self.symbols.index(order.symbol)
                rec = _order_record(order, s)
                # the backtest's draws for this order (keyed by it, so a restart changes none)
                u1, u2 = fill_draws_nb(
                    self.platform.backtest.seed, rec["bar_no"], self._static.symbol_key[s],
                    rec["side"], rec["purpose"],
                )  # fmt: skip
                st, qty, price, fee, is_maker = fill_order_nb(
                    rec, panel.open[-1, s], panel.high[-1, s], panel.low[-1, s], vol_prev[s],
                    self.account[Acc.Cash], self.positions[s, Pos.Qty], self.params,
                    self._static, self.fill, u1, u2,
                )  # fmt: skip
                filled = st in (OrderStatus.Filled, OrderStatus.Partial) and qty > 0.0
                if filled:
                    fill = FillRow(
                        f"paper-{order.client_order_id}", order.client_order_id, order.symbol,
                        order.side, qty, price, fee, "MAKER" if is_maker else "TAKER", bar_no,
                        now_ns,
                    )  # fmt: skip
                    self._apply_fill(db, order, fill)
                    n_fills += 1
                self._move(db, order, "fill" if filled else "cancel", now_ns)
            self._save_state(db, now_ns)
        return n_fills

    # --- one cycle ----------------------------------------------------------------------------

    def newest_closed_open_ns(self, now_ns: int) -> int:
        """Return the open time of the newest bar that has closed at `now_ns`."""
        return (now_ns // self.bar_ns) * self.bar_ns - self.bar_ns

    def run_cycle(self) -> CycleResult:
        """Run one cycle for the newest closed bar.

        Reconciles (LIVE), then decides the bar if no cycle has yet; if one has, sends the
        orders of that bar the venue does not have yet and returns a `skipped` result.
        Raises `ReconcileError`, `AuthenticationError` or another `PlatformError` when the
        cycle could not run; the store then holds what the last committed step wrote.
        """
        start = time.perf_counter()
        self._stage_secs = {}
        now = self.clock.sync()
        newest = self.newest_closed_open_ns(now)
        bar_no = newest // self.bar_ns
        result = CycleResult(bar_no=bar_no, ts_ns=newest)
        self.watch()
        reasons_before = self.reason_counts.sum(axis=(0, 1))
        try:
            self._run_cycle(now, newest, bar_no, result)
        except AuthenticationError as e:
            self._reload_state()
            self._event("auth_failed", str(e))
            raise
        except BaseException:
            self._reload_state()
            raise
        if self.trading_state == trading.HALTED:
            self._event("auth_ok")
        result.trading_state = self.trading_state
        result.mismatch = dict(self.mismatch)
        self._finished(result, now, time.perf_counter() - start, reasons_before)
        return result

    def _finished(
        self, result: CycleResult, now_ns: int, secs: float, reasons_before: np.ndarray
    ) -> None:
        delta = self.reason_counts.sum(axis=(0, 1)) - reasons_before
        reasons = {REASON_NAMES[r]: int(n) for r, n in enumerate(delta) if r and n > 0}
        close = self._last_close
        positions = {}
        for s, symbol in enumerate(self.symbols):
            qty = float(self.positions[s, Pos.Qty])
            if qty <= 0.0:
                continue
            price = (
                float(close[s])
                if close is not None and np.isfinite(close[s])
                else float(self.positions[s, Pos.LastPrice])
            )
            entry = float(self.positions[s, Pos.AvgEntry])
            positions[symbol] = PositionView(
                qty=qty, entry_price=entry, price=price, value_usd=qty * price,
                unrealized_pnl_usd=qty * (price - entry), theme=self._theme_of[s],
            )  # fmt: skip
        counts = self.store.order_counts()
        self.events.emit(CycleFinished(
            bar_no=result.bar_no, bar_ts_ns=result.ts_ns, mode=self.live.mode,
            skipped=result.skipped, trading_state=self.trading_state, secs=secs,
            stages=dict(self._stage_secs), equity_usd=float(self.account[Acc.Equity]),
            cash_usd=float(self.account[Acc.Cash]),
            peak_equity_usd=float(self.account[Acc.PeakEquity]), positions=positions,
            orders=tuple(_order_event(o, "", "decided") for o in result.orders),
            fills=result.fills, reasons=reasons, divergences=tuple(result.divergences),
            bar_age_secs=(now_ns - result.ts_ns - self.bar_ns) / 1e9,
            stale_symbols=self._stale, tradable_symbols=self._tradable,
            breakers={
                "daily_stop": bool(self.account[Acc.DailyStop]),
                "weekly_stop": bool(self.account[Acc.WeeklyStop]),
                "drawdown_breaker": bool(self.account[Acc.DrawdownBreaker]),
            },
            orders_by_status=counts, fills_total=self.store.fill_count(),
            mismatch=dict(self.mismatch), entries_blocked_by=self._blocked_by,
            inputs=self._inputs if not result.skipped else {},
        ))  # fmt: skip

    def _run_cycle(self, now: int, newest: int, bar_no: int, result: CycleResult) -> None:
        decided = bar_no <= self.last_bar_no
        if self.live.mode == "LIVE":
            n_fills = self.store.fill_count()
            # orders decided before the newest closed bar have ended their one-bar life
            with self._stage("settle"):
                self.reconcile(bar_no)
            result.fills = self.store.fill_count() - n_fills
            if self.trading_state == trading.HALTED:
                # the reconciliation's calls authenticated: the halt lifts before this bar's
                # orders are decided and sent, not after them
                self._event("auth_ok")
        if decided:
            result.skipped = True
            if self.live.mode == "LIVE":
                unsent = self.store.orders(
                    status=(lifecycle.INTENDED, lifecycle.UNKNOWN), bar_no=bar_no
                )
                with self._stage("place"):
                    self._send(unsent, now, result)
                result.orders = unsent
            return
        with self._stage("fetch"):
            if self.live.mode != "DRY_RUN":
                self._check_fees(now)
            status = self._products()
            self._update_window(newest, now, result)
            panel = self._panel(newest)
        with self._stage("decide"):
            # the realized volatility feeds only the slippage of PAPER's simulated fills
            paper = self.live.mode == "PAPER"
            inputs = decision_inputs(panel, self.platform, self.bar_ns, with_vol=paper)
        if paper:
            vol_prev = inputs.vol[-2] if panel.n_bars > 1 else np.full(len(self.symbols), np.nan)
            with self._stage("settle"):
                result.fills = self._settle_paper(bar_no, panel, vol_prev, now)
        # orders live one bar, so after settlement nothing is pending (as in the backtest)
        self.positions[:, Pos.PendingBuyNotional] = 0.0
        self.positions[:, Pos.PendingSellQty] = 0.0
        self.account[Acc.ReservedCash] = 0.0
        for s, symbol in enumerate(self.symbols):
            if status[s] != ProductStatus.Online:
                name = PRODUCT_STATUS_NAMES[int(status[s])]
                text = f"{symbol}: product status {name} blocks new entries"
                self._diverge(result, symbol, "product_status", text)

        t = panel.n_bars - 1
        self._last_close = panel.close[t].copy()  # the panel is a view of the window
        regime = int(inputs.regime[t])
        self._inputs = {
            "regime": REGIME_NAMES[regime] if 0 <= regime < len(REGIME_NAMES) else "unknown",
            "close": {sym: _finite(panel.close[t, s]) for s, sym in enumerate(self.symbols)},
            "weight": {
                sym: float(inputs.weight[t, s])
                for s, sym in enumerate(self.symbols)
                if np.isfinite(inputs.weight[t, s]) and inputs.weight[t, s] != 0.0
            },
        }
        stale = ~np.isfinite(panel.close[t])
        self._stale = tuple(sym for s, sym in enumerate(self.symbols) if stale[s])
        self._tradable = int(np.sum(~stale & (status == ProductStatus.Online)))
        day_id, week_id = period_ids_nb(newest)
        params = self.params
        if not trading.orders_allowed(self.trading_state):
            params = params._replace(kill_switch=True)  # decide nothing, count the blocks
        out = np.empty(2 * len(self.symbols) + 8, dtype=ORDER_DT)
        with self._stage("decide"):
            n = step_nb(
                t, bar_no, day_id, week_id, panel.close,
                Combined(inputs.weight, inputs.stop_pct, inputs.take_pct, inputs.strategy),
                Guards(inputs.block_reason, inputs.regime, status), params, self._static,
                Book(self.account, self.positions, self._workspace),
                StepOut(out, self.reason_counts),
            )  # fmt: skip
        result.equity_usd = float(self.account[Acc.Equity])
        rows = [self._row(out[i], i, bar_no, now) for i in range(n)]
        self._blocked_by = tuple(filter(None, (blocker() for blocker in self.entry_blockers)))
        if not trading.entries_allowed(self.trading_state) or self._blocked_by:
            rows = self._drop_entries(rows, result)
        if self.live.mode == "DRY_RUN":
            for row in rows:
                row.status = lifecycle.next_status(row.status, "dry_run")
                log.info("DRY_RUN would place %s", _describe(row))
        with self._stage("persist"), self._txn() as db:
            for row in rows:
                self._insert(db, row, "intend" if row.status == lifecycle.INTENDED else "dry_run")
                if self.live.mode == "PAPER":
                    self._move(db, row, "accept", now)
                    log.info("PAPER placed %s", _describe(row))
            self.last_bar_no = bar_no
            self._save_state(db, now)
            note = "; ".join(result.divergences)
            self.store.record_cycle(db, bar_no, newest, self.live.mode, n, result.equity_usd, note)
        self._crash_point("after_intent")
        if self.live.mode == "LIVE":
            with self._stage("place"):
                self._send(rows, now, result)
        result.orders = rows
        for line in result.divergences:
            log.warning("DIVERGENCE bar=%d %s", bar_no, line)
        log.info(
            "cycle bar=%d mode=%s state=%s orders=%d fills=%d equity=%.2f", bar_no,
            self.live.mode, self.trading_state, len(rows), result.fills, result.equity_usd,
        )  # fmt: skip

    def _drop_entries(self, rows: list[OrderRow], result: CycleResult) -> list[OrderRow]:
        kept = []
        why = ", ".join(self._blocked_by) or f"trading state {self.trading_state}"
        for row in rows:
            if row.side == Side.Buy:
                s = self.symbols.index(row.symbol)
                # undo the reservation the step made for it
                self.positions[s, Pos.PendingBuyNotional] -= row.notional
                self.account[Acc.ReservedCash] -= row.notional
                text = f"{row.symbol}: entry not sent: {why}"
                self._diverge(result, row.symbol, "entry_blocked", text, row.client_order_id)
                continue
            kept.append(row)
        return kept

    def _row(self, rec: np.void, seq: int, bar_no: int, now_ns: int) -> OrderRow:
        symbol = self.symbols[int(rec["symbol"])]
        side = int(rec["side"])
        cid = client_order_id(bar_no, seq, symbol, side == Side.Buy)
        limit = float(rec["limit_price"])
        return OrderRow(
            client_order_id=cid, exchange_order_id=None, bar_no=bar_no, seq=seq, symbol=symbol,
            side=side, order_type=int(rec["order_type"]), purpose=int(rec["purpose"]),
            strategy=int(rec["strategy"]), qty=float(rec["qty"]), notional=float(rec["notional"]),
            limit_price=None if np.isnan(limit) else limit, ref_price=float(rec["ref_price"]),
            stop_pct=float(rec["stop_pct"]), take_pct=float(rec["take_pct"]),
            status=lifecycle.INTENDED, note="", created_ts_ns=now_ns, updated_ts_ns=now_ns,
        )  # fmt: skip

    # --- sending (LIVE) --------------------------------------------------------------------------

    def _send(self, rows: Iterable[OrderRow], now_ns: int, result: CycleResult) -> None:
        for row in rows:
            if row.status not in (lifecycle.INTENDED, lifecycle.UNKNOWN):
                continue
            if self._blocked(row, now_ns, result):
                if self.stopping:
                    return
                continue
            if row.status == lifecycle.INTENDED:
                problem = self._pre_trade_problem(row, now_ns)
                if problem == POST_ONLY_CROSS:
                    # the backtest's fill model rejects a crossing post-only order the same way
                    self._move_now(row, "reject", now_ns, note=problem)
                    log.info("preview of %s: post-only would cross", row.client_order_id)
                    continue
                if problem:
                    self._move_now(row, "skip", now_ns, note=problem)
                    text = f"{row.symbol}: order {row.client_order_id} not placed: {problem}"
                    self._diverge(result, row.symbol, "not_placed", text, row.client_order_id)
                    continue
                # the checks take a few requests: look at the kill switch again right before
                if self._blocked(row, now_ns, result):
                    if self.stopping:
                        return
                    continue
            if not self._place(row, now_ns, result):
                return

    def _blocked(self, row: OrderRow, now_ns: int, result: CycleResult) -> bool:
        # True when `row` must not be sent now: a stop request (it stays intended, so a restart
        # within the bar sends it) or a trading state that forbids orders (then it is skipped)
        self.watch()
        if self.stopping:
            return True
        if trading.orders_allowed(self.trading_state):
            return False
        if row.status == lifecycle.INTENDED:
            note = f"not sent: trading state {self.trading_state}"
            self._move_now(row, "skip", now_ns, note=note)
            text = f"{row.symbol}: order {row.client_order_id} {note}"
            self._diverge(result, row.symbol, "not_placed", text, row.client_order_id)
        return True

    def _pre_trade_problem(self, row: OrderRow, now_ns: int) -> str:
        if self.live.read_only:  # the ladder forbids this; a second lock on the door
            return "read_only"
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
            return self._preview_problem(row)
        except AuthenticationError:
            raise
        except ExchangeError as e:
            return f"pre-trade checks failed ({e})"

    def _preview_problem(self, row: OrderRow) -> str:
        market_buy = row.side == Side.Buy and row.order_type == OrderType.Market
        preview = self.adapter.preview_order(
            row.symbol, row.side,
            base_size=None if market_buy else row.qty,
            quote_size=row.notional if market_buy else None,
            limit_price=row.limit_price if row.order_type == OrderType.LimitPostOnly else None,
        )  # fmt: skip
        if not preview.errors:
            return ""
        if all(POST_ONLY_CROSS in err for err in preview.errors):
            return POST_ONLY_CROSS
        return f"failed preview: {','.join(preview.errors)}"

    def _place(self, row: OrderRow, now_ns: int, result: CycleResult) -> bool:
        # returns False when no further order of this cycle should be tried (halted)
        try:
            self._crash_point("before_create")
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
            self._move_now(row, "reject", now_ns, note=e.code)
            if e.code == POST_ONLY_CROSS:
                # the backtest's fill model rejects a crossing post-only order the same way
                log.info("venue rejected %s: post-only would cross", row.client_order_id)
            else:
                text = f"{row.symbol}: order {row.client_order_id} rejected: {e.code}"
                self._diverge(result, row.symbol, "rejected", text, row.client_order_id)
            return True
        except AuthenticationError as e:
            self._move_now(row, "fail", now_ns, note=str(e))
            text = f"{row.symbol}: order {row.client_order_id} failed: {e}"
            self._diverge(result, row.symbol, "failed", text, row.client_order_id)
            self._event("auth_failed", str(e))
            return False
        except ExchangeError as e:
            # a 4xx is the venue's answer (nothing placed); anything else may have reached it
            answered = e.status is not None and 400 <= e.status < 500
            event = "fail" if answered else "no_answer"
            self._move_now(row, event, now_ns, note=str(e))
            outcome = "failed" if answered else "got no answer (status unknown until reconciled)"
            text = f"{row.symbol}: order {row.client_order_id} {outcome}: {e}"
            kind = "failed" if answered else "no_answer"
            self._diverge(result, row.symbol, kind, text, row.client_order_id)
            return True
        self._crash_point("after_create")
        self._move_now(row, "accept", now_ns, exchange_order_id=ack.order_id)
        self._crash_point("after_accept")
        log.info("LIVE placed %s as %s", _describe(row), ack.order_id)
        return True

    # --- the loop -------------------------------------------------------------------------------

    def _due_ns(self, bar_no: int) -> int:
        # the cycle of bar `bar_no` runs after its close, the publishing delay and a jitter
        jitter = self._jitter_rng.uniform(0.0, self.live.jitter_pct / 100.0) * self.bar_ns
        close = (bar_no + 1) * self.bar_ns
        return close + int(self.live.close_delay_secs * 1e9) + int(jitter)

    def _cycle_due(self, now_ns: int, starting: bool) -> bool:
        newest = self.newest_closed_open_ns(now_ns) // self.bar_ns
        if newest > self.last_bar_no:
            if not starting:
                return True
            # at start, a bar that closed long ago is not decided: its fills would be late
            age = now_ns - (newest + 1) * self.bar_ns
            return age <= self.live.late_start_pct / 100.0 * self.bar_ns
        unsent = self.store.orders(status=(lifecycle.INTENDED, lifecycle.UNKNOWN), bar_no=newest)
        return bool(unsent) and self.live.mode == "LIVE"

    def wait_real(self, secs: float) -> None:
        """Wait `secs` real seconds in slices, watching the kill switch and stop requests."""
        end = self._monotonic() + secs
        while not self.stopping:
            left = end - self._monotonic()
            if left <= 0:
                return
            self._sleep(min(left, self.live.poll_interval_secs))
            self.watch_quietly()

    def watch_quietly(self) -> None:
        """`watch()`, logging (not raising) a failure; a store error is raised."""
        try:
            self.watch()
        except (ExchangeError, ReconcileError) as e:
            log.error("kill switch check failed: %s", e)

    def _wait_for_venue(self, due_ns: int) -> None:
        # sleep in slices until the venue's clock reaches `due_ns`, reading it now and then
        while not self.stopping:
            if self.clock.since_sync_secs() >= self.live.clock_sync_secs:
                try:
                    self.clock.sync()
                except ExchangeError as e:
                    log.warning("venue clock unavailable (%s); using the estimate", e)
            left = self.clock.real_secs_until(due_ns)
            if left <= 0:
                return
            self._sleep(min(left, self.live.poll_interval_secs))
            self.watch_quietly()

    def run_forever(self) -> int:
        """Run a cycle after every bar close until stopped; return the number of cycles run.

        Waits until the close + `close_delay_secs` + a jitter of 0-`jitter_pct` % of a bar
        (venue time, so an accelerated venue clock is followed); a failed cycle is logged in
        one line and tried again after `retry_delay_secs`; a failed venue call never ends the
        loop. Stops after `max_cycles` decided bars, or when `request_stop` was called.
        """
        cycles = 0
        starting = True
        while not self.stopping and (self.live.max_cycles is None or cycles < self.live.max_cycles):
            self.watch_quietly()
            try:
                now = self.clock.sync()
                due = self._cycle_due(now, starting)
            except ExchangeError as e:
                log.warning("venue clock unavailable (%s); trying again", e)
                self.wait_real(self.live.retry_delay_secs)
                continue
            if due:
                decided_before = self.last_bar_no
                result = self._attempt("cycle", self.run_cycle)
                if result is None:
                    continue
                starting = False
                if self.last_bar_no > decided_before:
                    cycles += 1
                elif result.skipped and any(
                    o.status in (lifecycle.INTENDED, lifecycle.UNKNOWN) for o in result.orders
                ):
                    self.wait_real(self.live.retry_delay_secs)  # the venue still has not answered
                continue
            newest = self.newest_closed_open_ns(now) // self.bar_ns
            # nothing to decide yet at start, but the venue is the truth from the first second on
            if (
                starting
                and self.live.mode == "LIVE"
                and self._attempt("start-up reconciliation", partial(self.reconcile, newest))
                is None
            ):
                continue
            starting = False
            due_ns = self._due_ns(max(newest, self.last_bar_no) + 1)
            log.info(
                "next cycle in %.1f s (venue time %.0f s)",
                self.clock.real_secs_until(due_ns), (due_ns - now) / 1e9,
            )  # fmt: skip
            self._wait_for_venue(due_ns)
        return cycles

    def _attempt(self, what: str, step: Callable[[], T]) -> T | None:
        # the top loop's one way to fail: a log line, a wait of `retry_delay_secs`, None; the
        # store holds what the last committed step wrote
        try:
            return step()
        except AuthenticationError as e:
            self._event("auth_failed", str(e))  # logged once, when the daemon halts
            self._failed(what, e)
        except PlatformError as e:
            log.warning("%s failed, tried again in %.0f s: %s", what,
                        self.live.retry_delay_secs, e)  # fmt: skip
            self._failed(what, e)
        except Exception as e:  # the daemon's top loop: log, keep state, stay safe
            log.exception("%s failed; state kept as of the last committed step", what)
            self._failed(what, e)
        self.wait_real(self.live.retry_delay_secs)
        return None

    def _failed(self, what: str, e: BaseException) -> None:
        self.events.emit(CycleFailed(what=what, error=type(e).__name__, message=str(e)))

    def shutdown(self) -> int:
        """Stop: cancel the open orders when `on_stop: cancel` (LIVE); return how many.

        Returns -1 when the venue could not be reached to cancel them (logged at ERROR: the
        orders may still rest; the next start reconciles them).
        """
        self._event("stop", self._stop_reason or "")
        if self.live.mode != "LIVE" or self.live.read_only or self.live.on_stop == "leave":
            return 0
        try:
            return self.reconcile(None, cancel_all=True)
        except PlatformError as e:
            log.error("could not cancel the open orders on stop; they may still rest: %s", e)
            return -1


def check_symbols(adapter: CoinbaseAdapter, symbols: Iterable[str]) -> dict[str, ProductInfo]:
    """Return the venue's products; raise `ConfigError` naming the symbols it does not list."""
    products = adapter.products()
    unknown = [s for s in symbols if s not in products]
    if unknown:
        listed = sorted(products)
        msg = (
            f"live.yaml `symbols` must be products the venue lists, was {unknown} (the venue "
            f"lists {len(listed)}, e.g. {listed[:8]}); fix the spelling or remove them"
        )
        raise ConfigError(msg)
    return products


def _parse_crash_points(spec: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = part.partition(":")
        out[name] = int(count) if count.isdigit() else 1
    return out


def _p(products: dict[str, ProductInfo], symbol: str, name: str) -> float:
    info = products.get(symbol)
    return float(getattr(info, name)) if info is not None else 0.0


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _order_event(order: OrderRow, old: str, event: str) -> OrderChanged:
    return OrderChanged(
        client_order_id=order.client_order_id, symbol=order.symbol, side=order.side,
        purpose=order.purpose, order_type=order.order_type, qty=order.qty,
        notional=order.notional, limit_price=order.limit_price, ref_price=order.ref_price,
        bar_no=order.bar_no, old=old, new=order.status, event=event, note=order.note,
        exchange_order_id=order.exchange_order_id,
    )  # fmt: skip


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
