"""Parameter-sweep kernels: many strategy parameter sets over the same data, in numba.

`sweep_nb` runs every combination (a row of `rules_p` / `ma_p`) in parallel with `prange`
across combinations, never along time. Each combination computes its own proposals from the
trigger kernels (`signals/triggers/nb.py`), combines them exactly as
`signals.pipeline.decision_inputs` does, runs the shared `simulate_nb` and reduces the result
to one row of `METRIC_NAMES`. Scratch is per combination (`[T, S]` trigger masks and
proposals, `[T]` curves), so memory is O(threads x T x S), never O(T x combinations).

The stage-1 inputs that do not depend on strategy parameters (bad ticks, regime, universe
blocks, realized volatility) are computed once by the caller and shared read-only.

Numba's cache only notices edits to this file: clear `NUMBA_CACHE_DIR` after editing
`sim/nb.py`, `signals/decision/nb.py` or the trigger/indicator kernels.
"""

import numpy as np
from numba import njit, prange

from signals.strategies.nb import below_channel_nb, cross_weights_nb, rules_combine_nb
from signals.triggers.nb import (
    breakout_nb,
    ma_cross_nb,
    mean_reversion_nb,
    momentum_nb,
    volume_spike_nb,
)
from sim.nb import simulate_nb

# ============================================================================================
# Layouts (Python side: the adapter in sim/sweep.py fills the parameter matrices in this order)
# ============================================================================================

RULES_FIELDS = (
    "breakout_lookback",
    "momentum_lookback",
    "momentum_threshold_pct",
    "volume_lookback",
    "volume_spike_ratio",
    "mean_reversion",
    "mean_reversion_lookback",
    "mean_reversion_z",
    "exit_lookback",
    "target_weight_pct",
    "stop_loss_pct",
    "take_profit_pct",
)
"""Columns of `rules_p` (float64; ints and bools stored exactly as floats)."""

MA_FIELDS = ("fast", "slow", "target_weight_pct", "stop_loss_pct")
"""Columns of `ma_p`."""

METRIC_NAMES = (
    "total_trades",
    "win_rate",
    "total_pnl_pct",
    "max_drawdown_pct",
    "profit_factor",
    "sharpe",
    "sortino",
    "calmar",
    "cagr_pct",
    "exposure_time_pct",
    "turnover",
    "fees_paid_usd",
    "final_equity_usd",
    "total_orders",
    "total_fills",
)
"""Columns of a metrics row, with the meaning of `sim.metrics.summary_metrics`."""

N_METRICS = 15
PROFIT_FACTOR_CAP = 100.0

# ============================================================================================
# Metrics
# ============================================================================================


