"""Parameter sweeps: grids of configs over the same data, walk-forward, and the `sim sweep` CLI.

A grid is a list of `KEY=VALUES` specs. Keys of strategy parameters
(`strategies.<name>.<param>`) vary across the combinations of a group: for `rules` and
`ma_cross` *inside* one numba call (`sim/sweep_nb.py::sweep_nb`, `prange` across
combinations); for any other registered strategy each combination's proposals come from the
strategy's own `propose` and are simulated in numba (`sweep_proposals_nb`, `prange`).
Every other key (`policy.*`, `universe.*`, `backtest.*`, `strategies.<name>.enabled`,
`strategies.<name>.budget.*`) makes *groups*: one config per distinct value set, with stage 1
computed once per group and one kernel call per chunk of that group's strategy combinations.

Work is cut into chunks and handed to a `concurrent.futures.Executor`: in-process for the
`local` engine, `distributed.Client.get_executor()` for `dask`. The chunk function
(`run_chunk`) lives here so spawned dask workers can import it.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import difflib
import itertools
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import polars as pl
from pydantic import BaseModel, TypeAdapter, ValidationError

from signals.bars import first_bar_no
from signals.config import PlatformConfig, check_bar_interval, check_config_symbols, parse_model
from signals.durations import is_duration, parse_duration_ns
from signals.errors import ConfigError, DataError
from signals.records import Combined, Curves, Guards, Market
from signals.types import BAR_INTERVAL_CONTEXT
from sim.enums import KernelGrid, RunSpec, SweepBars

YEAR_NS = 365 * 86_400 * 1_000_000_000
KERNEL_STRATEGIES = ("ma_cross", "rules")
"""Strategies whose parameters vary inside the numba sweep kernel."""
_METRICS_SET = frozenset(
    ("total_trades", "win_rate", "total_pnl_pct", "max_drawdown_pct", "profit_factor", "sharpe",
     "sortino", "calmar", "cagr_pct", "exposure_time_pct", "turnover", "fees_paid_usd",
     "final_equity_usd", "total_orders", "total_fills")
)  # same as sim.sweep_nb.METRIC_NAMES, without importing numba at parse time  # fmt: skip
LOWER_IS_BETTER = frozenset({"max_drawdown_pct", "fees_paid_usd", "turnover"})
DEFAULT_METRIC = "sharpe"

# --------------------------------------------------------------------------------------------
# Grid parsing
# --------------------------------------------------------------------------------------------


def _scalar(text: str) -> Any:
    text = text.strip()
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _range(text: str, key: str) -> list[Any]:
    parts = text.split(":")
    if len(parts) != 3:
        msg = f"`--grid {key}` range must be `start:stop:step`, was {text!r}"
        raise ConfigError(msg)
    start, stop, step = (_scalar(p) for p in parts)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (start, stop, step)):
        msg = f"`--grid {key}` range must hold numbers `start:stop:step`, was {text!r}"
        raise ConfigError(msg)
    if step <= 0 or stop < start:
        msg = f"`--grid {key}` range must have step > 0 and stop >= start, was {text!r}"
        raise ConfigError(msg)
    n = int(math.floor((stop - start) / step + 1e-9)) + 1
    if n > 1_000_000:
        msg = f"`--grid {key}` range must have at most 1,000,000 values, was {n}"
        raise ConfigError(msg)
    if all(isinstance(v, int) for v in (start, stop, step)):
        return [start + i * step for i in range(n)]
    # round away the drift of repeated float steps (0.1 + 0.2 ...)
    return [round(start + i * step, 12) for i in range(n)]


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """Return `{key: values}` from `KEY=V1,V2,...` specs; a value may be `start:stop:step`.

    Ranges include `stop` when the steps land on it (`10:50:10` is 10, 20, 30, 40, 50); they
    are ints when all three parts are ints. Values are kept in order; duplicates are dropped.

    Raises
    ------
    ConfigError
        For a spec without `=`, an empty value list, a bad range or a key given twice.
    """
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key:
            msg = f"`--grid` must be KEY=V1,V2,... or KEY=start:stop:step, was {spec!r}"
            raise ConfigError(msg)
        if key in grid:
            msg = f"`--grid {key}` must be given once, was given twice"
            raise ConfigError(msg)
        out: list[Any] = []
        for item in values.split(","):
            if not item.strip():
                continue
            out.extend(_range(item, key) if ":" in item else [_scalar(item)])
        if not out:
            msg = f"`--grid {key}` must list at least one value, was {values!r}"
            raise ConfigError(msg)
        seen: list[Any] = []
        for v in out:
            if not any(v == s and type(v) is type(s) for s in seen):
                seen.append(v)
        grid[key] = seen
    return grid


# --------------------------------------------------------------------------------------------
# Keys and validation through the config models
# --------------------------------------------------------------------------------------------


class GridKey(NamedTuple):
    """A resolved grid key: a kernel strategy parameter or a path into the config (a group)."""

    key: str
    strategy: str | None  # set for strategy parameters swept inside the kernel
    param: str | None
    path: tuple[str, ...]  # path into PlatformConfig.model_dump() for group keys


def _strategy_classes() -> dict[str, Any]:
    from signals.strategies import STRATEGIES  # noqa: PLC0415

    return dict(STRATEGIES)


def known_keys(config: PlatformConfig) -> list[str]:
    """Return every key a grid may use (for suggestions and `--help`)."""
    keys: set[str] = set()
    for name, cls in _strategy_classes().items():
        keys.update(f"strategies.{name}.{p}" for p in cls.Params.model_fields)
        keys.add(f"strategies.{name}.enabled")
        budget = ("max_at_risk_pct", "max_new_trades_per_bar")
        keys.update(f"strategies.{name}.budget.{b}" for b in budget)
    for flat in (PlatformConfig().flat(), config.flat()):
        keys.update(k for k in flat if not k.startswith("strategies."))
    return sorted(keys)


def _unknown(key: str, config: PlatformConfig) -> ConfigError:
    close = difflib.get_close_matches(key, known_keys(config), n=1, cutoff=0.6)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    msg = f"`--grid {key}` is not a known config key{hint}"
    return ConfigError(msg)


def resolve_key(key: str, config: PlatformConfig) -> GridKey:
    """Return how `key` is swept: kernel strategy parameter or group config path.

    Raises
    ------
    ConfigError
        For an unknown key, naming it with the closest known key.
    """
    parts = key.split(".")
    classes = _strategy_classes()
    if parts[0] == "strategies" and len(parts) >= 3:
        if parts[1] == "strategies" and len(parts) == 5 and parts[3] == "params":
            parts = ["strategies", parts[2], parts[4]]  # full form -> shorthand
        name = parts[1]
        if name in classes and len(parts) == 3 and parts[2] in classes[name].Params.model_fields:
            return GridKey(key, name, parts[2], ())
        if name in classes and parts[2:] in (["enabled"], ["budget", "max_at_risk_pct"],
                                             ["budget", "max_new_trades_per_bar"]):  # fmt: skip
            return GridKey(key, None, None, ("strategies", "strategies", name, *parts[2:]))
        raise _unknown(key, config)
    if parts[0] in ("policy", "universe", "backtest") and key in known_keys(config):
        return GridKey(key, None, None, tuple(parts))
    raise _unknown(key, config)


def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    from typing import Annotated  # noqa: PLC0415

    info = model.model_fields[name]
    if not info.metadata:
        return TypeAdapter(info.annotation)  # type: ignore[arg-type]
    return TypeAdapter(Annotated[(info.annotation, *info.metadata)])  # type: ignore[arg-type]


def _check_value(gk: GridKey, value: Any, bar_interval: str) -> Any:
    # a duration (`48h`) becomes bars of `bar_interval`, as in strategies.yaml
    cls = _strategy_classes()[gk.strategy or ""]
    context = {BAR_INTERVAL_CONTEXT: bar_interval}
    try:
        return _field_adapter(cls.Params, gk.param or "").validate_python(value, context=context)
    except ValidationError as e:
        reason = e.errors()[0]["msg"]
        msg = f"`--grid {gk.key}` value {value!r}: {reason}"
        raise ConfigError(msg) from e


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


# --------------------------------------------------------------------------------------------
# The plan: groups of configs x strategy parameter rows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """One non-strategy config and the strategy parameter rows run under it."""

    config: PlatformConfig
    values: dict[str, Any]  # group keys -> value
    rules_slot: int
    ma_slot: int
    rules_p: np.ndarray  # float64[C, len(RULES_FIELDS)]
    ma_p: np.ndarray  # float64[C, len(MA_FIELDS)]
    combos: list[dict[str, Any]]  # strategy keys -> value, per row
    names: tuple[str, ...] = ()  # the enabled strategies, in name order
    params: list[tuple[BaseModel, ...]] = field(default_factory=list)  # per row, as `names`

    @property
    def in_kernel(self) -> bool:
        """Whether every enabled strategy runs inside `sim.sweep_nb.sweep_nb`; otherwise the
        proposals come from each strategy's `propose` and only the simulation is in numba."""
        return all(n in KERNEL_STRATEGIES for n in self.names)


