"""Parity: the live daemon, through the real SDK and the exchange simulator, sends the backtest's
orders bar by bar, and ends with the backtest's positions.

The daemon runs in LIVE mode against the simulator on 127.0.0.1 under a stepped clock; each
cycle it fetches candles, settles the previous orders from the venue's fills, runs the shared
stage 1 on its rolling window and the shared `step_nb`, previews nothing it need not, and places
orders over HTTPS. The backtest runs `run_backtest` over the same bars.
"""

import logging

import numpy as np
import pytest

from live_bridge.daemon import SENT
from signals.bars import to_panel
from signals.enums import Pos
from signals.pipeline import warmup_bars
from sim.engine import run_backtest

from .conftest import daemon_orders, make_daemon, orders_by_bar, parity_config, same_orders

DEFAULT_CYCLES = 1_000
ALL_BARS = 10**9  # every bar after the warm-up: `pytest -m slow tests/parity`


def _replay(venue, tmp_path, n_cycles, on_cycle=None, delay_ns=0, config=None, same_start=False):
    # same_start: the backtest may trade from the daemon's first bar only (a strategy whose
    # warm-up is shorter than the daemon's window would otherwise trade before the daemon runs)
    config = config or parity_config()
    panel = to_panel(venue.bars)
    bar_ns = int(panel.ts_ns[1] - panel.ts_ns[0])
    first = warmup_bars(config, bar_ns)
    last = min(first + n_cycles, panel.n_bars)
    daemon = make_daemon(venue, tmp_path, config, panel.symbols)
    sent: dict[int, list[tuple]] = {}
    divergences: dict[int, list[str]] = {}
    for t in range(first, last):
        if on_cycle is not None:
            on_cycle(t, daemon)
        venue.clock.set(int(panel.ts_ns[t]) + bar_ns + delay_ns)
        result = daemon.run_cycle()
        assert not result.skipped
        sent[result.bar_no] = daemon_orders([r for r in result.orders if r.status in SENT])
        divergences[result.bar_no] = result.divergences
    trade_start = int(panel.ts_ns[first]) if same_start else None
    backtest = run_backtest(panel.slice(0, last), config, trade_start=trade_start)
    expected = orders_by_bar(backtest.orders, bar_ns)
    return daemon, backtest, sent, expected, divergences, first, last, bar_ns, panel


