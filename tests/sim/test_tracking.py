"""Tests of `sim.tracking`: URI resolution, the MLflow payload, and a round trip through sqlite.

Each sqlite test copies a pre-migrated template DB (0.06 s) instead of creating a fresh one
(1.2-2.3 s of alembic migrations; shared/notes/infra-findings.md §1.2): the `tracking_uri`
fixture of tests/sim/conftest.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from signals.config import PlatformConfig
from signals.errors import ConfigError, DataError
from sim import tracking
from sim.cli import main

N_BARS = 500


@dataclass(frozen=True)
class FakeResult:
    """Stands in for `sim.engine.BacktestResult`: tracking only reads `curve`."""

    curve: pl.DataFrame


def make_result(n_bars: int = N_BARS, seed: int = 7) -> FakeResult:
    rng = np.random.default_rng(seed)
    equity = 10_000.0 * np.cumprod(1.0 + rng.normal(0.0, 0.003, n_bars))
    start = pl.datetime(2024, 1, 1, time_zone="UTC")
    ts = pl.datetime_range(start, start + pl.duration(hours=n_bars - 1), "1h", eager=True)
    curve = pl.DataFrame(
        {
            "ts": ts.cast(pl.Datetime("ns", "UTC")),
            "equity_usd": equity,
            "cash_usd": equity * 0.6,
            "exposure_frac": np.full(n_bars, 0.4),
            "regime": np.zeros(n_bars, dtype=np.int64),
        }
    )
    return FakeResult(curve=curve)


def make_report(config: PlatformConfig, data_hash: str = "feedfacecafebeef") -> dict[str, Any]:
    summary = {
        "total_trades": 42,
        "win_rate": 45.2,
        "total_pnl_pct": 0.54,
        "max_drawdown_pct": 1.3,
        "profit_factor": 1.25,
        "sharpe": 0.8,
        "sortino": 0.6,
        "calmar": 1.83,
        "cagr_pct": 2.4,
        "exposure_time_pct": 49.0,
        "turnover": 2.14,
        "fees_paid_usd": 107.09,
        "final_equity_usd": 10_053.77,
        "total_orders": 90,
        "total_fills": 88,
    }
    keys = ("total_trades", "win_rate", "total_pnl_pct", "max_drawdown_pct", "profit_factor")
    return {
        "schema_version": 1,
        "metadata": {
            "seed": config.backtest.seed,
            "config_hash": config.config_hash(),
            "data_hash": data_hash,
            "data_source": "data/sample_hourly.parquet",
            "profile": config.policy.profile,
            "strategies": ["rules"],
            "symbols": ["BTC-USD", "ETH-USD"],
            "n_bars": N_BARS,
            "start": "2024-01-01T00:00:00Z",
            "end": "2024-01-21T19:00:00Z",
            "git_commit": "e407c39447a0eccad8449419e1adbe936e2a8f03",
        },
        "summary": summary,
        "regression_keys": {key: summary[key] for key in keys},
        "no_trade_reasons": {"total": {"cooldown": 3}},
        "trades": [],
    }


@pytest.fixture(name="config")
def fixture_config() -> PlatformConfig:
    return PlatformConfig().with_seed(7)


# --------------------------------------------------------------------------------------------
# URI and payload (no MLflow)
# --------------------------------------------------------------------------------------------


def test_resolve_tracking_uri_flag_given_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")

    assert tracking.resolve_tracking_uri("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_resolve_tracking_uri_no_flag_uses_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")

    assert tracking.resolve_tracking_uri(None) == "http://127.0.0.1:1"


def test_resolve_tracking_uri_nothing_set_is_absolute_project_db(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)

    uri = tracking.resolve_tracking_uri("")

    root = Path(tracking.__file__).resolve().parent.parent
    assert uri == f"sqlite:///{root / 'mlflow.db'}"
    assert Path(uri.removeprefix("sqlite:///")).is_absolute()


def test_params_from_config_flat_config_all_keys_as_strings(config: PlatformConfig) -> None:
    params = tracking.params_from_config(config.flat())

    assert set(params) == set(config.flat())
    assert params["backtest.seed"] == "7"
    assert params["universe.core"] == "[]"
    assert all(isinstance(v, str) for v in params.values())


def test_params_from_config_long_value_truncated_to_mlflow_limit() -> None:
    params = tracking.params_from_config({"universe.core": ["X-USD"] * 2000})

    assert len(params["universe.core"]) == 6000
    assert params["universe.core"].endswith("...")


def test_params_from_config_unsafe_keys_replaced_and_collisions_suffixed() -> None:
    params = tracking.params_from_config({"products.BTC/USD.tier": 1, "products.BTC_USD.tier": 2})

    assert params == {"products.BTC_USD.tier": "1", "products.BTC_USD.tier~2": "2"}


def test_metrics_from_summary_non_numeric_and_non_finite_skipped() -> None:
    summary = {"a": 1, "b": 2.5, "flag": True, "name": "x", "none": None, "inf": float("inf")}

    assert tracking.metrics_from_summary(summary) == {"a": 1.0, "b": 2.5}


def test_tags_from_report_missing_git_commit_left_out(config: PlatformConfig) -> None:
    report = make_report(config)
    report["metadata"]["git_commit"] = None

    tags = tracking.tags_from_report(report)

    assert "git_commit" not in tags
    assert tags["sim.kind"] == "run"
    assert tags["seed"] == "7"


# --------------------------------------------------------------------------------------------
# round trip through sqlite
# --------------------------------------------------------------------------------------------


def test_log_run_sqlite_store_round_trips_params_tags_metrics_artifacts(
    tracking_uri: str, config: PlatformConfig, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    report, result = make_report(config), make_result()

    run_id = tracking.log_run(
        report, result, config, tmp_path / "report.json", tracking_uri=tracking_uri
    )

    assert run_id is not None
    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "rules-sample_hourly-seed7"
    assert client.get_experiment(run.info.experiment_id).name == "247trader"
    assert run.data.params == tracking.params_from_config(tracking.flat_params(config))
    tags = run.data.tags
    assert tags["config_hash"] == config.config_hash()
    assert tags["data_hash"] == "feedfacecafebeef"
    assert tags["git_commit"] == report["metadata"]["git_commit"]
    assert tags["sim.kind"] == "run"
    assert {tags["seed"], tags["data_source"], tags["profile"]} == {
        "7", "data/sample_hourly.parquet", "conservative",
    }  # fmt: skip
    assert run.data.metrics == pytest.approx({k: float(v) for k, v in report["summary"].items()})

    names = {f.path for f in client.list_artifacts(run_id)}
    assert names == {"report.json", "equity_curve.parquet", "equity_drawdown.png"}
    local = Path(client.download_artifacts(run_id, "", str(tmp_path / "dl")))
    assert json.loads((local / "report.json").read_text()) == report
    curve = pl.read_parquet(local / "equity_curve.parquet")
    assert curve.equals(result.curve)
    assert (local / "equity_drawdown.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_log_run_sqlite_store_artifacts_beside_db_not_cwd(
    tracking_uri: str, config: PlatformConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    run_id = tracking.log_run(make_report(config), make_result(), config, tracking_uri=tracking_uri)

    db_dir = Path(tracking_uri.removeprefix("sqlite:///")).parent
    assert (db_dir / "mlartifacts" / "247trader" / str(run_id) / "artifacts").is_dir()
    assert list(elsewhere.iterdir()) == []


def test_log_run_experiment_env_set_uses_that_experiment(
    tracking_uri: str, config: PlatformConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv(tracking.EXPERIMENT_ENV, "sweep-a")

    run_id = tracking.log_run(make_report(config), make_result(), config, tracking_uri=tracking_uri)

    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(str(run_id))
    assert client.get_experiment(run.info.experiment_id).name == "sweep-a"


def test_find_baseline_run_two_tagged_returns_newest_report(
    tracking_uri: str, config: PlatformConfig
) -> None:
    older = tracking.log_run(
        make_report(config, data_hash="aaaa"), make_result(), config, tracking_uri=tracking_uri
    )
    newer = tracking.log_run(
        make_report(config, data_hash="bbbb"), make_result(), config, tracking_uri=tracking_uri
    )
    tracking.log_run(
        make_report(config, data_hash="cccc"), make_result(), config, tracking_uri=tracking_uri
    )
    tracking.tag_baseline(str(older), tracking_uri=tracking_uri)
    tracking.tag_baseline(str(newer), tracking_uri=tracking_uri)

    report = tracking.find_baseline_run(tracking_uri, "247trader")

    assert report["metadata"]["data_hash"] == "bbbb"


def test_find_baseline_run_none_tagged_raises_data_error(
    tracking_uri: str, config: PlatformConfig
) -> None:
    tracking.log_run(make_report(config), make_result(), config, tracking_uri=tracking_uri)

    with pytest.raises(DataError, match="must have a run tagged baseline=true"):
        tracking.find_baseline_run(tracking_uri, "247trader")


def test_find_baseline_run_unknown_experiment_raises_data_error(tracking_uri: str) -> None:
    with pytest.raises(DataError, match="experiment `nope` must exist"):
        tracking.find_baseline_run(tracking_uri, "nope")


def test_cli_gate_baseline_from_mlflow_same_report_exit_zero(
    tracking_uri: str, config: PlatformConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = make_report(config)
    run_id = tracking.log_run(report, make_result(), config, tracking_uri=tracking_uri)
    tracking.tag_baseline(str(run_id), tracking_uri=tracking_uri)
    candidate = tmp_path / "candidate.json"
    candidate.write_text(json.dumps(report))

    code = main(
        ["gate", "--baseline-from-mlflow", "--tracking-uri", tracking_uri,
         "--candidate", str(candidate)]
    )  # fmt: skip

    assert code == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("PASS")


def test_log_run_unreachable_server_raises_config_error(
    config: PlatformConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    # A port that was free a moment ago: nothing listens, so the connection is refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")

    with pytest.raises(ConfigError, match=f"`http://127.0.0.1:{port}` must accept the run"):
        tracking.log_run(
            make_report(config), make_result(), config, tracking_uri=f"http://127.0.0.1:{port}"
        )