@dataclass(frozen=True)
class SweepPlan:
    """Every combination of a grid, validated, in run order (groups outer, strategy inner)."""

    grid: dict[str, list[Any]]
    strategy_keys: tuple[str, ...]
    group_keys: tuple[str, ...]
    groups: list[Group]
    dropped: list[str] = field(default_factory=list)  # why combinations were left out

    @property
    def n_combos(self) -> int:
        """Return the number of combinations that will run."""
        return sum(len(g.combos) for g in self.groups)


def _params_row(cls: Any, params: BaseModel, fields: tuple[str, ...]) -> list[float]:
    return [float(getattr(params, f)) for f in fields]


def _dropped_notes(reasons: list[str]) -> list[str]:
    # one line for all dropped combinations: reasons that differ only in their numbers
    # (`fast` must be < `slow`, was 20 >= 20 / 25 >= 20 / ...) count as one
    if not reasons:
        return []
    shapes: dict[str, list[str]] = {}
    for reason in reasons:
        shapes.setdefault(re.sub(r"-?\d+(\.\d+)?", "N", reason), []).append(reason)
    parts = [
        f"{len(group)} x {group[0]}" + (" (and alike)" if len(group) > 1 else "")
        for group in shapes.values()
    ]
    return [f"{len(reasons)} combinations dropped: " + "; ".join(parts)]


def build_plan(config: PlatformConfig, grid: dict[str, list[Any]]) -> SweepPlan:
    """Resolve and validate `grid` against `config`; return the combinations to run.

    Each value is checked against its field's constraints (a bad one is a `ConfigError`
    naming the key and value). Combinations that break a cross-field rule (MA `fast` must be
    < `slow`) are dropped and counted in `plan.dropped`; none left is a `ConfigError`.
    """
    from signals.strategies.registry import validate_strategies  # noqa: PLC0415
    from sim.sweep_nb import MA_FIELDS, RULES_FIELDS  # noqa: PLC0415

    if not grid:
        msg = "`--grid` must be given at least once, was missing"
        raise ConfigError(msg)
    resolved = {k: resolve_key(k, config) for k in grid}
    if any(g.path == ("backtest", "bar_interval") for g in resolved.values()):
        msg = (
            "`--grid backtest.bar_interval` must not be swept (every combination runs on the "
            "same data, whose bar spacing it must equal), was given; set it in backtest.yaml"
        )
        raise ConfigError(msg)
    strat_keys = tuple(k for k, g in resolved.items() if g.strategy)
    group_keys = tuple(k for k, g in resolved.items() if not g.strategy)
    interval = config.backtest.bar_interval
    checked = {k: [_check_value(resolved[k], v, interval) for v in grid[k]] for k in strat_keys}
    # grid values given as durations: `check_bar_interval` then checks the data's bar spacing
    durations = {k: v for k in grid for v in grid[k] if is_duration(v)}
    base = config.model_dump(mode="python")
    classes = _strategy_classes()
    groups: list[Group] = []
    dropped: list[str] = []
    for group_values in itertools.product(*(grid[k] for k in group_keys)):
        values = dict(zip(group_keys, group_values, strict=True))
        data = config.model_dump(mode="python") if values else base
        for k, v in values.items():
            _set_path(data, resolved[k].path, v)
        source = "--grid " + ", ".join(f"{k}={v}" for k, v in values.items())
        group_config: PlatformConfig = (
            parse_model(PlatformConfig, data, source) if values else config
        ).with_durations({**config.durations, **durations})
        validate_strategies(group_config.strategies, source)
        entries = group_config.strategies.strategies
        enabled = [n for n in sorted(entries) if entries[n].enabled]
        for k in strat_keys:
            name = resolved[k].strategy
            if name not in enabled:
                msg = (
                    f"`--grid {k}` sweeps strategy `{name}`, which must be enabled, was disabled "
                    f"(add `--grid strategies.{name}.enabled=true` or enable it in strategies.yaml)"
                )
                raise ConfigError(msg)
        base_params = {n: dict(entries[n].params) if n in entries else {} for n in classes}
        rules_rows: list[list[float]] = []
        ma_rows: list[list[float]] = []
        combos: list[dict[str, Any]] = []
        param_rows: list[tuple[BaseModel, ...]] = []
        for combo_values in itertools.product(*(checked[k] for k in strat_keys)):
            combo = dict(zip(strat_keys, combo_values, strict=True))
            params = {n: dict(p) for n, p in base_params.items()}
            for k, v in combo.items():
                params[resolved[k].strategy or ""][resolved[k].param or ""] = v
            try:
                validated = {
                    n: classes[n].Params.model_validate(params[n])
                    for n in {*enabled, *KERNEL_STRATEGIES}
                }
            except ValidationError as e:
                reason = e.errors()[0]["msg"].removeprefix("Value error, ")
                dropped.append(reason)
                continue
            rules_rows.append(_params_row(classes["rules"], validated["rules"], RULES_FIELDS))
            ma_rows.append(_params_row(classes["ma_cross"], validated["ma_cross"], MA_FIELDS))
            param_rows.append(tuple(validated[n] for n in enabled))
            combos.append(combo)
        if not combos:
            continue
        groups.append(
            Group(
                config=group_config,
                values=values,
                rules_slot=enabled.index("rules") if "rules" in enabled else -1,
                ma_slot=enabled.index("ma_cross") if "ma_cross" in enabled else -1,
                rules_p=np.ascontiguousarray(rules_rows, dtype=np.float64),
                ma_p=np.ascontiguousarray(ma_rows, dtype=np.float64),
                combos=combos,
                names=tuple(enabled),
                params=param_rows,
            )
        )
    notes = _dropped_notes(dropped)
    if not groups:
        msg = (
            "`--grid` must leave at least one valid combination, left none ("
            + "; ".join(notes)
            + ")"
        )
        raise ConfigError(msg)
    return SweepPlan(grid, strat_keys, group_keys, groups, notes)


