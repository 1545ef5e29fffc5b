"""A 1,000-combination `ma_cross` sweep over 20 symbols x 20,000 hourly bars (issue 15, item 4).

Goal: at least 50x vectorbt's time on the same grid, and within 3x of a fused prange kernel.
Three ways to do the work, in one process:

* ours: `sim.sweep.sweep(panel, config, grid)`, the function `sim sweep` runs (plan, stage 1
  once, the distinct SMAs once, every combination through the risk engine, the results table),
  with the shipped config (`config/`, every risk control on) and the grid keys
  `strategies.ma_cross.enabled=true`, `strategies.rules.enabled=false`, 40 `fast` values
  (2..80 step 2) and 25 `slow` values (90..330 step 10): every fast < slow, so all 1,000 pairs
  are valid. The panel is built as `sim sweep` builds it (`to_panel(load_bars(path),
  validate=False)`) from `sim.synth.synth_bars(seed=1)` written to Parquet; its build is timed
  apart, as is one `sim sweep` CLI process (wall time, process start included);
* vectorbt: `MA.run` on the pair-expanded window lists (as `MA.run_combs` expands one list),
  `ma_crossed_above`/`ma_crossed_below` shifted one bar, `Portfolio.from_signals` at the next
  bar's open with the same fee, `total_return` and `max_drawdown` (as
  `tests/bench/test_bench_sweep.py` asks of it). All 1,000 pairs x 20 symbols at once would
  need far more than the 20 GiB the issue allows on this shared 24 GiB machine (100 pairs
  peaked at 7.3-12 GiB of RSS, 2026-12-07): it runs `VBT_CHUNK` pairs spread over the grid
  (every tenth) and its time is scaled to 1,000 per combination (per-combination time was flat
  from 25 to 100 pairs: 0.29-0.37 s);
* fused: `fused_ma_sweep_panel_nb`, a `prange` over (pair, symbol) calling
  `fused_ma_cross_nb` (running-sum SMAs, crossover, next-open fills, fee) per symbol: the
  ceiling. It has no risk engine and no portfolio across symbols.

In a risk-on sweep our results differ from vectorbt's and the fused kernel's (caps, stops,
regime scaling, the universe filter); the comparison is of time on the same grid.

Default run (`--benchmark-disable`): each path once on 4 pairs x 3 symbols x 1,500 bars, the
fused sweep checked against a serial loop bit for bit and against vectorbt's returns.
`test_bench_sweep_1000_measure` (only with `--benchmark-enable`) times the full size (best of 3,
interleaved, after one warm-up call each), breaks our sweep into its stages, writes
`reports/bench/sweep_1000.json` and prints the ratios.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from numba import njit, prange

from signals.bars import Panel, load_bars, to_panel
from signals.config import PlatformConfig, load_config
from sim.synth import synth_bars
from tests.bench.test_bench_backtest import (
    _interleaved_best_of,
    benchmarks_enabled,
    fused_ma_cross_nb,
)
from tests.sim.conftest import PROJECT_ROOT

OUT = PROJECT_ROOT / "reports" / "bench" / "sweep_1000.json"
SIM = Path(sys.executable).with_name("sim")
FAST = list(range(2, 82, 2))  # 40 values
SLOW = list(range(90, 340, 10))  # 25 values, all above every fast: 1,000 valid pairs
FULL = (20, 20_000)  # symbols, hourly bars
SMOKE = (3, 1_500)
SMOKE_FAST, SMOKE_SLOW = [5, 10], [30, 60]
VBT_CHUNK = 100  # pairs per vectorbt call (7.3-12 GiB peak RSS at 20 x 20k)
FEE = 0.006  # the shipped taker fee, 60 bps
CASH = 10_000.0  # the shipped initial cash


# --------------------------------------------------------------------------------------------
# the three paths
# --------------------------------------------------------------------------------------------


def grid_of(fast: list[int], slow: list[int]) -> dict[str, list]:
    """Return the `sim sweep` grid: `ma_cross` alone, `fast` x `slow`."""
    return {
        "strategies.ma_cross.enabled": [True],
        "strategies.rules.enabled": [False],
        "strategies.ma_cross.fast": fast,
        "strategies.ma_cross.slow": slow,
    }


def pairs_of(fast: list[int], slow: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Return the valid (fast < slow) pairs in the sweep's order (fast outer), int64 arrays."""
    pairs = [(f, s) for f in fast for s in slow if f < s]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def write_bars(path: Path, n_symbols: int, n_bars: int) -> None:
    """Write seeded synthetic hourly bars (BTC-USD and ETH-USD, the shipped core, first)."""
    synth_bars(seed=1, n_symbols=n_symbols, n_bars=n_bars).write_parquet(path)


