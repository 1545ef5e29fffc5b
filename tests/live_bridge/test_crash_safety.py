"""Crash safety: SIGKILL the real daemon process at random points of its cycle, again and again.

The exchange simulator serves the shipped data under a stepped clock in this process; the daemon
runs as `live-bridge run` (LIVE, the real SDK over TLS) on one state file. Each start either
arms the crash hook (`LIVE_BRIDGE_CRASH_AT`: SIGKILL at the n-th pass of a named point, such as
between the venue's answer to a create and storing it), or is SIGKILLed from outside after a
random delay, or runs clean. The clock moves to the next bar once the daemon has finished the
current one. Afterwards: no duplicate order at the venue, no venue fill missing from the store,
and the store's positions and cash equal the venue's balances to the increment.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter

import pytest

from live_bridge.daemon import CRASH_ENV
from signals.bars import to_panel
from signals.config import load_config
from signals.enums import Acc, Pos
from signals.pipeline import warmup_bars
from tests.live_bridge.daemon_process import (
    bar_done,
    read_state,
    start_daemon,
    write_busy_config,
    write_live_yaml,
)
from tests.parity.conftest import (  # noqa: F401 (fixtures used by name)
    KEY_NAME,
    fixture_shipped_bars,
    fixture_venue,
)

CRASH_POINTS = (
    "after_intent", "before_create", "after_create", "after_create", "after_accept",
    "mid_reconcile", "after_reconcile",
)  # fmt: skip
"""`after_create` twice: the venue has the order and the store does not know (the worst case)."""
BAR_TIMEOUT_SECS = 90.0


def _run_crash_campaign(venue, tmp_path, n_kills: int, seed: int) -> dict:
    rng = random.Random(seed)
    config_dir = write_busy_config(tmp_path / "config")
    config = load_config(config_dir)
    panel = to_panel(venue.bars)
    bar_ns = int(panel.ts_ns[1] - panel.ts_ns[0])
    state_path = tmp_path / "state.sqlite"
    live_yaml = write_live_yaml(tmp_path / "live.yaml", venue.server, panel.symbols, state_path)
    log_path = tmp_path / "daemon.log"
    t = warmup_bars(config, bar_ns)
    kills, forced, external, starts = 0, 0, 0, 0
    points: Counter[str] = Counter()
    daemon = None
    clean_after = 0
    while kills < n_kills or clean_after < 3:
        bar_no = int(panel.ts_ns[t]) // bar_ns
        venue.clock.set(int(panel.ts_ns[t]) + bar_ns)
        kill_at = None
        if daemon is not None and daemon.alive and kills < n_kills and rng.random() < 0.35:
            kill_at = time.monotonic() + rng.uniform(0.0, 0.4)
        deadline = time.monotonic() + BAR_TIMEOUT_SECS
        while not bar_done(read_state(state_path), bar_no):
            assert time.monotonic() < deadline, f"bar {bar_no} not done:\n{daemon.log()[-3000:]}"
            if daemon is None or not daemon.alive:
                if daemon is not None:
                    code = daemon.proc.wait()
                    assert code == -signal.SIGKILL, f"daemon exited {code}:\n{daemon.log()[-3000:]}"
                    kills += 1
                crash_at = ""
                if kills < n_kills and rng.random() < 0.7:
                    point = rng.choice(CRASH_POINTS)
                    crash_at = f"{point}:{rng.randint(1, 3)}"
                    points[point] += 1
                    forced += 1
                daemon = start_daemon(
                    config_dir, live_yaml, KEY_NAME, venue.private_pem, log_path,
                    crash_at=crash_at,
                )  # fmt: skip
                starts += 1
            if kill_at is not None and time.monotonic() >= kill_at and daemon.alive:
                daemon.proc.send_signal(signal.SIGKILL)
                external += 1
                kill_at = None
            time.sleep(0.02)
        if kills >= n_kills:
            clean_after += 1
        t += 1
    # a clean stop: cancel what rests, save, exit 0
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=60) == 0, daemon.log()[-3000:]
    return {
        "kills": kills, "forced": forced, "external": external, "starts": starts,
        "points": points, "bars": t, "state_path": state_path, "log": daemon.log(),
    }  # fmt: skip


def _assert_store_equals_venue(venue, state: dict) -> None:
    venue_orders = venue.engine.orders()
    venue_fills = venue.engine.fills()
    assert venue_orders, "the campaign must trade"
    # no duplicate: one venue order per decided (bar, symbol, side), every one known to the store
    cids = Counter(o["client_order_id"] for o in venue_orders)
    assert max(cids.values()) == 1
    by_intent = Counter(
        (int(o["client_order_id"].split("-")[1]), o["product_id"], o["side"]) for o in venue_orders
    )
    assert max(by_intent.values()) == 1, [k for k, v in by_intent.items() if v > 1]
    stored = {o[0]: o for o in state["orders"]}
    assert {o["client_order_id"] for o in venue_orders} <= set(stored)
    for o in venue_orders:
        assert stored[o["client_order_id"]][1] == o["order_id"]
    # every venue fill applied exactly once
    store_trades = [f[0] for f in state["fills"]]
    assert len(store_trades) == len(set(store_trades))
    assert set(store_trades) == {f["trade_id"] for f in venue_fills}
    # no order left in between
    assert not [o for o in state["orders"] if o[5] in ("intended", "unknown")]
    # positions and cash equal the venue's balances to the increment
    balances = venue.engine.balances()
    positions = state["positions"]
    for s, symbol in enumerate(sorted(venue.engine.symbols)):
        base = symbol.split("-")[0]
        inc = float(venue.engine.product_wire(symbol)["base_increment"])
        assert abs(positions[s][Pos.Qty] - balances[base]) <= inc, (symbol, positions[s][Pos.Qty])
    assert abs(state["account"][Acc.Cash] - balances["USD"]) <= 0.01


@pytest.mark.integration
@pytest.mark.parametrize(
    ("n_kills", "seed"),
    [(30, 1), pytest.param(200, 2, marks=pytest.mark.slow, id="200-kills")],
)
def test_daemon_sigkilled_at_random_points_loses_nothing_and_sends_nothing_twice(
    venue, tmp_path, n_kills, seed, capsys
):
    venue.faults.clear()
    result = _run_crash_campaign(venue, tmp_path, n_kills, seed)
    state = read_state(result["state_path"])
    _assert_store_equals_venue(venue, state)
    assert result["kills"] >= n_kills
    assert result["points"]["after_create"] >= 1
    assert "Traceback" not in result["log"]
    with capsys.disabled():
        print(
            f"\ncrash campaign: {result['kills']} SIGKILLs ({result['forced']} armed hooks, "
            f"{result['external']} external), {result['starts']} starts, "
            f"{len(venue.engine.orders())} venue orders, {len(venue.engine.fills())} fills, "
            f"hooks {dict(result['points'])}"
        )
    assert CRASH_ENV == "LIVE_BRIDGE_CRASH_AT"