# --------------------------------------------------------------------------------------------
# Inputs shared by every combination of a group (stage 1, computed once)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupInputs:
    """Arrays and parameter bundles `sweep_nb` takes for one group (picklable for workers)."""

    ts_ns: np.ndarray
    bar_ns: int
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    bad_tick: np.ndarray
    block_reason: np.ndarray
    regime: np.ndarray
    vol: np.ndarray
    product_status: np.ndarray
    params: Any  # StepParams
    static: Any  # StepStatic
    fill: Any  # FillParams
    initial_cash: float
    seed: int
    bars_per_year: float
    rules_slot: int
    ma_slot: int
    symbols: tuple[str, ...] = ()
    names: tuple[str, ...] = ()  # the enabled strategies, in name order (`Group.names`)
    classes: tuple[Any, ...] = ()  # their classes (a dask worker imports them by module)


def check_plan_symbols(
    plan: SweepPlan, symbols: Sequence[str], *, allow_missing: bool = False
) -> None:
    """Check each distinct universe of `plan` against the data's `symbols`, once each.

    `check_config_symbols` is the rule (a `ConfigError`, or with `allow_missing` one warning
    per distinct universe); an error in a group of `--grid` values names them.
    """
    seen: set[str] = set()
    for g in plan.groups:
        universe = g.config.universe.model_dump_json()
        if universe in seen:
            continue
        seen.add(universe)
        try:
            check_config_symbols(g.config, symbols, allow_missing=allow_missing)
        except ConfigError as e:
            swept = {k: v for k, v in g.values.items() if k.startswith("universe.")}
            if not swept:
                raise
            source = "--grid " + ", ".join(f"{k}={v}" for k, v in swept.items())
            raise ConfigError(f"{source}: {e}") from e


def group_inputs(panel: Any, group: Group) -> GroupInputs:
    """Compute stage 1 (bad ticks, regime, universe blocks, vol) once for `group`."""
    from signals.decision.params import (  # noqa: PLC0415
        product_status_codes,
        step_params,
        step_static,
    )
    from signals.pipeline import decision_inputs, infer_bar_ns  # noqa: PLC0415
    from sim.engine import fill_params  # noqa: PLC0415

    config = group.config
    check_bar_interval(config, infer_bar_ns(panel.ts_ns))
    entries = config.strategies.strategies
    # stage 1 without strategies: the strategy parts vary per combination, in the kernel
    no_strategies = config.model_copy(
        update={
            "strategies": config.strategies.model_copy(
                update={
                    "strategies": {
                        n: e.model_copy(update={"enabled": False}) for n, e in entries.items()
                    }
                }
            )
        }
    )
    inputs = decision_inputs(panel, no_strategies)
    names = tuple(n for n in sorted(entries) if entries[n].enabled)
    return GroupInputs(
        ts_ns=panel.ts_ns,
        bar_ns=inputs.bar_ns,
        open=panel.open,
        high=panel.high,
        low=panel.low,
        close=panel.close,
        volume=panel.volume,
        bad_tick=inputs.bad_tick,
        block_reason=inputs.block_reason,
        regime=inputs.regime,
        vol=inputs.vol,
        product_status=product_status_codes(config, panel.symbols),
        params=step_params(config),
        static=step_static(config, panel.symbols, names),
        fill=fill_params(config),
        initial_cash=float(config.backtest.initial_cash_usd),
        seed=int(config.backtest.seed),
        bars_per_year=YEAR_NS / inputs.bar_ns,
        rules_slot=group.rules_slot,
        ma_slot=group.ma_slot,
        symbols=tuple(panel.symbols),
        names=group.names,
        classes=tuple(_strategy_classes()[n] for n in group.names),
    )


def _bars(g: GroupInputs, lo: int, hi: int) -> SweepBars:
    # the group's `SweepBars` over bars [lo, hi)
    return SweepBars(
        Market(g.ts_ns[lo:hi], g.bar_ns, g.open[lo:hi], g.high[lo:hi], g.low[lo:hi],
               g.close[lo:hi], g.vol[lo:hi]),
        g.volume[lo:hi], g.bad_tick[lo:hi],
        Guards(g.block_reason[lo:hi], g.regime[lo:hi], g.product_status),
    )  # fmt: skip


def _run_spec(g: GroupInputs, trade_start: int) -> RunSpec:
    # the group's `RunSpec`: proposals before row `trade_start` of the bars are dropped
    return RunSpec(g.initial_cash, g.seed, g.bars_per_year, trade_start)


# Tried until 2026-12-07: loading the simulator's bar loop, compiled on its own, before any sweep
# kernel (the JIT linker then called that code instead of the copy linked into the kernel); a
# 63-combination MA sweep over 20 x 20k bars took 0.31-0.35 vs 0.32-0.38 s in fresh processes,
# under the 5 % a trick must gain: removed.


def run_chunk(
    g: GroupInputs,
    rules_p: np.ndarray,
    ma_p: np.ndarray,
    lo: int = 0,
    hi: int | None = None,
    trade_start: int = 0,
    shared: tuple[Any, ...] | None = None,
) -> np.ndarray:
    """Return float64[C, N_METRICS] for parameter rows over bars `[lo, hi)` (the executor task).

    Rows `< lo + trade_start` only warm the indicators up (see `combo_run_nb`). `shared`:
    `shared_indicators(g, ...)` of a grid holding these rows, its index arrays cut to them
    (`sim.sweep_nb.sweep_shared_nb`); None computes the rows' indicators here.
    """
    import numba  # noqa: PLC0415

    from sim.sweep_nb import sweep_nb, sweep_shared_nb  # noqa: PLC0415

    hi = g.close.shape[0] if hi is None else hi
    bars = _bars(g, lo, hi)
    args = (
        bars.market, bars.volume, bars.bad_tick, bars.guards, g.params, g.static, g.fill,
        _run_spec(g, trade_start), KernelGrid(g.rules_slot, g.ma_slot, rules_p, ma_p),
    )  # fmt: skip
    if shared is None:
        return sweep_nb(*args, numba.get_num_threads())  # type: ignore[call-arg]
    return sweep_shared_nb(*args, *shared)  # type: ignore[call-arg]


