"""`live-bridge status`: one screen from the state file and the audit trail, while the daemon runs
and after it stopped.

The figures are checked against what the state file holds (read directly with SQLite) and what
the daemon emitted: an in-process LIVE daemon with a real audit trail and latency tracker
(`test_audit.audited_daemon`), and a real `live-bridge run` process queried with
`python -m live_bridge.cli status` while it waits for the next bar and after SIGTERM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from live_bridge.audit import AuditTrail, read_audit, rotated_files
from live_bridge.config import AuditSettings
from live_bridge.events import ApiCall, CycleFailed, CycleFinished, Started, Stopped
from live_bridge.orders import UNFINISHED
from live_bridge.status import audit_summary, daemon_status, format_status
from signals.bars import to_panel
from signals.config import load_config
from signals.enums import Acc, Pos
from signals.pipeline import warmup_bars
from tests.live_bridge.daemon_process import (
    ROOT,
    bar_done,
    read_state,
    start_daemon,
    write_busy_config,
    write_live_yaml,
)
from tests.live_bridge.test_audit import audited_daemon
from tests.live_bridge.test_daemon import (  # noqa: F401 (fixtures used by name)
    FIRST_ORDER,
    fixture_market,
)
from tests.parity.conftest import (  # noqa: F401 (fixtures used by name)
    KEY_NAME,
    fixture_shipped_bars,
    fixture_venue,
)

MAX_LINES = 40
MAX_COLS = 100


def _assert_one_screen(text: str, tmp_path) -> None:
    """At most 40 lines of 100 columns, the test's folder counted as `<tmp>`."""
    lines = text.replace(str(tmp_path), "<tmp>").splitlines()
    assert len(lines) <= MAX_LINES, text
    assert max(len(line) for line in lines) <= MAX_COLS, [ln for ln in lines if len(ln) > 100]


# --- format_status over what a real in-process daemon wrote ------------------------------------


@pytest.mark.integration
def test_status_of_in_process_daemon_shows_state_file_and_audit_figures(venue, tmp_path, market):
    run = audited_daemon(venue, tmp_path, market)
    try:
        for offset in range(FIRST_ORDER + 40):
            run.step(venue, market, offset)
        daemon = run.daemon
        status = daemon_status(run.live)
        text = format_status(status)
        kept_samples = run.latency.samples()
        open_cids = [o.client_order_id for o in daemon.store.orders(status=UNFINISHED)]
        counts = daemon.store.order_counts()
        n_fills = daemon.store.fill_count()
    finally:
        run.close()
    _assert_one_screen(text, tmp_path)
    finished = [e for e in run.seen if isinstance(e, CycleFinished)]
    last = finished[-1]

    # the run: mode and config of the `started` record; the daemon is in-process (no lock)
    assert status["run"]["mode"] == "LIVE"
    assert status["run"]["source"] == "started"
    assert status["run"]["config_hash"] == market["config"].config_hash()
    assert not status["daemon"]["running"]
    assert status["trading_state"] == "active"
    assert not status["kill_switch"]["engaged"]

    # money, positions and exposure: the state file's figures, themes from the newest cycle
    assert status["equity_usd"] == float(daemon.account[Acc.Equity])
    assert status["cash_usd"] == float(daemon.account[Acc.Cash])
    assert status["kernel_breakers"] == last.breakers
    held = {s: i for i, s in enumerate(daemon.symbols) if daemon.positions[i, Pos.Qty] > 0}
    assert len(held) >= 2, "the replay must hold positions"
    views = status["position_views"]
    assert views.keys() == held.keys() == last.positions.keys()
    themes = {s: t for t, syms in market["config"].universe.themes.items() for s in syms}
    for sym, i in held.items():
        v = views[sym]
        assert v["qty"] == daemon.positions[i, Pos.Qty]
        assert v["entry_price"] == daemon.positions[i, Pos.AvgEntry]
        assert v["price"] == last.positions[sym].price
        assert v["unrealized_pnl_usd"] == pytest.approx(last.positions[sym].unrealized_pnl_usd)
        assert v["theme"] == themes[sym] == last.positions[sym].theme
    by_theme: dict[str, float] = {}
    for p in last.positions.values():
        by_theme[p.theme] = by_theme.get(p.theme, 0.0) + p.value_usd
    assert status["exposure_by_theme_usd"] == pytest.approx(by_theme)
    assert [o["client_order_id"] for o in status["open_orders"]] == open_cids
    assert status["orders_by_status"] == counts
    assert status["fills"] == n_fills > 0

    # the last 5 cycles with their latencies and no-trade reasons, as emitted
    assert [c["bar_no"] for c in status["cycles"]] == [e.bar_no for e in finished[-5:]]
    for c, e in zip(status["cycles"], finished[-5:], strict=True):
        assert c["secs"] == e.secs
        assert c["stages"] == e.stages
        assert c["reasons"] == e.reasons
    assert any(c["reasons"] for c in status["cycles"])
    assert len(daemon_status(run.live, cycles=12)["cycles"]) == 12

    # latency percentiles per stage and endpoint: the tracker's samples as saved
    latency = status["latency"]
    assert latency["cycle"]["n"] == len(finished)
    for name in ("stage:fetch", "stage:decide", "stage:persist", "api:get_candles"):
        assert latency[name]["n"] == len(kept_samples[name])
        for q in (50, 95, 99):
            want = np.percentile(kept_samples[name], q)
            assert latency[name][f"p{q}"] == pytest.approx(want, rel=1e-3, abs=1e-6)

    # the screen shows those figures
    assert "daemon      not running, started " in text
    assert (
        f"mode        LIVE, orders on (read_only false); config {status['run']['config_hash']}"
        in text
    )
    assert f"equity      {status['equity_usd']:,.2f} USD" in text
    assert "breakers    kernel off; health none recorded" in text
    for sym, v in views.items():
        assert f"  {sym:<10} {v['qty']:.8g} @ " in text
        assert f"({v['theme']})" in text
    for theme, usd in status["exposure_by_theme_usd"].items():
        assert f"{theme} {usd:,.2f}" in text
    for c in status["cycles"]:
        assert f"  {c['bar_no']} " in text
    reason = next(iter(status["cycles"][-1]["reasons"] or {"-": 0}))
    assert reason in text
    assert "get_candles" in text
    assert "stage:decide" in text


