"""Pydantic models for the YAML configuration under `config/`, their loader and the config hash.

Files (all optional except that a missing file means the safe defaults below):

* `policy.yaml`     -> `PolicyConfig`     (risk controls, execution and fees)
* `universe.yaml`   -> `UniverseConfig`   (eligibility, tiers, themes, bans, products, regime)
* `strategies.yaml` -> `StrategiesConfig` (registry entries: enabled flag, budget, params)
* `backtest.yaml`   -> `BacktestConfig`   (seed, starting cash)

Every model is strict: an unknown or misspelled key is a `ConfigError` that names the key and the
file, with a suggestion where a close key exists. Every symbol (universe lists, themes, the keys
of `products` and `spread_bps_estimate`, the regime's reference) is turned into `BASE-QUOTE` by
`signals.symbols.canonical_symbol` when it loads; `check_config_symbols` checks them against the
symbols of the data a run uses. Kernels never see these models; `to_params()` methods produce
the NamedTuples/arrays the kernels take.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from signals.durations import format_duration, is_duration, parse_duration_ns
from signals.errors import ConfigError
from signals.symbols import SymbolError, canonical_symbol
from signals.types import (
    BAR_INTERVAL_CONTEXT,
    Bps,
    Duration,
    Fraction,
    NonNegBars,
    NonNegFloat,
    NonNegInt,
    Pct,
    PositiveBars,
    PositiveFloat,
    PositiveInt,
)

MAX_FEE_BPS = 500.0
"""Sanity bound for maker/taker fees: Coinbase's worst public tier is 60/80 bps."""

DEPRECATED_KEYS: dict[str, str] = {
    "max_positions": "max_open_positions",
    "stop_loss": "stop_loss_pct",
    "maker_fee": "maker_fee_bps",
    "taker_fee": "taker_fee_bps",
    "ban_hours": "temporary_ban_hours",
}
"""Keys accepted by earlier versions -> the key that replaced them."""


class _Strict(BaseModel, frozen=True, extra="forbid"):
    pass


RegimeName = Literal["bull", "chop", "bear", "crash"]

log = logging.getLogger(__name__)

DEFAULT_BAR_INTERVAL = "1h"
"""`backtest.bar_interval` by default: the shipped data's hourly bars."""

DEFAULT_KEY = "default"
"""The key of `products` and `spread_bps_estimate` that applies to every unlisted symbol."""


def _symbol(raw: str) -> str:
    """Return `canonical_symbol(raw)`; a value it refuses is a validation error of its key."""
    try:
        return canonical_symbol(raw)
    except SymbolError as e:
        raise PydanticCustomError(
            "symbol",
            "must be a symbol `BASE-QUOTE` such as BTC-USD; this one {reason}",
            {"reason": e.reason},
        ) from None


def _symbol_or_default(raw: str) -> str:
    return raw if raw == DEFAULT_KEY else _symbol(raw)


def _no_repeats(symbols: list[str]) -> list[str]:
    seen: set[str] = set()
    for symbol in symbols:
        if symbol in seen:
            msg = f"must not list a symbol twice, was {symbol} twice (after canonical spelling)"
            raise ValueError(msg)
        seen.add(symbol)
    return symbols


def _no_key_collisions(table: Any) -> Any:
    # a dict silently keeps the last of two keys that become the same symbol: refuse them
    if not isinstance(table, dict):
        return table
    spelled: dict[str, str] = {}
    for raw in table:
        try:
            key = raw if raw == DEFAULT_KEY else canonical_symbol(raw)
        except SymbolError:
            continue  # reported by the key's own validator
        if key in spelled:
            msg = f"must list a symbol once, was {spelled[key]!r} and {raw!r} (both {key})"
            raise ValueError(msg)
        spelled[key] = raw
    return table


Symbol = Annotated[str, AfterValidator(_symbol)]
"""A symbol in any spelling `canonical_symbol` accepts, stored as `BASE-QUOTE`."""
SymbolList = Annotated[list[Symbol], AfterValidator(_no_repeats)]
"""Symbols, canonical, each once."""
SymbolKey = Annotated[str, AfterValidator(_symbol_or_default)]
"""A table key: a `Symbol`, or `default`."""


def _default_regime_multipliers() -> dict[RegimeName, float]:
    return {"bull": 1.0, "chop": 0.6, "bear": 0.3, "crash": 0.0}


# --------------------------------------------------------------------------------------------
# policy.yaml
# --------------------------------------------------------------------------------------------


