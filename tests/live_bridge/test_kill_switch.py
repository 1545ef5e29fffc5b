"""The kill switch at runtime, measured on the real daemon process while it waits between bars.

`live-bridge kill` creates the kill file; the daemon must log a CRITICAL line within 3 s and
cancel every open order at the venue within 10 s, and send nothing until the file is removed.
(That it blocks the rest of a cycle already under way is `test_reconcile.py`'s kill test.)
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from signals.bars import to_panel
from signals.config import load_config
from signals.pipeline import warmup_bars
from tests.live_bridge.daemon_process import (
    ROOT,
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

NOTICE_SECS = 3.0
CANCEL_SECS = 10.0


def _wait(predicate, timeout: float, what: str, log) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, (
            f"{what} not within {timeout} s:\n{log()[-3000:]}"
        )
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.mark.integration
def test_kill_command_noticed_within_3s_cancels_within_10s_blocks_until_removed(
    venue, tmp_path, capsys
):
    config_dir = write_busy_config(tmp_path / "config")
    panel = to_panel(venue.bars)
    bar_ns = int(panel.ts_ns[1] - panel.ts_ns[0])
    state_path = tmp_path / "state.sqlite"
    # the default poll interval (1 s), as an operator runs it
    live_yaml = write_live_yaml(
        tmp_path / "live.yaml", venue.server, panel.symbols, state_path, poll_interval_secs=1.0
    )
    kill_file = tmp_path / "KILL_SWITCH"
    t = warmup_bars(load_config(config_dir), bar_ns)
    daemon = start_daemon(config_dir, live_yaml, KEY_NAME, venue.private_pem, tmp_path / "d.log")
    try:
        # step bars until a post-only order rests at the venue
        while not [o for o in venue.engine.orders() if o["status"] == "OPEN"]:
            venue.clock.set(int(panel.ts_ns[t]) + bar_ns)
            bar_no = int(panel.ts_ns[t]) // bar_ns
            _wait(lambda b=bar_no: bar_done(read_state(state_path), b), 60, "bar", daemon.log)
            t += 1
        time.sleep(1.5)  # the daemon is now waiting for the next bar
        n_orders = len(venue.engine.orders())

        start = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "live_bridge.cli", "kill", "--live-config", str(live_yaml),
             "--reason", "test"],
            check=True, capture_output=True, cwd=ROOT,
        )  # fmt: skip
        noticed = _wait(
            lambda: "CRITICAL" in daemon.log() and "KILL SWITCH engaged" in daemon.log(),
            NOTICE_SECS, "the CRITICAL kill line", daemon.log,
        )  # fmt: skip
        cancelled = _wait(
            lambda: not [o for o in venue.engine.orders() if o["status"] == "OPEN"],
            CANCEL_SECS, "cancelling every open order", daemon.log,
        )  # fmt: skip
        elapsed_cancel = time.monotonic() - start
        assert kill_file.exists()
        # while it is on, bars pass and nothing is sent
        for _ in range(5):
            venue.clock.set(int(panel.ts_ns[t]) + bar_ns)
            bar_no = int(panel.ts_ns[t]) // bar_ns
            _wait(lambda b=bar_no: bar_done(read_state(state_path), b), 60, "bar", daemon.log)
            t += 1
        assert len(venue.engine.orders()) == n_orders
        kill_file.unlink()
        _wait(lambda: "kill switch released" in daemon.log(), NOTICE_SECS, "release", daemon.log)
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=30) == 0
    finally:
        if daemon.alive:
            daemon.proc.kill()
            daemon.proc.wait()
    assert "Traceback" not in daemon.log()
    with capsys.disabled():
        print(
            f"\nkill switch: noticed after {noticed:.2f} s, every open order cancelled after "
            f"{elapsed_cancel:.2f} s ({cancelled:.2f} s after the notice), {n_orders} venue "
            "orders before and after"
        )
