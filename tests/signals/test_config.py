"""Config strictness, cross-field checks, the config hash and the shipped profiles."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from signals.config import PlatformConfig, RiskConfig, load_config
from signals.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "config"
AGGRESSIVE = ROOT / "config" / "profiles" / "aggressive"


@pytest.fixture(name="folder")
def _folder(tmp_path: Path) -> Path:
    for path in DEFAULT.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def _edit(folder: Path, name: str, edit) -> None:
    path = folder / name
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))


def test_config_unknown_key_names_key_file_and_suggestion(folder):
    _edit(folder, "policy.yaml", lambda d: d["risk"].update(max_total_at_risk=30))
    with pytest.raises(
        ConfigError, match=r"policy\.yaml.*`risk\.max_total_at_risk`.*`max_total_at_risk_pct`"
    ):
        load_config(folder)


def test_config_deprecated_key_names_replacement(folder):
    _edit(folder, "policy.yaml", lambda d: d["risk"].update(max_positions=3))
    with pytest.raises(
        ConfigError, match="`max_positions` is deprecated, use `max_open_positions`"
    ):
        load_config(folder)


@pytest.mark.parametrize(("file", "edit"), [
    ("policy.yaml", lambda d: d["risk"].update(max_open_positions="five")),
    ("policy.yaml", lambda d: d["risk"].update(max_total_at_risk_pct=150)),
    ("policy.yaml", lambda d: d["execution"].update(entry_order_type="stop")),
    ("universe.yaml", lambda d: d.update(max_universe_size=-1)),
])  # fmt: skip
def test_config_wrong_type_or_range_raises_config_error(folder, file, edit):
    _edit(folder, file, edit)
    with pytest.raises(ConfigError, match=file.replace(".", r"\.")):
        load_config(folder)


@pytest.mark.parametrize(("asset", "theme", "total"), [(20, 10, 25), (5, 30, 25), (30, 30, 25)])
def test_config_caps_not_nested_raises(folder, asset, theme, total):
    risk = {"max_asset_at_risk_pct": asset, "max_theme_at_risk_pct": theme,
            "max_total_at_risk_pct": total}  # fmt: skip
    _edit(folder, "policy.yaml", lambda d: d["risk"].update(risk))
    with pytest.raises(ConfigError, match="max_asset_at_risk_pct` <= `max_theme_at_risk_pct"):
        load_config(folder)


def test_config_fee_above_bound_raises(folder):
    _edit(folder, "policy.yaml", lambda d: d["execution"].update(taker_fee_bps=600))
    with pytest.raises(ConfigError, match="taker_fee_bps"):
        load_config(folder)


def test_config_regime_fast_not_below_slow_raises(folder):
    _edit(folder, "universe.yaml", lambda d: d["regime"].update(fast_bars=200, slow_bars=100))
    with pytest.raises(ConfigError, match="`fast_bars` must be < `slow_bars`"):
        load_config(folder)


def test_config_unknown_strategy_name_suggests_close_name(folder):
    _edit(folder, "strategies.yaml", lambda d: d["strategies"].update(rulez={"enabled": False}))
    with pytest.raises(ConfigError, match="unknown strategy `rulez`.*rules"):
        load_config(folder)


def test_config_strategy_params_strict(folder):
    _edit(
        folder, "strategies.yaml", lambda d: d["strategies"]["ma_cross"]["params"].update(fastt=3)
    )
    with pytest.raises(ConfigError, match="fastt"):
        load_config(folder)


def test_config_new_strategy_entry_defaults_to_disabled(folder):
    def edit(d):
        del d["strategies"]["ma_cross"]["enabled"]

    _edit(folder, "strategies.yaml", edit)
    assert load_config(folder).strategies.strategies["ma_cross"].enabled is False


def test_config_hash_same_config_same_16_hex_any_change_differs(folder):
    a = load_config(DEFAULT).config_hash()
    assert a == load_config(folder).config_hash()
    assert len(a) == 16
    assert int(a, 16) >= 0
    _edit(folder, "policy.yaml", lambda d: d["risk"].update(max_open_positions=4))
    assert load_config(folder).config_hash() != a
    assert PlatformConfig().with_seed(1).config_hash() != PlatformConfig().config_hash()


def test_config_default_and_aggressive_profiles_load():
    default = load_config(DEFAULT)
    aggressive = load_config(AGGRESSIVE)
    assert default.policy.risk == RiskConfig()
    risk = aggressive.policy.risk
    assert (risk.max_total_at_risk_pct, risk.max_theme_at_risk_pct, risk.max_asset_at_risk_pct) == (
        60,
        20,
        10,
    )
    assert (risk.max_open_positions, risk.stop_loss_pct) == (8, 15)
    assert aggressive.policy.execution.entry_order_type == "market"
    assert default.config_hash() != aggressive.config_hash()


def test_sim_run_aggressive_profile_no_mlflow_succeeds(tmp_path):
    from sim.cli import main  # noqa: PLC0415 (heavy import)

    out = tmp_path / "run.json"
    code = main(["run", "--config", str(AGGRESSIVE), "--no-mlflow", "--out", str(out)])
    assert code == 0
    assert out.exists()
