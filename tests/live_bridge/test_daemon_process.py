"""`live-bridge run` as a real process: clean stops, one instance, bad input, venue faults.

The exchange simulator of `tests/parity/conftest.py` serves the shipped data under a stepped
clock in this process; the daemon runs as `python -m live_bridge.cli run` (LIVE, the real SDK
over TLS). Every test stops its processes in `finally` (SIGKILL and wait), so none outlives it.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from live_bridge.store import SCHEMA_VERSION
from signals.bars import to_panel
from signals.config import load_config
from signals.pipeline import warmup_bars
from tests.live_bridge.conftest import make_key
from tests.live_bridge.daemon_process import (
    ROOT,
    DaemonProcess,
    bar_done,
    read_state,
    start_daemon,
    write_busy_config,
    write_live_yaml,
)
from tests.parity.conftest import (  # noqa: F401 (fixtures used by name)
    KEY_NAME,
    Venue,
    fixture_shipped_bars,
    fixture_venue,
)

pytestmark = pytest.mark.integration

BAR_TIMEOUT_SECS = 90.0  # the first start of a session may compile the kernels
STOP_TIMEOUT_SECS = 10.0
RUN_TIMEOUT_SECS = 60.0
MAX_BARS_TO_OPEN_ORDER = 40


class Rig:
    """One daemon set-up on a venue: config folder, `live.yaml`, state file, log, bar index."""

    def __init__(self, venue: Venue, tmp_path: Path, **live_overrides: object) -> None:
        self.venue = venue
        self.tmp_path = tmp_path
        self.config_dir = write_busy_config(tmp_path / "config")
        self.panel = to_panel(venue.bars)
        self.bar_ns = int(self.panel.ts_ns[1] - self.panel.ts_ns[0])
        self.state_path = tmp_path / "state.sqlite"
        self.live_yaml = write_live_yaml(
            tmp_path / "live.yaml", venue.server, self.panel.symbols, self.state_path,
            **live_overrides,
        )  # fmt: skip
        self.t = warmup_bars(load_config(self.config_dir), self.bar_ns)
        self.daemons: list[DaemonProcess] = []

    def start(self) -> DaemonProcess:
        # one log per process, so a line is known to come from this one
        log_path = self.tmp_path / f"daemon-{len(self.daemons)}.log"
        daemon = start_daemon(
            self.config_dir, self.live_yaml, KEY_NAME, self.venue.private_pem, log_path
        )
        self.daemons.append(daemon)
        return daemon

    def close_bar(self) -> int:
        """Move the venue's clock to the close of bar `t`; return that bar's number."""
        self.venue.clock.set(int(self.panel.ts_ns[self.t]) + self.bar_ns)
        return int(self.panel.ts_ns[self.t]) // self.bar_ns

    def wait_bar_done(self, daemon: DaemonProcess, bar_no: int) -> dict:
        return wait_for(
            lambda: bar_done(state := read_state(self.state_path), bar_no) and state,
            BAR_TIMEOUT_SECS, daemon, f"bar {bar_no} not done",
        )  # fmt: skip

    def step_until_open_order(self, daemon: DaemonProcess) -> tuple[int, list[str]]:
        """Decide bar after bar until the daemon leaves post-only orders resting at the venue.

        Returns the bar and the client order ids of its orders the store has `open`.
        """
        for _ in range(MAX_BARS_TO_OPEN_ORDER):
            bar_no = self.close_bar()
            state = self.wait_bar_done(daemon, bar_no)
            resting = [o[0] for o in state["orders"] if o[2] == bar_no and o[5] == "open"]
            if resting:
                return bar_no, resting
            self.t += 1
        pytest.fail(f"no resting order in {MAX_BARS_TO_OPEN_ORDER} bars:\n{daemon.log()[-3000:]}")

    def kill_all(self) -> None:
        for daemon in self.daemons:
            if daemon.alive:
                daemon.proc.kill()
            daemon.proc.wait(timeout=STOP_TIMEOUT_SECS)


def wait_for(
    check: Callable[[], object], timeout: float, daemon: DaemonProcess | None, what: str
) -> object:
    """Poll `check` until it returns something truthy (returned) or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if daemon is not None and not daemon.alive:
            pytest.fail(f"{what}: daemon exited {daemon.proc.returncode}:\n{daemon.log()[-3000:]}")
        if time.monotonic() > deadline:
            log = daemon.log()[-3000:] if daemon is not None else ""
            pytest.fail(f"{what} within {timeout:.0f} s:\n{log}")
        time.sleep(0.02)


