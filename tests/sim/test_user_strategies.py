"""User strategies everywhere: modules named in strategies.yaml, --strategies-from, entry points,
re-registration, and sweeps / walk-forward of a strategy outside the numba sweep kernel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from signals.bars import Panel, load_bars, to_panel
from signals.config import PlatformConfig, load_config
from signals.errors import ConfigError
from signals.strategies import STRATEGIES, register
from signals.strategies.ma_cross import MaCross
from signals.strategies.registry import import_strategies, import_strategies_from
from sim.sweep import build_plan, group_inputs, local_engine, run_one, run_plan, walk_forward
from tests.sim.test_sweep import _summary_of_backtest

ROOT = Path(__file__).resolve().parents[2]
N_BARS = 2000
SIM = str(Path(sys.executable).with_name("sim"))

# A user strategy as a researcher writes it: a module of its own, numpy over the context.
USER_MODULE = '''
import numpy as np
from pydantic import BaseModel, Field

from signals.strategies import Proposals, Strategy, StrategyContext, register


class DipParams(BaseModel, frozen=True, extra="forbid"):
    lookback: int = Field(24, gt=1)
    drop_pct: float = Field(3.0, gt=0)
    target_weight_pct: float = Field(5.0, gt=0, le=100)


@register
class DipBuyer(Strategy):
    """Buy a close `drop_pct` below the highest close of the last `lookback` bars; exit above
    the lookback's mean. Causal: row t reads rows t - lookback + 1 .. t."""

    name = "dip_buyer"
    Params = DipParams
    reads_regime = False

    @classmethod
    def warmup_bars(cls, params):
        return DipParams.model_validate(params.model_dump()).lookback

    @classmethod
    def propose(cls, ctx: StrategyContext) -> Proposals:
        p = DipParams.model_validate(ctx.params.model_dump())
        close = ctx.close
        n, s = close.shape
        weight = np.full((n, s), np.nan)
        for t in range(p.lookback - 1, n):
            window = close[t - p.lookback + 1 : t + 1]
            top = np.nanmax(window, axis=0) if np.isfinite(window).any() else np.nan
            mean = np.nanmean(window, axis=0) if np.isfinite(window).any() else np.nan
            dip = close[t] <= top * (1 - p.drop_pct / 100)
            weight[t] = np.where(dip, p.target_weight_pct / 100, np.where(close[t] > mean, 0.0, np.nan))
        return Proposals(weight=weight, stop_pct=np.full((1, s), np.nan), take_pct=np.zeros((1, s)))