class RiskConfig(_Strict, frozen=True, extra="forbid"):
    """Risk controls applied inside the shared `step` kernel. Percent units (25.0 = 25 %)."""

    max_total_at_risk_pct: Pct = Field(25.0, description="Cap on total exposure, % of equity.")
    max_theme_at_risk_pct: Pct = Field(10.0, description="Cap on exposure per theme, % of equity.")
    max_asset_at_risk_pct: Pct = Field(5.0, description="Cap on exposure per asset, % of equity.")
    max_open_positions: PositiveInt = Field(5, description="Open positions plus pending entries.")
    stop_loss_pct: Pct = Field(
        10.0, description="Per-position stop, % below entry; 0 disables; a strategy may be tighter."
    )
    cooldown_after_fill_bars: NonNegBars = Field(
        4, description="No re-entry for N bars after a fill."
    )
    cooldown_after_stop_bars: NonNegBars = Field(
        24, description="No re-entry for N bars after a stop."
    )
    daily_loss_stop_pct: Pct = Field(3.0, description="No new entries for the rest of the UTC day.")
    weekly_loss_stop_pct: Pct = Field(
        7.0, description="No new entries for the rest of the ISO week."
    )
    max_drawdown_pct: Pct = Field(
        15.0, description="Latching breaker on drawdown from peak equity."
    )
    kill_switch: bool = Field(False, description="True: no new orders at all (exits included).")
    max_data_staleness_bars: NonNegBars = Field(
        0, description="Bars a symbol's newest bar may be missing before it gets no entries."
    )
    regime_multipliers: dict[RegimeName, NonNegFloat] = Field(
        default_factory=_default_regime_multipliers,
        description="Size multiplier per regime; 0 blocks new entries (crash by default).",
    )
    auto_trim: bool = Field(True, description="Sell the largest contributors back under a cap.")
    trim_tolerance_pct: Pct = Field(
        10.0, description="Trim only when exposure exceeds a cap by more than this % of the cap."
    )

    @model_validator(mode="after")
    def _caps_nest(self) -> RiskConfig:
        if not (
            self.max_asset_at_risk_pct <= self.max_theme_at_risk_pct <= self.max_total_at_risk_pct
        ):
            msg = (
                "`max_asset_at_risk_pct` <= `max_theme_at_risk_pct` <= `max_total_at_risk_pct` "
                f"must hold, was {self.max_asset_at_risk_pct} / {self.max_theme_at_risk_pct} / "
                f"{self.max_total_at_risk_pct}"
            )
            raise ValueError(msg)
        return self


class ExecutionConfig(_Strict, frozen=True, extra="forbid"):
    """Order types, fees, slippage and partial fills (fills come on the bar after the decision)."""

    maker_fee_bps: Bps = Field(40.0, description="Fee on post-only limit fills, bps of notional.")
    taker_fee_bps: Bps = Field(60.0, description="Fee on market fills, bps of notional.")
    entry_order_type: Literal["market", "limit_post_only"] = Field(
        "limit_post_only", description="Order type for new entries."
    )
    exit_order_type: Literal["market", "limit_post_only"] = Field(
        "market", description="Order type for signal exits and trims."
    )
    stop_order_type: Literal["market", "limit_post_only"] = Field(
        "market", description="Order type for stop-loss and take-profit exits."
    )
    limit_offset_bps: Bps = Field(
        5.0, description="Post-only limit distance from the decision close, bps (inside the book)."
    )
    slippage_bps: Bps = Field(2.0, description="Fixed part of market-order slippage, bps.")
    slippage_vol_mult: NonNegFloat = Field(
        0.1, description="Slippage added per unit of one-bar realized volatility (fraction)."
    )
    slippage_vol_window: PositiveBars = Field(24, description="Bars of realized volatility.")
    partial_fills: bool = Field(True, description="Post-only fills may be partial (seeded RNG).")
    min_fill_fraction: Fraction = Field(0.3, description="Smallest partial fill, fraction of size.")

    @model_validator(mode="after")
    def _fees_sane(self) -> ExecutionConfig:
        for name in ("maker_fee_bps", "taker_fee_bps"):
            value = getattr(self, name)
            if value > MAX_FEE_BPS:
                msg = f"`{name}` must be <= {MAX_FEE_BPS} bps, was {value}"
                raise ValueError(msg)
        return self


class PolicyConfig(_Strict, frozen=True, extra="forbid"):
    """`policy.yaml`: risk controls and execution."""

    profile: str = Field("conservative", description="A label for the profile, stamped in reports.")
    risk: RiskConfig = Field(default_factory=RiskConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)


