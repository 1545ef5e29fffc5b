"""Parameter-sweep kernels: many strategy parameter sets over the same data, in numba.

Kernels take the bundles of `sim/enums.py` and `signals/records.py`: `SweepBars` (bars and
stage 1, shared read only; the parallel kernels take its four fields), the policy
(`StepParams`, `StepStatic`, `FillParams`), `RunSpec` (cash, seed, year length, warm-up),
`KernelGrid` (slots and parameter rows), `SharedIndicators`, `Scratch`; parameter rows are
read by the column names of `RulesCol` / `MaCol`.

`sweep_nb` runs every combination (a row of `rules_p` / `ma_p`) in parallel with `prange`
across combinations (one worker per thread), never along time. Each combination builds its
own proposals from the trigger kernels (`signals/triggers/nb.py`), combines them exactly as
`signals.pipeline.decision_inputs` does (a single enabled strategy needs no combine), runs
the shared `simulate_nb` and reduces the result to one row of `METRIC_NAMES`. Scratch is one
set of `[T, S]` proposal and `[T]` curve buffers per worker (`new_scratch_nb`), reused by
every combination the worker runs, so it is O(threads x T x S), never O(T x combinations).

Indicators shared across combinations: before its `prange` over combinations, `sweep_nb`
computes every distinct indicator array of the parameter matrix once (the SMA of each distinct
`ma_cross` window; each distinct `rules` trigger mask, keyed by the parameters its kernel
takes) with the very same kernels, and every combination reads its arrays by index. Results
are bit for bit those of the per-combination kernels; the shared buffers cost
O(distinct windows x T x S) (float64 SMAs, uint8 masks) on top of the per-thread scratch,
still never O(T x combinations).

The stage-1 inputs that do not depend on strategy parameters (bad ticks, regime, universe
blocks, realized volatility) are computed once by the caller and shared read-only.

Numba's cache only notices edits to this file: clear `NUMBA_CACHE_DIR` after editing
`sim/nb.py`, `signals/decision/nb.py` or the trigger/indicator kernels.
"""

import numpy as np
from numba import njit, prange

from signals.indicators.nb import sma_nb
from signals.records import Combined, Curves
from signals.strategies.nb import below_channel_nb, combine_into_nb, rules_combine_nb
from signals.triggers.nb import (
    breakout_nb,
    cross_values_1d_nb,
    mean_reversion_nb,
    momentum_nb,
    volume_spike_nb,
)
from sim.enums import (
    MA_FIELDS,
    METRIC_NAMES,
    N_METRICS,
    RULES_FIELDS,
    MaCol,
    MaskCol,
    Metric,
    RulesCol,
    Scratch,
    SharedIndicators,
    StrategyWeights,
    SweepBars,
)
from sim.nb import simulate_nb

__all__ = ["MA_FIELDS", "METRIC_NAMES", "N_METRICS", "RULES_FIELDS"]  # re-exported layouts

# ============================================================================================
# Layouts (in `sim/enums.py`: the adapter in sim/sweep.py fills the parameter rows in the order of
# `RULES_FIELDS` / `MA_FIELDS`, the kernels read them by the names of `RulesCol` / `MaCol`)
# ============================================================================================

PROFIT_FACTOR_CAP = 100.0

# ============================================================================================
# Metrics
# ============================================================================================


@njit(cache=True, inline="always")
def _drawdown_floor_nb(peak, max_dd):
    # the equity (USD) at or above which a bar cannot deepen the drawdown `max_dd` below
    # `peak`: `peak x (1 - max_dd)` plus a slack of 1e-12 x peak, far above the rounding of
    # `1 - x / peak`, so `summary_nb` divides only on bars that may set a new maximum and gets
    # the same bits as dividing on every bar below the peak
    return peak * (1.0 - max_dd) + peak * 1e-12


