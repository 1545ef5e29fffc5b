"""The audit trail: one typed JSON line per audited event, size rotation with retention, and no
secret in anything a LIVE run writes.

(a) an in-process LIVE daemon on the exchange simulator (shipped data, stepped clock) with a
real `AuditTrail` on its event bus, compared with the state file it wrote; (b) the rotating
file on its own; (c) a whole `live-bridge run` process with a throwaway key, whose every
written byte is searched for the key.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from live_bridge.audit import AuditTrail, read_audit, rotated_files
from live_bridge.config import AuditSettings, LiveConfig
from live_bridge.daemon import LiveDaemon
from live_bridge.events import (
    ApiCall,
    Divergence,
    Event,
    EventBus,
    FillApplied,
    OrderChanged,
    Started,
    TradingStateChanged,
)
from live_bridge.latency import LatencyTracker
from live_bridge.store import StateStore
from signals.bars import to_panel
from signals.config import load_config
from signals.pipeline import warmup_bars
from tests.live_bridge.conftest import make_key
from tests.live_bridge.daemon_process import (
    ROOT,
    bar_done,
    read_state,
    start_daemon,
    write_busy_config,
    write_live_yaml,
)
from tests.live_bridge.test_daemon import (  # noqa: F401 (fixtures used by name)
    FIRST_ORDER,
    fixture_market,
)
from tests.parity.conftest import (  # noqa: F401 (fixtures used by name)
    KEY_NAME,
    Venue,
    fixture_shipped_bars,
    fixture_venue,
    venue_adapter,
)

TS_PATTERN = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
AUDITED_TYPES = {
    "started", "stopped", "cycle_finished", "cycle_failed", "order_changed", "fill_applied",
    "trading_state_changed", "reconciled", "divergence", "breaker_changed", "latency_breach",
    "throttled",
}  # fmt: skip
DAY_SECS = 86_400


# --- an in-process daemon with a real audit trail (shared with test_status.py) ---------------


@dataclass
class AuditedRun:
    """An in-process LIVE daemon whose bus feeds a real `AuditTrail` and `LatencyTracker`."""

    daemon: LiveDaemon
    live: LiveConfig
    bus: EventBus
    trail: AuditTrail
    latency: LatencyTracker
    seen: list[Event] = field(default_factory=list)
    results: list = field(default_factory=list)

    def step(self, venue: Venue, market: dict, offset: int):
        """Move the venue's clock to the close of warm-up bar + `offset` and run one cycle."""
        t = market["first"] + offset
        venue.clock.set(int(market["panel"].ts_ns[t]) + market["bar_ns"])
        result = self.daemon.run_cycle()
        self.results.append(result)
        return result

    def close(self) -> None:
        self.trail.close()
        self.daemon.store.close()
        self.daemon.adapter.close()


def audited_daemon(venue: Venue, tmp_path: Path, market: dict, **audit) -> AuditedRun:
    """Return a LIVE daemon on `venue` (as `tests/parity/conftest.py:make_daemon`) whose events
    go to a real audit trail (settings `audit`) and latency tracker; `Started` is emitted."""
    config = market["config"]
    live = LiveConfig(
        mode="LIVE", read_only=False, symbols=list(market["panel"].symbols),
        state_path=str(tmp_path / "s.db"), kill_switch_path=str(tmp_path / "KILL_SWITCH"),
        base_url=venue.server.base_url, ca_path=str(venue.server.ca_path), timeout_secs=5.0,
        max_retries=4, max_quote_age_seconds=60.0, min_book_depth_usd=1_000.0,
        audit=AuditSettings(**audit), max_clock_skew_ms=None,  # the venue's clock is simulated
    )  # fmt: skip
    adapter = venue_adapter(venue, live)
    store = StateStore(live.state_path)
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    latency = LatencyTracker(live.latency, store, bus)
    bus.subscribe(latency)
    audit_path = live.audit_path()
    assert audit_path is not None
    trail = AuditTrail(audit_path, live.audit, live.mode, config.config_hash())
    bus.subscribe(trail)
    adapter.on_request = lambda e, c, s, ok: bus.emit(ApiCall(endpoint=e, code=c, secs=s, ok=ok))
    daemon = LiveDaemon(config, live, adapter, store, now_ns=venue.clock.now_ns, events=bus)
    bus.emit(Started(mode=live.mode, config_hash=config.config_hash(),
                     symbols=tuple(live.symbols), read_only=live.read_only))  # fmt: skip
    return AuditedRun(daemon, live, bus, trail, latency, seen)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- (a) what is written ----------------------------------------------------------------------