# --------------------------------------------------------------------------------------------
# universe.yaml
# --------------------------------------------------------------------------------------------


class ProductConfig(_Strict, frozen=True, extra="forbid"):
    """Exchange product constraints used by the backtest (live reads them from the exchange)."""

    base_increment: NonNegFloat = Field(1e-8, description="Size step, base units; 0 = none.")
    quote_increment: NonNegFloat = Field(0.01, description="Price step, quote units; 0 = none.")
    base_min_size: NonNegFloat = Field(0.0, description="Minimum order size, base units.")
    min_notional_usd: NonNegFloat = Field(1.0, description="Minimum notional after fees, USD.")
    status: Literal["online", "post_only", "limit_only", "cancel_only", "offline"] = Field(
        "online", description="Product trading status for the backtest."
    )


ProductTable = Annotated[dict[SymbolKey, ProductConfig], BeforeValidator(_no_key_collisions)]
"""`products`: symbol (or `default`) -> constraints; two spellings of one symbol are refused."""
SpreadTable = Annotated[dict[SymbolKey, Bps], BeforeValidator(_no_key_collisions)]
"""`spread_bps_estimate`: symbol (or `default`) -> bps; two spellings of one symbol refused."""


class RegimeConfig(_Strict, frozen=True, extra="forbid"):
    """Regime classifier on the reference asset (windowed kernels only)."""

    reference_symbol: Symbol = Field(
        "BTC-USD", description="Asset whose trend/vol sets the regime; must be in the data."
    )
    fast_bars: PositiveBars = Field(24, description="Fast trend SMA, bars.")
    slow_bars: PositiveBars = Field(168, description="Slow trend SMA, bars.")
    vol_window_bars: PositiveBars = Field(24, description="Realized-volatility window, bars.")
    vol_baseline_bars: PositiveBars = Field(168, description="Baseline of realized vol, bars.")
    crash_lookback_bars: PositiveBars = Field(24, description="Crash drawdown window, bars.")
    crash_drop_pct: Pct = Field(10.0, description="Drop over the lookback that means crash, %.")
    crash_vol_mult: PositiveFloat = Field(2.5, description="Vol over baseline that means crash.")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> RegimeConfig:
        if self.fast_bars >= self.slow_bars:
            msg = f"`fast_bars` must be < `slow_bars`, was {self.fast_bars} >= {self.slow_bars}"
            raise ValueError(msg)
        return self


class UniverseConfig(_Strict, frozen=True, extra="forbid"):
    """`universe.yaml`: which symbols may receive new entries, and why not."""

    core: SymbolList = Field(default_factory=list, description="Always eligible if tradable.")
    rotational: SymbolList = Field(
        default_factory=list, description="Eligible when liquid; empty list = every other symbol."
    )
    excluded: SymbolList = Field(default_factory=list, description="Never eligible.")
    max_universe_size: PositiveInt = Field(20, description="Keep the N most liquid eligible.")
    quote_volume_window_bars: PositiveBars = Field(24, description="Window of quote volume, bars.")
    min_quote_volume_usd: NonNegFloat = Field(
        1_000_000.0, description="Minimum rolling quote volume over the window, USD."
    )
    max_spread_bps: Bps = Field(30.0, description="Maximum spread, bps.")
    spread_bps_estimate: SpreadTable = Field(
        default_factory=dict, description="Spread per symbol where data has none; key `default`."
    )
    red_flag_move_pct: Pct = Field(
        25.0, description="A one-bar move larger than this % (volume-confirmed) is a red flag."
    )
    temporary_ban_hours: NonNegInt = Field(24, description="Ban length after a red flag, hours.")
    bad_tick_jump_pct: Pct = Field(10.0, description="Bad-tick guard: jump threshold, %.")
    bad_tick_volume_ratio: PositiveFloat = Field(
        1.5, description="Bad-tick guard: a jump with volume below this x average is masked."
    )
    bad_tick_volume_window: PositiveBars = Field(24, description="Bad-tick guard volume window.")
    themes: dict[str, SymbolList] = Field(
        default_factory=dict, description="Theme name -> symbols (L1, DeFi, memes ...)."
    )
    products: ProductTable = Field(
        default_factory=dict, description="Product constraints per symbol; key `default`."
    )
    regime: RegimeConfig = Field(default_factory=RegimeConfig)

    @model_validator(mode="after")
    def _themes_disjoint(self) -> UniverseConfig:
        seen: dict[str, str] = {}
        for theme, symbols in self.themes.items():
            for symbol in symbols:
                if symbol in seen:
                    msg = (
                        f"symbol `{symbol}` must be in one theme, "
                        f"was in `{seen[symbol]}` and `{theme}`"
                    )
                    raise ValueError(msg)
                seen[symbol] = theme
        both = set(self.core) & set(self.excluded)
        if both:
            msg = f"a symbol must not be both core and excluded, was {sorted(both)}"
            raise ValueError(msg)
        return self

    def product(self, symbol: str) -> ProductConfig:
        """Return the constraints for `symbol`: its entry, else `default`, else built-ins."""
        return self.products.get(symbol) or self.products.get("default") or ProductConfig()

    def spread_bps(self, symbol: str) -> float:
        """Return the configured spread estimate for `symbol`, bps."""
        return self.spread_bps_of((symbol,))[0]

    def spread_bps_of(self, symbols: Iterable[str]) -> list[float]:
        """Return the configured spread estimate of each of `symbols`, bps: its own entry,
        else `default`, else 10."""
        estimate = self.spread_bps_estimate  # one attribute read, not one per symbol
        default = estimate.get("default", 10.0)
        return [estimate.get(s, default) for s in symbols]