@pytest.mark.integration
@pytest.mark.parametrize(
    "n_cycles",
    [DEFAULT_CYCLES, pytest.param(ALL_BARS, marks=pytest.mark.slow, id="whole-data-set")],
)
def test_live_daemon_orders_equal_backtest_bar_by_bar(venue, tmp_path, n_cycles):
    daemon, backtest, sent, expected, divergences, first, last, bar_ns, panel = _replay(
        venue, tmp_path, n_cycles
    )
    # nothing can trade before the warm-up, so a daemon started there starts from the same state
    assert all(b >= int(panel.ts_ns[first]) // bar_ns for b in expected)
    n_orders = sum(len(v) for v in sent.values())
    assert n_orders > 20, "the replay must exercise orders"
    mismatched = [b for b in sent if not same_orders(sent[b], expected.get(b, []))]
    assert not mismatched, (
        f"{len(mismatched)} of {len(sent)} bars differ; first bar {mismatched[0]}: "
        f"daemon {sent[mismatched[0]]} vs backtest {expected.get(mismatched[0], [])}"
    )
    assert not any(divergences.values())
    np.testing.assert_allclose(
        daemon.positions[:, Pos.Qty], backtest.final_positions[:, Pos.Qty], rtol=1e-12, atol=0
    )
    np.testing.assert_allclose(daemon.account[0], backtest.final_account[0], rtol=1e-9)
    assert last - first == min(n_cycles, panel.n_bars - first)


@pytest.mark.integration
def test_live_daemon_placing_seconds_into_the_bar_still_equals_backtest(venue, tmp_path):
    """The daemon runs `close_delay_secs` (2 s) after a close: its post-only orders rest from 2 s
    into the bar, and the venue judges them on that bar as the backtest does."""
    daemon, backtest, sent, expected, divergences, *_ = _replay(
        venue, tmp_path, 300, delay_ns=2 * 1_000_000_000
    )
    assert sum(len(v) for v in sent.values()) > 10
    mismatched = [b for b in sent if not same_orders(sent[b], expected.get(b, []))]
    assert not mismatched, f"first differing bar {mismatched[:1]}"
    assert not any(divergences.values())
    np.testing.assert_allclose(
        daemon.positions[:, Pos.Qty], backtest.final_positions[:, Pos.Qty], rtol=1e-12, atol=0
    )


@pytest.mark.integration
def test_live_daemon_with_faults_diverges_only_where_forced(venue, tmp_path, caplog):
    """429s and a 5xx burst are retried away; a product going CANCEL_ONLY blocks its entries."""
    cancel_only_from = {}

    def inject(t, daemon):
        offset = t - daemon_first[0]
        if offset == 20:
            venue.faults.rate_limit(3, retry_after_secs=0.0)
        if offset == 40:
            venue.faults.server_error(3, status=503)
        if offset == 150:
            venue.engine.set_product_status("SOL-USD", "cancel_only")
            cancel_only_from["bar"] = int(panel_ts[t]) // 3_600_000_000_000

    config = parity_config()
    panel_ts = to_panel(venue.bars).ts_ns
    daemon_first = [warmup_bars(config, 3_600_000_000_000)]
    with caplog.at_level(logging.WARNING, logger="live_bridge"):
        _, _, sent, expected, divergences, first, last, bar_ns, panel = _replay(
            venue, tmp_path, 300, on_cycle=inject
        )
    change = cancel_only_from["bar"]
    before = [b for b in sent if b < change]
    assert all(same_orders(sent[b], expected.get(b, [])) for b in before), (
        "diverged before the fault"
    )
    noisy = {b: divergences[b] for b in before if divergences[b]}
    assert not noisy, f"retried faults must not show as divergences: {noisy}"
    after = [b for b in sent if b >= change]
    assert all(s != "SOL-USD" or side == -1 for b in after for s, side, *_ in sent[b])
    assert all(any("SOL-USD" in d for d in divergences[b]) for b in after)
    assert any("DIVERGENCE" in r.message and "SOL-USD" in r.message for r in caplog.records)


@pytest.mark.integration
def test_live_daemon_runs_a_user_strategy_like_the_backtest(venue, tmp_path, request):
    # a strategy from the user's own file, named by a `module:` entry, trades live as backtested
    from signals.config import StrategyEntry
    from signals.strategies import STRATEGIES
    from signals.strategies.registry import import_strategies
    from tests.sim.test_user_strategies import USER_MODULE

    path = tmp_path / "user_dips.py"
    path.write_text(USER_MODULE)
    import_strategies(str(path))
    request.addfinalizer(lambda: STRATEGIES.pop("dip_buyer", None))
    base = parity_config()
    entries = {
        n: e.model_copy(update={"enabled": False}) for n, e in base.strategies.strategies.items()
    }
    entries["dip_buyer"] = StrategyEntry(
        enabled=True, module=str(path), params={"lookback": 24, "drop_pct": 2.0},
        budget=base.strategies.strategies["rules"].budget,
    )  # fmt: skip
    config = base.model_copy(
        update={"strategies": base.strategies.model_copy(update={"strategies": entries})}
    )
    daemon, backtest, sent, expected, divergences, *_ = _replay(
        venue, tmp_path, 400, config=config, same_start=True
    )
    assert set(backtest.orders["strategy"]) == {"dip_buyer"}
    assert sum(len(v) for v in sent.values()) > 5, "the replay must exercise orders"
    mismatched = [b for b in sent if not same_orders(sent[b], expected.get(b, []))]
    assert not mismatched, f"first differing bar {mismatched[:1]}"
    assert not any(divergences.values())
    np.testing.assert_allclose(
        daemon.positions[:, Pos.Qty], backtest.final_positions[:, Pos.Qty], rtol=1e-12, atol=0
    )
