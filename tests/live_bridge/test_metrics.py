"""The Prometheus metrics of the live daemon (`live_bridge.metrics`).

Unit tests feed real event objects into `Metrics` and read its private registry; the
integration test runs `live-bridge run` (LIVE, against the in-test exchange simulator) with
`metrics.port` set, scrapes `/metrics` over HTTP and compares it with the state file.
"""

from __future__ import annotations

import math
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from live_bridge.config import LiveConfig, MetricsSettings
from live_bridge.events import (
    ApiCall,
    BreakerChanged,
    CycleFailed,
    CycleFinished,
    OrderChanged,
    PositionView,
    Reconciled,
    Throttled,
    TradingStateChanged,
)
from live_bridge.metrics import API_ENDPOINTS, Metrics
from signals.bars import to_panel
from signals.config import load_config
from signals.enums import Acc, Pos
from signals.errors import ConfigError
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

SYMBOLS = ["BTC-USD", "ETH-USD"]
THEMES = {"BTC-USD": "majors", "ETH-USD": "majors", "SOL-USD": "alts"}
KERNEL_OFF = {"daily_stop": False, "weekly_stop": False, "drawdown_breaker": False}


def _metrics(**settings: object) -> Metrics:
    live = LiveConfig(symbols=SYMBOLS, metrics=MetricsSettings(**settings))
    return Metrics(live, THEMES)


def _cycle(**kw: object) -> CycleFinished:
    spec: dict[str, object] = {
        "bar_no": 1, "bar_ts_ns": 0, "mode": "LIVE", "skipped": False,
        "trading_state": "active", "secs": 0.3, "stages": {"fetch": 0.1, "decide": 0.2},
        "equity_usd": 1000.0, "cash_usd": 1000.0, "peak_equity_usd": 1000.0, "positions": {},
        "orders": (), "fills": 0, "reasons": {}, "divergences": (), "bar_age_secs": 2.0,
        "stale_symbols": (), "tradable_symbols": 2, "breakers": dict(KERNEL_OFF),
        "orders_by_status": {}, "fills_total": 0, "mismatch": {},
    }  # fmt: skip
    spec.update(kw)
    return CycleFinished(**spec)  # type: ignore[arg-type]


def _position(value_usd: float, theme: str) -> PositionView:
    return PositionView(
        qty=1.0, entry_price=value_usd, price=value_usd, value_usd=value_usd,
        unrealized_pnl_usd=0.0, theme=theme,
    )  # fmt: skip


def _order(new: str, note: str, old: str = "intended") -> OrderChanged:
    return OrderChanged(
        client_order_id="c", symbol="BTC-USD", side=0, purpose=0, order_type=0, qty=1.0,
        notional=10.0, limit_price=None, ref_price=10.0, bar_no=1, old=old, new=new,
        event="reject", note=note, exchange_order_id=None,
    )  # fmt: skip


def _label_values(m: Metrics, family: str, label: str) -> set[str]:
    return {
        s.labels[label]
        for metric in m.registry.collect()
        for s in metric.samples
        if s.name == family and label in s.labels
    }


# --- unit tests: events in, registry out ----------------------------------------------------------


def test_metrics_unknown_symbol_theme_endpoint_code_are_labelled_other():
    m = _metrics()
    m(_cycle(positions={
        "BTC-USD": _position(100.0, "majors"), "DOGE-USD": _position(7.0, "memes"),
        "SOL-USD": _position(5.0, ""),
    }))  # fmt: skip
    symbol = "live_bridge_symbol_exposure_usd"
    theme = "live_bridge_theme_exposure_usd"
    assert _label_values(m, symbol, "symbol") == {"BTC-USD", "ETH-USD", "other"}
    assert _label_values(m, theme, "theme") == {"majors", "alts", "none", "other"}
    m(ApiCall(endpoint="get_candles", code="200", secs=0.01, ok=True))
    m(ApiCall(endpoint="frobnicate_everything", code="I'm a teapot", secs=0.01, ok=False))
    m(Throttled(endpoint="/x/y", bucket="private", level="panic", wait_secs=0.1, usage_pct=99.0))
    m(_cycle(reasons={"cooldown": 2, "made_up_reason": 5}))

    # the gauges show the last cycle only: no stale series of a position that is gone
    assert _label_values(m, symbol, "symbol") == {"BTC-USD", "ETH-USD"}
    assert m.registry.get_sample_value(symbol, {"symbol": "BTC-USD"}) == 0.0
    assert _label_values(m, "live_bridge_api_requests_total", "endpoint") == {
        "get_candles", "other",
    }  # fmt: skip
    get = m.registry.get_sample_value
    assert get("live_bridge_api_errors_total", {"endpoint": "other", "code": "other"}) == 1.0
    throttled = "live_bridge_throttled_requests_total"
    assert get(throttled, {"endpoint": "other", "level": "other"}) == 1.0
    reasons = "live_bridge_no_trade_reasons_total"
    assert get(reasons, {"reason": "cooldown"}) == 2.0
    assert get(reasons, {"reason": "other"}) == 5.0


