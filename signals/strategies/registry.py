"""The strategy registry: names -> classes, and the enabled strategies of a config."""

from __future__ import annotations

import argparse
import difflib
import hashlib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel

from signals.errors import ConfigError

if TYPE_CHECKING:
    from signals.config import StrategiesConfig, StrategyEntry
    from signals.strategies.base import Strategy

STRATEGIES: dict[str, type[Strategy]] = {}
_S = TypeVar("_S", bound="type[Strategy]")


ENTRY_POINT_GROUP = "247trader.strategies"
"""Installed packages offer strategies under this entry-point group (`name = "module"` or
`name = "module:Class"`); loading the entry point registers the strategy."""


def _origin(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register(cls: _S) -> _S:
    """Class decorator: add a strategy to the registry under `cls.name`.

    Registering a class of the same module and qualified name again (a notebook cell run
    twice, a reloaded module) replaces the earlier one; another class under a name already
    taken is a `ValueError` naming both, so a user strategy never silently shadows another.
    """
    old = STRATEGIES.get(cls.name)
    if old is not None and _origin(old) != _origin(cls):
        msg = (
            f"strategy name `{cls.name}` is taken by {_origin(old)}, so {_origin(cls)} cannot "
            "register under it; give it another `name`"
        )
        raise ValueError(msg)
    STRATEGIES[cls.name] = cls
    return cls


_IMPORTED: dict[str, ModuleType] = {}


def import_strategies(source: str, base_dir: str | Path | None = None) -> ModuleType:
    """Import the user module `source` so that its strategies register; return the module.

    `source` is a dotted module name (`my_strategies.bb_revert`, importable from `sys.path` or
    the current folder) or a `.py` file path (relative paths against `base_dir`, default the
    current folder). A module is imported once per process. Raises `ConfigError` naming
    `source` when it cannot be found or fails while importing.
    """
    if source in _IMPORTED:
        return _IMPORTED[source]
    try:
        if source.endswith(".py") or "/" in source or os.sep in source:
            path = Path(source)
            if not path.is_absolute():
                path = Path(base_dir or Path.cwd()) / path
            if not path.is_file():
                msg = f"strategy module file `{path}` must exist, was missing"
                raise ConfigError(msg)
            digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
            name = f"_247trader_strategies_{path.stem}_{digest}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                msg = f"strategy module file `{path}` must be a Python file"
                raise ConfigError(msg)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
        else:
            try:
                module = importlib.import_module(source)
            except ModuleNotFoundError as e:
                cwd = str(Path.cwd())
                if e.name is None or not source.startswith(e.name) or cwd in sys.path:
                    raise
                sys.path.append(cwd)  # as `python -m` would: the current folder's modules
                module = importlib.import_module(source)
    except ConfigError:
        raise
    except ModuleNotFoundError as e:
        msg = (
            f"strategy module `{source}` must be importable, was not: {e} (install it, put it "
            "on PYTHONPATH or in the current folder, or give a .py file path)"
        )
        raise ConfigError(msg) from e
    except Exception as e:
        msg = f"strategy module `{source}` failed while importing: {type(e).__name__}: {e}"
        raise ConfigError(msg) from e
    _IMPORTED[source] = module
    return module


def import_strategies_from(path: str | Path) -> list[ModuleType]:
    """Import a `.py` file, or every `.py` file of a folder in name order (`--strategies-from`).

    Raises `ConfigError` for a missing path, a folder without `.py` files, or a failing import.
    """
    target = Path(path)
    if target.is_dir():
        files = sorted(p for p in target.glob("*.py") if not p.name.startswith("_"))
        if not files:
            msg = f"`--strategies-from {path}` must hold .py files, held none"
            raise ConfigError(msg)
        return [import_strategies(str(f.resolve())) for f in files]
    if not target.is_file():
        msg = f"`--strategies-from {path}` must be a .py file or a folder, was missing"
        raise ConfigError(msg)
    return [import_strategies(str(target.resolve()))]


def add_strategies_from(parser: argparse.ArgumentParser) -> None:
    """Add `--strategies-from PATH` (shared by `sim run`, `sim sweep`, `live-bridge run`)."""
    parser.add_argument(
        "--strategies-from",
        metavar="PATH",
        action="append",
        default=[],
        help="import user strategies from a .py file or every .py file of a folder before the "
        "config is read (repeatable); strategies.yaml entries may also name a `module:`",
    )


def import_user_strategies(args: argparse.Namespace) -> None:
    """Import every `--strategies-from` path of `args` (a `ConfigError` names a bad one)."""
    for path in getattr(args, "strategies_from", None) or ():
        import_strategies_from(path)


def _from_entry_points(name: str) -> None:
    # an installed package's strategy, loaded only when the name is not registered yet
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name != name:
            continue
        try:
            ep.load()
        except Exception as e:
            msg = (
                f"strategy `{name}` from entry point `{ep.value}` ({ENTRY_POINT_GROUP}) failed "
                f"while loading: {type(e).__name__}: {e}"
            )
            raise ConfigError(msg) from e


@dataclass(frozen=True)
class EnabledStrategy:
    """An enabled registry entry: the class, its validated parameters and its budget."""

    name: str
    cls: type[Strategy]
    params: BaseModel
    entry: StrategyEntry


def _lookup(
    name: str, source: str, module: str | None = None, base_dir: str | Path | None = None
) -> type[Strategy]:
    import signals.strategies  # noqa: F401, PLC0415  (registers the built-ins)

    if module is not None:
        try:
            import_strategies(module, base_dir)
        except ConfigError as e:
            msg = f"{source} (strategies.{name}.module): {e}"
            raise ConfigError(msg) from None
        if name not in STRATEGIES:
            msg = (
                f"{source} (strategies.{name}.module): `{module}` must register a strategy "
                f"named `{name}`, registered none (known: {sorted(STRATEGIES)}; decorate the "
                "class with `@register` and set its `name`)"
            )
            raise ConfigError(msg)
    if name not in STRATEGIES:
        _from_entry_points(name)
    if name not in STRATEGIES:
        close = difflib.get_close_matches(name, list(STRATEGIES), n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        msg = f"{source}: unknown strategy `{name}`, known: {sorted(STRATEGIES)}{hint}"
        raise ConfigError(msg)
    return STRATEGIES[name]


def validate_strategies(
    config: StrategiesConfig,
    source: str,
    base_dir: str | Path | None = None,
    *,
    bar_interval: str | None = None,
) -> StrategiesConfig:
    """Check every entry names a registered strategy with valid parameters (strict); return
    `config` with each parameter given as a duration (`48h`) turned into bars of `bar_interval`.

    An entry's `module` is imported first (`import_strategies`, relative file paths against
    `base_dir`); an unknown name is looked up among the installed entry points. Without
    `bar_interval` a duration is a `ConfigError`. Every other value is kept as written, so a
    config without durations comes back equal (and with the same hash).
    """
    from signals.config import parse_model  # noqa: PLC0415
    from signals.durations import is_duration  # noqa: PLC0415

    changed = {}
    for name, entry in config.strategies.items():
        cls = _lookup(name, source, entry.module, base_dir)
        params = parse_model(
            cls.Params, entry.params, f"{source} (strategies.{name}.params)",
            bar_interval=bar_interval,
        )  # fmt: skip
        if any(is_duration(v) for v in entry.params.values()):
            bars = {k: getattr(params, k) if is_duration(v) else v for k, v in entry.params.items()}
            changed[name] = entry.model_copy(update={"params": bars})
    if not changed:
        return config
    return config.model_copy(update={"strategies": {**config.strategies, **changed}})


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
        cls = _lookup(name, source, entry.module)
        params = parse_model(cls.Params, entry.params, f"{source} (strategies.{name}.params)")
        out.append(EnabledStrategy(name=name, cls=cls, params=params, entry=entry))
    return out
