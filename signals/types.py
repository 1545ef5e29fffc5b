"""Reusable constrained field types for the pydantic config models."""

from typing import Annotated

from pydantic import Field

PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Pct = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]
"""A percentage in percent units (25.0 means 25 %)."""
Bps = Annotated[float, Field(ge=0.0, le=1000.0, allow_inf_nan=False)]
"""Basis points, bounded at 10 % as a sanity limit for fees and slippage."""