@njit(cache=True)
def summary_nb(
    equity, exposure, trade_pnl, fill_notional, fill_fee, n_orders, initial, bars_per_year
):
    """Return float64[N_METRICS] summary metrics of one run (order of `METRIC_NAMES`).

    Reference: `sim/metrics.py::summary_metrics` (same quantities; sums run sequentially here
    and the variance comes from one pass, numpy sums pairwise around the mean, so the two agree
    to ~1e-12 relative, not bit for bit). `equity` and
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

    # one pass over the per-bar returns of [initial, equity...]: their sum and sum of squares
    # (sample variance = (sum r^2 - n mean^2) / (n - 1): the returns are far from constant,
    # so this loses nothing next to a second pass around the mean), the downside sums, the
    # drawdown, mean equity and exposed bars. A bar whose equity did not move (flat: most bars
    # of a sweep) has return 0 and needs none of the divisions.
    total = 0.0
    sq_sum = 0.0
    down_sq = 0.0
    n_down = 0
    prev = initial
    peak = initial
    max_dd = 0.0
    floor = _drawdown_floor_nb(peak, max_dd)
    equity_sum = 0.0
    exposed = 0
    for t in range(n):
        x = equity[t]
        equity_sum += x
        if exposure[t] > 0.0:
            exposed += 1
        if x != prev:
            r = (x - prev) / prev
            prev = x
            total += r
            sq_sum += r * r
            if r < 0.0:
                down_sq += r * r
                n_down += 1
            if x > peak:
                peak = x
                floor = _drawdown_floor_nb(peak, max_dd)
            elif x < floor:
                dd = 1.0 - x / peak
                if dd > max_dd:
                    max_dd = dd
                    floor = _drawdown_floor_nb(peak, max_dd)
    mean = total / n if n > 0 else 0.0
    sq = max(sq_sum - n * mean * mean, 0.0)
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
    mean_equity = equity_sum / n if n > 0 else initial

    out[Metric.total_trades] = n_trades
    out[Metric.win_rate] = n_wins / n_trades * 100.0 if n_trades > 0 else 0.0
    out[Metric.total_pnl_pct] = (final / initial - 1.0) * 100.0
    out[Metric.max_drawdown_pct] = max_dd * 100.0
    out[Metric.profit_factor] = profit_factor
    out[Metric.sharpe] = sharpe
    out[Metric.sortino] = sortino
    out[Metric.calmar] = calmar
    out[Metric.cagr_pct] = cagr * 100.0
    out[Metric.exposure_time_pct] = exposed / n * 100.0 if n > 0 else 0.0
    out[Metric.turnover] = traded / mean_equity if mean_equity > 0.0 else 0.0
    out[Metric.fees_paid_usd] = fees
    out[Metric.final_equity_usd] = final
    out[Metric.total_orders] = n_orders
    out[Metric.total_fills] = fill_notional.shape[0]
    return out


# ============================================================================================
# Proposals of one combination
# ============================================================================================


@njit(cache=True)
def rules_weight_nb(close, high, low, volume, bad_tick, regime, p, trade_start, first_bar_no):
    """Return `(weight[T, S], stop, take)` of `rules` for one parameter row `p` (`RULES_FIELDS`)
    in combined form (`_no_opinion_before_nb`: no opinion before row `trade_start`);
    `first_bar_no` is the absolute bar number of row 0 (the anchored triggers').

    Reference: `signals/strategies/rules.py::Rules.propose` (same kernels, same arithmetic;
    the mean-reversion mask is skipped when disabled since `rules_combine_nb` ignores it then).
    `stop` is NaN for "the policy's stop"; both are fractions.
    """
    breakout = breakout_nb(close, high, int(p[RulesCol.breakout_lookback]))
    momentum = momentum_nb(
        close, int(p[RulesCol.momentum_lookback]), p[RulesCol.momentum_threshold_pct] / 100.0
    )
    spike = volume_spike_nb(
        volume, int(p[RulesCol.volume_lookback]), p[RulesCol.volume_spike_ratio], first_bar_no
    )
    if p[RulesCol.mean_reversion] != 0.0:
        dip = mean_reversion_nb(
            close, int(p[RulesCol.mean_reversion_lookback]), p[RulesCol.mean_reversion_z],
            first_bar_no,
        )  # fmt: skip
    else:
        dip = np.zeros(close.shape, dtype=np.uint8)
    exit_signal = below_channel_nb(close, low, int(p[RulesCol.exit_lookback]))
    return rules_weight_of_masks_nb(
        breakout, momentum, spike, dip, exit_signal, bad_tick, regime, p, trade_start
    )


@njit(cache=True)
def rules_weight_of_masks_nb(
    breakout, momentum, spike, dip, exit_signal, bad_tick, regime, p, trade_start
):
    """Return `rules_weight_nb`'s result from its five trigger masks (computed elsewhere).

    `dip` is ignored when mean reversion is off (`p[RulesCol.mean_reversion] == 0`).
    """
    mean_reversion = p[RulesCol.mean_reversion] != 0.0
    weight = rules_combine_nb(
        breakout, momentum, spike, dip, exit_signal, bad_tick, regime,
        p[RulesCol.target_weight_pct] / 100.0, mean_reversion,
    )  # fmt: skip
    stop_pct = p[RulesCol.stop_loss_pct]
    stop = stop_pct / 100.0 if stop_pct > 0 else np.nan
    return _no_opinion_before_nb(weight, trade_start), stop, p[RulesCol.take_profit_pct] / 100.0


@njit(cache=True)
def _first_bar_no_nb(ts_ns, bar_ns):
    # `signals.bars.first_bar_no` inside numba: the absolute bar number of row 0, 0 if none
    return ts_ns[0] // bar_ns if ts_ns.shape[0] else 0


@njit(cache=True)
def ma_weight_of_sma_nb(sma_fast, sma_slow, p, trade_start, out):
    """Return `(weight[T, S], stop, take)` of `ma_cross` for one row `p` (`MA_FIELDS`) from its
    two SMAs `[T, S]`, the weights written into `out` (float64 `[T, S]`) in combined form.

    Reference: `cross_weights_nb(ma_cross_from_sma_nb(sma_fast, sma_slow), target)` (as
    `signals/strategies/ma_cross.py::MaCross.propose`), then `_no_opinion_before_nb(...,
    trade_start)`; one pass instead of three (tests/sim/test_sweep.py checks them equal).
    """
    n_bars, n_symbols = sma_fast.shape
    target = p[MaCol.target_weight_pct] / 100.0
    # a negative target is no opinion in combined form (the combine never takes it)
    entry = target if target >= 0.0 else np.nan
    start = min(max(trade_start, 1), n_bars)
    # one pass over the flat bar-major arrays: the value S places before a bar-and-symbol is
    # the same symbol's previous bar, so every row from `start` pairs with the row before it
    # in a 1-D loop that vectorises (`cross_values_1d_nb`). It was a symbol-outer loop over
    # the `[T, S]` arrays, 6.4-9.2 ms of a 13.4-14.5 ms combination at 20 x 20k (2026-12-07)
    fast = sma_fast.reshape(-1)
    slow = sma_slow.reshape(-1)
    flat = out.reshape(-1)
    first = start * n_symbols
    flat[:first] = np.nan
    cross_values_1d_nb(
        fast[first - n_symbols : n_bars * n_symbols - n_symbols],
        slow[first - n_symbols : n_bars * n_symbols - n_symbols], fast[first:], slow[first:],
        entry, 0.0, np.nan, flat[first:],
    )  # fmt: skip
    stop_pct = p[MaCol.stop_loss_pct]
    stop = stop_pct / 100.0 if stop_pct > 0 else np.nan
    return out, stop, 0.0


@njit(cache=True)
def _no_opinion_before_nb(w, trade_start):
    # one strategy's weights in combined form, in place: a negative weight (which
    # the combine never takes) and any row before `trade_start` become no opinion (NaN)
    n_bars, n_symbols = w.shape
    for t in range(n_bars):
        for s in range(n_symbols):
            if t < trade_start or w[t, s] < 0.0:
                w[t, s] = np.nan
    return w


@njit(cache=True)
def combo_run_nb(bars, params, static, fill, run, rules_slot, ma_slot, rules_p, ma_p):
    """Run one combination; return `(metrics[N_METRICS], equity[T - trade_start])`.

    Reference: `sim.engine.run_backtest` on the same config, reduced by `summary_nb`
    (tests/sim/test_sweep.py checks the two bit for bit). `bars` is a `SweepBars`, `run` a
    `RunSpec`, `params`/`static`/`fill` the policy; `rules_p`/`ma_p` are the combination's
    parameter rows (`RulesCol`, `MaCol`).
    Allocates its own scratch (`new_scratch_nb`); the sweep reuses one set per thread instead.
    `rules_slot`/`ma_slot` are each strategy's index among the enabled strategies in name
    order (-1 = disabled). Proposals before row `run.trade_start` are dropped (no opinion), so
    earlier rows only warm the indicators up; metrics and the curve cover the rest.
    """
    market = bars.market
    close = market.close
    trade_start = run.trade_start
    first_bar_no = _first_bar_no_nb(market.ts_ns, market.bar_ns)
    rules = StrategyWeights(np.empty((0, 0)), np.nan, 0.0)
    if rules_slot >= 0:
        w, stop, take = rules_weight_nb(
            close, market.high, market.low, bars.volume, bars.bad_tick, bars.guards.regime,
            rules_p, trade_start, first_bar_no,
        )  # fmt: skip
        rules = StrategyWeights(w, stop, take)
    ma = StrategyWeights(np.empty((0, 0)), np.nan, 0.0)
    if ma_slot >= 0:
        w, stop, take = ma_weight_of_sma_nb(
            sma_nb(close, int(ma_p[MaCol.fast]), first_bar_no),
            sma_nb(close, int(ma_p[MaCol.slow]), first_bar_no), ma_p, trade_start,
            np.empty(close.shape),
        )  # fmt: skip
        ma = StrategyWeights(w, stop, take)
    combine = rules_slot >= 0 and ma_slot >= 0
    scratch = worker_scratch_nb(new_scratch_nb(1, close.shape[0], close.shape[1], combine), 0)
    metrics, curve = run_weights_nb(
        bars, params, static, fill, run, rules_slot, ma_slot, rules, ma, scratch
    )
    return metrics, curve.copy()


@njit(cache=True)
def new_scratch_nb(n_workers, n_bars, n_symbols, combine):
    """Return `n_workers` sets of `run_weights_nb`'s work buffers, reusable across runs.

    A `Scratch` of stacks (`proposal[W, T, S]`, `weight[W, T', S]`, ..., `exposure[W, T]`)
    with `T' = T` when two strategies are `combine`d, else 0 (one strategy needs no combine
    buffers). `worker_scratch_nb` gives worker `w`'s set; contents are overwritten on every
    use. A sweep allocates this once for all its chunks, not per combination: fresh memory is
    slower to touch than memory reused while it is warm in cache.
    """
    n_combine = n_bars if combine else 0
    return Scratch(
        np.empty((n_workers, n_bars, n_symbols)),
        np.empty((n_workers, n_combine, n_symbols)),
        np.empty((n_workers, n_combine, n_symbols)),
        np.empty((n_workers, n_combine, n_symbols)),
        np.empty((n_workers, n_combine, n_symbols), dtype=np.int64),
        np.empty((n_workers, n_combine, n_symbols)),
        np.empty((n_workers, n_bars)),
        np.empty((n_workers, n_bars)),
        np.empty((n_workers, n_bars)),
    )


@njit(cache=True)
def worker_scratch_nb(stack, worker):
    """Return worker `worker`'s `Scratch` of a `new_scratch_nb` stack (views)."""
    return Scratch(
        stack.proposal[worker], stack.weight[worker], stack.stop_pct[worker],
        stack.take_pct[worker], stack.chosen[worker], stack.best[worker], stack.equity[worker],
        stack.cash[worker], stack.exposure[worker],
    )  # fmt: skip


@njit(cache=True)
def run_weights_nb(bars, params, static, fill, run, rules_slot, ma_slot, rules, ma, scratch):
    """Return `(metrics, equity[T - trade_start])` of one combination from each strategy's
    `StrategyWeights`, as `combo_run_nb` does.

    A disabled strategy's (slot -1) weight is never read (pass an empty array). An enabled
    one's must be in combined form (`_no_opinion_before_nb`: weights >= 0 or NaN, NaN before
    `run.trade_start`, as the producers here return them). `scratch` is one worker's
    `Scratch` of `new_scratch_nb(..., T, S, combine)` (`worker_scratch_nb`); the equity curve
    returned is a view into it, valid until its next use.
    With one strategy enabled its weights are the combined weights (no `[T, S]` combine) and
    its constant stop, take and index go to the simulator as `[1, S]` rows
    (`sim.nb.simulate_nb`): the same run as the combine would give.
    """
    n_bars, n_symbols = bars.market.close.shape
    weight = scratch.weight
    stop_pct = scratch.stop_pct
    take_pct = scratch.take_pct
    chosen = scratch.chosen
    best = scratch.best
    if rules_slot < 0 or ma_slot < 0:
        slot = max(rules_slot, ma_slot)
        one = rules if slot == rules_slot else ma
        weight = one.weight
        stop_pct = np.full((1, n_symbols), one.stop_pct)
        take_pct = np.full((1, n_symbols), one.take_pct)
        chosen = np.full((1, n_symbols), slot, dtype=np.int64)
    else:
        weight[:] = np.nan
        stop_pct[:] = np.nan
        take_pct[:] = np.nan
        chosen[:] = -1
        best[:] = -np.inf
        for k in range(max(rules_slot, ma_slot) + 1):
            if k == rules_slot:
                w, stop_k, take_k = rules
            elif k == ma_slot:
                w, stop_k, take_k = ma
            else:
                continue
            combine_into_nb(
                w, np.full((1, n_symbols), stop_k), np.full((1, n_symbols), take_k), k, weight,
                stop_pct, take_pct, chosen, best,
            )  # fmt: skip
        for t in range(min(run.trade_start, n_bars)):
            for s in range(n_symbols):
                weight[t, s] = np.nan
                stop_pct[t, s] = np.nan
                take_pct[t, s] = np.nan
                chosen[t, s] = -1
    return simulate_summary_nb(
        bars.market, Combined(weight, stop_pct, take_pct, chosen), bars.guards, params, static,
        fill, run, Curves(scratch.equity, scratch.cash, scratch.exposure),
    )  # fmt: skip


@njit(cache=True)
def simulate_summary_nb(market, proposals, guards, params, static, fill, run, curves):
    """Return `(metrics[N_METRICS], equity[T - trade_start])` of one run from its combined
    `proposals` (`signals.pipeline.combine_proposals` form; rows before `run.trade_start` must
    be no opinion): `simulate_nb` reduced by `summary_nb`. `curves` are float64[T] work buffers
    (the curve returned is a view of `curves.equity`). Every sweep path reduces a run here.
    """
    out = simulate_nb(
        market, proposals, guards, params, static, fill, run.initial_cash, run.seed, curves
    )
    orders = out.orders
    fills = out.fills
    trades = out.trades
    n_fills = fills.shape[0]
    notional = np.empty(n_fills)
    fee = np.empty(n_fills)
    for i in range(n_fills):
        notional[i] = fills[i]["qty"] * fills[i]["price"]
        fee[i] = fills[i]["fee"]
    pnl = np.empty(trades.shape[0])
    for i in range(trades.shape[0]):
        pnl[i] = trades[i]["pnl_usd"]
    trade_start = run.trade_start
    curve = curves.equity[trade_start:]
    metrics = summary_nb(
        curve, curves.exposure[trade_start:], pnl, notional, fee, orders.shape[0],
        run.initial_cash, run.bars_per_year,
    )  # fmt: skip
    return metrics, curve


@njit(parallel=True, cache=True)
def sweep_proposals_nb(market, guards, params, static, fill, run, proposals):
    """Return float64[B, N_METRICS]: `simulate_summary_nb` of each of `B` runs given their
    combined `proposals` stacked on axis 0 (`Combined` of `[B, T, S]` arrays), `prange` over
    the runs. The sweep of any registered strategy (`sim.sweep.run_chunk` for a group outside
    the kernel strategies) computes the proposals in Python, a chunk at a time, and simulates
    them here.
    """
    n_runs = proposals.weight.shape[0]
    n_bars = market.close.shape[0]
    out = np.empty((n_runs, N_METRICS))
    for c in prange(n_runs):
        metrics, _curve = simulate_summary_nb(
            market,
            Combined(proposals.weight[c], proposals.stop_pct[c], proposals.take_pct[c],
                      proposals.strategy[c]),
            guards, params, static, fill, run,
            Curves(np.empty(n_bars), np.empty(n_bars), np.empty(n_bars)),
        )  # fmt: skip
        out[c] = metrics
    return out


# ============================================================================================
# Shared indicators
# ============================================================================================


@njit(cache=True)
def distinct_rows_nb(keys):
    """Return `(first[D], index[C])`: the distinct rows of `keys[C, K]` (exact float equality).

    Row `first[d]` is the first occurrence of distinct row `d`; row `c` equals row
    `first[index[c]]`. Rows containing NaN never match (each is its own entry). Cost
    O(C x D x K): grids have few distinct indicator parameters.
    """
    n_rows, n_keys = keys.shape
    first = np.empty(n_rows, dtype=np.int64)
    index = np.empty(n_rows, dtype=np.int64)
    n_distinct = 0
    for c in range(n_rows):
        found = -1
        for d in range(n_distinct):
            r = first[d]
            same = True
            for j in range(n_keys):
                if keys[r, j] != keys[c, j]:
                    same = False
                    break
            if same:
                found = d
                break
        if found < 0:
            first[n_distinct] = c
            found = n_distinct
            n_distinct += 1
        index[c] = found
    return first[:n_distinct].copy(), index


@njit(parallel=True, cache=True)
def shared_smas_nb(close, ma_p, first_bar_no):
    """Return `(sma[W, T, S], fast_idx[C], slow_idx[C])` for the `ma_cross` rows `ma_p[C]`.

    `sma[i]` is `sma_nb(close, w_i, first_bar_no)` for each distinct window `w_i` among the
    `fast` and `slow` columns (`prange` over windows); row `c` reads `sma[fast_idx[c]]` and
    `sma[slow_idx[c]]`.
    Memory: W x T x S float64 (W distinct windows, not C combinations).
    """
    n_combos = ma_p.shape[0]
    keys = np.empty((2 * n_combos, 1))
    for c in range(n_combos):
        keys[c, 0] = int(ma_p[c, MaCol.fast])
        keys[n_combos + c, 0] = int(ma_p[c, MaCol.slow])
    first, index = distinct_rows_nb(keys)
    n_bars, n_symbols = close.shape
    sma = np.empty((first.shape[0], n_bars, n_symbols))
    for i in prange(first.shape[0]):
        sma[i] = sma_nb(close, int(keys[first[i], 0]), first_bar_no)
    return sma, index[:n_combos].copy(), index[n_combos:].copy()


@njit(parallel=True, cache=True)
def shared_rules_masks_nb(close, high, low, volume, rules_p, first_bar_no):
    """Return the `rules` trigger masks of `rules_p[C]`, each distinct one computed once
    (`first_bar_no`: the absolute bar number of row 0, for the anchored triggers).

    Returns `(breakout, momentum, spike, dip, exit, idx[C, 5])`: uint8 `[D_k, T, S]` buffers,
    one entry per distinct argument set of the kernel (`breakout_nb(lookback)`,
    `momentum_nb(lookback, threshold)`, `volume_spike_nb(lookback, ratio)`,
    `mean_reversion_nb(lookback, z)` only for rows with mean reversion on,
    `below_channel_nb(lookback)`), and row `c`'s entry in each (columns `MaskCol`;
    `idx[c, MaskCol.Dip] = -1`: no dip).
    Memory: (sum of D_k) x T x S bytes.
    """
    n_combos = rules_p.shape[0]
    n_bars, n_symbols = close.shape
    idx = np.full((n_combos, len(MaskCol)), -1, dtype=np.int64)
    k_breakout = np.empty((n_combos, 1))
    k_momentum = np.empty((n_combos, 2))
    k_spike = np.empty((n_combos, 2))
    k_exit = np.empty((n_combos, 1))
    n_dip = 0
    for c in range(n_combos):
        p = rules_p[c]
        k_breakout[c, 0] = int(p[RulesCol.breakout_lookback])
        k_momentum[c, 0] = int(p[RulesCol.momentum_lookback])
        k_momentum[c, 1] = p[RulesCol.momentum_threshold_pct] / 100.0
        k_spike[c, 0] = int(p[RulesCol.volume_lookback])
        k_spike[c, 1] = p[RulesCol.volume_spike_ratio]
        k_exit[c, 0] = int(p[RulesCol.exit_lookback])
        if p[RulesCol.mean_reversion] != 0.0:
            n_dip += 1
    k_dip = np.empty((n_dip, 2))
    dip_rows = np.empty(n_dip, dtype=np.int64)
    n_dip = 0
    for c in range(n_combos):
        if rules_p[c, RulesCol.mean_reversion] != 0.0:
            k_dip[n_dip, 0] = int(rules_p[c, RulesCol.mean_reversion_lookback])
            k_dip[n_dip, 1] = rules_p[c, RulesCol.mean_reversion_z]
            dip_rows[n_dip] = c
            n_dip += 1
    f_breakout, i_breakout = distinct_rows_nb(k_breakout)
    f_momentum, i_momentum = distinct_rows_nb(k_momentum)
    f_spike, i_spike = distinct_rows_nb(k_spike)
    f_dip, i_dip = distinct_rows_nb(k_dip)
    f_exit, i_exit = distinct_rows_nb(k_exit)
    for c in range(n_combos):
        idx[c, MaskCol.Breakout] = i_breakout[c]
        idx[c, MaskCol.Momentum] = i_momentum[c]
        idx[c, MaskCol.Spike] = i_spike[c]
        idx[c, MaskCol.Exit] = i_exit[c]
    for d in range(n_dip):
        idx[dip_rows[d], MaskCol.Dip] = i_dip[d]

    breakout = np.empty((f_breakout.shape[0], n_bars, n_symbols), dtype=np.uint8)
    for i in prange(f_breakout.shape[0]):
        breakout[i] = breakout_nb(close, high, int(k_breakout[f_breakout[i], 0]))
    momentum = np.empty((f_momentum.shape[0], n_bars, n_symbols), dtype=np.uint8)
    for i in prange(f_momentum.shape[0]):
        r = f_momentum[i]
        momentum[i] = momentum_nb(close, int(k_momentum[r, 0]), k_momentum[r, 1])
    spike = np.empty((f_spike.shape[0], n_bars, n_symbols), dtype=np.uint8)
    for i in prange(f_spike.shape[0]):
        r = f_spike[i]
        spike[i] = volume_spike_nb(volume, int(k_spike[r, 0]), k_spike[r, 1], first_bar_no)
    dip = np.empty((f_dip.shape[0], n_bars, n_symbols), dtype=np.uint8)
    for i in prange(f_dip.shape[0]):
        r = f_dip[i]
        dip[i] = mean_reversion_nb(close, int(k_dip[r, 0]), k_dip[r, 1], first_bar_no)
    exit_signal = np.empty((f_exit.shape[0], n_bars, n_symbols), dtype=np.uint8)
    for i in prange(f_exit.shape[0]):
        exit_signal[i] = below_channel_nb(close, low, int(k_exit[f_exit[i], 0]))
    return breakout, momentum, spike, dip, exit_signal, idx


# ============================================================================================
# The sweep
# ============================================================================================


@njit(cache=True)
def _shared_combo_nb(bars, params, static, fill, run, grid, c, shared, no_dip, scratch):
    # combination `c` of `sweep_shared_nb` from the shared indicator buffers, in `scratch`
    rules_slot = grid.rules_slot
    ma_slot = grid.ma_slot
    rules = StrategyWeights(np.empty((0, 0)), np.nan, 0.0)
    if rules_slot >= 0:
        idx = shared.rules_idx[c]
        dip_c = shared.dip[idx[MaskCol.Dip]] if idx[MaskCol.Dip] >= 0 else no_dip
        w, stop, take = rules_weight_of_masks_nb(
            shared.breakout[idx[MaskCol.Breakout]], shared.momentum[idx[MaskCol.Momentum]],
            shared.spike[idx[MaskCol.Spike]], dip_c, shared.exit_signal[idx[MaskCol.Exit]],
            bars.bad_tick, bars.guards.regime, grid.rules_p[c], run.trade_start,
        )  # fmt: skip
        rules = StrategyWeights(w, stop, take)
    ma = StrategyWeights(np.empty((0, 0)), np.nan, 0.0)
    if ma_slot >= 0:
        w, stop, take = ma_weight_of_sma_nb(
            shared.sma[shared.fast_idx[c]], shared.sma[shared.slow_idx[c]], grid.ma_p[c],
            run.trade_start, scratch.proposal,
        )  # fmt: skip
        ma = StrategyWeights(w, stop, take)
    metrics, _curve = run_weights_nb(
        bars, params, static, fill, run, rules_slot, ma_slot, rules, ma, scratch
    )
    return metrics


@njit(cache=True)
def shared_indicators_nb(
    close, high, low, volume, rules_slot, ma_slot, rules_p, ma_p, first_bar_no
):
    """Return the `SharedIndicators` of a grid, for `sweep_shared_nb`.

    From `shared_rules_masks_nb` and `shared_smas_nb` (empty buffers and -1 indices for a
    disabled strategy). Memory: T x S x distinct parameters, not combinations.
    `first_bar_no`: the absolute bar number of row 0 (`sma_nb`).
    """
    n_combos = rules_p.shape[0]
    n_bars, n_symbols = close.shape
    if rules_slot >= 0:
        breakout, momentum, spike, dip, exit_signal, rules_idx = shared_rules_masks_nb(
            close, high, low, volume, rules_p, first_bar_no
        )
    else:
        empty_masks = np.empty((0, n_bars, n_symbols), dtype=np.uint8)
        breakout, momentum, spike, dip, exit_signal = (
            empty_masks, empty_masks, empty_masks, empty_masks, empty_masks,
        )  # fmt: skip
        rules_idx = np.full((n_combos, len(MaskCol)), -1, dtype=np.int64)
    if ma_slot >= 0:
        sma, fast_idx, slow_idx = shared_smas_nb(close, ma_p, first_bar_no)
    else:
        sma = np.empty((0, n_bars, n_symbols))
        fast_idx = np.full(n_combos, -1, dtype=np.int64)
        slow_idx = np.full(n_combos, -1, dtype=np.int64)
    return SharedIndicators(
        breakout, momentum, spike, dip, exit_signal, rules_idx, sma, fast_idx, slow_idx
    )


@njit(parallel=True, cache=True)
def sweep_shared_nb(market, volume, bad_tick, guards, params, static, fill, run, grid, shared,
                    scratch):  # fmt: skip
    """Return `sweep_nb`'s result from precomputed `SharedIndicators` (`shared_indicators_nb`).

    The bars come as the four fields of a `SweepBars`, which this builds inside its `prange`
    (a parfor body cannot take nested NamedTuples). The buffers may cover more combinations
    than `grid.rules_p[C]`/`grid.ma_p[C]` (a whole group, once,
    for all its chunks): row `c` reads its arrays through `shared.rules_idx[c]`,
    `shared.fast_idx[c]` and `shared.slow_idx[c]`. They must come from the same bars.
    `scratch` is a `new_scratch_nb` stack over these bars, one set per worker (one worker
    per thread: `numba.get_num_threads()`, passed in because reading it inside a kernel stops
    numba caching the kernel); `prange` over the workers, each taking every n-th combination.
    """
    n_combos = grid.rules_p.shape[0]
    no_dip = np.zeros(market.close.shape, dtype=np.uint8)
    out = np.empty((n_combos, N_METRICS))
    n_workers = max(1, min(scratch.proposal.shape[0], n_combos))
    for worker in prange(n_workers):
        bars = SweepBars(market, volume, bad_tick, guards)
        buffers = worker_scratch_nb(scratch, worker)
        for c in range(worker, n_combos, n_workers):
            out[c] = _shared_combo_nb(
                bars, params, static, fill, run, grid, c, shared, no_dip, buffers
            )
    return out


@njit(cache=True)
def sweep_nb(market, volume, bad_tick, guards, params, static, fill, run, grid, n_workers):
    """Return float64[C, N_METRICS]: `combo_run_nb` for every row of `grid.rules_p[C]` /
    `grid.ma_p[C]` (a `KernelGrid`), over the bars of `market`, `volume`, `bad_tick`, `guards`.

    Reference: a serial loop of `combo_run_nb` (equal bit for bit: each combination reseeds
    the thread's RNG with `seed` inside `simulate_nb` and runs on one thread, and reads
    indicator arrays computed by the same kernels on the same inputs).
    First the distinct indicator arrays of these rows are computed once
    (`shared_indicators_nb`, `prange` over distinct parameters), then `sweep_shared_nb` runs
    the combinations (`prange`, per-combination scratch). Memory: the shared buffers grow with
    T x S x distinct indicator parameters (e.g. 29 distinct windows of a 174-pair MA grid),
    not with combinations, plus O(threads x T x S) scratch for `n_workers` workers (one per
    thread, see `sweep_shared_nb`).
    """
    shared = shared_indicators_nb(
        market.close, market.high, market.low, volume, grid.rules_slot, grid.ma_slot,
        grid.rules_p, grid.ma_p, _first_bar_no_nb(market.ts_ns, market.bar_ns),
    )  # fmt: skip
    combine = grid.rules_slot >= 0 and grid.ma_slot >= 0
    n_workers = max(1, min(n_workers, grid.rules_p.shape[0]))
    scratch = new_scratch_nb(n_workers, market.close.shape[0], market.close.shape[1], combine)
    return sweep_shared_nb(
        market, volume, bad_tick, guards, params, static, fill, run, grid, shared, scratch
    )
