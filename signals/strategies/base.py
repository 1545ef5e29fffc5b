"""The strategy interface: an immutable context in, proposals per bar and symbol out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import numpy as np
from pydantic import BaseModel

ParamsT = TypeVar("ParamsT", bound=BaseModel)


def params_as(model: type[ParamsT], params: BaseModel) -> ParamsT:
    """Return `params` as a `model`: itself when it is one (the registry parses each strategy's
    own `Params`), else validated from its fields."""
    return params if isinstance(params, model) else model.model_validate(params.model_dump())


@dataclass(frozen=True)
class StrategyContext:
    """What a strategy may see: market arrays (read-only), the regime and its own parameters.

    Arrays are float64 `[T, S]` (time on axis 0) except `ts_ns` (int64[T], bar open, UTC ns),
    `regime` (int64[T], `Regime` codes) and `bad_tick` (uint8[T, S], 1 = masked bar), in any
    memory layout: in a backtest `close` and `volume` are symbol-major (each symbol's column
    contiguous), the others bar-major; index them, do not assume a layout. There is no
    exchange, clock or I/O here, so the same call serves the backtest and the live bridge.
    """

    ts_ns: np.ndarray
    symbols: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    regime: np.ndarray
    bad_tick: np.ndarray
    bar_ns: int
    params: BaseModel

    def __post_init__(self) -> None:
        for name in ("ts_ns", "open", "high", "low", "close", "volume", "regime", "bad_tick"):
            view = getattr(self, name).view()
            view.setflags(write=False)
            object.__setattr__(self, name, view)


@dataclass(frozen=True)
class Proposals:
    """A strategy's output, float64 `[T, S]` each.

    `weight`: target fraction of equity (NaN = no opinion, 0 = exit, > 0 = enter or hold).
    `stop_pct` / `take_pct`: fractions below/above the fill price (NaN = the policy's default);
    either may be one `[1, S]` row that holds for every bar (a constant costs S values, not
    T x S; numpy broadcasting and `sim.nb.simulate_nb` both read it so).
    """

    weight: np.ndarray
    stop_pct: np.ndarray
    take_pct: np.ndarray


class Strategy(ABC):
    """Base class of every strategy. Subclasses set `name` and `Params` and implement `propose`.

    A strategy must be causal (row t uses rows <= t only) and should use windowed kernels only,
    so the live bridge's rolling window gives the same proposals as the full backtest history.
    """

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    reads_regime: ClassVar[bool] = True
    """Whether `propose` reads `ctx.regime`; then the data must hold the regime's reference
    symbol (`signals.config.check_reference_symbol`). A strategy that never reads it says so."""

    @classmethod
    @abstractmethod
    def warmup_bars(cls, params: BaseModel) -> int:
        """Return the bars of history needed before the first valid proposal."""

    @classmethod
    @abstractmethod
    def propose(cls, ctx: StrategyContext) -> Proposals:
        """Return the proposals for every bar and symbol of `ctx`."""
