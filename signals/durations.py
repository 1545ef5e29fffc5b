"""Durations such as `48h`: parsing, conversion to whole bars, and formatting.

One parser serves the config's lookbacks (`signals.types.PositiveBars`, converted with
`backtest.bar_interval`) and `sim sweep --walk-forward 90d:30d`. A duration is a whole number
followed by one unit: `m` (minutes), `h` (hours), `d` (days, 24 h) or `w` (weeks, 7 d), such
as `90m`, `48h`, `2d` or `1w`; no sign, fraction, space or mixed units.
"""

from __future__ import annotations

import re
from typing import Any

MINUTE_NS = 60 * 1_000_000_000
UNIT_NS: dict[str, int] = {
    "m": MINUTE_NS,
    "h": 60 * MINUTE_NS,
    "d": 24 * 60 * MINUTE_NS,
    "w": 7 * 24 * 60 * MINUTE_NS,
}
"""Nanoseconds per duration unit: minutes, hours, days, weeks."""
UNITS_TEXT = "m, h, d or w (minutes, hours, days, weeks)"
_DURATION = re.compile(r"(\d+)([mhdw])")


def is_duration(value: Any) -> bool:
    """Return whether `value` is a duration string such as `48h` (see the module docstring).

    >>> is_duration("48h"), is_duration("48"), is_duration(48), is_duration("1.5h")
    (True, False, False, False)
    """
    return isinstance(value, str) and _DURATION.fullmatch(value) is not None


def parse_duration_ns(text: str) -> int:
    """Return the length of duration `text` in nanoseconds.

    >>> parse_duration_ns("90m") == 90 * 60 * 10**9
    True

    Raises
    ------
    ValueError
        When `text` is not a whole number and one unit of m, h, d, w (the message says so).
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        msg = (
            f"must be a duration: a whole number and a unit {UNITS_TEXT} such as 48h, was {text!r}"
        )
        raise ValueError(msg)
    return int(match.group(1)) * UNIT_NS[match.group(2)]


def format_duration(ns: int) -> str:
    """Return `ns` in the largest unit that divides it (`3_600 * 10**9` -> `1h`), else in ns.

    >>> format_duration(15 * 60 * 10**9), format_duration(86_400 * 10**9), format_duration(1)
    ('15m', '1d', '1 ns')
    """
    for unit in ("w", "d", "h", "m"):
        if ns > 0 and ns % UNIT_NS[unit] == 0:
            return f"{ns // UNIT_NS[unit]}{unit}"
    return f"{ns} ns"


def duration_bars(text: str, bar_interval: str) -> int:
    """Return duration `text` as a whole number of bars of length `bar_interval` (a duration).

    >>> duration_bars("2d", "1h"), duration_bars("90m", "15m")
    (48, 6)

    Raises
    ------
    ValueError
        When either is not a duration, or `text` is not a whole number of bars.
    """
    length_ns = parse_duration_ns(text)
    bar_ns = parse_duration_ns(bar_interval)
    if bar_ns <= 0:
        msg = f"`bar_interval` must be longer than 0, was {bar_interval!r}"
        raise ValueError(msg)
    bars, rest = divmod(length_ns, bar_ns)
    if rest:
        msg = f"must be a whole number of {bar_interval} bars, was {text!r}"
        raise ValueError(msg)
    return bars
