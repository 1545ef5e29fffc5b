"""Python ergonomics: `PlatformConfig.with_overrides`, `run_backtest(trade_start=...)`,
`BacktestResult.to_vectorbt()` and the benchmark / duration / expectancy metrics."""

from __future__ import annotations

import dataclasses
import warnings
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from signals.bars import Panel, load_bars, to_panel
from signals.config import PlatformConfig, load_config, override_keys, override_path
from signals.errors import ConfigError, DataError
from signals.pipeline import decision_inputs, warmup_bars
from sim.engine import run_backtest
from sim.metrics import summary_metrics
from tests.sim.conftest import PROJECT_ROOT, SAMPLE

CONFIG_DIR = PROJECT_ROOT / "config"


@pytest.fixture(name="config", scope="module")
def fixture_config() -> PlatformConfig:
    return load_config(CONFIG_DIR)


@pytest.fixture(name="panel", scope="module")
def fixture_panel() -> Panel:
    return to_panel(load_bars(SAMPLE))


# --------------------------------------------------------------------------------------------
# with_overrides
# --------------------------------------------------------------------------------------------


def test_with_overrides_strategy_param_returns_new_validated_config(config):
    new = config.with_overrides({"strategies.ma_cross.fast": 12})
    assert new.strategies.strategies["ma_cross"].params["fast"] == 12
    assert config.strategies.strategies["ma_cross"].params["fast"] == 24  # original untouched
    assert new.config_hash() != config.config_hash()
    # everything else equal: only the one leaf differs
    a, b = config.flat(), new.flat()
    assert {k for k in a if a[k] != b[k]} == {"strategies.strategies.ma_cross.params.fast"}


def test_with_overrides_full_form_and_sections_equal_shorthand(config):
    short = config.with_overrides({"strategies.ma_cross.fast": 12, "policy.risk.kill_switch": True})
    full = config.with_overrides(
        {"strategies.strategies.ma_cross.params.fast": 12, "policy.risk.kill_switch": True}
    )
    assert short == full
    assert short.policy.risk.kill_switch is True
    nested = config.with_overrides({"policy.risk.regime_multipliers.bull": 0.5, "backtest.seed": 7})
    assert nested.policy.risk.regime_multipliers["bull"] == 0.5
    assert nested.backtest.seed == 7
    assert nested == config.with_seed(7).with_overrides(
        {"policy.risk.regime_multipliers.bull": 0.5}
    )


def test_with_overrides_key_below_dict_field_validated_by_model(config):
    new = config.with_overrides({"universe.products.ETH-USD.min_notional_usd": 5.0})
    assert new.universe.product("ETH-USD").min_notional_usd == 5.0
    with pytest.raises(ConfigError, match=r"universe\.products\.ETH-USD\.foo"):
        config.with_overrides({"universe.products.ETH-USD.foo": 5.0})


@pytest.mark.parametrize(
    ("key", "close"),
    [
        ("strategies.ma_cross.fats", "strategies.ma_cross.fast"),
        ("policy.risk.max_open_position", "policy.risk.max_open_positions"),
        ("backtest.sed", "backtest.seed"),
    ],
)
def test_with_overrides_bad_key_raises_naming_key_and_close_keys(config, key, close):
    with pytest.raises(ConfigError) as info:
        config.with_overrides({key: 1})
    text = str(info.value)
    assert f"`{key}`" in text
    assert f"`{close}`" in text
    assert close in override_keys(config)


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("strategies.ma_cross.fast", 0, "fast"),
        ("strategies.ma_cross.fast", 500, "fast"),  # fast must be < slow
        ("policy.risk.stop_loss_pct", -1, "policy.risk.stop_loss_pct"),
        ("backtest.seed", "x", "backtest.seed"),
    ],
)
def test_with_overrides_bad_value_raises_validation_error_naming_key(config, key, value, named):
    from pydantic import ValidationError

    with pytest.raises(ConfigError) as info:
        config.with_overrides({key: value})
    assert named in str(info.value)
    assert key in str(info.value)  # the override as given
    assert isinstance(info.value.__cause__, ValidationError)


