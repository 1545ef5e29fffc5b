"""The run tearsheet (`sim.tearsheet`, `sim.tearsheet_data`) and `sim report`.

The page is checked three ways: its series against the simulator's own curves (positions
rebuilt from fills mark to the run's exposure), its HTML (sections, identity, no network
reference, every embedded PNG decodes), and in a real headless Chromium (no console error, a
non-blank screenshot). Bad input to `sim report` is one line `sim report: error: ...`, exit 2.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from signals.bars import load_bars, to_panel
from signals.config import load_config
from sim import cli, tearsheet
from sim import tearsheet_data as td
from sim.engine import BacktestResult, run_backtest
from tests.sim.conftest import PROJECT_ROOT, SAMPLE

SECTION_IDS = ("equity", "drawdown", "monthly", "sharpe", "themes", "prices", "pnl", "reasons",
               "metrics", "run")  # fmt: skip
SERIES_SECTIONS = SECTION_IDS[:6]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(autouse=True)
def _fixed_git_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    # other engineers commit while the suite runs; the report's commit stamp must not flake
    monkeypatch.setattr("sim.report.git_commit", lambda *args: "0" * 40)


@pytest.fixture(name="sample_result", scope="module")
def fixture_sample_result() -> BacktestResult:
    config = load_config(PROJECT_ROOT / "config").with_seed(42)
    return run_backtest(to_panel(load_bars(SAMPLE)), config)


@pytest.fixture(name="run_files", scope="module")
def fixture_run_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the JSON report of `sim run --seed 42 --no-mlflow`, its page and series beside."""
    out = tmp_path_factory.mktemp("run") / "run.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sim.report.git_commit", lambda *args: "0" * 40)
        assert cli.main(["run", "--seed", "42", "--no-mlflow", "--out", str(out)]) == 0
    return out


def _bad_report_input(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = cli.main(["report", *argv])
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("sim report: error: ")
    assert "Traceback" not in captured.err
    return lines[0]


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


# --------------------------------------------------------------------------------------------
# series: golden inputs and the simulator's own curves
# --------------------------------------------------------------------------------------------


def test_forward_fill_nan_rows_take_last_finite_leading_nan_stays():
    values = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, np.nan], [4.0, 5.0]])
    expected = np.array([[np.nan, 1.0], [2.0, 1.0], [2.0, 1.0], [4.0, 5.0]])
    np.testing.assert_array_equal(td.forward_fill(values), expected)


def test_buy_and_hold_late_symbol_waits_in_cash_then_buys_at_first_close():
    # 1000 USD, two symbols: A bought at 10 on bar 0, B waits in cash until its first close 50
    close = np.array([[10.0, np.nan], [20.0, np.nan], [20.0, 50.0], [np.nan, 100.0]])
    # bar 0: 500 + 500 cash; bar 1: 1000 + 500; bar 2: 1000 + 500; bar 3: A held at 20 -> 1000
    # plus B 500 * 100 / 50
    expected = np.array([1000.0, 1500.0, 1500.0, 2000.0])
    np.testing.assert_allclose(td.buy_and_hold(close, 1000.0), expected, rtol=1e-12)


def test_buy_and_hold_symbol_without_bars_left_out():
    close = np.array([[10.0, np.nan], [5.0, np.nan]])
    np.testing.assert_allclose(td.buy_and_hold(close, 100.0), [100.0, 50.0], rtol=1e-12)
    np.testing.assert_allclose(td.buy_and_hold(close[:, 1:], 100.0), [100.0, 100.0])


def test_buy_and_hold_last_value_is_summary_benchmark(sample_result):
    from sim.metrics import summary_metrics

    hold = td.buy_and_hold(sample_result.panel.close, sample_result.initial_cash_usd)
    expected = summary_metrics(sample_result)["benchmark_return_pct"]
    assert (hold[-1] / sample_result.initial_cash_usd - 1.0) * 100.0 == pytest.approx(
        expected, rel=1e-9
    )


def test_tearsheet_series_trade_start_rows_match_curve():
    config = load_config(PROJECT_ROOT / "config").with_seed(42)
    panel = to_panel(load_bars(SAMPLE))
    result = run_backtest(panel, config, trade_start=int(panel.ts_ns[4000]))
    series = td.tearsheet_series(result, config.universe.themes)
    assert series.height == result.curve.height == panel.n_bars - 4000
    assert series["ts"].equals(result.curve["ts"])
    np.testing.assert_allclose(
        series.select(pl.selectors.starts_with(td.THEME_PREFIX)).sum_horizontal().to_numpy(),
        series["exposure_frac"].to_numpy(),
        atol=1e-12,
    )


