"""Seeded synthetic spot-crypto bars for tests, examples and the shipped sample data set.

Not decision code, so it lives in `sim/`. numpy draws everything from one
``np.random.default_rng(seed)``; polars only assembles the frame.

Model, per bar ``t`` and asset ``s`` (log returns)::

    regime_t           Markov chain over bull / chop / bear / crash, shared by all assets
    m_t  = mu[regime_t] * dt + sqrt(hm_t) * z_t            market factor, GARCH(1,1) variance hm_t
    e_ts = sqrt(he_ts) * u_ts                              idiosyncratic, GARCH(1,1) variance he_ts
    r_ts = beta_s * m_t + e_ts
    z, u ~ Student-t(df=4) scaled to unit variance

GARCH variances mean-revert to the current regime's target, so volatility clusters and jumps
with the regime. Bars: ``open = previous close * exp(small gap)``, ``close = open * exp(r)``,
high/low stretch past max/min(open, close) by a half-normal amount scaled by the bar's sigma.
Volume is log-normal, multiplied on large standardised moves and by rare random spikes.
A few bad ticks per symbol are injected last: one bar whose close jumps 12-25 % and returns
on the next bar, with normal volume and high/low widened so the bar stays schema-valid.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, overload

import numpy as np
import polars as pl

from signals.bars import BAR_SCHEMA
from signals.errors import ConfigError

SYNTH_VERSION = "1.0.0"
"""Bumped whenever the same arguments would produce different bars."""

# (symbol, start price USD, market beta, idiosyncratic annual vol, typical daily USD volume)
_ASSETS: tuple[tuple[str, float, float, float, float], ...] = (
    ("BTC-USD", 40_000.0, 1.00, 0.15, 2.0e9),
    ("ETH-USD", 2_300.0, 1.10, 0.30, 1.0e9),
    ("SOL-USD", 100.0, 1.30, 0.55, 4.0e8),
    ("ADA-USD", 0.55, 1.20, 0.45, 1.0e8),
    ("AVAX-USD", 35.0, 1.30, 0.55, 1.2e8),
    ("LINK-USD", 14.0, 1.15, 0.45, 1.0e8),
    ("DOGE-USD", 0.08, 1.25, 0.60, 2.0e8),
    ("UNI-USD", 6.5, 1.10, 0.50, 5.0e7),
)

REGIMES: tuple[str, ...] = ("bull", "chop", "bear", "crash")
# Annualised log drift and market vol per regime; a crash loses ~30 % over its ~3 days.
_REGIME_DRIFT = np.array([1.0, 0.0, -0.8, -40.0])
_REGIME_VOL = np.array([0.55, 0.40, 0.70, 1.60])
_REGIME_DAYS = np.array([30.0, 20.0, 20.0, 3.0])  # mean episode length
# Where a regime goes when it ends (rows sum to 1, zero diagonal). Crashes come mostly out of
# bear and chop markets and end in bear or chop.
_REGIME_EXIT = np.array(
    [
        [0.00, 0.75, 0.20, 0.05],
        [0.45, 0.00, 0.45, 0.10],
        [0.25, 0.55, 0.00, 0.20],
        [0.10, 0.30, 0.60, 0.00],
    ]
)
_IDIO_REGIME_MULT = np.array([1.0, 0.9, 1.1, 1.8])
_VOLUME_REGIME_MULT = np.array([1.1, 0.8, 1.0, 2.5])

_T_DF = 4.0
_GARCH_ALPHA = 0.08
_GARCH_BETA = 0.90
_OPEN_GAP_SD = 0.0003
_WICK_SCALE = 0.6
_VOLUME_LOG_SD = 0.35
_VOLUME_MOVE_GAIN = 0.6
_VOLUME_SPIKE_PROB = 0.004
_BAD_TICK_JUMP = (0.12, 0.25)
_BARS_PER_BAD_TICK = 2_500
_MINUTES_PER_YEAR = 365.0 * 24.0 * 60.0


@overload
def synth_bars(
    seed: int = ...,
    n_symbols: int = ...,
    n_bars: int = ...,
    start: str = ...,
    bar_minutes: int = ...,
    *,
    return_bad_ticks: Literal[False] = ...,
) -> pl.DataFrame: ...


@overload
def synth_bars(
    seed: int = ...,
    n_symbols: int = ...,
    n_bars: int = ...,
    start: str = ...,
    bar_minutes: int = ...,
    *,
    return_bad_ticks: Literal[True],
) -> tuple[pl.DataFrame, pl.DataFrame]: ...


def synth_bars(
    seed: int = 42,
    n_symbols: int = 8,
    n_bars: int = 8760,
    start: str = "2024-01-01T00:00:00+00:00",
    bar_minutes: int = 60,
    *,
    return_bad_ticks: bool = False,
) -> pl.DataFrame | tuple[pl.DataFrame, pl.DataFrame]:
    """Return seeded synthetic bars in `BAR_SCHEMA`, sorted by (symbol, ts).

    Parameters
    ----------
    seed : int
        Seed of the only random generator; same arguments give an identical frame.
    n_symbols : int
        Number of assets: BTC-USD, ETH-USD, SOL-USD, ADA-USD, AVAX-USD, LINK-USD, DOGE-USD,
        UNI-USD, then ``SYN09-USD``, ``SYN10-USD`` ... with seeded prices and betas.
    n_bars : int
        Bars per symbol (no gaps), at least 3.
    start : str
        ISO-8601 open time of the first bar, with a UTC offset.
    bar_minutes : int
        Bar length in minutes.
    return_bad_ticks : bool
        Also return the injected bad ticks: ``symbol``, ``ts``, ``true_close``, ``bad_close``,
        ``jump_pct`` (signed, percent), sorted by (symbol, ts).

    Returns
    -------
    pl.DataFrame or (pl.DataFrame, pl.DataFrame)
    """
    start_dt = _check_args(seed, n_symbols, n_bars, start, bar_minutes)
    rng = np.random.default_rng(seed)
    n_t, n_s = n_bars, n_symbols
    dt_years = bar_minutes / _MINUTES_PER_YEAR
    names, price0, beta, idio_vol, usd_volume = _assets(rng, n_s)

    regime = _regime_path(rng, n_t, bar_minutes)
    returns, sigma = _returns(rng, regime, beta, idio_vol, dt_years)

    gap = rng.normal(0.0, _OPEN_GAP_SD, size=(n_t, n_s))
    log_close = np.log(price0) + np.cumsum(gap + returns, axis=0)
    close = np.exp(log_close)
    open_ = np.empty_like(close)
    open_[0] = price0 * np.exp(gap[0])
    open_[1:] = close[:-1] * np.exp(gap[1:])
    wick_up = np.abs(rng.standard_normal((n_t, n_s))) * sigma * _WICK_SCALE
    wick_down = np.abs(rng.standard_normal((n_t, n_s))) * sigma * _WICK_SCALE
    high = np.maximum(open_, close) * np.exp(wick_up)
    low = np.minimum(open_, close) * np.exp(-wick_down)

    # Volume in base units: typical USD volume per bar / price, log-normal noise, more on big
    # standardised moves and in crashes, plus rare random spikes.
    base_qty = usd_volume * (bar_minutes / 1440.0) / price0
    normal_volume = (
        base_qty
        * (price0 / np.sqrt(price0 * close))  # half-way between constant qty and constant USD
        * np.exp(rng.normal(0.0, _VOLUME_LOG_SD, size=(n_t, n_s)))
        * _VOLUME_REGIME_MULT[regime][:, None]
    )
    move = np.abs(returns) / sigma
    spikes = np.where(
        rng.random((n_t, n_s)) < _VOLUME_SPIKE_PROB, rng.uniform(3.0, 8.0, (n_t, n_s)), 1.0
    )
    volume = normal_volume * (1.0 + _VOLUME_MOVE_GAIN * move**1.5) * spikes

    bad_rows, bad_cols, true_close, bad_close = _inject_bad_ticks(rng, close, n_t, n_s)
    close[bad_rows, bad_cols] = bad_close
    high[bad_rows, bad_cols] = np.maximum(high[bad_rows, bad_cols], bad_close)
    low[bad_rows, bad_cols] = np.minimum(low[bad_rows, bad_cols], bad_close)
    volume[bad_rows, bad_cols] = normal_volume[bad_rows, bad_cols]

    start_ns = int(start_dt.timestamp()) * 1_000_000_000
    ts_ns = start_ns + np.arange(n_t, dtype=np.int64) * (bar_minutes * 60 * 1_000_000_000)
    frame = _long_frame(ts_ns, names, open_, high, low, close, volume)
    if not return_bad_ticks:
        return frame
    bad = (
        pl.DataFrame(
            {
                "symbol": [names[c] for c in bad_cols],
                "ts": pl.Series(ts_ns[bad_rows], dtype=pl.Int64).cast(BAR_SCHEMA["ts"]),
                "true_close": true_close,
                "bad_close": bad_close,
                "jump_pct": (bad_close / true_close - 1.0) * 100.0,
            }
        )
        .with_columns(pl.col("symbol").cast(pl.String))
        .sort("symbol", "ts")
    )
    return frame, bad


def synth_metadata(
    seed: int = 42,
    n_symbols: int = 8,
    n_bars: int = 8760,
    start: str = "2024-01-01T00:00:00+00:00",
    bar_minutes: int = 60,
) -> dict[str, Any]:
    """Return a JSON-able description of the generator and its arguments (for data READMEs)."""
    _check_args(seed, n_symbols, n_bars, start, bar_minutes)
    names, *_ = _assets(np.random.default_rng(seed), n_symbols)
    return {
        "generator": "sim.synth.synth_bars",
        "version": SYNTH_VERSION,
        "arguments": {
            "seed": seed,
            "n_symbols": n_symbols,
            "n_bars": n_bars,
            "start": start,
            "bar_minutes": bar_minutes,
        },
        "symbols": list(names),
        "regimes": {
            name: {
                "drift_annual_log": float(_REGIME_DRIFT[i]),
                "market_vol_annual": float(_REGIME_VOL[i]),
                "mean_days": float(_REGIME_DAYS[i]),
            }
            for i, name in enumerate(REGIMES)
        },
        "innovations": {"distribution": "student_t", "df": _T_DF},
        "garch": {"alpha": _GARCH_ALPHA, "beta": _GARCH_BETA},
        "bad_ticks": {
            "per_symbol": _bad_ticks_per_symbol(n_bars),
            "jump_pct": [100 * _BAD_TICK_JUMP[0], 100 * _BAD_TICK_JUMP[1]],
            "volume": "normal (no spike)",
        },
    }


# ############# Helpers ############# #


def _check_args(seed: int, n_symbols: int, n_bars: int, start: str, bar_minutes: int) -> datetime:
    for name, value, floor in (
        ("seed", seed, 0),
        ("n_symbols", n_symbols, 1),
        ("n_bars", n_bars, 3),
        ("bar_minutes", bar_minutes, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < floor:
            msg = f"`{name}` must be an integer >= {floor}, was {value!r}"
            raise ConfigError(msg)
    try:
        start_dt = datetime.fromisoformat(start)
    except (TypeError, ValueError) as e:
        msg = f"`start` must be an ISO-8601 timestamp, was {start!r}"
        raise ConfigError(msg) from e
    if start_dt.tzinfo is None:
        msg = f"`start` must carry a UTC offset, was naive {start!r}"
        raise ConfigError(msg)
    if start_dt.microsecond or start_dt.second:
        msg = f"`start` must be on a whole minute, was {start!r}"
        raise ConfigError(msg)
    return start_dt


def _assets(
    rng: np.random.Generator, n_symbols: int
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rows = list(_ASSETS[:n_symbols])
    n_extra = n_symbols - len(rows)
    # Extra assets draw from their own child generator so adding symbols never changes the
    # first eight, and n_symbols <= 8 consumes nothing here.
    extra_rng = np.random.default_rng(rng.integers(0, 2**63)) if n_extra > 0 else None
    for i in range(n_extra):
        assert extra_rng is not None
        rows.append(
            (
                f"SYN{len(_ASSETS) + 1 + i:02d}-USD",
                float(np.exp(extra_rng.uniform(np.log(0.05), np.log(500.0)))),
                float(extra_rng.uniform(0.6, 1.3)),
                float(extra_rng.uniform(0.3, 0.7)),
                float(np.exp(extra_rng.uniform(np.log(1e7), np.log(2e8)))),
            )
        )
    names = tuple(r[0] for r in rows)
    cols = [np.array([r[k] for r in rows], dtype=np.float64) for k in range(1, 5)]
    return names, cols[0], cols[1], cols[2], cols[3]


def _regime_path(rng: np.random.Generator, n_t: int, bar_minutes: int) -> np.ndarray:
    stay = 1.0 - 1.0 / np.maximum(_REGIME_DAYS * 1440.0 / bar_minutes, 1.0)
    exit_cdf = np.cumsum(_REGIME_EXIT, axis=1)
    u_stay = rng.random(n_t)
    u_next = rng.random(n_t)
    path = np.empty(n_t, dtype=np.int64)
    state = 1  # start in chop
    for t in range(n_t):
        if u_stay[t] >= stay[state]:
            state = int(np.searchsorted(exit_cdf[state], u_next[t], side="right"))
        path[t] = state
    return path


def _returns(
    rng: np.random.Generator,
    regime: np.ndarray,
    beta: np.ndarray,
    idio_vol: np.ndarray,
    dt_years: float,
) -> tuple[np.ndarray, np.ndarray]:
    n_t, n_s = regime.size, beta.size
    # Column 0 is the market factor, columns 1.. the assets' idiosyncratic parts.
    shocks = rng.standard_t(_T_DF, size=(n_t, n_s + 1)) * np.sqrt((_T_DF - 2.0) / _T_DF)
    target = np.empty((n_t, n_s + 1))
    target[:, 0] = _REGIME_VOL[regime] ** 2 * dt_years
    target[:, 1:] = (idio_vol[None, :] * _IDIO_REGIME_MULT[regime][:, None]) ** 2 * dt_years
    omega = (1.0 - _GARCH_ALPHA - _GARCH_BETA) * target
    var = np.empty((n_t, n_s + 1))
    eps = np.empty((n_t, n_s + 1))
    h = target[0].copy()
    last = np.zeros(n_s + 1)
    for t in range(n_t):
        h = omega[t] + _GARCH_ALPHA * last * last + _GARCH_BETA * h
        var[t] = h
        last = np.sqrt(h) * shocks[t]
        eps[t] = last
    market = _REGIME_DRIFT[regime] * dt_years + eps[:, 0]
    returns = beta[None, :] * market[:, None] + eps[:, 1:]
    sigma = np.sqrt(beta[None, :] ** 2 * var[:, :1] + var[:, 1:])
    return returns, sigma


def _bad_ticks_per_symbol(n_bars: int) -> int:
    return max(1, n_bars // _BARS_PER_BAD_TICK)


def _inject_bad_ticks(
    rng: np.random.Generator, close: np.ndarray, n_t: int, n_s: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    per_symbol = _bad_ticks_per_symbol(n_t)
    rows: list[np.ndarray] = []
    # Bars 1 .. n_t-2 so every bad tick has a normal bar before and after; spaced apart by
    # drawing from disjoint strata of the history.
    edges = np.linspace(1, n_t - 1, per_symbol + 1).astype(np.int64)
    for _ in range(n_s):
        lo, hi = edges[:-1], np.maximum(edges[1:] - 1, edges[:-1] + 1)
        rows.append(rng.integers(lo, hi))
    bad_rows = np.concatenate(rows)
    bad_cols = np.repeat(np.arange(n_s), per_symbol)
    size = np.abs(rng.uniform(*_BAD_TICK_JUMP, size=bad_rows.size))
    sign = np.where(rng.random(bad_rows.size) < 0.5, -1.0, 1.0)
    true_close = close[bad_rows, bad_cols].copy()
    bad_close = true_close * (1.0 + sign * size)
    return bad_rows, bad_cols, true_close, bad_close


def _long_frame(
    ts_ns: np.ndarray,
    names: tuple[str, ...],
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
) -> pl.DataFrame:
    n_t, n_s = close.shape
    # Transpose to symbol-major so rows come out sorted by (symbol, ts); names are sorted below.
    order = np.argsort(np.asarray(names))
    columns = {
        "ts": pl.Series("ts", np.tile(ts_ns, n_s), dtype=pl.Int64).cast(BAR_SCHEMA["ts"]),
        "symbol": pl.Series("symbol", np.repeat(np.asarray(names)[order], n_t).tolist()),
    }
    for name, arr in (
        ("open", open_),
        ("high", high),
        ("low", low),
        ("close", close),
        ("volume", volume),
    ):
        columns[name] = pl.Series(name, np.ascontiguousarray(arr[:, order].T).ravel())
    return pl.DataFrame(columns).cast(BAR_SCHEMA)  # type: ignore[arg-type]