def test_metrics_positions_split_by_symbol_and_theme():
    m = _metrics()
    m(_cycle(positions={
        "BTC-USD": _position(100.0, "majors"), "ETH-USD": _position(50.0, "majors"),
        "DOGE-USD": _position(7.0, "memes"), "SOL-USD": _position(5.0, ""),
    }))  # fmt: skip
    get = m.registry.get_sample_value
    assert get("live_bridge_exposure_usd") == 162.0
    assert get("live_bridge_open_positions") == 4.0
    assert get("live_bridge_symbol_exposure_usd", {"symbol": "BTC-USD"}) == 100.0
    assert get("live_bridge_symbol_exposure_usd", {"symbol": "other"}) == 12.0
    assert get("live_bridge_theme_exposure_usd", {"theme": "majors"}) == 150.0
    assert get("live_bridge_theme_exposure_usd", {"theme": "alts"}) == 5.0  # from `themes`
    assert get("live_bridge_theme_exposure_usd", {"theme": "other"}) == 7.0


def test_metrics_many_rejection_codes_capped_at_max_then_other():
    m = _metrics(max_rejection_codes=20)
    for i in range(50):
        m(_order("rejected", f"ERROR_CODE_{i}"))
    m(_order("rejected", "a free-text note, not a code"))
    m(_order("rejected", ""))
    m(_order("rejected", "ERROR_CODE_3"))  # a code already labelled keeps its label
    m(_order("open", "INSUFFICIENT_FUND"))  # not a rejection
    m(_order("rejected", "ERROR_CODE_0", old="rejected"))  # no move
    name = "live_bridge_order_rejections_total"
    codes = _label_values(m, name, "code")
    assert len(codes) == 21
    assert "other" in codes
    assert "INSUFFICIENT_FUND" not in codes
    assert m.registry.get_sample_value(name, {"code": "other"}) == 32.0
    assert m.registry.get_sample_value(name, {"code": "ERROR_CODE_3"}) == 2.0
    total = sum(m.registry.get_sample_value(name, {"code": c}) or 0.0 for c in codes)
    assert total == 53.0


def test_metrics_health_breaker_names_capped_kernel_names_always_labelled():
    m = _metrics(max_breaker_names=3)
    for i in range(10):
        m(BreakerChanged(name=f"breaker_{i}", open=True, reason="test"))
    m(BreakerChanged(name="Not A Name!", open=True, reason="test"))
    m(_cycle())
    names = _label_values(m, "live_bridge_breaker_open", "breaker")
    assert names == {
        "breaker_0", "breaker_1", "breaker_2", "other", "daily_stop", "weekly_stop",
        "drawdown_breaker",
    }  # fmt: skip


def test_metrics_consecutive_api_errors_count_up_and_reset_on_success():
    m = _metrics()
    get = m.registry.get_sample_value
    assert get("live_bridge_api_consecutive_errors") == 0.0
    for code in ("503", "timeout", "429"):
        m(ApiCall(endpoint="create_order", code=code, secs=0.5, ok=False))
    assert get("live_bridge_api_consecutive_errors") == 3.0
    m(ApiCall(endpoint="get_candles", code="200", secs=0.05, ok=True))
    assert get("live_bridge_api_consecutive_errors") == 0.0
    m(ApiCall(endpoint="get_candles", code="connection", secs=0.05, ok=False))
    assert get("live_bridge_api_consecutive_errors") == 1.0
    errors = "live_bridge_api_errors_total"
    assert get(errors, {"endpoint": "create_order", "code": "503"}) == 1.0
    assert get(errors, {"endpoint": "get_candles", "code": "connection"}) == 1.0
    assert get("live_bridge_api_requests_total", {"endpoint": "get_candles", "code": "200"}) == 1.0


