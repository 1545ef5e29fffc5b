"""Tests for `signals.symbols`."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signals.errors import DataError
from signals.symbols import BASE_ALIASES, KNOWN_QUOTES, canonical_symbol, canonical_symbols


@pytest.mark.parametrize(
    "raw",
    [
        "BTC-USD",
        "btc-usd",
        "BTCUSD",
        "BTC/USD",
        "BTC_USD",
        "btc:usd",
        " BTC-USD ",
        "XBT-USD",
        "XBTUSD",
        "xbt/usd",
        "WBTC-USD",
        "WBTCUSD",
    ],
)
def test_canonical_symbol_btc_spellings_map_to_btc_usd(raw):
    assert canonical_symbol(raw) == "BTC-USD"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ETHUSDC", "ETH-USDC"),
        ("ETHUSDT", "ETH-USDT"),
        ("SOLEUR", "SOL-EUR"),
        ("ADAGBP", "ADA-GBP"),
        ("ETHBTC", "ETH-BTC"),
        ("LINKETH", "LINK-ETH"),
        ("XDGUSD", "DOGE-USD"),
        ("WETH-USD", "ETH-USD"),
        ("1INCH-USD", "1INCH-USD"),
        ("ETH-XBT", "ETH-BTC"),
    ],
)
def test_canonical_symbol_known_forms_return_base_quote(raw, expected):
    assert canonical_symbol(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "USD", "BTC", "BTCXYZ", "BTC-", "-USD", "BTC-USD-EUR", "BTC USD", "BT€-USD", "WBTC-BTC"],
)
def test_canonical_symbol_unparsable_raises_naming_input(raw):
    with pytest.raises(DataError, match="`symbol`") as info:
        canonical_symbol(raw)
    assert repr(raw) in str(info.value)


def test_canonical_symbol_non_string_raises_data_error():
    with pytest.raises(DataError, match="must be a string, was 42"):
        canonical_symbol(42)  # type: ignore[arg-type]


def test_canonical_symbols_list_keeps_order():
    assert canonical_symbols(["XBTUSD", "eth_usd", "DOGE/USD"]) == [
        "BTC-USD",
        "ETH-USD",
        "DOGE-USD",
    ]


def test_canonical_symbols_empty_returns_empty():
    assert canonical_symbols([]) == []


_codes = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=2, max_size=6)


@given(base=_codes, quote=st.sampled_from(KNOWN_QUOTES), sep=st.sampled_from(["-", "/", "_", ""]))
def test_canonical_symbol_any_spelling_is_idempotent(base, quote, sep):
    try:
        once = canonical_symbol(f"{base}{sep}{quote}".lower())
    except DataError:
        return
    assert canonical_symbol(once) == once
    assert once == once.upper()
    assert once.count("-") == 1
    assert once.split("-")[0] not in BASE_ALIASES
