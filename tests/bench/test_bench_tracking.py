"""Benchmark of one `sim.tracking.log_run` into an existing sqlite store.

Run: `pytest tests/bench/test_bench_tracking.py --benchmark-enable`. The fixture migrates a fresh
DB and logs one run first, so the measured rounds exclude the schema migrations and the one-off
imports (mlflow, SQLAlchemy store, matplotlib) that the first run of a process pays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from signals.config import PlatformConfig
from sim import tracking

N_BARS = 8760  # one year of hourly bars


@dataclass(frozen=True)
class _Result:
    curve: pl.DataFrame


def _payload() -> tuple[dict[str, Any], _Result, PlatformConfig]:
    config = PlatformConfig()
    rng = np.random.default_rng(42)
    equity = 10_000.0 * np.cumprod(1.0 + rng.normal(0.0, 0.002, N_BARS))
    start = pl.datetime(2024, 1, 1, time_zone="UTC")
    ts = pl.datetime_range(start, start + pl.duration(hours=N_BARS - 1), "1h", eager=True)
    curve = pl.DataFrame(
        {
            "ts": ts.cast(pl.Datetime("ns", "UTC")),
            "equity_usd": equity,
            "cash_usd": equity * 0.5,
            "exposure_frac": np.full(N_BARS, 0.5),
            "regime": np.zeros(N_BARS, dtype=np.int64),
        }
    )
    summary = {f"metric_{i}": float(i) for i in range(10)}
    summary |= {"total_trades": 42, "win_rate": 45.0, "total_pnl_pct": 0.5,
                "max_drawdown_pct": 1.3, "profit_factor": 1.25}  # fmt: skip
    report = {
        "schema_version": 1,
        "metadata": {"seed": 42, "config_hash": config.config_hash(), "data_hash": "bench",
                     "data_source": "synthetic", "profile": "conservative", "git_commit": "x"},
        "summary": summary,
        "regression_keys": {k: summary[k] for k in ("total_trades", "win_rate", "total_pnl_pct",
                                                    "max_drawdown_pct", "profit_factor")},
        "trades": [],
    }  # fmt: skip
    return report, _Result(curve), config


@pytest.fixture(name="existing_store")
def fixture_existing_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv(tracking.EXPERIMENT_ENV, raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    report, result, config = _payload()
    tracking.log_run(report, result, config, tracking_uri=uri)  # migrate + warm up
    return uri


def test_bench_log_run_existing_sqlite_store(benchmark: Any, existing_store: str) -> None:
    benchmark.group = "tracking|sqlite-8760-bars"
    report, result, config = _payload()

    run_id = benchmark.pedantic(
        tracking.log_run,
        args=(report, result, config),
        kwargs={"tracking_uri": existing_store},
        rounds=10,
        warmup_rounds=1,
    )

    assert run_id is not None
