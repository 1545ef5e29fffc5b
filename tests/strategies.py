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


# --- risk scenarios ---
# Random but valid inputs of the shared `step` kernel (signals/decision/nb.py): a portfolio state
# (cash, positions, pending orders, cooldowns, period starts, breaker flags), one bar's proposals
# and stage-1 blocks, and random valid `StepParams`/`StepStatic`. Built from one seed with numpy
# so a draw is cheap; hypothesis picks the seed and the shape.

from signals.decision.params import StepParams as _StepParams  # noqa: E402
from signals.decision.params import StepStatic as _StepStatic  # noqa: E402
from signals.enums import N_ACC as _N_ACC  # noqa: E402
from signals.enums import N_POS as _N_POS  # noqa: E402
from signals.enums import Acc as _Acc  # noqa: E402
from signals.enums import Pos as _Pos  # noqa: E402
from signals.enums import Reason as _Reason  # noqa: E402


def _pick(rng, values, p=None):
    return values[int(rng.choice(len(values), p=p))]


def random_step_params(rng) -> _StepParams:
    """Return random valid `StepParams`: nested caps, fees, breakers, order types."""
    caps = _np.sort(rng.uniform(0.01, 1.0, 3))
    return _StepParams(
        total_cap=float(caps[2]),
        theme_cap=float(caps[1]),
        asset_cap=float(caps[0]),
        max_positions=int(rng.integers(1, 7)),
        stop_loss=float(_pick(rng, (0.0, 0.05, 0.1, 0.3))),
        cooldown_fill_bars=int(rng.integers(0, 6)),
        cooldown_stop_bars=int(rng.integers(0, 30)),
        daily_loss=float(_pick(rng, (0.01, 0.03, 0.2, 1.0))),
        weekly_loss=float(_pick(rng, (0.02, 0.07, 0.3, 1.0))),
        max_drawdown=float(_pick(rng, (0.05, 0.15, 0.5, 1.0))),
        kill_switch=bool(rng.random() < 0.05),
        auto_trim=bool(rng.random() < 0.7),
        trim_tolerance=float(_pick(rng, (0.0, 0.1, 0.5))),
        maker_fee=float(_pick(rng, (0.0, 0.004, 0.01))),
        taker_fee=float(_pick(rng, (0.0, 0.006, 0.02))),
        entry_order_type=int(rng.integers(0, 2)),
        exit_order_type=int(rng.integers(0, 2)),
        stop_order_type=int(rng.integers(0, 2)),
        limit_offset=float(_pick(rng, (0.0, 0.0005, 0.01))),
    )


def random_step_static(rng, n_symbols: int, n_strategies: int) -> _StepStatic:
    """Return random `StepStatic`: themes (some none), increments, minimums, budgets, regimes."""
    return _StepStatic(
        theme_id=rng.integers(-1, 3, n_symbols).astype(_np.int64),
        base_increment=_np.array(
            [_pick(rng, (0.0, 1e-8, 0.01, 0.1, 1.0)) for _ in range(n_symbols)]
        ),
        quote_increment=_np.array([_pick(rng, (0.0, 1e-5, 0.01)) for _ in range(n_symbols)]),
        min_size=_np.array([_pick(rng, (0.0, 1e-8, 0.5, 5.0)) for _ in range(n_symbols)]),
        min_notional=_np.array([_pick(rng, (0.0, 1.0, 10.0, 500.0)) for _ in range(n_symbols)]),
        strategy_cap=rng.uniform(0.0, 1.0, n_strategies),
        strategy_max_trades=rng.integers(1, 4, n_strategies).astype(_np.int64),
        regime_mult=_np.array([1.0, _pick(rng, (1.0, 0.6)), _pick(rng, (0.3, 0.0)), 0.0]),
        symbol_key=rng.integers(0, 2**63 - 1, n_symbols, dtype=_np.int64),
    )