@njit(cache=True)
def summary_nb(
    equity, exposure, trade_pnl, fill_notional, fill_fee, n_orders, initial, bars_per_year
):
    """Return float64[N_METRICS] summary metrics of one run (order of `METRIC_NAMES`).

    Reference: `sim/metrics.py::summary_metrics` (same formulas; sums run sequentially here,
    numpy sums pairwise, so the two agree to ~1e-12 relative, not bit for bit). `equity` and
    `exposure` are per bar at the close (USD, fraction); `trade_pnl` per closed trade (USD);
    `fill_notional`/`fill_fee` per fill (USD). Empty curves give the initial cash and zeros.
    """
    out = np.zeros(N_METRICS)
    n = equity.shape[0]
    final = equity[n - 1] if n > 0 else initial
    n_trades = trade_pnl.shape[0]
    wins = 0.0
    n_wins = 0
    gross_loss = 0.0
    for i in range(n_trades):
        if trade_pnl[i] > 0.0:
            wins += trade_pnl[i]
            n_wins += 1
        else:
            gross_loss -= trade_pnl[i]
    if n_trades == 0:
        profit_factor = 0.0
    elif gross_loss <= 0.0:
        profit_factor = PROFIT_FACTOR_CAP
    else:
        profit_factor = min(wins / gross_loss, PROFIT_FACTOR_CAP)

    # per-bar returns of [initial, equity...], mean, sample std, downside RMS, drawdown
    total = 0.0
    prev = initial
    for t in range(n):
        total += (equity[t] - prev) / prev
        prev = equity[t]
    mean = total / n if n > 0 else 0.0
    sq = 0.0
    down_sq = 0.0
    n_down = 0
    prev = initial
    peak = initial
    max_dd = 0.0
    for t in range(n):
        r = (equity[t] - prev) / prev
        prev = equity[t]
        sq += (r - mean) * (r - mean)
        if r < 0.0:
            down_sq += r * r
            n_down += 1
        if equity[t] > peak:
            peak = equity[t]
        dd = 1.0 - equity[t] / peak
        if dd > max_dd:
            max_dd = dd
    std = np.sqrt(sq / (n - 1)) if n > 1 else 0.0
    down_std = np.sqrt(down_sq / n_down) if n_down > 0 else 0.0
    sharpe = mean / std * np.sqrt(bars_per_year) if std > 0.0 else 0.0
    sortino = mean / down_std * np.sqrt(bars_per_year) if down_std > 0.0 else 0.0
    years = n / bars_per_year
    cagr = (final / initial) ** (1.0 / years) - 1.0 if years > 0.0 and final > 0.0 else 0.0
    calmar = cagr / max_dd if max_dd > 0.0 else 0.0

    traded = 0.0
    fees = 0.0
    for i in range(fill_notional.shape[0]):
        traded += fill_notional[i]
        fees += fill_fee[i]
    equity_sum = 0.0
    exposed = 0
    for t in range(n):
        equity_sum += equity[t]
        if exposure[t] > 0.0:
            exposed += 1
    mean_equity = equity_sum / n if n > 0 else initial

    out[0] = n_trades
    out[1] = n_wins / n_trades * 100.0 if n_trades > 0 else 0.0
    out[2] = (final / initial - 1.0) * 100.0
    out[3] = max_dd * 100.0
    out[4] = profit_factor
    out[5] = sharpe
    out[6] = sortino
    out[7] = calmar
    out[8] = cagr * 100.0
    out[9] = exposed / n * 100.0 if n > 0 else 0.0
    out[10] = traded / mean_equity if mean_equity > 0.0 else 0.0
    out[11] = fees
    out[12] = final
    out[13] = n_orders
    out[14] = fill_notional.shape[0]
    return out


# ============================================================================================
# Proposals of one combination
# ============================================================================================


@njit(cache=True)
def rules_weight_nb(close, high, low, volume, bad_tick, regime, p):
    """Return `(weight[T, S], stop, take)` of `rules` for one parameter row `p` (`RULES_FIELDS`).

    Reference: `signals/strategies/rules.py::Rules.propose` (same kernels, same arithmetic;
    the mean-reversion mask is skipped when disabled since `rules_combine_nb` ignores it then).
    `stop` is NaN for "the policy's stop"; both are fractions.
    """
    breakout = breakout_nb(close, high, int(p[0]))
    momentum = momentum_nb(close, int(p[1]), p[2] / 100.0)
    spike = volume_spike_nb(volume, int(p[3]), p[4])
    mean_reversion = p[5] != 0.0
    if mean_reversion:
        dip = mean_reversion_nb(close, int(p[6]), p[7])
    else:
        dip = np.zeros(close.shape, dtype=np.uint8)
    exit_signal = below_channel_nb(close, low, int(p[8]))
    weight = rules_combine_nb(
        breakout, momentum, spike, dip, exit_signal, bad_tick, regime, p[9] / 100.0,
        mean_reversion,
    )  # fmt: skip
    stop = p[10] / 100.0 if p[10] > 0 else np.nan
    return weight, stop, p[11] / 100.0


@njit(cache=True)
def ma_weight_nb(close, p):
    """Return `(weight[T, S], stop, take)` of `ma_cross` for one row `p` (`MA_FIELDS`).

    Reference: `signals/strategies/ma_cross.py::MaCross.propose`.
    """
    cross = ma_cross_nb(close, int(p[0]), int(p[1]))
    weight = cross_weights_nb(cross, p[2] / 100.0)
    stop = p[3] / 100.0 if p[3] > 0 else np.nan
    return weight, stop, 0.0


@njit(cache=True)
def _combine_nb(w, stop_k, take_k, k, weight, stop_pct, take_pct, chosen, best):
    # decision_inputs: the highest positive weight wins; an exit only where nobody holds
    n_bars, n_symbols = w.shape
    for t in range(n_bars):
        for s in range(n_symbols):
            x = w[t, s]
            if (x > best[t, s] and x > 0.0) or (x == 0.0 and chosen[t, s] < 0):
                weight[t, s] = x
                stop_pct[t, s] = stop_k
                take_pct[t, s] = take_k
                chosen[t, s] = k
                if x > 0.0:
                    best[t, s] = x