def test_metrics_consecutive_failed_cycles_reset_by_a_finished_cycle():
    m = _metrics()
    get = m.registry.get_sample_value
    for _ in range(3):
        m(CycleFailed(what="cycle", error="ReconcileError", message="venue down"))
    assert get("live_bridge_cycle_consecutive_failures") == 3.0
    assert get("live_bridge_cycles_total", {"outcome": "failed"}) == 3.0
    m(_cycle(skipped=True))
    assert get("live_bridge_cycle_consecutive_failures") == 0.0
    assert get("live_bridge_cycles_total", {"outcome": "skipped"}) == 1.0
    assert get("live_bridge_cycles_total", {"outcome": "decided"}) == 0.0


def test_metrics_histograms_count_cycles_stages_and_requests():
    m = _metrics(cycle_buckets_secs=[0.1, 1.0, 10.0], api_buckets_secs=[0.05, 0.5])
    for secs in (0.05, 0.5, 5.0, 50.0):
        m(_cycle(secs=secs, stages={"fetch": secs / 2, "place": secs / 4, "bogus": 1.0}))
    for secs in (0.01, 0.2, 0.3):
        m(ApiCall(endpoint="get_candles", code="200", secs=secs, ok=True))
    get = m.registry.get_sample_value
    h = "live_bridge_cycle_duration_seconds"
    assert get(f"{h}_count") == 4.0
    assert get(f"{h}_sum") == pytest.approx(55.55)
    assert [get(f"{h}_bucket", {"le": le}) for le in ("0.1", "1.0", "10.0", "+Inf")] == [
        1.0, 2.0, 3.0, 4.0,
    ]  # fmt: skip
    s = "live_bridge_stage_duration_seconds"
    assert get(f"{s}_count", {"stage": "fetch"}) == 4.0
    assert get(f"{s}_count", {"stage": "place"}) == 4.0
    assert get(f"{s}_count", {"stage": "other"}) == 4.0
    assert get(f"{s}_bucket", {"stage": "fetch", "le": "1.0"}) == 2.0
    a = "live_bridge_api_request_duration_seconds"
    assert get(f"{a}_count", {"endpoint": "get_candles"}) == 3.0
    assert get(f"{a}_bucket", {"endpoint": "get_candles", "le": "0.05"}) == 1.0
    assert get(f"{a}_bucket", {"endpoint": "get_candles", "le": "0.5"}) == 3.0


def test_metrics_state_gauges_absent_until_the_first_cycle():
    m = _metrics()
    get = m.registry.get_sample_value
    assert get("live_bridge_equity_usd") is None
    assert get("live_bridge_kill_switch_engaged") is None
    assert get("live_bridge_fills_total") is None
    cycle = _cycle(equity_usd=1234.5, cash_usd=1000.0, fills_total=7, bar_age_secs=3.5)
    m(cycle)
    assert get("live_bridge_last_cycle_timestamp_seconds") == cycle.ts_ns / 1e9
    assert get("live_bridge_equity_usd") == 1234.5
    assert get("live_bridge_cash_usd") == 1000.0
    assert get("live_bridge_fills_total") == 7.0
    assert get("live_bridge_bar_age_seconds") == 3.5
    assert get("live_bridge_kill_switch_engaged") == 0.0
    assert get("live_bridge_reconcile_mismatch") == 0.0
    assert math.isnan(get("live_bridge_fill_ratio"))  # nothing sent yet