@pytest.mark.integration
def test_audit_lines_are_typed_json_one_per_cycle_and_order_transition_matching_store(
    venue, tmp_path, market
):
    started_at = dt.datetime.now(dt.UTC)
    run = audited_daemon(venue, tmp_path, market)
    kill_file = Path(run.live.kill_switch_path)
    try:
        for offset in range(FIRST_ORDER + 1):
            run.step(venue, market, offset)
        run.daemon.entry_blockers.append(lambda: "audit test blocks entries")
        for offset in range(FIRST_ORDER + 1, FIRST_ORDER + 4):
            run.step(venue, market, offset)
        run.daemon.entry_blockers.clear()
        for offset in range(FIRST_ORDER + 4, FIRST_ORDER + 12):
            run.step(venue, market, offset)
        kill_file.write_text("audit test\n")
        run.step(venue, market, FIRST_ORDER + 12)
        kill_file.unlink()
        run.step(venue, market, FIRST_ORDER + 13)
        run.step(venue, market, FIRST_ORDER + 13)  # the same bar again: a skipped cycle
        store = run.daemon.store
        orders = {o.client_order_id: o for o in store.orders()}
        fills = store.fills()
    finally:
        run.close()
    ended_at = dt.datetime.now(dt.UTC)
    records = _lines(run.trail.path)

    # every line: JSON with a UTC timestamp, the mode, the config hash and a known type
    assert records
    for r in records:
        assert TS_PATTERN.match(r["ts"]), r["ts"]
        stamp = dt.datetime.fromisoformat(r["ts"])
        assert stamp.utcoffset() == dt.timedelta(0)
        assert started_at - dt.timedelta(seconds=1) <= stamp <= ended_at
        assert r["mode"] == "LIVE"
        assert r["config_hash"] == market["config"].config_hash()
        assert r["type"] in AUDITED_TYPES, r["type"]
    by_type: dict[str, list[dict]] = {}
    for r in records:
        by_type.setdefault(r["type"], []).append(r)

    # one cycle record per cycle, in order, with the cycle's figures
    cycles = by_type["cycle_finished"]
    assert [c["bar_no"] for c in cycles] == [r.bar_no for r in run.results]
    assert [c["skipped"] for c in cycles] == [r.skipped for r in run.results]
    assert cycles[-1]["skipped"]
    assert all(set(c["stages"]) <= {"fetch", "settle", "decide", "persist", "place"}
               for c in cycles)  # fmt: skip
    assert all(c["secs"] >= sum(c["stages"].values()) - 1e-6 for c in cycles)

    # one record per order transition: each order's chain starts at its insert and ends at the
    # status the store holds
    assert len(orders) >= 3, "the replay must trade"
    moves = by_type["order_changed"]
    assert len(moves) == sum(isinstance(e, OrderChanged) for e in run.seen)
    chains: dict[str, list[dict]] = {}
    for m in moves:
        chains.setdefault(m["client_order_id"], []).append(m)
    assert chains.keys() == orders.keys()
    for cid, chain in chains.items():
        assert chain[0]["old"] == "", chain
        for before, after in zip(chain, chain[1:], strict=False):
            assert after["old"] == before["new"], chain
        assert chain[-1]["new"] == orders[cid].status, (chain, orders[cid])
        assert {m["symbol"] for m in chain} == {orders[cid].symbol}
    assert any(len(chain) >= 3 for chain in chains.values())  # intended -> open -> filled

    # fills, trading-state changes and divergences as typed records
    assert fills, "the replay must fill"
    applied = by_type["fill_applied"]
    assert sorted(f["trade_id"] for f in applied) == sorted(f.trade_id for f in fills)
    assert len(applied) == sum(isinstance(e, FillApplied) for e in run.seen)
    for f in applied:
        assert isinstance(f["qty"], float)
        assert f["qty"] > 0
        assert f["client_order_id"] in orders
    states = [(s["old"], s["new"]) for s in by_type["trading_state_changed"]]
    assert states == [(e.old, e.new) for e in run.seen if isinstance(e, TradingStateChanged)]
    assert ("active", "killed") in states
    assert ("killed", "active") in states
    blocked = [d for d in by_type["divergence"] if d["kind"] == "entry_blocked"]
    assert blocked, "the blocked bars must have dropped an entry"
    assert all("audit test blocks entries" in d["text"] and d["symbol"] for d in blocked)
    assert len(by_type["divergence"]) == sum(isinstance(e, Divergence) for e in run.seen)
    assert len(by_type["started"]) == 1
    # the high-rate events stay out of the trail
    assert any(isinstance(e, ApiCall) for e in run.seen)
    assert "api_call" not in by_type
    assert "clock_checked" not in by_type