@njit(cache=True)
def combo_run_nb(
    ts_ns, bar_ns, open_, high, low, close, volume, bad_tick, block_reason, regime, vol,
    product_status, params, static, fill, initial_cash, seed, bars_per_year, trade_start,
    rules_slot, ma_slot, rules_p, ma_p,
):  # fmt: skip
    """Run one combination; return `(metrics[N_METRICS], equity[T - trade_start])`.

    Reference: `sim.engine.run_backtest` on the same config, reduced by `summary_nb`
    (tests/sim/test_sweep.py checks the two bit for bit).
    `rules_slot`/`ma_slot` are each strategy's index among the enabled strategies in name
    order (-1 = disabled). Proposals before row `trade_start` are dropped (no opinion), so rows
    `< trade_start` only warm the indicators up; metrics and the curve cover the rest.
    """
    n_bars, n_symbols = close.shape
    weight = np.full((n_bars, n_symbols), np.nan)
    stop_pct = np.full((n_bars, n_symbols), np.nan)
    take_pct = np.full((n_bars, n_symbols), np.nan)
    chosen = np.full((n_bars, n_symbols), -1, dtype=np.int64)
    best = np.full((n_bars, n_symbols), -np.inf)
    n_slots = max(rules_slot, ma_slot) + 1
    for k in range(n_slots):
        if k == rules_slot:
            w, stop_k, take_k = rules_weight_nb(close, high, low, volume, bad_tick, regime, rules_p)
            _combine_nb(w, stop_k, take_k, k, weight, stop_pct, take_pct, chosen, best)
        elif k == ma_slot:
            w, stop_k, take_k = ma_weight_nb(close, ma_p)
            _combine_nb(w, stop_k, take_k, k, weight, stop_pct, take_pct, chosen, best)
    for t in range(min(trade_start, n_bars)):
        for s in range(n_symbols):
            weight[t, s] = np.nan
            stop_pct[t, s] = np.nan
            take_pct[t, s] = np.nan
            chosen[t, s] = -1
    out = simulate_nb(
        ts_ns, bar_ns, open_, high, low, close, weight, stop_pct, take_pct, chosen, block_reason,
        regime, vol, product_status, params, static, fill, initial_cash, seed,
    )  # fmt: skip
    orders, _status, fills, trades, equity, _cash, exposure = out[:7]
    n_fills = fills.shape[0]
    notional = np.empty(n_fills)
    fee = np.empty(n_fills)
    for i in range(n_fills):
        notional[i] = fills[i]["qty"] * fills[i]["price"]
        fee[i] = fills[i]["fee"]
    pnl = np.empty(trades.shape[0])
    for i in range(trades.shape[0]):
        pnl[i] = trades[i]["pnl_usd"]
    curve = equity[trade_start:].copy()
    metrics = summary_nb(
        curve, exposure[trade_start:], pnl, notional, fee, orders.shape[0], initial_cash,
        bars_per_year,
    )  # fmt: skip
    return metrics, curve


# ============================================================================================
# The sweep
# ============================================================================================


@njit(parallel=True, cache=True)
def sweep_nb(
    ts_ns, bar_ns, open_, high, low, close, volume, bad_tick, block_reason, regime, vol,
    product_status, params, static, fill, initial_cash, seed, bars_per_year, trade_start,
    rules_slot, ma_slot, rules_p, ma_p,
):  # fmt: skip
    """Return float64[C, N_METRICS]: `combo_run_nb` for every row of `rules_p[C]`/`ma_p[C]`.

    Reference: a serial loop of `combo_run_nb` (equal bit for bit: each combination reseeds
    the thread's RNG with `seed` inside `simulate_nb` and runs on one thread).
    `prange` over combinations only; scratch lives per combination.
    """
    n_combos = rules_p.shape[0]
    out = np.empty((n_combos, N_METRICS))
    for c in prange(n_combos):
        metrics, _curve = combo_run_nb(
            ts_ns, bar_ns, open_, high, low, close, volume, bad_tick, block_reason, regime, vol,
            product_status, params, static, fill, initial_cash, seed, bars_per_year,
            trade_start, rules_slot, ma_slot, rules_p[c], ma_p[c],
        )  # fmt: skip
        out[c] = metrics
    return out
