"""The strategy registry: names -> classes, and the enabled strategies of a config."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel

from signals.errors import ConfigError

if TYPE_CHECKING:
    from signals.config import StrategiesConfig, StrategyEntry
    from signals.strategies.base import Strategy

STRATEGIES: dict[str, type[Strategy]] = {}
_S = TypeVar("_S", bound="type[Strategy]")


def register(cls: _S) -> _S:
    """Class decorator: add a strategy to the registry under `cls.name`."""
    if cls.name in STRATEGIES:
        msg = f"strategy `{cls.name}` must be registered once, was registered twice"
        raise ValueError(msg)
    STRATEGIES[cls.name] = cls
    return cls


@dataclass(frozen=True)
class EnabledStrategy:
    """An enabled registry entry: the class, its validated parameters and its budget."""

    name: str
    cls: type[Strategy]
    params: BaseModel
    entry: StrategyEntry


def _lookup(name: str, source: str) -> type[Strategy]:
    import signals.strategies  # noqa: F401, PLC0415  (registers the built-ins)

    if name not in STRATEGIES:
        close = difflib.get_close_matches(name, list(STRATEGIES), n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        msg = f"{source}: unknown strategy `{name}`, known: {sorted(STRATEGIES)}{hint}"
        raise ConfigError(msg)
    return STRATEGIES[name]


def validate_strategies(config: StrategiesConfig, source: str) -> None:
    """Check every entry names a registered strategy with valid parameters (strict)."""
    from signals.config import parse_model  # noqa: PLC0415

    for name, entry in config.strategies.items():
        cls = _lookup(name, source)
        parse_model(cls.Params, entry.params, f"{source} (strategies.{name}.params)")


def enabled_strategies(
    config: StrategiesConfig, source: str = "strategies.yaml"
) -> list[EnabledStrategy]:
    """Return the enabled strategies in name order with their parsed parameters."""
    from signals.config import parse_model  # noqa: PLC0415

    out = []
    for name in sorted(config.strategies):
        entry = config.strategies[name]
        if not entry.enabled:
            continue
        cls = _lookup(name, source)
        params = parse_model(cls.Params, entry.params, f"{source} (strategies.{name}.params)")
        out.append(EnabledStrategy(name=name, cls=cls, params=params, entry=entry))
    return out
