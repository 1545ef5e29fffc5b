"""The `sim` command line, driven in-process through `sim.cli.main` (and once as a subprocess).

Every run passes `--no-mlflow`: MLflow is not needed for these tests. Bad input must exit 2
with a single `error: ...` line on stderr and no traceback.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from sim import cli
from tests.sim.conftest import PROJECT_ROOT

SECTIONS = ("metadata", "summary", "trades", "regression_keys", "no_trade_reasons")


@pytest.fixture(autouse=True)
def _fixed_git_commit(monkeypatch):
    # other engineers commit while the suite runs; the report's commit stamp must not flake
    monkeypatch.setattr("sim.report.git_commit", lambda *args: "0" * 40)


@pytest.fixture(name="synth_file", scope="module")
def fixture_synth_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "x.parquet"
    assert cli.main(["data", "synth", "--out", str(out), "--symbols", "3", "--bars", "500"]) == 0
    return out


def _bad_input(capsys, argv) -> str:
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in captured.err
    return lines[0]


def test_cli_run_seed_42_exits_zero_summary_and_report_sections(tmp_path, capsys):
    out = tmp_path / "run.json"
    assert cli.main(["run", "--seed", "42", "--no-mlflow", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for label in ("total pnl", "max drawdown", "trades", "report"):
        assert label in printed
    report = json.loads(out.read_text())
    for section in SECTIONS:
        assert section in report
    assert report["metadata"]["seed"] == 42
    assert report["metadata"]["n_bars"] == 8760
    assert report["summary"]["total_trades"] == len(report["trades"]) > 0


def test_cli_run_twice_byte_identical_report(tmp_path, capsys):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert cli.main(["run", "--seed", "42", "--no-mlflow", "--out", str(first)]) == 0
    assert cli.main(["run", "--seed", "42", "--no-mlflow", "--out", str(second)]) == 0
    capsys.readouterr()
    assert first.read_bytes() == second.read_bytes()


def test_cli_run_missing_data_file_exit_2_one_line(tmp_path, capsys):
    line = _bad_input(capsys, ["run", "--no-mlflow", "--data", str(tmp_path / "nope.parquet")])
    assert "nope.parquet" in line


def test_cli_run_csv_high_below_low_exit_2_names_symbol_and_timestamp(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "ts,symbol,open,high,low,close,volume\n"
        "2024-01-01T00:00:00Z,BTC-USD,100,101,99,100.5,10\n"
        "2024-01-01T01:00:00Z,BTC-USD,100,98,99,100.5,10\n"
    )
    line = _bad_input(
        capsys, ["run", "--no-mlflow", "--data", str(bad), "--out", str(tmp_path / "r.json")]
    )
    assert "BTC-USD" in line
    assert "2024-01-01T01:00:00" in line


def test_cli_run_unknown_config_key_exit_2_names_key_file_and_suggests(tmp_path, capsys):
    config = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config)
    policy = config / "policy.yaml"
    policy.write_text(policy.read_text().replace("max_open_positions:", "max_open_position:"))
    line = _bad_input(capsys, ["run", "--no-mlflow", "--config", str(config)])
    assert "max_open_position" in line
    assert "policy.yaml" in line
    assert "did you mean `max_open_positions`" in line


def test_cli_run_bad_start_exit_2_names_flag(capsys):
    line = _bad_input(capsys, ["run", "--no-mlflow", "--start", "yesterday-ish"])
    assert "--start" in line
    assert "yesterday-ish" in line


def test_cli_run_start_end_select_nothing_exit_2(capsys):
    _bad_input(capsys, ["run", "--no-mlflow", "--start", "2031-01-01", "--end", "2031-02-01"])


def test_cli_run_start_end_slice_the_bars(tmp_path, capsys):
    out = tmp_path / "slice.json"
    argv = ["run", "--no-mlflow", "--out", str(out), "--start", "2024-03-01T00:00:00Z",
            "--end", "2024-04-01T00:00:00Z"]  # fmt: skip
    assert cli.main(argv) == 0
    capsys.readouterr()
    meta = json.loads(out.read_text())["metadata"]
    assert meta["start"] == "2024-03-01T00:00:00Z"
    assert meta["end"] == "2024-03-31T23:00:00Z"
    assert meta["n_bars"] == 31 * 24


def test_cli_data_validate_good_file_exit_0(synth_file, capsys):
    assert cli.main(["data", "validate", str(synth_file)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 1500 bars, 3 symbols")
    assert "gaps: none" in out


def test_cli_data_validate_bad_file_exit_2(tmp_path, synth_file, capsys):
    frame = pl.read_parquet(synth_file)
    bad = tmp_path / "bad.parquet"
    frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(-1.0).otherwise(pl.col("close")).alias("close")
    ).write_parquet(bad)
    line = _bad_input(capsys, ["data", "validate", str(bad)])
    symbol = frame["symbol"][7]
    assert symbol in line


def test_cli_synth_then_run_on_it_exit_0(tmp_path, synth_file, capsys):
    out = tmp_path / "synth_run.json"
    assert cli.main(["run", "--no-mlflow", "--data", str(synth_file), "--out", str(out)]) == 0
    capsys.readouterr()
    meta = json.loads(out.read_text())["metadata"]
    assert meta["n_bars"] == 500
    assert len(meta["symbols"]) == 3


def test_cli_console_script_subprocess_run_exit_0(tmp_path):
    exe = Path(sys.executable).with_name("sim")
    env = {
        **os.environ,
        "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(PROJECT_ROOT / ".numba_cache")),
    }
    done = subprocess.run(
        [str(exe), "run", "--seed", "42", "--no-mlflow", "--out", str(tmp_path / "r.json")],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "total pnl" in done.stdout
    assert (tmp_path / "r.json").is_file()
    bad = subprocess.run(
        [str(exe), "run", "--no-mlflow", "--data", str(tmp_path / "missing.csv")],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ")
    assert "Traceback" not in bad.stderr
