"""Strategies: pure functions of an immutable market context that return proposals.

Importing this package registers the built-in strategies (`rules`, `ma_cross`).
"""

from signals.strategies import ma_cross, rules  # noqa: F401  (registration side effect)
from signals.strategies.base import Proposals, Strategy, StrategyContext
from signals.strategies.registry import STRATEGIES, EnabledStrategy, enabled_strategies, register

__all__ = [
    "STRATEGIES",
    "EnabledStrategy",
    "Proposals",
    "Strategy",
    "StrategyContext",
    "enabled_strategies",
    "register",
]
