"""`live-bridge status`: what the daemon's state file and kill switch say, read-only.

Reads the state file with a read-only SQLite connection (safe while the daemon runs) and the
lock file's PID; never talks to the venue.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from live_bridge import orders as lifecycle
from live_bridge.config import LiveConfig
from live_bridge.store import InstanceLock, StateStore
from signals.enums import Acc, Pos

NS = 1_000_000_000


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def daemon_status(live: LiveConfig) -> dict[str, Any]:
    """Return the daemon's status as plain JSON-able values (see `format_status`)."""
    state_path = Path(live.state_path)
    kill_path = Path(live.kill_switch_path)
    kill: dict[str, Any] = {"path": str(kill_path), "engaged": kill_path.exists()}
    if kill["engaged"]:
        kill["content"] = kill_path.read_text(errors="replace").strip()[:200]
    out: dict[str, Any] = {"state_path": str(state_path), "kill_switch": kill}
    pid = InstanceLock(state_path).holder_pid()
    out["daemon"] = {"pid": pid, "running": pid is not None and _pid_running(pid)}
    if not state_path.exists():
        out["trading_state"] = "none"
        out["note"] = "no state file: the daemon has not run with this state_path"
        return out
    store = StateStore(state_path, read_only=True)
    try:
        trading = store.get_meta("trading_state", {"state": "active", "note": ""})
        out["trading_state"] = "killed" if kill["engaged"] else trading["state"]
        out["trading_state_note"] = trading.get("note", "")
        out["last_transition_error"] = store.get_meta("last_transition_error")
        reconcile = store.get_meta("reconcile")
        out["reconcile"] = reconcile
        out["reconcile_mismatch"] = bool(reconcile and reconcile.get("mismatch"))
        state = store.load_state()
        if state is not None:
            out["last_bar_no"] = state.last_bar_no
            out["cash_usd"] = float(state.account[Acc.Cash])
            out["equity_usd"] = float(state.account[Acc.Equity])
            out["positions"] = {
                sym: float(state.positions[s, Pos.Qty])
                for s, sym in enumerate(state.symbols)
                if state.positions[s, Pos.Qty] > 0.0
            }
        cycle = store.last_cycle()
        if cycle is not None:
            out["last_cycle"] = {"bar_no": cycle[0], "bar_open_ts": cycle[1] // NS,
                                 "mode": cycle[2], "orders": cycle[3]}  # fmt: skip
        unfinished = store.orders(status=lifecycle.UNFINISHED)
        out["open_orders"] = [
            {"client_order_id": o.client_order_id, "status": o.status, "symbol": o.symbol,
             "exchange_order_id": o.exchange_order_id}
            for o in unfinished
        ]  # fmt: skip
        counts: dict[str, int] = {}
        for o in store.orders():
            counts[o.status] = counts.get(o.status, 0) + 1
        out["orders_by_status"] = counts
        out["fills"] = store.fill_count()
    finally:
        store.close()
    return out


def format_status(status: dict[str, Any]) -> str:
    """Return `daemon_status` as a few aligned lines for a terminal."""
    daemon = status["daemon"]
    running = f"running (PID {daemon['pid']})" if daemon["running"] else "not running"
    kill = status["kill_switch"]
    lines = [
        f"state file       {status['state_path']}",
        f"daemon           {running}",
        f"trading state    {status['trading_state']}"
        + (f" ({status['trading_state_note']})" if status.get("trading_state_note") else ""),
        f"kill switch      {'ON: ' + kill['path'] + ' exists' if kill['engaged'] else 'off'}",
    ]
    if "note" in status:
        lines.append(f"note             {status['note']}")
        return "\n".join(lines)
    mismatch = (status.get("reconcile") or {}).get("mismatch") or {}
    if mismatch:
        parts = [
            f"{c} store {v['store']:.8g} vs venue {v['venue']:.8g}" for c, v in mismatch.items()
        ]
        lines.append(f"reconcile        MISMATCH: {'; '.join(parts)} (new entries stopped)")
    elif status.get("reconcile"):
        lines.append("reconcile        store and venue agree")
    if status.get("last_transition_error"):
        lines.append(f"invalid event    {status['last_transition_error']['error']}")
    if "last_cycle" in status:
        c = status["last_cycle"]
        lines.append(f"last cycle       bar {c['bar_no']} ({c['mode']}, {c['orders']} orders)")
    if "cash_usd" in status:
        money = f"{status['cash_usd']:,.2f} / {status['equity_usd']:,.2f} USD"
        lines.append(f"cash / equity    {money}")
        held = ", ".join(f"{k} {v:.8g}" for k, v in status["positions"].items()) or "none"
        lines.append(f"positions        {held}")
    lines.append(f"open orders      {len(status['open_orders'])}")
    lines.extend(f"  {o['client_order_id']} {o['status']}" for o in status["open_orders"])
    lines.append(f"orders by status {json.dumps(status['orders_by_status'], sort_keys=True)}")
    return "\n".join(lines)
