"""The README's rehearsal, through the real CLI: place, fill, kill, release, stop, restart.

`live-bridge exchange-sim --clock accelerated` serves the shipped data, `live-bridge run` trades
it LIVE with the default strategy config and `clock_speed` set to the simulator's `--speed`,
`live-bridge kill` engages the kill switch and `live-bridge status` reads the state file: the
commands of README.md ("Rehearsing the live bridge against the local exchange simulator"), at
twice its speed so the test takes well under a minute. Every process is a subprocess of the
test and is killed in `finally`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import requests

from tests.live_bridge.daemon_process import ROOT, read_state

pytestmark = pytest.mark.integration

README_SPEED = 3600.0  # one hourly bar per real second
SPEED = 2 * README_SPEED
START = "2024-09-01T06:00:00Z"
SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD"]
LIVE_KEYS = [
    "mode", "read_only", "symbols", "base_url", "ca_path", "state_path", "kill_switch_path",
    "clock_speed", "max_clock_skew_ms",
]  # fmt: skip
KEY_NAME = "organizations/x/apiKeys/y"
# the README's one-liner for a throwaway P-256 key ("EC PRIVATE KEY" PEM)
KEY_ONE_LINER = (
    "from cryptography.hazmat.primitives.asymmetric import ec; "
    "from cryptography.hazmat.primitives import serialization as s; "
    "print(ec.generate_private_key(ec.SECP256R1()).private_bytes(s.Encoding.PEM, "
    "s.PrivateFormat.TraditionalOpenSSL, s.NoEncryption()).decode(), end='')"
)
TRADE_TIMEOUT_SECS = 60.0  # first start: the numba cache may be cold
KILL_LOG_SECS = 3.0
KILL_CANCEL_SECS = 10.0
RATE_SECS = 4.0  # real seconds over which the decided bars are counted (also the kill's hold)
STOP_TIMEOUT_SECS = 10.0
IN_FLIGHT_SECS = 0.2  # an order whose request was on its way when the kill file appeared


def _cli() -> list[str]:
    script = shutil.which("live-bridge", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "live_bridge.cli"]


class Rehearsal:
    """The processes and files of one rehearsal in `tmp`."""

    def __init__(self, tmp: Path) -> None:
        self.cli = _cli()
        self.live_yaml = tmp / "live.yaml"
        self.state_path = tmp / "state.sqlite"
        self.kill_path = tmp / "KILL_SWITCH"
        self.sim_out = tmp / "sim.txt"
        self.sim_err = tmp / "sim.err"
        self.log_path = tmp / "daemon.log"
        self.procs: list[subprocess.Popen] = []
        self.outputs: list[str] = []  # of the one-shot commands (kill, status)
        self.base_url = self.ca_path = ""
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("COINBASE_", "CB_", "LIVE_BRIDGE"))
        }

    # --- processes ----------------------------------------------------------------------------

    def popen(self, args: list[str], stdout: Path, stderr: Path | None = None) -> subprocess.Popen:
        out = stdout.open("a")
        err = stderr.open("a") if stderr is not None else None
        try:
            proc = subprocess.Popen(  # noqa: S603 (our own CLI, no shell)
                [*self.cli, *args], stdout=out, stderr=err or subprocess.STDOUT,
                env=self.env, cwd=ROOT,
            )  # fmt: skip
        finally:
            out.close()
            if err is not None:
                err.close()
        self.procs.append(proc)
        return proc

    def run(self, *args: str) -> str:
        done = subprocess.run(  # noqa: S603
            [*self.cli, *args], capture_output=True, text=True, env=self.env, cwd=ROOT,
            timeout=30, check=False,
        )  # fmt: skip
        self.outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def start_sim(self) -> None:
        sim = self.popen(
            [
                "exchange-sim", "--data", "data/sample_hourly.parquet", "--port", "0",
                "--clock", "accelerated", "--speed", f"{SPEED:g}", "--start", START,
            ],
            self.sim_out, self.sim_err,
        )  # fmt: skip
        text = wait_for(
            lambda: "serving" in (t := self.sim_out.read_text()) and t, 30, "simulator serving",
            alive=sim, files=(self.sim_out, self.sim_err),
        )  # fmt: skip
        fields = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
        self.base_url, self.ca_path = fields["base_url"], fields["ca_path"]

    def write_live_yaml(self) -> None:
        # the README's live.yaml, `clock_speed` aside
        values = [
            "LIVE", "false", f"[{', '.join(SYMBOLS)}]", self.base_url, self.ca_path,
            self.state_path, self.kill_path, f"{SPEED:g}", "null",
        ]  # fmt: skip
        lines = [f"{k}: {v}\n" for k, v in zip(LIVE_KEYS, values, strict=True)]
        self.live_yaml.write_text("".join(lines))

    def make_key(self) -> None:
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-c", KEY_ONE_LINER], capture_output=True, text=True, check=True
        )
        assert done.stdout.startswith("-----BEGIN EC PRIVATE KEY-----"), done.stdout[:40]
        self.env.update(COINBASE_API_KEY=KEY_NAME, COINBASE_API_SECRET=done.stdout)

    def start_daemon(self) -> subprocess.Popen:
        return self.popen(
            ["run", "--live-config", str(self.live_yaml), "--confirm-live"], self.log_path
        )

    # --- what they say ------------------------------------------------------------------------

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def lines(self, needle: str, since: int = 0) -> list[str]:
        return [line for line in self.log()[since:].splitlines() if needle in line]

    def placed_between(self, t0: float, t1: float) -> list[str]:
        """Return the "LIVE placed" lines logged between epoch seconds `t0` and `t1`."""
        return [line for line in self.lines("LIVE placed") if t0 <= log_time(line) <= t1]

    def venue(self, path: str) -> dict:
        with requests.Session() as session:
            session.trust_env = False
            r = session.get(f"https://{self.base_url}{path}", verify=self.ca_path, timeout=5)
        r.raise_for_status()
        return r.json()

    def open_venue_orders(self) -> list[dict]:
        orders = self.venue("/api/v3/brokerage/orders/historical/batch?order_status=OPEN")
        return [o for o in orders["orders"] if o["product_id"] in SYMBOLS]

    def cycles(self) -> int:
        db = sqlite3.connect(f"file:{self.state_path}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM cycles").fetchone()[0])
        finally:
            db.close()

    def last_bar_no(self) -> int:
        return int(read_state(self.state_path).get("last_bar_no", -1))

    def measure_rate(self) -> tuple[int, float]:
        """Return (bars decided, real seconds) over about `RATE_SECS`."""
        t0, n0 = time.monotonic(), self.cycles()
        time.sleep(RATE_SECS)
        t1, n1 = time.monotonic(), self.cycles()
        return n1 - n0, t1 - t0

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_SECS)


def wait_for(
    check: Callable[[], object],
    timeout: float,
    what: str,
    *,
    alive: subprocess.Popen | None = None,
    files: tuple[Path, ...] = (),
) -> object:
    """Poll `check` until it returns something truthy (returned); fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        gone = alive is not None and alive.poll() is not None
        if gone or time.monotonic() > deadline:
            tails = "\n".join(p.read_text(errors="replace")[-3000:] for p in files if p.exists())
            why = f"process exited {alive.returncode}" if gone else f"not within {timeout:.0f} s"
            pytest.fail(f"{what}: {why}\n{tails}")
        time.sleep(0.05)