def random_step_state(rng, n_symbols: int, n_strategies: int, bar_no: int, pending: bool = True):
    """Return `(account, positions)`: some held, some pending, some cooling down, some stopped."""
    account = _np.zeros(_N_ACC)
    cash = float(rng.uniform(0.0, 20_000.0))
    account[_Acc.Cash] = cash
    positions = _np.zeros((n_symbols, _N_POS))
    positions[:, _Pos.Strategy] = -1.0
    positions[:, _Pos.LastPrice] = _np.nan
    for s in range(n_symbols):
        price = float(rng.uniform(0.5, 200.0))
        if rng.random() < 0.5:
            positions[s, _Pos.Qty] = float(rng.uniform(0.1, 60.0))
            positions[s, _Pos.AvgEntry] = price * float(rng.uniform(0.7, 1.3))
            positions[s, _Pos.LastPrice] = price
            positions[s, _Pos.Strategy] = float(rng.integers(0, n_strategies))
            if rng.random() < 0.6:
                positions[s, _Pos.StopPrice] = positions[s, _Pos.AvgEntry] * 0.9
            if rng.random() < 0.4:
                positions[s, _Pos.TakePrice] = positions[s, _Pos.AvgEntry] * 1.15
            if pending and rng.random() < 0.15:
                positions[s, _Pos.PendingSellQty] = positions[s, _Pos.Qty] * float(
                    rng.uniform(0, 1)
                )
        elif rng.random() < 0.3:
            positions[s, _Pos.LastPrice] = price
        if pending and positions[s, _Pos.Qty] <= 0.0 and rng.random() < 0.15:
            notional = float(rng.uniform(10.0, 2000.0))
            positions[s, _Pos.PendingBuyNotional] = notional
            positions[s, _Pos.Strategy] = float(rng.integers(0, n_strategies))
            account[_Acc.ReservedCash] += notional
        if rng.random() < 0.3:
            positions[s, _Pos.CooldownUntilBar] = float(bar_no + rng.integers(-3, 5))
            positions[s, _Pos.CooldownIsStop] = float(rng.random() < 0.5)
    equity = cash + float(_np.nansum(positions[:, _Pos.Qty] * positions[:, _Pos.LastPrice]))
    account[_Acc.Equity] = equity
    account[_Acc.PeakEquity] = equity * float(_pick(rng, (1.0, 1.1, 1.5), p=(0.85, 0.1, 0.05)))
    account[_Acc.DayId] = float(_pick(rng, (-1, 100, 101)))
    account[_Acc.WeekId] = float(_pick(rng, (-1, 14, 15)))
    account[_Acc.DayStartEquity] = equity * float(_pick(rng, (1.0, 1.02, 1.1), p=(0.85, 0.1, 0.05)))
    account[_Acc.WeekStartEquity] = equity * float(
        _pick(rng, (1.0, 1.05, 1.2), p=(0.85, 0.1, 0.05))
    )
    account[_Acc.DailyStop] = float(rng.random() < 0.03)
    account[_Acc.WeeklyStop] = float(rng.random() < 0.03)
    account[_Acc.DrawdownBreaker] = float(rng.random() < 0.02)
    return account, positions