# --- (b) rotation and retention ---------------------------------------------------------------


def _divergence(n: int) -> Divergence:
    return Divergence(bar_no=n, symbol="BTC-USD", kind="not_placed", text=f"record {n:05d}")


def _write_until_rotated(trail: AuditTrail, start: int) -> int:
    """Write records from `start` until the file rotates; return the next record number."""
    n = start
    size = trail.path.stat().st_size if trail.path.exists() else 0
    while True:
        trail(_divergence(n))
        n += 1
        now = trail.path.stat().st_size
        if now < size:
            return n
        size = now


def test_audit_rotation_keeps_at_most_backups_files_read_back_in_order(tmp_path):
    path = tmp_path / "audit" / "trail.jsonl"
    settings = AuditSettings(max_bytes=1_500, backups=3)
    trail = AuditTrail(path, settings, "LIVE", "hash")
    try:
        for n in range(400):
            trail(_divergence(n))
    finally:
        trail.close()
    rotated = rotated_files(path)
    assert [p.name for p in rotated] == ["trail.jsonl.1", "trail.jsonl.2", "trail.jsonl.3"]
    assert all(p.stat().st_size <= settings.max_bytes for p in [path, *rotated])
    numbers = [r["bar_no"] for r in read_audit(path)]
    # the newest records, oldest first, none lost or repeated within what is kept
    assert numbers == list(range(400 - len(numbers), 400))
    assert len(numbers) > 3 * 5
    assert [r["bar_no"] for r in read_audit(path, ("divergence",))] == numbers
    assert list(read_audit(path, ("cycle_finished",))) == []