def combined_proposals(
    g: GroupInputs,
    params: tuple[BaseModel, ...],
    lo: int = 0,
    hi: int | None = None,
    trade_start: int = 0,
    cache: dict[tuple[str, str], Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return one combination's combined proposals over bars `[lo, hi)`, as the backtest makes
    them: each enabled strategy's `propose` (`params` in `g.names` order) over the same context
    `signals.pipeline.decision_inputs` builds, then `combine_proposals`; rows before
    `trade_start` become no opinion (they only warm the strategies up).

    `cache` (optional) keeps each strategy's proposals by its parameters, so a strategy held
    constant in a grid proposes once per chunk.
    """
    from signals.pipeline import combine_proposals  # noqa: PLC0415
    from signals.strategies import StrategyContext  # noqa: PLC0415

    hi = g.close.shape[0] if hi is None else hi
    proposals = []
    for name, cls, p in zip(g.names, g.classes, params, strict=True):
        key = (name, p.model_dump_json())
        if cache is not None and key in cache:
            proposals.append(cache[key])
            continue
        ctx = StrategyContext(
            ts_ns=g.ts_ns[lo:hi], symbols=g.symbols, open=g.open[lo:hi], high=g.high[lo:hi],
            low=g.low[lo:hi], close=g.close[lo:hi], volume=g.volume[lo:hi],
            regime=g.regime[lo:hi], bad_tick=g.bad_tick[lo:hi], bar_ns=g.bar_ns, params=p,
        )  # fmt: skip
        proposal = cls.propose(ctx)
        if cache is not None:
            cache[key] = proposal
        proposals.append(proposal)
    weight, stop_pct, take_pct, chosen = combine_proposals(proposals, (hi - lo, g.close.shape[1]))
    weight[:trade_start] = np.nan
    stop_pct[:trade_start] = np.nan
    take_pct[:trade_start] = np.nan
    chosen[:trade_start] = -1
    return weight, stop_pct, take_pct, chosen


def run_proposals_chunk(
    g: GroupInputs,
    params: Sequence[tuple[BaseModel, ...]],
    lo: int = 0,
    hi: int | None = None,
    trade_start: int = 0,
) -> np.ndarray:
    """Return float64[C, N_METRICS] for the parameter rows `params` of a group whose enabled
    strategies are not all kernel strategies (the executor task for such a group).

    Proposals are computed here, one combination after another (`combined_proposals`), and
    simulated together in numba (`sim.sweep_nb.sweep_proposals_nb`, `prange` over them). Memory:
    C x T x S x 32 bytes for the stacked proposals, so a task holds a few per thread.
    """
    from sim.sweep_nb import sweep_proposals_nb  # noqa: PLC0415

    hi = g.close.shape[0] if hi is None else hi
    cache: dict[tuple[str, str], Any] = {}
    rows = [combined_proposals(g, p, lo, hi, trade_start, cache) for p in params]
    weight, stop_pct, take_pct, chosen = (np.stack([r[i] for r in rows]) for i in range(4))
    bars = _bars(g, lo, hi)
    return sweep_proposals_nb(  # type: ignore[call-arg]
        bars.market, bars.guards, g.params, g.static, g.fill, _run_spec(g, trade_start),
        Combined(weight, stop_pct, take_pct, chosen),
    )  # fmt: skip


def shared_indicators(
    g: GroupInputs, rules_p: np.ndarray, ma_p: np.ndarray, lo: int = 0, hi: int | None = None
) -> tuple[Any, ...]:
    """Return `(SharedIndicators, Scratch)`: `sim.sweep_nb.shared_indicators_nb` of a group's
    rows over bars `[lo, hi)`, and one `new_scratch_nb` stack (a set per thread) that all the
    group's chunks reuse.

    Each distinct indicator array of the grid, once: T x S x distinct parameters of memory.
    """
    import numba  # noqa: PLC0415

    from sim.sweep_nb import new_scratch_nb, shared_indicators_nb  # noqa: PLC0415

    hi = g.close.shape[0] if hi is None else hi
    indicators = shared_indicators_nb(
        g.close[lo:hi], g.high[lo:hi], g.low[lo:hi], g.volume[lo:hi], g.rules_slot, g.ma_slot,
        rules_p, ma_p, first_bar_no(g.ts_ns[lo:hi], g.bar_ns),
    )  # fmt: skip
    combine = g.rules_slot >= 0 and g.ma_slot >= 0
    scratch = new_scratch_nb(numba.get_num_threads(), hi - lo, g.close.shape[1], combine)
    return indicators, scratch


def _chunk_rows(shared: tuple[Any, ...], start: int, stop: int) -> tuple[Any, ...]:
    # the shared buffers whole, the per-combination index arrays cut to rows [start, stop)
    indicators, scratch = shared
    cut = indicators._replace(
        rules_idx=indicators.rules_idx[start:stop], fast_idx=indicators.fast_idx[start:stop],
        slow_idx=indicators.slow_idx[start:stop],
    )  # fmt: skip
    return cut, scratch


def run_one(
    g: GroupInputs,
    rules_row: np.ndarray,
    ma_row: np.ndarray,
    lo: int = 0,
    hi: int | None = None,
    trade_start: int = 0,
    params: tuple[BaseModel, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return `(metrics, equity curve)` of one parameter row (serial; walk-forward tests).

    `params` (the row's `Group.params`) runs the strategies' own `propose` instead of the
    kernel rows `rules_row`/`ma_row` (then ignored): a group outside the kernel strategies.
    """
    from sim.sweep_nb import combo_run_nb  # noqa: PLC0415

    hi = g.close.shape[0] if hi is None else hi
    if params is not None:
        from sim.sweep_nb import simulate_summary_nb  # noqa: PLC0415

        n = hi - lo
        bars = _bars(g, lo, hi)
        metrics, curve = simulate_summary_nb(  # type: ignore[call-arg]
            bars.market, Combined(*combined_proposals(g, params, lo, hi, trade_start)),
            bars.guards, g.params, g.static, g.fill, _run_spec(g, trade_start),
            Curves(np.empty(n), np.empty(n), np.empty(n)),
        )  # fmt: skip
        return metrics, curve.copy()
    metrics, curve = combo_run_nb(  # type: ignore[call-arg]
        _bars(g, lo, hi), g.params, g.static, g.fill, _run_spec(g, trade_start), g.rules_slot,
        g.ma_slot, rules_row, ma_row,
    )  # fmt: skip
    return metrics, curve


# --------------------------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------------------------


class InlineExecutor(cf.Executor):
    """An `Executor` that runs each task in the calling thread when it is submitted.

    The local engine: numba's `prange` already uses every core inside a task, and the
    default `workqueue` threading layer must not be entered from two threads at once.
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        """Run `fn(*args, **kwargs)` now; return a finished future."""
        future: cf.Future[Any] = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001  (handed to the caller via the future)
            future.set_exception(e)
        return future


@dataclass
class Engine:
    """An executor, how many tasks to keep in flight, and how to shut it down."""

    executor: cf.Executor
    in_flight: int
    close: Callable[[], None] = lambda: None


def local_engine() -> Engine:
    """Return the in-process engine (one task at a time, `prange` inside)."""
    return Engine(InlineExecutor(), 1)


def dask_engine(address: str | None) -> Engine:
    """Return an engine on a dask.distributed cluster (`address`, else a local cluster).

    Raises
    ------
    ConfigError
        When `distributed` is not installed (the `[distributed]` extra) or the scheduler
        cannot be reached.
    """
    try:
        from distributed import Client, LocalCluster  # noqa: PLC0415
    except ModuleNotFoundError as e:
        msg = (
            "`--engine dask` needs dask.distributed, was not installed (pip install .[distributed])"
        )
        raise ConfigError(msg) from e
    cluster = None
    try:
        if address:
            client = Client(address, timeout="10s")
        else:
            cluster = LocalCluster(
                n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                dashboard_address=None, host="127.0.0.1",
            )  # fmt: skip
            client = Client(cluster)
    except (OSError, TimeoutError) as e:
        msg = f"`--address` must reach a dask scheduler, was {address!r}: {e}"
        raise ConfigError(msg) from e
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))

    def close() -> None:
        client.close()
        if cluster is not None:
            cluster.close()

    return Engine(client.get_executor(pure=False), 2 * n_workers, close)


# --------------------------------------------------------------------------------------------
# Running a plan
# --------------------------------------------------------------------------------------------


class _Task(NamedTuple):
    group: int
    start: int
    stop: int


PROPOSAL_TASK_BYTES = 256 * 2**20
"""Stacked proposals one task of a group outside the kernel strategies may hold (4 float64/
int64 `[T, S]` arrays a combination): its chunk is cut to fit, one combination at least."""


def _tasks(plan: SweepPlan, chunk: int, cells: int) -> list[_Task]:
    # `cells`: bars x symbols of the runs (sizes the proposals of a non-kernel group's task)
    out: list[_Task] = []
    for gi, g in enumerate(plan.groups):
        n = len(g.combos)
        size = chunk if g.in_kernel else max(1, min(chunk, PROPOSAL_TASK_BYTES // (32 * cells)))
        out.extend(_Task(gi, i, min(i + size, n)) for i in range(0, n, size))
    return out


def default_chunk(n_combos: int, engine: Engine) -> int:
    """Return combinations per task: 8 per thread or more (a task's time is its slowest
    thread's, so fewer, larger tasks waste less), about 20 progress steps."""
    import numba  # noqa: PLC0415

    threads = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    per_task = max(8 * threads, math.ceil(n_combos / 20))
    if engine.in_flight > 1:  # spread over the workers
        per_task = max(1, min(per_task, math.ceil(n_combos / (2 * engine.in_flight))))
    return per_task


def run_plan(
    plan: SweepPlan,
    inputs: list[GroupInputs],
    engine: Engine,
    *,
    lo: int = 0,
    hi: int | None = None,
    trade_start: int = 0,
    chunk: int | None = None,
    progress: bool = True,
    desc: str = "sweep",
) -> np.ndarray:
    """Return float64[n_combos, N_METRICS] for every combination of `plan`, in plan order."""
    from tqdm import tqdm  # noqa: PLC0415

    from sim.sweep_nb import N_METRICS  # noqa: PLC0415

    n_bars = (inputs[0].close.shape[0] if hi is None else hi) - lo if inputs else 0
    cells = max(1, n_bars * (inputs[0].close.shape[1] if inputs else 1))
    tasks = _tasks(plan, chunk or default_chunk(plan.n_combos, engine), cells)
    offsets = np.cumsum([0] + [len(g.combos) for g in plan.groups])
    out = np.empty((plan.n_combos, N_METRICS))
    pending: dict[cf.Future[np.ndarray], _Task] = {}
    # in process the chunks share their group's indicator buffers; remote workers (dask) get
    # no buffers (they would be pickled per task) and share within their chunk only
    in_process = isinstance(engine.executor, InlineExecutor)
    if not in_process and plan.groups:
        _compile_worker_kernel(inputs[0], plan.groups[0], lo)
    group_shared: dict[int, tuple[Any, ...]] = {}
    queue: Iterator[_Task] = iter(tasks)
    with tqdm(
        total=plan.n_combos, desc=desc, unit="combo", file=sys.stderr, disable=not progress,
        leave=False, dynamic_ncols=True,
    ) as bar:  # fmt: skip

        def fill() -> None:
            for task in queue:
                g = plan.groups[task.group]
                shared = None
                if (
                    in_process and g.in_kernel
                ):  # each group's distinct indicators once, for all its chunks
                    if task.group not in group_shared:
                        group_shared.clear()  # tasks run group by group: keep one
                        group_shared[task.group] = shared_indicators(
                            inputs[task.group], g.rules_p, g.ma_p, lo, hi
                        )
                    shared = _chunk_rows(group_shared[task.group], task.start, task.stop)
                if g.in_kernel:
                    fut = engine.executor.submit(
                        run_chunk, inputs[task.group], g.rules_p[task.start : task.stop],
                        g.ma_p[task.start : task.stop], lo, hi, trade_start, shared,
                    )  # fmt: skip
                else:
                    fut = engine.executor.submit(
                        run_proposals_chunk, inputs[task.group],
                        g.params[task.start : task.stop], lo, hi, trade_start,
                    )  # fmt: skip
                pending[fut] = task
                if len(pending) >= engine.in_flight:
                    return

        fill()
        while pending:
            done, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                task = pending.pop(fut)
                base = offsets[task.group]
                out[base + task.start : base + task.stop] = fut.result()
                bar.update(task.stop - task.start)
            fill()
    return out


def _compile_worker_kernel(g: GroupInputs, group: Group, lo: int) -> None:
    # Run the workers' kernel (`run_chunk` without shared buffers: `sweep_nb`) once here on a
    # few bars, so numba caches it before any worker starts and the workers load it instead
    # of compiling it at the same time. Left to the workers, two dask workers compiling it
    # together wrote a cache entry that crashed (SIGSEGV) the next process to load it:
    # tests/integration/test_sweep_dask.py, then tests/sim/test_sweep.py on the same
    # NUMBA_CACHE_DIR (reproduced 2026-12-01, also on the previous release).
    hi = min(lo + 8, g.close.shape[0])
    if group.in_kernel:
        run_chunk(g, group.rules_p[:1], group.ma_p[:1], lo, hi)
    else:
        run_proposals_chunk(g, group.params[:1], lo, hi)


def results_table(plan: SweepPlan, metrics: np.ndarray) -> pl.DataFrame:
    """Return one row per combination: `combo`, the grid keys, then every metric."""
    from sim.sweep_nb import METRIC_NAMES  # noqa: PLC0415

    columns: dict[str, list[Any]] = {k: [] for k in (*plan.group_keys, *plan.strategy_keys)}
    for g in plan.groups:
        for combo in g.combos:
            for k in plan.group_keys:
                columns[k].append(g.values[k])
            for k in plan.strategy_keys:
                columns[k].append(combo[k])
    data: dict[str, Any] = {"combo": np.arange(plan.n_combos, dtype=np.int64)}
    for k, values in columns.items():
        data[k] = values if values and isinstance(values[0], str) else np.asarray(values)
    for j, name in enumerate(METRIC_NAMES):
        col = metrics[:, j]
        integer = name in ("total_trades", "total_orders", "total_fills")
        data[name] = col.astype(np.int64) if integer else col
    return pl.DataFrame(data)


def sort_table(table: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Return `table` best first by `metric` (ascending for drawdown, fees, turnover)."""
    return table.sort([metric, "combo"], descending=[metric not in LOWER_IS_BETTER, False])


def check_metric(metric: str) -> None:
    """Raise `ConfigError` unless `metric` is a metrics column."""
    from sim.sweep_nb import METRIC_NAMES  # noqa: PLC0415

    if metric not in METRIC_NAMES:
        close = difflib.get_close_matches(metric, METRIC_NAMES, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        msg = f"`--metric` must be one of {list(METRIC_NAMES)}, was {metric!r}{hint}"
        raise ConfigError(msg)


def sweep(
    panel: Any,
    config: PlatformConfig,
    grid: dict[str, list[Any]],
    *,
    engine: Engine | None = None,
    metric: str = DEFAULT_METRIC,
    progress: bool = False,
    chunk: int | None = None,
    allow_missing_symbols: bool = False,
) -> pl.DataFrame:
    """Run every combination of `grid` over `panel`; return the results table, best first.

    The config's symbols are checked against the panel's first (`check_plan_symbols`).
    """
    check_metric(metric)
    plan = build_plan(config, grid)
    check_plan_symbols(plan, panel.symbols, allow_missing=allow_missing_symbols)
    inputs = [group_inputs(panel, g) for g in plan.groups]
    metrics = run_plan(plan, inputs, engine or local_engine(), chunk=chunk, progress=progress)
    return sort_table(results_table(plan, metrics), metric)


# --------------------------------------------------------------------------------------------
# Walk-forward
# --------------------------------------------------------------------------------------------


class Window(NamedTuple):
    """One walk-forward window: bar rows `[train_start, train_end)` then `[train_end, test_end)`."""

    train_start: int
    train_end: int
    test_end: int


def parse_walk_forward(text: str, bar_ns: int) -> tuple[int, int]:
    """Return `(train_bars, test_bars)` from `TRAIN:TEST`; each is bars or a duration such as
    `90d` (`signals.durations`: m, h, d, w), rounded down to whole bars of `bar_ns`."""

    def bars(part: str) -> int:
        part = part.strip().lower()
        if is_duration(part):
            length_ns = parse_duration_ns(part)
            n = max(1, length_ns // bar_ns) if length_ns > 0 else 0
        else:
            try:
                n = int(part)
            except ValueError:
                n = 0
        if n <= 0:
            msg = (
                f"`--walk-forward` must be TRAIN:TEST in bars or durations such as 90d "
                f"(units m, h, d, w), was {text!r}"
            )
            raise ConfigError(msg)
        return n

    parts = text.split(":")
    if len(parts) != 2:
        msg = f"`--walk-forward` must be TRAIN:TEST (e.g. 2160:720 or 90d:30d), was {text!r}"
        raise ConfigError(msg)
    return bars(parts[0]), bars(parts[1])


def walk_forward_windows(n_bars: int, train: int, test: int) -> list[Window]:
    """Return rolling windows: train `train` bars, test the next `test`, step `test`.

    Only whole test windows are used. Raises `DataError` when not even one fits.
    """
    out = [
        Window(s, s + train, s + train + test) for s in range(0, n_bars - train - test + 1, test)
    ]
    if not out:
        msg = (
            f"`--walk-forward` needs train + test <= the data's {n_bars} bars, was {train} + {test}"
        )
        raise DataError(msg)
    return out


@dataclass(frozen=True)
class WalkForwardResult:
    """Per-window choices and out-of-sample results, and the stitched out-of-sample curve."""

    windows: pl.DataFrame
    stitched: dict[str, float]
    curve: np.ndarray  # stitched out-of-sample equity, USD, one value per test bar


def _combo_index(plan: SweepPlan, i: int) -> tuple[int, int]:
    for gi, g in enumerate(plan.groups):
        if i < len(g.combos):
            return gi, i
        i -= len(g.combos)
    msg = f"combination index must be < {plan.n_combos}, was {i}"
    raise IndexError(msg)


def max_warmup(plan: SweepPlan) -> int:
    """Return the warm-up bars (history before a window) the slowest combination needs."""
    from signals.pipeline import warmup_bars  # noqa: PLC0415
    from signals.strategies import STRATEGIES  # noqa: PLC0415
    from sim.sweep_nb import MA_FIELDS, RULES_FIELDS  # noqa: PLC0415

    need = 0
    for g in plan.groups:
        need = max(need, warmup_bars(g.config))
        if g.rules_slot >= 0:
            for f in RULES_FIELDS:
                if f.endswith("_lookback"):
                    need = max(need, int(g.rules_p[:, RULES_FIELDS.index(f)].max()) + 2)
        if g.ma_slot >= 0:
            need = max(need, int(g.ma_p[:, MA_FIELDS.index("slow")].max()) + 2)
        if not g.in_kernel:
            need = max(
                need,
                *(
                    STRATEGIES[n].warmup_bars(p) + 2
                    for row in g.params
                    for n, p in zip(g.names, row, strict=True)
                ),
            )
    return need


def walk_forward(
    panel: Any,
    config: PlatformConfig,
    grid: dict[str, list[Any]],
    train: int,
    test: int,
    *,
    engine: Engine | None = None,
    metric: str = DEFAULT_METRIC,
    progress: bool = False,
    chunk: int | None = None,
    allow_missing_symbols: bool = False,
) -> WalkForwardResult:
    """Pick the best combination on each train window and run it on the following test window.

    Each run starts with fresh cash and may trade only inside its window; the `max_warmup`
    bars before the window (when the data has them) warm the indicators up. The test windows'
    equity curves are chained (each starts where the previous ended, by return) into one
    out-of-sample curve, summarised like a single run. The config's symbols are checked
    against the panel's first (`check_plan_symbols`).
    """
    from sim.sweep_nb import METRIC_NAMES, summary_nb  # noqa: PLC0415

    check_metric(metric)
    plan = build_plan(config, grid)
    check_plan_symbols(plan, panel.symbols, allow_missing=allow_missing_symbols)
    inputs = [group_inputs(panel, g) for g in plan.groups]
    windows = walk_forward_windows(panel.close.shape[0], train, test)
    warm = max_warmup(plan)
    engine = engine or local_engine()
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    j_metric = METRIC_NAMES.index(metric)
    rows: list[dict[str, Any]] = []
    curves: list[np.ndarray] = []
    level = None
    trades = 0
    for w_i, w in enumerate(windows):
        lo = max(0, w.train_start - warm)
        train_metrics = run_plan(
            plan, inputs, engine, lo=lo, hi=w.train_end, trade_start=w.train_start - lo,
            chunk=chunk, progress=progress, desc=f"window {w_i + 1}/{len(windows)}",
        )  # fmt: skip
        score = np.where(np.isfinite(train_metrics[:, j_metric]), train_metrics[:, j_metric],
                         -np.inf * sign) * sign  # fmt: skip
        best = int(np.argmax(score))  # ties: the lowest combination index
        gi, ci = _combo_index(plan, best)
        g = plan.groups[gi]
        t_lo = max(0, w.train_end - warm)
        test_metrics, curve = run_one(
            inputs[gi], g.rules_p[ci], g.ma_p[ci], t_lo, w.test_end, w.train_end - t_lo,
            None if g.in_kernel else g.params[ci],
        )  # fmt: skip
        initial = inputs[gi].initial_cash
        level = initial if level is None else level
        curves.append(level * curve / initial)
        level = float(curves[-1][-1])
        trades += int(test_metrics[0])
        row: dict[str, Any] = {
            "window": w_i,
            "train_start": int(panel.ts_ns[w.train_start]),
            "test_start": int(panel.ts_ns[w.train_end]),
            "test_end_bar": int(panel.ts_ns[w.test_end - 1]),
            "best_combo": best,
            **{k: g.values[k] for k in plan.group_keys},
            **{k: g.combos[ci][k] for k in plan.strategy_keys},
            f"train_{metric}": float(train_metrics[best, j_metric]),
        }
        row.update({f"test_{m}": float(v) for m, v in zip(METRIC_NAMES, test_metrics, strict=True)})
        rows.append(row)
    stitched_curve = np.concatenate(curves)
    first_cash = inputs[0].initial_cash
    empty = np.empty(0)
    s = summary_nb(stitched_curve, np.zeros_like(stitched_curve), empty, empty, empty, 0,
                   first_cash, inputs[0].bars_per_year)  # fmt: skip
    keep = ("total_pnl_pct", "max_drawdown_pct", "sharpe", "sortino", "calmar", "cagr_pct",
            "final_equity_usd")  # fmt: skip
    stitched = {k: float(s[METRIC_NAMES.index(k)]) for k in keep}
    stitched["total_trades"] = float(trades)
    stitched["n_windows"] = float(len(windows))
    counts = [f"test_{m}" for m in ("total_trades", "total_orders", "total_fills")]
    frame = pl.DataFrame(rows).with_columns(
        pl.col("train_start", "test_start", "test_end_bar").cast(pl.Datetime("ns", "UTC")),
        pl.col(*counts).cast(pl.Int64),
    )
    return WalkForwardResult(frame, stitched, stitched_curve)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

_HELP = """\
Run every combination of the grid over the same data and print the best.

Strategy parameters (strategies.<name>.<param>, any registered strategy, yours too with
--strategies-from or a `module:` entry) vary across combinations run in parallel: `rules` and
`ma_cross` inside one numba kernel; any other strategy proposes in Python (its own `propose`)
and the simulation runs in numba. Other keys (policy.*, universe.*, backtest.*,
strategies.<name>.enabled, strategies.<name>.budget.*) run as separate groups: one stage-1
computation and kernel call per distinct non-strategy config, so they cost more per value.

Examples:
  sim sweep --grid strategies.rules.breakout_lookback=24:96:12 \\
            --grid strategies.rules.stop_loss_pct=3,6,9 --metric sharpe --top 5
  sim sweep --grid strategies.ma_cross.enabled=true --grid strategies.rules.enabled=false \\
            --grid strategies.ma_cross.fast=5:50:5 --grid strategies.ma_cross.slow=20:200:20
  sim sweep --grid strategies.rules.exit_lookback=12,24,48 --walk-forward 90d:30d
  sim sweep --strategies-from my_strategies.py --grid strategies.bb_revert.window=10:40:10
  sim sweep --grid ... --engine dask --address tcp://127.0.0.1:8786
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `sim sweep`."""
    from signals.strategies.registry import add_strategies_from  # noqa: PLC0415
    from sim.cli import (  # noqa: PLC0415
        DEFAULT_CONFIG,
        DEFAULT_DATA,
        PROJECT_ROOT,
        add_allow_missing_symbols,
    )

    p = subparsers.add_parser(
        "sweep",
        help="run a parameter grid (numba-parallel, optional dask), walk-forward",
        description=_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--grid", action="append", default=[], metavar="KEY=VALUES", required=True,
        help="a key and its values: V1,V2,... or start:stop:step (stop included); repeat",
    )  # fmt: skip
    p.add_argument("--data", help=f"bar file (default: {DEFAULT_DATA.relative_to(PROJECT_ROOT)})")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="config folder (default: config/)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the config's)")
    p.add_argument("--start", help="first bar to use, ISO UTC (inclusive)")
    p.add_argument("--end", help="end of the bars to use, ISO UTC (exclusive)")
    p.add_argument(
        "--metric", default=DEFAULT_METRIC,
        help=f"sort by this metric (default {DEFAULT_METRIC}; drawdown/fees/turnover ascending)",
    )  # fmt: skip
    p.add_argument("--top", type=int, default=10, help="rows to print (default 10)")
    p.add_argument(
        "--out",
        help="write the full results table, .parquet or .csv, and beside it (.html) a heat map "
        "when two or more parameters vary (not with --walk-forward)",
    )
    p.add_argument(
        "--walk-forward", metavar="TRAIN:TEST",
        help="rolling windows in bars or <n>h/<n>d (e.g. 90d:30d): best on train, run on test",
    )  # fmt: skip
    p.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="local: numba prange in this process; dask: a dask.distributed cluster",
    )
    p.add_argument("--address", help="dask scheduler address (default: start a local cluster)")
    p.add_argument("--chunk", type=int, default=None, help="combinations per task (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI")
    p.add_argument(
        "--log-top",
        type=int,
        default=20,
        help="child MLflow runs for the best K combinations (default 20)",
    )
    p.add_argument(
        "--log-top-artifacts",
        type=int,
        default=3,
        metavar="K",
        help="of those, the best K also get the combination's report.json and tearsheet.html "
        "(each run again: about 1 s on the shipped data; default 3)",
    )
    p.add_argument("--no-mlflow", action="store_true", help="do not log the sweep to MLflow")
    add_allow_missing_symbols(p)
    add_strategies_from(p)
    p.set_defaults(handler=cmd_sweep)  # fmt: skip


def _load(args: argparse.Namespace) -> tuple[Any, PlatformConfig, str]:
    from signals.bars import load_bars, to_panel  # noqa: PLC0415
    from signals.config import load_config  # noqa: PLC0415
    from signals.strategies.registry import import_user_strategies  # noqa: PLC0415
    from sim.cli import DEFAULT_DATA, _parse_ts  # noqa: PLC0415

    import_user_strategies(args)
    config = load_config(args.config)
    if args.seed is not None:
        config = config.with_seed(args.seed)
    path = Path(args.data) if args.data else DEFAULT_DATA
    if not path.exists():
        msg = f"data file `{path}` must exist, was missing (pass --data PATH)"
        raise DataError(msg)
    frame = load_bars(path)
    start_ns, end_ns = _parse_ts(args.start, "--start"), _parse_ts(args.end, "--end")
    ts_ns = pl.col("ts").dt.epoch("ns")
    if start_ns is not None:
        frame = frame.filter(ts_ns >= start_ns)
    if end_ns is not None:
        frame = frame.filter(ts_ns < end_ns)
    if frame.height == 0:
        msg = f"`--start`/`--end` must select some bars of `{path}`, selected none"
        raise DataError(msg)
    # `load_bars` validated the frame; a row subset of it stays valid
    return to_panel(frame, validate=False), config, str(path)


def _check_out(out: Path) -> None:
    # before the sweep runs: a bad --out must not cost a whole grid
    if out.suffix not in (".parquet", ".csv"):
        msg = f"`--out` must end in .parquet or .csv, was {out}"
        raise ConfigError(msg)
    if out.is_dir():
        msg = f"`--out` must be a file path, was the directory {out}"
        raise ConfigError(msg)


def _write_table(table: pl.DataFrame, out: Path) -> None:
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        table.write_parquet(out, compression="zstd")
    else:
        table.with_columns(pl.selectors.datetime().dt.to_string()).write_csv(out)


_SHOWN = ("total_pnl_pct", "sharpe", "max_drawdown_pct", "total_trades", "win_rate",
          "profit_factor")  # fmt: skip


def short_names(columns: Sequence[str]) -> dict[str, str]:
    """Return `{key: shortest unique dotted suffix}` for the dotted grid keys of `columns`
    (`strategies.ma_cross.enabled` -> `ma_cross.enabled` when `rules.enabled` is there too,
    `strategies.ma_cross.fast` -> `fast`), so the printed table's headers never collide."""
    taken = {c for c in columns if "." not in c}
    out: dict[str, str] = {}
    dotted = [c for c in columns if "." in c]
    for c in dotted:
        parts = c.split(".")
        for k in range(1, len(parts) + 1):
            short = ".".join(parts[-k:])
            clash = any(o != c and o.endswith("." + short) or o == short for o in dotted)
            if not clash and short not in taken:
                break
        out[c] = short
        taken.add(short)
    return out


def _print_table(table: pl.DataFrame, n: int, metric: str) -> None:
    # the full table goes to --out / MLflow; the terminal gets the keys and the main metrics
    shown = [c for c in table.columns if not c.startswith(("test_", "train_")) or c in (
        "train_start", "test_start", "test_end_bar", f"train_{metric}", f"test_{metric}",
        "test_total_pnl_pct", "test_total_trades")]  # fmt: skip
    if "window" not in table.columns:
        metrics = [metric, *(m for m in _SHOWN if m != metric)]
        shown = [c for c in table.columns if c not in _METRICS_SET] + metrics
    view = table.head(n).select(shown)
    view = view.rename(short_names(view.columns)).with_columns(
        pl.selectors.datetime().dt.strftime("%Y-%m-%d %H:%M")
    )
    with pl.Config(tbl_rows=n, tbl_cols=-1, tbl_width_chars=160, float_precision=3,
                   tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):  # fmt: skip
        print(view)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run `sim sweep`: the grid (or walk-forward), the table, MLflow."""
    from sim.cli import EXIT_OK, _say, numba_cache_is_warm  # noqa: PLC0415

    started = time.perf_counter()
    check_metric(args.metric)
    if args.out:
        _check_out(Path(args.out))
    grid = parse_grid(args.grid)
    panel, config, source = _load(args)
    if args.top < 0 or args.log_top < 0 or (args.chunk is not None and args.chunk < 1):
        msg = (
            f"`--top` and `--log-top` must be >= 0 and `--chunk` >= 1, was {args.top}, "
            f"{args.log_top} and {args.chunk}"
        )
        raise ConfigError(msg)
    if args.log_top_artifacts < 0:
        msg = f"`--log-top-artifacts` must be >= 0, was {args.log_top_artifacts}"
        raise ConfigError(msg)
    if args.address and args.engine != "dask":
        msg = "`--address` must come with `--engine dask`, was given with `--engine local`"
        raise ConfigError(msg)
    plan = build_plan(config, grid)
    # refused here, before a first run's minute of compiling; `walk_forward` checks the same
    # plan again, and warns of the missing symbols itself when they are allowed
    if not (args.walk_forward and args.allow_missing_symbols):
        check_plan_symbols(plan, panel.symbols, allow_missing=args.allow_missing_symbols)
    for note in plan.dropped:
        _say(note)
    kernel = "sweep_shared_nb" if all(g.in_kernel for g in plan.groups) else "sweep_proposals_nb"
    if not numba_cache_is_warm(f"sweep_nb.{kernel}-*.nbi"):
        _say("compiling the sweep kernels (first run on this numba cache: about a minute, then "
             "cached)")  # fmt: skip
    engine = dask_engine(args.address) if args.engine == "dask" else local_engine()
    progress = not args.no_progress
    wf: WalkForwardResult | None = None
    try:
        if args.walk_forward:
            from signals.pipeline import infer_bar_ns  # noqa: PLC0415

            train, test = parse_walk_forward(args.walk_forward, infer_bar_ns(panel.ts_ns))
            wf = walk_forward(
                panel, config, grid, train, test, engine=engine, metric=args.metric,
                progress=progress, chunk=args.chunk,
                allow_missing_symbols=args.allow_missing_symbols,
            )  # fmt: skip
            table = wf.windows
        else:
            inputs = [group_inputs(panel, g) for g in plan.groups]
            metrics = run_plan(plan, inputs, engine, chunk=args.chunk, progress=progress)
            table = sort_table(results_table(plan, metrics), args.metric)
    finally:
        engine.close()
    sweep_secs = time.perf_counter() - started
    if args.out:  # first: the results are safe before anything is printed or logged
        _write_table(table, Path(args.out))
    n_bars, n_symbols = panel.close.shape
    print(f"sweep        {plan.n_combos} combinations x {n_bars} bars x {n_symbols} symbols "
          f"({source}), engine {args.engine}, {sweep_secs:.2f} s")  # fmt: skip
    if wf is not None:
        print(f"walk-forward {len(table)} windows ({args.walk_forward}), best by {args.metric}")
        _print_table(table, max(args.top, len(table)), args.metric)
        print("out-of-sample (stitched): " + ", ".join(
            f"{k} {int(v)}" if k in ("total_trades", "n_windows") else f"{k} {v:.3f}"
            for k, v in wf.stitched.items()))  # fmt: skip
    else:
        print(f"top {min(args.top, len(table))} by {args.metric}")
        _print_table(table, args.top, args.metric)
    heatmap: Path | None = None
    if args.out:
        print(f"table        {args.out}")
        from sim.tearsheet import render_sweep_heatmap, sweep_params  # noqa: PLC0415

        # parameters with one value (`strategies.rules.enabled=true`) make no axis
        swept = [k for k in sweep_params(table) if table[k].n_unique() > 1]
        if wf is None and len(swept) >= 2:
            heatmap = Path(args.out).with_suffix(".html")
            title = f"Sweep {Path(args.out).name}: {args.metric}"
            try:
                page = render_sweep_heatmap(table, swept[0], swept[1], args.metric, title)
                heatmap.write_text(page)
            except OSError as e:
                msg = f"the heat map beside `--out` must be writable, was not ({e.strerror or e})"
                raise DataError(msg) from e
            print(f"heatmap      {heatmap}")
    if not args.no_mlflow:
        from sim.sweep_tracking import HEATMAP_ARTIFACT, log_sweep  # noqa: PLC0415

        logged = log_sweep(
            table, config, grid, metric=args.metric, sweep_secs=sweep_secs, engine=args.engine,
            data_source=source, walk_forward=wf, top_k=0 if wf else args.log_top,
            tracking_uri=args.tracking_uri, panel=panel,
            artifacts_top=min(args.log_top_artifacts, args.log_top),
            extra_artifacts={HEATMAP_ARTIFACT: heatmap} if heatmap else None,
        )  # fmt: skip
        if logged is not None:
            part = ""
            if logged.artifacts_secs:
                part = f", {logged.artifacts_secs:.2f} s of it child reports and tearsheets"
            print(f"mlflow run   {logged.run_id} (logging {logged.seconds:.2f} s{part})")
    print(f"wall time    {time.perf_counter() - started:.2f} s")
    return EXIT_OK
