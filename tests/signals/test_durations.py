"""Lookbacks given as durations (`48h`): every lookback field, errors, the hash, the data check."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from signals.bars import Panel, load_bars, to_panel
from signals.config import (
    PlatformConfig,
    check_bar_interval,
    load_config,
    override_keys,
    override_path,
)
from signals.durations import duration_bars, format_duration, is_duration, parse_duration_ns
from signals.errors import ConfigError
from signals.strategies import STRATEGIES
from signals.types import PositiveBars

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "config"
HOUR_NS = 3_600 * 10**9

# every field that counts bars, found by its type: the test fails when a new one is not listed
LOOKBACKS = (
    "policy.risk.cooldown_after_fill_bars",
    "policy.risk.cooldown_after_stop_bars",
    "policy.risk.max_data_staleness_bars",
    "policy.execution.slippage_vol_window",
    "universe.quote_volume_window_bars",
    "universe.bad_tick_volume_window",
    "universe.regime.fast_bars",
    "universe.regime.slow_bars",
    "universe.regime.vol_window_bars",
    "universe.regime.vol_baseline_bars",
    "universe.regime.crash_lookback_bars",
    "strategies.rules.breakout_lookback",
    "strategies.rules.momentum_lookback",
    "strategies.rules.volume_lookback",
    "strategies.rules.mean_reversion_lookback",
    "strategies.rules.exit_lookback",
    "strategies.ma_cross.fast",
    "strategies.ma_cross.slow",
)


@pytest.fixture(name="config", scope="module")
def fixture_config() -> PlatformConfig:
    return load_config(DEFAULT)


@pytest.fixture(name="folder")
def fixture_folder(tmp_path: Path) -> Path:
    for path in DEFAULT.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def _edit(folder: Path, name: str, edit) -> None:
    path = folder / name
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))


def _value(config: PlatformConfig, key: str):
    node = config.model_dump()
    for part in override_path(key, config):
        node = node[part]
    return node


def _is_bars(metadata) -> bool:
    # `PositiveBars` and `NonNegBars` share the BeforeValidator that reads durations
    return any(getattr(m, "func", None) is PositiveBars.__metadata__[0].func for m in metadata)


def _bar_fields() -> set[str]:
    config = PlatformConfig()
    found = set()
    for key in override_keys(config):
        parts = override_path(key, config)
        if parts[0] == "strategies":
            info = STRATEGIES[parts[2]].Params.model_fields.get(parts[-1])
        else:
            model = type(config)
            info = None
            for part in parts:
                info = model.model_fields.get(part) if isinstance(model, type) else None
                model = info.annotation if info is not None else None
        if info is not None and _is_bars(info.metadata):
            found.add(key)
    return found


# --------------------------------------------------------------------------------------------
# the parser
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "ns"), [
    ("90m", 90 * 60 * 10**9), ("48h", 48 * HOUR_NS), ("2d", 48 * HOUR_NS), ("1w", 168 * HOUR_NS),
    ("0h", 0),
])  # fmt: skip
def test_parse_duration_ns_units_m_h_d_w_scale(text: str, ns: int) -> None:
    assert is_duration(text)
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize("text", ["48", "48x", "1.5h", "-2h", "h", "48 h", "48H", "2d12h", ""])
def test_parse_duration_ns_bad_text_raises_value_error_naming_units(text: str) -> None:
    assert not is_duration(text)
    with pytest.raises(ValueError, match=r"unit m, h, d or w"):
        parse_duration_ns(text)


def test_duration_bars_exact_division_else_value_error() -> None:
    assert duration_bars("2d", "1h") == 48
    assert duration_bars("90m", "15m") == 6
    with pytest.raises(ValueError, match="whole number of 1h bars, was '90m'"):
        duration_bars("90m", "1h")
    assert format_duration(15 * 60 * 10**9) == "15m"
    assert format_duration(7 * 24 * HOUR_NS) == "1w"


# --------------------------------------------------------------------------------------------
# every lookback field
# --------------------------------------------------------------------------------------------


def test_lookback_fields_listed_here_are_every_bars_field() -> None:
    assert _bar_fields() == set(LOOKBACKS)


@pytest.mark.parametrize("key", LOOKBACKS)
def test_lookback_duration_equals_bar_count_in_with_overrides(config, key: str) -> None:
    # 2d = 48 bars at 1h; fast/slow pairs keep their order with the partner's default
    other = {
        "universe.regime.fast_bars": {"universe.regime.slow_bars": 168},
        "universe.regime.slow_bars": {"universe.regime.fast_bars": 24},
        "strategies.ma_cross.fast": {"strategies.ma_cross.slow": 96},
        "strategies.ma_cross.slow": {"strategies.ma_cross.fast": 24},
    }.get(key, {})
    by_duration = config.with_overrides({key: "2d", **other})
    by_bars = config.with_overrides({key: 48, **other})
    assert _value(by_duration, key) == 48
    assert by_duration.config_hash() == by_bars.config_hash()
    assert by_duration.durations == {key: "2d"}
    assert by_bars.durations == {}


def test_lookback_durations_in_yaml_files_equal_bar_counts(folder: Path, config) -> None:
    _edit(folder, "strategies.yaml", lambda d: d["strategies"]["rules"]["params"].update(
        breakout_lookback="2d", exit_lookback="1d"))  # fmt: skip
    _edit(folder, "strategies.yaml", lambda d: d["strategies"]["ma_cross"]["params"].update(
        fast="1d", slow="4d"))  # fmt: skip
    _edit(folder, "policy.yaml", lambda d: d["execution"].update(slippage_vol_window="1d"))
    _edit(folder, "policy.yaml", lambda d: d["risk"].update(cooldown_after_stop_bars="1d"))
    _edit(folder, "universe.yaml", lambda d: d["regime"].update(slow_bars="1w", fast_bars="24h"))
    _edit(folder, "universe.yaml", lambda d: d.update(quote_volume_window_bars="1440m"))
    loaded = load_config(folder)
    # the shipped files say the same in bars: same values, same hash (`==` also compares the
    # record of durations, which differs)
    assert loaded.model_dump() == config.model_dump()
    assert loaded.config_hash() == config.config_hash()
    rules = loaded.strategies.strategies["rules"].params
    assert (rules["breakout_lookback"], rules["exit_lookback"]) == (48, 24)
    assert loaded.universe.regime.slow_bars == 168
    assert loaded.durations == {
        "policy.execution.slippage_vol_window": "1d",
        "policy.risk.cooldown_after_stop_bars": "1d",
        "strategies.ma_cross.fast": "1d",
        "strategies.ma_cross.slow": "4d",
        "strategies.rules.breakout_lookback": "2d",
        "strategies.rules.exit_lookback": "1d",
        "universe.quote_volume_window_bars": "1440m",
        "universe.regime.fast_bars": "24h",
        "universe.regime.slow_bars": "1w",
    }


def test_bar_interval_converts_durations_to_its_bars(folder: Path) -> None:
    _edit(folder, "backtest.yaml", lambda d: d.update(bar_interval="15m"))
    _edit(folder, "strategies.yaml", lambda d: d["strategies"]["rules"]["params"].update(
        breakout_lookback="2d"))  # fmt: skip
    _edit(folder, "universe.yaml", lambda d: d["regime"].update(crash_lookback_bars="6h"))
    loaded = load_config(folder)
    assert loaded.strategies.strategies["rules"].params["breakout_lookback"] == 192
    assert loaded.universe.regime.crash_lookback_bars == 24
    # bar counts stay bar counts whatever the interval
    assert loaded.strategies.strategies["rules"].params["momentum_lookback"] == 24


def test_integers_unchanged_and_shipped_hash_kept(config) -> None:
    assert config.durations == {}
    assert config.backtest.bar_interval == "1h"
    assert config.strategies.strategies["rules"].params["breakout_lookback"] == 48
    # the hash is the earlier formula over the fields there were before `bar_interval`, so the
    # shipped config's hash (8eabac96625d9b79 when it came) did not change
    data = config.model_dump(mode="json")
    assert data["backtest"].pop("bar_interval") == "1h"
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    assert config.config_hash() == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert config.with_overrides({"backtest.bar_interval": "15m"}).config_hash() == (
        config.config_hash()
    )


# --------------------------------------------------------------------------------------------
# errors name the key, the duration and the interval
# --------------------------------------------------------------------------------------------


def test_duration_not_whole_bars_in_yaml_names_key_duration_and_interval(folder: Path) -> None:
    _edit(folder, "strategies.yaml", lambda d: d["strategies"]["rules"]["params"].update(
        breakout_lookback="90m"))  # fmt: skip
    with pytest.raises(
        ConfigError,
        match=r"strategies\.yaml \(strategies\.rules\.params\): `breakout_lookback` must be a "
        r"whole number of 1h bars \(`backtest\.bar_interval`\), was '90m'",
    ):
        load_config(folder)


def test_duration_bad_unit_in_yaml_names_key_and_units(folder: Path) -> None:
    _edit(folder, "universe.yaml", lambda d: d["regime"].update(slow_bars="1y"))
    with pytest.raises(
        ConfigError,
        match=r"universe\.yaml: `regime\.slow_bars` must be a whole number of bars or a duration "
        r"such as 48h, with unit m, h, d or w .*, was '1y'",
    ):
        load_config(folder)


@pytest.mark.parametrize(("key", "value", "fragment"), [
    ("strategies.rules.breakout_lookback", "90m", r"`breakout_lookback` must be a whole number "
                                                   r"of 1h bars"),
    ("policy.execution.slippage_vol_window", "30m", r"`policy\.execution\.slippage_vol_window` "
                                                     r"must be a whole number of 1h bars"),
    ("universe.bad_tick_volume_window", "2x", r"`universe\.bad_tick_volume_window` must be a "
                                              r"whole number of bars or a duration"),
    ("universe.regime.fast_bars", "0h", r"`universe\.regime\.fast_bars` .*greater than 0"),
])  # fmt: skip
def test_with_overrides_bad_duration_names_key(config, key: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        config.with_overrides({key: value})


def test_bad_bar_interval_names_key(folder: Path) -> None:
    _edit(folder, "backtest.yaml", lambda d: d.update(bar_interval="hourly"))
    with pytest.raises(ConfigError, match=r"backtest\.yaml: `bar_interval` must be a duration"):
        load_config(folder)


def test_duration_without_bar_interval_context_is_refused() -> None:
    rules = STRATEGIES["rules"].Params
    with pytest.raises(ValueError, match="needs the bar interval"):
        rules.model_validate({"breakout_lookback": "48h"})
    assert rules.model_validate({"breakout_lookback": "48h"}, context={"bar_interval": "1h"}) == (
        rules(breakout_lookback=48)
    )


def test_with_overrides_new_bar_interval_converts_earlier_durations(config) -> None:
    two_days = config.with_overrides({"strategies.rules.breakout_lookback": "2d"})
    quarter = two_days.with_overrides({"backtest.bar_interval": "15m"})
    assert quarter.strategies.strategies["rules"].params["breakout_lookback"] == 192
    back = quarter.with_overrides({"strategies.rules.breakout_lookback": 10})
    assert back.durations == {}
    assert back.strategies.strategies["rules"].params["breakout_lookback"] == 10
    # `with_seed` keeps the record
    assert two_days.with_seed(7).durations == {"strategies.rules.breakout_lookback": "2d"}


# --------------------------------------------------------------------------------------------
# data of another bar spacing
# --------------------------------------------------------------------------------------------


def _panel(bar_ns: int, n_bars: int = 400) -> Panel:
    rng = np.random.default_rng(3)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.006, n_bars)))
    ts = 1_704_067_200 * 10**9 + np.arange(n_bars, dtype=np.int64) * bar_ns
    col = lambda a: np.ascontiguousarray(a.reshape(-1, 1))  # noqa: E731
    return Panel(ts, ("BTC-USD",), col(close), col(close * 1.001), col(close * 0.999), col(close),
                 col(np.full(n_bars, 50.0)))  # fmt: skip


def test_check_bar_interval_refuses_other_spacing_only_with_durations(config) -> None:
    quarter_ns = 15 * 60 * 10**9
    check_bar_interval(config, quarter_ns)  # bar counts: any spacing, as before
    durations = config.with_overrides({"universe.regime.slow_bars": "1w"})
    check_bar_interval(durations, HOUR_NS)
    with pytest.raises(
        ConfigError,
        match=r"`backtest\.bar_interval` must be the data's bar spacing when lookbacks are "
        r"durations, was 1h for bars 15m apart \(durations: `universe\.regime\.slow_bars` 1w\)",
    ):
        check_bar_interval(durations, quarter_ns)


def test_run_backtest_refuses_durations_on_other_bar_spacing(config) -> None:
    from sim.engine import run_backtest  # noqa: PLC0415

    durations = config.with_overrides({"strategies.rules.exit_lookback": "1d"})
    panel = _panel(15 * 60 * 10**9)
    with pytest.raises(ConfigError, match="was 1h for bars 15m apart"):
        run_backtest(panel, durations, allow_missing_symbols=True)
    matching = durations.with_overrides({"backtest.bar_interval": "15m"})
    assert matching.strategies.strategies["rules"].params["exit_lookback"] == 96
    run_backtest(panel, config, allow_missing_symbols=True)  # bar counts run as before


def test_sim_run_refuses_durations_on_other_bar_spacing(folder: Path, tmp_path, capsys) -> None:
    from sim import cli  # noqa: PLC0415

    frame = load_bars(ROOT / "data" / "sample_hourly.parquet")
    ts = frame["ts"].unique().sort()[:400]
    frame = frame.filter(pl.col("ts").is_in(ts.implode()))
    t0 = frame["ts"].min()
    half = frame.with_columns(  # 30-minute bars
        ts=(t0 + (pl.col("ts") - t0) / 2).cast(pl.Datetime("ns", "UTC"))
    )
    data = tmp_path / "half.parquet"
    half.write_parquet(data)
    assert to_panel(half).ts_ns[1] - to_panel(half).ts_ns[0] == HOUR_NS // 2
    _edit(folder, "strategies.yaml", lambda d: d["strategies"]["rules"]["params"].update(
        breakout_lookback="2d"))  # fmt: skip
    argv = ["run", "--config", str(folder), "--data", str(data), "--no-mlflow",
            "--no-tearsheet", "--out", str(tmp_path / "r.json")]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "was 1h for bars 30m apart" in err
    assert "`strategies.rules.breakout_lookback` 2d" in err


# --------------------------------------------------------------------------------------------
# sweeps
# --------------------------------------------------------------------------------------------


def test_sweep_grid_durations_equal_bar_counts(config) -> None:
    from sim.sweep import build_plan, parse_grid  # noqa: PLC0415

    grid = parse_grid(["strategies.rules.breakout_lookback=24h,2d", "universe.regime.slow_bars=1w"])
    assert grid["strategies.rules.breakout_lookback"] == ["24h", "2d"]
    plan = build_plan(config, grid)
    by_bars = build_plan(config, parse_grid(["strategies.rules.breakout_lookback=24,48",
                                             "universe.regime.slow_bars=168"]))  # fmt: skip
    np.testing.assert_array_equal(plan.groups[0].rules_p, by_bars.groups[0].rules_p)
    assert [c["strategies.rules.breakout_lookback"] for c in plan.groups[0].combos] == [24, 48]
    assert plan.groups[0].config.config_hash() == by_bars.groups[0].config.config_hash()
    assert set(plan.groups[0].config.durations) == {
        "strategies.rules.breakout_lookback",
        "universe.regime.slow_bars",
    }
    assert by_bars.groups[0].config.durations == {}


def test_sweep_grid_bad_duration_names_key_and_value(config) -> None:
    from sim.sweep import build_plan, parse_grid  # noqa: PLC0415

    grid = parse_grid(["strategies.rules.breakout_lookback=90m"])
    with pytest.raises(
        ConfigError,
        match=r"`--grid strategies\.rules\.breakout_lookback` value '90m': must be a whole "
        r"number of 1h bars",
    ):
        build_plan(config, grid)


def test_sweep_refuses_durations_on_other_bar_spacing(config) -> None:
    from sim.sweep import build_plan, group_inputs, parse_grid  # noqa: PLC0415

    plan = build_plan(config, parse_grid(["strategies.rules.breakout_lookback=1d"]))
    with pytest.raises(ConfigError, match="was 1h for bars 15m apart"):
        group_inputs(_panel(15 * 60 * 10**9), plan.groups[0])
    with pytest.raises(ConfigError, match="must not be swept"):
        build_plan(config, parse_grid(["backtest.bar_interval=15m"]))


def test_walk_forward_takes_the_shared_durations() -> None:
    from sim.sweep import parse_walk_forward  # noqa: PLC0415

    assert parse_walk_forward("2w:1d", HOUR_NS) == (336, 24)
    assert parse_walk_forward("90D:720", HOUR_NS) == (2160, 720)
    assert parse_walk_forward("600m:90m", HOUR_NS) == (10, 1)
    for bad in ("0h:1d", "1y:1d", "1d"):
        with pytest.raises(ConfigError, match="--walk-forward"):
            parse_walk_forward(bad, HOUR_NS)