def test_metrics_off_by_default_and_served_on_loopback_only(tmp_path):
    import types  # noqa: PLC0415

    from live_bridge.operator import Operator  # noqa: PLC0415
    from live_bridge.store import StateStore  # noqa: PLC0415

    platform = load_config(ROOT / "config")
    store = StateStore(tmp_path / "s.db")
    try:
        # no `metrics.port` in live.yaml: the operator builds no metrics and opens no port
        state = str(tmp_path / "s.db")
        default = LiveConfig(symbols=SYMBOLS, state_path=state)
        assert default.metrics.port is None
        off = Operator(default, platform, store, types.SimpleNamespace())
        assert off.metrics is None
        off.close()
        on = Operator(
            LiveConfig(symbols=SYMBOLS, state_path=state, metrics=MetricsSettings(port=0)),
            platform, store,
            types.SimpleNamespace(),
        )  # fmt: skip
        try:
            port = on.metrics.start()
            # bound to the loopback address, not to every interface
            assert on.metrics._server.server_address[:2] == ("127.0.0.1", port)
            assert "live_bridge_cycles_total" in _scrape(port)
        finally:
            on.close()
    finally:
        store.close()


def test_metrics_orders_by_status_pending_and_fill_ratio():
    m = _metrics()
    counts = {"filled": 6, "cancelled": 2, "rejected": 1, "open": 1, "intended": 2,
              "unknown": 1, "skipped": 4, "weird_status": 3}  # fmt: skip
    m(_cycle(orders_by_status=counts))
    get = m.registry.get_sample_value
    assert get("live_bridge_orders", {"status": "filled"}) == 6.0
    assert get("live_bridge_orders", {"status": "expired"}) == 0.0
    assert get("live_bridge_orders", {"status": "other"}) == 3.0
    assert get("live_bridge_pending_orders") == 4.0  # intended + unknown + open
    # filled / (open + filled + cancelled + rejected): skipped and intended were never sent
    assert get("live_bridge_fill_ratio") == pytest.approx(6 / 10)


def test_metrics_breakers_open_close_and_count_trips_once_per_opening():
    m = _metrics()
    get = m.registry.get_sample_value
    m(BreakerChanged(name="api_errors", open=True, reason="5 errors in 60 s"))
    m(BreakerChanged(name="api_errors", open=True, reason="still"))
    assert get("live_bridge_breaker_open", {"breaker": "api_errors"}) == 1.0
    assert get("live_bridge_breaker_trips_total", {"breaker": "api_errors"}) == 1.0
    m(BreakerChanged(name="api_errors", open=False, reason="healthy"))
    assert get("live_bridge_breaker_open", {"breaker": "api_errors"}) == 0.0
    m(BreakerChanged(name="api_errors", open=True, reason="again"))
    assert get("live_bridge_breaker_trips_total", {"breaker": "api_errors"}) == 2.0
    # a kernel breaker on at the first cycle tripped before this process: not counted
    m(_cycle(breakers={**KERNEL_OFF, "drawdown_breaker": True}))
    assert get("live_bridge_breaker_open", {"breaker": "drawdown_breaker"}) == 1.0
    assert get("live_bridge_breaker_trips_total", {"breaker": "drawdown_breaker"}) == 0.0
    m(_cycle())
    m(_cycle(breakers={**KERNEL_OFF, "daily_stop": True, "drawdown_breaker": True}))
    m(_cycle(breakers={**KERNEL_OFF, "daily_stop": True}))
    assert get("live_bridge_breaker_trips_total", {"breaker": "daily_stop"}) == 1.0
    assert get("live_bridge_breaker_trips_total", {"breaker": "drawdown_breaker"}) == 1.0
    assert get("live_bridge_breaker_open", {"breaker": "daily_stop"}) == 1.0
    assert get("live_bridge_breaker_open", {"breaker": "drawdown_breaker"}) == 0.0


