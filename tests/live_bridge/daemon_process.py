"""Helpers to run `live-bridge run` as a real process against an in-test exchange simulator.

Used by the crash-safety and stop/kill tests: a config folder that trades often, a `live.yaml`
pointing at the simulator, and a reader of the daemon's state file that never writes to it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def write_busy_config(dst: Path) -> Path:
    """Copy `config/` into `dst` with a fast MA crossover enabled (about one order per bar).

    Slippage and partial fills are off (the venue is known), as in the parity tests.
    """
    shutil.copytree(ROOT / "config", dst, ignore=shutil.ignore_patterns("profiles", "live.yaml"))
    strategies = yaml.safe_load((dst / "strategies.yaml").read_text())
    strategies["strategies"]["ma_cross"].update(
        enabled=True,
        params={"fast": 3, "slow": 8, "target_weight_pct": 5},
        budget={"max_at_risk_pct": 40, "max_new_trades_per_bar": 3},
    )
    (dst / "strategies.yaml").write_text(yaml.safe_dump(strategies))
    policy = yaml.safe_load((dst / "policy.yaml").read_text())
    policy["execution"].update(slippage_bps=0, slippage_vol_mult=0, partial_fills=False)
    policy["risk"].update(cooldown_after_fill_bars=0)
    (dst / "policy.yaml").write_text(yaml.safe_dump(policy))
    return dst


def write_live_yaml(path: Path, server, symbols, state_path: Path, **overrides) -> Path:
    """Write a LIVE `live.yaml` for `server` with quick polling (test timings)."""
    spec = {
        "mode": "LIVE",
        "read_only": False,
        "symbols": list(symbols),
        "base_url": server.base_url,
        "ca_path": str(server.ca_path),
        "state_path": str(state_path),
        "kill_switch_path": str(path.parent / "KILL_SWITCH"),
        "jitter_pct": 0,
        "close_delay_secs": 0,
        "poll_interval_secs": 0.05,
        "clock_sync_secs": 0.05,
        "retry_delay_secs": 0.2,
        "timeout_secs": 5.0,
        "max_retries": 2,
        "max_quote_age_seconds": 60.0,
        "on_stop": "cancel",
        "max_clock_skew_ms": None,  # the simulator's clock is simulated (2024)
    }
    spec.update(overrides)
    path.write_text(yaml.safe_dump(spec))
    return path


@dataclass
class DaemonProcess:
    """A `live-bridge run` process; its output goes to `log_path` (appended)."""

    proc: subprocess.Popen
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_daemon(
    config_dir: Path,
    live_yaml: Path,
    key_name: str,
    private_pem: str,
    log_path: Path,
    *,
    crash_at: str = "",
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> DaemonProcess:
    """Start `live-bridge run --mode LIVE --confirm-live` (python -m, no shell)."""
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("COINBASE_", "CB_", "LIVE_BRIDGE"))
    }
    environ.update(COINBASE_API_KEY=key_name, COINBASE_API_SECRET=private_pem)
    if crash_at:
        environ["LIVE_BRIDGE_CRASH_AT"] = crash_at
    environ.update(env or {})
    cmd = [
        sys.executable, "-m", "live_bridge.cli", "run", "--config", str(config_dir),
        "--live-config", str(live_yaml), "--mode", "LIVE", "--confirm-live", *extra_args,
    ]  # fmt: skip
    out = log_path.open("a")
    try:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=environ, cwd=ROOT)
    finally:
        out.close()
    return DaemonProcess(proc, log_path)


def read_state(state_path: Path) -> dict:
    """Return what the state file holds now (read-only; empty dict before it exists)."""
    if not state_path.exists() or state_path.stat().st_size == 0:
        return {}
    db = sqlite3.connect(f"file:{state_path}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute("SELECT last_bar_no, account, positions FROM kernel_state").fetchone()
        if row is None:
            return {}
        orders = db.execute(
            "SELECT client_order_id, exchange_order_id, bar_no, symbol, side, status FROM orders"
        ).fetchall()
        fills = db.execute(
            "SELECT trade_id, client_order_id, qty, price, fee FROM fills"
        ).fetchall()
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError:
        return {}  # the schema is being created
    finally:
        db.close()
    return {
        "last_bar_no": int(row[0]),
        "account": json.loads(row[1]),
        "positions": json.loads(row[2]),
        "orders": orders,
        "fills": fills,
        "meta": meta,
    }


def bar_done(state: dict, bar_no: int) -> bool:
    """Return whether the daemon decided `bar_no` and sent (or settled) all of its orders."""
    if not state or state["last_bar_no"] < bar_no:
        return False
    return not any(o[2] == bar_no and o[5] in ("intended", "unknown") for o in state["orders"])
