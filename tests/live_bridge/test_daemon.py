"""The live daemon against the exchange simulator: restart, idempotent cycles, PAPER mode, the
state file, and every DIVERGENCE it must report instead of breaking.

The shipped data set is served by the parity fixtures (`tests/parity/conftest.py`) under a
stepped clock; the daemon starts at the decision path's warm-up, where nothing has traded yet,
so it starts from the backtest's state and its orders can be compared bar by bar.
"""

import json
import logging
import sqlite3

import numpy as np
import pytest

from live_bridge.config import LiveConfig
from live_bridge.daemon import SENT, LiveDaemon
from live_bridge.store import StateStore
from signals.bars import to_panel
from signals.enums import Pos
from signals.errors import ConfigError
from signals.pipeline import warmup_bars
from sim.engine import run_backtest
from tests.parity.conftest import (  # noqa: F401 (fixtures used by name)
    KEY_NAME,
    Venue,
    daemon_orders,
    fixture_shipped_bars,
    fixture_venue,
    make_daemon,
    orders_by_bar,
    parity_config,
    same_orders,
    venue_adapter,
)

N_RESUME = 60
"""Cycles before the restart; the replay goes to 2 * N_RESUME (orders at +23..+26, +60, +107)."""
FIRST_ORDER = 23
"""Offset from the warm-up of the shipped data's first decided order (ETH-USD, post-only buy)."""
ORDERS_PATH = "/api/v3/brokerage/orders$"
"""Order creation only (the fault plan's `$`: not the order list or preview)."""


def _mismatch(sent: dict[int, list[tuple]], expected: dict[int, list[tuple]]) -> list[int]:
    return [b for b in sent if not same_orders(sent[b], expected.get(b, []))]


@pytest.fixture(name="market", scope="module")
def fixture_market(shipped_bars):
    """The shipped panel, its bar length, the warm-up and the backtest's orders by bar."""
    config = parity_config()
    panel = to_panel(shipped_bars)
    bar_ns = int(panel.ts_ns[1] - panel.ts_ns[0])
    first = warmup_bars(config, bar_ns)
    backtest = run_backtest(panel.slice(0, first + 2 * N_RESUME), config)
    return {
        "config": config, "panel": panel, "bar_ns": bar_ns, "first": first,
        "expected": orders_by_bar(backtest.orders, bar_ns), "backtest": backtest,
    }  # fmt: skip


def _step(venue: Venue, market: dict, daemon: LiveDaemon, offset: int):
    t = market["first"] + offset
    venue.clock.set(int(market["panel"].ts_ns[t]) + market["bar_ns"])
    return daemon.run_cycle()


def _replay(venue: Venue, market: dict, daemon: LiveDaemon, start: int, stop: int) -> dict:
    sent = {}
    for offset in range(start, stop):
        result = _step(venue, market, daemon, offset)
        assert not result.skipped
        sent[result.bar_no] = daemon_orders([r for r in result.orders if r.status in SENT])
    return sent


def _daemon(venue: Venue, tmp_path, market: dict, mode: str) -> LiveDaemon:
    # make_daemon is LIVE only; PAPER keeps its settings apart from read_only
    symbols = list(market["panel"].symbols)
    live = LiveConfig(
        mode=mode, read_only=mode != "LIVE", symbols=symbols, state_path=str(tmp_path / "s.db"),
        base_url=venue.server.base_url, ca_path=str(venue.server.ca_path), timeout_secs=5.0,
        max_quote_age_seconds=60.0,
    )  # fmt: skip
    adapter = venue_adapter(venue, live)
    store = StateStore(live.state_path)
    return LiveDaemon(market["config"], live, adapter, store, now_ns=venue.clock.now_ns)


def _close(daemon: LiveDaemon) -> None:
    daemon.store.close()
    daemon.adapter.close()


def _bar_no(market: dict, offset: int) -> int:
    return int(market["panel"].ts_ns[market["first"] + offset]) // market["bar_ns"]


def test_daemon_refuses_symbols_without_the_regime_reference(venue, tmp_path, market):
    # a caller building the daemon directly gets the check `live-bridge run` makes first
    live = LiveConfig(
        mode="LIVE", read_only=False, symbols=["ETH-USD"], state_path=str(tmp_path / "s.db"),
        base_url=venue.server.base_url, ca_path=str(venue.server.ca_path),
    )  # fmt: skip
    adapter = venue_adapter(venue, live)
    store = StateStore(live.state_path)
    try:
        with pytest.raises(ConfigError, match=r"`regime.reference_symbol` BTC-USD must be"):
            LiveDaemon(market["config"], live, adapter, store, now_ns=venue.clock.now_ns)
        assert store.load_state() is None
    finally:
        store.close()
        adapter.close()


