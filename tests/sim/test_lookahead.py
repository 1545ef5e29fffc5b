"""`sim check lookahead`: every registered strategy is clean on the shipped data; leaks in a
strategy, a stage-1 kernel or the simulator are caught and named; bad input exits 2."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from pydantic import BaseModel

import signals.pipeline
import sim.engine
from signals.bars import Panel, load_bars, to_panel
from signals.config import PlatformConfig, load_config
from signals.pipeline import decision_inputs, warmup_bars
from signals.strategies import STRATEGIES, Proposals, Strategy, StrategyContext, register
from sim import cli
from sim.lookahead import check_lookahead, cut_panel, draw_cuts, strategy_only
from tests.sim.conftest import PROJECT_ROOT, SAMPLE

CONFIG_DIR = PROJECT_ROOT / "config"
BUILT_IN = sorted(n for n, c in STRATEGIES.items() if c.__module__.startswith("signals."))


class LeakyParams(BaseModel, frozen=True, extra="forbid"):
    """No parameters."""


class LeakyPeek(Strategy):
    """Buy when the *next* close is higher: reads close[t + 1] (a shift(-1)), a look-ahead."""

    name = "leaky_peek"
    Params = LeakyParams
    reads_regime = False

    @classmethod
    def warmup_bars(cls, params: BaseModel) -> int:
        return 1

    @classmethod
    def propose(cls, ctx: StrategyContext) -> Proposals:
        following = np.full(ctx.close.shape, np.nan)
        following[:-1] = ctx.close[1:]  # close.shift(-1)
        weight = np.where(
            following > ctx.close, 0.05, np.where(following <= ctx.close, 0.0, np.nan)
        )
        n_symbols = ctx.close.shape[1]
        return Proposals(
            weight=weight,
            stop_pct=np.full((1, n_symbols), np.nan),
            take_pct=np.zeros((1, n_symbols)),
        )


@pytest.fixture(name="leaky")
def fixture_leaky() -> Iterator[type[Strategy]]:
    register(LeakyPeek)
    yield LeakyPeek
    STRATEGIES.pop(LeakyPeek.name, None)


@pytest.fixture(name="config", scope="module")
def fixture_config() -> PlatformConfig:
    return load_config(CONFIG_DIR)


@pytest.fixture(name="panel", scope="module")
def fixture_panel() -> Panel:
    return to_panel(load_bars(SAMPLE))


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["check", "lookahead", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------------------
# clean: every registered strategy, and the shipped config, on the shipped data
# --------------------------------------------------------------------------------------------


def test_registry_has_the_built_ins():
    assert {"rules", "ma_cross"} <= set(BUILT_IN)


@pytest.mark.parametrize("name", BUILT_IN)
def test_lookahead_registered_strategy_on_sample_clean_exit_0(capsys, name):
    code, out, _ = _main(capsys, "--strategy", name, "--cuts", "4")
    assert code == cli.EXIT_OK, out
    assert out.startswith("lookahead: clean (4 cuts at bars ")
    assert f"strategies: {name})" in out
    assert "data/sample_hourly.parquet (8 symbols x 8760 bars)" in out


def test_lookahead_shipped_config_clean_compares_every_component(panel, config):
    report = check_lookahead(panel, config, n_cuts=3, seed=7)
    assert report.clean, report.leaks[:1]
    assert report.strategies == ("rules",)
    assert len(report.cuts) == 3
    sources = {c.split(":")[0] for c in report.columns}
    assert sources == {"strategy `rules`", "stage 1 feature", "combined proposals", "backtest"}
    assert "backtest: orders" in report.columns
    assert "backtest: equity_usd" in report.columns


def test_cut_panel_keeps_the_first_rows_and_stage1_prefix_equal(panel, config):
    # what the check compares, by hand for one cut: stage 1 on the first n bars is the first
    # n rows of stage 1 on all bars
    n = 5000
    part = cut_panel(panel, n)
    assert part.n_bars == n
    np.testing.assert_array_equal(part.close, panel.close[:n])
    full, cut = decision_inputs(panel, config), decision_inputs(part, config)
    for name in ("weight", "block_reason", "regime", "vol", "bad_tick"):
        np.testing.assert_array_equal(getattr(full, name)[:n], getattr(cut, name), err_msg=name)


# --------------------------------------------------------------------------------------------
# leaks are caught and named
# --------------------------------------------------------------------------------------------


def test_lookahead_leaky_strategy_exit_1_names_strategy_row_and_column(
    capsys, leaky, panel, config
):
    code, out, _ = _main(capsys, "--strategy", "leaky_peek", "--cuts", "3", "--seed", "5")
    assert code == cli.EXIT_FAIL
    first = out.splitlines()[0]
    assert first == (
        "lookahead: LEAK in strategy `leaky_peek` "
        "(tests.sim.test_lookahead.LeakyPeek.propose), column `weight`"
    )
    # the first leaking row is the last bar kept by the first cut: there the strategy read the
    # close of the bar the cut removed; the symbol is the first with a finite full-data weight
    cut = draw_cuts(panel.n_bars, warmup_bars(strategy_only(config, "leaky_peek")), 3, 5)[0]
    row = cut - 1
    following = panel.close[row + 1]
    symbol = panel.symbols[int(np.argmax(np.isfinite(following) & np.isfinite(panel.close[row])))]
    ts = np.datetime64(int(panel.ts_ns[row]), "ns").astype("datetime64[s]").item()
    second = out.splitlines()[1]
    assert f"row {row} ({ts.strftime('%Y-%m-%dT%H:%M:%SZ')}, {symbol})" in second, out
    assert "with the data cut after bar" in second


def test_lookahead_leaky_strategy_python_report_names_first_leak(leaky, panel, config):
    report = check_lookahead(panel, strategy_only(config, "leaky_peek"), n_cuts=2, seed=1)
    assert not report.clean
    first = report.leaks[0]
    assert (first.source, first.column) == ("strategy `leaky_peek`", "weight")
    assert first.row == first.cut - 1 == report.cuts[0] - 1
    assert first.full_value in (0.0, 0.05)
    assert np.isnan(first.cut_value)
    # it reaches the combined proposals and the backtest too, ordered after the source
    later = {(leak.source, leak.column) for leak in report.leaks[1:]}
    assert ("combined proposals", "weight") in later


def test_lookahead_leaky_stage1_kernel_named(monkeypatch, panel, config):
    original = signals.pipeline.realized_vol_nb

    def vol_peeking(close, window, bar_no):
        vol = original(close, window, bar_no)
        out = np.full(vol.shape, np.nan)
        out[:-1] = vol[1:]  # the next bar's volatility
        return out

    monkeypatch.setattr(signals.pipeline, "realized_vol_nb", vol_peeking)
    report = check_lookahead(panel, config, n_cuts=2, seed=3)
    first = report.leaks[0]
    assert (first.source, first.column) == ("stage 1 feature", "vol")
    assert first.kernel == "signals.indicators.nb.realized_vol_nb"
    assert first.row == report.cuts[0] - 1
    # the rules strategy does not read the volatility: its proposals stay clean
    assert not [leak for leak in report.leaks if leak.source.startswith("strategy")]


def test_lookahead_leaky_simulator_named_backtest(monkeypatch, panel, config):
    original = sim.engine.simulate

    def simulate_marking_next_close(market, *args):
        following = market.close.copy()
        following[:-1] = market.close[1:]  # marks each bar at the next bar's close
        return original(market._replace(close=following), *args)

    monkeypatch.setattr(sim.engine, "simulate", simulate_marking_next_close)
    report = check_lookahead(panel, config, n_cuts=2, seed=3)
    assert not report.clean
    sources = {leak.source for leak in report.leaks}
    assert sources == {"backtest"}  # stage 1 is untouched
    assert report.leaks[0].kernel.startswith("sim.nb.simulate")


# --------------------------------------------------------------------------------------------
# cut points and bad input
# --------------------------------------------------------------------------------------------


def test_draw_cuts_seeded_distinct_after_warmup(config):
    warm = warmup_bars(config)
    a = draw_cuts(8760, warm, 10, 42)
    assert a == draw_cuts(8760, warm, 10, 42)
    assert a != draw_cuts(8760, warm, 10, 43)
    assert len(set(a)) == 10
    assert list(a) == sorted(a)
    assert min(a) >= warm + 1
    assert max(a) <= 8759
    # short data: every possible cut once, from bar 2
    assert draw_cuts(6, 100, 10, 0) == (2, 3, 4, 5)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (("--strategy", "rulez"), "`--strategy`"),
        (("--cuts", "0"), "--cuts"),
        (("--cuts", "many"), "--cuts"),
        (("--seed", "-1"), "--seed"),
        (("--data", "no/such.parquet"), "no/such.parquet"),
        (("--config", "no/such/dir"), "no/such/dir"),
    ],
)
def test_lookahead_bad_input_one_line_exit_2(capsys, argv, named):
    code, out, err = _main(capsys, *argv)
    assert code == cli.EXIT_BAD_INPUT
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error: " in lines[0]
    assert named in lines[0]
    assert "Traceback" not in err
