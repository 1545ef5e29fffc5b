"""MLflow logging of sweeps (`sim.sweep_tracking`) and the heat map `sim sweep --out` writes.

A sweep child must be comparable with a `sim run` of the same config: same param keys and
values, same name apart from `-combo<k>`, same `config_hash`, and (for the best children) the
same `report.json`, whose summary equals the sweep table's row. Stores are private copies of a
migrated sqlite template (the `tracking_uri` fixture of tests/sim/conftest.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from signals.bars import Panel, load_bars, to_panel
from signals.config import PlatformConfig, load_config
from sim import cli, sweep_tracking, tracking
from sim.sweep import sweep
from sim.sweep_nb import METRIC_NAMES
from tests.sim.conftest import PROJECT_ROOT, SAMPLE

END = "2024-03-01T00:00:00Z"  # two months of the shipped data: quick, and trades happen
GRID = {"strategies.rules.breakout_lookback": [24, 48], "strategies.rules.stop_loss_pct": [6, 9]}


@pytest.fixture(autouse=True)
def _fixed_git_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    # other engineers commit while the suite runs; the report's commit stamp must not flake
    monkeypatch.setattr("sim.report.git_commit", lambda *args: "0" * 40)


@pytest.fixture(name="panel", scope="module")
def fixture_panel() -> Panel:
    frame = load_bars(SAMPLE)
    return to_panel(frame.filter(pl.col("ts") < pl.lit(END).str.to_datetime(time_zone="UTC")))


@pytest.fixture(name="config", scope="module")
def fixture_config() -> PlatformConfig:
    return load_config(PROJECT_ROOT / "config")


def _client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def _children(tracking_uri: str, parent_id: str) -> list[Any]:
    client = _client(tracking_uri)
    parent = client.get_run(parent_id)
    runs = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    return sorted(runs, key=lambda r: int(r.data.tags["sweep.rank"]))


def _artifact(tracking_uri: str, run_id: str, name: str, folder: Path) -> Path:
    return Path(_client(tracking_uri).download_artifacts(run_id, name, str(folder)))


def _mlflow_run_id(out: str) -> str:
    match = re.search(r"^mlflow run\s+(\w+)", out, re.MULTILINE)
    assert match, out
    return match.group(1)


# --------------------------------------------------------------------------------------------
# names and keys (no MLflow)
# --------------------------------------------------------------------------------------------


def test_name_for_strategies_data_and_seed_joined() -> None:
    assert tracking.name_for(["ma_cross", "rules"], "data/sample_hourly.parquet", 42) == (
        "ma_cross+rules-sample_hourly-seed42"
    )
    assert tracking.name_for([], "/x/BTC-USD_ONE_HOUR.csv", 7) == "none-BTC-USD_ONE_HOUR-seed7"
    assert tracking.name_for(["rules"], None, 1) == "rules-data-seed1"


def test_run_name_report_metadata_gives_strategies_data_seed() -> None:
    meta = {"seed": 42, "config_hash": "ab", "data_source": "data/sample_hourly.parquet",
            "strategies": ["rules"]}  # fmt: skip

    assert tracking.run_name({"metadata": meta}) == "rules-sample_hourly-seed42"


@pytest.mark.parametrize(
    ("flat_key", "expected"),
    [
        ("strategies.strategies.rules.params.breakout_lookback",
         "strategies.rules.breakout_lookback"),
        ("strategies.strategies.rules.enabled", "strategies.rules.enabled"),
        ("strategies.strategies.rules.budget.max_at_risk_pct",
         "strategies.rules.budget.max_at_risk_pct"),
        ("strategies.strategies.mine.params.enabled", "strategies.strategies.mine.params.enabled"),
        ("strategies.rules.breakout_lookback", "strategies.rules.breakout_lookback"),
        ("policy.risk.stop_loss_pct", "policy.risk.stop_loss_pct"),
    ],
)  # fmt: skip
def test_grid_key_flat_key_gives_grid_form(flat_key: str, expected: str) -> None:
    assert tracking.grid_key(flat_key) == expected


def test_strategy_entry_fields_match_the_model() -> None:
    from signals.config import StrategyEntry

    assert set(tracking.STRATEGY_ENTRY_FIELDS) == set(StrategyEntry.model_fields)


def test_flat_params_keys_are_override_keys_and_round_trip(config: PlatformConfig) -> None:
    from signals.config import override_keys

    flat = tracking.flat_params(config)
    settable = {k: v for k, v in flat.items() if not k.endswith(".module")}

    assert set(settable) <= set(override_keys(config))
    assert not any(k.startswith("strategies.strategies.") for k in flat)
    # as params they round-trip (the config's own params stay as written: `6`, not `6.0`)
    assert tracking.flat_params(config.with_overrides(settable)) == flat


def test_flat_params_yaml_int_and_grid_float_same_value(config: PlatformConfig) -> None:
    as_float = config.with_overrides({"strategies.rules.stop_loss_pct": 6.0})
    as_int = config.with_overrides({"strategies.rules.stop_loss_pct": 6})

    assert tracking.flat_params(as_float) == tracking.flat_params(as_int)
    assert tracking.flat_params(as_int)["strategies.rules.stop_loss_pct"] == 6.0


def test_combo_config_row_of_config_values_is_the_config(config: PlatformConfig) -> None:
    keys = ["strategies.rules.breakout_lookback", "strategies.rules.stop_loss_pct"]
    same = {"combo": 0, keys[0]: 48, keys[1]: 6.0}
    other = {"combo": 1, keys[0]: 24, keys[1]: 6.0}

    assert sweep_tracking.combo_config(config, same, keys).config_hash() == config.config_hash()
    changed = sweep_tracking.combo_config(config, other, keys)
    assert changed.strategies.strategies["rules"].params["breakout_lookback"] == 24
    assert changed.config_hash() != config.config_hash()


# --------------------------------------------------------------------------------------------
# log_sweep into sqlite
# --------------------------------------------------------------------------------------------


def test_log_sweep_top_children_carry_report_equal_to_table_row(
    tracking_uri: str, panel: Panel, config: PlatformConfig, tmp_path: Path
) -> None:
    table = sweep(panel, config, GRID, metric="sharpe")

    logged = sweep_tracking.log_sweep(
        table, config, GRID, metric="sharpe", sweep_secs=1.0, engine="local",
        data_source=str(SAMPLE), top_k=3, tracking_uri=tracking_uri, panel=panel,
        artifacts_top=2,
    )  # fmt: skip

    assert logged is not None
    assert logged.artifacts_secs > 0
    client = _client(tracking_uri)
    parent = client.get_run(logged.run_id)
    assert parent.info.run_name == "sweep-rules-sample_hourly-seed42"
    assert parent.data.tags["data_source"] == "data/sample_hourly.parquet"
    assert not set(GRID) & set(parent.data.params)
    assert parent.data.metrics["sweep_artifacts_secs"] == pytest.approx(logged.artifacts_secs)
    children = _children(tracking_uri, logged.run_id)
    assert len(children) == 3
    for rank, (child, row) in enumerate(zip(children, table.head(3).iter_rows(named=True),
                                            strict=True)):  # fmt: skip
        child_config = sweep_tracking.combo_config(config, row, list(GRID))
        assert child.info.run_name == f"rules-sample_hourly-seed42-combo{row['combo']}"
        assert child.data.tags["config_hash"] == child_config.config_hash()
        assert child.data.params == tracking.params_from_config(tracking.flat_params(child_config))
        for name in METRIC_NAMES:
            if isinstance(row[name], float) and row[name] != row[name]:  # NaN is not logged
                continue
            assert child.data.metrics[name] == float(row[name])
        artifacts = {f.path for f in client.list_artifacts(child.info.run_id)}
        if rank >= 2:
            assert artifacts == set()
            continue
        assert artifacts == {"report.json", "tearsheet.html"}
        folder = tmp_path / f"child{rank}"
        report = json.loads(_artifact(tracking_uri, child.info.run_id, "report.json", folder)
                            .read_text())  # fmt: skip
        assert report["metadata"]["config_hash"] == child_config.config_hash()
        shared = [m for m in METRIC_NAMES if m in report["summary"]]
        assert len(shared) >= 10
        for name in shared:
            # the report keeps 12 significant digits (sim.report._clean); NaN becomes null
            want = row[name]
            got = report["summary"][name]
            if isinstance(want, float) and want != want:
                assert got is None
            else:
                assert got == float(f"{want:.12g}"), name
        page = _artifact(tracking_uri, child.info.run_id, "tearsheet.html", folder).read_text()
        assert page.lstrip().lower().startswith("<!doctype html")
        assert report["metadata"]["config_hash"] in page


def test_log_sweep_without_panel_children_have_no_artifacts(
    tracking_uri: str, panel: Panel, config: PlatformConfig
) -> None:
    table = sweep(panel, config, GRID, metric="sharpe")

    logged = sweep_tracking.log_sweep(
        table, config, GRID, metric="sharpe", sweep_secs=1.0, engine="local",
        data_source=str(SAMPLE), top_k=2, tracking_uri=tracking_uri, artifacts_top=2,
    )  # fmt: skip

    assert logged is not None
    assert logged.artifacts_secs == 0.0
    client = _client(tracking_uri)
    children = _children(tracking_uri, logged.run_id)
    assert len(children) == 2
    assert all(client.list_artifacts(c.info.run_id) == [] for c in children)


# --------------------------------------------------------------------------------------------
# sim run vs sim sweep, end to end
# --------------------------------------------------------------------------------------------


def test_cli_run_and_sweep_child_same_config_log_same_params_name_and_report(
    tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_out = tmp_path / "run.json"
    code = cli.main(["run", "--end", END, "--out", str(run_out), "--no-tearsheet",
                     "--tracking-uri", tracking_uri])  # fmt: skip
    assert code == 0
    run_id = _mlflow_run_id(capsys.readouterr().out)
    # the config's own values (breakout 48, stop 6) are one of the four combinations
    code = cli.main(["sweep", "--end", END, "--grid", "strategies.rules.breakout_lookback=24,48",
                     "--grid", "strategies.rules.stop_loss_pct=6,9", "--no-progress",
                     "--log-top", "4", "--log-top-artifacts", "4", "--tracking-uri",
                     tracking_uri])  # fmt: skip
    assert code == 0
    parent_id = _mlflow_run_id(capsys.readouterr().out)

    client = _client(tracking_uri)
    run = client.get_run(run_id)
    twins = [c for c in _children(tracking_uri, parent_id)
             if c.data.tags["config_hash"] == run.data.tags["config_hash"]]  # fmt: skip
    assert len(twins) == 1
    child = twins[0]
    assert run.info.run_name == "rules-sample_hourly-seed42"
    assert child.info.run_name == f"{run.info.run_name}-combo{child.data.tags['sweep.combo']}"
    assert child.data.params == run.data.params
    assert "strategies.rules.breakout_lookback" in run.data.params
    shared = set(run.data.metrics) & set(child.data.metrics)
    assert set(METRIC_NAMES) <= shared
    for name in shared:
        assert child.data.metrics[name] == pytest.approx(run.data.metrics[name], rel=1e-11)
    got = _artifact(tracking_uri, child.info.run_id, "report.json", tmp_path / "child")
    assert got.read_bytes() == run_out.read_bytes()


# --------------------------------------------------------------------------------------------
# the heat map beside --out
# --------------------------------------------------------------------------------------------


def test_cli_sweep_out_two_params_writes_heatmap_and_logs_it(
    tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "grid.parquet"

    code = cli.main(["sweep", "--end", END, "--grid", "strategies.rules.breakout_lookback=24,48",
                     "--grid", "strategies.rules.stop_loss_pct=6,9", "--no-progress",
                     "--out", str(out), "--log-top", "1", "--log-top-artifacts", "0",
                     "--tracking-uri", tracking_uri])  # fmt: skip

    assert code == 0
    stdout = capsys.readouterr().out
    heatmap = tmp_path / "grid.html"
    assert f"heatmap      {heatmap}\n" in stdout
    page = heatmap.read_text()
    assert "strategies.rules.breakout_lookback" in page
    assert "strategies.rules.stop_loss_pct" in page
    parent_id = _mlflow_run_id(stdout)
    names = {f.path for f in _client(tracking_uri).list_artifacts(parent_id)}
    assert names == {"sweep_results.parquet", "sweep_heatmap.html"}
    logged = _artifact(tracking_uri, parent_id, "sweep_heatmap.html", tmp_path / "dl")
    assert logged.read_text() == page


@pytest.mark.parametrize(
    "extra",
    [["--grid", "strategies.rules.stop_loss_pct=6,9"],
     ["--grid", "strategies.rules.enabled=true", "--grid", "strategies.rules.stop_loss_pct=6,9"],
     ["--grid", "strategies.rules.stop_loss_pct=6,9", "--grid",
      "strategies.rules.exit_lookback=12,24", "--walk-forward", "20d:10d"]],
    ids=["one-param", "one-param-varies", "walk-forward"],
)  # fmt: skip
def test_cli_sweep_out_no_heatmap_for_one_param_or_walk_forward(
    extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "grid.csv"

    code = cli.main(["sweep", "--end", END, *extra, "--no-progress", "--out", str(out),
                     "--no-mlflow"])  # fmt: skip

    assert code == 0
    assert out.is_file()
    assert not (tmp_path / "grid.html").exists()
    assert not any(line.startswith("heatmap") for line in capsys.readouterr().out.splitlines())


def test_cli_sweep_log_top_artifacts_negative_exits_two(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli.main(["sweep", "--end", END, "--grid", "strategies.rules.stop_loss_pct=6",
                     "--log-top-artifacts", "-1", "--no-mlflow", "--no-progress"])  # fmt: skip

    assert code == 2
    assert "`--log-top-artifacts` must be >= 0, was -1" in capsys.readouterr().err
