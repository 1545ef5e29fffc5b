"""Reusable constrained field types for the pydantic config models."""

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo
from pydantic_core import PydanticCustomError

from signals.durations import UNITS_TEXT, duration_bars, is_duration, parse_duration_ns

PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Pct = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]
"""A percentage in percent units (25.0 means 25 %)."""
Bps = Annotated[float, Field(ge=0.0, le=1000.0, allow_inf_nan=False)]
"""Basis points, bounded at 10 % as a sanity limit for fees and slippage."""


# --------------------------------------------------------------------------------------------
# lookbacks: a number of bars, or a duration converted with `backtest.bar_interval`
# --------------------------------------------------------------------------------------------

BAR_INTERVAL_CONTEXT = "bar_interval"
"""Key of the pydantic validation context that holds the bar interval durations are read with
(`signals.config.parse_model` sets it from `backtest.bar_interval`)."""
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


def _duration_to_bars(value: Any, info: ValidationInfo) -> Any:
    # an int (or an int-like string) passes through unchanged for pydantic's own int check
    if not isinstance(value, str) or _INTEGER.fullmatch(value):
        return value
    if not is_duration(value):
        raise PydanticCustomError(
            "bars",
            "must be a whole number of bars or a duration such as 48h, with unit {units}",
            {"units": UNITS_TEXT},
        )
    context = info.context if isinstance(info.context, dict) else {}
    bar_interval = context.get(BAR_INTERVAL_CONTEXT)
    if not isinstance(bar_interval, str):
        raise PydanticCustomError(
            "bars",
            "is a duration, which needs the bar interval: load the config with `load_config` "
            "or `with_overrides` (they read `backtest.bar_interval`), or give a number of bars",
        )
    try:
        return duration_bars(value, bar_interval)
    except ValueError:
        raise PydanticCustomError(
            "bars",
            "must be a whole number of {interval} bars (`backtest.bar_interval`)",
            {"interval": bar_interval},
        ) from None


def _check_duration(value: str) -> str:
    try:
        if parse_duration_ns(value) <= 0:
            raise ValueError
    except ValueError:
        raise PydanticCustomError(
            "duration", "must be a duration longer than 0 such as 1h, with unit {units}",
            {"units": UNITS_TEXT},
        ) from None  # fmt: skip
    return value


PositiveBars = Annotated[int, BeforeValidator(_duration_to_bars), Field(gt=0)]
"""A lookback or window: bars (> 0), or a duration such as `48h` converted to whole bars of
`backtest.bar_interval` (`signals.durations` lists the units)."""
NonNegBars = Annotated[int, BeforeValidator(_duration_to_bars), Field(ge=0)]
"""As `PositiveBars`, 0 allowed (a cooldown or a tolerance that may be off)."""
Duration = Annotated[str, AfterValidator(_check_duration)]
"""A duration longer than 0 such as `1h` (`signals.durations`)."""