# --------------------------------------------------------------------------------------------
# strategies.yaml
# --------------------------------------------------------------------------------------------


class StrategyBudget(_Strict, frozen=True, extra="forbid"):
    """Per-strategy budget, applied before the global caps."""

    max_at_risk_pct: Pct = Field(25.0, description="Cap on this strategy's exposure, % of equity.")
    max_new_trades_per_bar: PositiveInt = Field(2, description="New entries per bar, at most.")


class StrategyEntry(_Strict, frozen=True, extra="forbid"):
    """One registry entry. New strategies are disabled until enabled here explicitly."""

    enabled: bool = Field(False, description="Only enabled strategies propose trades.")
    budget: StrategyBudget = Field(default_factory=StrategyBudget)
    params: dict[str, Any] = Field(
        default_factory=dict, description="Strategy parameters, validated by the strategy."
    )
    module: str | None = Field(
        None,
        description="Where a user strategy lives: a dotted module name or a .py file (relative "
        "to the config folder), imported before the name is looked up.",
    )


class StrategiesConfig(_Strict, frozen=True, extra="forbid"):
    """`strategies.yaml`: the registry's entries by strategy name."""

    strategies: dict[str, StrategyEntry] = Field(default_factory=dict)


class BacktestConfig(_Strict, frozen=True, extra="forbid"):
    """`backtest.yaml`: run-level settings of `sim run`."""

    seed: NonNegInt = Field(42, description="Drives every random draw (slippage, partial fills).")
    initial_cash_usd: PositiveFloat = Field(10_000.0, description="Starting cash, USD.")
    bar_interval: Duration = Field(
        DEFAULT_BAR_INTERVAL,
        description="Bar length that lookbacks given as durations are converted with (`48h` is "
        "48 bars at 1h); the data's bar spacing must equal it when a duration is used.",
    )


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------

CONFIG_FILES: dict[str, type[BaseModel]] = {
    "policy.yaml": PolicyConfig,
    "universe.yaml": UniverseConfig,
    "strategies.yaml": StrategiesConfig,
    "backtest.yaml": BacktestConfig,
}


