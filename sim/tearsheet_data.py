"""The per-bar series a run's tearsheet draws, and the statistics derived from them.

Pure functions of a `BacktestResult` and numpy arrays (layer 1: no disk, no plotting). The JSON
report holds no per-bar data, so `sim run` computes `tearsheet_series` once, writes it as a
Parquet file beside the report, and `sim.tearsheet` draws from that file and the report.

Columns of `tearsheet_series` (one row per bar, values at the bar's close):

* `ts` (bar open time, UTC), `equity_usd`, `cash_usd`, `exposure_frac`, `regime`: the run's curve;
* `buy_hold_usd`: equal-weight buy-and-hold of every symbol of the run, from the same bars;
* `theme/<name>`: the value held in each universe theme as a fraction of equity (symbols in
  no theme are summed as `theme/unthemed`, present only when the run held one);
* `close/<symbol>`: closes of the symbols drawn with their trades (the traded ones, at most
  `MAX_PRICE_SYMBOLS`, most trades first), NaN where the symbol had no bar.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from sim.engine import BacktestResult

YEAR_NS = 365 * 86_400 * 1_000_000_000
DAY_NS = 86_400 * 1_000_000_000
MAX_PRICE_SYMBOLS = 12
"""Symbols drawn with their trades; a 500-symbol run keeps the tearsheet (and its file) small."""
UNTHEMED = "unthemed"
THEME_PREFIX = "theme/"
CLOSE_PREFIX = "close/"


def forward_fill(values: np.ndarray) -> np.ndarray:
    """Return `values` (`[T]` or `[T, S]`) with each NaN replaced by the last finite value above.

    Leading NaNs (no value yet) stay NaN.
    """
    arr = np.asarray(values, dtype=np.float64)
    flat = arr.reshape(arr.shape[0], -1)
    rows = np.arange(flat.shape[0])[:, None]
    last = np.where(np.isfinite(flat), rows, 0)
    np.maximum.accumulate(last, axis=0, out=last)
    filled = flat[last, np.arange(flat.shape[1])[None, :]]
    # before a column's first finite value `last` points at row 0, which may be NaN: keep NaN
    return filled.reshape(arr.shape)


def position_qty(result: BacktestResult) -> np.ndarray:
    """Return the base quantity held per symbol at each bar's close, `[T, S]` float64.

    Rebuilt from the fills (buys add, sells subtract, each on its fill bar), so the value
    marked at the last finite close sums to the run's gross exposure (`exposure_frac` times
    equity). Rows are the curve's: the panel's from `result.trade_start_row` on.
    """
    panel = result.panel
    ts_ns = panel.ts_ns[result.trade_start_row :]
    qty = np.zeros((ts_ns.size, len(panel.symbols)))
    fills = result.fills
    if fills.height:
        bar = np.searchsorted(ts_ns, fills["ts"].dt.epoch("ns").to_numpy())
        index = {s: j for j, s in enumerate(panel.symbols)}
        col = fills["symbol"].replace_strict(index, return_dtype=pl.Int64).to_numpy()
        signed = np.where(fills["side"].to_numpy() == "buy", 1.0, -1.0) * fills["qty"].to_numpy()
        np.add.at(qty, (bar, col), signed)
    np.cumsum(qty, axis=0, out=qty)
    # a position closed by sells of several fills can end at 1e-17 instead of 0
    qty[np.abs(qty) < 1e-12] = 0.0
    return qty


def buy_and_hold(close: np.ndarray, initial_cash_usd: float) -> np.ndarray:
    """Return the equity of an equal-weight buy-and-hold of every column of `close`, `[T]`.

    The symbols with a finite close each get an equal share of `initial_cash_usd`, bought at
    their first finite close (the share waits in cash until then) and marked at their last
    finite close; a symbol with no close at all is left out, as in
    `sim.metrics.benchmark_return_pct`, whose return the last value gives. No fees, no
    slippage, no rebalancing.
    """
    finite = np.isfinite(close)
    has_bar = finite.any(axis=0)
    if not has_bar.any():
        return np.full(close.shape[0], initial_cash_usd)
    close = close[:, has_bar]
    share = initial_cash_usd / close.shape[1]
    first = np.argmax(finite[:, has_bar], axis=0)
    units = share / close[first, np.arange(close.shape[1])]
    marked = forward_fill(close)
    held = np.where(np.isfinite(marked), marked * units[None, :], share)
    return held.sum(axis=1)


def theme_exposure(
    values_usd: np.ndarray,
    equity_usd: np.ndarray,
    symbols: Sequence[str],
    themes: Mapping[str, Sequence[str]],
) -> dict[str, np.ndarray]:
    """Return the value held per theme as a fraction of equity, `{theme: [T]}`.

    `values_usd` is `[T, S]` (held quantity times last close). Themes keep their config order;
    symbols in no theme go to `unthemed`, which appears only when one of them was ever held.
    Bars with equity <= 0 give 0.
    """
    of_symbol = {s: name for name, members in themes.items() for s in members}
    safe = np.where(equity_usd > 0.0, equity_usd, np.inf)
    out: dict[str, np.ndarray] = {}
    names = [*themes, UNTHEMED]
    for name in names:
        cols = [j for j, s in enumerate(symbols) if of_symbol.get(s, UNTHEMED) == name]
        if not cols and name != UNTHEMED:
            out[name] = np.zeros(equity_usd.shape[0])
            continue
        total = values_usd[:, cols].sum(axis=1) if cols else np.zeros(equity_usd.shape[0])
        if name == UNTHEMED and not np.any(total):
            continue
        out[name] = total / safe
    return out


def price_symbols(trades: pl.DataFrame, limit: int = MAX_PRICE_SYMBOLS) -> list[str]:
    """Return the traded symbols to draw, most trades first (then by name), at most `limit`."""
    if trades.height == 0:
        return []
    counts = trades.group_by("symbol").len().sort(["len", "symbol"], descending=[True, False])
    return sorted(counts["symbol"].head(limit).to_list())


def tearsheet_series(result: BacktestResult, themes: Mapping[str, Sequence[str]]) -> pl.DataFrame:
    """Return the per-bar frame the tearsheet draws (columns in the module docstring)."""
    panel = result.panel
    curve = result.curve
    equity = curve["equity_usd"].to_numpy()
    close = panel.close[result.trade_start_row :]
    marked = np.nan_to_num(forward_fill(close), nan=0.0)
    values = position_qty(result) * marked
    columns: dict[str, pl.Series | np.ndarray] = {c: curve[c] for c in curve.columns}
    columns["buy_hold_usd"] = buy_and_hold(close, result.initial_cash_usd)
    for name, frac in theme_exposure(values, equity, panel.symbols, themes).items():
        columns[THEME_PREFIX + name] = frac
    index = {s: j for j, s in enumerate(panel.symbols)}
    for symbol in price_symbols(result.trades):
        columns[CLOSE_PREFIX + symbol] = close[:, index[symbol]]
    return pl.DataFrame(columns)


# --------------------------------------------------------------------------------------------
# statistics of the series
# --------------------------------------------------------------------------------------------


def drawdown_pct(equity: np.ndarray) -> np.ndarray:
    """Return the fall from the running peak in percent (<= 0), `[T]`; 0 while equity <= 0."""
    if equity.size == 0:
        return equity.astype(np.float64)
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, (equity / peak - 1.0) * 100.0, 0.0)


def bar_returns(equity: np.ndarray, initial_usd: float) -> np.ndarray:
    """Return per-bar simple returns of `equity`, the first against `initial_usd` (as metrics)."""
    prev = np.concatenate(([initial_usd], equity[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(prev > 0, equity / prev - 1.0, 0.0)


def rolling_sharpe(returns: np.ndarray, window: int, bars_per_year: float) -> np.ndarray:
    """Return the annualised Sharpe of the last `window` returns at each bar (risk-free 0).

    Reference: `sim.metrics.summary_metrics` (mean / sample std * sqrt(bars per year)) over
    each window. NaN for the first `window - 1` bars and where the window's std is 0.
    """
    n = returns.size
    out = np.full(n, np.nan)
    if window < 2 or n < window:
        return out
    # sums of shifted values: subtracting the window mean first keeps the variance accurate
    centred = returns - returns.mean()
    c1 = np.concatenate(([0.0], np.cumsum(centred)))
    c2 = np.concatenate(([0.0], np.cumsum(centred * centred)))
    s1 = c1[window:] - c1[:-window]
    s2 = c2[window:] - c2[:-window]
    mean = s1 / window
    var = np.maximum(s2 - s1 * mean, 0.0) / (window - 1)
    std = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(std > 1e-15, (mean + returns.mean()) / std, np.nan)
    out[window - 1 :] = sharpe * math.sqrt(bars_per_year)
    return out


def sharpe_window(bar_ns: int, n_bars: int) -> int:
    """Return the rolling-Sharpe window: 30 days of bars, at most a third of the run, >= 2."""
    per_day = max(DAY_NS // max(bar_ns, 1), 1)
    return max(min(30 * per_day, n_bars // 3), 2)


def monthly_returns(ts: pl.Series, equity: np.ndarray, initial_usd: float) -> pl.DataFrame:
    """Return `year`, `month`, `return_pct`: each calendar month's return of the equity curve.

    A month's return is its last close's equity over the previous month's (the first month's
    over `initial_usd`), minus one, in percent.
    """
    frame = pl.DataFrame({"ts": ts, "equity": equity})
    months = (
        frame.group_by(
            year=pl.col("ts").dt.year(), month=pl.col("ts").dt.month(), maintain_order=True
        )
        .agg(pl.col("equity").last())
        .sort(["year", "month"])
    )
    prev = months["equity"].shift(1).fill_null(initial_usd)
    return months.select(
        "year",
        "month",
        return_pct=pl.when(prev > 0).then((months["equity"] / prev - 1.0) * 100.0).otherwise(None),
    )