def test_theme_exposure_unthemed_only_when_held():
    values = np.array([[10.0, 0.0, 0.0], [10.0, 20.0, 5.0]])
    equity = np.array([100.0, 50.0])
    themes = {"l1": ["A"], "defi": ["B"], "empty": ["Z"]}
    got = td.theme_exposure(values, equity, ["A", "B", "C"], themes)
    assert list(got) == ["l1", "defi", "empty", "unthemed"]
    np.testing.assert_allclose(got["l1"], [0.1, 0.2])
    np.testing.assert_allclose(got["defi"], [0.0, 0.4])
    np.testing.assert_allclose(got["empty"], [0.0, 0.0])
    np.testing.assert_allclose(got["unthemed"], [0.0, 0.1])
    assert "unthemed" not in td.theme_exposure(values[:, :2], equity, ["A", "B"], themes)


def test_rolling_sharpe_equals_window_by_window_reference():
    rng = np.random.default_rng(7)
    returns = rng.normal(1e-4, 1e-2, size=300)
    window, per_year = 24, 8760.0
    got = td.rolling_sharpe(returns, window, per_year)
    assert np.isnan(got[: window - 1]).all()
    for t in range(window - 1, returns.size):
        chunk = returns[t - window + 1 : t + 1]
        expected = chunk.mean() / chunk.std(ddof=1) * math.sqrt(per_year)
        assert got[t] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_rolling_sharpe_flat_window_nan_short_series_all_nan():
    got = td.rolling_sharpe(np.zeros(10), 5, 8760.0)
    assert np.isnan(got).all()
    assert np.isnan(td.rolling_sharpe(np.ones(3), 5, 8760.0)).all()


def test_monthly_returns_first_against_initial_then_month_over_month():
    ts = pl.Series(
        [
            "2024-01-15T00:00:00Z",
            "2024-01-31T23:00:00Z",
            "2024-02-10T00:00:00Z",
            "2024-03-01T00:00:00Z",
        ],  # fmt: skip
    ).str.to_datetime(time_unit="ns", time_zone="UTC")
    equity = np.array([105.0, 110.0, 99.0, 108.9])
    got = td.monthly_returns(ts, equity, 100.0)
    assert got["year"].to_list() == [2024, 2024, 2024]
    assert got["month"].to_list() == [1, 2, 3]
    np.testing.assert_allclose(got["return_pct"].to_numpy(), [10.0, -10.0, 10.0], rtol=1e-12)


def test_position_qty_from_fills_marks_to_run_exposure_and_final_positions(sample_result):
    from signals.enums import Pos

    result = sample_result
    qty = td.position_qty(result)
    np.testing.assert_allclose(qty[-1], result.final_positions[:, Pos.Qty], atol=1e-9)
    marked = np.nan_to_num(td.forward_fill(result.panel.close), nan=0.0)
    gross = (qty * marked).sum(axis=1)
    curve = result.curve
    # equity = cash + marked positions, bar by bar (STYLE §6 accounting property)
    np.testing.assert_allclose(
        gross, (curve["equity_usd"] - curve["cash_usd"]).to_numpy(), rtol=1e-9, atol=1e-6
    )
    np.testing.assert_allclose(
        gross / curve["equity_usd"].to_numpy(), curve["exposure_frac"].to_numpy(), atol=1e-12
    )


def test_tearsheet_series_themes_sum_to_exposure_closes_of_traded_symbols(sample_result):
    config = load_config(PROJECT_ROOT / "config")
    series = td.tearsheet_series(sample_result, config.universe.themes)
    assert series.height == sample_result.panel.n_bars
    themes = [c for c in series.columns if c.startswith(td.THEME_PREFIX)]
    assert themes == [td.THEME_PREFIX + name for name in config.universe.themes]
    np.testing.assert_allclose(
        series.select(themes).sum_horizontal().to_numpy(),
        series["exposure_frac"].to_numpy(),
        atol=1e-12,
    )
    traded = sorted(set(sample_result.trades["symbol"].to_list()))
    closes = [c for c in series.columns if c.startswith(td.CLOSE_PREFIX)]
    assert closes == [td.CLOSE_PREFIX + s for s in traded]
    hold = series["buy_hold_usd"].to_numpy()
    assert hold[0] == pytest.approx(sample_result.initial_cash_usd, rel=1e-12)