class PlatformConfig(_Strict, frozen=True, extra="forbid"):
    """Everything that decides a run's results; its hash stamps reports and MLflow runs."""

    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    universe: UniverseConfig = Field(default_factory=UniverseConfig)
    strategies: StrategiesConfig = Field(default_factory=StrategiesConfig)
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    _durations: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def durations(self) -> dict[str, str]:
        """Return the lookbacks given as durations: dotted key (the `with_overrides` form) ->
        the duration as written (`{"strategies.rules.breakout_lookback": "48h"}`).

        The config holds them as bars of `backtest.bar_interval`; `check_bar_interval` refuses
        data of another bar spacing while this is not empty.
        """
        return dict(self._durations)

    def with_durations(self, durations: Mapping[str, str]) -> PlatformConfig:
        """Return a copy that also records `durations` (key -> duration) as `durations` does.

        For code that converts durations itself (`sim sweep` grid values) before running.
        """
        config = self.model_copy()
        config._durations = {**self._durations, **durations}
        return config

    def config_hash(self) -> str:
        """Return the first 16 hex of SHA-256 over the canonical JSON of the whole config.

        `backtest.bar_interval` is left out: it only converts durations to bars when the config
        loads, and the bars are hashed, so `48h` at 1h and `48` hash alike.
        """
        data = self.model_dump(mode="json")
        data["backtest"].pop("bar_interval", None)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def with_seed(self, seed: int) -> PlatformConfig:
        """Return a copy whose backtest seed is `seed` (the CLI `--seed`), checked as the file's."""
        data = self.backtest.model_dump() | {"seed": seed}
        backtest = parse_model(type(self.backtest), data, "`--seed`")
        return self.model_copy(update={"backtest": backtest})

    def with_overrides(self, overrides: Mapping[str, Any]) -> PlatformConfig:
        """Return a new validated config with dotted-key `overrides` applied.

        Keys follow `sim sweep --grid`: `strategies.<name>.<param>` (or the full form
        `strategies.strategies.<name>.params.<param>`), `strategies.<name>.enabled`,
        `strategies.<name>.budget.<field>`, and any `policy.*`, `universe.*` or `backtest.*`
        key of `flat()` or field of the models (a dict field such as `universe.products` also
        takes keys below it, checked by its model). `override_keys` lists them.

        Raises
        ------
        ConfigError
            For an unknown key (named, with the closest valid keys), or a value the models
            refuse (the message names the key; the pydantic `ValidationError` is the cause).

        Examples
        --------
        >>> cfg = PlatformConfig().with_overrides({"backtest.seed": 7})
        >>> cfg.backtest.seed
        7
        """
        data = self.model_dump(mode="python")
        # durations this config was given are applied again, so that a new
        # `backtest.bar_interval` converts them too; the caller's overrides win
        paths = {override_path(key, self): value for key, value in self._durations.items()}
        given = {override_path(key, self): (key, value) for key, value in overrides.items()}
        paths.update({path: value for path, (_, value) in given.items()})
        for path, value in paths.items():
            _set_path(data, path, value)
        source = "with_overrides(" + ", ".join(f"{k}={v!r}" for k, v in overrides.items()) + ")"
        config: PlatformConfig = parse_model(PlatformConfig, data, source)
        from signals.strategies.registry import validate_strategies  # noqa: PLC0415 (cycle)

        strategies = validate_strategies(
            config.strategies, source, bar_interval=config.backtest.bar_interval
        )
        config = config.model_copy(update={"strategies": strategies})
        resolved = config.model_dump(mode="python")
        keys = {path: key for key, path in ((k, override_path(k, self)) for k in self._durations)}
        keys.update({path: key for path, (key, _) in given.items()})
        config._durations = {
            keys[path]: value
            for path, value in paths.items()
            if is_duration(value) and _is_int(_get_path(resolved, path))
        }
        return config

    def flat(self) -> dict[str, Any]:
        """Return the config flattened to dotted keys (for MLflow params and sweep grids)."""
        out: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key, sub in value.items():
                    walk(f"{prefix}.{key}" if prefix else str(key), sub)
            else:
                out[prefix] = value

        walk("", self.model_dump(mode="json"))
        return out


# --------------------------------------------------------------------------------------------
# dotted override keys (`PlatformConfig.with_overrides`, `sim sweep --grid`)
# --------------------------------------------------------------------------------------------

STRATEGY_BUDGET_KEYS = ("max_at_risk_pct", "max_new_trades_per_bar")
_SECTIONS = ("policy", "universe", "backtest")


def _model_paths(model: type[BaseModel], prefix: str) -> tuple[set[str], set[str]]:
    # (every field path below `model`, the paths of its dict-valued fields)
    paths: set[str] = set()
    dicts: set[str] = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}.{name}"
        paths.add(path)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            sub_paths, sub_dicts = _model_paths(annotation, path)
            paths |= sub_paths
            dicts |= sub_dicts
        elif getattr(annotation, "__origin__", None) is dict:
            dicts.add(path)
    return paths, dicts


def _strategy_classes() -> dict[str, Any]:
    from signals.strategies import STRATEGIES  # noqa: PLC0415 (strategies import config)

    return dict(STRATEGIES)


