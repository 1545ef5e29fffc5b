"""Cost of the risk layer per bar: `simulate` with the full default risk config vs risk-free.

Same strategy (`rules`, the shipped config) on the shipped `data/sample_hourly.parquet`
(8 symbols x 8,760 hourly bars). Stage 1 (`decision_inputs`) is computed once per config outside
the timing; only `simulate` (fills + the `step` kernel on every bar) is timed. The risk-free
config sets every cap to 100 %, turns breakers, cooldowns, stops, trim and regime scaling off
and opens the universe (no volume/spread/size/ban/staleness blocks). Goal: full < 2x risk-free.

With `--benchmark-disable` (the default run) each body runs once on the first 500 bars.
`test_risk_cost_ratio` (only with `--benchmark-enable`) times both (best of 5 after warm-up)
and writes `reports/bench/risk_cost.json`.
"""

import json
import time

import pytest

from signals.bars import load_bars, to_panel
from signals.config import PlatformConfig, RiskConfig, UniverseConfig, load_config
from signals.decision.params import product_status_codes, step_params, step_static
from signals.pipeline import decision_inputs
from sim.engine import fill_params, guards_of, market_of, proposals_of
from sim.nb import new_curves, simulate
from tests.bench.test_bench_backtest import benchmarks_enabled
from tests.sim.conftest import PROJECT_ROOT

OUT = PROJECT_ROOT / "reports" / "bench" / "risk_cost.json"
N_SMOKE = 500


def risk_free(config: PlatformConfig) -> PlatformConfig:
    """Return `config` with every risk control and universe block switched off."""
    risk = RiskConfig(
        max_total_at_risk_pct=100, max_theme_at_risk_pct=100, max_asset_at_risk_pct=100,
        max_open_positions=10_000, stop_loss_pct=0, cooldown_after_fill_bars=0,
        cooldown_after_stop_bars=0, daily_loss_stop_pct=100, weekly_loss_stop_pct=100,
        max_drawdown_pct=100, max_data_staleness_bars=10_000, auto_trim=False,
        regime_multipliers={"bull": 1.0, "chop": 1.0, "bear": 1.0, "crash": 1.0},
    )  # fmt: skip
    universe = config.universe.model_dump()
    universe.update(
        max_universe_size=10_000, min_quote_volume_usd=0.0, max_spread_bps=1000.0,
        red_flag_move_pct=100.0, temporary_ban_hours=0, excluded=[],
    )  # fmt: skip
    policy = config.policy.model_copy(update={"risk": risk})
    return config.model_copy(update={"policy": policy, "universe": UniverseConfig(**universe)})


def prepare(config: PlatformConfig, n_bars: int | None) -> tuple:
    """Return the `simulate` arguments for `config` on the sample data."""
    panel = to_panel(load_bars(PROJECT_ROOT / "data" / "sample_hourly.parquet"))
    if n_bars is not None:
        panel = type(panel)(
            panel.ts_ns[:n_bars], panel.symbols, *(a[:n_bars].copy() for a in
            (panel.open, panel.high, panel.low, panel.close, panel.volume)),
        )  # fmt: skip
    inputs = decision_inputs(panel, config)
    return (
        market_of(panel, inputs), proposals_of(inputs),
        guards_of(inputs, product_status_codes(config, panel.symbols)), step_params(config),
        step_static(config, panel.symbols, inputs.strategy_names), fill_params(config),
        float(config.backtest.initial_cash_usd), int(config.backtest.seed),
        new_curves(panel.close.shape[0]),
    )  # fmt: skip


@pytest.fixture(name="cases", scope="module")
def _cases(request):
    n = None if benchmarks_enabled(request.config) else N_SMOKE
    full = load_config(PROJECT_ROOT / "config")
    return {"full": prepare(full, n), "risk_free": prepare(risk_free(full), n)}


@pytest.mark.benchmark(group="risk|8x8760")
def test_bench_simulate_full_risk(benchmark, cases):
    benchmark(simulate, *cases["full"])


@pytest.mark.benchmark(group="risk|8x8760")
def test_bench_simulate_risk_free(benchmark, cases):
    benchmark(simulate, *cases["risk_free"])


def _best(args, repeats=5) -> float:
    simulate(*args)  # warm-up (JIT)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        simulate(*args)
        best = min(best, time.perf_counter() - start)
    return best


def test_risk_cost_ratio_full_below_two_times_risk_free(request, cases):
    if not benchmarks_enabled(request.config):
        pytest.skip("measurement runs only with --benchmark-enable")
    full, free = _best(cases["full"]), _best(cases["risk_free"])
    n_bars = int(cases["full"][0].shape[0])
    n_orders = {k: int(simulate(*v)[0].shape[0]) for k, v in cases.items()}
    result = {
        "data": "data/sample_hourly.parquet", "strategy": "rules", "bars": n_bars,
        "symbols": int(cases["full"][5].shape[1]), "full_risk_s": full, "risk_free_s": free,
        "ratio": full / free, "full_us_per_bar": 1e6 * full / n_bars,
        "risk_free_us_per_bar": 1e6 * free / n_bars, "orders": n_orders, "goal": "< 2.0",
    }  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    assert full / free < 2.0