def test_price_symbols_most_traded_first_capped():
    trades = pl.DataFrame({"symbol": ["B", "A", "B", "C", "C", "C"]})
    assert td.price_symbols(trades, limit=2) == ["B", "C"]
    assert td.price_symbols(trades.clear()) == []


# --------------------------------------------------------------------------------------------
# sim run and sim report
# --------------------------------------------------------------------------------------------


def test_cli_run_writes_page_and_series_beside_report_json_unchanged(run_files, tmp_path, capsys):
    page = tearsheet.html_path(run_files)
    assert page == run_files.with_suffix(".html")
    assert page.is_file()
    assert tearsheet.series_path(run_files).name == "run.tearsheet.parquet"
    assert tearsheet.series_path(run_files).is_file()
    plain = tmp_path / "plain.json"
    argv = ["run", "--seed", "42", "--no-mlflow", "--no-tearsheet", "--out", str(plain)]
    assert cli.main(argv) == 0
    assert "tearsheet" not in capsys.readouterr().out
    assert not plain.with_suffix(".html").exists()
    assert plain.read_bytes() == run_files.read_bytes()


def test_tearsheet_page_sections_identity_and_images(run_files):
    page = tearsheet.html_path(run_files).read_text()
    report = json.loads(run_files.read_text())
    meta = report["metadata"]
    for anchor in SECTION_IDS:
        assert f'<section id="{anchor}">' in page
    assert meta["config_hash"] in page
    assert f"seed <b>{meta['seed']}</b>" in page
    for key in report["summary"]:
        assert f'<td class="l">{key}' in page
    images = _images(page)
    assert len(images) == 8  # equity, drawdown, monthly, sharpe, themes, prices, pnl, reasons
    from PIL import Image

    for data in images:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            assert image.size[0] >= 600


def test_tearsheet_page_is_self_contained(run_files):
    page = tearsheet.html_path(run_files).read_text()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)
    assert "@import" not in page
    assert "url(" not in page
    assert "<script" not in page