@pytest.mark.integration
def test_status_shows_kill_switch_health_breakers_and_works_without_audit(venue, tmp_path, market):
    from live_bridge.health import HealthBreakers  # noqa: PLC0415 (another helper's module)

    run = audited_daemon(venue, tmp_path, market)
    try:
        breakers = HealthBreakers(run.live, run.daemon.store, run.bus)
        run.bus.subscribe(breakers)
        for offset in range(3):
            run.step(venue, market, offset)
        closed = format_status(daemon_status(run.live))
        assert "breakers    kernel off; health all closed; no trips" in closed
        for _ in range(run.live.breakers.error_burst):
            run.bus.emit(ApiCall(endpoint="get_candles", code="503", secs=0.01, ok=False))
        (tmp_path / "KILL_SWITCH").write_text("status test\n")
        status = daemon_status(run.live)
        text = format_status(status)
        no_audit = daemon_status(
            run.live.model_copy(update={"audit": AuditSettings(enabled=False)})
        )
    finally:
        run.close()
    _assert_one_screen(text, tmp_path)
    assert status["health_breakers"]["api_errors"]["open"]
    assert (
        "breakers    kernel off; health 1 OPEN, new entries blocked; trips api_errors 1\n" in text
    )
    assert f"  OPEN api_errors: {status['health_breakers']['api_errors']['reason']}" in text
    assert status["trading_state"] == "killed"
    assert f"trading     killed; kill switch ON: {tmp_path / 'KILL_SWITCH'} exists" in text
    # without the audit trail: the state file alone (mode of its newest cycle, no cycle details)
    assert no_audit["audit_path"] is None
    assert no_audit["cycles"] == []
    assert no_audit["run"]["mode"] == "LIVE"
    assert no_audit["run"]["source"] == "state file"
    assert no_audit["equity_usd"] == status["equity_usd"]
    assert "no audit trail for details" in format_status(no_audit)


