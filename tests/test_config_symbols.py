"""Issue 14 item 3: every symbol in every config canonical when it loads, and present in the data.

Configs are copies of the shipped `config/` with `universe.yaml` edited; the data is a seeded
synthetic panel of ADA-USD, BTC-USD, ETH-USD and SOL-USD. The CLI runs in-process through
`sim.cli.main` (once as a subprocess, for the warning on the real stderr).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from signals.bars import load_bars, to_panel
from signals.config import check_config_symbols, load_config
from signals.enums import Regime
from signals.errors import ConfigError
from signals.pipeline import decision_inputs, symbol_tiers
from signals.universe.nb import TIER_CORE, TIER_EXCLUDED
from sim import cli
from sim.engine import run_backtest
from sim.sweep import sweep, walk_forward
from sim.synth import synth_bars

ROOT = Path(__file__).resolve().parents[1]
DATA_SYMBOLS = "ADA-USD, BTC-USD, ETH-USD, SOL-USD"
GRID = ["--grid", "strategies.rules.exit_lookback=12,24"]


@pytest.fixture(autouse=True)
def _fixed_git_commit(monkeypatch):
    # other engineers commit while the suite runs; the report's commit stamp must not flake
    monkeypatch.setattr("sim.report.git_commit", lambda *args: "0" * 40)


@pytest.fixture(name="data_file", scope="module")
def _data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bars") / "bars.parquet"
    synth_bars(seed=3, n_symbols=4, n_bars=800).write_parquet(path)
    return path


@pytest.fixture(name="panel", scope="module")
def _panel(data_file):
    return to_panel(load_bars(data_file))


def _folder(tmp_path: Path, name: str = "config", **universe) -> Path:
    """Return a copy of the shipped config folder with `universe.yaml` keys replaced."""
    folder = tmp_path / name
    folder.mkdir()
    for path in (ROOT / "config").glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    data = yaml.safe_load((folder / "universe.yaml").read_text())
    for key, value in universe.items():
        if key == "reference_symbol":
            data["regime"][key] = value
        else:
            data[key] = value
    (folder / "universe.yaml").write_text(yaml.safe_dump(data))
    return folder


def _run(folder: Path, data_file: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--no-mlflow", "--config", str(folder), "--data", str(data_file),
            "--out", str(out), *extra]  # fmt: skip


def _bad_input(capsys, argv: list[str]) -> str:
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in captured.err
    return lines[0]


# --------------------------------------------------------------------------------------------
# symbols that are not symbols: refused when the config loads
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("universe", "key"), [
    ({"core": ["BTC-USD", "!!??"]}, "`core.1`"),
    ({"rotational": ["!!??"]}, "`rotational.0`"),
    ({"excluded": ["BTC-USD-X"]}, "`excluded.0`"),
    ({"themes": {"l1": ["BTC-USD", "!!??"]}}, "`themes.l1.1`"),
    ({"products": {"!!??": {"base_increment": 0.1}}}, "`products.!!??"),
    ({"spread_bps_estimate": {"default": 8, "!!??": 3}}, "`spread_bps_estimate.!!??"),
    ({"reference_symbol": "!!??"}, "`regime.reference_symbol`"),
])  # fmt: skip
def test_config_symbol_not_canonicalisable_refused_naming_file_key_and_value(
    tmp_path, universe, key
):
    folder = _folder(tmp_path, **universe)
    with pytest.raises(ConfigError) as info:
        load_config(folder)
    message = str(info.value)
    assert f"{folder / 'universe.yaml'}: {key}" in message
    assert "must be a symbol `BASE-QUOTE`" in message
    assert ("'BTC-USD-X'" if "excluded" in universe else "'!!??'") in message


def test_cli_run_core_symbol_not_canonicalisable_exit_2_one_line_no_report(
    tmp_path, data_file, capsys
):
    out = tmp_path / "report.json"
    line = _bad_input(capsys, _run(_folder(tmp_path, core=["BTC-USD", "!!??"]), data_file, out))
    assert "universe.yaml: `core.1` must be a symbol" in line
    assert "'!!??'" in line
    assert not out.exists()


@pytest.mark.parametrize("universe", [
    {"core": ["BTC-USD", "btc-usd"]},
    {"excluded": ["SOLUSD", "sol/usd"]},
    {"themes": {"l1": ["btc-usd"], "memes": ["BTC-USD"]}},
    {"products": {"DOGE-USD": {"base_increment": 0.1}, "doge_usd": {"base_increment": 1.0}}},
    {"spread_bps_estimate": {"BTC-USD": 2, "BTCUSD": 3}},
])  # fmt: skip
def test_config_one_symbol_in_two_spellings_refused(tmp_path, universe):
    # a dict would keep the last of two spellings; a list would hold the symbol twice
    with pytest.raises(ConfigError, match=r"universe\.yaml.*(twice|once|one theme)"):
        load_config(_folder(tmp_path, **universe))


# --------------------------------------------------------------------------------------------
# other spellings: normalised, and the decision treats them as the symbol they name
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["btc-usd", "BTCUSD", "xbt/usd"])
def test_core_symbol_spelled_otherwise_is_normalised_and_btc_stays_core(tmp_path, panel, spelling):
    # one universe slot: a BTC demoted to rotational loses it to core ETH and never trades
    canonical = load_config(_folder(tmp_path, "a", core=["BTC-USD", "ETH-USD"],
                                    max_universe_size=1))  # fmt: skip
    spelled = load_config(_folder(tmp_path, "b", core=[spelling, "ETH-USD"], max_universe_size=1))
    assert spelled.universe.core == ["BTC-USD", "ETH-USD"]
    assert spelled.config_hash() == canonical.config_hash()
    tiers = symbol_tiers(spelled, panel.symbols)
    assert tiers[panel.symbols.index("BTC-USD")] == TIER_CORE
    np.testing.assert_array_equal(
        decision_inputs(panel, spelled).block_reason, decision_inputs(panel, canonical).block_reason
    )
    result = run_backtest(panel, spelled)
    assert "BTC-USD" in result.trades["symbol"].to_list()
    assert_frame_equal(result.trades, run_backtest(panel, canonical).trades)


def test_excluded_symbol_spelled_otherwise_is_excluded_and_never_bought(tmp_path, panel):
    config = load_config(_folder(tmp_path, excluded=["sol/usd"]))
    assert config.universe.excluded == ["SOL-USD"]
    assert symbol_tiers(config, panel.symbols)[panel.symbols.index("SOL-USD")] == TIER_EXCLUDED
    shipped = run_backtest(panel, load_config(ROOT / "config"))
    assert "SOL-USD" in shipped.trades["symbol"].to_list()  # so the exclusion is what stops it
    result = run_backtest(panel, config)
    assert "SOL-USD" not in result.orders.filter(pl.col("side") == "buy")["symbol"].to_list()


def test_product_and_spread_keys_spelled_otherwise_apply_to_the_symbol(tmp_path):
    config = load_config(_folder(
        tmp_path, products={"default": {"base_increment": 1e-8}, "doge_usd": {"base_increment": 1.0}},
        spread_bps_estimate={"default": 8, "solusd": 25},
    ))  # fmt: skip
    assert config.universe.product("DOGE-USD").base_increment == 1.0
    assert config.universe.spread_bps("SOL-USD") == 25.0
    assert sorted(config.universe.products) == ["DOGE-USD", "default"]


def test_regime_reference_spelled_otherwise_gives_the_same_regimes(tmp_path, panel):
    canonical = decision_inputs(panel, load_config(ROOT / "config")).regime
    spelled = decision_inputs(panel, load_config(_folder(tmp_path, reference_symbol="xbt-usd")))
    assert not np.all(canonical == Regime.Chop)  # the reference is really used
    np.testing.assert_array_equal(spelled.regime, canonical)


# --------------------------------------------------------------------------------------------
# configured symbols absent from the data
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("universe", "named"), [
    ({"core": ["BTC-USD", "XRPP-USD"]}, "`core` XRPP-USD"),
    ({"excluded": ["SOLL-USD"]}, "`excluded` SOLL-USD"),
    ({"rotational": ["SOL-USD", "ADAA-USD"]}, "`rotational` ADAA-USD"),
])  # fmt: skip
def test_cli_run_universe_symbol_absent_from_data_exit_2_names_it_and_data_symbols(
    tmp_path, data_file, capsys, universe, named
):
    out = tmp_path / "report.json"
    line = _bad_input(capsys, _run(_folder(tmp_path, **universe), data_file, out))
    assert named in line
    assert f"the data has [{DATA_SYMBOLS}]" in line
    assert "--allow-missing-symbols" in line
    assert not out.exists()


@pytest.mark.parametrize("universe", [
    {"core": ["BTC-USD", "XRPP-USD"]}, {"excluded": ["SOLL-USD"]},
])  # fmt: skip
def test_run_backtest_universe_symbol_absent_from_data_raises_config_error(
    tmp_path, panel, universe
):
    config = load_config(_folder(tmp_path, **universe))
    symbol = next(iter(universe.values()))[-1]
    with pytest.raises(ConfigError, match=rf"{symbol}.*the data has \[{DATA_SYMBOLS}\]"):
        run_backtest(panel, config)


@pytest.mark.parametrize("allow", [[], ["--allow-missing-symbols"]])
def test_cli_run_regime_reference_absent_exit_2_even_with_allow_missing(
    tmp_path, data_file, capsys, allow
):
    out = tmp_path / "report.json"
    folder = _folder(tmp_path, reference_symbol="NOPE-USD")
    line = _bad_input(capsys, _run(folder, data_file, out, *allow))
    assert "`regime.reference_symbol` NOPE-USD" in line
    assert f"the data has [{DATA_SYMBOLS}]" in line
    assert not out.exists()


def test_run_backtest_regime_reference_absent_raises_even_with_allow_missing(tmp_path, panel):
    config = load_config(_folder(tmp_path, reference_symbol="NOPE-USD"))
    with pytest.raises(ConfigError, match=r"`regime\.reference_symbol` NOPE-USD.*ADA-USD"):
        run_backtest(panel, config, allow_missing_symbols=True)


def test_regime_reference_needed_only_when_the_regime_is_read(tmp_path, panel):
    # ma_cross alone reads no regime; with every multiplier 1 the sizing reads none either
    folder = _folder(tmp_path, core=[], reference_symbol="NOPE-USD")
    strategies = yaml.safe_load((folder / "strategies.yaml").read_text())
    strategies["strategies"]["rules"]["enabled"] = False
    strategies["strategies"]["ma_cross"]["enabled"] = True
    (folder / "strategies.yaml").write_text(yaml.safe_dump(strategies))
    policy = yaml.safe_load((folder / "policy.yaml").read_text())
    policy["risk"]["regime_multipliers"] = {"bull": 1, "chop": 1, "bear": 1, "crash": 1}
    (folder / "policy.yaml").write_text(yaml.safe_dump(policy))
    unread = load_config(folder)
    assert run_backtest(panel, unread).orders.height > 0
    # a multiplier other than 1 reads it
    shrink = load_config(folder).policy.risk.model_copy(
        update={"regime_multipliers": {"bull": 1.0, "chop": 1.0, "bear": 0.5, "crash": 0.0}}
    )
    sized = unread.model_copy(update={"policy": unread.policy.model_copy(update={"risk": shrink})})
    with pytest.raises(ConfigError, match=r"`regime\.reference_symbol` NOPE-USD"):
        run_backtest(panel, sized)
    # so does a strategy whose class reads it (`rules`)
    strategies["strategies"]["rules"]["enabled"] = True
    (folder / "strategies.yaml").write_text(yaml.safe_dump(strategies))
    with pytest.raises(ConfigError, match=r"`regime\.reference_symbol` NOPE-USD"):
        run_backtest(panel, load_config(folder))


def test_cli_run_allow_missing_symbols_warns_and_runs_as_without_them(
    tmp_path, data_file, capsys, caplog
):
    plain, relaxed = tmp_path / "plain.json", tmp_path / "relaxed.json"
    assert cli.main(_run(ROOT / "config", data_file, plain)) == 0
    folder = _folder(tmp_path, core=["BTC-USD", "ETH-USD", "XRPP-USD"], excluded=["SOLL-USD"])
    with caplog.at_level(logging.WARNING, logger="signals.config"):
        assert cli.main(_run(folder, data_file, relaxed, "--allow-missing-symbols")) == 0
    capsys.readouterr()
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "signals.config"]
    assert "`core` XRPP-USD, `excluded` SOLL-USD" in warning
    assert f"the data has [{DATA_SYMBOLS}]" in warning
    a, b = json.loads(plain.read_text()), json.loads(relaxed.read_text())
    assert a["trades"] == b["trades"]
    assert a["summary"] == b["summary"]
    assert a["no_trade_reasons"] == b["no_trade_reasons"]


def test_run_backtest_allow_missing_symbols_warns_and_returns_the_same_trades(
    tmp_path, panel, caplog
):
    config = load_config(_folder(tmp_path, core=["BTC-USD", "ETH-USD", "XRPP-USD"]))
    with caplog.at_level(logging.WARNING, logger="signals.config"):
        result = run_backtest(panel, config, allow_missing_symbols=True)
    assert ["XRPP-USD" in r.getMessage() for r in caplog.records] == [True]
    assert_frame_equal(result.trades, run_backtest(panel, load_config(ROOT / "config")).trades)


def test_cli_run_allow_missing_symbols_warning_is_one_stderr_line(tmp_path, data_file):
    folder = _folder(tmp_path, core=["BTC-USD", "XRPP-USD"])
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "sim.cli", *_run(folder, data_file, out, "--allow-missing-symbols")],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "XRPP-USD" in ln]
    assert len(lines) == 1
    assert "not in the data, ignored (--allow-missing-symbols)" in lines[0]
    assert "Traceback" not in proc.stderr
    assert out.exists()


def test_check_config_symbols_returns_the_absent_ones_when_allowed(tmp_path):
    config = load_config(_folder(tmp_path, core=["BTC-USD", "XRPP-USD"], excluded=["SOLL-USD"]))
    data = ["ADA-USD", "BTC-USD", "ETH-USD", "SOL-USD"]
    got = check_config_symbols(config, data, allow_missing=True)
    assert got == (("core", "XRPP-USD"), ("excluded", "SOLL-USD"))
    assert check_config_symbols(load_config(ROOT / "config"), data) == ()


# --------------------------------------------------------------------------------------------
# sweeps and walk-forward
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("walk", [[], ["--walk-forward", "300:200"]])
def test_cli_sweep_core_symbol_absent_exit_2_names_it(tmp_path, data_file, capsys, walk):
    folder = _folder(tmp_path, core=["BTC-USD", "XRPP-USD"])
    line = _bad_input(capsys, ["sweep", *GRID, "--config", str(folder), "--data", str(data_file),
                               "--no-mlflow", "--no-progress", *walk])  # fmt: skip
    assert "`core` XRPP-USD" in line
    assert f"the data has [{DATA_SYMBOLS}]" in line


def test_cli_sweep_grid_reference_symbol_absent_exit_2_names_the_grid_value(
    tmp_path, data_file, capsys
):
    argv = ["sweep", *GRID, "--grid", "universe.regime.reference_symbol=BTC-USD,NOPE-USD",
            "--data", str(data_file), "--no-mlflow", "--no-progress"]  # fmt: skip
    line = _bad_input(capsys, argv)
    assert "--grid universe.regime.reference_symbol=NOPE-USD" in line
    assert "`regime.reference_symbol` NOPE-USD" in line


def test_sweep_and_walk_forward_api_refuse_absent_symbols_unless_allowed(tmp_path, panel, caplog):
    config = load_config(_folder(tmp_path, core=["BTC-USD", "ETH-USD", "XRPP-USD"]))
    grid = {"strategies.rules.exit_lookback": [12, 24]}
    with pytest.raises(ConfigError, match="`core` XRPP-USD"):
        sweep(panel, config, grid)
    with pytest.raises(ConfigError, match="`core` XRPP-USD"):
        walk_forward(panel, config, grid, 300, 200)
    with caplog.at_level(logging.WARNING, logger="signals.config"):
        table = sweep(panel, config, grid, allow_missing_symbols=True)
    assert len([r for r in caplog.records if "XRPP-USD" in r.getMessage()]) == 1
    assert_frame_equal(table, sweep(panel, load_config(ROOT / "config"), grid))
