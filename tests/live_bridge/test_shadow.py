"""Shadow mode: a DRY_RUN daemon's decisions beside an account that the test trades itself.

Real parts: the session exchange simulator over TLS (`conftest.py`, 3 symbols of hourly bars
whose every open equals the previous close), a real SQLite state file, the daemon in-process on
the stepped clock, and a second adapter on the same account as "something else trading it".
The daemon decides bar b at its close + 5 s; the other trader then places, at the close + 65 s,
orders mirroring the daemon's intents (one skipped: missed; unintended ones: extra); the next
cycle lets the recorder read the window of bar b + 1.

The simulator's rules give the expected figures exactly: a market order fills at once at the
bar's open x (1 +- slippage_bps / 1e4) (here the open is the decided close, the market intent's
reference price), so its slippage is the injected bps up to float rounding; a resting limit
order fills at its limit, stamped at the close of the first bar whose low is strictly below it,
for `partial_fill_fraction` of its size rounded down to the base increment (1e-8).
"""

from __future__ import annotations

import html.parser
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
import yaml

from live_bridge.coinbase import CoinbaseAdapter, FillInfo, OrderInfo
from live_bridge.config import LiveConfig
from live_bridge.daemon import LiveDaemon
from live_bridge.events import CycleFinished, EventBus
from live_bridge.shadow import ShadowRecorder, evaluate_bar
from live_bridge.store import OrderRow, StateStore
from signals.config import load_config
from signals.enums import OrderType, Side
from tests.live_bridge.conftest import HOUR_NS, START_NS, SYMBOLS, build_adapter
from tests.live_bridge.daemon_process import ROOT, write_busy_config, write_live_yaml

NS = 1_000_000_000
FIRST_BAR = START_NS // HOUR_NS + 100  # the session clock's T0 bar
DECIDE_SECS = 5
TRADE_SECS = 65
SLIPPAGE_BPS = 25.0
PARTIAL_FILL = 0.5
SLIPPAGE_TOL_BPS = 1e-6
"""Fill price = Decimal(open) x (1 + bps/1e4), sent as text and read as a float: a few ulps of
relative error, about 1e-12 bps; 1e-6 bps is far inside any meaningful difference."""
BASE_INCREMENT = 1e-8  # the simulator's default product
FILLS_PATH = "/api/v3/brokerage/orders/historical/fills"


def _close_ns(bar_no: int) -> int:
    return (bar_no + 1) * HOUR_NS


def _bar(bars: pl.DataFrame, symbol: str, bar_no: int) -> dict:
    ts = pl.lit(bar_no * HOUR_NS).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
    return bars.filter((pl.col("symbol") == symbol) & (pl.col("ts") == ts)).row(0, named=True)


def _platform_dir(tmp_path: Path, entry: str, limit_offset_bps: float = 5.0) -> Path:
    config_dir = write_busy_config(tmp_path / "config")
    policy = yaml.safe_load((config_dir / "policy.yaml").read_text())
    policy["execution"].update(entry_order_type=entry, limit_offset_bps=limit_offset_bps)
    (config_dir / "policy.yaml").write_text(yaml.safe_dump(policy))
    return config_dir


@dataclass
class Shadowed:
    """A DRY_RUN daemon with a recorder on its bus, and the other trader's adapter."""

    daemon: LiveDaemon
    recorder: ShadowRecorder
    trader: CoinbaseAdapter
    report_dir: Path
    finished: list[CycleFinished] = field(default_factory=list)
    intents: dict[int, list[OrderRow]] = field(default_factory=dict)


@pytest.fixture(name="shadowed")
def fixture_shadowed(sim, clock, api_key, sleeps, tmp_path, request):
    """Build a `Shadowed`; `request.param` = (entry order type, limit offset bps, shadow)."""
    entry, offset_bps, shadow = request.param
    platform = load_config(_platform_dir(tmp_path, entry, offset_bps))
    report_dir = tmp_path / "shadow"
    live = LiveConfig(
        mode="DRY_RUN", read_only=True, symbols=list(SYMBOLS),
        state_path=str(tmp_path / "state.sqlite"), base_url=sim.base_url,
        ca_path=str(sim.ca_path), max_clock_skew_ms=None,
        shadow={"report_dir": str(report_dir), **shadow},
    )  # fmt: skip
    adapter = build_adapter(sim, api_key, sleeps)
    trader = build_adapter(sim, api_key, sleeps)
    store = StateStore(live.state_path)
    bus = EventBus()
    recorder = ShadowRecorder(live, store, adapter)
    bus.subscribe(recorder)
    daemon = LiveDaemon(platform, live, adapter, store, now_ns=clock.now_ns, events=bus)
    out = Shadowed(daemon, recorder, trader, report_dir)
    bus.subscribe(lambda e: out.finished.append(e) if isinstance(e, CycleFinished) else None)
    yield out
    store.close()
    adapter.close()
    trader.close()