def test_daemon_refuses_durations_of_another_bar_length(venue, tmp_path, market):
    # `48h` was converted to bars of `backtest.bar_interval` (1h): 5-minute bars would be wrong
    platform = market["config"].with_overrides({"strategies.rules.breakout_lookback": "2d"})
    live = LiveConfig(
        mode="LIVE", read_only=False, symbols=list(market["panel"].symbols),
        state_path=str(tmp_path / "s.db"), base_url=venue.server.base_url,
        ca_path=str(venue.server.ca_path), granularity="FIVE_MINUTE",
    )  # fmt: skip
    adapter = venue_adapter(venue, live)
    store = StateStore(live.state_path)
    try:
        with pytest.raises(ConfigError, match=r"was 1h for bars 5m apart"):
            LiveDaemon(platform, live, adapter, store, now_ns=venue.clock.now_ns)
        assert store.load_state() is None
    finally:
        store.close()
        adapter.close()


# --- (a) restart and resume -----------------------------------------------------------------


@pytest.mark.integration
def test_daemon_restart_on_same_state_resumes_orders_equal_uninterrupted(
    venue: Venue, tmp_path, market
):
    symbols = market["panel"].symbols
    whole_dir, split_dir = tmp_path / "whole", tmp_path / "split"
    whole = make_daemon(venue, whole_dir, market["config"], symbols)
    uninterrupted = _replay(venue, market, whole, 0, 2 * N_RESUME)
    _close(whole)

    venue.engine.reset()  # a fresh account for the interrupted run
    first = make_daemon(venue, split_dir, market["config"], symbols)
    _replay(venue, market, first, 0, N_RESUME)
    _close(first)
    second = make_daemon(venue, split_dir, market["config"], symbols)
    assert second.last_bar_no == _bar_no(market, N_RESUME - 1)
    resumed = _replay(venue, market, second, N_RESUME, 2 * N_RESUME)

    after = {b: o for b, o in uninterrupted.items() if b >= _bar_no(market, N_RESUME)}
    assert resumed.keys() == after.keys()
    assert sum(len(v) for v in resumed.values()) >= 2, "the resumed half must trade"
    assert not [b for b in resumed if not same_orders(resumed[b], after[b])]
    assert not _mismatch(resumed, market["expected"])
    np.testing.assert_allclose(
        second.positions[:, Pos.Qty], market["backtest"].final_positions[:, Pos.Qty], rtol=1e-12
    )
    _close(second)


@pytest.mark.integration
def test_daemon_resumes_a_state_saved_before_a_new_reason_code(venue: Venue, tmp_path, market):
    # a state file written when `Reason` had fewer codes: the daemon counts the new ones from
    # 0 and keeps the old counts, and its next cycle runs (the kernel writes every column)
    symbols = market["panel"].symbols
    first = make_daemon(venue, tmp_path, market["config"], symbols)
    _replay(venue, market, first, 0, 3)
    saved = first.reason_counts.copy()
    path = first.store.path
    _close(first)
    assert saved.shape[2] > 2
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE kernel_state SET reason_counts = ?", (json.dumps(saved[:, :, :-2].tolist()),)
        )
    second = make_daemon(venue, tmp_path, market["config"], symbols)
    assert second.reason_counts.shape == saved.shape
    np.testing.assert_array_equal(second.reason_counts[:, :, :-2], saved[:, :, :-2])
    assert not second.reason_counts[:, :, -2:].any()
    assert not _step(venue, market, second, 3).skipped
    _close(second)


# --- (b) an already-processed bar -------------------------------------------------------------