def test_override_path_same_scheme_as_sweep_grid(config):
    from sim.sweep import resolve_key

    for key in ("strategies.rules.exit_lookback", "strategies.ma_cross.enabled",
                "strategies.rules.budget.max_at_risk_pct", "policy.risk.max_open_positions",
                "universe.max_universe_size", "backtest.initial_cash_usd"):  # fmt: skip
        grid = resolve_key(key, config)
        path = override_path(key, config)
        if grid.strategy is None:
            assert grid.path == path
        else:
            assert path == ("strategies", "strategies", grid.strategy, "params", grid.param)


# --------------------------------------------------------------------------------------------
# run_backtest(trade_start=...)
# --------------------------------------------------------------------------------------------

TRADE_START_ROW = 4000  # mid-June 2024: the full run has traded and holds positions by then


def _ts_ns(frame: pl.DataFrame, column: str = "ts") -> np.ndarray:
    return frame[column].dt.epoch("ns").to_numpy()


def _rows(panel: Panel, lo: int) -> Panel:
    return Panel(
        ts_ns=panel.ts_ns[lo:],
        symbols=panel.symbols,
        **{k: np.ascontiguousarray(getattr(panel, k)[lo:]) for k in ("open", "high", "low",
                                                                    "close", "volume")},
    )  # fmt: skip


@pytest.fixture(name="full_run", scope="module")
def fixture_full_run(panel, config):
    return run_backtest(panel, config)


@pytest.fixture(name="late_run", scope="module")
def fixture_late_run(panel, config):
    return run_backtest(panel, config, trade_start=int(panel.ts_ns[TRADE_START_ROW]))


def test_trade_start_equals_run_with_decisions_suppressed_before(panel, config, late_run):
    # the same stage 1, with every proposal before the start blanked by hand
    inputs = decision_inputs(panel, config)
    weight = inputs.weight.copy()
    weight[:TRADE_START_ROW] = np.nan
    suppressed = run_backtest(panel, config, dataclasses.replace(inputs, weight=weight))
    for name in ("orders", "fills", "trades"):
        assert_frame_equal(getattr(late_run, name), getattr(suppressed, name))
    assert_frame_equal(late_run.curve, suppressed.curve[TRADE_START_ROW:])
    np.testing.assert_array_equal(late_run.final_account, suppressed.final_account)
    np.testing.assert_array_equal(late_run.final_positions, suppressed.final_positions)


def test_trade_start_no_order_or_fill_before_and_curve_from_start(panel, late_run):
    start = panel.ts_ns[TRADE_START_ROW]
    assert late_run.orders.height > 0
    assert _ts_ns(late_run.orders).min() >= start  # decided at or after the start's close
    assert _ts_ns(late_run.fills).min() > start  # filled on a later bar
    assert _ts_ns(late_run.trades, "entry_ts").min() > start
    assert late_run.trade_start_row == TRADE_START_ROW
    np.testing.assert_array_equal(_ts_ns(late_run.curve), panel.ts_ns[TRADE_START_ROW:])
    # flat with the starting cash until the first fill
    assert late_run.curve["equity_usd"][0] == late_run.initial_cash_usd