def test_metrics_kill_switch_trading_state_and_mismatch_follow_events():
    m = _metrics()
    get = m.registry.get_sample_value
    m(TradingStateChanged(old="active", new="killed", event="kill", note="operator"))
    assert get("live_bridge_kill_switch_engaged") == 1.0
    assert get("live_bridge_trading_state", {"state": "killed"}) == 1.0
    assert get("live_bridge_trading_state", {"state": "active"}) == 0.0
    m(TradingStateChanged(old="killed", new="active", event="release", note=""))
    assert get("live_bridge_kill_switch_engaged") == 0.0
    m(Reconciled(mismatch={"BTC": {"store": 1.0, "venue": 0.5}}, cancelled=0, adopted=0))
    assert get("live_bridge_reconcile_mismatch") == 1.0
    m(Reconciled(mismatch={}, cancelled=0, adopted=0))
    assert get("live_bridge_reconcile_mismatch") == 0.0
    m(_cycle(trading_state="reduce_only", mismatch={"ETH": {"store": 1.0, "venue": 0.0}}))
    assert get("live_bridge_trading_state", {"state": "reduce_only"}) == 1.0
    assert get("live_bridge_reconcile_mismatch") == 1.0
    states = ("active", "reduce_only", "halted", "killed", "stopping")
    assert sum(get("live_bridge_trading_state", {"state": s}) or 0.0 for s in states) == 1.0


def test_metrics_two_instances_in_one_process_serve_their_own_values():
    a, b = _metrics(port=0), _metrics(port=0)
    a(_cycle(equity_usd=1.0))
    b(_cycle(equity_usd=2.0))
    try:
        ports = a.start(), b.start()
        assert ports[0] != ports[1]
        assert a.start() == ports[0]  # idempotent
        values = [_scrape(p)["live_bridge_equity_usd"][()] for p in ports]
        assert values == [1.0, 2.0]
    finally:
        a.close()
        b.close()
    assert a.port is None
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", ports[0]), timeout=1):
        pass


def test_metrics_port_in_use_raises_config_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        m = _metrics(port=sock.getsockname()[1])
        with pytest.raises(ConfigError, match="`metrics.port` must be a free port"):
            m.start()
    m.close()


@pytest.mark.parametrize("buckets", [[], [1.0, 0.5], [0.1, 0.1], [0.0, 1.0]])
def test_metrics_settings_bad_buckets_refused(buckets):
    with pytest.raises(ValidationError, match="cycle_buckets_secs"):
        MetricsSettings(cycle_buckets_secs=buckets)


# --- integration: a real daemon process, scraped over HTTP ---------------------------------------

BAR_TIMEOUT_SECS = 90.0  # the first start of a session may compile the kernels
AGREE_TIMEOUT_SECS = 10.0
MIN_FILLS = 3
MAX_BARS = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int) -> dict[str, dict[tuple, float]]:
    # {sample name: {sorted label items: value}}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def _store_view(state: dict) -> dict:
    qty = [p[Pos.Qty] for p in state["positions"]]
    return {
        "equity": state["account"][Acc.Equity],
        "cash": state["account"][Acc.Cash],
        "orders": dict(Counter(o[5] for o in state["orders"])),
        "fills": len(state["fills"]),
        "positions": sum(1 for q in qty if q > 0.0),
    }


def _metrics_view(scraped: dict) -> dict:
    orders = {
        dict(k)["status"]: int(v) for k, v in scraped.get("live_bridge_orders", {}).items() if v
    }
    return {
        "equity": scraped.get("live_bridge_equity_usd", {}).get(()),
        "cash": scraped.get("live_bridge_cash_usd", {}).get(()),
        "orders": orders,
        "fills": int(scraped.get("live_bridge_fills_total", {}).get((), -1)),
        "positions": int(scraped.get("live_bridge_open_positions", {}).get((), -1)),
    }


def _agree(store: dict, metrics: dict) -> bool:
    return (
        metrics["equity"] is not None
        and math.isclose(metrics["equity"], store["equity"], rel_tol=1e-12)
        and math.isclose(metrics["cash"], store["cash"], rel_tol=1e-12)
        and {k: v for k, v in metrics.items() if k not in ("equity", "cash")}
        == {k: v for k, v in store.items() if k not in ("equity", "cash")}
    )


def _wait(predicate, timeout: float, what: str, log) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not within {timeout} s:\n{log()[-3000:]}"
        time.sleep(0.05)