def test_audit_retention_deletes_old_rotated_files_at_open_and_at_rotation(tmp_path):
    path = tmp_path / "trail.jsonl"
    settings = AuditSettings(max_bytes=1_000, backups=5, retention_days=30)
    old = time.time() - 40 * DAY_SECS
    path.write_text(json.dumps({"type": "divergence", "bar_no": -1}) + "\n")
    for i, age_secs in ((1, 0.0), (2, 40 * DAY_SECS), (3, 31 * DAY_SECS)):
        (tmp_path / f"trail.jsonl.{i}").write_text(json.dumps({"type": "x", "file": i}) + "\n")
        stamp = time.time() - age_secs
        os.utime(tmp_path / f"trail.jsonl.{i}", (stamp, stamp))

    # at open: the two older than 30 days go, the recent one and the current file stay
    trail = AuditTrail(path, settings, "LIVE", "hash")
    try:
        assert [p.name for p in rotated_files(path)] == ["trail.jsonl.1"]
        assert [r.get("file") for r in read_audit(path)] == [1, None]

        # at rotation: a rotated file that has aged past the retention is deleted
        n = _write_until_rotated(trail, 0)
        n = _write_until_rotated(trail, n)
        names = [p.name for p in rotated_files(path)]
        assert names == ["trail.jsonl.1", "trail.jsonl.2", "trail.jsonl.3"]
        aged = rotated_files(path)[1]
        aged_records = {r["bar_no"] for r in read_audit(aged)}
        os.utime(aged, (old, old))
        _write_until_rotated(trail, n)
    finally:
        trail.close()
    kept = rotated_files(path)
    assert all(p.stat().st_mtime > old + DAY_SECS for p in kept)
    assert len(kept) == 3  # 4 after the rotation, minus the aged one (moved to .3 and deleted)
    assert not aged_records & {r.get("bar_no") for r in read_audit(path)}


# --- (c) no secret in anything a LIVE run writes ---------------------------------------------


