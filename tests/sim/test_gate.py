"""Tests of `sim gate`: the pure comparison, its error paths and the CLI exit codes."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from signals.errors import ConfigError, DataError
from sim import gate
from sim.cli import main


def make_report(**keys: float) -> dict[str, Any]:
    regression = {
        "total_trades": 50,
        "win_rate": 48.0,
        "total_pnl_pct": 12.5,
        "max_drawdown_pct": 6.0,
        "profit_factor": 1.4,
    }
    regression.update(keys)
    return {
        "schema_version": 1,
        "metadata": {
            "seed": 42,
            "config_hash": "0123456789abcdef",
            "data_hash": "feedfacecafebeef",
            "data_source": "data/sample_hourly.parquet",
            "profile": "conservative",
            "git_commit": "abc123",
        },
        "summary": {**regression, "sharpe": 1.1},
        "regression_keys": regression,
        "no_trade_reasons": {"total": {}},
        "trades": [],
    }


def write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(name="files")
def fixture_files(tmp_path: Path) -> tuple[Path, Path]:
    return write(tmp_path / "baseline.json", make_report()), tmp_path / "candidate.json"


# --------------------------------------------------------------------------------------------
# compare()
# --------------------------------------------------------------------------------------------


def test_gate_keys_match_metrics_regression_keys() -> None:
    from sim.metrics import REGRESSION_KEYS

    assert gate.REGRESSION_KEYS == REGRESSION_KEYS
    assert set(gate.DEFAULT_FLOORS) == set(REGRESSION_KEYS)


def test_compare_identical_reports_pass() -> None:
    result = gate.compare(make_report(), make_report())

    assert result.verdict == "PASS"
    assert [row.metric for row in result.rows] == list(gate.REGRESSION_KEYS)
    assert all(row.change_pct == 0.0 for row in result.rows)


def test_compare_change_within_two_percent_passes() -> None:
    result = gate.compare(make_report(), make_report(total_pnl_pct=12.5 * 1.019, total_trades=51))

    assert result.passed  # 1 trade of 50 is 2 %, exactly at the tolerance


def test_compare_change_over_two_percent_fails() -> None:
    result = gate.compare(make_report(), make_report(total_pnl_pct=12.5 * 1.025))

    assert result.verdict == "FAIL"
    failed = [row for row in result.rows if not row.passed]
    assert [row.metric for row in failed] == ["total_pnl_pct"]
    assert failed[0].change_pct == pytest.approx(2.5)


def test_compare_near_zero_baseline_uses_absolute_floor() -> None:
    base = make_report(total_pnl_pct=0.01, profit_factor=0.0)

    within = gate.compare(base, make_report(total_pnl_pct=0.05, profit_factor=0.015))
    beyond = gate.compare(base, make_report(total_pnl_pct=0.07, profit_factor=0.0))

    assert within.passed  # +400 % relative, but 0.04 pp < floor 0.05 pp; pf 0.015 < floor 0.02
    assert not beyond.passed
    row = next(r for r in beyond.rows if r.metric == "total_pnl_pct")
    assert row.allowed == pytest.approx(0.05)


def test_compare_zero_trades_baseline_any_trade_fails() -> None:
    result = gate.compare(make_report(total_trades=0), make_report(total_trades=1))

    row = result.rows[0]
    assert not row.passed
    assert row.change_pct is None
    assert "n/a" in gate.format_result(result)


def test_compare_custom_floor_and_tolerance_change_verdict() -> None:
    base, cand = make_report(), make_report(total_trades=52)

    assert not gate.compare(base, cand).passed
    assert gate.compare(base, cand, floors={"total_trades": 2}).passed
    assert gate.compare(base, cand, tolerance=0.05).passed


def test_compare_data_hash_mismatch_raises_naming_both_hashes() -> None:
    cand = make_report()
    cand["metadata"]["data_hash"] = "0000000000000000"

    with pytest.raises(DataError, match="feedfacecafebeef.*0000000000000000"):
        gate.compare(make_report(), cand)


def test_compare_missing_regression_key_raises() -> None:
    cand = make_report()
    del cand["regression_keys"]["profit_factor"]

    with pytest.raises(DataError, match=r"candidate must have .*`regression_keys.profit_factor`"):
        gate.compare(make_report(), cand)


def test_compare_null_regression_value_raises() -> None:
    with pytest.raises(DataError, match="finite number `regression_keys.win_rate`, was null"):
        gate.compare(make_report(win_rate=None), make_report())  # type: ignore[arg-type]


def test_compare_unknown_schema_version_raises() -> None:
    base = make_report()
    base["schema_version"] = 2

    with pytest.raises(DataError, match="`schema_version` of baseline must be 1, was 2"):
        gate.compare(base, make_report())


def test_compare_negative_tolerance_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="`--tolerance` must be"):
        gate.compare(make_report(), make_report(), tolerance=-0.1)


def test_compare_unknown_floor_key_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="was 'sharpe'"):
        gate.compare(make_report(), make_report(), floors={"sharpe": 0.1})


def test_format_result_fail_lists_failed_keys() -> None:
    text = gate.format_result(gate.compare(make_report(), make_report(max_drawdown_pct=7.0)))

    assert text.splitlines()[0].split() == [
        "metric", "baseline", "candidate", "change", "%", "allowed", "verdict",
    ]  # fmt: skip
    assert text.splitlines()[-1].startswith("FAIL:")
    assert "out of tolerance: max_drawdown_pct" in text


# --------------------------------------------------------------------------------------------
# CLI: exit codes and messages
# --------------------------------------------------------------------------------------------


def run_gate(*args: str | Path) -> int:
    return main(["gate", *map(str, args)])


def test_cli_gate_equal_reports_exit_zero(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand = files
    write(cand, make_report())

    assert run_gate("--baseline", base, "--candidate", cand) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("PASS")


def test_cli_gate_regression_exit_one(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand = files
    write(cand, make_report(win_rate=40.0))

    assert run_gate("--baseline", base, "--candidate", cand) == 1
    out = capsys.readouterr().out
    assert "win_rate" in out
    assert out.splitlines()[-1].startswith("FAIL")


def test_cli_gate_abs_floor_flag_turns_fail_into_pass(files: tuple[Path, Path]) -> None:
    base, cand = files
    write(cand, make_report(total_trades=53))

    assert run_gate("--baseline", base, "--candidate", cand) == 1
    assert run_gate("--baseline", base, "--candidate", cand, "--abs-floor", "total_trades=3") == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "baseline file `.*baseline.json` must exist, was missing"),
        ("{not json", "must be valid JSON, was not: .* line 1 column 2"),
        ("[1, 2]", "must be a JSON object, was list"),
        ('{"schema_version": 9}', "`schema_version` of baseline .* must be 1, was 9"),
        ('{"schema_version": 1, "metadata": {}}', "must have an object `regression_keys`"),
    ],
    ids=["missing-file", "corrupt-json", "not-object", "schema-version", "missing-section"],
)
def test_cli_gate_bad_baseline_exit_two_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    expected: str,
) -> None:
    base = tmp_path / "baseline.json"
    if content is not None:
        base.write_text(content)
    cand = write(tmp_path / "candidate.json", make_report())

    assert run_gate("--baseline", base, "--candidate", cand) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert re.search(expected, err), err


def test_cli_gate_data_hash_mismatch_exit_two(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand = files
    other = make_report()
    other["metadata"]["data_hash"] = "1111222233334444"
    write(cand, other)

    assert run_gate("--baseline", base, "--candidate", cand) == 2
    err = capsys.readouterr().err
    assert "feedfacecafebeef (baseline) and 1111222233334444 (candidate)" in err


def test_cli_gate_missing_candidate_exit_two(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand = files

    assert run_gate("--baseline", base, "--candidate", cand) == 2
    assert "candidate file" in capsys.readouterr().err


def test_cli_gate_bad_abs_floor_exit_two(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand = files
    write(cand, make_report())

    assert run_gate("--baseline", base, "--candidate", cand, "--abs-floor", "total_trades") == 2
    assert "KEY=VALUE" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# --update-baseline
# --------------------------------------------------------------------------------------------


def test_cli_update_baseline_writes_reason_metadata_and_previous_keys(
    files: tuple[Path, Path],
) -> None:
    base, cand = files
    new = make_report(total_trades=60, total_pnl_pct=15.0)
    new["metadata"]["config_hash"] = "fedcba9876543210"
    write(cand, new)

    code = run_gate(
        "--update-baseline", "--candidate", cand, "--baseline", base, "--reason", "wider universe"
    )

    assert code == 0
    doc = json.loads(base.read_text())
    assert doc["reason"] == "wider universe"
    assert doc["regression_keys"] == new["regression_keys"]
    assert doc["metadata"] == new["metadata"]
    assert doc["previous"]["regression_keys"] == make_report()["regression_keys"]
    assert doc["previous"]["config_hash"] == "0123456789abcdef"
    # The written baseline is itself a valid gate input, and the candidate passes against it.
    assert run_gate("--baseline", base, "--candidate", cand) == 0


def test_cli_update_baseline_without_previous_records_none(tmp_path: Path) -> None:
    cand = write(tmp_path / "candidate.json", make_report())
    target = tmp_path / "sub" / "baseline.json"

    assert run_gate("--update-baseline", "--candidate", cand, "--baseline", target,
                    "--reason", "first baseline") == 0  # fmt: skip
    doc = json.loads(target.read_text())
    assert doc["previous"] is None
    assert doc["schema_version"] == 1


def test_cli_update_baseline_without_reason_exit_two(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand = files
    write(cand, make_report(total_trades=99))
    before = base.read_text()

    assert run_gate("--update-baseline", "--candidate", cand, "--baseline", base) == 2
    assert "--reason" in capsys.readouterr().err
    assert base.read_text() == before


def test_cli_gate_baseline_and_mlflow_flags_together_exit_two(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand = files
    write(cand, make_report())

    assert run_gate("--baseline", base, "--baseline-from-mlflow", "--candidate", cand) == 2
    assert "must not be used together" in capsys.readouterr().err


def test_baseline_document_copies_inputs_not_references() -> None:
    cand = make_report()
    doc = gate.baseline_document(cand, "why", None, "candidate.json")
    snapshot = copy.deepcopy(doc)

    cand["regression_keys"]["total_trades"] = 0

    assert doc == snapshot