def test_trade_start_datetime_equals_epoch_ns(panel, config, late_run):
    start = datetime.fromtimestamp(int(panel.ts_ns[TRADE_START_ROW]) // 10**9, tz=UTC)
    again = run_backtest(panel, config, trade_start=start)
    assert_frame_equal(again.fills, late_run.fills)
    assert_frame_equal(again.curve, late_run.curve)
    with pytest.raises(DataError, match="tz-aware"):
        run_backtest(panel, config, trade_start=start.replace(tzinfo=None))
    with pytest.raises(DataError, match="`trade_start` must be at or before the last bar"):
        run_backtest(panel, config, trade_start=int(panel.ts_ns[-1]) + 1)


def test_trade_start_stage1_rows_after_start_equal_full_run(late_run, full_run):
    # the warm-up bars feed the indicators: every proposal and feature from the start on is the
    # full run's, bit for bit (NaN equal)
    a, b = late_run.inputs, full_run.inputs
    for name in ("weight", "block_reason", "regime", "bad_tick", "vol"):
        np.testing.assert_array_equal(
            getattr(a, name)[TRADE_START_ROW:], getattr(b, name)[TRADE_START_ROW:], err_msg=name
        )
    assert np.isnan(a.weight[:TRADE_START_ROW]).all()


def test_trade_start_before_first_decision_equals_full_run(panel, config, full_run):
    """Where the two runs' states are equal, their decisions are: the full run is flat with its
    starting cash until its first decision, so starting to trade at that bar (or any bar before
    it) gives the full run's orders, fills, trades and curve from there, bit for bit. (Later,
    the full run's cash, positions, peak and cooldowns differ from a fresh start's, and the
    sizing reads them, so no per-bar equality holds then; the warm-up test below covers it.)"""
    first = int(np.searchsorted(panel.ts_ns, _ts_ns(full_run.orders).min()))
    assert first > 0
    for row in (first, first // 2):
        run = run_backtest(panel, config, trade_start=int(panel.ts_ns[row]))
        for name in ("orders", "fills", "trades"):
            assert_frame_equal(getattr(run, name), getattr(full_run, name))
        assert_frame_equal(run.curve, full_run.curve[row:])


def test_trade_start_warmup_window_equals_full_history(panel, config, late_run):
    # a walk-forward window: `warmup_bars` of history before the start reproduce the run on the
    # whole history exactly (stage 1 is start-independent; the state starts fresh in both)
    lo = TRADE_START_ROW - warmup_bars(config)
    window = run_backtest(_rows(panel, lo), config, trade_start=int(panel.ts_ns[TRADE_START_ROW]))
    for name in ("orders", "fills", "trades", "curve"):
        assert_frame_equal(getattr(window, name), getattr(late_run, name))


# --------------------------------------------------------------------------------------------
# to_vectorbt
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["full", "late"])
def test_to_vectorbt_final_value_and_trades_equal_ours(full_run, late_run, which):
    pytest.importorskip("vectorbt")
    result = full_run if which == "full" else late_run
    pf = result.to_vectorbt()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        value = pf.value().to_numpy()
        final = float(pf.final_value())
        n_orders = int(pf.orders.count())
        n_closed = int(pf.positions.closed.count())
    equity = result.curve["equity_usd"].to_numpy()
    assert result.trades.height > 50
    assert final == pytest.approx(equity[-1], rel=1e-12)
    np.testing.assert_allclose(value, equity, rtol=1e-12)
    assert n_orders == result.fills.height
    # vectorbt's positions run from flat to flat, as our trades do (its `trades` split a
    # position at each partial exit, ours do not)
    assert n_closed == result.trades.height
    assert float(pf.positions.closed.pnl.sum()) == pytest.approx(
        float(result.trades["pnl_usd"].sum()), rel=1e-9
    )
    # vectorbt's own benchmark (buy and hold, cash split evenly) is our benchmark_return_pct
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark = float(pf.stats()["Benchmark Return [%]"])
    assert benchmark == pytest.approx(summary_metrics(result)["benchmark_return_pct"], rel=1e-9)


# --------------------------------------------------------------------------------------------
# summary metrics on the sample
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["full", "late"])
def test_summary_benchmark_duration_expectancy_on_sample(panel, full_run, late_run, which):
    result = full_run if which == "full" else late_run
    summary = summary_metrics(result)
    # reference: polars over the long frame, each symbol's first and last close on the bars
    start = panel.ts_ns[result.trade_start_row]
    bars = load_bars(SAMPLE).filter(pl.col("ts").dt.epoch("ns") >= start).drop_nulls("close")
    growth = (
        bars.sort("ts")
        .group_by("symbol")
        .agg((pl.col("close").last() / pl.col("close").first()).alias("g"))
    )
    expected = (growth["g"].mean() - 1.0) * 100.0
    assert summary["benchmark_return_pct"] == pytest.approx(expected, rel=1e-12)
    trades = result.trades
    held_h = (trades["exit_ts"] - trades["entry_ts"]).dt.total_seconds().mean() / 3600.0
    assert summary["avg_trade_duration_hours"] == pytest.approx(held_h, rel=1e-12)
    assert summary["avg_trade_duration_hours"] >= 1.0  # a trade lasts at least one bar
    assert summary["expectancy_usd"] == pytest.approx(trades["pnl_usd"].mean(), rel=1e-12)
    # expectancy x trades = closed PnL
    assert summary["expectancy_usd"] * trades.height == pytest.approx(
        float(trades["pnl_usd"].sum()), rel=1e-9
    )