def random_step_inputs(rng, positions, n_symbols: int, n_strategies: int):
    """Return one bar's `(close, weight, stop_pct, take_pct, strategy, block, status, regime)`."""
    last = positions[:, _Pos.LastPrice]
    base = _np.where(_np.isfinite(last), last, rng.uniform(0.5, 200.0, n_symbols))
    close = base * rng.choice((0.8, 0.95, 1.0, 1.05, 1.3), n_symbols)
    close[rng.random(n_symbols) < 0.1] = _np.nan
    weight = rng.choice((_np.nan, 0.0, 0.02, 0.05, 0.1, 0.3), n_symbols)
    stop_pct = rng.choice((_np.nan, 0.0, 0.03, 0.2), n_symbols)
    take_pct = rng.choice((_np.nan, 0.0, 0.15), n_symbols)
    strategy = rng.integers(-1, n_strategies, n_symbols).astype(_np.int64)
    block = _np.where(
        rng.random(n_symbols) < 0.2,
        rng.choice(
            (_Reason.LowVolume, _Reason.Banned, _Reason.StaleData, _Reason.BadTick), n_symbols
        ),
        0,
    ).astype(_np.int64)
    status = _np.where(rng.random(n_symbols) < 0.2, rng.integers(1, 7, n_symbols), 0).astype(
        _np.int64
    )
    regime = int(_pick(rng, (-1, 0, 1, 2, 3), p=(0.2, 0.4, 0.2, 0.1, 0.1)))
    return close, weight, stop_pct, take_pct, strategy, block, status, regime


@_st.composite
def step_cases(draw, max_symbols=6, max_strategies=3, pending=True):
    """Draw a whole `step` call: params, static, state and one bar of inputs (a dict)."""
    n_symbols = draw(_st.integers(1, max_symbols))
    n_strategies = draw(_st.integers(1, max_strategies))
    rng = _np.random.default_rng(draw(_st.integers(0, 2**32 - 1)))
    bar_no = 2_400 + int(rng.integers(0, 48))
    account, positions = random_step_state(rng, n_symbols, n_strategies, bar_no, pending)
    close, weight, stop_pct, take_pct, strategy, block, status, regime = random_step_inputs(
        rng, positions, n_symbols, n_strategies
    )
    return {
        "bar_no": bar_no,
        "day_id": bar_no // 24,
        "week_id": (bar_no // 24 + 3) // 7,
        "close": close,
        "weight": weight,
        "stop_pct": stop_pct,
        "take_pct": take_pct,
        "strategy": strategy,
        "block_reason": block,
        "product_status": status,
        "regime": regime,
        "params": random_step_params(rng),
        "static": random_step_static(rng, n_symbols, n_strategies),
        "account": account,
        "positions": positions,
    }


# --- simulator markets ---
# Seeded multi-asset hourly markets for the simulator's property tests: OHLC consistent
# (open near the previous close, high/low around both), fat-tailed steps, optional missing bars
# (all of a bar's fields NaN), volumes large enough for the default universe filters.

SIM_SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")


@_st.composite
def sim_markets(draw, min_bars=80, max_bars=300, max_symbols=3):
    """Draw `(open, high, low, close, volume, symbols)` float64 `[T, S]` arrays."""
    n_bars = draw(_st.integers(min_value=min_bars, max_value=max_bars))
    n_symbols = draw(_st.integers(min_value=1, max_value=max_symbols))
    seed = draw(_st.integers(min_value=0, max_value=2**32 - 1))
    missing = draw(_st.sampled_from((0.0, 0.03)))
    rng = _np.random.default_rng(seed)
    steps = _np.clip(rng.standard_t(3, (n_bars, n_symbols)) * 0.01, -0.08, 0.08)
    close = 100.0 * _np.exp(_np.cumsum(steps, axis=0))
    prev = _np.vstack([close[:1], close[:-1]])
    open_ = prev * _np.exp(rng.normal(0.0, 0.002, close.shape))
    high = _np.maximum(open_, close) * _np.exp(_np.abs(rng.normal(0.0, 0.004, close.shape)))
    low = _np.minimum(open_, close) * _np.exp(-_np.abs(rng.normal(0.0, 0.004, close.shape)))
    volume = rng.uniform(5e4, 2e5, close.shape)
    gone = rng.random(close.shape) < missing
    gone[0] = False
    arrays = []
    for a in (open_, high, low, close, volume):
        a = a.copy()
        a[gone] = _np.nan
        arrays.append(_np.ascontiguousarray(a))
    return (*arrays, SIM_SYMBOLS[:n_symbols])
