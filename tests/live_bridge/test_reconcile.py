"""Reconciliation: the exchange is the truth; a partial snapshot changes nothing; mismatches stop
entries; a create whose answer was lost is found by its client order id, never sent twice; the
kill switch blocks the rest of a cycle.

In-process daemons against the exchange simulator over the shipped data (stepped clock), as in
`test_daemon.py`.
"""

import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from live_bridge.coinbase import OrderInfo
from live_bridge.errors import ReconcileError
from live_bridge.reconcile import (
    balance_mismatch,
    client_order_id,
    orders_to_cancel,
    parse_client_order_id,
)
from live_bridge.status import daemon_status, format_status
from signals.enums import Acc, Pos
from tests.live_bridge.test_daemon import (  # noqa: F401 (fixtures used by name)
    FIRST_ORDER,
    _bar_no,
    _close,
    _replay,
    _step,
    fixture_market,
)
from tests.parity.conftest import (  # noqa: F401 (fixtures used by name)
    Venue,
    fixture_shipped_bars,
    fixture_venue,
    make_daemon,
)

CREATE_PATH = "/api/v3/brokerage/orders$"


def _info(cid: str, status: str = "OPEN") -> OrderInfo:
    return OrderInfo(
        order_id=f"id-{cid}", client_order_id=cid, symbol="BTC-USD", side=1,
        order_type="LIMIT", status=status, base_size=1.0, limit_price=1.0, filled_size=0.0,
        average_filled_price=0.0, total_fees=0.0, created_ts_ns=0, number_of_fills=0,
    )  # fmt: skip


def test_client_order_id_round_trips_and_foreign_ids_are_not_ours():
    cid = client_order_id(473568, 2, "BTC-USD", True)
    assert cid == "247-473568-2-BTC-USD-B"
    assert parse_client_order_id(cid) == (473568, 2)
    for foreign in ("manual-1", "247-x-1-BTC-USD-B", "", "247-1"):
        assert parse_client_order_id(foreign) is None


def test_orders_to_cancel_ended_ours_only_unless_cancel_all():
    orders = [
        _info("247-9-0-BTC-USD-B"),  # decided before bar 10: its life has ended
        _info("247-10-0-BTC-USD-B"),  # decided at bar 10: still in its bar
        _info("247-8-0-BTC-USD-B", status="FILLED"),
        _info("manual-7"),  # not ours
    ]
    assert orders_to_cancel(orders, 11, cancel_all=False) == ["id-247-9-0-BTC-USD-B",
                                                             "id-247-10-0-BTC-USD-B"]  # fmt: skip
    assert orders_to_cancel(orders, 10, cancel_all=False) == ["id-247-9-0-BTC-USD-B"]
    assert orders_to_cancel(orders, None, cancel_all=False) == []
    assert len(orders_to_cancel(orders, None, cancel_all=True)) == 3


@pytest.mark.parametrize(
    ("venue", "expected"),
    [
        ({"USD": 1000.0, "BTC": 0.5}, set()),
        ({"USD": 1000.009, "BTC": 0.5 + 1e-8}, set()),  # within one increment
        ({"USD": 999.98, "BTC": 0.5}, {"USD"}),
        ({"USD": 1000.0, "BTC": 0.4999}, {"BTC"}),
        ({"USD": 1000.0}, {"BTC"}),
    ],
)
def test_balance_mismatch_beyond_increments_only(venue, expected):
    found = balance_mismatch(1000.0, "USD", 0.01, [0.25], ["BTC"], [1e-8], {"BTC": 0.25}, venue)
    assert set(found) == expected
    for cur, amounts in found.items():
        assert amounts["venue"] == venue.get(cur, 0.0)


def _dump(path: Path) -> list:
    db = sqlite3.connect(path)
    try:
        tables = ("kernel_state", "orders", "fills", "cycles")
        return [db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables]  # noqa: S608
    finally:
        db.close()


def _daemon(venue, tmp_path, market, **live):
    daemon = make_daemon(venue, tmp_path, market["config"], market["panel"].symbols)
    if live:
        daemon.live = daemon.live.model_copy(update=live)
    return daemon