def test_status_shows_rate_limiter_throttles_and_peak_usage_across_a_restart(
    venue, tmp_path, market
):
    from live_bridge.config import RateLimitSettings  # noqa: PLC0415
    from live_bridge.events import Throttled  # noqa: PLC0415
    from live_bridge.metrics import Metrics  # noqa: PLC0415
    from live_bridge.ratelimit import RateLimiter  # noqa: PLC0415

    run = audited_daemon(venue, tmp_path, market)
    # 2 candle requests a second: at most floor(2 x 90 %) = 1 in any second, so a cycle's
    # candle fetches (one per symbol) hold; the private and public buckets stay far from 80 %
    settings = RateLimitSettings(per_endpoint_per_sec={"get_candles": 2.0})
    try:
        limiter = RateLimiter(settings, run.bus, store=run.daemon.store)
        run.bus.subscribe(limiter)
        run.daemon.adapter.before_request = limiter.before_request
        metrics = Metrics(run.live, {})
        run.bus.subscribe(metrics)
        for offset in range(2):
            run.step(venue, market, offset)
        status = daemon_status(run.live)
        text = format_status(status)
        reread = RateLimiter(settings, run.bus, store=run.daemon.store).state()
    finally:
        run.close()
    _assert_one_screen(text, tmp_path)
    holds = [e for e in run.seen if isinstance(e, Throttled) and e.level == "hold"]
    assert holds, "the tight candle limit never held a request"
    assert {e.endpoint for e in run.seen if isinstance(e, Throttled)} == {"get_candles"}
    limits = status["rate_limits"]
    assert limits["throttled"] == {"slow": 0, "hold": len(holds)}
    assert limits["last_throttle"]["endpoint"] == "get_candles"
    assert limits["last_throttle"]["level"] == "hold"
    assert limits["buckets"]["get_candles"]["per_sec"] == 2.0
    # the newest cycle's fullest second: the cap, one request of 2/s
    assert limits["buckets"]["get_candles"]["peak_pct"] == 50.0
    assert limits["buckets"]["private"]["peak_pct"] < 80.0
    assert f"rate limits throttled slow 0, hold {len(holds)} (spaced from 80 %" in text, text
    assert "  fullest second: private " in text
    assert "get_candles 50% of 2/s" in text
    assert "  last throttle " in text
    assert " get_candles hold " in text
    # the metric counts the same throttles
    throttled = metrics.registry.get_sample_value(
        "live_bridge_throttled_requests_total", {"endpoint": "get_candles", "level": "hold"}
    )
    assert throttled == len(holds)
    # a restarted daemon's limiter carries the counts on
    assert reread["throttled"] == limits["throttled"]


# --- the audit trail read newest first ----------------------------------------------------------


def _cycle(bar_no: int) -> CycleFinished:
    return CycleFinished(
        bar_no=bar_no, bar_ts_ns=bar_no * 3_600 * 10**9, mode="PAPER", skipped=False,
        trading_state="active", secs=0.5, stages={"fetch": 0.25, "decide": 0.125},
        equity_usd=1e4, cash_usd=1e4, peak_equity_usd=1e4, positions={}, orders=(), fills=0,
        reasons={"no_signal": bar_no % 3}, divergences=(), bar_age_secs=1.0, stale_symbols=(),
        tradable_symbols=3, breakers={}, orders_by_status={}, fills_total=0, mismatch={},
    )  # fmt: skip


def test_audit_summary_reads_newest_first_across_rotated_files_to_the_current_start(tmp_path):
    """Two runs in a trail that rotated many times: the second run's start (in an older file
    than its newest cycles), its newest cycles in order, and the first run's stop left out."""
    path = tmp_path / "s.audit.jsonl"
    trail = AuditTrail(path, AuditSettings(max_bytes=2_000, backups=50), "PAPER", "h1")
    try:
        trail(Started(mode="PAPER", config_hash="h1", symbols=("BTC-USD",), read_only=True))
        for bar_no in range(10):
            trail(_cycle(bar_no))
        trail(Stopped(reason="SIGTERM", cancelled=0))
        trail(Started(mode="PAPER", config_hash="h1", symbols=("BTC-USD",), read_only=False))
        for bar_no in range(10, 40):
            trail(_cycle(bar_no))
        trail(CycleFailed(what="cycle", error="ReconcileError", message="fills: HTTP 503"))
    finally:
        trail.close()
    with path.open("a") as f:
        f.write('{"ts": "2024-01-01T00:00:00.000000Z", "type": "cycle_fin')  # a torn line
    assert len(rotated_files(path)) > 5
    summary = audit_summary(path, 5)
    assert [c["bar_no"] for c in summary["cycles"]] == [35, 36, 37, 38, 39]
    assert summary["started"]["read_only"] is False  # the second run's
    assert summary["stopped"] is None  # older than the cycles shown: not news
    assert summary["cycle_failed"]["error"] == "ReconcileError"
    assert summary["newest"]["type"] == "cycle_failed"
    whole = audit_summary(path, 100)
    assert [c["bar_no"] for c in whole["cycles"]] == list(range(10, 40))
    assert whole["started"]["read_only"] is False
    assert [r["bar_no"] for r in read_audit(path, ("cycle_finished",))][-30:] == list(range(10, 40))


# --- `live-bridge status` of a real daemon process ---------------------------------------------


def _wait(predicate, timeout: float, what: str, log) -> None:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, (
            f"{what} not within {timeout} s:\n{log()[-3000:]}"
        )
        time.sleep(0.02)