def _secret_needles(private_pem: str) -> dict[str, bytes]:
    """Return the byte strings that give the key away: the PEM, each base64 line of >= 16
    characters, and the raw private scalar and DER key (bytes and hex, both cases)."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    scalar = key.private_numbers().private_value.to_bytes(32, "big")  # type: ignore[union-attr]
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    needles = {"pem": private_pem.strip().encode()}
    body = [ln for ln in private_pem.splitlines() if ln and not ln.startswith("-----")]
    needles |= {f"pem line {i}": ln.encode() for i, ln in enumerate(body) if len(ln) >= 16}
    for name, raw in (("scalar", scalar), ("der", der)):
        needles[f"{name} bytes"] = raw
        needles[f"{name} hex"] = raw.hex().encode()
        needles[f"{name} HEX"] = raw.hex().upper().encode()
    return needles


def _secret_hits(files: list[Path], needles: dict[str, bytes]) -> list[tuple[str, str]]:
    """Return (file, needle name) for every needle found in any of `files` (read as bytes)."""
    hits = []
    for file in files:
        try:
            data = file.read_bytes()
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            continue
        hits.extend((str(file), name) for name, needle in needles.items() if needle in data)
    return hits


def _files_under(folder: Path, since: float = 0.0) -> list[Path]:
    """Return the regular files under `folder` modified at or after `since` (epoch seconds)."""
    out = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in (".git", ".venv", "__pycache__")]
        for name in names:
            path = Path(root) / name
            try:
                if path.is_file() and path.stat().st_mtime >= since:
                    out.append(path)
            except FileNotFoundError:
                continue
    return out


def _wait(predicate, timeout: float, what: str, log) -> None:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, (
            f"{what} not within {timeout} s:\n{log()[-3000:]}"
        )
        time.sleep(0.02)


@pytest.mark.integration
def test_live_run_writes_no_secret_in_log_audit_state_lock_kill_or_temp_files(
    venue, tmp_path, capsys
):
    key = make_key(f"organizations/{uuid.uuid4()}/apiKeys/secret-scan-{uuid.uuid4()}")
    venue.server.register_api_key(key.name, key.public_pem)
    needles = _secret_needles(key.private_pem)
    run_dir, outside = tmp_path / "run", tmp_path / "outside"
    (run_dir / "tmp").mkdir(parents=True)
    outside.mkdir()
    # the self-check: the search finds the key where it is known to be (the environment the
    # daemon gets, and the key's own forms), so an empty result below means something
    env_dump = outside / "daemon-env.json"
    env_dump.write_text(json.dumps({"COINBASE_API_KEY": key.name,
                                    "COINBASE_API_SECRET": key.private_pem}))  # fmt: skip
    decoys = {name: outside / f"decoy-{i}" for i, name in enumerate(needles)}
    for name, path in decoys.items():
        path.write_bytes(b"prefix " + needles[name] + b" suffix")
    assert {n for _, n in _secret_hits([env_dump], needles)} >= {
        n for n in needles if n.startswith("pem line")
    }
    found = set(_secret_hits(list(decoys.values()), needles))
    assert found >= {(str(p), n) for n, p in decoys.items()}

    config_dir = write_busy_config(run_dir / "config")
    panel = to_panel(venue.bars)
    bar_ns = int(panel.ts_ns[1] - panel.ts_ns[0])
    state_path = run_dir / "state.sqlite"
    live_yaml = write_live_yaml(
        run_dir / "live.yaml", venue.server, panel.symbols, state_path,
        audit={"max_bytes": 20_000, "backups": 3},
    )  # fmt: skip
    t = warmup_bars(load_config(config_dir), bar_ns)
    started = time.time() - 1.0
    daemon = start_daemon(
        config_dir, live_yaml, key.name, key.private_pem, run_dir / "daemon.log",
        extra_args=("--log-level", "DEBUG"), env={"TMPDIR": str(run_dir / "tmp")},
    )  # fmt: skip

    def step_bar() -> None:
        nonlocal t
        venue.clock.set(int(panel.ts_ns[t]) + bar_ns)
        bar_no = int(panel.ts_ns[t]) // bar_ns
        _wait(lambda: bar_done(read_state(state_path), bar_no), 60, "bar", daemon.log)
        t += 1

    try:
        # trade until fills were applied and an order rests, then a few more bars
        while not (
            len(read_state(state_path).get("fills", ())) >= 2
            and [o for o in venue.engine.orders() if o["status"] == "OPEN"]
        ):
            step_bar()
            assert t < 600, "the busy config must trade"
        for _ in range(3):
            step_bar()
        subprocess.run(
            [sys.executable, "-m", "live_bridge.cli", "kill", "--live-config", str(live_yaml),
             "--reason", "secret scan"],
            check=True, capture_output=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
        _wait(lambda: "kill switch: cancelled" in daemon.log(), 30, "the kill cancel", daemon.log)
        step_bar()  # a bar while killed
        # while it runs: the state file's -wal and -shm exist and are searched too
        running_files = _files_under(run_dir)
        running_hits = _secret_hits(running_files, needles)
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=30) == 0, daemon.log()[-3000:]
    finally:
        if daemon.alive:
            daemon.proc.kill()
            daemon.proc.wait()
    log = daemon.log()
    assert "LIVE placed" in log
    assert "stopped (SIGTERM)" in log
    assert "Traceback" not in log
    assert "DEBUG" in log  # the most verbose logging was on
    written = _files_under(run_dir)
    names = {p.name for p in running_files + written}
    audit_path = state_path.with_suffix(".audit.jsonl")
    assert {
        state_path.name,
        f"{state_path.name}-wal",
        f"{state_path.name}-shm",
        f"{state_path.name}.lock",
        "KILL_SWITCH",
        "daemon.log",
        audit_path.name,
    } <= names
    assert rotated_files(audit_path), "the audit trail must have rotated"
    assert {r["type"] for r in read_audit(audit_path)} >= {
        "started", "cycle_finished", "order_changed", "fill_applied", "trading_state_changed",
        "stopped",
    }  # fmt: skip
    # anything else the process wrote: the repository it ran in and the numba cache
    elsewhere = _files_under(ROOT, since=started)
    cache = os.environ.get("NUMBA_CACHE_DIR")
    if cache and Path(cache).is_dir():
        elsewhere += _files_under(Path(cache), since=started)
    hits = running_hits + _secret_hits(written + elsewhere, needles)
    assert not hits, f"the API secret was written: {hits}"
    with capsys.disabled():
        print(
            f"\nsecret scan: {len(needles)} forms of the key, {len(set(running_files + written))} "
            f"files of the run and {len(elsewhere)} files written elsewhere since its start: "
            "none found"
        )