'''


@pytest.fixture(name="panel", scope="module")
def fixture_panel() -> Panel:
    frame = load_bars(ROOT / "data" / "sample_hourly.parquet")
    ts = frame["ts"].unique().sort()[:N_BARS]
    return to_panel(frame.filter(pl.col("ts").is_in(ts.implode())))


@pytest.fixture(name="user_file", scope="module")
def fixture_user_file(tmp_path_factory: pytest.TempPathFactory):
    """The user module's file, imported afresh (its `dip_buyer` registered) for this module."""
    path = tmp_path_factory.mktemp("user") / "dip_strategies.py"
    path.write_text(USER_MODULE)
    STRATEGIES.pop("dip_buyer", None)  # another test file's `dip_buyer` must not linger
    import_strategies(str(path))
    yield path
    STRATEGIES.pop("dip_buyer", None)


@pytest.fixture(name="ma_clone", scope="module")
def fixture_ma_clone():
    """`ma_cross` under another name: outside the sweep kernel, the same proposals."""

    @register
    class MaCrossClone(MaCross):
        name = "ma_cross_clone"

    yield MaCrossClone
    STRATEGIES.pop("ma_cross_clone", None)


def _enable_only(config: PlatformConfig, name: str, params: dict) -> PlatformConfig:
    from signals.config import StrategyEntry  # noqa: PLC0415

    entries = {
        n: e.model_copy(update={"enabled": False}) for n, e in config.strategies.strategies.items()
    }
    budget = config.strategies.strategies["ma_cross"].budget
    entries[name] = StrategyEntry(enabled=True, budget=budget, params=params)
    return config.model_copy(
        update={"strategies": config.strategies.model_copy(update={"strategies": entries})}
    )


def _config_dir(tmp_path: Path, entry: dict) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(ROOT / "config", folder)
    data = yaml.safe_load((folder / "strategies.yaml").read_text())
    for e in data["strategies"].values():
        e["enabled"] = False
    data["strategies"]["dip_buyer"] = entry
    (folder / "strategies.yaml").write_text(yaml.safe_dump(data))
    return folder


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------


def test_registering_the_same_class_again_replaces_it() -> None:
    source = "from signals.strategies.ma_cross import MaCross\nclass Again(MaCross):\n    name = 'again'\n"
    namespace: dict = {"__name__": "notebook_cell"}
    try:
        exec(source, namespace)  # noqa: S102  (a notebook cell, run twice)
        first = register(namespace["Again"])
        exec(source, namespace)  # noqa: S102
        second = register(namespace["Again"])
        assert first is not second
        assert STRATEGIES["again"] is second
    finally:
        STRATEGIES.pop("again", None)


def test_another_class_under_a_taken_name_is_refused() -> None:
    class Impostor(MaCross):
        name = "rules"

    with pytest.raises(ValueError, match=r"`rules` is taken by signals\.strategies\.rules\.Rules"):
        register(Impostor)
    assert STRATEGIES["rules"].__module__ == "signals.strategies.rules"


def test_module_entry_in_strategies_yaml_registers_the_strategy(tmp_path, user_file) -> None:
    folder = _config_dir(tmp_path, {"enabled": True, "module": str(user_file), "params": {}})
    config = load_config(folder)
    assert config.strategies.strategies["dip_buyer"].enabled
    assert STRATEGIES["dip_buyer"].__name__ == "DipBuyer"


def test_module_entry_relative_to_the_config_folder(tmp_path) -> None:
    folder = _config_dir(tmp_path, {"enabled": True, "module": "rel_dips.py", "params": {}})
    (folder / "rel_dips.py").write_text(USER_MODULE.replace('"dip_buyer"', '"rel_dip"'))
    data = yaml.safe_load((folder / "strategies.yaml").read_text())
    data["strategies"]["rel_dip"] = data["strategies"].pop("dip_buyer")
    (folder / "strategies.yaml").write_text(yaml.safe_dump(data))
    try:
        load_config(folder)
        assert "rel_dip" in STRATEGIES
    finally:
        STRATEGIES.pop("rel_dip", None)


@pytest.mark.parametrize(
    ("module", "fragment"),
    [
        ("no_such_pkg.strats", r"strategies\.dip_buyer\.module.*must be importable"),
        ("missing_file.py", r"strategy module file `.*missing_file\.py` must exist"),
        ("json", r"`json` must register a strategy named `dip_buyer`, registered none"),
    ],
)
def test_bad_module_entry_names_the_entry_and_the_fix(
    tmp_path, monkeypatch, module, fragment
) -> None:
    folder = _config_dir(tmp_path, {"enabled": True, "module": module, "params": {}})
    monkeypatch.delitem(STRATEGIES, "dip_buyer", raising=False)
    with pytest.raises(ConfigError, match=fragment):
        load_config(folder)


def test_module_that_raises_while_importing_is_a_config_error(tmp_path) -> None:
    bad = tmp_path / "broken.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match=r"failed while importing: RuntimeError: boom"):
        import_strategies(str(bad))
    with pytest.raises(ConfigError, match="must be a .py file or a folder"):
        import_strategies_from(tmp_path / "nope")


def test_entry_point_of_an_installed_package_is_found(tmp_path, monkeypatch) -> None:
    # an installed distribution, as pip leaves it: a module and a dist-info with entry points
    (tmp_path / "ep_strats.py").write_text(USER_MODULE.replace('"dip_buyer"', '"ep_dip"'))
    info = tmp_path / "ep_strats-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-strats\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[247trader.strategies]\nep_dip = ep_strats\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from signals.strategies.registry import enabled_strategies  # noqa: PLC0415

    config = _enable_only(load_config(ROOT / "config"), "ep_dip", {"lookback": 12})
    try:
        (enabled,) = enabled_strategies(config.strategies)
        assert enabled.cls.__module__ == "ep_strats"
        assert enabled.params.lookback == 12
    finally:
        STRATEGIES.pop("ep_dip", None)
        sys.modules.pop("ep_strats", None)


# --------------------------------------------------------------------------------------------
# sweeps and walk-forward outside the kernel
# --------------------------------------------------------------------------------------------


def test_sweep_of_a_non_kernel_strategy_equals_the_kernel_sweep_bit_for_bit(panel, ma_clone):
    config = load_config(ROOT / "config")
    grid_values = {"fast": [5, 12, 30], "slow": [40, 96]}
    results = {}
    for name in ("ma_cross", "ma_cross_clone"):
        cfg = _enable_only(config, name, {"fast": 10, "slow": 50, "target_weight_pct": 5})
        plan = build_plan(cfg, {f"strategies.{name}.{k}": v for k, v in grid_values.items()})
        (group,) = plan.groups
        assert group.in_kernel == (name == "ma_cross")
        inputs = [group_inputs(panel, g) for g in plan.groups]
        results[name] = run_plan(plan, inputs, local_engine(), progress=False)
    assert results["ma_cross"].shape == (6, 15)
    np.testing.assert_array_equal(results["ma_cross_clone"], results["ma_cross"])


def test_sweep_of_a_user_strategy_equals_run_backtest(panel, user_file) -> None:
    import_strategies(str(user_file))
    config = _enable_only(load_config(ROOT / "config"), "dip_buyer", {})
    # with the rules kernel strategy enabled too: the combine of two strategies, outside
    entries = dict(config.strategies.strategies)
    entries["rules"] = entries["rules"].model_copy(update={"enabled": True})
    config = config.model_copy(
        update={"strategies": config.strategies.model_copy(update={"strategies": entries})}
    )
    grid = {"strategies.dip_buyer.drop_pct": [2.0, 4.0], "strategies.rules.exit_lookback": [12, 24]}
    plan = build_plan(config, grid)
    (group,) = plan.groups
    assert not group.in_kernel
    assert group.names == ("dip_buyer", "rules")
    swept = run_plan(plan, [group_inputs(panel, group)], local_engine(), chunk=3, progress=False)
    for combo, row in zip(group.combos, swept, strict=True):
        entries = dict(config.strategies.strategies)
        for key, value in combo.items():
            _, name, param = key.split(".")
            entries[name] = entries[name].model_copy(
                update={"params": {**entries[name].params, param: value}}
            )
        cfg = config.model_copy(
            update={"strategies": config.strategies.model_copy(update={"strategies": entries})}
        )
        np.testing.assert_array_equal(row, _summary_of_backtest(panel, cfg))
    assert swept[:, 0].sum() > 0  # trades happened


def test_walk_forward_of_a_non_kernel_strategy_equals_the_kernel_one(panel, ma_clone) -> None:
    config = load_config(ROOT / "config")
    out = {}
    for name in ("ma_cross", "ma_cross_clone"):
        cfg = _enable_only(config, name, {"fast": 10, "slow": 50, "target_weight_pct": 5})
        grid = {f"strategies.{name}.fast": [5, 20], f"strategies.{name}.slow": [60]}
        out[name] = walk_forward(panel, cfg, grid, 600, 300)
    kernel, clone = out["ma_cross"], out["ma_cross_clone"]
    np.testing.assert_array_equal(clone.curve, kernel.curve)
    assert clone.stitched == kernel.stitched
    assert clone.windows["best_combo"].to_list() == kernel.windows["best_combo"].to_list()
    assert len(kernel.windows) >= 3


def test_run_one_outside_the_kernel_equals_the_kernel_run(panel, ma_clone) -> None:
    config = load_config(ROOT / "config")
    kernel_cfg = _enable_only(config, "ma_cross", {"fast": 8, "slow": 30})
    clone_cfg = _enable_only(config, "ma_cross_clone", {"fast": 8, "slow": 30})
    (kg,) = build_plan(kernel_cfg, {"strategies.ma_cross.fast": [8]}).groups
    (cg,) = build_plan(clone_cfg, {"strategies.ma_cross_clone.fast": [8]}).groups
    m_k, c_k = run_one(group_inputs(panel, kg), kg.rules_p[0], kg.ma_p[0], 200, 1500, 100)
    m_c, c_c = run_one(
        group_inputs(panel, cg), cg.rules_p[0], cg.ma_p[0], 200, 1500, 100, cg.params[0]
    )
    np.testing.assert_array_equal(m_c, m_k)
    np.testing.assert_array_equal(c_c, c_k)


# --------------------------------------------------------------------------------------------
# the CLI, as a researcher calls it
# --------------------------------------------------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SIM, *args], capture_output=True, text=True, cwd=cwd, timeout=600, check=False
    )


def test_sim_run_and_sweep_with_a_module_entry_and_with_strategies_from(tmp_path, user_file):
    data = tmp_path / "bars.parquet"
    frame = load_bars(ROOT / "data" / "sample_hourly.parquet")
    ts = frame["ts"].unique().sort()[:N_BARS]
    frame.filter(pl.col("ts").is_in(ts.implode())).write_parquet(data)
    folder = _config_dir(tmp_path, {"enabled": True, "module": str(user_file), "params": {}})
    run = _cli(
        "run", "--config", str(folder), "--data", str(data), "--no-mlflow",
        "--out", str(tmp_path / "r.json"), cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "dip_buyer" in (tmp_path / "r.json").read_text()

    # the same strategy from --strategies-from, the entry naming no module
    plain = _config_dir(tmp_path / "plain", {"enabled": True, "params": {}})
    refused = _cli("run", "--config", str(plain), "--data", str(data), "--no-mlflow", cwd=tmp_path)
    assert refused.returncode == 2
    assert "unknown strategy `dip_buyer`" in refused.stderr
    assert "Traceback" not in refused.stderr
    sweep = _cli(
        "sweep", "--config", str(plain), "--data", str(data), "--strategies-from",
        str(user_file.parent), "--grid", "strategies.dip_buyer.drop_pct=2,4",
        "--grid", "strategies.dip_buyer.lookback=12,48", "--no-mlflow", "--no-progress",
        "--out", str(tmp_path / "sweep.csv"), cwd=tmp_path,
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    table = pl.read_csv(tmp_path / "sweep.csv")
    assert table.height == 4
    assert set(table["strategies.dip_buyer.lookback"]) == {12, 48}


def test_sweep_help_example_runs_and_prints_distinct_headers(tmp_path) -> None:
    # `sim sweep --help`'s own example crashed with DuplicateError ('enabled' twice)
    example = textwrap.dedent(
        """\
        --grid strategies.ma_cross.enabled=true --grid strategies.rules.enabled=false
        --grid strategies.ma_cross.fast=5:50:5 --grid strategies.ma_cross.slow=20:200:20"""
    ).split()
    help_text = _cli("sweep", "--help", cwd=tmp_path).stdout
    assert " ".join(example[:4]) in " ".join(help_text.split())
    out = tmp_path / "grid.parquet"
    done = _cli("sweep", *example, "--no-mlflow", "--no-progress", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    dropped = [line for line in done.stderr.splitlines() if "dropped" in line]
    assert dropped == [
        "10 combinations dropped: 10 x `fast` must be < `slow`, was 20 >= 20 (and alike)"
    ]
    assert "ma_cross.enabled" in done.stdout
    assert "rules.enabled" in done.stdout
    assert pl.read_parquet(out).height == 90


def test_cold_cache_sweep_says_it_is_compiling(monkeypatch, capsys, tmp_path) -> None:
    import sim.cli

    seen: list[str] = []

    def cold(pattern: str = "") -> bool:
        seen.append(pattern)
        return False

    monkeypatch.setattr(sim.cli, "numba_cache_is_warm", cold)
    argv = ["sweep", "--grid", "strategies.rules.exit_lookback=12,24", "--no-mlflow",
            "--no-progress", "--end", "2024-03-01"]  # fmt: skip
    assert sim.cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "compiling the sweep kernels" in err
    assert seen == ["sweep_nb.sweep_shared_nb-*.nbi"]


def test_walk_forward_table_prints_dates_and_integer_trades(capsys) -> None:
    import sim.cli

    argv = ["sweep", "--grid", "strategies.rules.exit_lookback=12,24", "--no-mlflow",
            "--no-progress", "--walk-forward", "60d:30d", "--end", "2024-06-01"]  # fmt: skip
    assert sim.cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "2024-03-01 00:00" in out  # the first test window's start, as a date
    stitched = next(line for line in out.splitlines() if line.startswith("out-of-sample"))
    trades = stitched.split("total_trades ")[1].split(",")[0]
    assert trades.isdigit(), stitched


def test_sweep_out_is_written_before_anything_is_printed(monkeypatch, tmp_path) -> None:
    # the results survive a failure while printing or logging (a closed pipe, a full terminal)
    import sim.cli
    import sim.sweep

    def broken(*_args, **_kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sim.sweep, "_print_table", broken)
    out = tmp_path / "grid.csv"
    argv = ["sweep", "--grid", "strategies.rules.exit_lookback=12,24", "--no-mlflow",
            "--no-progress", "--end", "2024-03-01", "--out", str(out)]  # fmt: skip
    with pytest.raises(BrokenPipeError):
        sim.cli.main(argv)
    assert pl.read_csv(out).height == 2