def load_panel(path: Path) -> Panel:
    """Return the panel as `sim sweep` builds it (`load_bars` validates, `to_panel` does not)."""
    return to_panel(load_bars(path), validate=False)


def shipped_config() -> PlatformConfig:
    """Return `config/` as `sim sweep` loads it by default."""
    return load_config(PROJECT_ROOT / "config")


def run_ours(panel: Panel, config: PlatformConfig, grid: dict[str, list]):
    """Return `sim.sweep.sweep`'s results table (the sweep `sim sweep` runs, in process)."""
    from sim.sweep import sweep  # noqa: PLC0415

    return sweep(panel, config, grid)


@njit(parallel=True, cache=True)
def fused_ma_sweep_panel_nb(open_t, close_t, fast, slow, fee, cash):
    """Return float64[C, S] final equity of `fused_ma_cross_nb` for every pair and symbol.

    `open_t`/`close_t` are `[S, T]` (one contiguous row per symbol); `prange` over the C x S
    independent (pair, symbol) runs.
    """
    n_pairs = fast.shape[0]
    n_symbols = close_t.shape[0]
    out = np.empty(n_pairs * n_symbols)
    for k in prange(n_pairs * n_symbols):
        c = k // n_symbols
        s = k % n_symbols
        out[k] = fused_ma_cross_nb(open_t[s], close_t[s], fast[c], slow[c], fee, cash)[0]
    return out.reshape(n_pairs, n_symbols)


def run_fused(panel: Panel, fast: np.ndarray, slow: np.ndarray) -> np.ndarray:
    """Return the fused sweep's final equity `[C, S]` (the transposes included)."""
    open_t = np.ascontiguousarray(panel.open.T)
    close_t = np.ascontiguousarray(panel.close.T)
    return fused_ma_sweep_panel_nb(open_t, close_t, fast, slow, FEE, CASH)


def run_vectorbt(panel: Panel, fast: np.ndarray, slow: np.ndarray) -> np.ndarray:
    """Return vectorbt's `(total_return, max_drawdown)` per (pair, symbol): float64[C * S, 2],
    row `c * S + s`."""
    import pandas as pd  # noqa: PLC0415
    import vectorbt as vbt  # noqa: PLC0415
    from numba.core.errors import NumbaPendingDeprecationWarning  # noqa: PLC0415
    from pandas.errors import PandasDeprecationWarning  # noqa: PLC0415

    close = pd.DataFrame(panel.close, columns=list(panel.symbols))
    n_pairs = fast.shape[0]
    with warnings.catch_warnings():
        # vectorbt 1.x: numba's reflected-list deprecation while its kernels compile, and
        # pandas 3's deprecations raised from inside vectorbt's own code
        warnings.simplefilter("ignore", NumbaPendingDeprecationWarning)
        warnings.simplefilter("ignore", PandasDeprecationWarning)
        fast_ma = vbt.MA.run(close, window=fast.tolist(), short_name="fast")
        slow_ma = vbt.MA.run(close, window=slow.tolist(), short_name="slow")
        # decided at a bar's close, filled at the next bar's open (as our simulator does)
        entries = fast_ma.ma_crossed_above(slow_ma).shift(1, fill_value=False)
        exits = fast_ma.ma_crossed_below(slow_ma).shift(1, fill_value=False)
        pf = vbt.Portfolio.from_signals(
            np.tile(panel.close, (1, n_pairs)), entries, exits,
            price=np.tile(panel.open, (1, n_pairs)), fees=FEE, init_cash=CASH, freq="1h",
        )  # fmt: skip
        return np.column_stack([pf.total_return().to_numpy(), pf.max_drawdown().to_numpy()])


