"""The path users call, end to end: `run_backtest` with the shipped (default) risk config.

Cases (issue 15): 1,000,000 hourly bars x 1 symbol and 20,000 hourly bars x 500 symbols, each
with `ma_cross` alone and with the default `rules` alone, all through
`sim.engine.run_backtest(panel, config)`: symbol checks, stage 1 (`decision_inputs`: bad ticks,
regime, universe, volatility, proposals) and the simulator with every risk control on. Beside
them, in the same process and in turn within each round:

* vectorbt on the MA-crossover work (`MA.run` + crossover + `Portfolio.from_signals` at the
  next bar's open, every symbol a column), as `tests/bench/test_bench_backtest.py` does for
  one symbol;
* the hand-fused single-purpose kernel (`fused_ma_cross_nb`) per symbol: the ceiling;
* `run_backtest` of the same strategy with the risk engine relaxed (caps at 100 %, no loss
  stops, no regime scaling, universe filters off): what the full default risk costs;
* `run_backtest`'s two parts: stage 1 alone (`decision_inputs`), and the rest on stage 1
  computed beforehand (the simulator with every risk control, and the frames), whose ratio
  to vectorbt bounds what any speed-up of stage 1 can reach;
* building the 500 x 20,000 panel from Parquet (`load_bars` + `to_panel`).

The data are `sim.synth.synth_bars` (seed 1; BTC-USD first, so the regime has its reference),
relabelled onto an hourly grid (`make_panel`).
`sim run --seed 42` end to end is `tests/bench/test_bench_cli.py`.

Default run (`--benchmark-disable`): each path once on 2,000 bars x 1 and x 5 symbols.
`test_public_path_measure` (only with `--benchmark-enable`) times the full sizes (best of 3,
interleaved, after one warm-up call each), writes `reports/bench/public_path.json` and prints the ratios.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings

import numpy as np
import pytest

from signals.bars import load_bars, to_panel
from signals.config import PlatformConfig, load_config, parse_model
from signals.pipeline import decision_inputs
from sim.engine import run_backtest
from sim.synth import synth_bars
from tests.bench.test_bench_backtest import (
    _interleaved_best_of,
    benchmarks_enabled,
    fused_ma_cross_nb,
)
from tests.sim.conftest import PROJECT_ROOT

OUT = PROJECT_ROOT / "reports" / "bench" / "public_path.json"
FULL = {"1x1M": (1, 1_000_000), "500x20k": (500, 20_000)}
SMOKE = {"1x2k": (1, 2_000), "5x2k": (5, 2_000)}
FAST, SLOW = 10, 50  # the shipped `ma_cross` parameters
FEE = 0.006  # the shipped taker fee


def config_of(strategy: str, *, risk: bool = True) -> PlatformConfig:
    """Return the shipped config with only `strategy` enabled; `risk=False` relaxes the risk
    engine (caps 100 %, no loss stops or drawdown breaker, regime multipliers 1, no universe
    filters) so that only the strategy and the fills remain."""
    data = load_config(PROJECT_ROOT / "config").model_dump(mode="json")
    for name, entry in data["strategies"]["strategies"].items():
        entry["enabled"] = name == strategy
    if not risk:
        r = data["policy"]["risk"]
        r.update(
            max_total_at_risk_pct=100, max_theme_at_risk_pct=100, max_asset_at_risk_pct=100,
            max_open_positions=10_000, daily_loss_stop_pct=100, weekly_loss_stop_pct=100,
            max_drawdown_pct=100, regime_multipliers={"bull": 1, "chop": 1, "bear": 1, "crash": 1},
            auto_trim=False,
        )  # fmt: skip
        u = data["universe"]
        u.update(max_universe_size=100_000, min_quote_volume_usd=0)
    data["universe"]["core"] = []  # synthetic panels hold only BTC-USD and ETH-USD of the core
    return parse_model(PlatformConfig, data, "bench")


HOUR_NS = 3_600 * 1_000_000_000


def make_panel(n_symbols: int, n_bars: int):
    """Return a seeded synthetic panel (BTC-USD first) on an hourly grid from 2024-01-01.

    `synth_bars` draws one-minute bars (a million hourly bars would run past today, which
    `to_panel` refuses as it should); the grid is then relabelled hourly, so the kernels see
    hourly bars with smaller moves.
    """
    panel = to_panel(synth_bars(seed=1, n_symbols=n_symbols, n_bars=n_bars, bar_minutes=1,
                                start="2024-01-01T00:00:00+00:00"))  # fmt: skip
    hourly = 1_704_067_200 * 1_000_000_000 + HOUR_NS * np.arange(n_bars, dtype=np.int64)
    return dataclasses.replace(panel, ts_ns=hourly)


def run_vectorbt(panel) -> float:
    """MA crossover in vectorbt over every symbol (a column each); return the mean final value."""
    import pandas as pd  # noqa: PLC0415
    import vectorbt as vbt  # noqa: PLC0415
    from numba.core.errors import NumbaPendingDeprecationWarning  # noqa: PLC0415
    from pandas.errors import PandasDeprecationWarning  # noqa: PLC0415

    close = pd.DataFrame(panel.close)
    open_ = pd.DataFrame(panel.open)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaPendingDeprecationWarning)
        warnings.simplefilter("ignore", PandasDeprecationWarning)
        fast = vbt.MA.run(close, FAST).ma
        slow = vbt.MA.run(close, SLOW).ma
        fast.columns = slow.columns = close.columns
        entries = (fast > slow) & (fast.shift(1) <= slow.shift(1))
        exits = (fast < slow) & (fast.shift(1) >= slow.shift(1))
        pf = vbt.Portfolio.from_signals(
            close, entries.shift(1, fill_value=False), exits.shift(1, fill_value=False),
            price=open_, fees=FEE, init_cash=10_000.0, freq="1h",
        )  # fmt: skip
        return float(np.nanmean(pf.final_value().to_numpy()))


def run_fused(panel) -> float:
    """The fused single-purpose kernel per symbol; return the mean final equity."""
    out = [
        fused_ma_cross_nb(
            np.ascontiguousarray(panel.open[:, s]), np.ascontiguousarray(panel.close[:, s]),
            FAST, SLOW, FEE, 10_000.0,
        )[0]
        for s in range(panel.close.shape[1])
    ]  # fmt: skip
    return float(np.nanmean(out))


def run_ours(panel, config, inputs=None) -> float:
    """`run_backtest` as a user calls it (with `inputs`: on stage 1 computed beforehand, as
    `sim run` passes it); return the final equity."""
    return float(run_backtest(panel, config, inputs).curve["equity_usd"][-1])


@pytest.mark.parametrize("case", sorted(SMOKE))
@pytest.mark.parametrize("strategy", ["ma_cross", "rules"])
def test_public_path_runs(case, strategy):
    panel = make_panel(*SMOKE[case])
    for risk in (True, False):
        config = config_of(strategy, risk=risk)
        final = run_ours(panel, config)
        assert np.isfinite(final)
        assert run_ours(panel, config, decision_inputs(panel, config)) == final
    if strategy == "ma_cross":
        assert np.isfinite(run_fused(panel))


def test_public_path_measure(request, tmp_path):
    if not benchmarks_enabled(request.config):
        pytest.skip("a measurement, not a unit test: run with --benchmark-enable")
    results: dict[str, dict] = {}
    for case, (n_symbols, n_bars) in FULL.items():
        panel = make_panel(n_symbols, n_bars)
        for strategy in ("ma_cross", "rules"):
            full, free = config_of(strategy), config_of(strategy, risk=False)
            stage1 = decision_inputs(panel, full)
            fns = {
                "run_backtest": lambda p=panel, c=full: run_ours(p, c),
                "run_backtest_risk_free": lambda p=panel, c=free: run_ours(p, c),
                # the two parts of `run_backtest`: stage 1 alone, and the rest (the simulator
                # with every risk control, and the frames) on stage 1 computed beforehand
                "stage1_decision_inputs": lambda p=panel, c=full: decision_inputs(p, c),
                "run_backtest_given_stage1": lambda p=panel, c=full, i=stage1: run_ours(p, c, i),
            }
            if strategy == "ma_cross":
                fns["vectorbt"] = lambda p=panel: run_vectorbt(p)
                fns["fused"] = lambda p=panel: run_fused(p)
            seconds = _interleaved_best_of(fns, repeat=3)
            ratios = {
                "risk_over_risk_free": seconds["run_backtest"] / seconds["run_backtest_risk_free"]
            }
            if strategy == "ma_cross":
                ratios["vectorbt_over_ours"] = seconds["vectorbt"] / seconds["run_backtest"]
                ratios["ours_over_fused"] = seconds["run_backtest"] / seconds["fused"]
                # the ceiling of the ratio with stage 1 free: the simulator and frames alone
                ratios["vectorbt_over_given_stage1"] = (
                    seconds["vectorbt"] / seconds["run_backtest_given_stage1"]
                )
            results[f"{case}|{strategy}"] = {"seconds": seconds, "ratios": ratios}
            print(f"\n{case} {strategy}: " + ", ".join(f"{k} {v:.3f} s" for k, v in seconds.items())
                  + "; " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))  # fmt: skip
    # building the 500 x 20k panel from Parquet
    path = tmp_path / "panel.parquet"
    synth_bars(seed=1, n_symbols=500, n_bars=20_000).write_parquet(path)
    started = time.perf_counter()
    to_panel(load_bars(path), validate=False)  # as `sim run` and `sim sweep` build it
    build = time.perf_counter() - started
    print(f"\n500x20k panel from Parquet: {build:.2f} s")
    payload = {
        "cases": results,
        "panel_500x20k_from_parquet_s": build,
        "best_of": 3,
        "goals": {
            "vectorbt_over_ours (ma_cross, both sizes)": ">= 10",
            "risk_over_risk_free": "<= 3",
            "panel_500x20k_from_parquet_s": "< 2",
        },
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


MEMORY_SCRIPT = """
import ctypes, gc, json, sys
from tests.bench.test_bench_public_path import config_of, make_panel
from sim.engine import run_backtest

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