def override_keys(config: PlatformConfig | None = None) -> list[str]:
    """Return every dotted key `with_overrides` (and `sim sweep --grid`) takes, sorted.

    Strategy keys come from the registry (`strategies.<name>.<param>`, `.enabled`,
    `.budget.<field>`), the others from `config.flat()`, the defaults' and the models' fields.
    """
    keys: set[str] = set()
    for name, cls in _strategy_classes().items():
        keys.update(f"strategies.{name}.{p}" for p in cls.Params.model_fields)
        keys.add(f"strategies.{name}.enabled")
        keys.update(f"strategies.{name}.budget.{b}" for b in STRATEGY_BUDGET_KEYS)
    flats = [PlatformConfig().flat()] + ([config.flat()] if config is not None else [])
    for flat in flats:
        keys.update(k for k in flat if k.split(".")[0] in _SECTIONS)
    for section in _SECTIONS:
        model = PlatformConfig.model_fields[section].annotation
        assert isinstance(model, type)  # noqa: S101 (the three sections are models)
        keys |= _model_paths(model, section)[0]
    return sorted(keys)


def _unknown_key(key: str, config: PlatformConfig) -> ConfigError:
    close = difflib.get_close_matches(key, override_keys(config), n=5, cutoff=0.6)
    hint = f"; close valid keys: {', '.join(f'`{c}`' for c in close)}" if close else ""
    msg = f"config key `{key}` is not a known config key{hint} (see `override_keys()`)"
    return ConfigError(msg)


def override_path(key: str, config: PlatformConfig) -> tuple[str, ...]:
    """Return the path of dotted `key` into `config.model_dump()`.

    Raises
    ------
    ConfigError
        For an unknown key, naming it with the closest valid keys.
    """
    parts = key.split(".")
    if parts[0] == "strategies" and len(parts) >= 3:
        if parts[1] == "strategies" and len(parts) == 5 and parts[3] == "params":
            parts = ["strategies", parts[2], parts[4]]  # full form -> shorthand
        classes = _strategy_classes()
        name = parts[1]
        if name in classes:
            if len(parts) == 3 and parts[2] in classes[name].Params.model_fields:
                return ("strategies", "strategies", name, "params", parts[2])
            if parts[2:] == ["enabled"] or (
                len(parts) == 4 and parts[2] == "budget" and parts[3] in STRATEGY_BUDGET_KEYS
            ):
                return ("strategies", "strategies", name, *parts[2:])
        raise _unknown_key(key, config)
    if parts[0] in _SECTIONS:
        if key in override_keys(config):
            return tuple(parts)
        model = PlatformConfig.model_fields[parts[0]].annotation
        assert isinstance(model, type)  # noqa: S101 (the three sections are models)
        dicts = _model_paths(model, parts[0])[1]
        if any(key.startswith(d + ".") for d in dicts):
            return tuple(parts)  # a key below a dict field: its model checks it
    raise _unknown_key(key, config)