# --------------------------------------------------------------------------------------------
# default run: small, once
# --------------------------------------------------------------------------------------------


def test_bench_sweep_1000_smoke_paths_run_and_agree(tmp_path):
    path = tmp_path / "bars.parquet"
    write_bars(path, *SMOKE)
    panel = load_panel(path)
    fast, slow = pairs_of(SMOKE_FAST, SMOKE_SLOW)
    table = run_ours(panel, shipped_config(), grid_of(SMOKE_FAST, SMOKE_SLOW))
    assert table.height == fast.shape[0] == 4
    assert np.isfinite(table["final_equity_usd"].to_numpy()).all()
    fused = run_fused(panel, fast, slow)
    # parallel equals serial, bit for bit
    columns = range(panel.close.shape[1])
    opens = [np.ascontiguousarray(panel.open[:, s]) for s in columns]
    closes = [np.ascontiguousarray(panel.close[:, s]) for s in columns]
    serial = np.array(
        [
            [fused_ma_cross_nb(opens[s], closes[s], f, w, FEE, CASH)[0] for s in columns]
            for f, w in zip(fast, slow, strict=True)
        ]
    )
    np.testing.assert_array_equal(fused, serial)
    vbt = run_vectorbt(panel, fast, slow)
    assert vbt.shape == (fast.shape[0] * panel.close.shape[1], 2)
    # the same work: vectorbt's total return is the fused kernel's, pair by pair and symbol by
    # symbol (column c * S + s); tolerance for the running-sum vs rolling-mean SMAs
    np.testing.assert_allclose(vbt[:, 0], fused.reshape(-1) / CASH - 1.0, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------------
# measurement (opt-in)
# --------------------------------------------------------------------------------------------


def _peak_rss_mib() -> float:
    # VmHWM: this process's peak resident set so far
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _stages(panel: Panel, config: PlatformConfig, grid: dict[str, list]) -> dict[str, float]:
    # `sweep`'s stages, timed one after another through sim.sweep's Python functions
    from sim.sweep import (  # noqa: PLC0415
        build_plan,
        check_plan_symbols,
        group_inputs,
        local_engine,
        results_table,
        run_plan,
        shared_indicators,
        sort_table,
    )

    out: dict[str, float] = {}
    started = time.perf_counter()
    plan = build_plan(config, grid)
    check_plan_symbols(plan, panel.symbols)
    out["build_plan"] = time.perf_counter() - started
    started = time.perf_counter()
    inputs = [group_inputs(panel, g) for g in plan.groups]
    out["stage1_group_inputs"] = time.perf_counter() - started
    started = time.perf_counter()
    g = plan.groups[0]
    shared_indicators(inputs[0], g.rules_p, g.ma_p)
    out["shared_smas_alone"] = time.perf_counter() - started
    started = time.perf_counter()
    metrics = run_plan(plan, inputs, local_engine(), progress=False)
    out["run_plan"] = time.perf_counter() - started
    started = time.perf_counter()
    sort_table(results_table(plan, metrics), "sharpe")
    out["results_table"] = time.perf_counter() - started
    out["run_plan_minus_shared_smas"] = out["run_plan"] - out["shared_smas_alone"]
    return out


def _cli_wall(path: Path) -> tuple[float, str]:
    args = [str(SIM), "sweep", "--data", str(path), "--no-mlflow", "--no-progress", "--top", "3"]
    for key, values in grid_of(FAST, SLOW).items():
        args += ["--grid", f"{key}={','.join(str(v).lower() for v in values)}"]
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603
        args, capture_output=True, text=True, timeout=1_800, check=False, cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )  # fmt: skip
    wall = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("sweep "))
    return wall, line


