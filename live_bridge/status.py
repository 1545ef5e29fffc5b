"""`live-bridge status`: one screen of what the daemon's state file and audit trail say.

Reads the state file with a read-only SQLite connection and the audit trail's JSON lines (both
safe while the daemon runs), plus the lock file's PID and the kill switch file; never talks to
the venue and never writes.

From the state file: trading state, kill switch, reconciliation, cash, equity, positions
(quantity, average entry, last price), the kernel's breakers (daily stop, weekly stop,
drawdown), orders, fills, the health breakers (meta `breakers`, written by `HealthBreakers`),
the rate limiter's throttles and peak usage (meta `rate_limits`, written by `RateLimiter`) and
latency percentiles (meta `latency`, written by `LatencyTracker`). From the audit trail,
read newest file first and only as far back as needed: the mode and config of the newest start,
the last stop, the newest failure, each position's theme, and the last cycles with their
latencies and no-trade reasons.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Any

from live_bridge import orders as lifecycle
from live_bridge.audit import rotated_files
from live_bridge.config import LiveConfig
from live_bridge.events import STAGES
from live_bridge.latency import latency_summary
from live_bridge.store import InstanceLock, StateStore
from signals.enums import Acc, Pos

NS = 1_000_000_000
DEFAULT_CYCLES = 5
AUDIT_TYPES = ("started", "stopped", "cycle_finished", "cycle_failed")
KERNEL_BREAKERS = {
    "daily_stop": Acc.DailyStop, "weekly_stop": Acc.WeeklyStop,
    "drawdown_breaker": Acc.DrawdownBreaker,
}  # fmt: skip
MAX_POSITIONS = 8
MAX_OPEN_ORDERS = 5
"""Positions and open orders listed on the screen at most (the JSON lists them all)."""


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _type_marker(kind: str) -> bytes:
    # how `AuditTrail` writes a record's type (json.dumps' default separators)
    return f'"type": "{kind}"'.encode()


def _file_records(file: Path, types: tuple[str, ...]) -> list[dict[str, Any]]:
    # one file at a time, newest first, so a status reads only as far back as it needs (the
    # trail is up to `backups` x `max_bytes`); as in `read_audit`, a torn line is skipped
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return []
    markers = [_type_marker(t) for t in types]
    out = []
    for line in data.splitlines():
        if not any(m in line for m in markers):
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(record, dict) and record.get("type") in types:
            out.append(record)
    return out


def _last_of_type(file: Path, kind: str) -> dict[str, Any] | None:
    # the newest record of `kind` in `file`, found without parsing the other lines
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return None
    end = len(data)
    while (at := data.rfind(_type_marker(kind), 0, end)) >= 0:
        begin = data.rfind(b"\n", 0, at) + 1
        stop = data.find(b"\n", at)
        try:
            record = json.loads(data[begin : stop if stop >= 0 else len(data)])
        except (json.JSONDecodeError, UnicodeDecodeError):
            record = None
        if isinstance(record, dict) and record.get("type") == kind:
            return record
        end = begin
    return None


def audit_summary(path: Path, n_cycles: int = DEFAULT_CYCLES) -> dict[str, Any]:
    """Return the current run's `started` record and the newest `n_cycles` (>= 1) cycles.

    Also the newest `stopped` and `cycle_failed` records newer than those cycles, and `newest`,
    the newest record of these types (None when absent). `cycles` is oldest first. Reads the
    trail at `path` newest file first, parsing records only until the cycles are found and
    then only searching for the start.
    """
    out: dict[str, Any] = {"started": None, "stopped": None, "cycle_failed": None,
                           "cycles": [], "newest": None}  # fmt: skip
    cycles: list[dict[str, Any]] = []
    files = [path, *rotated_files(path)]
    for i, file in enumerate(files):
        for record in reversed(_file_records(file, AUDIT_TYPES)):
            out["newest"] = out["newest"] or record
            kind = record["type"]
            if kind == "started":  # everything older is an earlier run's
                out["started"] = record
                out["cycles"] = cycles[::-1]
                return out
            if kind == "cycle_finished":
                cycles.append(record)
                if len(cycles) >= n_cycles:
                    break
            elif out[kind] is None:
                out[kind] = record
        if len(cycles) >= n_cycles:
            # older stops and failures are not news; only the start is still wanted
            starts = (_last_of_type(f, "started") for f in files[i:])
            out["started"] = next((s for s in starts if s is not None), None)
            break
    out["cycles"] = cycles[::-1]
    return out


def _cycle_view(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "bar_no": record.get("bar_no"),
        "bar_open_ts": (record.get("bar_ts_ns") or 0) // NS,
        "ts": record.get("ts"),
        "skipped": bool(record.get("skipped")),
        "trading_state": record.get("trading_state"),
        "secs": record.get("secs"),
        "stages": record.get("stages") or {},
        "orders": len(record.get("orders") or ()),
        "fills": record.get("fills", 0),
        "reasons": record.get("reasons") or {},
        "divergences": len(record.get("divergences") or ()),
        "entries_blocked_by": list(record.get("entries_blocked_by") or ()),
    }


def _run_info(audit: dict[str, Any]) -> dict[str, Any]:
    # the newest start names the run; a cycle newer than any start read (the start is in an
    # older file) carries the same mode and config hash in its record head
    started, newest = audit["started"], audit["newest"]
    head = started or newest
    out: dict[str, Any] = {"mode": None, "config_hash": None, "source": None}
    if head is not None:
        out.update(mode=head.get("mode"), config_hash=head.get("config_hash"),
                   source=head["type"])  # fmt: skip
    if started is not None:
        out.update(started_at=started.get("ts"), read_only=started.get("read_only"),
                   secret_age_days=started.get("secret_age_days"))  # fmt: skip
    stopped = audit["stopped"]
    if stopped is not None and (started is None or stopped["ts"] >= started["ts"]):
        out["last_stop"] = {"ts": stopped["ts"], "reason": stopped.get("reason"),
                            "cancelled": stopped.get("cancelled")}  # fmt: skip
    failed = audit["cycle_failed"]
    last_cycle = audit["cycles"][-1] if audit["cycles"] else None
    if failed is not None and (last_cycle is None or failed["ts"] >= last_cycle["ts"]):
        out["last_failure"] = {
            "ts": failed["ts"],
            "what": failed.get("what"),
            "error": failed.get("error"),
            "message": failed.get("message"),
        }
    return out


def daemon_status(live: LiveConfig, cycles: int = DEFAULT_CYCLES) -> dict[str, Any]:
    """Return the daemon's status as plain JSON-able values (see `format_status`).

    `cycles` is how many of the newest cycles to show. Money is USD, latencies seconds,
    `*_ts` epoch seconds and `ts` ISO UTC (the audit trail's local time of the event).
    """
    state_path = Path(live.state_path)
    kill_path = Path(live.kill_switch_path)
    kill: dict[str, Any] = {"path": str(kill_path), "engaged": kill_path.exists()}
    if kill["engaged"]:
        kill["content"] = kill_path.read_text(errors="replace").strip()[:200]
    out: dict[str, Any] = {"state_path": str(state_path), "kill_switch": kill}
    pid = InstanceLock(state_path).holder_pid()
    out["daemon"] = {"pid": pid, "running": pid is not None and _pid_running(pid)}
    audit_path = live.audit_path()
    out["audit_path"] = str(audit_path) if audit_path is not None else None
    audit = (
        audit_summary(audit_path, max(1, cycles))
        if audit_path is not None
        else {"started": None, "stopped": None, "cycle_failed": None, "cycles": [],
              "newest": None}
    )  # fmt: skip
    out["run"] = _run_info(audit)
    out["cycles"] = [_cycle_view(r) for r in audit["cycles"]]
    if not state_path.exists():
        out["trading_state"] = "none"
        out["note"] = "no state file: the daemon has not run with this state_path"
        return out
    store = StateStore(state_path, read_only=True)
    try:
        held = _read_store(store, out, kill["engaged"])
    finally:
        store.close()
    _add_positions(out, held, audit["cycles"][-1] if audit["cycles"] else None)
    if out["run"]["mode"] is None and "last_cycle" in out:
        out["run"].update(mode=out["last_cycle"]["mode"], source="state file")
    return out


def _read_store(
    store: StateStore, out: dict[str, Any], killed: bool
) -> dict[str, tuple[float, float]]:
    # fills `out`; returns {held symbol: (average entry, last price)}
    trading = store.get_meta("trading_state", {"state": "active", "note": ""})
    out["trading_state"] = "killed" if killed else trading["state"]
    # the file rules; the stored note may predate it (the daemon engages it within seconds)
    out["trading_state_note"] = "" if killed else trading.get("note", "")
    out["last_transition_error"] = store.get_meta("last_transition_error")
    reconcile = store.get_meta("reconcile")
    out["reconcile"] = reconcile
    out["reconcile_mismatch"] = bool(reconcile and reconcile.get("mismatch"))
    out["health_breakers"] = store.get_meta("breakers")
    out["rate_limits"] = store.get_meta("rate_limits")
    out["latency"] = latency_summary(store.get_meta("latency", {}) or {})
    state = store.load_state()
    held: dict[str, tuple[float, float]] = {}
    if state is not None:
        acc = state.account
        out["last_bar_no"] = state.last_bar_no
        out["cash_usd"] = float(acc[Acc.Cash])
        out["equity_usd"] = float(acc[Acc.Equity])
        out["peak_equity_usd"] = float(acc[Acc.PeakEquity])
        out["realized_pnl_usd"] = float(acc[Acc.RealizedPnl])
        out["fees_usd"] = float(acc[Acc.FeesPaid])
        out["kernel_breakers"] = {k: bool(acc[i]) for k, i in KERNEL_BREAKERS.items()}
        out["positions"] = {
            sym: float(state.positions[s, Pos.Qty])
            for s, sym in enumerate(state.symbols)
            if state.positions[s, Pos.Qty] > 0.0
        }
        held = {
            sym: (float(state.positions[s, Pos.AvgEntry]), float(state.positions[s, Pos.LastPrice]))
            for s, sym in enumerate(state.symbols)
            if state.positions[s, Pos.Qty] > 0.0
        }
    cycle = store.last_cycle()
    if cycle is not None:
        out["last_cycle"] = {"bar_no": cycle[0], "bar_open_ts": cycle[1] // NS,
                             "mode": cycle[2], "orders": cycle[3]}  # fmt: skip
    out["cycles_total"] = store.cycle_count()
    out["open_orders"] = [
        {"client_order_id": o.client_order_id, "status": o.status, "symbol": o.symbol,
         "side": "buy" if o.side > 0 else "sell", "qty": o.qty, "limit_price": o.limit_price,
         "exchange_order_id": o.exchange_order_id}
        for o in store.orders(status=lifecycle.UNFINISHED)
    ]  # fmt: skip
    out["orders_by_status"] = store.order_counts()
    out["fills"] = store.fill_count()
    return held


def _add_positions(
    out: dict[str, Any], held: dict[str, tuple[float, float]], cycle: dict[str, Any] | None
) -> None:
    # quantities and entries are the state file's; the price and theme are the newest cycle's
    # when it holds the symbol (the state file knows no themes), else the last stored price
    seen = (cycle or {}).get("positions") or {}
    views: dict[str, dict[str, Any]] = {}
    exposure: dict[str, float] = {}
    for sym, qty in out.get("positions", {}).items():
        entry, price = held[sym]
        theme = ""
        if isinstance(seen.get(sym), dict):
            price = float(seen[sym].get("price") or price)
            theme = str(seen[sym].get("theme") or "")
        if not math.isfinite(price):  # no price seen yet: valued at entry
            price = entry
        value = qty * price
        views[sym] = {"qty": qty, "entry_price": entry, "price": price, "value_usd": value,
                      "unrealized_pnl_usd": qty * (price - entry), "theme": theme}  # fmt: skip
        exposure[theme or "?"] = exposure.get(theme or "?", 0.0) + value
    out["position_views"] = views
    out["exposure_by_theme_usd"] = dict(sorted(exposure.items(), key=lambda kv: -kv[1]))
    out["exposure_usd"] = sum(exposure.values())


# --- the screen ---------------------------------------------------------------------------------


def _money(x: float) -> str:
    return f"{x:,.2f}"


def _clock(ts: str | None) -> str:
    # ISO UTC from the audit trail -> "2024-05-01 12:00:03Z"
    return ts[:19].replace("T", " ") + "Z" if ts else "?"


def _bar_time(epoch_secs: int) -> str:
    return dt.datetime.fromtimestamp(epoch_secs, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _since(value: Any) -> str:
    # `since` of a health breaker: the UTC ISO time of its last change (`HealthBreakers.state`)
    if not isinstance(value, str) or not value:
        return ""
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        return f" since {value}"
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC)
    return " since " + stamp.strftime("%Y-%m-%d %H:%M:%SZ")


def _header(status: dict[str, Any]) -> list[str]:
    daemon, run, kill = status["daemon"], status["run"], status["kill_switch"]
    running = f"running (PID {daemon['pid']})" if daemon["running"] else "not running"
    started = f", started {_clock(run['started_at'])}" if run.get("started_at") else ""
    lines = [f"daemon      {running}{started}"]
    mode = run.get("mode") or "unknown"
    if run.get("read_only") is not None:
        mode += ", read-only" if run["read_only"] else ", orders on (read_only false)"
    config = f"; config {run['config_hash']}" if run.get("config_hash") else ""
    lines.append(f"mode        {mode}{config}")
    age = run.get("secret_age_days")
    if age is not None and age >= 80:
        lines.append(f"api key     {age:.0f} days old: rotate it before 90 days")
    if not daemon["running"] and run.get("last_stop"):
        stop = run["last_stop"]
        lines.append(f"last stop   {_clock(stop['ts'])} ({stop['reason']}), "
                     f"cancelled {stop['cancelled']} order(s)")  # fmt: skip
    lines.append(f"state file  {status['state_path']}")
    if status.get("audit_path"):
        lines.append(f"audit       {status['audit_path']}")
    note = f" ({status['trading_state_note']})" if status.get("trading_state_note") else ""
    switch = f"ON: {kill['path']} exists" if kill["engaged"] else "off"
    state = status["trading_state"]
    if state == "stopping" and not daemon["running"]:
        state = "stopped"  # the state a stop leaves in the file
    lines.append(f"trading     {state}{note}; kill switch {switch}")
    return lines


def _health(status: dict[str, Any]) -> list[str]:
    kernel = status.get("kernel_breakers")
    if kernel is None:
        kernel_text = "unknown"
    else:
        on = [k for k, v in kernel.items() if v]
        kernel_text = "ON: " + ", ".join(on) if on else "off"
    breakers = status.get("health_breakers")
    opened: dict[str, Any] = {}
    if not breakers:
        health_text = "none recorded"
    else:
        tripped = [f"{n} {b.get('trips', 0)}" for n, b in breakers.items() if b.get("trips")]
        trips = f"trips {', '.join(tripped)}" if tripped else "no trips"
        opened = {n: b for n, b in breakers.items() if b.get("open")}
        head = f"{len(opened)} OPEN, new entries blocked" if opened else "all closed"
        health_text = f"{head}; {trips}"
    lines = [f"breakers    kernel {kernel_text}; health {health_text}"]
    lines.extend(
        f"  OPEN {n}: {b.get('reason', '')}{_since(b.get('since'))}"[:100]
        for n, b in opened.items()
    )
    lines.extend(_rate_limit_lines(status.get("rate_limits")))
    return lines


def _rate_limit_lines(limits: dict[str, Any] | None) -> list[str]:
    # `RateLimiter.state()` as saved after the newest cycle
    if not limits:
        return ["rate limits none recorded"]
    counts = limits.get("throttled") or {}
    slow, hold = limits.get("slow_pct", 80.0), limits.get("hold_pct", 90.0)
    peaks = ", ".join(
        f"{name} {b.get('peak_pct', 0.0):.0f}% of {b.get('per_sec', 0.0):g}/s"
        for name, b in (limits.get("buckets") or {}).items()
    )
    lines = [
        f"rate limits throttled slow {counts.get('slow', 0)}, hold {counts.get('hold', 0)} "
        f"(spaced from {slow:g} %, held from {hold:g} % of a limit)",
        f"  fullest second: {peaks}"[:100],
    ]
    last = limits.get("last_throttle")
    if last:
        lines.append(
            f"  last throttle {_clock(last.get('ts'))} {last.get('endpoint')} {last.get('level')} "
            f"{last.get('wait_secs', 0.0):.3f} s at {last.get('usage_pct', 0.0):.0f}% of "
            f"{last.get('bucket')}"[:100]
        )
    return lines


def _reconcile(status: dict[str, Any]) -> list[str]:
    lines = []
    mismatch = (status.get("reconcile") or {}).get("mismatch") or {}
    if mismatch:
        parts = [
            f"{c} store {v['store']:.8g} vs venue {v['venue']:.8g}" for c, v in mismatch.items()
        ]
        lines.append(f"reconcile   MISMATCH: {'; '.join(parts)} (new entries stopped)")
    elif status.get("reconcile"):
        lines.append("reconcile   store and venue agree")
    if status.get("last_transition_error"):
        lines.append(f"invalid event {status['last_transition_error']['error']}")
    failure = status["run"].get("last_failure")
    if failure:
        lines.append(f"last error  {_clock(failure['ts'])} {failure['what']}: "
                     f"{failure['error']}: {failure['message']}"[:100])  # fmt: skip
    return lines


def _money_lines(status: dict[str, Any]) -> list[str]:
    if "cash_usd" not in status:
        return []
    eq, peak = status["equity_usd"], status["peak_equity_usd"]
    drawdown = (1.0 - eq / peak) * 100.0 if peak > 0 else 0.0
    unrealized = sum(p["unrealized_pnl_usd"] for p in status["position_views"].values())
    lines = [
        f"equity      {_money(eq)} USD; cash {_money(status['cash_usd'])}; peak {_money(peak)}"
        f" (drawdown {drawdown:.2f} %)",
        f"pnl         realized {status['realized_pnl_usd']:+,.2f}, unrealized {unrealized:+,.2f},"
        f" fees {_money(status['fees_usd'])} USD",
    ]
    exposure = status["exposure_usd"]
    share = exposure / eq * 100.0 if eq > 0 else 0.0
    themes = ", ".join(f"{t} {_money(v)}" for t, v in status["exposure_by_theme_usd"].items())
    lines.append(f"exposure    {_money(exposure)} USD ({share:.1f} % of equity)"
                 + (f": {themes}" if themes else ""))  # fmt: skip
    views = status["position_views"]
    legend = "  (qty @ entry -> last price, value USD, unrealized PnL USD)" if views else ""
    lines.append(f"positions   {len(views)}{legend}")
    for sym, p in list(views.items())[:MAX_POSITIONS]:
        lines.append(
            f"  {sym:<10} {p['qty']:.8g} @ {p['entry_price']:,.6g} -> {p['price']:,.6g}, "
            f"{_money(p['value_usd'])}, {p['unrealized_pnl_usd']:+,.2f}"
            + (f" ({p['theme']})" if p["theme"] else "")
        )
    if len(views) > MAX_POSITIONS:
        lines.append(f"  ... and {len(views) - MAX_POSITIONS} more (--json lists all)")
    return lines


def _order_lines(status: dict[str, Any]) -> list[str]:
    opened = status["open_orders"]
    lines = [f"open orders {len(opened)}"]
    for o in opened[:MAX_OPEN_ORDERS]:
        limit = f" limit {o['limit_price']:,.6g}" if o.get("limit_price") else ""
        lines.append(f"  {o['client_order_id']} {o['status']} {o.get('side', '')} "
                     f"{o.get('qty', 0):.8g}{limit}")  # fmt: skip
    if len(opened) > MAX_OPEN_ORDERS:
        lines.append(f"  ... and {len(opened) - MAX_OPEN_ORDERS} more (--json lists all)")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(status["orders_by_status"].items()))
    lines.append(f"orders      {counts or 'none'}; fills {status['fills']}")
    return lines


def _cycle_lines(status: dict[str, Any]) -> list[str]:
    cycles = status.get("cycles") or []
    if not cycles:
        if "last_cycle" in status:
            c = status["last_cycle"]
            return [f"last cycle  bar {c['bar_no']} ({c['mode']}, {c['orders']} orders); "
                    "no audit trail for details"]  # fmt: skip
        return []
    total = status.get("cycles_total", len(cycles))
    lines = [
        f"cycles      last {len(cycles)} of {total}: bar, open UTC, state, orders/fills, "
        f"secs [{' '.join(s[:3] for s in STAGES)}], reasons"
    ]
    for c in cycles:
        stages = " ".join(f"{c['stages'][s]:.2f}" if s in c["stages"] else "-" for s in STAGES)
        reasons = ", ".join(
            f"{k} {v}" for k, v in sorted(c["reasons"].items(), key=lambda kv: -kv[1])
        )
        if c["entries_blocked_by"]:
            reasons = f"entries blocked by {', '.join(c['entries_blocked_by'])}; " + reasons
        state = "skipped" if c["skipped"] else c["trading_state"]
        line = (
            f"  {c['bar_no']} {_bar_time(c['bar_open_ts'])} {state:<11} {c['orders']}/{c['fills']}"
            f" {c['secs']:.2f} [{stages}] {reasons or '-'}"
        )
        lines.append(line if len(line) <= 100 else line[:97] + "...")
    return lines


def _latency_lines(status: dict[str, Any]) -> list[str]:
    latency = status.get("latency") or {}
    if not latency:
        return ["latency     none recorded"]
    order = ["cycle", *(f"stage:{s}" for s in STAGES)]
    names = [n for n in order if n in latency] + sorted(n for n in latency if n not in order)
    cells = [
        f"{n.removeprefix('api:')[:23]:<23}{latency[n]['n']:>4.0f}"
        + "".join(f"{latency[n][q] * 1e3:>5.0f}" for q in ("p50", "p95", "p99", "max"))
        for n in names
    ]
    title = f"{'n':>4}{'p50':>5}{'p95':>5}{'p99':>5}{'max':>5}"
    half = (len(cells) + 1) // 2
    second = f"{'':<23}{title}" if half < len(cells) else ""
    lines = [f"{'latency ms':<25}{title}  {second}".rstrip()]
    for left, right in zip(cells[:half], [*cells[half:], ""], strict=False):
        lines.append(f"  {left}  {right}".rstrip())
    return lines


def format_status(status: dict[str, Any]) -> str:
    """Return `daemon_status` as one screen (about 40 lines of at most 100 columns)."""
    lines = _header(status)
    if "note" in status:
        lines.append(f"note        {status['note']}")
        return "\n".join(lines)
    lines += _health(status)
    lines += _reconcile(status)
    lines += _money_lines(status)
    lines += _order_lines(status)
    lines += _cycle_lines(status)
    lines += _latency_lines(status)
    return "\n".join(lines)