def daemon_env(key_name: str, private_pem: str) -> dict[str, str]:
    """Return this process's environment with only the given Coinbase credentials."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("COINBASE_", "CB_", "LIVE_BRIDGE"))
    }
    env.update(COINBASE_API_KEY=key_name, COINBASE_API_SECRET=private_pem)
    return env


def run_cli(
    rig: Rig, *, env: dict[str, str] | None = None, once: bool = False, extra: tuple[str, ...] = ()
):
    """Run `live-bridge run` (LIVE) to its end; return the CompletedProcess (text, captured)."""
    cmd = [
        sys.executable, "-m", "live_bridge.cli", "run", "--config", str(rig.config_dir),
        "--live-config", str(rig.live_yaml), "--mode", "LIVE", "--confirm-live",
        *(["--once"] if once else []), *extra,
    ]  # fmt: skip
    return subprocess.run(  # noqa: S603 (our own CLI, no shell)
        cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECS, cwd=ROOT,
        env=env or daemon_env(KEY_NAME, rig.venue.private_pem), check=False,
    )  # fmt: skip


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """Assert exit 2 and exactly one `live-bridge run: error:` line on stderr; return it."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one stderr line, was {result.stderr!r}"
    assert lines[0].startswith("live-bridge run: error: "), lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def file_print(path: Path) -> tuple[str, int] | None:
    """Return (sha256, mtime_ns) of `path`, None when absent."""
    if not path.exists():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def state_prints(state_path: Path) -> dict[str, tuple[str, int] | None]:
    return {suffix: file_print(Path(f"{state_path}{suffix}")) for suffix in ("", "-wal", "-shm")}


def table_rows(state_path: Path) -> dict[str, list[tuple]]:
    """Return the `orders`, `kernel_state` and `meta` rows (read-only connection)."""
    db = sqlite3.connect(f"file:{state_path}?mode=ro", uri=True, timeout=5)
    try:
        return {
            table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()  # noqa: S608
            for table in ("orders", "kernel_state", "meta")
        }
    finally:
        db.close()


def venue_order(venue: Venue, client_order_id: str) -> dict:
    (order,) = [o for o in venue.engine.orders() if o["client_order_id"] == client_order_id]
    return order


def new_key() -> tuple[str, str]:
    """Return a key name and EC P-256 private PEM the venue has never seen."""
    key = make_key("organizations/00000000-0000-0000-0000-000000000000/apiKeys/unknown")
    return key.name, key.private_pem


def log_lines(daemon: DaemonProcess, needle: str) -> list[str]:
    return [line for line in daemon.log().splitlines() if needle in line]


# --- 1. SIGTERM and SIGINT stop cleanly ---------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("on_stop", ["cancel", "leave"])
def test_stop_signal_exits_zero_and_handles_the_resting_order(venue, tmp_path, sig, on_stop):
    rig = Rig(venue, tmp_path, on_stop=on_stop)
    try:
        daemon = rig.start()
        bar_no, resting = rig.step_until_open_order(daemon)
        assert [venue_order(venue, cid)["status"] for cid in resting] == ["OPEN"] * len(resting)
        daemon.proc.send_signal(sig)
        started = time.monotonic()
        code = daemon.proc.wait(timeout=STOP_TIMEOUT_SECS)
        took = time.monotonic() - started
        log = daemon.log()
        assert code == 0, log[-3000:]
        assert took < 5.0, f"stop took {took:.1f} s"
        assert "Traceback" not in log
        stopped = [line for line in log.splitlines() if f"stopped ({sig.name})" in line]
        assert len(stopped) == 1, stopped
        rows = {o[0]: o for o in read_state(rig.state_path)["orders"]}
        if on_stop == "cancel":
            assert {venue_order(venue, cid)["status"] for cid in resting} == {"CANCELLED"}
            assert {rows[cid][5] for cid in resting} == {"cancelled"}
            assert f"cancelled {len(resting)} open order(s)" in stopped[0]
            assert not [o for o in venue.engine.orders() if o["status"] == "OPEN"]
        else:
            assert {venue_order(venue, cid)["status"] for cid in resting} == {"OPEN"}
            assert {rows[cid][5] for cid in resting} == {"open"}
            assert "left open orders resting" in stopped[0]
        assert bar_no == read_state(rig.state_path)["last_bar_no"]
    finally:
        rig.kill_all()


# --- 2. one daemon per state file ---------------------------------------------------------------


