# --- kernel arrays ---
# Hypothesis strategies for the numba kernels in signals/indicators, triggers and regime:
# C-contiguous float64 arrays [T, S] (time on axis 0), small so a run takes seconds.

import numpy as _np
from hypothesis import strategies as _st
from hypothesis.extra import numpy as _hnp

KERNEL_MAX_ROWS = 60
KERNEL_MAX_COLS = 3

# A few repeated values so ties (equal highs, flat windows, equal averages) are common.
_TIE_VALUES = (1.0, 2.0, 100.0, 100.5, 101.0)
_price_elements = _st.one_of(
    _st.floats(min_value=1.0, max_value=1e4, allow_nan=False, allow_infinity=False),
    _st.floats(min_value=95.0, max_value=105.0, allow_nan=False, allow_infinity=False),
    _st.sampled_from(_TIE_VALUES),
    _st.sampled_from(_TIE_VALUES),
    _st.just(float("nan")),
)
# Hostile values: inf, zero, negative, tiny and huge, for "does not crash" tests.
_special_elements = _st.one_of(
    _price_elements,
    _st.sampled_from((float("inf"), float("-inf"), 0.0, -1.0, -100.0, 1e-300, 1e300, float("nan"))),
)


def _shapes(min_rows: int, max_rows: int, max_cols: int):
    return _st.tuples(
        _st.integers(min_value=min_rows, max_value=max_rows),
        _st.integers(min_value=1, max_value=max_cols),
    )


@_st.composite
def price_walks(draw, min_rows=0, max_rows=KERNEL_MAX_ROWS, max_cols=KERNEL_MAX_COLS):
    """Seeded geometric random walks with about 10 % NaNs and occasional +/-30 % jumps."""
    n_rows, n_cols = draw(_shapes(min_rows, max_rows, max_cols))
    seed = draw(_st.integers(min_value=0, max_value=2**32 - 1))
    nan_frac = draw(_st.sampled_from((0.0, 0.1)))
    rng = _np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.02, (n_rows, n_cols))
    jumps = rng.random((n_rows, n_cols)) < 0.05
    steps[jumps] += rng.choice((-0.3, 0.3), size=int(jumps.sum()))
    x = 100.0 * _np.exp(_np.cumsum(steps, axis=0))
    x[rng.random((n_rows, n_cols)) < nan_frac] = _np.nan
    return _np.ascontiguousarray(x)


def element_arrays(min_rows=0, max_rows=KERNEL_MAX_ROWS, max_cols=KERNEL_MAX_COLS, special=False):
    """Arrays drawn element by element (good shrinking), positive prices with NaNs and ties."""
    return (
        _shapes(min_rows, max_rows, max_cols)
        .flatmap(
            lambda shape: _hnp.arrays(
                _np.float64, shape, elements=_special_elements if special else _price_elements
            )
        )
        .map(_np.ascontiguousarray)
    )


def kernel_arrays(min_rows=0, max_rows=KERNEL_MAX_ROWS, max_cols=KERNEL_MAX_COLS):
    """Positive price-like arrays `[T, S]` with NaNs: random walks or element-wise draws."""
    return _st.one_of(
        price_walks(min_rows, max_rows, max_cols), element_arrays(min_rows, max_rows, max_cols)
    )


def special_arrays(min_rows=0, max_rows=KERNEL_MAX_ROWS, max_cols=KERNEL_MAX_COLS):
    """Arrays mixing prices with NaN, +/-inf, zero, negative, tiny and huge values."""
    return element_arrays(min_rows, max_rows, max_cols, special=True)


def kernel_scales():
    """The small integer each registry entry turns into its windows (1..8)."""
    return _st.integers(min_value=1, max_value=8)


# --- bar frames (signals/bars.py) ---
# Valid long bar frames in BAR_SCHEMA: a few symbols, each on a random subset of one hourly
# grid (so panels have holes), OHLC consistent, sorted by (symbol, ts).

import datetime as _dt  # noqa: E402

import polars as _pl  # noqa: E402

from signals.bars import BAR_SCHEMA as _BAR_SCHEMA  # noqa: E402

BAR_SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD", "DOGE-USD")
_BAR_EPOCH = _dt.datetime(2024, 1, 1, tzinfo=_dt.UTC)
_bar_price = _st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)
_bar_volume = _st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_infinity=False)


@_st.composite
def bar_frames(draw, max_symbols=3, max_bars=24, min_bars=1):
    """Draw a valid bar frame in BAR_SCHEMA sorted by (symbol, ts)."""
    symbols = draw(
        _st.lists(_st.sampled_from(BAR_SYMBOLS), min_size=1, max_size=max_symbols, unique=True)
    )
    rows = []
    for symbol in sorted(symbols):
        steps = draw(
            _st.lists(
                _st.integers(0, 3 * max_bars), min_size=min_bars, max_size=max_bars, unique=True
            )
        )
        for step in sorted(steps):
            prices = sorted(draw(_st.lists(_bar_price, min_size=4, max_size=4)))
            open_, close = prices[1:3] if draw(_st.booleans()) else prices[2:0:-1]
            rows.append(
                {
                    "ts": _BAR_EPOCH + _dt.timedelta(hours=step),
                    "symbol": symbol,
                    "open": open_,
                    "high": prices[3],
                    "low": prices[0],
                    "close": close,
                    "volume": draw(_bar_volume),
                }
            )
    return _pl.DataFrame(rows, schema=_BAR_SCHEMA)