def _get_path(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = data
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _duration_keys(raw: Any, resolved: Any, prefix: str) -> dict[str, str]:
    # the dotted keys where the input held a duration and the model holds bars
    if isinstance(raw, Mapping) and isinstance(resolved, Mapping):
        out: dict[str, str] = {}
        for key, value in raw.items():
            if key in resolved:
                out |= _duration_keys(value, resolved[key], f"{prefix}.{key}")
        return out
    return {prefix: raw} if is_duration(raw) and _is_int(resolved) else {}


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


# --------------------------------------------------------------------------------------------
# symbols against the data
# --------------------------------------------------------------------------------------------

UNIVERSE_LISTS = ("core", "rotational", "excluded")
"""`universe.yaml` lists checked against the data (absent: error, or a warning when allowed)."""
_SHOWN_SYMBOLS = 30


def _data_has(symbols: list[str]) -> str:
    shown = ", ".join(symbols[:_SHOWN_SYMBOLS])
    more = f", ... ({len(symbols)} in all)" if len(symbols) > _SHOWN_SYMBOLS else ""
    return f"the data has [{shown}{more}]"


def check_reference_symbol(config: PlatformConfig, data_symbols: Iterable[str]) -> None:
    """Raise `ConfigError` unless `universe.regime.reference_symbol` is one of `data_symbols`,
    when the regime can change a decision.

    Without it the regime would silently be "chop" on every bar; the message names the symbol
    and the data's symbols. The regime is read by the sizing when a
    `policy.risk.regime_multipliers` differs from 1, and by every enabled strategy whose class
    has `reads_regime` (`rules` does, `ma_cross` does not); read by neither, the reference may
    be absent. `check_config_symbols` and the live daemon call it.
    """
    from signals.strategies import enabled_strategies  # noqa: PLC0415 (strategies import config)

    sizing_reads = any(m != 1.0 for m in config.policy.risk.regime_multipliers.values())
    if not sizing_reads and not any(
        s.cls.reads_regime for s in enabled_strategies(config.strategies)
    ):
        return
    have = sorted(set(data_symbols))
    reference = config.universe.regime.reference_symbol
    if reference not in have:
        msg = (
            f"universe.yaml `regime.reference_symbol` {reference} must be a symbol of the data "
            f"(the regime is computed on it), was missing; {_data_has(have)} (set it to one of "
            "them)"
        )
        raise ConfigError(msg)


def check_config_symbols(
    config: PlatformConfig, data_symbols: Iterable[str], *, allow_missing: bool = False
) -> tuple[tuple[str, str], ...]:
    """Check the config's symbols against the symbols of the data a run uses.

    Every path where data meets a config calls this (`sim run`, `run_backtest`, sweeps and
    walk-forward). `universe.regime.reference_symbol` absent from `data_symbols` is always a
    `ConfigError` (the regime would silently be "chop" on every bar). A symbol of `core`,
    `rotational` or `excluded` absent is a `ConfigError` too, unless `allow_missing`, which
    logs one warning instead. Themes, `products` and `spread_bps_estimate` are tables and may
    list symbols the data lacks. Both messages name the symbols and the data's symbols.

    Parameters
    ----------
    config : PlatformConfig
        The loaded config (its symbols are canonical).
    data_symbols : iterable of str
        The data's symbols (a panel's `symbols`: canonical, as `load_bars` writes them).
    allow_missing : bool
        The CLI's `--allow-missing-symbols`: absent universe symbols only warn.

    Returns
    -------
    tuple of (str, str)
        The absent universe symbols as `(key, symbol)`, such as `("core", "XRPP-USD")`.
    """
    have = sorted(set(data_symbols))
    check_reference_symbol(config, have)
    missing = tuple(
        (key, symbol)
        for key in UNIVERSE_LISTS
        for symbol in getattr(config.universe, key)
        if symbol not in have
    )
    if not missing:
        return missing
    listed = ", ".join(f"`{key}` {symbol}" for key, symbol in missing)
    if not allow_missing:
        msg = (
            f"universe.yaml symbols must be in the data, were missing: {listed}; "
            f"{_data_has(have)} (correct or remove them, or pass --allow-missing-symbols, "
            "allow_missing_symbols=True in Python, to ignore them)"
        )
        raise ConfigError(msg)
    log.warning(
        "universe.yaml symbols not in the data, ignored (--allow-missing-symbols): %s; %s",
        listed, _data_has(have),
    )  # fmt: skip
    return missing


def check_bar_interval(config: PlatformConfig, bar_ns: int) -> None:
    """Raise `ConfigError` when a lookback was given as a duration and the data's bars are not
    `backtest.bar_interval` apart (the durations would count bars of the wrong length).

    `bar_ns` is the data's bar spacing (`signals.pipeline.infer_bar_ns`). A config without
    durations runs on data of any spacing, as it always has. `run_backtest`, `sim run`,
    `sim sweep` and the live daemon (with live.yaml's `granularity`) call it; the message names
    the interval, the spacing and the durations.
    """
    durations = config.durations
    interval = config.backtest.bar_interval
    if not durations or parse_duration_ns(interval) == bar_ns:
        return
    listed = ", ".join(f"`{key}` {value}" for key, value in sorted(durations.items()))
    msg = (
        f"`backtest.bar_interval` must be the data's bar spacing when lookbacks are durations, "
        f"was {interval} for bars {format_duration(bar_ns)} apart (durations: {listed}); set "
        f"`bar_interval: {format_duration(bar_ns)}` in backtest.yaml, or give the lookbacks in bars"
    )
    raise ConfigError(msg)


def _suggest(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            current = None
            continue
        annotation = field.annotation
        current = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
        if current is None:
            args = getattr(annotation, "__args__", ())
            current = next(
                (a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None
            )
    return list(getattr(current, "model_fields", {}).keys())


def format_validation_error(error: ValidationError, model: type[BaseModel], source: str) -> str:
    """Turn a pydantic error into one line per problem, naming the file, the key and a fix."""
    lines = []
    for item in error.errors():
        loc = tuple(item["loc"])
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        key = str(loc[-1]) if loc else ""
        if item["type"] == "extra_forbidden":
            if key in DEPRECATED_KEYS:
                hint = f"; `{key}` is deprecated, use `{DEPRECATED_KEYS[key]}`"
            else:
                hint = _suggest(key, _allowed_keys(model, loc))
            lines.append(f"{source}: unknown key `{dotted}`{hint}")
        else:
            text = item["msg"].removeprefix("Value error, ")
            lines.append(f"{source}: `{dotted}` {text}, was {item.get('input')!r}")
    return "; ".join(lines)


def _interval_of(data: Mapping[str, Any]) -> str | None:
    # `backtest.bar_interval` of a whole-config mapping, when it is a valid duration
    value = _get_path(data, ("backtest", "bar_interval"))
    if value is None:
        return DEFAULT_BAR_INTERVAL
    try:
        ok = isinstance(value, str) and parse_duration_ns(value) > 0
    except ValueError:
        ok = False
    return value if ok else None


def parse_model(
    model: type[BaseModel], data: Any, source: str, *, bar_interval: str | None = None
) -> Any:
    """Validate `data` against `model`, raising `ConfigError` with a readable message.

    Lookbacks given as durations (`48h`) become bars of `bar_interval`; for `PlatformConfig`
    it defaults to the data's own `backtest.bar_interval`. Without one a duration is refused.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        msg = f"{source}: the top level must be a mapping, was {type(data).__name__}"
        raise ConfigError(msg)
    if bar_interval is None and model is PlatformConfig:
        bar_interval = _interval_of(data)
    context = {BAR_INTERVAL_CONTEXT: bar_interval} if bar_interval is not None else None
    try:
        return model.model_validate(data, context=context)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, model, source)) from e


def read_yaml(path: Path) -> Any:
    """Return the YAML document of `path`; raise `ConfigError` naming it when it cannot be read.

    An empty file is refused (it is more often a truncated write than a wish for defaults;
    delete it, or write `{}`, to take the defaults).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        msg = f"{path}: must be UTF-8 text, was not (byte {e.start}: {e.reason})"
        raise ConfigError(msg) from e
    except IsADirectoryError as e:
        msg = f"{path}: must be a YAML file, is a directory"
        raise ConfigError(msg) from e
    except OSError as e:
        msg = f"{path}: must be readable, was not ({e.strerror})"
        raise ConfigError(msg) from e
    if not text.strip():
        msg = f"{path}: is empty; delete it to use the defaults, or write `{{}}`"
        raise ConfigError(msg)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        msg = f"{path}: is not valid YAML ({e})".replace("\n", " ")
        raise ConfigError(msg) from e


def load_config(config_dir: str | Path) -> PlatformConfig:
    """Load and validate every YAML file in `config_dir`; missing files take safe defaults.

    Raises `ConfigError` for a missing folder, unparsable YAML, unknown keys (with a suggestion),
    wrong types, failed cross-field checks and unknown strategy names or parameters.
    """
    folder = Path(config_dir)
    if not folder.is_dir():
        msg = f"config folder `{folder}` must exist, was missing (pass --config DIR)"
        raise ConfigError(msg)
    known = set(CONFIG_FILES)
    for path in sorted(folder.glob("*.yaml")):
        if path.name not in known and path.name != "live.yaml":
            hint = _suggest(path.name, sorted(known))
            msg = f"config file `{path}` is not one of {sorted(known | {'live.yaml'})}{hint}"
            raise ConfigError(msg)
    parts: dict[str, Any] = {}
    durations: dict[str, str] = {}
    bar_interval = DEFAULT_BAR_INTERVAL
    # backtest.yaml first: its `bar_interval` converts the other files' durations
    for name in sorted(CONFIG_FILES, key=lambda n: n != "backtest.yaml"):
        model, path, section = CONFIG_FILES[name], folder / name, name.removesuffix(".yaml")
        if not path.exists():
            parts[section] = model()
            continue
        data = read_yaml(path)
        parts[section] = parse_model(model, data, str(path), bar_interval=bar_interval)
        if section == "backtest":
            bar_interval = parts[section].bar_interval
        elif section != "strategies":
            durations |= _duration_keys(data, parts[section].model_dump(), section)
    config = PlatformConfig(**parts)
    from signals.strategies.registry import validate_strategies  # noqa: PLC0415 (cycle)

    raw = config.strategies.strategies
    strategies = validate_strategies(
        config.strategies, str(folder / "strategies.yaml"), folder, bar_interval=bar_interval
    )
    for name, entry in strategies.strategies.items():
        durations |= _duration_keys(raw[name].params, entry.params, f"strategies.{name}")
    config = config.model_copy(update={"strategies": strategies})
    config._durations = durations
    return config