def _decide(s: Shadowed, clock, bar_no: int) -> list[OrderRow]:
    clock.set(_close_ns(bar_no) + DECIDE_SECS * NS)
    result = s.daemon.run_cycle()
    assert result.bar_no == bar_no
    assert not result.skipped
    assert s.finished[-1].bar_no == bar_no  # the cycle ran to its end, recorder included
    s.intents[bar_no] = result.orders
    clock.set(_close_ns(bar_no) + TRADE_SECS * NS)
    return result.orders


def _market_mirror(trader: CoinbaseAdapter, bar_no: int, order: OrderRow) -> None:
    cid = f"other-{bar_no}-{order.seq}"
    if order.side == Side.Buy:
        trader.place_market(cid, order.symbol, order.side, quote_size=order.notional)
    else:
        trader.place_market(cid, order.symbol, order.side, base_size=order.qty)


def _assert_self_contained_html(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    tags: list[str] = []

    class Tags(html.parser.HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append(tag)
            for name, value in attrs:
                assert name not in ("src", "href"), f"external reference {name}={value}"

    Tags().feed(text)
    assert "style" in tags
    assert "table" in tags
    assert not {"script", "link", "img", "iframe"} & set(tags)
    assert "http://" not in text
    assert "https://" not in text
    assert "@import" not in text
    return text


def _intent(rows: dict[int, dict], bar_no: int, order: OrderRow) -> dict:
    (got,) = [i for i in rows[bar_no]["intents"] if i["client_order_id"] == order.client_order_id]
    return got


def _summary_cell(text: str, label: str, value: str) -> bool:
    return f'<td class="l">{label}</td><td>{value}</td>' in text


# --- market orders: slippage, missed and extra ------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("shadowed", [("market", 5.0, {})], indirect=True)
def test_shadow_market_orders_report_injected_slippage_missed_and_extra(
    shadowed: Shadowed, sim, clock, bars
):
    s = shadowed
    sim.engine.configure(slippage_bps=SLIPPAGE_BPS)
    skipped: OrderRow | None = None
    extra_expected: dict[tuple[int, str, str], float] = {}
    n_seen = 0
    last_bar = FIRST_BAR + 60
    for bar_no in range(FIRST_BAR, last_bar + 1):
        intents = _decide(s, clock, bar_no)
        for order in intents:
            n_seen += 1
            if n_seen == 2:  # the other trader leaves this one out: missed
                skipped = order
                continue
            _market_mirror(s.trader, bar_no, order)
        symbols = {o.symbol for o in intents}
        nxt = bar_no + 1
        if "ETH-USD" in symbols and not any(k[1] == "ETH-USD" for k in extra_expected):
            # beside an intended ETH buy: a sell nobody intended (its own symbol/side group)
            s.trader.place_market(f"other-x-{bar_no}", "ETH-USD", Side.Sell, base_size=0.5)
            price = _bar(bars, "ETH-USD", nxt)["open"] * (1 - SLIPPAGE_BPS / 1e4)
            extra_expected[(bar_no, "ETH-USD", "SELL")] = 0.5 * price
        if not intents and bar_no == FIRST_BAR + 1:
            s.trader.place_market(f"other-x-{bar_no}", "SOL-USD", Side.Buy, base_size=1.5)
            price = _bar(bars, "SOL-USD", nxt)["open"] * (1 + SLIPPAGE_BPS / 1e4)
            extra_expected[(bar_no, "SOL-USD", "BUY")] = 1.5 * price

    report = json.loads((s.report_dir / "shadow.json").read_text())
    assert report == s.recorder.report() | {"generated_at": report["generated_at"]}
    assert report["pending_bars"] == [last_bar]  # its window has not ended yet
    rows = {b["bar_no"]: b for b in report["bars"]}
    assert sorted(rows) == list(range(FIRST_BAR, last_bar))
    assert all(b["status"] == "ok" for b in rows.values())

    evaluated = [(b, o) for b, orders in s.intents.items() if b < last_bar for o in orders]
    assert skipped is not None
    assert len(evaluated) >= 4
    assert len(extra_expected) == 2
    for bar_no, order in evaluated:
        got = _intent(rows, bar_no, order)
        close = _bar(bars, order.symbol, bar_no)["close"]
        assert order.order_type == OrderType.Market
        assert got["intended_price"] == close
        assert got["intended_notional_usd"] == order.notional
        assert got["decided_secs"] == pytest.approx(DECIDE_SECS, abs=1e-6)
        if order is skipped:
            assert got["outcome"] == "missed"
            assert got["fill_ratio"] == 0.0
            assert got["n_fills"] == 0
            assert got["slippage_bps"] is None
            continue
        assert got["outcome"] == "filled", got
        assert abs(got["slippage_bps"] - SLIPPAGE_BPS) < SLIPPAGE_TOL_BPS
        assert got["vwap"] == pytest.approx(close * (1 + SLIPPAGE_BPS / 1e4), rel=1e-12)
        # quote-sized: the base size is floored to 1e-8, leaving < 1e-8 x price x (1 + fee)
        # of the quote size unspent (taker fee 0.6 %; 1 % here)
        assert 1 - BASE_INCREMENT * close * 1.01 / order.notional <= got["fill_ratio"] <= 1
        assert got["first_fill_secs"] == pytest.approx(TRADE_SECS, abs=1e-6)
    for (bar_no, symbol, side), notional in extra_expected.items():
        (extra,) = [e for e in rows[bar_no]["extra"] if (e["symbol"], e["side"]) == (symbol, side)]
        assert extra["n_fills"] == 1
        assert extra["filled_notional_usd"] == pytest.approx(notional, rel=1e-12)
        assert extra["first_fill_secs"] == pytest.approx(TRADE_SECS, abs=1e-6)

    summary = report["summary"]
    n = len(evaluated)
    assert summary["bars_evaluated"] == last_bar - FIRST_BAR
    assert summary["bars_unavailable"] == 0
    assert (summary["intents"], summary["filled"], summary["partial"]) == (n, n - 1, 0)
    assert (summary["missed"], summary["extra"], summary["extra_fills"]) == (1, 2, 2)
    assert summary["missed_notional_usd"] == pytest.approx(skipped.notional, rel=1e-12)
    extra_total = sum(extra_expected.values())
    assert summary["extra_notional_usd"] == pytest.approx(extra_total, rel=1e-12)
    for key in ("mean", "median", "p95", "weighted"):
        assert abs(summary[f"slippage_bps_{key}"] - SLIPPAGE_BPS) < SLIPPAGE_TOL_BPS, key
    assert summary["fill_ratio_mean_filled"] == pytest.approx(1.0, abs=1e-6)
    assert summary["fill_ratio_mean"] == pytest.approx((n - 1) / n, abs=1e-6)
    assert summary["delay_secs_mean"] == pytest.approx(TRADE_SECS, abs=1e-6)

    text = _assert_self_contained_html(s.report_dir / "shadow.html")
    assert _summary_cell(text, "Slippage bps, mean", f"{SLIPPAGE_BPS:,.2f}")
    assert _summary_cell(text, "Missed (no fill)", "1")
    assert _summary_cell(text, "Extra (symbol/side not intended)", "2")
    assert _summary_cell(text, "Missed notional, USD", f"{skipped.notional:,.2f}")
    assert _summary_cell(text, "Extra notional, USD", f"{extra_total:,.2f}")
    assert _summary_cell(text, "Delay to first fill, mean s", f"{TRADE_SECS:,.1f}")
    assert not [p for p in s.report_dir.iterdir() if p.name.endswith(".tmp")]


# --- limit orders: partial fills ----------------------------------------------------------------


@pytest.mark.integration
# limits 60 bps under the close: some next bars trade through them, some do not
@pytest.mark.parametrize("shadowed", [("limit_post_only", 60.0, {})], indirect=True)
def test_shadow_limit_orders_report_partial_fill_ratio_and_bar_close_timing(
    shadowed: Shadowed, sim, clock, bars
):
    s = shadowed
    # market slippage does not touch limit orders: they fill at their limit
    sim.engine.configure(slippage_bps=SLIPPAGE_BPS, partial_fill_fraction=PARTIAL_FILL)
    last_bar = FIRST_BAR + 80
    for bar_no in range(FIRST_BAR, last_bar + 1):
        for order in _decide(s, clock, bar_no):
            s.trader.place_limit_post_only(
                f"other-{bar_no}-{order.seq}", order.symbol, order.side, order.qty,
                order.limit_price,
            )  # fmt: skip
        # the other trader gives its orders one bar, as the daemon does: the rest is cancelled
        clock.set(_close_ns(bar_no + 1) + 2 * NS)
        resting = [o.order_id for o in s.trader.open_orders()]
        if resting:
            s.trader.cancel(resting)

    report = s.recorder.report()
    rows = {b["bar_no"]: b for b in report["bars"]}
    through, not_through = [], []
    for bar_no, orders in s.intents.items():
        if bar_no == last_bar:
            continue
        for order in orders:
            assert order.order_type == OrderType.LimitPostOnly
            assert order.side == Side.Buy
            got = _intent(rows, bar_no, order)
            assert got["intended_price"] == order.limit_price
            if _bar(bars, order.symbol, bar_no + 1)["low"] < order.limit_price:
                through.append(order)
                assert got["outcome"] == "partial", got
                # the part is floored to the base increment: within 1e-8 / qty of the fraction
                assert abs(got["fill_ratio"] - PARTIAL_FILL) <= BASE_INCREMENT / order.qty + 1e-12
                assert abs(got["slippage_bps"]) < SLIPPAGE_TOL_BPS
                assert got["first_fill_secs"] == pytest.approx(3600.0, abs=1e-6)
            else:
                not_through.append(order)
                assert got["outcome"] == "missed", got
    assert through, "the data must hold a bar that trades through a limit"
    assert not_through, "the data must hold a bar that does not trade through a limit"

    summary = report["summary"]
    assert summary["partial"] == len(through)
    assert summary["missed"] == len(not_through)
    assert summary["filled"] == 0
    assert summary["extra"] == 0
    assert summary["fill_ratio_mean_filled"] == pytest.approx(PARTIAL_FILL, abs=1e-5)
    assert abs(summary["slippage_bps_mean"]) < SLIPPAGE_TOL_BPS
    assert summary["delay_secs_mean"] == pytest.approx(3600.0, abs=1e-6)
    missed_usd = sum(o.qty * o.limit_price for o in not_through)
    assert summary["missed_notional_usd"] == pytest.approx(missed_usd, rel=1e-12)
    text = _assert_self_contained_html(s.report_dir / "shadow.html")
    assert _summary_cell(text, "Fill ratio, mean of filled intents", f"{PARTIAL_FILL:,.4f}")
    assert _summary_cell(text, "Partially filled", str(len(through)))


# --- venue failures ---------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("shadowed", [("market", 5.0, {"retry_bars": 1})], indirect=True)
def test_shadow_venue_failure_marks_bar_unavailable_retries_and_never_breaks_the_cycle(
    shadowed: Shadowed, sim, clock
):
    s = shadowed
    attempts = s.daemon.adapter.max_retries + 1
    first_intent = None
    bar_no = FIRST_BAR
    while first_intent is None:  # up to the first bar that intends something
        orders = _decide(s, clock, bar_no)
        for order in orders:
            _market_mirror(s.trader, bar_no, order)
        first_intent = bar_no if orders else None
        bar_no += 1
    assert first_intent < FIRST_BAR + 20

    b = first_intent
    sim.faults.server_error(attempts, 503, path_prefix=FILLS_PATH)  # one evaluation fails
    for order in _decide(s, clock, b + 1):
        _market_mirror(s.trader, b + 1, order)
    row = s.recorder.report()["bars"][-1]
    assert (row["bar_no"], row["status"], row["attempts"]) == (b, "unavailable", 1)
    assert "503" in row["error"]
    assert row["n_intents"] == len(s.intents[b])
    on_disk = json.loads((s.report_dir / "shadow.json").read_text())
    assert on_disk["bars"][-1]["status"] == "unavailable"
    assert "unavailable" in (s.report_dir / "shadow.html").read_text()

    sim.faults.server_error(2 * attempts, 503, path_prefix=FILLS_PATH)  # the retry and b + 1
    _decide(s, clock, b + 2)
    _decide(s, clock, b + 3)  # b's one retry is spent; b + 1 is tried again and read
    rows = {r["bar_no"]: r for r in s.recorder.report()["bars"]}
    assert (rows[b]["status"], rows[b]["attempts"]) == ("unavailable", 2)
    assert (rows[b + 1]["status"], rows[b + 1]["attempts"]) == ("ok", 2)
    assert rows[b + 2]["status"] == "ok"
    for order in s.intents[b + 1]:
        got = _intent(rows, b + 1, order)
        assert got["outcome"] == "filled"
    summary = s.recorder.report()["summary"]
    assert summary["bars_unavailable"] == 1
    assert summary["intents"] == sum(len(s.intents[k]) for k in rows if k != b)
    assert [e.bar_no for e in s.finished] == list(range(FIRST_BAR, b + 4))


# --- matching rules (pure) --------------------------------------------------------------------


def _row(cid: str, side: int, qty: float, *, limit: float | None = None, seq: int = 0) -> OrderRow:
    return OrderRow(
        client_order_id=cid, exchange_order_id=None, bar_no=10, seq=seq, symbol="ETH-USD",
        side=side, order_type=OrderType.Market if limit is None else OrderType.LimitPostOnly,
        purpose=1, strategy=0, qty=qty, notional=0.0, limit_price=limit, ref_price=2000.0,
        stop_pct=0.0, take_pct=0.0, status="open", note="", created_ts_ns=11 * HOUR_NS,
        updated_ts_ns=11 * HOUR_NS,
    )  # fmt: skip


def _fill(trade: str, order_id: str, side: int, size: float, price: float, secs: float):
    return FillInfo(
        trade_id=trade, order_id=order_id, symbol="ETH-USD", side=side, price=price, size=size,
        commission=0.0, liquidity="TAKER", ts_ns=11 * HOUR_NS + int(secs * NS),
    )  # fmt: skip


def _venue_order(order_id: str, client_order_id: str) -> OrderInfo:
    return OrderInfo(
        order_id=order_id, client_order_id=client_order_id, symbol="ETH-USD", side=Side.Sell,
        order_type="MARKET", status="FILLED", base_size=1.0, limit_price=0.0, filled_size=1.0,
        average_filled_price=1990.0, total_fees=0.0, created_ts_ns=11 * HOUR_NS + NS,
        number_of_fills=1,
    )  # fmt: skip


def test_evaluate_bar_sells_below_intent_cost_bps_and_fills_go_to_their_own_order_first():
    """Two sells of 1 ETH intended at 2000 (market, reference price) and one buy limit at 1990.

    The daemon's own order `own` (client id of the second sell) fills 1 ETH at 1990; someone
    else's order fills 0.5 at 1980 and 0.5 at 1970. The own fill goes to the second intent
    whatever the time order; the others fill the first sell up to its size. Nothing buys.
    """
    sell_a, sell_b = _row("a", Side.Sell, 1.0), _row("b", Side.Sell, 1.0, seq=1)
    buy = _row("c", Side.Buy, 0.25, limit=1990.0, seq=2)
    fills = [
        _fill("t1", "own", Side.Sell, 1.0, 1990.0, secs=10),
        _fill("t2", "other", Side.Sell, 0.5, 1980.0, secs=20),
        _fill("t3", "other", Side.Sell, 0.5, 1970.0, secs=30),
    ]
    start = 11 * HOUR_NS
    row = evaluate_bar(10, start, start + HOUR_NS, [sell_a, sell_b, buy], fills,
                       [_venue_order("own", "b")])  # fmt: skip
    a, b, c = row["intents"]
    assert a["vwap"] == pytest.approx(1975.0)
    assert a["slippage_bps"] == pytest.approx((1 - 1975.0 / 2000.0) * 1e4)  # 125 bps worse
    assert a["slippage_usd"] == pytest.approx(25.0)
    assert (a["fill_ratio"], a["first_fill_secs"], a["last_fill_secs"]) == (1.0, 20.0, 30.0)
    assert b["slippage_bps"] == pytest.approx(50.0)
    assert (b["n_fills"], b["first_fill_secs"]) == (1, 10.0)
    assert c["outcome"] == "missed"
    assert c["intended_notional_usd"] == pytest.approx(0.25 * 1990.0)
    assert (row["n_filled"], row["n_missed"], row["n_extra"], row["n_orders"]) == (2, 1, 0, 1)
    assert row["missed_notional_usd"] == pytest.approx(497.5)
    # a sell above the intent is negative slippage (better for us); buys the other way round
    better = evaluate_bar(10, start, start + HOUR_NS, [sell_a],
                          [_fill("t4", "x", Side.Sell, 1.0, 2010.0, secs=5)], [])  # fmt: skip
    assert better["intents"][0]["slippage_bps"] == pytest.approx(-50.0)
    extra = evaluate_bar(10, start, start + HOUR_NS, [sell_a],
                         [_fill("t5", "x", Side.Buy, 0.5, 2000.0, secs=5)], [])  # fmt: skip
    assert extra["intents"][0]["outcome"] == "missed"
    assert (extra["n_extra"], extra["extra"][0]["side"]) == (1, "BUY")
    assert extra["extra_notional_usd"] == pytest.approx(1000.0)


# --- the real command line ----------------------------------------------------------------------


def _run_once(config_dir: Path, live_yaml: Path, api_key, log_path: Path) -> None:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("COINBASE_", "CB_", "LIVE_BRIDGE"))
    }
    environ.update(COINBASE_API_KEY=api_key.name, COINBASE_API_SECRET=api_key.private_pem)
    cmd = [
        sys.executable, "-m", "live_bridge.cli", "run", "--config", str(config_dir),
        "--live-config", str(live_yaml), "--mode", "DRY_RUN", "--once", "--shadow",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=environ, cwd=ROOT, capture_output=True, text=True, timeout=120)
    log_path.write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