def log_time(line: str) -> float:
    """Return a daemon log line's time (logging's local `asctime`) as epoch seconds."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # noqa: DTZ007


def assert_simulated_rate(bars: int, secs: float) -> None:
    # a daemon that slept real bar lengths would decide no bar at all
    expected = secs * SPEED / 3600.0
    why = f"{bars} bars decided in {secs:.1f} s, want about {expected:.1f}"
    assert expected / 2 <= bars <= expected * 2, why


def test_rehearsal_places_fills_kills_and_resumes(tmp_path: Path) -> None:
    r = Rehearsal(tmp_path)
    started = time.monotonic()
    numbers: dict[str, object] = {}
    try:
        r.start_sim()
        r.write_live_yaml()
        r.make_key()
        daemon = r.start_daemon()
        logs = (r.log_path,)

        # 1. it places orders and some fill at the venue
        wait_for(
            lambda: r.lines("LIVE placed") and r.venue("/sim/state")["fills"] > 0,
            TRADE_TIMEOUT_SECS, "a LIVE order placed and filled", alive=daemon, files=logs,
        )  # fmt: skip
        numbers["placed_before_kill"] = len(r.lines("LIVE placed"))
        numbers["venue_fills_before_kill"] = r.venue("/sim/state")["fills"]

        # 2. `live-bridge kill`: CRITICAL line within 3 s, nothing open at the venue within 10 s
        r.run("kill", "--live-config", str(r.live_yaml), "--reason", "rehearsal")
        killed_at = time.monotonic()
        assert r.kill_path.exists()
        engaged = wait_for(
            lambda: r.lines("CRITICAL live_bridge.daemon KILL SWITCH engaged"), KILL_LOG_SECS,
            "the CRITICAL kill switch line", alive=daemon, files=logs,
        )  # fmt: skip
        numbers["kill_log_secs"] = round(time.monotonic() - killed_at, 2)
        assert len(engaged) == 1
        mark = r.log().index(engaged[0]) + len(engaged[0])
        wait_for(
            lambda: r.lines("kill switch: cancelled", mark), KILL_LOG_SECS, "the kill cancel line",
            alive=daemon, files=logs,
        )  # fmt: skip
        wait_for(
            lambda: not r.open_venue_orders(), KILL_CANCEL_SECS, "no open order at the venue",
            alive=daemon, files=logs,
        )  # fmt: skip
        numbers["kill_no_open_orders_secs"] = round(time.monotonic() - killed_at, 2)
        numbers["kill_cancel_line"] = r.lines("kill switch: cancelled", mark)[0].split(": ", 1)[1]
        status = json.loads(r.run("status", "--live-config", str(r.live_yaml), "--json"))
        assert status["trading_state"] == "killed"
        assert status["kill_switch"]["engaged"]

        # while the file exists: cycles go on at the simulated rate, no order is sent
        bars, secs = r.measure_rate()
        numbers["killed_bars_per_sec"] = round(bars / secs, 2)
        assert_simulated_rate(bars, secs)
        assert r.kill_path.exists()
        assert not r.lines("LIVE placed", mark)
        assert r.lines("state=killed orders=0", mark)
        assert not r.open_venue_orders()

        # 3. removing the file releases it; nothing was placed while it existed
        created = r.kill_path.stat().st_mtime
        r.kill_path.unlink()
        assert not r.placed_between(created + IN_FLIGHT_SECS, time.time())
        wait_for(
            lambda: r.lines("kill switch released", mark), KILL_LOG_SECS, "the release line",
            alive=daemon, files=logs,
        )  # fmt: skip

        # 4. SIGTERM: exit 0 and one "stopped" line
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=STOP_TIMEOUT_SECS) == 0, r.log()[-3000:]
        stopped = r.lines("INFO live_bridge stopped (")
        assert len(stopped) == 1, stopped
        assert "stopped (SIGTERM)" in stopped[0]
        saved_bar = r.last_bar_no()
        numbers["placed_first_run"] = len(r.lines("LIVE placed"))

        # 5. restart on the same state file: it resumes and keeps deciding bars
        mark = len(r.log())
        daemon = r.start_daemon()
        wait_for(
            lambda: r.lines(f"resumed from {r.state_path} at bar {saved_bar}", mark),
            TRADE_TIMEOUT_SECS, "the resumed line", alive=daemon, files=logs,
        )  # fmt: skip
        wait_for(
            lambda: r.last_bar_no() > saved_bar, TRADE_TIMEOUT_SECS, "a bar decided after restart",
            alive=daemon, files=logs,
        )  # fmt: skip
        bar_before = r.last_bar_no()
        bars, secs = r.measure_rate()
        numbers["resumed_bars_per_sec"] = round(bars / secs, 2)
        assert_simulated_rate(bars, secs)
        assert r.last_bar_no() > bar_before
        status = json.loads(r.run("status", "--live-config", str(r.live_yaml), "--json"))
        assert status["daemon"]["running"]
        # the restarted daemon trades: `status` must not show the stop of the previous run
        assert status["trading_state"] == "active", status["trading_state"]

        numbers["placed_total"] = len(r.lines("LIVE placed"))
        numbers["venue_fills_total"] = r.venue("/sim/state")["fills"]
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=STOP_TIMEOUT_SECS) == 0, r.log()[-3000:]
        assert len(r.lines("INFO live_bridge stopped (SIGTERM)")) == 2
        sim = r.procs[0]
        sim.send_signal(signal.SIGINT)
        assert sim.wait(timeout=STOP_TIMEOUT_SECS) == 0, r.sim_err.read_text()

        texts = [r.log(), r.sim_out.read_text(), r.sim_err.read_text(), *r.outputs]
        assert not [t for t in texts if "Traceback" in t], r.log()[-3000:]
    finally:
        r.kill_all()
        numbers["runtime_secs"] = round(time.monotonic() - started, 1)
        print(f"rehearsal at speed {SPEED:g}: {numbers}")  # noqa: T201 (shown with -s)


def test_readme_shows_this_rehearsal() -> None:
    text = (ROOT / "README.md").read_text()
    start = text.index("### Rehearsing the live bridge against the local exchange simulator")
    section = text[start : text.index("\n### ", start + 1)].replace("\\\n", "")
    flat = re.sub(r"\s+", " ", section)
    assert KEY_ONE_LINER in section
    assert (
        "live-bridge exchange-sim --data data/sample_hourly.parquet --port 0 --clock accelerated "
        f"--speed {README_SPEED:g} --start {START}"
    ) in flat
    (live_yaml,) = re.findall(r"<<EOF\n(.*?)\nEOF\n", section, re.DOTALL)
    pairs = [line.split("#")[0].split(":", 1) for line in live_yaml.splitlines()]
    spec = {k.strip(): v.strip() for k, v in pairs}
    assert list(spec) == LIVE_KEYS
    assert spec["mode"] == "LIVE"
    assert spec["read_only"] == "false"
    assert spec["symbols"] == f"[{', '.join(SYMBOLS)}]"
    assert float(spec["clock_speed"]) == README_SPEED
    for command in ("run --live-config /tmp/rehearsal/live.yaml --confirm-live",
                    "kill --live-config /tmp/rehearsal/live.yaml",
                    "status --live-config /tmp/rehearsal/live.yaml"):  # fmt: skip
        assert f"live-bridge {command}" in flat