def test_second_daemon_on_the_same_state_file_exits_2_and_writes_nothing(venue, tmp_path):
    rig = Rig(venue, tmp_path)
    try:
        first = rig.start()
        rig.step_until_open_order(first)
        # the first daemon keeps polling its open order and writes what it learns; it is
        # paused (still holding the lock) so any change to the files is the second one's
        first.proc.send_signal(signal.SIGSTOP)
        try:
            rows_before = table_rows(rig.state_path)
            assert rows_before["orders"]
            assert rows_before["kernel_state"]
            prints_before = state_prints(rig.state_path)
            second = run_cli(rig)
            prints_after = state_prints(rig.state_path)
            rows_after = table_rows(rig.state_path)
        finally:
            first.proc.send_signal(signal.SIGCONT)
        line = one_error_line(second)
        assert str(rig.state_path) in line
        assert f"PID {first.proc.pid}" in line
        assert second.stdout == ""
        assert prints_after == prints_before
        assert rows_after == rows_before
        assert first.alive
        # a dead holder's lock is taken over, and the takeover names the dead PID
        first.proc.kill()
        assert first.proc.wait(timeout=STOP_TIMEOUT_SECS) == -signal.SIGKILL
        third = rig.start()
        takeover = f"took over the lock of {rig.state_path} from PID {first.proc.pid}"
        wait_for(lambda: log_lines(third, takeover), BAR_TIMEOUT_SECS, third, "no takeover line")
        wait_for(lambda: log_lines(third, "next cycle in"), BAR_TIMEOUT_SECS, third, "not idle")
        assert len(log_lines(third, "took over the lock")) == 1
        third.proc.send_signal(signal.SIGTERM)
        assert third.proc.wait(timeout=STOP_TIMEOUT_SECS) == 0, third.log()[-3000:]
        assert "Traceback" not in third.log()
    finally:
        rig.kill_all()


# --- 3. bad input: one line, exit 2, nothing written --------------------------------------------


def _assert_refused_unchanged(rig: Rig, content: bytes, needle: str) -> None:
    rig.state_path.write_bytes(content)
    line = one_error_line(run_cli(rig))
    assert needle in line, line
    assert str(rig.state_path) in line, line
    assert rig.state_path.read_bytes() == content
    assert not Path(f"{rig.state_path}-wal").exists()
    assert not Path(f"{rig.state_path}-shm").exists()


def test_zero_byte_state_file_is_refused_and_stays_empty(venue, tmp_path):
    rig = Rig(venue, tmp_path)
    _assert_refused_unchanged(rig, b"", "empty (0 bytes)")
    assert rig.state_path.stat().st_size == 0


def test_garbage_state_file_is_refused_unchanged(venue, tmp_path):
    rig = Rig(venue, tmp_path)
    garbage = bytes(range(256)) * 64
    _assert_refused_unchanged(rig, garbage, "is not a SQLite database")