@pytest.mark.integration
def test_metrics_of_a_live_daemon_equal_its_state_file(venue, tmp_path, capsys):
    started = time.monotonic()
    config_dir = write_busy_config(tmp_path / "config")
    panel = to_panel(venue.bars)
    bar_ns = int(panel.ts_ns[1] - panel.ts_ns[0])
    state_path = tmp_path / "state.sqlite"
    port = _free_port()
    live_yaml = write_live_yaml(
        tmp_path / "live.yaml", venue.server, panel.symbols, state_path, metrics={"port": port}
    )
    t = warmup_bars(load_config(config_dir), bar_ns)
    daemon = start_daemon(config_dir, live_yaml, KEY_NAME, venue.private_pem, tmp_path / "d.log")
    last: dict = {}

    def agreed() -> bool:
        nonlocal last
        try:
            scraped = _scrape(port)
        except OSError:  # not serving yet
            return False
        last = {"store": _store_view(read_state(state_path)), "metrics": _metrics_view(scraped),
                "scraped": scraped}  # fmt: skip
        return _agree(last["store"], last["metrics"])

    try:
        n_bars = 0
        while n_bars < 5 or len(read_state(state_path).get("fills", ())) < MIN_FILLS:
            assert n_bars < MAX_BARS, f"fewer than {MIN_FILLS} fills in {MAX_BARS} bars"
            venue.clock.set(int(panel.ts_ns[t]) + bar_ns)
            bar_no = int(panel.ts_ns[t]) // bar_ns
            _wait(lambda b=bar_no: bar_done(read_state(state_path), b), BAR_TIMEOUT_SECS,
                  f"bar {bar_no}", daemon.log)  # fmt: skip
            t += 1
            n_bars += 1
        # the daemon now waits for the next bar: the endpoint shows what the store holds
        deadline = time.monotonic() + AGREE_TIMEOUT_SECS
        while not agreed():
            assert time.monotonic() < deadline, (
                f"metrics not equal to the store within {AGREE_TIMEOUT_SECS} s: store "
                f"{last.get('store')}, metrics {last.get('metrics')}\n{daemon.log()[-3000:]}"
            )
            time.sleep(0.05)
        scraped = last["scraped"]
        get = scraped.get
        assert get("live_bridge_kill_switch_engaged")[()] == 0.0
        assert get("live_bridge_trading_state")[(("state", "active"),)] == 1.0
        cycles = get("live_bridge_cycles_total")
        assert cycles[(("outcome", "decided"),)] >= n_bars
        assert get("live_bridge_cycle_duration_seconds_count")[()] >= n_bars
        assert get("live_bridge_cycle_consecutive_failures")[()] == 0.0
        # every endpoint the adapter called is a known one (the label set is complete)
        requests = get("live_bridge_api_requests_total")
        endpoints = {dict(k)["endpoint"] for k in requests}
        assert "other" not in endpoints
        assert {"get_candles", "create_order", "list_orders"} <= endpoints <= API_ENDPOINTS
        assert get("live_bridge_api_request_duration_seconds_count")
        exposure = get("live_bridge_exposure_usd")[()]
        by_symbol = sum(get("live_bridge_symbol_exposure_usd").values())
        assert by_symbol == pytest.approx(exposure)
        assert {dict(k)["symbol"] for k in get("live_bridge_symbol_exposure_usd")} == set(
            panel.symbols
        )
        assert 0.0 < get("live_bridge_fill_ratio")[()] <= 1.0

        subprocess.run(
            [sys.executable, "-m", "live_bridge.cli", "kill", "--live-config", str(live_yaml),
             "--reason", "metrics test"],
            check=True, capture_output=True, cwd=ROOT,
        )  # fmt: skip
        _wait(
            lambda: _scrape(port).get("live_bridge_kill_switch_engaged", {}).get(()) == 1.0,
            5.0, "kill switch engaged in the metrics", daemon.log,
        )  # fmt: skip
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=30) == 0, daemon.log()[-3000:]
    finally:
        if daemon.alive:
            daemon.proc.kill()
            daemon.proc.wait()
    assert "Traceback" not in daemon.log()
    with pytest.raises(OSError):
        _scrape(port)  # the endpoint went with the process
    with capsys.disabled():
        store = last["store"]
        print(
            f"\nmetrics: {n_bars} bars, {store['fills']} fills, orders {store['orders']}, "
            f"equal to the state file; {time.monotonic() - started:.1f} s"
        )