@pytest.mark.integration
def test_shadow_cli_run_once_restarts_write_and_continue_the_report(
    sim, clock, api_key, bars, tmp_path
):
    config_dir = _platform_dir(tmp_path, "market")
    state_path = tmp_path / "state.sqlite"
    report_dir = tmp_path / "reports"
    live_yaml = write_live_yaml(
        tmp_path / "live.yaml", sim, list(SYMBOLS), state_path, mode="DRY_RUN",
        read_only=True, shadow={"report_dir": str(report_dir)},
    )  # fmt: skip
    sim.engine.configure(slippage_bps=SLIPPAGE_BPS)
    bar_no = FIRST_BAR + 4  # the busy config's first entry on the session data
    clock.set(_close_ns(bar_no) + DECIDE_SECS * NS)
    start = time.monotonic()
    _run_once(config_dir, live_yaml, api_key, tmp_path / "run1.log")
    first = json.loads((report_dir / "shadow.json").read_text())
    assert first["bars"] == []
    assert first["pending_bars"] == [bar_no]
    assert first["mode"] == "DRY_RUN"

    store = StateStore(state_path, read_only=True)
    intents = store.orders(bar_no=bar_no)
    store.close()
    assert intents
    assert all(o.status == "dry_run" for o in intents)
    clock.set(_close_ns(bar_no) + TRADE_SECS * NS)
    with build_adapter(sim, api_key, lambda _s: None) as trader:
        for order in intents:
            _market_mirror(trader, bar_no, order)
        trader.place_market("other-x", "SOL-USD", Side.Buy, base_size=1.5)

    clock.set(_close_ns(bar_no + 1) + DECIDE_SECS * NS)
    _run_once(config_dir, live_yaml, api_key, tmp_path / "run2.log")
    report = json.loads((report_dir / "shadow.json").read_text())
    assert report["pending_bars"] == [bar_no + 1]
    (row,) = report["bars"]
    assert (row["bar_no"], row["status"], row["n_intents"]) == (bar_no, "ok", len(intents))
    for got in row["intents"]:
        assert got["outcome"] == "filled"
        assert abs(got["slippage_bps"] - SLIPPAGE_BPS) < SLIPPAGE_TOL_BPS
        assert got["first_fill_secs"] == pytest.approx(TRADE_SECS, abs=1e-6)
    (extra,) = row["extra"]
    sol_open = _bar(bars, "SOL-USD", bar_no + 1)["open"]
    assert (extra["symbol"], extra["side"]) == ("SOL-USD", "BUY")
    expected = 1.5 * sol_open * (1 + SLIPPAGE_BPS / 1e4)
    assert extra["filled_notional_usd"] == pytest.approx(expected, rel=1e-12)
    summary = report["summary"]
    assert (summary["intents"], summary["filled"], summary["extra"]) == (
        len(intents),
        len(intents),
        1,
    )
    text = _assert_self_contained_html(report_dir / "shadow.html")
    assert _summary_cell(text, "Slippage bps, mean", f"{SLIPPAGE_BPS:,.2f}")
    assert _summary_cell(text, "Extra notional, USD", f"{expected:,.2f}")

    # a third start continues the report: bar_no's row from the second run is still there
    clock.set(_close_ns(bar_no + 2) + DECIDE_SECS * NS)
    _run_once(config_dir, live_yaml, api_key, tmp_path / "run3.log")
    third = json.loads((report_dir / "shadow.json").read_text())
    assert [b["bar_no"] for b in third["bars"]] == [bar_no, bar_no + 1]
    assert third["bars"][0] == row
    assert third["pending_bars"] == [bar_no + 2]
    assert time.monotonic() - start < 240