def _state_file_a_daemon_wrote(rig: Rig) -> bytes:
    rig.close_bar()
    result = run_cli(rig, once=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not Path(f"{rig.state_path}-wal").exists()  # a clean exit checkpoints the WAL
    content = rig.state_path.read_bytes()
    assert content.startswith(b"SQLite format 3\x00")
    assert table_rows(rig.state_path)["kernel_state"]  # the cycle was stored
    for suffix in ("", "-wal", "-shm"):  # a reader leaves -wal and -shm behind
        Path(f"{rig.state_path}{suffix}").unlink(missing_ok=True)
    return content


def test_truncated_state_file_is_refused_unchanged(venue, tmp_path):
    rig = Rig(venue, tmp_path)
    content = _state_file_a_daemon_wrote(rig)
    _assert_refused_unchanged(rig, content[: len(content) // 2], "truncated or corrupt")


def test_newer_schema_state_file_is_refused_unchanged(venue, tmp_path):
    rig = Rig(venue, tmp_path)
    rig.state_path.write_bytes(_state_file_a_daemon_wrote(rig))
    db = sqlite3.connect(rig.state_path)  # still a WAL file: closing checkpoints and cleans up
    with db:
        db.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )
    db.close()
    newer = rig.state_path.read_bytes()
    _assert_refused_unchanged(rig, newer, f"schema version {SCHEMA_VERSION + 1}")


def test_secret_that_is_not_a_key_is_one_line_naming_the_variable(venue, tmp_path):
    rig = Rig(venue, tmp_path)
    secret = "not-a-pem"
    result = run_cli(rig, env=daemon_env(KEY_NAME, secret))
    line = one_error_line(result)
    assert "COINBASE_API_SECRET" in line
    assert secret not in result.stderr + result.stdout
    assert not rig.state_path.exists()


def _refused_config(rig: Rig, needle: str, **live_overrides: object) -> None:
    spec = yaml.safe_load(rig.live_yaml.read_text())
    spec.update(live_overrides)
    rig.live_yaml.write_text(yaml.safe_dump(spec))
    line = one_error_line(run_cli(rig))
    assert needle in line, line
    assert not rig.state_path.exists(), "a refused start must not create the state file"


def test_unknown_symbol_is_one_line_naming_it(venue, tmp_path):
    rig = Rig(venue, tmp_path)
    _refused_config(rig, "FOO-USD", symbols=["BTC-USD", "FOO-USD"])


def test_regime_reference_absent_from_live_symbols_is_one_line_naming_it(venue, tmp_path):
    # without BTC-USD fetched, every bar's regime would silently be "chop"
    rig = Rig(venue, tmp_path)
    _refused_config(rig, "`regime.reference_symbol` BTC-USD must be a symbol", symbols=["ETH-USD"])


def test_core_symbol_absent_from_live_symbols_refused_unless_allowed(venue, tmp_path):
    rig = Rig(venue, tmp_path)
    _refused_config(rig, "`core` ETH-USD", symbols=["BTC-USD", "SOL-USD"])
    allowed = run_cli(rig, once=True, extra=("--allow-missing-symbols",))
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    warnings = [ln for ln in allowed.stderr.splitlines() if "not in the data" in ln]
    assert len(warnings) == 1, allowed.stderr[-3000:]
    assert "`core` ETH-USD" in warnings[0]
    assert "Traceback" not in allowed.stderr


def test_missing_ca_path_is_one_line_naming_it(venue, tmp_path):
    rig = Rig(venue, tmp_path)
    _refused_config(rig, "`ca_path` must be a CA bundle file", ca_path=str(tmp_path / "gone.pem"))


def test_jitter_pct_out_of_range_is_one_line_naming_it(venue, tmp_path):
    rig = Rig(venue, tmp_path)
    _refused_config(rig, "jitter_pct", jitter_pct=50)


# --- 4. venue faults never stop a healthy daemon ------------------------------------------------


def test_venue_clock_503s_for_5_seconds_do_not_stop_the_daemon(venue, tmp_path):
    rig = Rig(venue, tmp_path)
    try:
        daemon = rig.start()
        first_bar = rig.close_bar()
        rig.wait_bar_done(daemon, first_bar)
        venue.faults.server_error(1_000_000, status=503, path_prefix="/api/v3/brokerage/time")
        rig.t += 1
        next_bar = rig.close_bar()  # due now, but the venue's clock cannot be read
        time.sleep(5.0)
        assert daemon.alive, daemon.log()[-3000:]
        assert read_state(rig.state_path)["last_bar_no"] == first_bar
        assert log_lines(daemon, "venue clock unavailable")
        venue.faults.clear()
        rig.wait_bar_done(daemon, next_bar)
        rig.t += 1
        rig.wait_bar_done(daemon, rig.close_bar())
        assert daemon.alive
        assert "Traceback" not in daemon.log()
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=STOP_TIMEOUT_SECS) == 0
    finally:
        rig.kill_all()


def test_cold_start_reconciles_before_the_first_bar(venue, tmp_path):
    # restarted mid-bar with nothing to decide yet: the orphan of an old bar is adopted and
    # cancelled at once, not at the next close
    rig = Rig(venue, tmp_path)
    bar_ns = rig.bar_ns
    rig.venue.clock.set(int(rig.panel.ts_ns[rig.t]) + bar_ns + bar_ns // 2)  # half a bar late
    old_bar = int(rig.panel.ts_ns[rig.t]) // bar_ns - 3
    price = venue.engine.current_price("BTC-USD")
    orphan = venue.engine.create_order({
        "client_order_id": f"247-{old_bar}-0-BTC-USD-B", "product_id": "BTC-USD", "side": "BUY",
        "order_configuration": {"limit_limit_gtc": {
            "base_size": "0.001", "limit_price": f"{price * 0.5:.2f}", "post_only": True}},
    })  # fmt: skip
    try:
        daemon = rig.start()
        wait_for(
            lambda: venue_order(venue, f"247-{old_bar}-0-BTC-USD-B")["status"] == "CANCELLED",
            BAR_TIMEOUT_SECS, daemon, "the orphan cancelled at start",
        )  # fmt: skip

        def stored_cancelled():
            rows = read_state(rig.state_path).get("orders", [])
            return [o for o in rows if o[1] == orphan["order_id"] and o[5] == "cancelled"]

        (row,) = wait_for(stored_cancelled, 10, daemon, "the store records the adopted cancel")
        assert row[0] == f"247-{old_bar}-0-BTC-USD-B"
        assert read_state(rig.state_path)["last_bar_no"] == -1, "a late bar is not decided"
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=STOP_TIMEOUT_SECS) == 0
    finally:
        rig.kill_all()


def test_venue_unavailable_at_start_is_retried_not_fatal(venue, tmp_path):
    # a fresh start reads the venue's clock; while that fails the start is tried again
    rig = Rig(venue, tmp_path)
    venue.faults.server_error(1_000_000, status=503, path_prefix="/api/v3/brokerage/time")
    try:
        daemon = rig.start()
        bar = rig.close_bar()
        # polled, not slept: a loaded machine or a cold numba cache makes the start slow
        retrying = "start: the venue is unavailable, trying again"
        wait_for(lambda: len(log_lines(daemon, retrying)) >= 2, 60, daemon, "two start retries")
        assert daemon.alive, daemon.log()[-3000:]
        venue.faults.clear()
        rig.wait_bar_done(daemon, bar)
        assert "Traceback" not in daemon.log()
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=STOP_TIMEOUT_SECS) == 0
    finally:
        venue.faults.clear()
        rig.kill_all()