@pytest.mark.integration
def test_daemon_cycle_for_processed_bar_is_skipped_noop(venue: Venue, tmp_path, market):
    daemon = make_daemon(venue, tmp_path, market["config"], market["panel"].symbols)
    for offset in range(FIRST_ORDER + 1):
        done = _step(venue, market, daemon, offset)
    assert done.orders, "the last cycle must have decided orders"
    account, positions = daemon.account.copy(), daemon.positions.copy()
    n_orders, n_cycles = len(daemon.store.orders()), daemon.store.cycle_count()
    n_venue = len(venue.engine.orders())

    venue.clock.advance(market["bar_ns"] // 2)  # later, but the same newest closed bar
    again = daemon.run_cycle()

    assert again.skipped
    assert (again.bar_no, again.orders, again.fills) == (done.bar_no, [], 0)
    assert (len(daemon.store.orders()), daemon.store.cycle_count()) == (n_orders, n_cycles)
    assert len(venue.engine.orders()) == n_venue
    np.testing.assert_array_equal(daemon.account, account)
    np.testing.assert_array_equal(daemon.positions, positions)
    _close(daemon)


# --- (c) PAPER ------------------------------------------------------------------------------


@pytest.mark.integration
def test_daemon_paper_orders_equal_backtest_without_venue_orders(venue: Venue, tmp_path, market):
    daemon = _daemon(venue, tmp_path, market, "PAPER")
    assert daemon.live.read_only
    sent = _replay(venue, market, daemon, 0, 2 * N_RESUME)
    assert sum(len(v) for v in sent.values()) >= 6
    mismatched = _mismatch(sent, market["expected"])
    assert not mismatched, (
        f"first differing bar {mismatched[0]}: paper {sent[mismatched[0]]} vs "
        f"backtest {market['expected'].get(mismatched[0], [])}"
    )
    np.testing.assert_allclose(
        daemon.positions[:, Pos.Qty], market["backtest"].final_positions[:, Pos.Qty], rtol=1e-12
    )
    assert daemon.store.fills(), "paper orders must fill"
    assert venue.engine.orders() == []
    assert venue.engine.fills() == []
    _close(daemon)


# --- (d) the state file -----------------------------------------------------------------------


@pytest.mark.integration
def test_daemon_state_file_holds_positions_orders_fills_cycles(venue: Venue, tmp_path, market):
    n_cycles = 40
    daemon = make_daemon(venue, tmp_path, market["config"], market["panel"].symbols)
    _replay(venue, market, daemon, 0, n_cycles)
    qty = daemon.positions[:, Pos.Qty].copy()
    _close(daemon)

    db = sqlite3.connect(tmp_path / "s.db")
    try:
        symbols, positions, last = db.execute(
            "SELECT symbols, positions, last_bar_no FROM kernel_state"
        ).fetchone()
        orders = db.execute(
            "SELECT client_order_id, exchange_order_id, bar_no, symbol, status FROM orders"
        ).fetchall()
        fills = db.execute("SELECT trade_id, client_order_id, qty FROM fills").fetchall()
        cycles = db.execute("SELECT bar_no, mode FROM cycles ORDER BY bar_no").fetchall()
    finally:
        db.close()

    assert symbols.startswith('["ADA-USD"')
    assert last == _bar_no(market, n_cycles - 1)
    stored_qty = StateStore.positions_from_json(json.loads(positions))[:, Pos.Qty]
    np.testing.assert_array_equal(stored_qty, qty)
    assert (qty > 0).any()
    assert len(orders) >= 4
    for cid, exchange_id, bar_no, symbol, status in orders:
        assert cid.startswith(f"247-{bar_no}-")
        assert symbol in cid
        assert exchange_id
        assert status in {"filled", "cancelled", "open"}
    venue_cids = {o["client_order_id"] for o in venue.engine.orders()}
    assert {o[0] for o in orders} == venue_cids
    assert fills
    assert {f[1] for f in fills} <= {o[0] for o in orders}
    assert [c[0] for c in cycles] == [_bar_no(market, k) for k in range(n_cycles)]
    assert {c[1] for c in cycles} == {"LIVE"}


# --- (e) a malformed candle -----------------------------------------------------------------


def _corrupt_high(venue: Venue, market: dict, symbol: str, offset: int) -> None:
    # the simulator's arrays are read-only views of the polars frame: replace, then edit
    series = venue.engine._series[symbol]
    i = int(np.searchsorted(series.ts, int(market["panel"].ts_ns[market["first"] + offset])))
    series.high = series.high.copy()
    series.high[i] = series.low[i] * 0.99  # high below low


@pytest.mark.integration
def test_daemon_malformed_candle_skipped_with_divergence(venue: Venue, tmp_path, market, caplog):
    symbol, offset = "SOL-USD", 26  # the backtest buys SOL-USD on this bar
    bar_no = _bar_no(market, offset)
    assert any(o[0] == symbol for o in market["expected"][bar_no])
    _corrupt_high(venue, market, symbol, offset)

    daemon = make_daemon(venue, tmp_path, market["config"], market["panel"].symbols)
    sent = _replay(venue, market, daemon, 0, offset)
    with caplog.at_level(logging.WARNING, logger="live_bridge"):
        result = _step(venue, market, daemon, offset)
    sent[bar_no] = daemon_orders([r for r in result.orders if r.status in SENT])
    _step(venue, market, daemon, offset + 1)  # the daemon keeps running

    assert any(d.startswith(f"{symbol}: bad bars skipped") for d in result.divergences)
    assert any(
        r.getMessage().startswith(f"DIVERGENCE bar={bar_no} {symbol}: bad bars skipped")
        for r in caplog.records
    )
    assert all(r.symbol != symbol for r in result.orders)
    others = [o for o in market["expected"][bar_no] if o[0] != symbol]
    assert same_orders(sent[bar_no], others)
    assert not _mismatch({b: o for b, o in sent.items() if b < bar_no}, market["expected"])
    assert all(symbol in d for d in result.divergences)
    _close(daemon)


@pytest.mark.integration
def test_daemon_malformed_candle_symbol_recovers_next_bar(venue: Venue, tmp_path, market):
    symbol, offset = "SOL-USD", 26
    _corrupt_high(venue, market, symbol, offset)
    daemon = make_daemon(venue, tmp_path, market["config"], market["panel"].symbols)
    _replay(venue, market, daemon, 0, offset + 1)
    result = _step(venue, market, daemon, offset + 1)
    _close(daemon)
    assert not [d for d in result.divergences if symbol in d]


# --- (f) a persistent 5xx on placement ----------------------------------------------------------


@pytest.mark.integration
def test_daemon_persistent_5xx_on_placement_leaves_order_unknown_until_venue_says(
    venue: Venue, tmp_path, market, caplog
):
    daemon = make_daemon(venue, tmp_path, market["config"], market["panel"].symbols)
    _replay(venue, market, daemon, 0, FIRST_ORDER)
    # no order is open before the first decided one, so only its placement hits this path
    venue.faults.server_error(daemon.live.max_retries + 1, status=503, path_prefix=ORDERS_PATH)
    with caplog.at_level(logging.WARNING, logger="live_bridge"):
        result = _step(venue, market, daemon, FIRST_ORDER)
    assert venue.faults.pending() == 0
    assert len(result.orders) == 1
    cid = result.orders[0].client_order_id
    # no answer is not a refusal: the create may have reached the venue
    assert result.orders[0].status == "unknown"
    assert any(
        r.getMessage().startswith(
            f"DIVERGENCE bar={result.bar_no} ETH-USD: order {cid} got no answer"
        )
        for r in caplog.records
    )
    assert [(o.client_order_id, o.status) for o in daemon.store.orders()] == [(cid, "unknown")]
    assert venue.engine.orders() == []
    nxt = _step(venue, market, daemon, FIRST_ORDER + 1)  # the next order goes through
    assert [o.status for o in nxt.orders] == ["open"]
    # the venue's order list, not the failed call, decides: it never had the order
    failed = daemon.store.order(cid)
    assert (failed.status, failed.note) == ("failed", "the venue never received it")
    _close(daemon)


# --- (g) thin book and stale quotes ---------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        pytest.param("thin_book", "book within 20 bps holds", id="thin-book"),
        pytest.param("stale_quotes", "quote is 3600 s old", id="stale-quotes"),
    ],
)
def test_daemon_bad_book_blocks_placement_with_divergence(
    venue: Venue, tmp_path, market, caplog, fault, reason
):
    if fault == "thin_book":
        venue.engine.book_level_notional_usd = type(venue.engine.book_level_notional_usd)("10")
    else:
        venue.faults.stale_quotes(True)
    daemon = make_daemon(venue, tmp_path, market["config"], market["panel"].symbols)
    _replay(venue, market, daemon, 0, FIRST_ORDER)
    with caplog.at_level(logging.WARNING, logger="live_bridge"):
        result = _step(venue, market, daemon, FIRST_ORDER)
    assert [o.status for o in result.orders] == ["skipped"]
    cid = result.orders[0].client_order_id
    assert reason in result.orders[0].note
    assert any(
        r.getMessage().startswith(
            f"DIVERGENCE bar={result.bar_no} ETH-USD: order {cid} not placed: {reason}"
        )
        for r in caplog.records
    )
    assert venue.engine.orders() == []
    assert daemon.store.orders()[0].status == "skipped"
    _close(daemon)