def test_cli_report_redraws_same_page_from_files(run_files, tmp_path, capsys):
    out = tmp_path / "again.html"
    assert cli.main(["report", str(run_files), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"tearsheet    {out}"
    assert out.read_text() == tearsheet.html_path(run_files).read_text()


def test_cli_report_without_series_draws_report_sections_and_warns(run_files, tmp_path, capsys):
    lone = tmp_path / "lone.json"
    shutil.copyfile(run_files, lone)
    assert cli.main(["report", str(lone)]) == 0
    captured = capsys.readouterr()
    assert "lone.tearsheet.parquet" in captured.err
    assert "warning" in captured.err
    page = lone.with_suffix(".html").read_text()
    for anchor in ("pnl", "reasons", "metrics", "run"):
        assert f'<section id="{anchor}">' in page
    for anchor in SERIES_SECTIONS:
        assert f'<section id="{anchor}">' not in page
    assert "was not found" in page


def test_cli_report_baseline_report_renders(tmp_path, capsys):
    out = tmp_path / "baseline.html"
    assert (
        cli.main(["report", str(PROJECT_ROOT / "reports" / "baseline.json"), "--out", str(out)])
        == 0
    )
    capsys.readouterr()
    assert '<section id="metrics">' in out.read_text()


def test_cli_report_missing_file_exit_2_one_line(tmp_path, capsys):
    line = _bad_report_input(capsys, [str(tmp_path / "nope.json")])
    assert "nope.json" in line
    assert "must exist" in line


def test_cli_report_not_json_exit_2_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "must be JSON" in _bad_report_input(capsys, [str(bad)])


@pytest.mark.parametrize("payload", ["[1, 2]", '{"metadata": {}}', '"text"'])
def test_cli_report_json_not_a_report_exit_2_one_line(tmp_path, capsys, payload):
    bad = tmp_path / "other.json"
    bad.write_text(payload)
    assert "must be a `sim run` report" in _bad_report_input(capsys, [str(bad)])


def test_cli_report_binary_file_exit_2_one_line(tmp_path, capsys):
    bad = tmp_path / "blob.json"
    bad.write_bytes(b"\xff\xfe\x00\x81")
    _bad_report_input(capsys, [str(bad)])


def test_cli_report_out_directory_or_wrong_suffix_exit_2(run_files, tmp_path, capsys):
    assert "directory" in _bad_report_input(capsys, [str(run_files), "--out", str(tmp_path)])
    assert ".html" in _bad_report_input(capsys, [str(run_files), "--out", str(tmp_path / "x.png")])


def test_cli_report_series_of_another_run_exit_2(run_files, tmp_path, capsys):
    other = tmp_path / "other.json"
    report = json.loads(run_files.read_text())
    report["metadata"]["seed"] = 7
    other.write_text(json.dumps(report))
    shutil.copyfile(tearsheet.series_path(run_files), tearsheet.series_path(other))
    assert "must belong to the report" in _bad_report_input(capsys, [str(other)])


def test_cli_report_series_not_parquet_exit_2(run_files, tmp_path, capsys):
    copy = tmp_path / "copy.json"
    shutil.copyfile(run_files, copy)
    tearsheet.series_path(copy).write_text("not parquet")
    assert "must be a Parquet file" in _bad_report_input(capsys, [str(copy)])


def test_cli_report_no_path_exit_2_one_line(capsys):
    line = _bad_report_input(capsys, [])
    assert "path" in line


def test_cli_report_unknown_flag_exit_2_one_line(run_files, capsys):
    # argparse's top parser reports unrecognised arguments, as for every `sim` command
    code = cli.main(["report", str(run_files), "--bogus"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    assert err[0].startswith("sim: error: unrecognized arguments: --bogus")


# --------------------------------------------------------------------------------------------
# sweep heat map
# --------------------------------------------------------------------------------------------


def _sweep_table() -> pl.DataFrame:
    xs, ys, zs = [24, 48, 72], [3.0, 6.0], ["a", "b"]
    rows = [(x, y, z) for z in zs for y in ys for x in xs]
    return pl.DataFrame(
        {
            "combo": np.arange(len(rows)),
            "strategies.rules.breakout_lookback": [r[0] for r in rows],
            "strategies.rules.stop_loss_pct": [r[1] for r in rows],
            "strategies.rules.mode": [r[2] for r in rows],
            "sharpe": [r[0] / 24 + r[1] + (0.5 if r[2] == "b" else 0.0) for r in rows],
            "max_drawdown_pct": [r[1] * 2 - (1.0 if r[2] == "b" else 0.0) for r in rows],
            "total_pnl_pct": [1.0] * len(rows),
            "total_trades": [10] * len(rows),
        }
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_cli_report_sweep_table_heat_map_best_over_other_params(tmp_path, capsys, suffix):
    table = tmp_path / f"sweep{suffix}"
    frame = _sweep_table()
    frame.write_parquet(table) if suffix == ".parquet" else frame.write_csv(table)
    argv = ["report", str(table), "--x", "strategies.rules.breakout_lookback",
            "--y", "strategies.rules.stop_loss_pct", "--metric", "sharpe"]  # fmt: skip
    assert cli.main(argv) == 0
    capsys.readouterr()
    page = table.with_suffix(".html").read_text()
    assert len(_images(page)) == 1
    assert "highest over the other swept parameters (strategies.rules.mode)" in page
    # the best row (x 72, y 6, mode b: sharpe 3 + 6 + 0.5) heads the table
    best = page.split("Best 10")[1]
    first_row = best.split("<tr>")[2]
    assert "<td>9.5</td>" in first_row


def test_render_sweep_heatmap_lower_is_better_takes_minimum(monkeypatch):
    cells = []
    original = tearsheet._fig_sweep

    def spy(table: pl.DataFrame, x: str, y: str, metric: str, best_high: bool) -> str:
        cells.append((table, best_high))
        return original(table, x, y, metric, best_high)

    monkeypatch.setattr(tearsheet, "_fig_sweep", spy)
    tearsheet.render_sweep_heatmap(
        _sweep_table(), "strategies.rules.breakout_lookback", "strategies.rules.stop_loss_pct",
        "max_drawdown_pct", "t",
    )  # fmt: skip
    table, best_high = cells[0]
    assert best_high is False
    assert sorted(table["max_drawdown_pct"].to_list()) == [5.0, 5.0, 5.0, 11.0, 11.0, 11.0]


def test_cli_report_sweep_defaults_to_first_two_params(tmp_path, capsys):
    table = tmp_path / "two.parquet"
    _sweep_table().drop("strategies.rules.mode").write_parquet(table)
    assert cli.main(["report", str(table), "--out", str(tmp_path / "h.html")]) == 0
    capsys.readouterr()
    assert "sharpe over strategies.rules.breakout_lookback and" in (tmp_path / "h.html").read_text()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--x", "nope", "--y", "strategies.rules.stop_loss_pct"], "`--x` must be a column"),
        (["--metric", "nope"], "`--metric` must be a column"),
        (["--x", "strategies.rules.mode", "--y", "strategies.rules.mode"], "two different"),
    ],
)
def test_cli_report_sweep_bad_keys_exit_2(tmp_path, capsys, extra, needle):
    table = tmp_path / "sweep.parquet"
    _sweep_table().write_parquet(table)
    assert needle in _bad_report_input(capsys, [str(table), *extra])


def test_cli_report_walk_forward_table_exit_2(tmp_path, capsys):
    table = tmp_path / "wf.csv"
    pl.DataFrame({"window": [0], "train_sharpe": [1.0]}).write_csv(table)
    assert "walk-forward" in _bad_report_input(capsys, [str(table)])


def test_cli_report_x_with_json_report_exit_2(run_files, capsys):
    assert "sweep table" in _bad_report_input(capsys, [str(run_files), "--x", "a"])


# --------------------------------------------------------------------------------------------
# MLflow: the page is an artifact of the run
# --------------------------------------------------------------------------------------------


def test_cli_run_logs_tearsheet_artifact_equal_to_file(tracking_uri, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    out = tmp_path / "r.json"
    code = cli.main(["run", "--seed", "42", "--out", str(out), "--tracking-uri", tracking_uri])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("mlflow")]
    run_id = lines[0].split()[-1]
    client = MlflowClient(tracking_uri=tracking_uri)
    names = {f.path for f in client.list_artifacts(run_id)}
    assert tearsheet.HTML_ARTIFACT in names
    local = Path(client.download_artifacts(run_id, tearsheet.HTML_ARTIFACT, str(tmp_path / "dl")))
    assert local.read_bytes() == out.with_suffix(".html").read_bytes()


# --------------------------------------------------------------------------------------------
# a real browser
# --------------------------------------------------------------------------------------------


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium must be installed in CI (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--disable-extensions", "--disable-dev-shm-usage",
            f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603


def _console_errors(log: str) -> list[str]:
    # Chromium logs page console messages as `... INFO:CONSOLE(<line>)] "<message>", source: ...`
    # (console.error, uncaught exceptions, failed resource loads alike)
    return [line for line in log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_console_error_detector_sees_a_broken_page(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>console.error('boom');"
                    "undefinedFunction();</script></body></html>")  # fmt: skip
    done = _chromium(["--dump-dom", page.as_uri()], tmp_path / "profile")
    assert done.returncode == 0, done.stderr
    errors = _console_errors(done.stderr)
    assert any("boom" in e for e in errors), done.stderr
    assert any("undefinedFunction" in e for e in errors), done.stderr


def test_tearsheet_renders_in_chromium_no_console_errors_screenshot(run_files, tmp_path):
    from PIL import Image

    page = tearsheet.html_path(run_files)
    done = _chromium(["--dump-dom", page.as_uri()], tmp_path / "profile")
    assert done.returncode == 0, done.stderr
    assert _console_errors(done.stderr) == []
    dom = done.stdout
    for anchor in SECTION_IDS:
        assert f'<section id="{anchor}">' in dom
    assert dom.count("<img ") == 8

    shot = tmp_path / "tearsheet.png"
    done = _chromium(
        ["--window-size=1280,2400", f"--screenshot={shot}", page.as_uri()], tmp_path / "profile"
    )
    assert done.returncode == 0, done.stderr
    assert _console_errors(done.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        rgb = np.asarray(image.convert("RGB"))
    # not blank: many colours (figures, text), and far from one flat background
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 500
    assert rgb.std() > 20
    # the top of the page (title, cards) is not the background colour alone
    assert np.unique(rgb[:200].reshape(-1, 3), axis=0).shape[0] > 50