@pytest.mark.integration
@pytest.mark.parametrize(
    ("call", "name"),
    [("orders/historical/fills", "fills"), ("accounts", "accounts"),
     ("orders/historical/batch", "orders")],
)  # fmt: skip
def test_reconcile_partial_snapshot_aborts_cycle_and_changes_nothing(
    venue: Venue, tmp_path, market, call, name
):
    daemon = _daemon(venue, tmp_path, market)
    _replay(venue, market, daemon, 0, FIRST_ORDER + 2)  # an order was placed and settled
    before = _dump(tmp_path / "s.db")
    account = daemon.account.copy()
    venue.faults.server_error(
        daemon.live.max_retries + 1, status=503, path_prefix=f"/api/v3/brokerage/{call}"
    )
    with pytest.raises(ReconcileError, match="reconciliation aborted, `.*` failed") as info:
        _step(venue, market, daemon, FIRST_ORDER + 2)
    assert f"`{name}` failed" in str(info.value)
    assert _dump(tmp_path / "s.db") == before
    np.testing.assert_array_equal(daemon.account, account)
    result = _step(venue, market, daemon, FIRST_ORDER + 2)  # the same bar, once the venue answers
    assert not result.skipped
    _close(daemon)


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["drop", "server_error"])
def test_create_answer_lost_order_found_by_client_id_not_sent_twice(
    venue: Venue, tmp_path, market, mode, caplog
):
    daemon = _daemon(venue, tmp_path, market)
    daemon.adapter.max_retries = 0  # the create ends without an answer
    _replay(venue, market, daemon, 0, FIRST_ORDER)
    venue.faults.commit_then_fail(1, mode=mode, path_prefix=CREATE_PATH)
    with caplog.at_level(logging.WARNING, logger="live_bridge"):
        result = _step(venue, market, daemon, FIRST_ORDER)
    (row,) = result.orders
    assert row.status == "unknown"
    assert [o["client_order_id"] for o in venue.engine.orders()] == [row.client_order_id]
    # the restarted (or next) cycle asks the venue first, and adopts its answer
    again = daemon.run_cycle()
    assert again.skipped
    stored = daemon.store.order(row.client_order_id)
    assert stored.status == "open"
    assert stored.exchange_order_id == venue.engine.orders()[0]["order_id"]
    assert len(venue.engine.orders()) == 1
    _step(venue, market, daemon, FIRST_ORDER + 1)
    assert daemon.store.order(row.client_order_id).status in ("filled", "cancelled")
    assert {f.trade_id for f in daemon.store.fills()} == {
        f["trade_id"] for f in venue.engine.fills()
    }
    _close(daemon)


@pytest.mark.integration
def test_create_answer_lost_then_retried_meets_venue_copy(venue: Venue, tmp_path, market):
    daemon = _daemon(venue, tmp_path, market)
    _replay(venue, market, daemon, 0, FIRST_ORDER)
    venue.faults.commit_then_fail(1, mode="drop", path_prefix=CREATE_PATH)
    (row,) = _step(venue, market, daemon, FIRST_ORDER).orders
    (venue_order,) = venue.engine.orders()
    assert (row.status, row.exchange_order_id) == ("open", venue_order["order_id"])
    _close(daemon)


@pytest.mark.integration
def test_reconcile_mismatch_stops_entries_allows_exits_and_resolves(
    venue: Venue, tmp_path, market, caplog
):
    # the shipped data's backtest holds 5 positions at offset 100, exits 3 at 107-136 and
    # enters 2 at 164-167
    daemon = _daemon(venue, tmp_path, market)
    _replay(venue, market, daemon, 0, 100)
    assert (daemon.positions[:, Pos.Qty] > 0).sum() == 5
    # someone withdraws 500 USD behind the daemon's back
    venue.engine._balances["USD"] -= type(venue.engine._balances["USD"])(500)
    with caplog.at_level(logging.WARNING, logger="live_bridge"):
        result = daemon.run_cycle()  # the same bar: reconciliation only
    assert result.trading_state == "reduce_only"
    assert set(result.mismatch) == {"USD"}
    assert result.mismatch["USD"]["venue"] == pytest.approx(result.mismatch["USD"]["store"] - 500)
    assert any("RECONCILE MISMATCH" in r.getMessage() for r in caplog.records)
    status = daemon_status(daemon.live)
    assert status["reconcile_mismatch"]
    assert status["trading_state"] == "reduce_only"
    assert "MISMATCH: USD store" in format_status(status)
    # entries are not sent while it is open; exits are
    entries_seen = exits_seen = 0
    for offset in range(100, 170):
        step = _step(venue, market, daemon, offset)
        assert step.trading_state == "reduce_only"
        sent = [o for o in step.orders if o.status not in ("skipped",)]
        assert all(o.side == -1 for o in sent)
        exits_seen += sum(o.side == -1 for o in sent)
        entries_seen += sum(
            "entry not sent: trading state reduce_only" in d for d in step.divergences
        )
    assert entries_seen > 0
    assert exits_seen > 0
    # the money comes back: resolved, entries allowed again
    venue.engine._balances["USD"] += type(venue.engine._balances["USD"])(500)
    result = daemon.run_cycle()
    assert result.trading_state == "active"
    assert result.mismatch == {}
    assert not daemon_status(daemon.live)["reconcile_mismatch"]
    _close(daemon)