def _status(live_yaml, *extra: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "live_bridge.cli", "status", "--live-config", str(live_yaml),
         *extra],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _assert_matches_state_file(status: dict, state: dict, symbols: list[str]) -> None:
    """`symbols`: the daemon's, sorted (the state file's row order)."""
    assert status["last_bar_no"] == state["last_bar_no"]
    assert status["cash_usd"] == state["account"][Acc.Cash]
    assert status["equity_usd"] == state["account"][Acc.Equity]
    assert status["kernel_breakers"] == {
        "daily_stop": bool(state["account"][Acc.DailyStop]),
        "weekly_stop": bool(state["account"][Acc.WeeklyStop]),
        "drawdown_breaker": bool(state["account"][Acc.DrawdownBreaker]),
    }
    held = {
        sym: row[Pos.Qty]
        for sym, row in zip(symbols, state["positions"], strict=True)
        if (row[Pos.Qty] or 0.0) > 0.0
    }
    assert status["positions"] == held
    assert {s: v["entry_price"] for s, v in status["position_views"].items()} == {
        sym: row[Pos.AvgEntry]
        for sym, row in zip(symbols, state["positions"], strict=True)
        if sym in held
    }
    counts: dict[str, int] = {}
    for o in state["orders"]:
        counts[o[5]] = counts.get(o[5], 0) + 1
    assert status["orders_by_status"] == counts
    assert status["fills"] == len(state["fills"])
    unfinished = {o[0] for o in state["orders"] if o[5] in UNFINISHED}
    assert {o["client_order_id"] for o in status["open_orders"]} == unfinished
    assert status["health_breakers"] == (
        json.loads(state["meta"]["breakers"]) if "breakers" in state["meta"] else None
    )


@pytest.mark.integration
def test_status_command_of_running_then_stopped_daemon_process_matches_state_file(
    venue, tmp_path, capsys
):
    config_dir = write_busy_config(tmp_path / "config")
    panel = to_panel(venue.bars)
    bar_ns = int(panel.ts_ns[1] - panel.ts_ns[0])
    state_path = tmp_path / "state.sqlite"
    live_yaml = write_live_yaml(tmp_path / "live.yaml", venue.server, panel.symbols, state_path)
    t = warmup_bars(load_config(config_dir), bar_ns)
    daemon = start_daemon(config_dir, live_yaml, KEY_NAME, venue.private_pem, tmp_path / "d.log")
    try:
        # step bars until the daemon holds a position and has an order resting at the venue
        bar_no = -1
        while not (
            read_state(state_path).get("fills")
            and [o for o in venue.engine.orders() if o["status"] == "OPEN"]
        ):
            venue.clock.set(int(panel.ts_ns[t]) + bar_ns)
            bar_no = int(panel.ts_ns[t]) // bar_ns
            _wait(lambda b=bar_no: bar_done(read_state(state_path), b), 60, "bar", daemon.log)
            t += 1
            assert t < 400, "the busy config must trade"
        # the daemon waits for the next bar once the cycle record is in the audit trail
        _wait(
            lambda: (json.loads(_status(live_yaml, "--json"))["cycles"] or [{}])[-1].get("bar_no")
            == bar_no, 30, "the cycle record", daemon.log,
        )  # fmt: skip
        running = json.loads(_status(live_yaml, "--json"))
        text = _status(live_yaml)
        state = read_state(state_path)
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=30) == 0, daemon.log()[-3000:]
        stopped = json.loads(_status(live_yaml, "--json"))
        stopped_text = _status(live_yaml)
        final = read_state(state_path)
    finally:
        if daemon.alive:
            daemon.proc.kill()
            daemon.proc.wait()
    with capsys.disabled():
        print(f"\nlive-bridge status of the running daemon process:\n{text}")

    assert running["daemon"] == {"pid": daemon.proc.pid, "running": True}
    assert running["run"]["mode"] == "LIVE"
    assert running["run"]["read_only"] is False
    assert running["cycles"][-1]["bar_no"] == bar_no == state["last_bar_no"]
    assert running["open_orders"], "an order rests at the venue"
    _assert_matches_state_file(running, state, sorted(panel.symbols))
    _assert_one_screen(text, tmp_path)
    assert f"daemon      running (PID {daemon.proc.pid}), started " in text
    assert "mode        LIVE, orders on (read_only false); config " in text
    assert f"equity      {running['equity_usd']:,.2f} USD" in text
    assert f"open orders {len(running['open_orders'])}" in text

    # stopped: the same state file, its orders cancelled by the stop, the stop from the audit
    assert not stopped["daemon"]["running"]
    assert stopped["run"]["last_stop"]["reason"] == "SIGTERM"
    assert stopped["run"]["last_stop"]["cancelled"] == len(running["open_orders"])
    assert stopped["open_orders"] == []
    _assert_matches_state_file(stopped, final, sorted(panel.symbols))
    _assert_one_screen(stopped_text, tmp_path)
    assert "daemon      not running, started " in stopped_text
    assert "(SIGTERM), cancelled" in stopped_text
    assert "trading     stopped (SIGTERM); kill switch off" in stopped_text
    assert "Traceback" not in daemon.log()