def test_bench_sweep_1000_measure(request, tmp_path):
    if not benchmarks_enabled(request.config):
        pytest.skip("a measurement, not a unit test: run with --benchmark-enable")
    import numba  # noqa: PLC0415

    path = tmp_path / "bars.parquet"
    write_bars(path, *FULL)
    started = time.perf_counter()
    panel = load_panel(path)
    panel_s = time.perf_counter() - started
    config = shipped_config()
    grid = grid_of(FAST, SLOW)
    fast, slow = pairs_of(FAST, SLOW)
    assert fast.shape[0] == 1_000
    step = fast.shape[0] // VBT_CHUNK
    vbt_fast, vbt_slow = fast[::step].copy(), slow[::step].copy()
    n_bars, n_symbols = panel.close.shape
    seconds = _interleaved_best_of(
        {
            "ours": lambda: run_ours(panel, config, grid),
            "vectorbt_chunk": lambda: run_vectorbt(panel, vbt_fast, vbt_slow),
            "fused": lambda: run_fused(panel, fast, slow),
        },
        repeat=3,
    )
    rss = _peak_rss_mib()
    vbt_scaled = seconds["vectorbt_chunk"] * fast.shape[0] / vbt_fast.shape[0]
    stage_runs = [_stages(panel, config, grid) for _ in range(3)]
    stages = {k: min(r[k] for r in stage_runs) for k in stage_runs[0]}
    cli_s, cli_line = _cli_wall(path)
    ratios = {
        "vectorbt_over_ours": vbt_scaled / seconds["ours"],
        "ours_over_fused": seconds["ours"] / seconds["fused"],
    }
    evals = fast.shape[0] * n_bars * n_symbols
    payload = {
        "machine": {"cpus": os.cpu_count(), "numba_threads": numba.get_num_threads()},
        "shape": {"symbols": n_symbols, "bars": n_bars, "combinations": int(fast.shape[0])},
        "grid": {"fast": "2..80 step 2 (40)", "slow": "90..330 step 10 (25)", "valid": 1_000},
        "best_of": "3, interleaved, after one warm-up call each",
        "seconds": {**seconds, "vectorbt_scaled_to_1000": vbt_scaled},
        "vectorbt_chunk_pairs": int(vbt_fast.shape[0]),
        "bar_symbol_evaluations_per_sec": {
            "ours": evals / seconds["ours"],
            "vectorbt": evals / vbt_scaled,
            "fused": evals / seconds["fused"],
        },
        "ratios": ratios,
        "ours_stages_best_of_3_s": stages,
        "panel_build_s": panel_s,
        "cli": {"wall_s": cli_s, "line": cli_line},
        "peak_rss_mib": rss,
        "goals": {"vectorbt_over_ours": ">= 50", "ours_over_fused": "<= 3"},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    print(f"\n1,000 x MA cross, {n_symbols} x {n_bars:,} bars, best of 3 interleaved (s):")
    print(f"  ours (sim.sweep.sweep)        {seconds['ours']:8.2f}")
    print(f"  vectorbt, {vbt_fast.shape[0]} pairs           {seconds['vectorbt_chunk']:8.2f}"
          f"  -> {vbt_scaled:.1f} scaled to 1,000")  # fmt: skip
    print(f"  fused prange                  {seconds['fused']:8.2f}")
    for name, value in ratios.items():
        print(f"  {name:<29} {value:8.2f}x")
    print("  our stages: " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))
    print(f"  panel build {panel_s:.2f} s; CLI wall {cli_s:.2f} s ({cli_line.strip()})")
    print(f"  peak RSS {rss:,.0f} MiB; written to {OUT.relative_to(PROJECT_ROOT)}")
