"""Symbol canonicalisation: the one place that turns venue spellings into `BASE-QUOTE`.

Every loader, config model and adapter calls `canonical_symbol`; nothing else maps aliases.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from signals.errors import DataError

BASE_ALIASES: dict[str, str] = {"XBT": "BTC", "WBTC": "BTC", "XDG": "DOGE", "WETH": "ETH"}
"""Venue or wrapped-token spellings mapped to the asset they stand for."""

KNOWN_QUOTES: tuple[str, ...] = ("USDC", "USDT", "USD", "EUR", "GBP", "BTC", "ETH")
"""Quote currencies used to split separator-less symbols such as `BTCUSD`."""


class SymbolError(DataError):
    """A value `canonical_symbol` cannot turn into `BASE-QUOTE`.

    `raw` is the value; `reason` says what is wrong with it ("must have exactly one separator
    between base and quote"), so a config loader can name its own key and file around it.
    """

    def __init__(self, raw: object, reason: str) -> None:
        super().__init__(f"`symbol` {reason}, was {raw!r}")
        self.raw = raw
        self.reason = reason


_SEPARATORS = re.compile(r"[-/_:]")
_CODE = re.compile(r"^[A-Z0-9]+$")
# Longest suffix first, so `BTCUSDC` splits as BTC/USDC and not BTCU... as ?/USD.
_QUOTES_LONGEST_FIRST = tuple(sorted(KNOWN_QUOTES, key=len, reverse=True))


def canonical_symbol(raw: str) -> str:
    """Return the canonical `BASE-QUOTE` form of a symbol.

    Accepts any case and the separators ``-``, ``/``, ``_`` and ``:``; a symbol without a
    separator is split on the longest known quote suffix (`KNOWN_QUOTES`). Aliases in
    `BASE_ALIASES` are applied to both sides.

    Parameters
    ----------
    raw : str
        The symbol as a venue or a file spells it.

    Returns
    -------
    str
        Upper-case ``BASE-QUOTE``.

    Raises
    ------
    SymbolError
        A `DataError`: the input is not a string or cannot be split into two alphanumeric
        codes.

    Examples
    --------
    >>> canonical_symbol("xbt/usd")
    'BTC-USD'
    >>> canonical_symbol("ETHUSDC")
    'ETH-USDC'
    """
    if not isinstance(raw, str):
        raise SymbolError(raw, "must be a string")
    text = raw.strip().upper()
    parts = _SEPARATORS.split(text)
    if len(parts) == 1:
        base, quote = _split_on_quote(text, raw)
    elif len(parts) == 2:
        base, quote = parts
    else:
        raise SymbolError(raw, "must have exactly one separator between base and quote")
    if not _CODE.match(base) or not _CODE.match(quote):
        raise SymbolError(raw, "must be two alphanumeric codes `BASE-QUOTE`")
    base = BASE_ALIASES.get(base, base)
    quote = BASE_ALIASES.get(quote, quote)
    if base == quote:
        raise SymbolError(raw, "must have different base and quote after alias mapping")
    return f"{base}-{quote}"


def canonical_symbols(raws: Iterable[str]) -> list[str]:
    """Return `canonical_symbol` of every element, in the same order.

    Examples
    --------
    >>> canonical_symbols(["XBTUSD", "eth_usd"])
    ['BTC-USD', 'ETH-USD']
    """
    return [canonical_symbol(raw) for raw in raws]


def _split_on_quote(text: str, raw: str) -> tuple[str, str]:
    for quote in _QUOTES_LONGEST_FIRST:
        if text.endswith(quote) and len(text) > len(quote):
            return text[: -len(quote)], quote
    reason = f"without a separator must end in a known quote {KNOWN_QUOTES} after a non-empty base"
    raise SymbolError(raw, reason)