@pytest.mark.integration
def test_reconcile_adopts_orphaned_resting_order_and_cancels_it(venue: Venue, tmp_path, market):
    daemon = _daemon(venue, tmp_path, market)
    _replay(venue, market, daemon, 0, FIRST_ORDER + 1)
    first = daemon.store.orders()[0]
    # an order of ours the store never heard of (a crash between create and store)
    price = venue.engine.current_price("BTC-USD")
    orphan = venue.engine.create_order({
        "client_order_id": f"247-{first.bar_no}-9-BTC-USD-B",
        "product_id": "BTC-USD", "side": "BUY",
        "order_configuration": {"limit_limit_gtc": {
            "base_size": "0.001", "limit_price": f"{price * 0.5:.2f}", "post_only": True}},
    })  # fmt: skip
    assert orphan["success"]
    _step(venue, market, daemon, FIRST_ORDER + 1)
    adopted = daemon.store.order(f"247-{first.bar_no}-9-BTC-USD-B")
    assert adopted is not None
    assert adopted.note == "adopted from the venue"
    assert adopted.status == "cancelled"  # its one-bar life is over
    venue_order = next(o for o in venue.engine.orders() if o["order_id"] == orphan["order_id"])
    assert venue_order["status"] == "CANCELLED"
    _close(daemon)


@pytest.mark.integration
def test_kill_switch_blocks_rest_of_cycle_cancels_and_releases(
    venue: Venue, tmp_path, market, caplog
):
    kill = tmp_path / "KILL"
    daemon = _daemon(venue, tmp_path, market, kill_switch_path=str(kill))
    _replay(venue, market, daemon, 0, FIRST_ORDER + 2)
    # the kill file appears while the cycle checks its first order: nothing more is sent
    real = daemon.adapter.best_bid_ask

    def bid_ask_then_kill(symbols):
        kill.write_text("test")
        return real(symbols)

    daemon.adapter.best_bid_ask = bid_ask_then_kill
    n_venue = len(venue.engine.orders())
    with caplog.at_level(logging.WARNING, logger="live_bridge"):
        offset = FIRST_ORDER + 2
        while True:
            result = _step(venue, market, daemon, offset)
            offset += 1
            if kill.exists():
                break
    assert result.orders, "the cycle that saw the kill file had orders"
    assert len(venue.engine.orders()) == n_venue, "no order may be sent once the file exists"
    assert all(o.status == "skipped" for o in result.orders)
    assert any(
        r.levelname == "CRITICAL" and "KILL SWITCH" in r.getMessage() for r in caplog.records
    )
    daemon.adapter.best_bid_ask = real
    # while it is on: no decisions, nothing resting at the venue
    for _ in range(20):
        step = _step(venue, market, daemon, offset)
        offset += 1
        assert step.trading_state == "killed"
        assert step.orders == []
    assert not [o for o in venue.engine.orders() if o["status"] == "OPEN"]
    assert daemon_status(daemon.live)["kill_switch"]["engaged"]
    kill.unlink()
    assert _step(venue, market, daemon, offset).trading_state == "active"
    assert daemon.account[Acc.Cash] > 0
    _close(daemon)


@pytest.mark.integration
def test_invalid_venue_transition_logged_surfaced_not_applied(
    venue: Venue, tmp_path, market, caplog
):
    daemon = _daemon(venue, tmp_path, market)
    _replay(venue, market, daemon, 0, FIRST_ORDER + 1)
    (row,) = daemon.store.orders(bar_no=_bar_no(market, FIRST_ORDER))
    assert row.status == "open"
    # the store has it partly filled, and the venue then reports it FAILED: not in the table
    with daemon.store.transaction() as db:
        db.execute("UPDATE orders SET status = 'partially_filled' WHERE client_order_id = ?",
                   (row.client_order_id,))  # fmt: skip
    venue.engine._orders[row.exchange_order_id].status = "FAILED"
    with caplog.at_level(logging.ERROR, logger="live_bridge"):
        daemon.run_cycle()
    assert daemon.store.order(row.client_order_id).status == "partially_filled"
    assert any(
        "order event `fail` is not allowed in status `partially_filled`" in r.getMessage()
        for r in caplog.records
    )
    status = daemon_status(daemon.live)
    assert row.client_order_id in status["last_transition_error"]["error"]
    assert "invalid event" in format_status(status)
    _close(daemon)
