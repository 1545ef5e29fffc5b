"""Parameter sweeps: grid parsing, plan validation, kernel == run_backtest, walk-forward, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from signals.bars import Panel, load_bars, to_panel
from signals.config import PlatformConfig, load_config
from signals.errors import ConfigError
from sim.engine import run_backtest
from sim.metrics import summary_metrics
from sim.sweep import (
    build_plan,
    group_inputs,
    local_engine,
    parse_grid,
    parse_walk_forward,
    run_chunk,
    run_one,
    run_plan,
    sweep,
    walk_forward,
    walk_forward_windows,
)
from sim.sweep_nb import METRIC_NAMES, summary_nb

ROOT = Path(__file__).resolve().parents[2]
N_BARS = 3000


@pytest.fixture(name="panel", scope="module")
def fixture_panel() -> Panel:
    frame = load_bars(ROOT / "data" / "sample_hourly.parquet")
    ts = frame["ts"].unique().sort()[:N_BARS]
    return to_panel(frame.filter(pl.col("ts").is_in(ts.implode())))


@pytest.fixture(name="config", scope="module")
def fixture_config() -> PlatformConfig:
    return load_config(ROOT / "config")


def _with_params(config: PlatformConfig, name: str, updates: dict, enable: bool = True):
    entries = dict(config.strategies.strategies)
    entry = entries[name]
    entries[name] = entry.model_copy(
        update={"params": {**entry.params, **updates}, "enabled": enable or entry.enabled}
    )
    return config.model_copy(
        update={"strategies": config.strategies.model_copy(update={"strategies": entries})}
    )


def _summary_of_backtest(panel: Panel, config: PlatformConfig) -> np.ndarray:
    result = run_backtest(panel, config)
    fills = result.fills
    return summary_nb(
        result.curve["equity_usd"].to_numpy(),
        result.curve["exposure_frac"].to_numpy(),
        result.trades["pnl_usd"].to_numpy(),
        (fills["qty"] * fills["price"]).to_numpy(),
        fills["fee_usd"].to_numpy(),
        result.orders.height,
        result.initial_cash_usd,
        365 * 86_400e9 / result.inputs.bar_ns,
    )


# --------------------------------------------------------------------------------------------
# grid parsing
# --------------------------------------------------------------------------------------------


def test_parse_grid_list_and_int_range_expands_inclusive() -> None:
    grid = parse_grid(["a.b=1,2", "c=10:50:10", "d=true,false", "e=market"])
    assert grid == {"a.b": [1, 2], "c": [10, 20, 30, 40, 50], "d": [True, False], "e": ["market"]}


def test_parse_grid_float_range_has_no_drift() -> None:
    assert parse_grid(["x=0.1:0.5:0.1"])["x"] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert parse_grid(["x=1:2:0.4, 1"])["x"] == [1.0, 1.4, 1.8, 1]


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("novalue", "KEY=V1"),
        ("k=", "at least one value"),
        ("k=1:2", "start:stop:step"),
        ("k=5:1:1", "stop >= start"),
        ("k=1:a:1", "numbers"),
    ],
)
def test_parse_grid_bad_spec_raises_config_error(spec: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_grid([spec])


def test_parse_grid_repeated_key_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="once"):
        parse_grid(["k=1", "k=2"])


# --------------------------------------------------------------------------------------------
# plan validation
# --------------------------------------------------------------------------------------------


def test_build_plan_unknown_key_suggests_closest(config: PlatformConfig) -> None:
    with pytest.raises(ConfigError, match="did you mean `strategies.rules.exit_lookback`"):
        build_plan(config, {"strategies.rules.exit_lookbak": [1]})
    with pytest.raises(ConfigError, match="did you mean `policy.risk.stop_loss_pct`"):
        build_plan(config, {"policy.risk.stop_los_pct": [1]})


def test_build_plan_bad_value_names_key_and_value(config: PlatformConfig) -> None:
    with pytest.raises(ConfigError, match=r"strategies.rules.breakout_lookback` value -3"):
        build_plan(config, {"strategies.rules.breakout_lookback": [10, -3]})
    with pytest.raises(ConfigError, match="policy.risk.max_open_positions"):
        build_plan(config, {"policy.risk.max_open_positions": [0]})


def test_build_plan_fast_not_below_slow_drops_combinations(config: PlatformConfig) -> None:
    grid = {
        "strategies.ma_cross.enabled": [True],
        "strategies.ma_cross.fast": [10, 30],
        "strategies.ma_cross.slow": [20, 40],
    }
    plan = build_plan(config, grid)
    assert plan.n_combos == 3
    assert len(plan.dropped) == 1
    assert "fast" in plan.dropped[0]


def test_build_plan_disabled_strategy_raises_with_hint(config: PlatformConfig) -> None:
    with pytest.raises(ConfigError, match="strategies.ma_cross.enabled=true"):
        build_plan(config, {"strategies.ma_cross.fast": [5]})


def test_build_plan_group_keys_make_groups(config: PlatformConfig) -> None:
    grid = {"policy.risk.max_open_positions": [3, 5], "strategies.rules.exit_lookback": [12, 24]}
    plan = build_plan(config, grid)
    assert len(plan.groups) == 2
    assert plan.n_combos == 4
    assert plan.groups[0].config.policy.risk.max_open_positions == 3


# --------------------------------------------------------------------------------------------
# the kernel against the backtest
# --------------------------------------------------------------------------------------------


def test_sweep_prange_matches_serial_run_backtest_bit_for_bit(
    panel: Panel, config: PlatformConfig
) -> None:
    grid = {
        "strategies.rules.breakout_lookback": [24, 48],
        "strategies.rules.take_profit_pct": [0.0, 15.0],
        "strategies.rules.mean_reversion": [False, True],
    }
    plan = build_plan(config, grid)
    group = plan.groups[0]
    inputs = group_inputs(panel, group)
    swept = run_chunk(inputs, group.rules_p, group.ma_p)
    for i in (0, 3, 5, 6):
        combo = group.combos[i]
        updates = {k.rsplit(".", 1)[1]: v for k, v in combo.items()}
        cfg = _with_params(config, "rules", updates)
        expected = _summary_of_backtest(panel, cfg)
        np.testing.assert_array_equal(swept[i], expected)
        reference = summary_metrics(run_backtest(panel, cfg))
        for j, name in enumerate(METRIC_NAMES):
            assert swept[i, j] == pytest.approx(reference[name], rel=1e-9, abs=1e-12), name


def test_sweep_two_strategies_and_group_key_match_run_backtest(
    panel: Panel, config: PlatformConfig
) -> None:
    grid = {
        "strategies.ma_cross.enabled": [True],
        "policy.risk.max_open_positions": [2],
        "strategies.ma_cross.fast": [12],
        "strategies.rules.exit_lookback": [12, 36],
    }
    plan = build_plan(config, grid)
    group = plan.groups[0]
    swept = run_chunk(group_inputs(panel, group), group.rules_p, group.ma_p)
    for i, exit_lookback in enumerate((12, 36)):
        cfg = _with_params(group.config, "ma_cross", {"fast": 12})
        cfg = _with_params(cfg, "rules", {"exit_lookback": exit_lookback})
        np.testing.assert_array_equal(swept[i], _summary_of_backtest(panel, cfg))


def test_sweep_parallel_equals_serial_loop_bit_for_bit(
    panel: Panel, config: PlatformConfig
) -> None:
    plan = build_plan(config, {"strategies.rules.momentum_lookback": [6, 12, 24, 36, 48]})
    group = plan.groups[0]
    inputs = group_inputs(panel, group)
    parallel = run_chunk(inputs, group.rules_p, group.ma_p)
    serial = np.array(
        [run_one(inputs, group.rules_p[i], group.ma_p[i])[0] for i in range(plan.n_combos)]
    )
    np.testing.assert_array_equal(parallel, serial)
    assert np.unique(parallel[:, 0]).size > 1  # the parameter changes the trades


def test_shared_smas_cross_equals_ma_cross_nb_bit_for_bit(panel: Panel) -> None:
    from signals.triggers.nb import ma_cross_from_sma_nb, ma_cross_nb  # noqa: PLC0415
    from sim.sweep_nb import shared_smas_nb  # noqa: PLC0415

    close = panel.close.copy()
    close[100:110, 0] = np.nan  # the NaN rule goes through the shared path too
    pairs = [(5, 20), (10, 20), (5, 50), (20, 50), (10, 200), (5, 20)]
    ma_p = np.array([[f, s, 10.0, 0.0] for f, s in pairs])
    sma, fast_idx, slow_idx = shared_smas_nb(close, ma_p, 123_457)
    assert sma.shape == (5, *close.shape)  # distinct windows 5, 10, 20, 50, 200
    for c, (f, s) in enumerate(pairs):
        shared = ma_cross_from_sma_nb(sma[fast_idx[c]], sma[slow_idx[c]])
        expected = ma_cross_nb(close, f, s, 123_457)
        assert shared.dtype == expected.dtype
        np.testing.assert_array_equal(shared, expected)
        assert np.abs(expected).sum() > 0


@settings(max_examples=60, deadline=None)
@given(
    sma=hnp.arrays(np.float64, st.tuples(st.integers(0, 60), st.integers(1, 3)),
                   elements=st.sampled_from((np.nan, 1.0, 2.0, 2.5, 3.0))),
    shift=st.sampled_from((0, 1, 3)),
    target_pct=st.sampled_from((10.0, 0.0, -5.0, 100.0)),
    stop_pct=st.sampled_from((0.0, 4.0)),
    trade_start=st.integers(0, 10),
)  # fmt: skip
def test_ma_weight_of_sma_equals_cross_weights_of_the_cross_in_combined_form(
    sma, shift, target_pct, stop_pct, trade_start
) -> None:
    # the sweep's one-pass MA weights == MaCross.propose's cross then weights, then the
    # combined form run_weights_nb needs (negative weights and rows before trade_start: NaN)
    from sim.sweep_nb import ma_weight_of_sma_nb  # noqa: PLC0415
    from tests.reference.strategies import cross_weights_ref  # noqa: PLC0415

    fast = sma
    slow = np.roll(sma, shift, axis=0) if shift else sma[::-1].copy()
    f_prev, s_prev, f_now, s_now = fast[:-1], slow[:-1], fast[1:], slow[1:]
    finite = np.isfinite(f_prev) & np.isfinite(s_prev) & np.isfinite(f_now) & np.isfinite(s_now)
    cross = np.zeros(fast.shape, dtype=np.int8)
    cross[1:][finite & (f_now > s_now) & (f_prev <= s_prev)] = 1
    cross[1:][finite & (f_now < s_now) & (f_prev >= s_prev)] = -1
    expected = cross_weights_ref(cross, target_pct / 100.0)
    expected[expected < 0.0] = np.nan
    expected[:trade_start] = np.nan
    p = np.array([5.0, 20.0, target_pct, stop_pct])
    out, stop, take = ma_weight_of_sma_nb(
        np.ascontiguousarray(fast), np.ascontiguousarray(slow), p, trade_start,
        np.full(fast.shape, 7.0),
    )  # fmt: skip
    np.testing.assert_array_equal(out, expected)
    assert (stop == stop_pct / 100.0) if stop_pct > 0 else np.isnan(stop)
    assert take == 0.0


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 400),
    flat_share=st.sampled_from((0.0, 0.5, 0.95, 1.0)),
)
def test_summary_nb_equals_numpy_formulas_on_curves_with_flat_stretches(seed, n, flat_share):
    # summary_nb's one-pass returns, variance and drawdown (skipping bars whose equity did not
    # move) against the same quantities in numpy (two-pass std, pairwise sums)
    rng = np.random.default_rng(seed)
    initial, bars_per_year = 10_000.0, 8760.0
    steps = np.where(rng.random(n) < flat_share, 0.0, rng.standard_t(3, n) * 0.01)
    equity = initial * np.exp(np.cumsum(steps))
    exposure = np.where(steps != 0.0, 0.5, 0.0)
    got = summary_nb(equity, exposure, np.empty(0), np.empty(0), np.empty(0), 0, initial,
                     bars_per_year)  # fmt: skip
    curve = np.concatenate(([initial], equity))
    returns = np.diff(curve) / curve[:-1]
    mean = returns.mean() if n else 0.0
    std = returns.std(ddof=1) if n > 1 else 0.0
    down = returns[returns < 0.0]
    down_std = np.sqrt(np.mean(down**2)) if down.size else 0.0
    drawdown = 1.0 - curve / np.maximum.accumulate(curve)
    expected = {
        "total_pnl_pct": ((equity[-1] if n else initial) / initial - 1.0) * 100.0,
        "max_drawdown_pct": drawdown.max() * 100.0,
        "sharpe": mean / std * np.sqrt(bars_per_year) if std > 0.0 else 0.0,
        "sortino": mean / down_std * np.sqrt(bars_per_year) if down_std > 0.0 else 0.0,
        "exposure_time_pct": (exposure > 0.0).mean() * 100.0 if n else 0.0,
        "final_equity_usd": equity[-1] if n else initial,
    }
    for name, value in expected.items():
        assert got[METRIC_NAMES.index(name)] == pytest.approx(value, rel=1e-9, abs=1e-9), name


def _random_walk_panel(n_bars: int, seed: int = 7) -> Panel:
    # one liquid symbol, a seeded hourly random walk (as tests/bench/test_bench_sweep.py)
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.006, n_bars)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    spread = np.abs(rng.normal(0.0, 0.002, n_bars)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    ts = 1_704_067_200 * 10**9 + np.arange(n_bars, dtype=np.int64) * 3_600 * 10**9
    col = lambda a: np.ascontiguousarray(a.reshape(-1, 1))  # noqa: E731
    return Panel(ts, ("BTC-USD",), col(open_), col(high), col(low), col(close),
                 col(np.full(n_bars, 50.0)))  # fmt: skip


def test_sweep_shared_ma_windows_equal_per_combination_bit_for_bit(config: PlatformConfig) -> None:
    grid = {
        "strategies.ma_cross.enabled": [True],
        "strategies.rules.enabled": [False],
        "strategies.ma_cross.fast": [5, 10, 20],
        "strategies.ma_cross.slow": [20, 50],
    }
    plan = build_plan(config, grid)
    group = plan.groups[0]
    inputs = group_inputs(_random_walk_panel(10_000), group)  # past the regime warm-up
    parallel = run_chunk(inputs, group.rules_p, group.ma_p)
    serial = np.array(
        [run_one(inputs, group.rules_p[i], group.ma_p[i])[0] for i in range(plan.n_combos)]
    )
    np.testing.assert_array_equal(parallel, serial)
    # chunks of 2 reading the group's buffers (computed once by run_plan), and a window
    chunked = run_plan(plan, [inputs], local_engine(), chunk=2, progress=False)
    np.testing.assert_array_equal(chunked, serial)
    windowed = run_plan(plan, [inputs], local_engine(), lo=4000, hi=9000, chunk=4, progress=False)
    np.testing.assert_array_equal(
        windowed,
        [run_one(inputs, group.rules_p[i], group.ma_p[i], 4000, 9000)[0] for i in range(5)],
    )
    assert np.unique(parallel[:, 0]).size > 1


def test_sweep_shared_rules_masks_equal_per_combination_bit_for_bit(
    panel: Panel, config: PlatformConfig
) -> None:
    grid = {
        "strategies.rules.mean_reversion": [False, True],
        "strategies.rules.mean_reversion_lookback": [24, 48],
        "strategies.rules.volume_lookback": [12, 24],
        "strategies.rules.exit_lookback": [12, 36],
    }
    plan = build_plan(config, grid)
    group = plan.groups[0]
    inputs = group_inputs(panel, group)
    parallel = run_chunk(inputs, group.rules_p, group.ma_p)
    serial = np.array(
        [run_one(inputs, group.rules_p[i], group.ma_p[i])[0] for i in range(plan.n_combos)]
    )
    np.testing.assert_array_equal(parallel, serial)
    assert np.unique(parallel[:, 2]).size > 1
    chunked = run_plan(plan, [inputs], local_engine(), chunk=3, progress=False)
    np.testing.assert_array_equal(chunked, serial)


def test_sweep_table_sorted_by_metric_best_first(panel: Panel, config: PlatformConfig) -> None:
    grid = {"strategies.rules.stop_loss_pct": [3.0, 6.0, 9.0]}
    table = sweep(panel, config, grid, metric="max_drawdown_pct", chunk=1)
    assert table["max_drawdown_pct"].is_sorted()
    table = sweep(panel, config, grid, metric="total_pnl_pct")
    assert table["total_pnl_pct"].is_sorted(descending=True)
    assert sorted(table["combo"].to_list()) == [0, 1, 2]


def test_run_plan_progress_bar_does_not_crash(
    panel: Panel, config: PlatformConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = build_plan(config, {"strategies.rules.volume_spike_ratio": [1.5, 2.0, 3.0]})
    inputs = [group_inputs(panel, g) for g in plan.groups]
    with_bar = run_plan(plan, inputs, local_engine(), chunk=1, progress=True)
    without = run_plan(plan, inputs, local_engine(), progress=False)
    np.testing.assert_array_equal(with_bar, without)
    assert "combo" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# walk-forward
# --------------------------------------------------------------------------------------------


def test_walk_forward_windows_roll_by_test_length() -> None:
    windows = walk_forward_windows(100, 40, 20)
    assert [tuple(w) for w in windows] == [(0, 40, 60), (20, 60, 80), (40, 80, 100)]
    assert parse_walk_forward("3d:1d", 3_600 * 10**9) == (72, 24)
    with pytest.raises(ConfigError):
        parse_walk_forward("10", 3_600 * 10**9)


def test_walk_forward_picks_train_best_and_stitches_test_curves(
    panel: Panel, config: PlatformConfig
) -> None:
    grid = {"strategies.rules.breakout_lookback": [24, 72], "strategies.rules.stop_loss_pct": [3.0]}
    result = walk_forward(panel, config, grid, 1000, 500, metric="total_pnl_pct")
    windows = walk_forward_windows(panel.close.shape[0], 1000, 500)
    assert result.windows.height == len(windows)
    assert result.curve.shape[0] == 500 * len(windows)
    growth = 1.0
    for row in result.windows.iter_rows(named=True):
        assert row["best_combo"] in (0, 1)
        growth *= 1.0 + row["test_total_pnl_pct"] / 100.0
    # chained test windows: the stitched return is the product of the windows' returns
    assert result.stitched["total_pnl_pct"] == pytest.approx((growth - 1.0) * 100.0, rel=1e-9)
    assert result.stitched["total_trades"] == result.windows["test_total_trades"].sum()
    assert result.curve[-1] == pytest.approx(10_000.0 * growth, rel=1e-9)


def test_walk_forward_train_choice_matches_separate_sweep(
    panel: Panel, config: PlatformConfig
) -> None:
    from sim.sweep import max_warmup  # noqa: PLC0415

    grid = {"strategies.rules.breakout_lookback": [24, 72]}
    result = walk_forward(panel, config, grid, 1200, 600, metric="sharpe")
    plan = build_plan(config, grid)
    group = plan.groups[0]
    inputs = group_inputs(panel, group)
    warm = max_warmup(plan)
    w = walk_forward_windows(N_BARS, 1200, 600)[1]
    lo = max(0, w.train_start - warm)
    train = run_chunk(inputs, group.rules_p, group.ma_p, lo, w.train_end, w.train_start - lo)
    best = int(np.argmax(train[:, METRIC_NAMES.index("sharpe")]))
    row = result.windows.row(1, named=True)
    assert row["best_combo"] == best
    t_lo = w.train_end - warm
    metrics, curve = run_one(
        inputs, group.rules_p[best], group.ma_p[best], t_lo, w.test_end, w.train_end - t_lo
    )
    assert row["test_sharpe"] == metrics[METRIC_NAMES.index("sharpe")]
    assert curve.shape[0] == w.test_end - w.train_end


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def test_cli_sweep_writes_sorted_table_and_returns_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sim.cli import main  # noqa: PLC0415

    out = tmp_path / "sweep.csv"
    code = main(
        [
            "sweep", "--grid", "strategies.rules.exit_lookback=12:36:12", "--metric",
            "total_pnl_pct", "--top", "2", "--out", str(out), "--end", "2024-04-01T00:00:00Z",
            "--no-mlflow",
        ]
    )  # fmt: skip
    assert code == 0
    table = pl.read_csv(out)
    assert table.height == 3
    assert table["total_pnl_pct"].is_sorted(descending=True)
    assert "top 2 by total_pnl_pct" in capsys.readouterr().out


def test_cli_sweep_walk_forward_prints_stitched(capsys: pytest.CaptureFixture[str]) -> None:
    from sim.cli import main  # noqa: PLC0415

    code = main(
        [
            "sweep", "--grid", "strategies.rules.stop_loss_pct=3,6", "--walk-forward",
            "60d:30d", "--no-progress", "--no-mlflow",
        ]
    )  # fmt: skip
    assert code == 0
    assert "out-of-sample (stitched)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--grid", "strategies.rules.exit_lookbak=3"], "did you mean"),
        (["--grid", "strategies.rules.exit_lookback=0"], "exit_lookback` value 0"),
        (["--grid", "strategies.rules.exit_lookback=3", "--metric", "sharp"], "`sharpe`"),
        (["--grid", "strategies.rules.exit_lookback=3", "--out", "x.txt"], ".parquet or .csv"),
    ],
)
def test_cli_sweep_bad_input_exits_two(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from sim.cli import main  # noqa: PLC0415

    argv = [a.replace("x.txt", str(tmp_path / "x.txt")) for a in argv]
    code = main(["sweep", *argv, "--end", "2024-03-01T00:00:00Z", "--no-mlflow", "--no-progress"])
    assert code == 2
    assert fragment in capsys.readouterr().err