n_symbols, n_bars, strategy = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
config = config_of(strategy)
run_backtest(make_panel(min(n_symbols, 5), 2_000), config)  # load the kernels first
panel = make_panel(n_symbols, n_bars)
gc.collect()
ctypes.CDLL("libc.so.6").malloc_trim(0)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM to the current resident size
base = status("VmRSS:")
run_backtest(panel, config)
print(json.dumps({"base": base, "peak": status("VmHWM:")}))
"""


def test_public_path_peak_memory(request):
    """Peak resident memory of `run_backtest` above the panel it runs on, per bar x symbol,
    each case in a fresh process (`VmHWM` after a reset; the panel's 40 B per cell are in
    the base). Writes `reports/bench/public_path_memory.json`."""
    if not benchmarks_enabled(request.config):
        pytest.skip("a measurement, not a unit test: run with --benchmark-enable")
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    cases = [(250, 20_000), (500, 20_000), (1, 1_000_000)]
    results = {}
    for n_symbols, n_bars in cases:
        for strategy in ("ma_cross", "rules"):
            done = subprocess.run(
                [sys.executable, "-c", MEMORY_SCRIPT, str(n_symbols), str(n_bars), strategy],
                capture_output=True, text=True, check=True, cwd=PROJECT_ROOT,
            )  # fmt: skip
            got = json.loads(done.stdout.strip().splitlines()[-1])
            per_cell = (got["peak"] - got["base"]) / (n_symbols * n_bars)
            results[f"{n_symbols}x{n_bars}|{strategy}"] = {**got, "bytes_per_cell": per_cell}
            print(f"\n{n_symbols}x{n_bars} {strategy}: {per_cell:.0f} B per bar x symbol")
    out = OUT.with_name("public_path_memory.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    assert all(r["bytes_per_cell"] < 200 for r in results.values())