def test_unknown_api_key_at_start_exits_2_with_one_line(venue, tmp_path):
    # The first private call (the product list that checks `symbols`) answers 401 while the
    # daemon is being built, so it refuses to start rather than run halted.
    rig = Rig(venue, tmp_path)
    name, pem = new_key()
    started = time.monotonic()
    result = run_cli(rig, env=daemon_env(name, pem))
    assert time.monotonic() - started < 15.0
    line = one_error_line(result)
    assert "401" in line, line
    assert "COINBASE_API_KEY" in line, line
    assert pem.splitlines()[1] not in result.stderr + result.stdout
    assert not venue.engine.orders()
    assert not rig.state_path.exists(), "a refused start must not create the state file"


def _public_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_key_revoked_while_running_halts_with_one_critical_line(venue, tmp_path):
    rig = Rig(venue, tmp_path)
    try:
        daemon = rig.start()
        decided = rig.close_bar()
        rig.wait_bar_done(daemon, decided)
        n_orders = len(venue.engine.orders())
        # the venue now knows another key under this name: every private call answers 401
        venue.server.register_api_key(KEY_NAME, make_key(KEY_NAME).public_pem)
        for i in range(4):
            rig.t += 1
            rig.close_bar()
            if i == 0:
                wait_for(lambda: log_lines(daemon, "HALTED"), 5.0, daemon, "no HALTED line")
            else:
                time.sleep(0.5)
            assert daemon.alive, daemon.log()[-3000:]
        lines = daemon.log().splitlines()
        # one line from the daemon, not one per failed call; the alert service adds its own
        critical = [line for line in lines if " CRITICAL live_bridge.daemon " in line]
        assert len(critical) == 1, critical
        halted_alerts = [line for line in lines if "ALERT CRITICAL trading_halted" in line]
        assert len(halted_alerts) == 1, halted_alerts
        assert "HALTED" in critical[0]
        assert "401" in critical[0]
        assert "Traceback" not in daemon.log()
        assert len(venue.engine.orders()) == n_orders
        state = read_state(rig.state_path)
        assert state["last_bar_no"] == decided
        assert '"halted"' in state["meta"]["trading_state"]
        # the key is valid again: the next cycle authenticates and lifts the halt
        venue.server.register_api_key(KEY_NAME, _public_pem(venue.private_pem))
        rig.t += 1
        recovered = rig.close_bar()
        state = rig.wait_bar_done(daemon, recovered)
        assert '"active"' in state["meta"]["trading_state"]
        # lifted before that bar's orders were decided: none was skipped for the halt
        assert not [o for o in state["orders"] if o[2] == recovered and o[5] == "skipped"]
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=STOP_TIMEOUT_SECS) == 0, daemon.log()[-3000:]
        daemon_critical = " CRITICAL live_bridge.daemon "
        assert len([line for line in daemon.log().splitlines() if daemon_critical in line]) == 1
    finally:
        rig.kill_all()
